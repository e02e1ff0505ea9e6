//! A deterministic, randomised simulator of a controller and its workers, for testing any
//! [`Scheduling`] implementation (the built-in ones, or a plugin's) without Python.
//!
//! Workers follow the real worker protocol: commands arrive in order; a worker takes the next
//! test off its queue and runs it only once it also holds the following one or has been told
//! to shut down; steal requests are answered from the queue (all-or-none, partially, or not at
//! all); events travel back in order. Which worker moves next, and when a worker crashes, is
//! drawn from a seeded generator, so every interleaving is reproducible. The simulated
//! controller behaves like pytest-xdist's `DSession`: it schedules once collection completes,
//! reschedules when a replacement has collected, shuts every node down once
//! [`Scheduling::tests_finished`] is true, and replaces each crashed worker with a new node of
//! the same spec (optionally re-pending the crashed test, as a `pytest_handlecrashitem` plugin
//! would).
//!
//! The simulator fails (returns `Err`) when the scheduler emits an action for a node after its
//! `Shutdown` or after it was removed, when the run gets stuck, or when it does not end.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::{Action, Collection, NodeKey, Scheduling};

/// How workers answer steal requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StealAnswer {
    /// pytest-xdist >= 3.7: give back every requested test, or none if one already started.
    AllOrNone,
    /// Older workers: give back the requested tests still queued.
    Partial,
    /// Each answer drawn at random: all-or-none, a random part of the queued ones, or nothing.
    Random,
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    /// Workers started (`SchedConfig::num_nodes` must match).
    pub num_nodes: usize,
    /// Distinct `--tx` spec per initial worker (replacements inherit it).
    pub distinct_specs: bool,
    /// Crashes to inject at random moments (each crashed worker is replaced).
    pub crashes: usize,
    /// Chance, per step, of injecting a crash while some are left (per mille).
    pub crash_per_mille: u32,
    /// Re-pend crashed tests with `mark_test_pending` (each with probability 1/2).
    pub repend_crashes: bool,
    pub steal_answer: StealAnswer,
    /// Give up after this many steps.
    pub max_steps: usize,
    /// Keep a log of every scheduler call and action, appended to the error on failure.
    pub trace: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 1,
            num_nodes: 2,
            distinct_specs: false,
            crashes: 0,
            crash_per_mille: 20,
            repend_crashes: false,
            steal_answer: StealAnswer::AllOrNone,
            max_steps: 10_000_000,
            trace: false,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Every completed test with the node that ran it, in completion order.
    pub completions: Vec<(usize, NodeKey)>,
    /// Tests reported as crashed (returned by `remove_node`), with the node.
    pub crashes: Vec<(usize, NodeKey)>,
    /// Crashed tests that were re-pended with `mark_test_pending`.
    pub repended: Vec<usize>,
    /// Initial worker number ("lineage") of every node, replacements included.
    pub lineage: Vec<(NodeKey, usize)>,
    /// Steal requests the scheduler emitted.
    pub steals: usize,
    pub steps: usize,
}

enum Ev {
    Collected,
    Complete(usize),
    Stolen(Vec<usize>),
    Finished,
}

struct Worker {
    key: NodeKey,
    spec: String,
    alive: bool,
    inbox: VecDeque<Action>,
    queue: VecDeque<usize>,
    current: Option<usize>,
    shutdown: bool,
    finished: bool,
    outbox: VecDeque<Ev>,
}

impl Worker {
    fn new(key: NodeKey, spec: String) -> Worker {
        Worker {
            key,
            spec,
            alive: true,
            inbox: VecDeque::new(),
            queue: VecDeque::new(),
            current: None,
            shutdown: false,
            finished: false,
            outbox: VecDeque::from([Ev::Collected]),
        }
    }

    fn can_progress(&self) -> bool {
        match self.current {
            None => !self.queue.is_empty() || (self.shutdown && !self.finished),
            Some(_) => !self.queue.is_empty() || self.shutdown,
        }
    }
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

struct Sim<'a> {
    sched: &'a mut dyn Scheduling,
    coll: Arc<Collection>,
    opts: SimOptions,
    rng: Rng,
    workers: Vec<Worker>,
    shut: HashSet<NodeKey>,
    next_key: u32,
    crashes_left: usize,
    report: SimReport,
    log: Vec<String>,
}

impl Sim<'_> {
    fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            self.log.push(what());
        }
    }

    fn worker(&mut self, key: NodeKey) -> Option<&mut Worker> {
        self.workers.iter_mut().find(|w| w.key == key && w.alive)
    }

    /// Deliver the scheduler's actions, then shut everything down if tests are finished.
    fn apply(&mut self, out: Vec<Action>) -> Result<(), String> {
        let n = self.coll.len();
        for a in out {
            self.trace(|| format!("  -> {a:?}"));
            let key = match &a {
                Action::Run { node, indices } => {
                    if indices.is_empty() {
                        return Err(format!("empty Run for {node:?}"));
                    }
                    if let Some(bad) = indices.iter().find(|&&i| i >= n) {
                        return Err(format!("Run of unknown test {bad}"));
                    }
                    *node
                }
                Action::Steal { node, .. } => {
                    self.report.steals += 1;
                    *node
                }
                Action::Shutdown { node } => *node,
            };
            if self.shut.contains(&key) {
                return Err(format!("action after Shutdown: {a:?}"));
            }
            if matches!(a, Action::Shutdown { .. }) {
                self.shut.insert(key);
            }
            match self.worker(key) {
                Some(w) => w.inbox.push_back(a),
                None => return Err(format!("action for a removed node: {a:?}")),
            }
        }
        if self.sched.tests_finished() {
            let keys: Vec<NodeKey> = self
                .workers
                .iter()
                .filter(|w| w.alive && !self.shut.contains(&w.key))
                .map(|w| w.key)
                .collect();
            for k in keys {
                self.shut.insert(k);
                self.sched.mark_node_shutdown(k);
                if let Some(w) = self.worker(k) {
                    w.inbox.push_back(Action::Shutdown { node: k });
                }
            }
        }
        Ok(())
    }

    fn add_worker(&mut self, spec: String, lineage: usize) {
        let key = NodeKey(self.next_key);
        self.next_key += 1;
        self.sched.add_node(key, &spec);
        self.workers.push(Worker::new(key, spec));
        self.report.lineage.push((key, lineage));
    }

    fn lineage_of(&self, key: NodeKey) -> usize {
        self.report
            .lineage
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, l)| *l)
    }

    /// The controller handles one event from worker `wi`.
    fn handle(&mut self, wi: usize, ev: Ev) -> Result<(), String> {
        let key = self.workers[wi].key;
        let mut out = Vec::new();
        self.trace(|| {
            let what = match &ev {
                Ev::Collected => "collected".to_string(),
                Ev::Complete(i) => format!("complete {i}"),
                Ev::Stolen(v) => format!("stolen {v:?}"),
                Ev::Finished => "finished".to_string(),
            };
            format!("{key:?} {what}")
        });
        match ev {
            Ev::Collected => {
                self.sched.add_node_collection(key, self.coll.clone());
                if self.sched.collection_is_completed() {
                    self.sched.schedule(&mut out);
                }
            }
            Ev::Complete(i) => {
                self.report.completions.push((i, key));
                let duration = (self.rng.below(300) as f64) / 1000.0;
                self.sched.mark_test_complete(key, i, duration, &mut out);
            }
            Ev::Stolen(indices) => {
                self.sched
                    .remove_pending_tests_from_node(key, &indices, &mut out)
                    .map_err(|e| format!("remove_pending_tests_from_node: {e}"))?;
            }
            Ev::Finished => {
                self.workers[wi].alive = false;
                if let Some(i) = self.sched.remove_node(key, &mut out) {
                    return Err(format!(
                        "{key:?} exited normally but the scheduler says it was running {i}"
                    ));
                }
            }
        }
        self.apply(out)
    }

    fn crash(&mut self, wi: usize) -> Result<(), String> {
        // Events sent before the crash still arrive.
        while let Some(ev) = self.workers[wi].outbox.pop_front() {
            if matches!(ev, Ev::Finished) {
                // It exited cleanly after all; not a crash.
                return self.handle(wi, ev);
            }
            self.handle(wi, ev)?;
        }
        let key = self.workers[wi].key;
        self.workers[wi].alive = false;
        self.crashes_left -= 1;
        let mut out = Vec::new();
        let crash = self.sched.remove_node(key, &mut out);
        self.trace(|| format!("{key:?} crashed: crash item {crash:?}"));
        self.apply(out)?;
        if let Some(c) = crash {
            self.report.crashes.push((c, key));
            if self.opts.repend_crashes && self.rng.below(2) == 0 {
                let mut out = Vec::new();
                if self.sched.mark_test_pending(c, &mut out).is_ok() {
                    self.report.repended.push(c);
                }
                self.apply(out)?;
            }
        }
        let spec = self.workers[wi].spec.clone();
        let lineage = self.lineage_of(key);
        self.add_worker(spec, lineage);
        Ok(())
    }

    fn deliver(&mut self, wi: usize) {
        let answer = self.opts.steal_answer;
        let Some(cmd) = self.workers[wi].inbox.pop_front() else {
            return;
        };
        let pick = self.rng.below(3);
        let coin = self.rng.next();
        let w = &mut self.workers[wi];
        match cmd {
            Action::Run { indices, .. } => w.queue.extend(indices),
            Action::Shutdown { .. } => w.shutdown = true,
            Action::Steal { indices, .. } => {
                let present: Vec<usize> = indices
                    .iter()
                    .copied()
                    .filter(|i| w.queue.contains(i))
                    .collect();
                let mode = match answer {
                    StealAnswer::Random => pick,
                    StealAnswer::AllOrNone => 0,
                    StealAnswer::Partial => 1,
                };
                let give: Vec<usize> = match mode {
                    0 if present.len() == indices.len() => present,
                    0 => Vec::new(),
                    1 => present
                        .into_iter()
                        .enumerate()
                        .filter(|(k, _)| answer != StealAnswer::Random || coin >> (k % 64) & 1 == 1)
                        .map(|(_, i)| i)
                        .collect(),
                    _ => Vec::new(),
                };
                let set: HashSet<usize> = give.iter().copied().collect();
                w.queue.retain(|i| !set.contains(i));
                w.outbox.push_back(Ev::Stolen(give));
            }
        }
    }

    fn progress(&mut self, wi: usize) {
        let w = &mut self.workers[wi];
        match w.current {
            None => {
                if let Some(i) = w.queue.pop_front() {
                    w.current = Some(i);
                } else if w.shutdown && !w.finished {
                    w.finished = true;
                    w.outbox.push_back(Ev::Finished);
                }
            }
            Some(i) => {
                if !w.queue.is_empty() || w.shutdown {
                    w.current = None;
                    w.outbox.push_back(Ev::Complete(i));
                }
            }
        }
    }

    fn run(&mut self) -> Result<(), String> {
        for l in 0..self.opts.num_nodes {
            let spec = if self.opts.distinct_specs {
                format!("popen//id=w{l}")
            } else {
                "popen".to_string()
            };
            self.add_worker(spec, l);
        }
        let mut ops: Vec<(usize, u8)> = Vec::new();
        loop {
            self.report.steps += 1;
            if self.report.steps > self.opts.max_steps {
                return Err("the run did not end".into());
            }
            let alive: Vec<usize> = (0..self.workers.len())
                .filter(|&i| self.workers[i].alive)
                .collect();
            if alive.is_empty() {
                break;
            }
            if self.crashes_left > 0 && (self.rng.below(1000) as u32) < self.opts.crash_per_mille {
                let wi = alive[self.rng.below(alive.len())];
                self.crash(wi)?;
                continue;
            }
            ops.clear();
            for &wi in &alive {
                let w = &self.workers[wi];
                if !w.inbox.is_empty() {
                    ops.push((wi, 0));
                }
                if w.can_progress() {
                    ops.push((wi, 1));
                }
                if !w.outbox.is_empty() {
                    ops.push((wi, 2));
                }
            }
            if ops.is_empty() {
                let state: Vec<String> = alive
                    .iter()
                    .map(|&i| {
                        let w = &self.workers[i];
                        format!(
                            "{:?}: current {:?} queue {:?} shutdown {}",
                            w.key, w.current, w.queue, w.shutdown
                        )
                    })
                    .collect();
                return Err(format!("stuck: {}", state.join("; ")));
            }
            let (wi, op) = ops[self.rng.below(ops.len())];
            match op {
                0 => self.deliver(wi),
                1 => self.progress(wi),
                _ => {
                    if let Some(ev) = self.workers[wi].outbox.pop_front() {
                        self.handle(wi, ev)?;
                    }
                }
            }
        }
        if self.sched.has_pending() {
            return Err("all workers exited but tests are still pending".into());
        }
        if !self.sched.tests_finished() {
            return Err("all workers exited but tests_finished() is false".into());
        }
        Ok(())
    }
}

/// Run `collection` through `sched` with simulated workers. The scheduler must be fresh and
/// configured for `opts.num_nodes` nodes.
pub fn simulate(
    sched: &mut dyn Scheduling,
    collection: Arc<Collection>,
    opts: &SimOptions,
) -> Result<SimReport, String> {
    let mut sim = Sim {
        sched,
        coll: collection,
        rng: Rng(opts.seed),
        opts: opts.clone(),
        workers: Vec::new(),
        shut: HashSet::new(),
        next_key: 0,
        crashes_left: opts.crashes,
        report: SimReport::default(),
        log: Vec::new(),
    };
    if let Err(e) = sim.run() {
        if sim.opts.trace {
            return Err(format!("{e}\n{}", sim.log.join("\n")));
        }
        return Err(e);
    }
    Ok(sim.report)
}
