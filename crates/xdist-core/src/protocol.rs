//! The controller/worker protocol: the messages each side sends, as JSON inside frames.
//!
//! Session shape (one channel per worker):
//! 1. controller -> worker: frame 0 is the Python worker code itself (raw UTF-8), executed by
//!    a one-line bootstrap, so nothing has to be installed where the worker runs;
//! 2. controller -> worker: frame 1 is a [`Bootstrap`] (JSON) carrying [`PROTOCOL_VERSION`];
//! 3. worker -> controller: batches (JSON arrays) of [`WorkerEvent`]s, the first of which is
//!    `ready` (echoing the protocol version) or `fatal`;
//! 4. controller -> worker: batches (JSON arrays) of [`Command`]s.
//!
//! Batching is what keeps per-test cost low: a worker flushes its batch when it is about to
//! wait for work, when the batch is large, or after a short interval.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Bumped on any incompatible change of the messages below.
pub const PROTOCOL_VERSION: u32 = 1;

/// Everything a worker needs to start its pytest session (controller -> worker, frame 1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bootstrap {
    pub protocol: u32,
    /// `config.workerinput`: `workerid`, `workercount`, `testrunuid`, `mainargv`, plus any
    /// keys plugins add.
    pub workerinput: Map<String, Value>,
    /// pytest arguments, as the user gave them (xdist's own options removed).
    pub args: Vec<String>,
    /// `--basetemp` for this worker (`<run basetemp>/popen-gwN`), when known.
    pub basetemp: Option<String>,
    /// `--dist` mode, so the worker knows whether to compute `xdist_group` metadata.
    pub dist: String,
    /// Whether the worker should render text with ANSI colors.
    pub color: bool,
    /// Terminal width the controller renders at; workers render failure text to fit it.
    pub width: usize,
    /// Send header lines (platform, rootdir, plugins...) in `ready`.
    pub want_header: bool,
    /// Extra sys.path entries to append (the xdist stand-in module lives in the worker code).
    #[serde(default)]
    pub sys_path: Vec<String>,
    /// Send the extra report data file reporters need (`--junitxml`, `--report-log`): the
    /// worker also turns this on by itself when its pytest config names such a file.
    #[serde(default)]
    pub want_files: bool,
    /// A remote worker (`ssh=`, `socket=`, or `chdir=`): its working directory goes first on
    /// `sys.path` and `PYTHONPATH`, as pytest-xdist does for non-popen gateways.
    #[serde(default)]
    pub remote: bool,
    /// A controller session gave this `workerinput` (see xdist-cli's `controller_session`):
    /// a key still missing is an error, not a reason to start one.
    #[serde(default)]
    pub controller_session: bool,
}

/// Controller -> worker commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Command {
    /// Append these collection indices to the run queue.
    Run { indices: Vec<usize> },
    /// Remove these indices from the queue if *all* are still queued; answer `unscheduled`.
    Steal { indices: Vec<usize> },
    /// Run what is queued, then end the session.
    Shutdown,
    /// Drop everything queued, finish the running test, end the session (`-x`, Ctrl-C).
    Stop,
    /// Write every thread's Python stack to stderr now (the reader thread does it, so a hung
    /// test does not stop it): `--hang-timeout` for workers xdist cannot signal (ssh, socket).
    DumpStacks,
    /// Like `shutdown` for the tests, but then answer `lingering` and keep the session
    /// open for `summarize` until `shutdown` (one worker, when `summary_plugins` exist).
    Linger,
    /// Run the `summary_plugins`' `pytest_terminal_summary` hooks over these serialized
    /// reports (the whole run's); answer `summary`.
    Summarize {
        /// `{"w": worker id, "r": pytest_report_to_serializable JSON}` of each report.
        reports: Vec<String>,
        /// Each worker's `workerinfo` by id (pytest-xdist's `report.node.workerinfo`).
        #[serde(default)]
        workerinfo: Map<String, Value>,
        /// Each warning's `WarningRecord::summary`.
        #[serde(default)]
        warnings: Vec<String>,
        exitstatus: i32,
    },
}

/// `sys.version` and friends, as pytest-xdist's `workerinfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub version: String,
    pub version_info: Vec<Value>,
    pub sysplatform: String,
    pub platform: String,
    pub executable: String,
    pub cwd: String,
    pub pid: u32,
    pub pytest_version: String,
    /// `config.rootpath` of the worker.
    pub rootdir: String,
}

/// One pytest report as the controller needs it. The worker does everything that needs
/// pytest objects (teststatus hooks, traceback rendering with the user's `--tb`, location
/// lines) and sends the resulting text, so the controller reproduces pytest's terminal
/// output without Python.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// Collection index of the item (absent for collection reports).
    #[serde(default, rename = "i")]
    pub index: Option<usize>,
    /// Node id; absent when equal to the collected id at `index`.
    #[serde(default)]
    pub nodeid: Option<String>,
    /// `setup`, `call`, `teardown` or `collect`.
    #[serde(rename = "w")]
    pub when: String,
    /// `passed`, `failed`, `skipped` (after teststatus hooks ran).
    #[serde(rename = "o")]
    pub outcome: String,
    /// Stats category from `pytest_report_teststatus` (`passed`, `error`, `xfailed`, ``...).
    #[serde(default, rename = "c")]
    pub category: String,
    #[serde(default, rename = "l")]
    pub letter: String,
    #[serde(default, rename = "W")]
    pub word: String,
    /// Markup for the word (e.g. `{"green": true}`); the controller derives it when absent.
    #[serde(default, rename = "m")]
    pub markup: Option<Map<String, Value>>,
    /// Seconds.
    #[serde(default, rename = "d")]
    pub duration: f64,
    /// `-v` location line (`test_a.py::test_x `).
    #[serde(default)]
    pub loc: Option<String>,
    /// Failure/error headline (`rep.head_line`).
    #[serde(default)]
    pub head: Option<String>,
    /// Rendered body for the FAILURES/ERRORS/PASSES sections (traceback + captured output).
    #[serde(default)]
    pub body: Option<String>,
    /// Rendered `print_teardown_sections` text of a teardown report.
    #[serde(default)]
    pub tds: Option<String>,
    /// Short test summary line for `-r` (`FAILED path::test - msg`), pre-rendered.
    #[serde(default)]
    pub short: Option<String>,
    /// Skip location for folded `SKIPPED [N] file:line: reason` lines: (path, line, reason).
    #[serde(default)]
    pub skip: Option<(String, Option<u64>, String)>,
    /// `wasxfail` reason, for xfail/xpass lines.
    #[serde(default)]
    pub xfail: Option<String>,
    /// `longreprtext` (plain), for file reporters.
    #[serde(default)]
    pub text: Option<String>,
    /// Captured sections `(name, content)`, for file reporters.
    #[serde(default)]
    pub sections: Vec<(String, String)>,
    /// False for reports that must not count in the summary line (`count_towards_summary`).
    #[serde(default = "yes", rename = "cts")]
    pub counts: bool,
    /// `rep.location`: (fspath, lineno, domain).
    #[serde(default)]
    pub location: Option<(String, Option<u64>, String)>,
    /// `--tb=line`: pytest's crash line (`path:line: message`).
    #[serde(default)]
    pub crashline: Option<String>,
    // -- sent only when file reporters want them (`Bootstrap::want_files`) ---------------
    /// `longrepr.reprcrash.message`, when the longrepr has one.
    #[serde(default)]
    pub crash: Option<String>,
    /// `str(rep.longrepr)` of a failed report or a skipped collect report.
    #[serde(default)]
    pub lr: Option<String>,
    /// A skip's raw `longrepr` tuple `(path, lineno, reason)`.
    #[serde(default)]
    pub lrt: Option<(String, Option<i64>, String)>,
    /// `rep.user_properties`, values as `str()`.
    #[serde(default)]
    pub props: Vec<(String, String)>,
    /// `pytest_report_to_serializable(report)` as pytest-reportlog encodes it (one JSON
    /// text, kept verbatim), for `--report-log`.
    #[serde(default)]
    pub ser: Option<String>,
    /// Node ids a passing collect report collected; such reports are sent only for nodes
    /// the `lastfailed` cache names (pytest's LFPlugin replaces the node by its items).
    #[serde(default)]
    pub result: Vec<String>,
}

fn yes() -> bool {
    true
}

/// pytest's parsed options that shape the terminal output, as the worker's pytest resolved
/// them (command line, `addopts`, ini files, plugins). The controller never re-parses them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ReportOptions {
    pub verbose: i32,
    pub reportchars: String,
    pub tbstyle: String,
    pub showcapture: String,
    pub foldskipped: bool,
    pub xfail_tb: bool,
    /// `progress`, `count`, `times`, or empty (no progress column).
    pub progress: String,
    pub maxfail: u64,
    pub no_summary: bool,
    pub no_header: bool,
    pub continue_on_collection_errors: bool,
    pub capture: String,
    pub durations: Option<u64>,
    pub durations_min: Option<f64>,
    pub startpath: String,
    pub inipath: Option<String>,
    pub cache_dir: Option<String>,
    /// `--junitxml`, absolute and normalized as pytest's `LogXML` does.
    pub xmlpath: Option<String>,
    pub junitprefix: Option<String>,
    pub junit_suite_name: String,
    pub junit_logging: String,
    pub junit_log_passing_tests: bool,
    pub junit_duration_report: String,
    pub junit_family: String,
    /// `--report-log` as given.
    pub report_log: Option<String>,
    pub pytest_version: String,
    /// The pytest-randomly seed the controller chose (handed back from `workerinput`) when
    /// the plugin is active, for the cache's `randomly_seed` (`--randomly-seed=last`).
    pub randomly_seed: Option<u64>,
    /// Failures and errors are printed as they happen (`--instafail`, by the controller
    /// session): no FAILURES or ERRORS section at the end, as pytest-instafail's reporter.
    pub failures_shown_live: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            verbose: 0,
            reportchars: "fE".into(),
            tbstyle: "auto".into(),
            showcapture: "all".into(),
            foldskipped: true,
            xfail_tb: false,
            progress: "progress".into(),
            maxfail: 0,
            no_summary: false,
            no_header: false,
            continue_on_collection_errors: false,
            capture: "fd".into(),
            durations: None,
            durations_min: None,
            startpath: String::new(),
            inipath: None,
            cache_dir: None,
            xmlpath: None,
            junitprefix: None,
            junit_suite_name: "pytest".into(),
            junit_logging: "no".into(),
            junit_log_passing_tests: true,
            junit_duration_report: "total".into(),
            junit_family: "xunit2".into(),
            report_log: None,
            pytest_version: String::new(),
            randomly_seed: None,
            failures_shown_live: false,
        }
    }
}

/// A warning recorded by a worker (`pytest_warning_recorded`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarningRecord {
    /// `warning_record_to_str` output.
    pub message: String,
    /// `WarningReport.get_location` (node id or `path:line`), if any.
    pub location: Option<String>,
    /// `config`, `collect` or `runtest`.
    pub when: String,
    pub nodeid: String,
    /// pytest-reportlog's `WarningMessage` line (JSON text), sent only for `--report-log`.
    #[serde(default, rename = "rl")]
    pub reportlog: Option<String>,
    /// What the summary step needs to rebuild the warning (JSON text), sent only for it.
    #[serde(default, rename = "sw")]
    pub summary: Option<String>,
}

/// Worker -> controller events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The session started (`workerready`).
    Ready {
        protocol: u32,
        info: WorkerInfo,
        #[serde(default)]
        header: Vec<String>,
        #[serde(default)]
        options: ReportOptions,
        /// Plugins and initial conftests with a `pytest_terminal_summary` the controller
        /// does not render itself: the summary step runs them over every report, and the
        /// worker sends each report serialized (`Report::ser`) for it.
        #[serde(default)]
        summary_plugins: Vec<String>,
        /// Plugins that act only on pytest-xdist's controller and that this run turns on
        /// (pytest-html's `--html`, ...): the summary step replays the run for them, and
        /// the worker sends every report serialized, passing setup/teardown ones too.
        #[serde(default)]
        controller_plugins: Vec<String>,
        /// Why the run needs a pytest process playing pytest-xdist's controller from its
        /// start (plugins' `pytest_configure_node`, conftests' controller-side session
        /// hooks): the controller then starts over with one.
        #[serde(default)]
        controller_reasons: Vec<String>,
        /// Native id of the worker thread that waits on the command channel: a SIGUSR1
        /// sent to it alone dumps every thread's stack without interrupting the test's.
        #[serde(default)]
        stack_thread: Option<i32>,
    },
    /// The worker could not start its session (pytest missing, too old, bad args...).
    Fatal {
        kind: String,
        message: String,
        #[serde(default)]
        exitstatus: Option<i32>,
    },
    /// A collection report that did not pass.
    Collectreport {
        r: Report,
    },
    /// Collection done: node ids in order, and per-test `xdist_group` names when asked.
    Collectionfinish {
        ids: Vec<String>,
        #[serde(default)]
        groups: Vec<Option<String>>,
        /// Number of failed collection reports (pytest stops the run on any unless
        /// `--continue-on-collection-errors`).
        #[serde(default)]
        errors: usize,
        /// Items deselected by `-k`/`-m`/plugins in this worker.
        #[serde(default)]
        deselected: usize,
        /// Lines from `pytest_report_collectionfinish` hooks.
        #[serde(default)]
        lines: Vec<String>,
    },
    /// A test started (`-v` only).
    Logstart {
        i: usize,
        #[serde(default)]
        loc: Option<String>,
    },
    /// A test report.
    Report(Report),
    /// The whole protocol of test `i` finished (`runtest_protocol_complete`).
    Done {
        i: usize,
        d: f64,
    },
    Warning(WarningRecord),
    /// Answer to `steal`: the indices actually removed (all requested, or none).
    Unscheduled {
        indices: Vec<usize>,
    },
    /// Output captured while `-s` is off but reported outside tests is not sent here; this
    /// is pytest's INTERNALERROR text.
    InternalError {
        text: String,
    },
    /// An exception out of `pytest_unconfigure` (a plugin's, or a warning there under
    /// `filterwarnings = error`) after this worker sent `finished`: pytest's traceback. Its
    /// tests are done, so it is no internal error of the run.
    UnconfigureError {
        text: String,
    },
    /// A `log_cli` record, formatted (pytest's live logging, which pytest-xdist drops).
    Log {
        text: String,
    },
    /// Answer to `linger`: its tests are done and it waits for `summarize`/`shutdown`.
    Lingering,
    /// Answer to `summarize`: what the hooks wrote, or the traceback that stopped them.
    Summary {
        text: String,
        #[serde(default)]
        error: Option<String>,
    },
    /// The session ended (`workerfinished`).
    Finished {
        exitstatus: i32,
        #[serde(default)]
        shouldfail: Value,
        #[serde(default)]
        shouldstop: Value,
        #[serde(default)]
        workeroutput: Map<String, Value>,
    },
}

/// Why a batch could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes one frame from a worker: a JSON array of events.
pub fn decode_events(payload: &[u8]) -> Result<Vec<WorkerEvent>, DecodeError> {
    // A collection alone in its frame (as workers send it) is by far the largest frame:
    // decode it directly, without serde's buffering of every id for the tagged enum.
    if payload.starts_with(br#"[{"t":"collectionfinish","#) {
        if let Ok([c]) = serde_json::from_slice::<[Collection; 1]>(payload) {
            return Ok(vec![WorkerEvent::Collectionfinish {
                ids: c.ids,
                groups: c.groups,
                errors: c.errors,
                deselected: c.deselected,
                lines: c.lines,
            }]);
        }
    }
    Ok(serde_json::from_slice(payload)?)
}

/// [`WorkerEvent::Collectionfinish`] as a plain struct (`t` checked, the rest the same).
#[derive(Deserialize)]
struct Collection {
    #[allow(dead_code)]
    t: CollectionTag,
    ids: Vec<String>,
    #[serde(default)]
    groups: Vec<Option<String>>,
    #[serde(default)]
    errors: usize,
    #[serde(default)]
    deselected: usize,
    #[serde(default)]
    lines: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum CollectionTag {
    Collectionfinish,
}

/// Encodes a batch of commands for one frame.
pub fn encode_commands(cmds: &[Command]) -> Vec<u8> {
    // Serializing plain enums of numbers and strings cannot fail.
    serde_json::to_vec(cmds).unwrap_or_else(|_| b"[]".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_worker_batch() {
        let batch = br#"[{"t":"report","i":3,"w":"call","o":"passed","c":"passed","l":".","W":"PASSED","d":0.5},
            {"t":"done","i":3,"d":0.6},
            {"t":"collectionfinish","ids":["a::b"]},
            {"t":"unscheduled","indices":[1,2]}]"#;
        let evs = decode_events(batch).unwrap();
        assert_eq!(evs.len(), 4);
        match &evs[0] {
            WorkerEvent::Report(r) => {
                assert_eq!(r.index, Some(3));
                assert_eq!(r.letter, ".");
                assert!(r.counts);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decodes_lone_collection_like_any_batch() {
        let one = br#"[{"t":"collectionfinish","ids":["a::b","c::d"],"groups":[null,"g"],"errors":1,"deselected":2,"lines":["x"]}]"#;
        let two = br#"[{"t":"collectionfinish","ids":["a::b"]},{"t":"done","i":0,"d":0}]"#;
        match &decode_events(one).unwrap()[..] {
            [WorkerEvent::Collectionfinish {
                ids,
                groups,
                errors: 1,
                deselected: 2,
                lines,
            }] => {
                assert_eq!(ids, &["a::b", "c::d"]);
                assert_eq!(groups, &[None, Some("g".to_string())]);
                assert_eq!(lines, &["x"]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_events(two).unwrap().len(), 2);
        assert!(decode_events(br#"[{"t":"collectionfinish","ids":[1]}]"#).is_err());
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        assert!(decode_events(br#"[{"t":"bogus"}]"#).is_err());
        assert!(decode_events(b"[{").is_err());
        assert!(decode_events(br#"{"t":"done","i":1,"d":0}"#).is_err());
    }

    #[test]
    fn encodes_commands() {
        let s = encode_commands(&[
            Command::Run {
                indices: vec![1, 2],
            },
            Command::Shutdown,
        ]);
        assert_eq!(
            std::str::from_utf8(&s).unwrap(),
            r#"[{"t":"run","indices":[1,2]},{"t":"shutdown"}]"#
        );
    }
}
