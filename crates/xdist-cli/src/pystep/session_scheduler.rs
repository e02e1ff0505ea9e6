//! The controller session's say in crashes and scheduling: Python plugins'
//! `pytest_handlecrashitem` and `pytest_xdist_make_scheduler`, as pytest-xdist's `DSession`
//! calls them (the `.so` plugins' are `PluginHost`'s; these come after them).
//!
//! A crash is one request: the session builds the test's report as `DSession.handle_crashitem`
//! does, its hooks may change it and mark the test pending, and the reply says how it ended
//! ([`CrashVerdict`]); the controller re-queues the marked tests. A plugin's scheduler lives
//! in the session and is driven through [`SessionScheduler`], a [`Scheduling`] whose every
//! call is one request and one reply (`xdist_scheduling.py`'s `SchedulerDriver`): the actions
//! its nodes recorded, and its properties after the call, which the trait's queries then read
//! without asking.

use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use xdist_sched::{Action, Collection, NodeKey, SchedError, Scheduling};

use super::controller_session::ControllerSession;

/// The session's request lines (written to its stdin by a thread) and its replies, shared
/// by the session and its scheduler.
pub struct SessionLink {
    lines: Option<Sender<String>>,
    replies: Receiver<Value>,
    /// The first error a plugin's scheduler raised: the run fails with it (exit 3).
    error: Option<String>,
}

pub type SharedLink = Arc<Mutex<SessionLink>>;

impl SessionLink {
    pub fn shared(lines: Sender<String>, replies: Receiver<Value>) -> SharedLink {
        Arc::new(Mutex::new(SessionLink {
            lines: Some(lines),
            replies,
            error: None,
        }))
    }

    /// A line, without waiting (one-way messages, and requests).
    pub fn send(&mut self, line: String) -> bool {
        (self.lines.as_ref()).is_some_and(|lines| lines.send(line).is_ok())
    }

    /// One request line, and its reply (None: the session is gone).
    pub fn request(&mut self, request: &Value) -> Option<Value> {
        let mut line = request.to_string();
        line.push('\n');
        if !self.send(line) {
            return None;
        }
        self.replies.recv().ok()
    }

    /// No more lines: the session's stdin closes once the writer is done.
    pub fn close(&mut self) {
        self.lines = None;
    }
}

/// A reply, or the error the plugin's code raised in the session (its traceback).
fn answer(reply: Value) -> Result<Value, String> {
    match reply.get("t").and_then(Value::as_str) {
        Some("error") => Err((reply.get("error").and_then(Value::as_str))
            .unwrap_or("error")
            .trim_end()
            .to_string()),
        _ => Ok(reply),
    }
}

/// What the session's `pytest_handlecrashitem` hooks left of a crashed test's report.
#[derive(Debug, Clone, PartialEq)]
pub struct CrashVerdict {
    pub outcome: String,
    pub longrepr: String,
    /// Tests the hooks marked pending (`sched.mark_test_pending`), to run again.
    pub pending: Vec<String>,
    /// What the hooks printed.
    pub output: String,
}

/// The session's hooks for the run loop: cheap to clone, usable while the run owns the
/// session (the scheduler keeps one).
#[derive(Clone)]
pub struct SessionHooks {
    link: SharedLink,
}

impl ControllerSession {
    pub fn hooks(&self) -> SessionHooks {
        SessionHooks { link: self.link() }
    }
}

impl SessionHooks {
    /// One request and its reply; Err: the plugin's exception, or the session is gone.
    fn request(&self, request: &Value) -> Result<Value, String> {
        let reply = (self.link.lock().unwrap_or_else(|p| p.into_inner())).request(request);
        answer(reply.ok_or_else(|| "the controller session ended".to_string())?)
    }

    /// `pytest_handlecrashitem(crashitem, report, sched)` for `nodeid`, whose worker died
    /// running it; `longrepr` is pytest-xdist's "worker 'gw0' crashed while running ...".
    pub fn handlecrashitem(
        &self,
        nodeid: &str,
        worker: &str,
        longrepr: &str,
    ) -> Result<CrashVerdict, String> {
        let reply = self.request(&json!({
            "t": "crashitem", "nodeid": nodeid, "worker": worker,
            "longrepr": longrepr, "outcome": "failed", "when": "???",
        }))?;
        let text = |key: &str| reply.get(key).and_then(Value::as_str).map(str::to_string);
        let pending = (reply
            .get("pending")
            .and_then(Value::as_array)
            .into_iter()
            .flatten())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
        Ok(CrashVerdict {
            outcome: text("outcome").unwrap_or_else(|| "failed".into()),
            longrepr: text("longrepr").unwrap_or_default(),
            pending,
            output: text("output").unwrap_or_default(),
        })
    }

    /// `pytest_xdist_make_scheduler(config, log)`: the plugin's scheduler, driven through
    /// the session, or None (the `--dist` mode's).
    pub fn make_scheduler(&self) -> Result<Option<SessionScheduler>, String> {
        let reply = self.request(&json!({"t": "make_scheduler"}))?;
        let Some(name) = reply.get("name").and_then(Value::as_str) else {
            return Ok(None);
        };
        let mut sched = SessionScheduler {
            hooks: self.clone(),
            // Named once per run; `Scheduling::name` is `&'static str`.
            name: Box::leak(name.to_string().into_boxed_str()),
            state: SchedState::default(),
            collection_sent: None,
            failed: false,
        };
        sched.update(&reply);
        Ok(Some(sched))
    }

    /// The first error the session's scheduler raised, once.
    pub fn take_error(&self) -> Option<String> {
        (self.link.lock().unwrap_or_else(|p| p.into_inner()).error).take()
    }
}

/// The plugin scheduler's properties as its last reply gave them.
#[derive(Debug, Default, Clone, PartialEq)]
struct SchedState {
    finished: bool,
    pending: bool,
    complete: bool,
    nodes: Vec<NodeKey>,
}

/// A Python plugin's scheduler as a [`Scheduling`]: every call a round trip to the session.
/// A failing call records the error (see [`SessionHooks::take_error`]) and disables the
/// scheduler.
pub struct SessionScheduler {
    hooks: SessionHooks,
    name: &'static str,
    state: SchedState,
    /// The collection last sent: the other nodes' (the same one) are not sent again.
    collection_sent: Option<Arc<Collection>>,
    failed: bool,
}

impl SessionScheduler {
    /// Calls `method` with `args`; pushes the actions its nodes recorded, returns its result.
    fn call(&mut self, method: &str, mut args: Value, out: &mut Vec<Action>) -> Option<Value> {
        if self.failed {
            return None;
        }
        if let Value::Object(m) = &mut args {
            m.insert("t".into(), json!("scheduling"));
            m.insert("m".into(), json!(method));
        }
        let done = (self.hooks.request(&args)).and_then(|r| Ok((actions(&r)?, r)));
        match done {
            Ok((actions, reply)) => {
                out.extend(actions);
                self.update(&reply);
                reply.get("result").cloned()
            }
            Err(e) => {
                self.failed = true;
                let mut link = self.hooks.link.lock().unwrap_or_else(|p| p.into_inner());
                (link.error).get_or_insert(format!("{}.{method}: {e}", self.name));
                None
            }
        }
    }

    fn update(&mut self, reply: &Value) {
        let Some(s) = reply.get("state") else {
            return;
        };
        let flag = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or(false);
        self.state = SchedState {
            finished: flag("finished"),
            pending: flag("pending"),
            complete: flag("complete"),
            nodes: (s
                .get("nodes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten())
            .filter_map(|k| Some(NodeKey(u32::try_from(k.as_u64()?).ok()?)))
            .collect(),
        };
    }
}

/// The actions a reply carries: `{"run": node, "indices": [...]}`, `{"steal": ...}`,
/// `{"shutdown": node}`.
fn actions(reply: &Value) -> Result<Vec<Action>, String> {
    let list = (reply.get("actions").and_then(Value::as_array)).map_or(&[][..], Vec::as_slice);
    list.iter().map(action).collect()
}

fn action(a: &Value) -> Result<Action, String> {
    let key = |k: &str| {
        let n = a.get(k)?.as_u64()?;
        Some(NodeKey(u32::try_from(n).ok()?))
    };
    let indices = || -> Result<Vec<usize>, String> {
        let list = a.get("indices").and_then(Value::as_array);
        (list.into_iter().flatten())
            .map(|i| i.as_u64().map(|i| i as usize).ok_or("a test index"))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{e} expected, got {a}"))
    };
    if let Some(node) = key("run") {
        return Ok(Action::Run {
            node,
            indices: indices()?,
        });
    }
    if let Some(node) = key("steal") {
        return Ok(Action::Steal {
            node,
            indices: indices()?,
        });
    }
    match key("shutdown") {
        Some(node) => Ok(Action::Shutdown { node }),
        None => Err(format!("unknown action {a}")),
    }
}

impl Scheduling for SessionScheduler {
    fn name(&self) -> &'static str {
        self.name
    }
    fn nodes(&self) -> Vec<NodeKey> {
        match self.failed {
            true => Vec::new(),
            false => self.state.nodes.clone(),
        }
    }
    fn collection_is_completed(&self) -> bool {
        self.failed || self.state.complete
    }
    fn tests_finished(&self) -> bool {
        self.failed || self.state.finished
    }
    fn has_pending(&self) -> bool {
        !self.failed && self.state.pending
    }
    fn add_node(&mut self, node: NodeKey, spec: &str) {
        self.add_worker(node, spec, &format!("gw{}", node.0));
    }
    fn add_worker(&mut self, node: NodeKey, spec: &str, workerid: &str) {
        let args = json!({"node": node.0, "id": workerid, "spec": spec});
        self.call("add_node", args, &mut Vec::new());
    }
    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        let same = (self.collection_sent.as_ref()).is_some_and(|c| Arc::ptr_eq(c, &collection));
        let args = match same {
            true => json!({"node": node.0}),
            false => json!({"node": node.0, "ids": collection.ids}),
        };
        self.collection_sent = Some(collection);
        self.call("add_node_collection", args, &mut Vec::new());
    }
    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        duration: f64,
        out: &mut Vec<Action>,
    ) {
        let args = json!({"node": node.0, "index": index, "duration": duration});
        self.call("mark_test_complete", args, out);
    }
    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        match self.call("mark_test_pending", json!({"index": index}), out) {
            Some(_) => Ok(()),
            None => Err(SchedError::Unsupported { mode: self.name }),
        }
    }
    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        let args = json!({"node": node.0, "indices": indices});
        self.call("remove_pending_tests_from_node", args, out);
        Ok(())
    }
    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        let result = self.call("remove_node", json!({"node": node.0}), out)?;
        result.as_u64().map(|i| i as usize)
    }
    fn schedule(&mut self, out: &mut Vec<Action>) {
        self.call("schedule", json!({}), out);
    }
    fn mark_node_shutdown(&mut self, node: NodeKey) {
        self.call(
            "mark_node_shutdown",
            json!({"node": node.0}),
            &mut Vec::new(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_from_a_reply() {
        let reply = json!({"actions": [
            {"run": 1, "indices": [3, 4]}, {"steal": 0, "indices": [2]}, {"shutdown": 1},
        ]});
        assert_eq!(
            actions(&reply),
            Ok(vec![
                Action::Run {
                    node: NodeKey(1),
                    indices: vec![3, 4]
                },
                Action::Steal {
                    node: NodeKey(0),
                    indices: vec![2]
                },
                Action::Shutdown { node: NodeKey(1) },
            ])
        );
        assert_eq!(actions(&json!({})), Ok(vec![]));
        assert!(actions(&json!({"actions": [{"run": 0, "indices": ["x"]}]})).is_err());
        assert!(actions(&json!({"actions": [{"jump": 0}]})).is_err());
    }

    #[test]
    fn error_replies_carry_the_traceback() {
        let e = answer(json!({"t": "error", "error": "Traceback...\nValueError: x\n"}));
        assert_eq!(e, Err("Traceback...\nValueError: x".to_string()));
        assert!(answer(json!({"t": "scheduled"})).is_ok());
    }
}
