//! Starting a worker: its `workerinput`, bootstrap and environment, and the plugins' say.

use std::ffi::OsString;

use serde_json::{json, Map, Value};
use xdist_core::protocol::{Bootstrap, PROTOCOL_VERSION};
use xdist_plugin_api::{GatewayView, NodeView};

use xdist_core::spec::XSpec;
use xdist_worker::WorkerSpawn;

use crate::error::CliError;

use super::controller::Controller;
use super::node::Node;

/// `workerinput` keys a worker reads only once it is itself (a fork server's child, after
/// the fork): pytest-rerunfailures' StatusDB client (`connect_rerun_db`,
/// `xdist_scheduling.py`), which pytest-xdist's workers connect in `pytest_configure`.
const READ_AFTER_FORK: [&str; 2] = ["sock_port", "statusdb_token"];

impl Controller<'_> {
    /// Starts a worker for spec `spec_index`; `first` for the run's initial workers (a
    /// spec's `id=` names only the first, replacements get the next `gwN`).
    pub(super) fn spawn_worker(&mut self, spec_index: usize, first: bool) -> Result<(), CliError> {
        let spec = self.state.setup.specs[spec_index].clone();
        let gw = self.state.nodes.next_id(spec.id.as_deref(), first);
        let key = self.state.nodes.next_key();
        let workerinput = self.workerinput(&gw, &spec)?;
        let r = self.state.hooks.getremotemodule();
        let code = self.state.plugin_result(r).flatten();
        let bootstrap = self.bootstrap(&gw, &spec, workerinput.clone());
        let setup = &self.state.setup;
        let worker = WorkerSpawn {
            key,
            env: self.worker_env(&gw),
            spec,
            python: setup.python.clone(),
            cwd: setup.cwd.clone(),
            bootstrap,
            code,
            token: setup.token.clone(),
        };
        let mut handle = self.zygote.start_worker(worker, &self.tx)?;
        if !first {
            handle.start();
        }
        self.handles.push(handle);
        (self.state.nodes).push(Node::new(key, gw, spec_index, workerinput));
        Ok(())
    }

    /// Worker `gw`'s `workerinput`: ours, then what plugins and the controller session add.
    fn workerinput(&mut self, gw: &str, spec: &XSpec) -> Result<Map<String, Value>, CliError> {
        let setup = &self.state.setup;
        let mut workerinput = Map::new();
        workerinput.insert("workerid".into(), json!(gw));
        workerinput.insert("workercount".into(), json!(setup.workers()));
        workerinput.insert("testrunuid".into(), json!(setup.testrunuid));
        workerinput.insert("mainargv".into(), json!(setup.mainargv));
        crate::pystep::cov::add_workerinput(&mut workerinput, &setup.cwd);
        let (args, uid) = (&setup.opts.pytest_args, &setup.testrunuid);
        crate::pystep::randomly::add_workerinput(&mut workerinput, args, &setup.cwd, uid);
        let gateway = GatewayView {
            id: gw.to_string(),
            spec: spec.raw.clone(),
        };
        let r = self.state.hooks.newgateway(&gateway);
        self.state.plugin_result(r);
        let mut view = NodeView {
            workerid: gw.to_string(),
            spec: spec.raw.clone(),
            workerinput,
            workerinfo: Map::new(),
        };
        let ours = view.workerinput.clone();
        let r = self.state.hooks.configure_node(&mut view);
        self.state.plugin_result(r);
        let mut workerinput = view.workerinput;
        if let Some(session) = &mut self.controller_session {
            workerinput = session
                .configure_node(gw, &spec.raw, &workerinput)
                .map_err(|e| CliError::Internal(format!("failed to configure {gw}: {e}")))?;
        }
        let mut read_in_configure = workerinput.clone();
        read_in_configure.retain(|k, _| !READ_AFTER_FORK.contains(&k.as_str()));
        if read_in_configure != ours {
            // Plugins may read what they added in `pytest_configure`, which a fork server
            // would run once for all workers.
            self.zygote
                .no_fork("plugins add to each worker's workerinput (pytest_configure_node)");
        }
        Ok(workerinput)
    }

    fn bootstrap(&self, gw: &str, spec: &XSpec, workerinput: Map<String, Value>) -> Bootstrap {
        Bootstrap {
            protocol: PROTOCOL_VERSION,
            workerinput,
            args: match (&self.state.setup.remote_args, spec.needs_rsync()) {
                (Some(args), true) => args.clone(),
                _ => self.state.setup.opts.pytest_args.clone(),
            },
            // Only local workers share the controller's basetemp (pytest-xdist).
            basetemp: (self.state.setup.run_basetemp)
                .as_ref()
                .filter(|_| !spec.is_remote())
                .map(|b| b.join(format!("popen-{gw}")).display().to_string()),
            dist: self.state.setup.opts.dist.as_str().to_string(),
            color: self.state.setup.color,
            width: self.state.setup.width,
            want_header: true,
            want_files: self.state.setup.opts.pytest.want_files(),
            sys_path: Vec::new(),
            remote: spec.needs_rsync(),
            controller_session: self.controller_session.is_some(),
        }
    }

    /// The controller session's environment, then pytest-xdist's variables.
    fn worker_env(&self, gw: &str) -> Vec<(OsString, OsString)> {
        let session_env = (self.controller_session.iter())
            .flat_map(|s| s.env.iter())
            .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let ours = [
            (xdist_core::env::PYTEST_XDIST_WORKER, gw.to_string()),
            (
                xdist_core::env::PYTEST_XDIST_WORKER_COUNT,
                self.state.setup.workers().to_string(),
            ),
            (
                xdist_core::env::PYTEST_XDIST_TESTRUNUID,
                self.state.setup.testrunuid.clone(),
            ),
        ];
        let ours = ours.map(|(k, v)| (OsString::from(k), OsString::from(v)));
        session_env.chain(ours).collect()
    }
}
