//! `priority-scheduler`: a custom scheduler that runs the tests whose ids match configured
//! patterns first, then the rest, handing out work like `--dist load`.
//!
//! Options (`--plugin-opt priority-scheduler.KEY=VALUE`):
//! - `patterns`: comma-separated; a pattern with `*` or `?` is a glob over the whole node id
//!   (`tests/slow/*`, `*::test_big_*`), any other is a substring (`critical`). A test matching
//!   several patterns ranks by the first one; ties keep collection order. Without patterns the
//!   plugin does not answer `make_scheduler` and xdist's own scheduler runs.
//!
//! Scheduling: every worker holds at most two tests (the running one and the next, which pytest
//! needs for fixture teardown), so the queue order is the order tests start in. A crashed
//! worker's queued tests go back to the front of the queue; `mark_test_pending` is supported
//! (crash reruns).

use std::collections::VecDeque;
use std::sync::Arc;

use xdist_plugin_api::xdist_sched::{
    Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling,
};
use xdist_plugin_api::{export_plugin, ConfigView, HookResult, Plugin, PluginOptions};

/// Glob match (`*` any run, `?` one character) over the whole string.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The rank of a test id: the index of the first matching pattern, or `patterns.len()`.
pub fn rank(patterns: &[String], id: &str) -> usize {
    patterns
        .iter()
        .position(|p| {
            if p.contains(['*', '?']) {
                glob_match(p, id)
            } else {
                id.contains(p.as_str())
            }
        })
        .unwrap_or(patterns.len())
}

/// Parse the `patterns` option.
pub fn parse_patterns(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The scheduler (usable directly, without the plugin machinery).
pub struct PriorityScheduling {
    patterns: Vec<String>,
    num_nodes: usize,
    collection: Option<Arc<Collection>>,
    collected: usize,
    /// Nodes in join order, with their pending test indices (first = running).
    nodes: Vec<(NodeKey, Vec<usize>, bool)>,
    queue: VecDeque<usize>,
    started: bool,
}

const MAX_PENDING: usize = 2;

impl PriorityScheduling {
    pub fn new(patterns: Vec<String>, config: &SchedConfig) -> Self {
        PriorityScheduling {
            patterns,
            num_nodes: config.num_nodes.max(1),
            collection: None,
            collected: 0,
            nodes: Vec::new(),
            queue: VecDeque::new(),
            started: false,
        }
    }

    fn fill(&mut self, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        // Round-robin one test at a time so that the highest-ranked tests spread over workers.
        loop {
            let mut gave = false;
            for (node, pending, ready) in &mut self.nodes {
                if !*ready || pending.len() >= MAX_PENDING {
                    continue;
                }
                let Some(index) = self.queue.pop_front() else {
                    return;
                };
                pending.push(index);
                out.push(Action::Run {
                    node: *node,
                    indices: vec![index],
                });
                gave = true;
            }
            if !gave {
                return;
            }
        }
    }
}

impl Scheduling for PriorityScheduling {
    fn name(&self) -> &'static str {
        "PriorityScheduling"
    }
    fn nodes(&self) -> Vec<NodeKey> {
        self.nodes.iter().map(|(n, _, _)| *n).collect()
    }
    fn collection_is_completed(&self) -> bool {
        self.collected >= self.num_nodes
    }
    fn tests_finished(&self) -> bool {
        self.collection_is_completed()
            && self.queue.is_empty()
            && self.nodes.iter().all(|(_, p, _)| p.len() < MAX_PENDING)
    }
    fn has_pending(&self) -> bool {
        !self.queue.is_empty() || self.nodes.iter().any(|(_, p, _)| !p.is_empty())
    }
    fn add_node(&mut self, node: NodeKey, _spec: &str) {
        if !self.nodes.iter().any(|(n, _, _)| *n == node) {
            self.nodes.push((node, Vec::new(), false));
        }
    }
    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        if let Some(entry) = self.nodes.iter_mut().find(|(n, _, _)| *n == node) {
            entry.2 = true;
        }
        self.collected += 1;
        if self.collection.is_none() {
            let mut order: Vec<usize> = (0..collection.len()).collect();
            order.sort_by_key(|&i| rank(&self.patterns, &collection.ids[i]));
            self.queue = order.into();
            self.collection = Some(collection);
        }
    }
    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        _duration: f64,
        out: &mut Vec<Action>,
    ) {
        if let Some((_, pending, _)) = self.nodes.iter_mut().find(|(n, _, _)| *n == node) {
            if let Some(pos) = pending.iter().position(|&i| i == index) {
                pending.remove(pos);
            }
        }
        self.fill(out);
    }
    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        let len = self.collection.as_ref().map_or(0, |c| c.len());
        if index >= len {
            return Err(SchedError::UnknownTest(index));
        }
        self.queue.push_front(index);
        self.fill(out);
        Ok(())
    }
    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        let Some((_, pending, _)) = self.nodes.iter_mut().find(|(n, _, _)| *n == node) else {
            return Err(SchedError::UnknownNode(node));
        };
        pending.retain(|i| !indices.contains(i));
        for &i in indices.iter().rev() {
            self.queue.push_front(i);
        }
        self.fill(out);
        Ok(())
    }
    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let pos = self.nodes.iter().position(|(n, _, _)| *n == node)?;
        let (_, pending, _) = self.nodes.remove(pos);
        let mut pending = pending.into_iter();
        let running = pending.next();
        let rest: Vec<usize> = pending.collect();
        for &i in rest.iter().rev() {
            self.queue.push_front(i);
        }
        self.fill(out);
        running
    }
    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.collection_is_completed() {
            return;
        }
        self.started = true;
        self.fill(out);
    }
}

pub struct PriorityPlugin {
    patterns: Vec<String>,
}

impl Plugin for PriorityPlugin {
    fn new(options: &PluginOptions) -> HookResult<Self> {
        for (key, _) in options.iter() {
            if key != "patterns" {
                return Err(format!("unknown option {key:?} (known: patterns)"));
            }
        }
        Ok(PriorityPlugin {
            patterns: options
                .get("patterns")
                .map(parse_patterns)
                .unwrap_or_default(),
        })
    }

    fn make_scheduler(
        &mut self,
        _config: &ConfigView,
        sched: &SchedConfig,
    ) -> HookResult<Option<Box<dyn Scheduling>>> {
        if self.patterns.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(PriorityScheduling::new(
            self.patterns.clone(),
            sched,
        ))))
    }
}

export_plugin! {
    plugin: PriorityPlugin,
    name: "priority-scheduler",
    version: env!("CARGO_PKG_VERSION"),
    description: "runs tests matching the configured patterns first (load-like otherwise)",
    hooks: [make_scheduler],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("tests/slow/*", "tests/slow/test_a.py::t"));
        assert!(glob_match("*::test_big_?", "a.py::test_big_1"));
        assert!(!glob_match("*::test_big_?", "a.py::test_big_12"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a", "b"));
    }

    #[test]
    fn ranks() {
        let p = parse_patterns("critical, *::test_big_*");
        assert_eq!(rank(&p, "a.py::test_critical"), 0);
        assert_eq!(rank(&p, "a.py::test_big_x"), 1);
        assert_eq!(rank(&p, "a.py::test_small"), 2);
    }
}
