//! The plugin hooks a run calls, in one place: every call site goes through [`Hooks`]: the
//! `.so` plugin host, and the controller session's Python hooks (`pystep::session_scheduler`:
//! `pytest_handlecrashitem`, `pytest_xdist_make_scheduler`), added here and nowhere else.
//!
//! Each method calls the hook on every target and maps a failure to the [`CliError`] that
//! ends the run (exit 3); callers record it with `RunState::plugin_result`.

use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};
use xdist_sched::{Action, SchedConfig, Scheduling};

use crate::cli::plugins::hook_error;
use crate::error::CliError;
use crate::pystep::session_scheduler::{CrashVerdict, SessionHooks};

/// The hook targets of a run: the `.so` plugin host, then (for the hooks it serves) the
/// controller session's Python plugins and conftests.
#[derive(Clone)]
pub struct Hooks<'r> {
    host: &'r PluginHost,
    session: Option<SessionHooks>,
}

/// A Python hook's failure in the controller session (its traceback): the run ends, exit 3.
fn session_error(hook: &str) -> impl FnOnce(String) -> CliError + '_ {
    move |e| CliError::Plugin {
        code: 3,
        message: format!("{hook} failed in the controller session:\n{e}"),
    }
}

impl<'r> Hooks<'r> {
    pub fn new(host: &'r PluginHost) -> Self {
        Hooks {
            host,
            session: None,
        }
    }

    /// The controller session's hooks too, when the run has one.
    pub fn with_session(mut self, session: Option<SessionHooks>) -> Self {
        self.session = session;
        self
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

    /// `pytest_xdist_make_scheduler`: None for the `--dist` mode's own. A `.so` plugin's
    /// first (firstresult), then the session's (driven there, a round trip per call).
    pub fn make_scheduler(
        &self,
        config: &ConfigView,
        sched: &SchedConfig,
    ) -> Result<Option<Box<dyn Scheduling>>, CliError> {
        if let Some(s) = self
            .host
            .make_scheduler(config, sched)
            .map_err(hook_error)?
        {
            return Ok(Some(s));
        }
        let Some(session) = &self.session else {
            return Ok(None);
        };
        let made = session.make_scheduler();
        let made = made.map_err(session_error("pytest_xdist_make_scheduler"))?;
        Ok(made.map(|s| Box::new(s) as Box<dyn Scheduling>))
    }

    /// `pytest_handlecrashitem`: may change `report` and put the test back in the
    /// scheduler (`sched`: it and where its actions go). A `.so` plugin's first; if none
    /// handled it, the session's, whose verdict is returned (what its hooks printed). A rerun the scheduler cannot do leaves the test
    /// failed: it ends once.
    pub fn handlecrashitem(
        &self,
        report: &mut ReportView,
        (sched, out): (&mut (dyn Scheduling + '_), &mut Vec<Action>),
        collection: &[String],
    ) -> Result<Option<CrashVerdict>, CliError> {
        let nodeid = report.nodeid.clone();
        let handled = (self.host)
            .handlecrashitem(&nodeid, report, &mut *sched, collection, &mut *out)
            .map_err(hook_error)?;
        let Some(session) = self.session.as_ref().filter(|_| !handled) else {
            return Ok(None);
        };
        let verdict = session.handlecrashitem(&nodeid, &report.worker, &report.longrepr);
        let verdict = verdict.map_err(session_error("pytest_handlecrashitem"))?;
        (report.outcome, report.longrepr) = (verdict.outcome.clone(), verdict.longrepr.clone());
        for pending in &verdict.pending {
            let index = collection.iter().position(|id| id == pending);
            let queued = index.is_some_and(|i| sched.mark_test_pending(i, out).is_ok());
            if !queued && report.outcome == "rerun" {
                report.outcome = "failed".into();
            }
        }
        Ok(Some(verdict))
    }

    /// `pytest_sessionfinish`: `(plugin, text)` for the terminal summary.
    pub fn sessionfinish(&self, exitstatus: i32) -> Result<Vec<(String, String)>, CliError> {
        self.host.sessionfinish(exitstatus).map_err(hook_error)
    }

    /// The first error a plugin's scheduler raised since the last call.
    pub fn take_error(&self) -> Option<CliError> {
        if let Some(e) = self.host.take_error() {
            return Some(hook_error(e));
        }
        let e = self.session.as_ref()?.take_error()?;
        Some(session_error("the plugin's scheduler")(e))
    }
}
