//! The plugin hooks a run calls, in one place: every call site goes through [`Hooks`], so a
//! second hook target (beside the `.so` plugin host) is added here and nowhere else.
//!
//! Each method calls the hook on every target and maps a failure to the [`CliError`] that
//! ends the run (exit 3); callers record it with `RunState::plugin_result`.

use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};
use xdist_sched::{Action, SchedConfig, Scheduling};

use crate::cli::plugins::hook_error;
use crate::error::CliError;

/// The hook targets of a run (today the `.so` plugins' host).
#[derive(Clone, Copy)]
pub struct Hooks<'r> {
    host: &'r PluginHost,
}

impl<'r> Hooks<'r> {
    pub fn new(host: &'r PluginHost) -> Self {
        Hooks { host }
    }

    /// `pytest_xdist_setupnodes`: before any worker starts.
    pub fn setupnodes(&self, config: &ConfigView, specs: &[String]) -> Result<(), CliError> {
        self.host.setupnodes(config, specs).map_err(hook_error)
    }

    /// `pytest_xdist_newgateway`: a worker is being started.
    pub fn newgateway(&self, gateway: &GatewayView) -> Result<(), CliError> {
        self.host.newgateway(gateway).map_err(hook_error)
    }

    /// `pytest_configure_node`: plugins add to `node.workerinput`.
    pub fn configure_node(&self, node: &mut NodeView) -> Result<(), CliError> {
        self.host.configure_node(node).map_err(hook_error)
    }

    /// `pytest_xdist_getremotemodule`: replacement worker code, if a plugin has one.
    pub fn getremotemodule(&self) -> Result<Option<String>, CliError> {
        self.host.getremotemodule().map_err(hook_error)
    }

    /// `pytest_testnodeready`.
    pub fn testnodeready(&self, node: &NodeView) -> Result<(), CliError> {
        self.host.testnodeready(node).map_err(hook_error)
    }

    /// `pytest_testnodedown`: `error` is None for a clean finish.
    pub fn testnodedown(&self, node: &NodeView, error: Option<&str>) -> Result<(), CliError> {
        self.host.testnodedown(node, error).map_err(hook_error)
    }

    /// `pytest_xdist_node_collection_finished`.
    pub fn node_collection_finished(
        &self,
        node: &NodeView,
        ids: &[String],
    ) -> Result<(), CliError> {
        self.host
            .node_collection_finished(node, ids)
            .map_err(hook_error)
    }

    /// `pytest_xdist_make_scheduler`: None for the `--dist` mode's own.
    pub fn make_scheduler(
        &self,
        config: &ConfigView,
        sched: &SchedConfig,
    ) -> Result<Option<Box<dyn Scheduling>>, CliError> {
        self.host.make_scheduler(config, sched).map_err(hook_error)
    }

    /// `pytest_handlecrashitem`: may change `report` and put the test back in the
    /// scheduler (`sched`: it and where its actions go).
    pub fn handlecrashitem(
        &self,
        report: &mut ReportView,
        (sched, out): (&mut (dyn Scheduling + '_), &mut Vec<Action>),
        collection: &[String],
    ) -> Result<bool, CliError> {
        let nodeid = report.nodeid.clone();
        (self.host)
            .handlecrashitem(&nodeid, report, sched, collection, out)
            .map_err(hook_error)
    }

    /// `pytest_sessionfinish`: `(plugin, text)` for the terminal summary.
    pub fn sessionfinish(&self, exitstatus: i32) -> Result<Vec<(String, String)>, CliError> {
        self.host.sessionfinish(exitstatus).map_err(hook_error)
    }

    /// The first error a plugin's scheduler raised since the last call.
    pub fn take_error(&self) -> Option<CliError> {
        self.host.take_error().map(hook_error)
    }
}
