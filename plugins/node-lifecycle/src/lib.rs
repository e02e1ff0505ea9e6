//! `node-lifecycle`: when each worker was created, configured, ready, done collecting and
//! down, printed as a table at the end of the session and written as JSON.
//!
//! Times are seconds since `setupnodes` (the start of worker setup). At `sessionfinish` the
//! plugin returns the table for the terminal summary and, when `output` is set, writes:
//!
//! ```json
//! {"started_unix": 1700000000.5, "exitstatus": 0,
//!  "workers": [{"id": "gw0", "spec": "popen", "newgateway": 0.001, "configure_node": 0.002,
//!               "ready": 0.41, "collection_finished": 0.9, "collected": 12, "down": 3.2,
//!               "error": null}]}
//! ```
//!
//! Options: `--plugin-opt node-lifecycle.output=PATH` (JSON file; default: none).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use xdist_plugin_api::{
    export_plugin, ConfigView, GatewayView, HookResult, NodeView, Plugin, PluginOptions,
};

#[derive(Default, Debug, Clone)]
struct Worker {
    spec: String,
    newgateway: Option<f64>,
    configure_node: Option<f64>,
    ready: Option<f64>,
    collection_finished: Option<f64>,
    collected: Option<usize>,
    down: Option<f64>,
    error: Option<String>,
}

pub struct NodeLifecycle {
    output: Option<PathBuf>,
    start: Instant,
    started_unix: f64,
    specs: usize,
    workers: BTreeMap<String, Worker>,
}

impl NodeLifecycle {
    fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }
    fn worker(&mut self, id: &str) -> &mut Worker {
        self.workers.entry(id.to_owned()).or_default()
    }

    /// Worker ids in natural order (gw2 before gw10).
    fn ordered(&self) -> Vec<(&String, &Worker)> {
        let mut v: Vec<_> = self.workers.iter().collect();
        v.sort_by_key(|(id, _)| {
            let digits: String = id.chars().filter(|c| c.is_ascii_digit()).collect();
            (digits.parse::<u64>().unwrap_or(u64::MAX), (*id).clone())
        });
        v
    }

    fn table(&self) -> String {
        let cell = |v: Option<f64>| v.map_or("-".to_owned(), |t| format!("{t:.3}"));
        let mut s = format!(
            "{:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}  {}\n",
            "worker", "gateway", "configured", "ready", "collected", "tests", "down", "error"
        );
        for (id, w) in self.ordered() {
            s.push_str(&format!(
                "{:<8} {:>10} {:>10} {:>10} {:>10} {:>8} {:>10}  {}\n",
                id,
                cell(w.newgateway),
                cell(w.configure_node),
                cell(w.ready),
                cell(w.collection_finished),
                w.collected.map_or("-".to_owned(), |n| n.to_string()),
                cell(w.down),
                w.error.as_deref().unwrap_or("")
            ));
        }
        s.push_str(&format!(
            "{} worker(s) for {} spec(s); times in seconds since worker setup began",
            self.workers.len(),
            self.specs
        ));
        s
    }

    fn json(&self, exitstatus: i32) -> Value {
        let workers: Vec<Value> = self
            .ordered()
            .into_iter()
            .map(|(id, w)| {
                json!({
                    "id": id,
                    "spec": w.spec,
                    "newgateway": w.newgateway,
                    "configure_node": w.configure_node,
                    "ready": w.ready,
                    "collection_finished": w.collection_finished,
                    "collected": w.collected,
                    "down": w.down,
                    "error": w.error,
                })
            })
            .collect();
        json!({
            "started_unix": self.started_unix,
            "exitstatus": exitstatus,
            "specs": self.specs,
            "workers": workers,
        })
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Plugin for NodeLifecycle {
    fn new(options: &PluginOptions) -> HookResult<Self> {
        for (key, _) in options.iter() {
            if key != "output" {
                return Err(format!("unknown option {key:?} (known: output)"));
            }
        }
        Ok(NodeLifecycle {
            output: options.get("output").map(PathBuf::from),
            start: Instant::now(),
            started_unix: unix_now(),
            specs: 0,
            workers: BTreeMap::new(),
        })
    }

    fn setupnodes(&mut self, _config: &ConfigView, specs: &[String]) -> HookResult {
        self.start = Instant::now();
        self.started_unix = unix_now();
        self.specs = specs.len();
        Ok(())
    }

    fn newgateway(&mut self, gateway: &GatewayView) -> HookResult {
        let t = self.now();
        let w = self.worker(&gateway.id);
        w.spec = gateway.spec.clone();
        w.newgateway = Some(t);
        Ok(())
    }

    fn configure_node(&mut self, node: &mut NodeView) -> HookResult {
        let t = self.now();
        let w = self.worker(&node.workerid);
        if w.spec.is_empty() {
            w.spec = node.spec.clone();
        }
        w.configure_node = Some(t);
        Ok(())
    }

    fn testnodeready(&mut self, node: &NodeView) -> HookResult {
        let t = self.now();
        self.worker(&node.workerid).ready = Some(t);
        Ok(())
    }

    fn node_collection_finished(&mut self, node: &NodeView, ids: &[String]) -> HookResult {
        let t = self.now();
        let w = self.worker(&node.workerid);
        w.collection_finished = Some(t);
        w.collected = Some(ids.len());
        Ok(())
    }

    fn testnodedown(&mut self, node: &NodeView, error: Option<&str>) -> HookResult {
        let t = self.now();
        let w = self.worker(&node.workerid);
        w.down = Some(t);
        w.error = error.map(str::to_owned);
        Ok(())
    }

    fn sessionfinish(&mut self, exitstatus: i32) -> HookResult<Option<String>> {
        let mut table = self.table();
        if let Some(path) = &self.output {
            let text = serde_json::to_string_pretty(&self.json(exitstatus))
                .map_err(|e| format!("cannot serialise the timings: {e}"))?;
            std::fs::write(path, text + "\n")
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            table.push_str(&format!("\nwritten to {}", path.display()));
        }
        Ok(Some(table))
    }
}

export_plugin! {
    plugin: NodeLifecycle,
    name: "node-lifecycle",
    version: env!("CARGO_PKG_VERSION"),
    description: "per-worker setup/ready/collection/down timings, as a table and JSON",
    hooks: [setupnodes, newgateway, configure_node, testnodeready, node_collection_finished,
            testnodedown, sessionfinish],
}
