//! Every hook observed firing through PluginHost with the right arguments, in the documented
//! order, with pluggy's first-result rules; the old-ABI plugin.
mod common;

use std::path::Path;

use common::{fixture, src};
use serde_json::{json, Value};
use xdist_plugin_api::host::{LoadOptions, PluginHost};
use xdist_plugin_api::xdist_sched::{Action, NodeKey, SchedConfig};
use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};

fn read_log(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn hooks_of(log: &[Value]) -> Vec<(String, String)> {
    log.iter()
        .map(|v| {
            (
                v["plugin"].as_str().unwrap_or("").to_owned(),
                v["hook"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn config() -> ConfigView {
    let mut options = serde_json::Map::new();
    options.insert("numprocesses".into(), json!("auto"));
    options.insert("dist".into(), json!("load"));
    ConfigView {
        options,
        args: vec!["-x".into(), "tests/".into()],
        rootdir: "/project".into(),
    }
}

fn node(id: &str) -> NodeView {
    let mut workerinput = serde_json::Map::new();
    workerinput.insert("workerid".into(), json!(id));
    workerinput.insert("workercount".into(), json!(2));
    NodeView {
        workerid: id.into(),
        spec: "popen".into(),
        workerinput,
        workerinfo: serde_json::Map::new(),
    }
}

#[test]
fn every_hook_fires_with_its_arguments_in_load_order() {
    let log = common::temp_file("hooks.jsonl");
    let a = fixture("recorder");
    let b = fixture("recorder_b");
    let logopt = |name: &str| format!("{name}.log={}", log.display());
    let host = PluginHost::load_with(
        &[src(&a), src(&b)],
        &LoadOptions {
            disabled: vec![],
            plugin_opts: vec![
                logopt("recorder"),
                logopt("recorder-b"),
                "recorder.extra=x".into(),
            ],
        },
    )
    .expect("load");

    // Listing: names, versions, hooks.
    let infos = host.plugins();
    assert_eq!(infos.len(), 2);
    assert_eq!(
        (infos[0].name.as_str(), infos[1].name.as_str()),
        ("recorder", "recorder-b")
    );
    assert_eq!(infos[0].version, "9.8.7");
    assert_eq!(infos[0].hooks.len(), 13);
    assert_eq!(infos[0].options.get("extra").map(String::as_str), Some("x"));
    // Deprecated rsync hooks give one warning per hook per plugin.
    assert_eq!(host.warnings().len(), 4);
    assert!(host.warnings()[0].contains("deprecated hook pytest_xdist_rsyncstart"));

    let ids = call_every_hook(&host);

    let entries = read_log(&log);
    let seq = hooks_of(&entries);
    let expected_hooks = [
        "configure",
        "setupnodes",
        "newgateway",
        "rsyncstart",
        "rsyncfinish",
        "configure_node",
        "testnodeready",
        "node_collection_finished",
        "getremotemodule",
        "auto_num_workers",
        "make_scheduler",
        "testnodedown",
        "sessionfinish",
    ];
    let mut expected = Vec::new();
    for h in expected_hooks {
        for p in ["recorder", "recorder-b"] {
            expected.push((p.to_owned(), h.to_owned()));
        }
    }
    // configure: both at load, in load order.
    assert_eq!(seq, expected);

    check_logged_arguments(&entries, &ids);
}

/// Calls every hook once, in a run's order, checking what the hooks return.
fn call_every_hook(host: &PluginHost) -> Vec<String> {
    let cfg = config();
    host.setupnodes(&cfg, &["popen".into(), "ssh=host".into()])
        .expect("setupnodes");
    let gw = GatewayView {
        id: "gw0".into(),
        spec: "popen".into(),
    };
    host.newgateway(&gw).expect("newgateway");
    host.rsyncstart("/src", std::slice::from_ref(&gw))
        .expect("rsyncstart");
    host.rsyncfinish("/src", std::slice::from_ref(&gw))
        .expect("rsyncfinish");
    let mut n = node("gw0");
    host.configure_node(&mut n).expect("configure_node");
    // Both plugins added keys; the reserved key they overwrote was restored.
    assert_eq!(n.workerinput["added_by_recorder"], json!(true));
    assert_eq!(n.workerinput["added_by_recorder-b"], json!(true));
    assert_eq!(n.workerinput["workerid"], json!("gw0"));
    n.workerinfo.insert("platform".into(), json!("linux"));
    host.testnodeready(&n).expect("ready");
    let ids = vec!["a.py::t1".to_owned(), "a.py::t2".to_owned()];
    host.node_collection_finished(&n, &ids).expect("collection");
    assert_eq!(host.getremotemodule().expect("remote"), None);
    assert_eq!(host.auto_num_workers(&cfg).expect("auto"), None);
    let sc = SchedConfig {
        num_nodes: 2,
        max_sched_chunk: Some(3),
        ..Default::default()
    };
    assert!(host
        .make_scheduler(&cfg, &sc)
        .expect("make_scheduler")
        .is_none());
    host.testnodedown(&n, Some("Not properly terminated"))
        .expect("down");
    let summary = host.sessionfinish(1).expect("sessionfinish");
    assert_eq!(
        summary,
        vec![
            (
                "recorder".to_owned(),
                "recorder saw exit status 1".to_owned()
            ),
            (
                "recorder-b".to_owned(),
                "recorder-b saw exit status 1".to_owned()
            ),
        ]
    );

    ids
}

/// What each hook was called with, as the recorder plugins logged it.
fn check_logged_arguments(entries: &[Value], ids: &[String]) {
    let find = |plugin: &str, hook: &str| -> &Value {
        entries
            .iter()
            .find(|v| v["plugin"] == plugin && v["hook"] == hook)
            .map(|v| &v["args"])
            .unwrap_or_else(|| panic!("{plugin}.{hook} not logged"))
    };
    assert_eq!(
        find("recorder", "configure")["options"]["extra"],
        json!("x")
    );
    assert!(find("recorder-b", "configure")["options"]
        .get("extra")
        .is_none());
    let s = find("recorder", "setupnodes");
    assert_eq!(s["specs"], json!(["popen", "ssh=host"]));
    assert_eq!(s["config"]["options"]["numprocesses"], json!("auto"));
    assert_eq!(s["config"]["args"], json!(["-x", "tests/"]));
    assert_eq!(s["config"]["rootdir"], json!("/project"));
    assert_eq!(
        find("recorder", "newgateway"),
        &json!({"id": "gw0", "spec": "popen"})
    );
    assert_eq!(
        find("recorder", "rsyncstart"),
        &json!({"source": "/src", "gateways": ["gw0"]})
    );
    // recorder-b sees recorder's addition (plugins run in order on the same node).
    let cn = find("recorder-b", "configure_node");
    assert_eq!(cn["node"]["workerinput"]["added_by_recorder"], json!(true));
    assert_eq!(cn["node"]["workerinput"]["workerid"], json!("gw0"));
    let ready = find("recorder", "testnodeready");
    assert_eq!(ready["node"]["workerinfo"]["platform"], json!("linux"));
    assert_eq!(ready["node"]["workerid"], json!("gw0"));
    assert_eq!(
        find("recorder", "node_collection_finished")["ids"],
        json!(ids)
    );
    let ms = find("recorder", "make_scheduler");
    assert_eq!(
        (ms["num_nodes"].clone(), ms["max_sched_chunk"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(
        find("recorder", "testnodedown")["error"],
        json!("Not properly terminated")
    );
    assert_eq!(find("recorder-b", "sessionfinish")["exitstatus"], json!(1));
}

/// Options for the two recorder plugins: both log to `log`, plus `extra`.
fn recorder_opts(log: &std::path::Path, extra: &[&str]) -> LoadOptions {
    LoadOptions {
        disabled: vec![],
        plugin_opts: [
            format!("recorder.log={}", log.display()),
            format!("recorder-b.log={}", log.display()),
        ]
        .into_iter()
        .chain(extra.iter().map(|s| s.to_string()))
        .collect(),
    }
}

#[test]
fn first_result_hooks_stop_at_the_first_answer() {
    let log = common::temp_file("first.jsonl");
    let a = fixture("recorder");
    let b = fixture("recorder_b");
    let opts = |extra: &[&str]| recorder_opts(&log, extra);
    let cfg = config();

    // Both answer: the first loaded wins, the second is not called.
    let host = PluginHost::load_with(
        &[src(&a), src(&b)],
        &opts(&[
            "recorder.auto=3",
            "recorder-b.auto=5",
            "recorder.remote=A",
            "recorder-b.remote=B",
        ]),
    )
    .expect("load");
    std::fs::remove_file(&log).ok();
    assert_eq!(host.auto_num_workers(&cfg).expect("auto"), Some(3));
    assert_eq!(
        host.getremotemodule().expect("remote").as_deref(),
        Some("A")
    );
    assert_eq!(
        hooks_of(&read_log(&log)),
        vec![
            ("recorder".to_owned(), "auto_num_workers".to_owned()),
            ("recorder".to_owned(), "getremotemodule".to_owned())
        ]
    );

    // Load order reversed: the other answer.
    let a2 = fixture("recorder");
    let b2 = fixture("recorder_b");
    let host = PluginHost::load_with(
        &[src(&b2), src(&a2)],
        &opts(&["recorder.auto=3", "recorder-b.auto=5"]),
    )
    .expect("load");
    assert_eq!(host.auto_num_workers(&cfg).expect("auto"), Some(5));
}

#[test]
fn first_result_hooks_fall_through_on_no_answer() {
    let log = common::temp_file("fallthrough.jsonl");
    let opts = |extra: &[&str]| recorder_opts(&log, extra);
    let cfg = config();
    // No answer (None) falls through to the next plugin.
    let a3 = fixture("recorder");
    let b3 = fixture("recorder_b");
    let host = PluginHost::load_with(
        &[src(&a3), src(&b3)],
        &opts(&[
            "recorder-b.auto=5",
            "recorder-b.sched=1",
            "recorder-b.handle-crash=1",
        ]),
    )
    .expect("load");
    std::fs::remove_file(&log).ok();
    assert_eq!(host.auto_num_workers(&cfg).expect("auto"), Some(5));
    let mut sched = host
        .make_scheduler(&cfg, &SchedConfig::default())
        .expect("make_scheduler")
        .expect("recorder-b answers");
    assert_eq!(sched.name(), "FifoScheduling");
    // The plugin scheduler works through the trait.
    sched.add_node(NodeKey(0), "popen");
    sched.add_node_collection(
        NodeKey(0),
        std::sync::Arc::new(xdist_plugin_api::xdist_sched::Collection {
            ids: vec!["a".into(), "b".into()],
            groups: vec![],
        }),
    );
    assert!(sched.collection_is_completed());
    let mut out = Vec::new();
    sched.schedule(&mut out);
    assert_eq!(
        out,
        vec![Action::Run {
            node: NodeKey(0),
            indices: vec![0, 1]
        }]
    );
    assert_eq!(sched.nodes(), vec![NodeKey(0)]);
    // handlecrashitem: recorder says no, recorder-b handles (its Fifo can't reschedule, so
    // the hook fails with the scheduler's message).
    let mut report = ReportView {
        nodeid: "a".into(),
        outcome: "failed".into(),
        when: "???".into(),
        ..Default::default()
    };
    let ids = vec!["a".to_owned(), "b".to_owned()];
    let e = host
        .handlecrashitem("a", &mut report, sched.as_mut(), &ids, &mut out)
        .expect_err("fifo cannot reschedule");
    assert!(
        e.to_string().contains("does not support rescheduling"),
        "{e}"
    );
    let seq = hooks_of(&read_log(&log));
    assert_eq!(
        seq,
        vec![
            ("recorder".to_owned(), "auto_num_workers".to_owned()),
            ("recorder-b".to_owned(), "auto_num_workers".to_owned()),
            ("recorder".to_owned(), "make_scheduler".to_owned()),
            ("recorder-b".to_owned(), "make_scheduler".to_owned()),
            ("recorder".to_owned(), "handlecrashitem".to_owned()),
            ("recorder-b".to_owned(), "handlecrashitem".to_owned()),
        ]
    );
}

#[test]
fn disabled_plugins_are_not_called() {
    let log = common::temp_file("disabled.jsonl");
    let a = fixture("recorder");
    let b = fixture("recorder_b");
    let host = PluginHost::load_with(
        &[src(&a), src(&b)],
        &LoadOptions {
            disabled: xdist_plugin_api::host::disabled_from_args(&["-p", "no:recorder", "-v"]),
            plugin_opts: vec![
                format!("recorder.log={}", log.display()),
                format!("recorder-b.log={}", log.display()),
            ],
        },
    )
    .expect("load");
    let names: Vec<_> = host.plugins().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, vec!["recorder-b"]);
    host.setupnodes(&config(), &[]).expect("setupnodes");
    let seq = hooks_of(&read_log(&log));
    assert!(seq.iter().all(|(p, _)| p == "recorder-b"), "{seq:?}");
}

#[test]
fn old_plugin_built_against_the_first_layout_still_loads() {
    let old = fixture("old_plugin");
    let host = PluginHost::load(&[src(&old)]).expect("old plugin loads");
    let info = &host.plugins()[0];
    assert_eq!(info.name, "old-plugin");
    assert_eq!(info.abi_revision, 0);
    // Only what it implements; the fields its layout lacks read as absent.
    assert_eq!(info.hooks, vec!["testnodeready", "auto_num_workers"]);
    assert!(host.warnings().is_empty());
    assert_eq!(host.auto_num_workers(&config()).expect("auto"), Some(7));
    host.testnodeready(&node("gw0")).expect("ready");
    assert_eq!(host.getremotemodule().expect("absent"), None);
    assert!(host.sessionfinish(0).expect("absent").is_empty());
    host.rsyncstart("/x", &[]).expect("absent");

    // Together with a current plugin: both work, in order.
    let log = common::temp_file("old.jsonl");
    let rec = fixture("recorder");
    let host = PluginHost::load_with(
        &[src(&old), src(&rec)],
        &LoadOptions {
            disabled: vec![],
            plugin_opts: vec![
                format!("recorder.log={}", log.display()),
                "recorder.auto=2".into(),
            ],
        },
    )
    .expect("old + new");
    assert_eq!(host.auto_num_workers(&config()).expect("auto"), Some(7));
    assert_eq!(host.sessionfinish(0).expect("finish").len(), 1);
}
