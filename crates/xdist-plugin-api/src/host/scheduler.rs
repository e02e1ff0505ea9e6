//! A plugin's scheduler behind xdist's `Scheduling` trait.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use xdist_sched::{Action, Collection, NodeKey, SchedError, Scheduling};

use super::error::{hook_error, PluginError};
use crate::abi::{self, RHookResult, RSchedulerBox};
use crate::types::{action_from_abi, rstrings, sched_error_from_abi};

/// A plugin's scheduler as a `Box<dyn Scheduling>`. A failing call records a [`PluginError`]
/// (see [`PluginHost::take_error`]) and disables the scheduler.
pub(super) struct PluginScheduler {
    inner: RSchedulerBox,
    plugin: String,
    name: &'static str,
    errors: Arc<Mutex<Vec<PluginError>>>,
    failed: AtomicBool,
}

impl PluginScheduler {
    /// `plugin`'s scheduler; its failures go to the host's `errors`.
    pub(super) fn new(
        inner: RSchedulerBox,
        plugin: &str,
        errors: Arc<Mutex<Vec<PluginError>>>,
    ) -> PluginScheduler {
        let name = inner.name().as_str();
        PluginScheduler {
            inner,
            plugin: plugin.to_owned(),
            name,
            errors,
            failed: AtomicBool::new(false),
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn ok<T>(&self, method: &'static str, r: RHookResult<T>) -> Option<T> {
        match r {
            RResult::ROk(v) => Some(v),
            RResult::RErr(e) => {
                self.fail(hook_error(&self.plugin, method, e));
                None
            }
        }
    }

    fn fail(&self, e: PluginError) {
        self.failed.store(true, Ordering::Relaxed);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    fn push_actions(
        &self,
        method: &'static str,
        actions: RVec<abi::RAction>,
        out: &mut Vec<Action>,
    ) {
        for a in actions.iter() {
            match action_from_abi(a) {
                Ok(a) => out.push(a),
                Err(message) => {
                    let e = PluginError::HookFailed {
                        plugin: self.plugin.clone(),
                        hook: method,
                        message,
                    };
                    self.fail(e);
                    return;
                }
            }
        }
    }

    fn sched_result(
        &self,
        method: &'static str,
        r: RHookResult<RResult<RVec<abi::RAction>, abi::RSchedError>>,
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        match self.ok(method, r) {
            Some(RResult::ROk(actions)) => {
                self.push_actions(method, actions, out);
                Ok(())
            }
            Some(RResult::RErr(e)) => Err(sched_error_from_abi(&e)),
            None => Err(SchedError::Unsupported { mode: self.name }),
        }
    }
}

impl Scheduling for PluginScheduler {
    fn name(&self) -> &'static str {
        self.name
    }
    fn nodes(&self) -> Vec<NodeKey> {
        if self.failed() {
            return Vec::new();
        }
        let r = self.inner.nodes();
        self.ok("Scheduling::nodes", r)
            .map(|v| v.iter().map(|&n| NodeKey(n)).collect())
            .unwrap_or_default()
    }
    fn collection_is_completed(&self) -> bool {
        self.query(
            "Scheduling::collection_is_completed",
            |s| s.collection_is_completed(),
            true,
        )
    }
    fn tests_finished(&self) -> bool {
        self.query("Scheduling::tests_finished", |s| s.tests_finished(), true)
    }
    fn has_pending(&self) -> bool {
        self.query("Scheduling::has_pending", |s| s.has_pending(), false)
    }
    fn add_node(&mut self, node: NodeKey, spec: &str) {
        if !self.failed() {
            let r = self.inner.add_node(node.0, RStr::from_str(spec));
            self.ok("Scheduling::add_node", r);
        }
    }
    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        if !self.failed() {
            let ids = rstrings(&collection.ids);
            let groups: RVec<ROption<RString>> = collection
                .groups
                .iter()
                .map(|g| g.as_deref().map(RString::from).into())
                .collect();
            let r = self.inner.add_node_collection(node.0, &ids, &groups);
            self.ok("Scheduling::add_node_collection", r);
        }
    }
    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        duration: f64,
        out: &mut Vec<Action>,
    ) {
        if !self.failed() {
            let r = self
                .inner
                .mark_test_complete(node.0, index as u64, duration);
            if let Some(a) = self.ok("Scheduling::mark_test_complete", r) {
                self.push_actions("Scheduling::mark_test_complete", a, out);
            }
        }
    }
    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        if self.failed() {
            return Err(SchedError::Unsupported { mode: self.name });
        }
        let r = self.inner.mark_test_pending(index as u64);
        self.sched_result("Scheduling::mark_test_pending", r, out)
    }
    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        if self.failed() {
            return Ok(());
        }
        let idx: RVec<u64> = indices.iter().map(|&i| i as u64).collect();
        let r = self.inner.remove_pending_tests_from_node(node.0, &idx);
        self.sched_result("Scheduling::remove_pending_tests_from_node", r, out)
    }
    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        if self.failed() {
            return None;
        }
        let r = self.inner.remove_node(node.0);
        let t = self.ok("Scheduling::remove_node", r)?;
        let (running, actions) = (t.0, t.1);
        self.push_actions("Scheduling::remove_node", actions, out);
        running.into_option().and_then(|i| usize::try_from(i).ok())
    }
    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.failed() {
            let r = self.inner.schedule();
            if let Some(a) = self.ok("Scheduling::schedule", r) {
                self.push_actions("Scheduling::schedule", a, out);
            }
        }
    }
}

impl PluginScheduler {
    fn query(
        &self,
        method: &'static str,
        f: impl FnOnce(&RSchedulerBox) -> RHookResult<bool>,
        when_failed: bool,
    ) -> bool {
        if self.failed() {
            return when_failed;
        }
        let r = f(&self.inner);
        self.ok(method, r).unwrap_or(when_failed)
    }
}
