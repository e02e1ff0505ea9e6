//! The plain Rust types hooks receive, and their conversion to and from the raw ABI.

use std::collections::BTreeMap;
use std::sync::Arc;

use abi_stable::std_types::{ROption, RString, RVec, Tuple2};
use serde_json::{Map, Value};
use xdist_sched::{Action, NodeKey, SchedConfig, SchedError};

use crate::abi::{RAction, RConfig, RGateway, RNode, RReport, RSchedConfig, RSchedError};

/// JSON object type used for `options`, `workerinput` and `workerinfo`.
pub type JsonMap = Map<String, Value>;

/// `pytest.Config` as a plugin sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigView {
    /// Option values by pytest's `dest` name (`numprocesses`, `dist`, `maxprocesses`, `tx`, ...).
    pub options: JsonMap,
    /// The pytest arguments of the invocation, in order.
    pub args: Vec<String>,
    /// The rootdir (empty when unknown).
    pub rootdir: String,
}

/// A newly created gateway (a started worker process), as `pytest_xdist_newgateway` sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayView {
    /// `gw0`, `gw1`, ...
    pub id: String,
    /// The `--tx` spec string, e.g. `popen//python=python3`.
    pub spec: String,
}

/// A worker (`WorkerController`), as node hooks see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    /// `gw0`, `gw1`, ...
    pub workerid: String,
    /// The `--tx` spec string.
    pub spec: String,
    /// `node.workerinput`: `configure_node` may add keys; the worker's `config.workerinput`
    /// shows them.
    pub workerinput: JsonMap,
    /// `node.workerinfo` (platform, python version, ...); empty before the worker is ready.
    pub workerinfo: JsonMap,
}

/// A test report, as `handlecrashitem` sees it. Only `outcome` and `longrepr` changes are kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportView {
    pub nodeid: String,
    /// `passed`, `failed`, `skipped`, or a plugin's own (e.g. `rerun`).
    pub outcome: String,
    /// The failure text.
    pub longrepr: String,
    /// `setup`, `call`, `teardown` or `???` (crash reports).
    pub when: String,
    pub duration: f64,
    /// The worker id the report came from.
    pub worker: String,
}

/// A plugin's own options (`--plugin-opt NAME.KEY=VALUE` and `[tool.xdist.plugin-options]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginOptions(pub BTreeMap<String, String>);

impl PluginOptions {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Parse an option, with an error message naming the key when it does not parse.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|e| format!("invalid value {v:?} for option {key:?}: {e}")),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions. `to_abi` is used by the host, `from_abi` by the plugin side (and vice versa for
// the results).

pub(crate) fn rstrings(v: &[String]) -> RVec<RString> {
    v.iter().map(|s| RString::from(s.as_str())).collect()
}

pub(crate) fn strings(v: &RVec<RString>) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn parse_map(what: &str, json: &str) -> Result<JsonMap, String> {
    if json.trim().is_empty() {
        return Ok(JsonMap::new());
    }
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(format!("{what} is not a JSON object")),
        Err(e) => Err(format!("{what} is not valid JSON: {e}")),
    }
}

pub(crate) fn map_json(m: &JsonMap) -> RString {
    // Serialising a Map<String, Value> cannot fail.
    RString::from(serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned()))
}

impl ConfigView {
    pub(crate) fn to_abi(&self) -> RConfig {
        RConfig {
            options_json: map_json(&self.options),
            args: rstrings(&self.args),
            rootdir: self.rootdir.as_str().into(),
        }
    }
    pub(crate) fn from_abi(c: &RConfig) -> Result<Self, String> {
        Ok(ConfigView {
            options: parse_map("config options", &c.options_json)?,
            args: strings(&c.args),
            rootdir: c.rootdir.to_string(),
        })
    }
}

impl GatewayView {
    pub(crate) fn to_abi(&self) -> RGateway {
        RGateway {
            id: self.id.as_str().into(),
            spec: self.spec.as_str().into(),
        }
    }
    pub(crate) fn from_abi(g: &RGateway) -> Self {
        GatewayView {
            id: g.id.to_string(),
            spec: g.spec.to_string(),
        }
    }
}

impl NodeView {
    pub(crate) fn to_abi(&self) -> RNode {
        RNode {
            workerid: self.workerid.as_str().into(),
            spec: self.spec.as_str().into(),
            workerinput_json: map_json(&self.workerinput),
            workerinfo_json: map_json(&self.workerinfo),
        }
    }
    pub(crate) fn from_abi(n: &RNode) -> Result<Self, String> {
        Ok(NodeView {
            workerid: n.workerid.to_string(),
            spec: n.spec.to_string(),
            workerinput: parse_map("workerinput", &n.workerinput_json)?,
            workerinfo: parse_map("workerinfo", &n.workerinfo_json)?,
        })
    }
}

impl ReportView {
    pub(crate) fn to_abi(&self) -> RReport {
        RReport {
            nodeid: self.nodeid.as_str().into(),
            outcome: self.outcome.as_str().into(),
            longrepr: self.longrepr.as_str().into(),
            when: self.when.as_str().into(),
            duration: self.duration,
            worker: self.worker.as_str().into(),
        }
    }
    pub(crate) fn from_abi(r: &RReport) -> Self {
        ReportView {
            nodeid: r.nodeid.to_string(),
            outcome: r.outcome.to_string(),
            longrepr: r.longrepr.to_string(),
            when: r.when.to_string(),
            duration: r.duration,
            worker: r.worker.to_string(),
        }
    }
}

pub(crate) fn options_to_abi(o: &BTreeMap<String, String>) -> RVec<Tuple2<RString, RString>> {
    o.iter()
        .map(|(k, v)| Tuple2(RString::from(k.as_str()), RString::from(v.as_str())))
        .collect()
}

pub(crate) fn options_from_abi(o: &RVec<Tuple2<RString, RString>>) -> PluginOptions {
    PluginOptions(
        o.iter()
            .map(|Tuple2(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// `xdist_sched::SchedConfig` plus the `--dist` mode name.
pub(crate) fn sched_config_to_abi(c: &SchedConfig, dist: &str) -> RSchedConfig {
    RSchedConfig {
        num_nodes: c.num_nodes as u64,
        max_sched_chunk: c.max_sched_chunk.map(|v| v as u64).into(),
        loadscope_reorder: c.loadscope_reorder,
        durations: match &c.durations {
            Some(d) => ROption::RSome(d.iter().copied().collect()),
            None => ROption::RNone,
        },
        dist: dist.into(),
    }
}

pub(crate) fn sched_config_from_abi(c: &RSchedConfig) -> SchedConfig {
    SchedConfig {
        num_nodes: usize::try_from(c.num_nodes).unwrap_or(usize::MAX),
        max_sched_chunk: c
            .max_sched_chunk
            .into_option()
            .map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
        loadscope_reorder: c.loadscope_reorder,
        durations: c
            .durations
            .as_ref()
            .into_option()
            .map(|d| Arc::new(d.to_vec())),
    }
}

pub(crate) fn action_to_abi(a: &Action) -> RAction {
    match a {
        Action::Run { node, indices } => RAction {
            kind: 0,
            node: node.0,
            indices: indices.iter().map(|&i| i as u64).collect(),
        },
        Action::Steal { node, indices } => RAction {
            kind: 1,
            node: node.0,
            indices: indices.iter().map(|&i| i as u64).collect(),
        },
        Action::Shutdown { node } => RAction {
            kind: 2,
            node: node.0,
            indices: RVec::new(),
        },
    }
}

pub(crate) fn actions_to_abi(a: &[Action]) -> RVec<RAction> {
    a.iter().map(action_to_abi).collect()
}

pub(crate) fn action_from_abi(a: &RAction) -> Result<Action, String> {
    let node = NodeKey(a.node);
    let indices = || -> Result<Vec<usize>, String> {
        a.indices
            .iter()
            .map(|&i| usize::try_from(i).map_err(|_| format!("test index {i} out of range")))
            .collect()
    };
    match a.kind {
        0 => Ok(Action::Run {
            node,
            indices: indices()?,
        }),
        1 => Ok(Action::Steal {
            node,
            indices: indices()?,
        }),
        2 => Ok(Action::Shutdown { node }),
        k => Err(format!("unknown scheduler action kind {k}")),
    }
}

pub(crate) fn sched_error_to_abi(e: &SchedError) -> RSchedError {
    match e {
        SchedError::Unsupported { mode } => RSchedError {
            kind: 0,
            mode: (*mode).into(),
            value: 0,
        },
        SchedError::UnknownNode(n) => RSchedError {
            kind: 1,
            mode: "".into(),
            value: u64::from(n.0),
        },
        SchedError::UnknownTest(i) => RSchedError {
            kind: 2,
            mode: "".into(),
            value: *i as u64,
        },
    }
}

pub(crate) fn sched_error_from_abi(e: &RSchedError) -> SchedError {
    match e.kind {
        1 => SchedError::UnknownNode(NodeKey(u32::try_from(e.value).unwrap_or(u32::MAX))),
        2 => SchedError::UnknownTest(usize::try_from(e.value).unwrap_or(usize::MAX)),
        // The plugin library is never unloaded, so its static strings live for the process.
        _ => SchedError::Unsupported {
            mode: e.mode.as_str(),
        },
    }
}
