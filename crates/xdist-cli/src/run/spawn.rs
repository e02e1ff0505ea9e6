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

impl Controller<'_> {
    /// Starts a worker for spec `spec_index`; `first` for the run's initial workers (a
    /// spec's `id=` names only the first, replacements get the next `gwN`).
    pub(super) fn spawn_worker(&mut self, spec_index: usize, first: bool) -> Result<(), CliError> {
        let spec = self.setup.specs[spec_index].clone();
        let gw = match (&spec.id, first) {
            (Some(id), true) => id.clone(),
            _ => {
                self.next_gw += 1;
                format!("gw{}", self.next_gw - 1)
            }
        };
        let key = self.nodes.len() as u32;
        let workerinput = self.workerinput(&gw, &spec)?;
        let r = self.host.getremotemodule();
        let code = self.plugin_result(r).flatten();
        let bootstrap = self.bootstrap(&gw, &spec, workerinput.clone());
        let worker = WorkerSpawn {
            key,
            env: self.worker_env(&gw),
            spec,
            python: self.setup.python.clone(),
            cwd: self.setup.cwd.clone(),
            bootstrap,
            code,
            token: self.setup.token.clone(),
        };
        let handle = self.zygote.start_worker(worker, &self.tx)?;
        self.nodes
            .push(Node::new(key, gw, spec_index, handle, workerinput));
        if !first {
            if let Some(n) = self.nodes.last_mut() {
                n.handle.start();
            }
        }
        Ok(())
    }

    /// Worker `gw`'s `workerinput`: ours, then what plugins and the controller session add.
    fn workerinput(&mut self, gw: &str, spec: &XSpec) -> Result<Map<String, Value>, CliError> {
        let mut workerinput = Map::new();
        workerinput.insert("workerid".into(), json!(gw));
        workerinput.insert("workercount".into(), json!(self.setup.workers()));
        workerinput.insert("testrunuid".into(), json!(self.setup.testrunuid));
        workerinput.insert("mainargv".into(), json!(self.setup.mainargv));
        crate::pystep::cov::add_workerinput(&mut workerinput, &self.setup.cwd);
        let (args, uid) = (&self.setup.opts.pytest_args, &self.setup.testrunuid);
        crate::pystep::randomly::add_workerinput(&mut workerinput, args, &self.setup.cwd, uid);
        let gateway = GatewayView {
            id: gw.to_string(),
            spec: spec.raw.clone(),
        };
        let r = self.host.newgateway(&gateway);
        self.plugin_result(r);
        let mut view = NodeView {
            workerid: gw.to_string(),
            spec: spec.raw.clone(),
            workerinput,
            workerinfo: Map::new(),
        };
        let ours = view.workerinput.clone();
        let r = self.host.configure_node(&mut view);
        self.plugin_result(r);
        let mut workerinput = view.workerinput;
        if let Some(session) = &mut self.controller_session {
            workerinput = session
                .configure_node(gw, &spec.raw, &workerinput)
                .map_err(|e| CliError::Internal(format!("failed to configure {gw}: {e}")))?;
        }
        if workerinput != ours {
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
            args: match (&self.setup.remote_args, spec.needs_rsync()) {
                (Some(args), true) => args.clone(),
                _ => self.setup.opts.pytest_args.clone(),
            },
            // Only local workers share the controller's basetemp (pytest-xdist).
            basetemp: self
                .setup
                .run_basetemp
                .as_ref()
                .filter(|_| !spec.is_remote())
                .map(|b| b.join(format!("popen-{gw}")).display().to_string()),
            dist: self.setup.opts.dist.as_str().to_string(),
            color: self.setup.color,
            width: self.setup.width,
            want_header: true,
            want_files: self.setup.opts.pytest.want_files(),
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
                self.setup.workers().to_string(),
            ),
            (
                xdist_core::env::PYTEST_XDIST_TESTRUNUID,
                self.setup.testrunuid.clone(),
            ),
        ];
        let ours = ours.map(|(k, v)| (OsString::from(k), OsString::from(v)));
        session_env.chain(ours).collect()
    }
}
