//! The real `.so` files built from `plugins/`, driven through PluginHost.
mod common;

use std::sync::Arc;

use common::{plugin, src};
use serde_json::Value;
use xdist_plugin_api::host::{LoadOptions, PluginHost};
use xdist_plugin_api::xdist_sched::{Action, Collection, NodeKey, SchedConfig, Scheduling};
use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};

fn load(lib: &str, opts: &[String]) -> PluginHost {
    PluginHost::load_with(
        &[src(&plugin(lib))],
        &LoadOptions {
            disabled: vec![],
            plugin_opts: opts.to_vec(),
        },
    )
    .unwrap_or_else(|e| panic!("load {lib}: {e}"))
}

fn ids() -> Vec<String> {
    [
        "test_a.py::test_1",
        "test_a.py::test_critical",
        "tests/slow/test_b.py::test_2",
        "test_c.py::test_3",
        "test_c.py::test_critical_too",
        "test_d.py::test_4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn priority_scheduler(host: &PluginHost, num_nodes: usize) -> Box<dyn Scheduling> {
    host.make_scheduler(
        &ConfigView::default(),
        &SchedConfig {
            num_nodes,
            ..Default::default()
        },
    )
    .expect("make_scheduler")
    .expect("priority-scheduler answers")
}

/// Run a whole simulated session: every node completes its first pending test in turn.
/// Returns the order in which tests started (a test starts when the node completes the one
/// before it, so "start order" = order of completion here).
fn drive(sched: &mut dyn Scheduling, nodes: &[NodeKey], coll: &Arc<Collection>) -> Vec<usize> {
    for &n in nodes {
        sched.add_node(n, "popen");
    }
    for &n in nodes {
        sched.add_node_collection(n, Arc::clone(coll));
    }
    assert!(sched.collection_is_completed());
    let mut out = Vec::new();
    sched.schedule(&mut out);
    let mut queues: std::collections::BTreeMap<NodeKey, std::collections::VecDeque<usize>> =
        Default::default();
    let mut started = Vec::new();
    let mut steps = 0;
    loop {
        for a in out.drain(..) {
            match a {
                Action::Run { node, indices } => queues.entry(node).or_default().extend(indices),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Complete the head of each node's queue, round robin.
        let mut any = false;
        for &n in nodes {
            if let Some(i) = queues.entry(n).or_default().pop_front() {
                started.push(i);
                sched.mark_test_complete(n, i, 0.1, &mut out);
                any = true;
            }
        }
        steps += 1;
        assert!(steps < 100, "no progress");
        if !any && out.is_empty() {
            break;
        }
    }
    assert!(sched.tests_finished());
    assert!(!sched.has_pending());
    started
}

#[test]
fn priority_scheduler_runs_matching_tests_first() {
    let host = load(
        "priority_scheduler",
        &["priority-scheduler.patterns=critical, tests/slow/*".into()],
    );
    assert_eq!(host.plugins()[0].hooks, vec!["make_scheduler"]);
    let mut sched = priority_scheduler(&host, 1);
    assert_eq!(sched.name(), "PriorityScheduling");
    let coll = Arc::new(Collection {
        ids: ids(),
        groups: vec![],
    });
    let order = drive(sched.as_mut(), &[NodeKey(0)], &coll);
    // critical (rank 0) in collection order, then tests/slow (rank 1), then the rest.
    assert_eq!(order, vec![1, 4, 2, 0, 3, 5]);

    // Two workers: the first two tests handed out are the two critical ones.
    let mut sched = priority_scheduler(&host, 2);
    sched.add_node(NodeKey(0), "popen");
    sched.add_node(NodeKey(1), "popen");
    sched.add_node_collection(NodeKey(0), Arc::clone(&coll));
    assert!(!sched.collection_is_completed());
    sched.add_node_collection(NodeKey(1), Arc::clone(&coll));
    let mut out = Vec::new();
    sched.schedule(&mut out);
    assert_eq!(
        out[..2],
        [
            Action::Run {
                node: NodeKey(0),
                indices: vec![1]
            },
            Action::Run {
                node: NodeKey(1),
                indices: vec![4]
            },
        ]
    );
    // Each worker holds at most two tests.
    assert_eq!(out.len(), 4);
    let order = {
        let mut s = priority_scheduler(&host, 2);
        drive(s.as_mut(), &[NodeKey(0), NodeKey(1)], &coll)
    };
    assert_eq!(order.len(), 6);
    assert_eq!(order[..2], [1, 4]);

    // A crashed node: its running test is returned, its queued one goes back to the front.
    out.clear();
    let running = sched.remove_node(NodeKey(0), &mut out);
    assert_eq!(running, Some(1));
    assert!(sched.has_pending());
    assert_eq!(sched.nodes(), vec![NodeKey(1)]);
    assert!(host.take_error().is_none());
}

#[test]
fn priority_scheduler_without_patterns_does_not_answer() {
    let host = load("priority_scheduler", &[]);
    assert!(host
        .make_scheduler(&ConfigView::default(), &SchedConfig::default())
        .expect("make_scheduler")
        .is_none());
    let e = PluginHost::load_with(
        &[src(&plugin("priority_scheduler"))],
        &LoadOptions {
            disabled: vec![],
            plugin_opts: vec!["priority-scheduler.patern=x".into()],
        },
    )
    .expect_err("typo in option");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("unknown option \"patern\""), "{e}");
}

/// The worker `node` crashes: its running test goes to crash-retry's `handlecrashitem`.
fn crash_running_test(
    host: &PluginHost,
    sched: &mut Box<dyn Scheduling>,
    node: NodeKey,
    ids: &[String],
) -> (ReportView, bool, Vec<Action>) {
    let mut out = Vec::new();
    let crashed = sched
        .remove_node(node, &mut out)
        .expect("a test was running");
    assert_eq!(crashed, 0);
    let mut report = ReportView {
        nodeid: ids[crashed].clone(),
        outcome: "failed".into(),
        longrepr: format!(
            "worker 'gw{}' crashed while running '{}'",
            node.0, ids[crashed]
        ),
        when: "???".into(),
        duration: 0.0,
        worker: format!("gw{}", node.0),
    };
    let handled = host
        .handlecrashitem(&ids[crashed], &mut report, sched.as_mut(), ids, &mut out)
        .expect("handlecrashitem");
    (report, handled, out)
}

/// A replacement worker joins with the same collection; what the scheduler sends.
fn join_replacement(sched: &mut Box<dyn Scheduling>, node: NodeKey, ids: &[String]) -> Vec<Action> {
    sched.add_node(node, "popen");
    sched.add_node_collection(
        node,
        Arc::new(Collection {
            ids: ids.to_vec(),
            groups: vec![],
        }),
    );
    let mut out = Vec::new();
    sched.schedule(&mut out);
    out
}

#[test]
fn crash_retry_reschedules_via_mark_test_pending() {
    let host = load("crash_retry", &["crash-retry.max-reruns=2".into()]);
    // The live scheduler: the priority scheduler plugin (any Scheduling works).
    let prio = load(
        "priority_scheduler",
        &["priority-scheduler.patterns=zzz".into()],
    );
    let mut sched = priority_scheduler(&prio, 1);
    let ids = ids();
    let coll = Arc::new(Collection {
        ids: ids.clone(),
        groups: vec![],
    });
    sched.add_node(NodeKey(0), "popen");
    sched.add_node_collection(NodeKey(0), coll);
    let mut out = Vec::new();
    sched.schedule(&mut out);
    assert_eq!(out.len(), 2);

    // Crash 1 and 2: rerun (test 0 goes back to the front of the queue).
    for attempt in 1..=2u32 {
        let (report, handled, _) =
            crash_running_test(&host, &mut sched, NodeKey(attempt - 1), &ids);
        assert!(handled);
        assert_eq!(report.outcome, "rerun");
        assert!(
            report.longrepr.contains(&format!("rerun {attempt}/2")),
            "{}",
            report.longrepr
        );
        // A replacement worker joins and gets the rescheduled test first.
        let node = NodeKey(attempt);
        let out = join_replacement(&mut sched, node, &ids);
        assert_eq!(
            out.first(),
            Some(&Action::Run {
                node,
                indices: vec![0]
            }),
            "{out:?}"
        );
    }
    // Crash 3: not rerun again, reported as the failure it is.
    let (report, handled, out) = crash_running_test(&host, &mut sched, NodeKey(2), &ids);
    assert!(!handled);
    assert_eq!(report.outcome, "failed");
    assert!(
        report.longrepr.contains("crashed 3 times, not rerun again"),
        "{}",
        report.longrepr
    );
    assert!(out
        .iter()
        .all(|a| !matches!(a, Action::Run { indices, .. } if indices.contains(&0))));
}

#[test]
fn node_lifecycle_prints_a_table_and_writes_json() {
    let out = common::temp_file("lifecycle.json");
    let host = load(
        "node_lifecycle",
        &[format!("node-lifecycle.output={}", out.display())],
    );
    assert_eq!(
        host.plugins()[0].hooks,
        vec![
            "setupnodes",
            "newgateway",
            "configure_node",
            "testnodeready",
            "testnodedown",
            "node_collection_finished",
            "sessionfinish"
        ]
    );
    host.setupnodes(&ConfigView::default(), &["popen".into(), "popen".into()])
        .expect("setupnodes");
    for id in ["gw0", "gw1"] {
        host.newgateway(&GatewayView {
            id: id.into(),
            spec: "popen".into(),
        })
        .expect("newgateway");
        let mut node = NodeView {
            workerid: id.into(),
            spec: "popen".into(),
            ..Default::default()
        };
        host.configure_node(&mut node).expect("configure_node");
        host.testnodeready(&node).expect("ready");
        host.node_collection_finished(&node, &["t1".into(), "t2".into(), "t3".into()])
            .expect("collected");
        let err = (id == "gw1").then_some("Not properly terminated");
        host.testnodedown(&node, err).expect("down");
    }
    let summary = host.sessionfinish(1).expect("sessionfinish");
    assert_eq!(summary.len(), 1);
    let (name, table) = &summary[0];
    assert_eq!(name, "node-lifecycle");
    assert!(table.starts_with("worker "), "{table}");
    assert!(table.contains("gw0") && table.contains("gw1"), "{table}");
    assert!(table.contains("Not properly terminated"), "{table}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&out).expect("json written"))
        .expect("valid json");
    assert_eq!(json["exitstatus"], 1);
    let workers = json["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    for w in workers {
        let t = |k: &str| {
            w[k].as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {w}"))
        };
        assert!(t("newgateway") <= t("configure_node"));
        assert!(t("configure_node") <= t("ready"));
        assert!(t("ready") <= t("collection_finished"));
        assert!(t("collection_finished") <= t("down"));
        assert_eq!(w["collected"], 3);
    }
    assert_eq!(workers[1]["error"], "Not properly terminated");
    assert!(workers[0]["error"].is_null());
}

#[test]
fn auto_workers_from_memory_and_cpu_quota() {
    let dir = common::temp_file("auto");
    std::fs::create_dir_all(&dir).expect("dir");
    let meminfo = dir.join("meminfo");
    std::fs::write(&meminfo, "MemTotal: 8000000 kB\nMemAvailable: 3145728 kB\n").expect("write");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = |extra: &[String]| {
        let mut v = vec![format!("auto-workers.meminfo={}", meminfo.display())];
        v.extend(extra.iter().cloned());
        v
    };
    // 3 GiB available / 1024 MiB = 3 workers, bounded by the CPUs.
    let host = load(
        "auto_workers",
        &opts(&[
            "auto-workers.mb-per-worker=1024".into(),
            format!("auto-workers.cgroup-root={}", dir.display()),
        ]),
    );
    assert_eq!(
        host.auto_num_workers(&ConfigView::default()).expect("auto"),
        Some(3.min(cpus))
    );
    // Memory for only a fraction of a worker: still 1.
    let host = load(
        "auto_workers",
        &opts(&["auto-workers.mb-per-worker=100000".into()]),
    );
    assert_eq!(
        host.auto_num_workers(&ConfigView::default()).expect("auto"),
        Some(1)
    );
    // A cgroup v2 quota of 1.5 CPUs rounds up to 2 (and never exceeds the CPUs we have).
    std::fs::write(dir.join("cpu.max"), "150000 100000\n").expect("write");
    let host = load(
        "auto_workers",
        &opts(&[
            "auto-workers.mb-per-worker=1".into(),
            format!("auto-workers.cgroup-root={}", dir.display()),
        ]),
    );
    assert_eq!(
        host.auto_num_workers(&ConfigView::default()).expect("auto"),
        Some(2.min(cpus))
    );
    // `max` caps; a bad value is a usage error naming the key.
    let host = load(
        "auto_workers",
        &opts(&[
            "auto-workers.mb-per-worker=1".into(),
            "auto-workers.max=1".into(),
        ]),
    );
    assert_eq!(
        host.auto_num_workers(&ConfigView::default()).expect("auto"),
        Some(1)
    );
    let e = PluginHost::load_with(
        &[src(&plugin("auto_workers"))],
        &LoadOptions {
            disabled: vec![],
            plugin_opts: vec!["auto-workers.mb-per-worker=lots".into()],
        },
    )
    .expect_err("bad value");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains("mb-per-worker"), "{e}");
}
