// Over 700 lines on purpose: one test binary per area (each file in tests/ is linked and started on its own), its cases sharing the helpers here.
//! For every example suite in `examples/` (except `crashes`, see crashes.rs):
//! run it with plain pytest and with `xdist -n 2`, and check that both give
//! the same per-test outcomes, the same summary counts and the same exit code,
//! and that the distributed output has the lines a pytest-xdist user expects.
//!
//! Environment:
//! - `XDIST_TEST_PYTHON`: interpreter with pytest 9.2 (default
//!   `<repo>/.venv/bin/python`, made by `dev/venv.sh`; missing = test failure).
//! - `XDIST_TEST_PYTHON_WITH_XDIST`: interpreter that also has pytest-xdist
//!   (default `<repo>/.venv-xdist/bin/python`); if it exists every suite is
//!   compared a second time with it.
//! - `XDIST_TEST_DISTRIBUTED_CMD`: replaces `<xdist> --python <python> -n 2`,
//!   split on whitespace, `{python}` = the interpreter under test. To check
//!   these tests against pytest-xdist itself:
//!   `XDIST_TEST_DISTRIBUTED_CMD='{python} -m pytest -n 2' XDIST_TEST_PYTHON=.venv-xdist/bin/python`
//!   (known pytest-xdist differences make some suites fail then: see
//!   examples/README.md).
//! - `XDIST_TEST_TIMEOUT`: seconds per command (default 120).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// What serial pytest 9.2 must print for each suite (summary without the
/// time) and its exit code: guards against a wrong venv or an edited suite.
/// Keep in sync with examples/README.md.
const EXPECTED_SERIAL: &[(&str, &str, i32)] = &[
    ("basic", "8 failed, 20 passed, 1 deselected", 1),
    ("collection_errors", "2 errors", 2),
    ("controller_hooks", "1 failed, 7 passed", 1),
    ("covpkg", "10 passed", 0),
    ("demo", "4 failed, 36 passed, 1 skipped, 1 xfailed", 1),
    ("errors", "1 failed, 5 passed, 9 errors", 1),
    ("fixtures", "1 failed, 30 passed", 1),
    ("groups", "32 passed", 0),
    (
        "mixed",
        "60 failed, 160 passed, 30 skipped, 20 xfailed, 10 xpassed, 20 warnings, 30 errors",
        1,
    ),
    ("output", "5 failed, 6 passed, 1 error", 1),
    ("packages", "1 failed, 10 passed", 1),
    ("skips", "5 passed, 10 skipped", 0),
    (
        "subtests",
        "5 failed, 3 passed, 1 skipped, 7 subtests passed",
        1,
    ),
    (
        "summary_hooks",
        "2 failed, 7 passed, 1 skipped, 1 xfailed, 1 warning, 1 error, 2 subtests passed",
        1,
    ),
    ("unicode", "3 failed, 6 passed", 1),
    ("warnings", "1 failed, 12 passed, 12 warnings", 1),
    ("xfail", "2 failed, 4 passed, 7 xfailed, 2 xpassed", 1),
];

/// Extra arguments for the distributed run only (they are not pytest options).
fn extra_dist_args(suite: &str) -> &'static [&'static str] {
    match suite {
        // keeping groups together is what loadgroup is for
        "groups" => &["--dist", "loadgroup"],
        _ => &[],
    }
}

/// Section headers that the distributed output must have exactly when the
/// serial one has them.
const SECTIONS: &[&str] = &[
    "= FAILURES =",
    "= ERRORS =",
    "warnings summary",
    "short test summary info",
    // summary_hooks' conftest `pytest_terminal_summary`
    "= project summary =",
];

fn timeout() -> Duration {
    let secs = std::env::var("XDIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

fn base_command(program: &str, suite_dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(suite_dir)
        // keep the example tree free of __pycache__ and the runs reproducible
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTEST_ADDOPTS")
        .env_remove("PYTEST_PLUGINS")
        .env_remove("PYTEST_XDIST_AUTO_NUM_WORKERS")
        .env_remove("PYTEST_XDIST_WORKER")
        .env_remove("PYTEST_XDIST_WORKER_COUNT")
        .env_remove("PYTEST_XDIST_TESTRUNUID")
        .env_remove("XDIST_PYTHON")
        .env_remove("XDIST_PLUGINS")
        .env_remove("VIRTUAL_ENV");
    cmd
}

fn run_serial(python: &Path, suite_dir: &Path) -> RunOutput {
    let mut cmd = base_command(&python.to_string_lossy(), suite_dir);
    cmd.args([
        "-m",
        "pytest",
        "-v",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    ])
    .arg(suite_dir);
    run_with_timeout(&mut cmd, timeout())
}

fn run_distributed(python: &Path, suite: &str, suite_dir: &Path, mode: &str) -> RunOutput {
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), python);
    let mut cmd = base_command(&argv[0], suite_dir);
    cmd.args(&argv[1..])
        .args(start_args(mode))
        .args(["-v", "-p", "no:cacheprovider"])
        .args(extra_dist_args(suite))
        .arg(suite_dir);
    run_with_timeout(&mut cmd, timeout())
}

fn has_line_containing(text: &str, needle: &str) -> bool {
    text.lines().any(|l| l.contains(needle))
}

/// Compare one suite under one interpreter, in each start mode; returns the problems found.
fn compare_with(suite: &str, python: &Path) -> Vec<String> {
    let suite_dir = examples_dir().join(suite);
    let serial = run_serial(python, &suite_dir);
    (START_MODES.iter())
        .flat_map(|mode| compare_mode(suite, python, &suite_dir, &serial, mode))
        .collect()
}

fn compare_mode(
    suite: &str,
    python: &Path,
    suite_dir: &Path,
    serial: &RunOutput,
    mode: &str,
) -> Vec<String> {
    let label = format!("[{suite} with {}, --start {mode}]", python.display());
    let serial_summary = match serial_as_documented(suite, serial) {
        Ok(summary) => summary,
        Err(why) => return vec![format!("{label} {why}")],
    };
    let dist = run_distributed(python, suite, suite_dir, mode);
    let mut dp = outcome_differences(serial, &serial_summary, &dist);
    dp.extend(report_differences(serial, &dist));
    if dp.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "{label} distributed run differs from serial pytest:\n- {}\n\n{}\n\n=== serial run ===\n{}",
        dp.join("\n- "),
        dist.describe(12000),
        serial.describe(4000)
    )]
}

/// Serial sanity: the suite does what examples/README.md says.
fn serial_as_documented(suite: &str, serial: &RunOutput) -> Result<Summary, String> {
    let serial_summary = parse_summary(&serial.stdout);
    let (_, want_summary, want_code) = EXPECTED_SERIAL
        .iter()
        .find(|(s, _, _)| *s == suite)
        .unwrap_or_else(|| panic!("{suite} missing from EXPECTED_SERIAL"));
    let want = parse_summary_line(&format!("{want_summary} in 0.00s")).unwrap();
    match serial_summary {
        Some(s)
            if !serial.timed_out && serial.code == Some(*want_code) && s.counts == want.counts =>
        {
            Ok(s)
        }
        _ => Err(format!(
            "serial pytest did not give `{want_summary}` with exit {want_code} \
             (wrong interpreter? run dev/venv.sh)\n{}",
            serial.describe(6000)
        )),
    }
}

/// Exit code, per-test outcomes and summary counts against serial pytest's.
fn outcome_differences(
    serial: &RunOutput,
    serial_summary: &Summary,
    dist: &RunOutput,
) -> Vec<String> {
    let mut dp = Vec::new();
    if dist.timed_out {
        dp.push("timed out".to_string());
    }
    if dist.code != serial.code {
        dp.push(format!(
            "exit code {:?}, serial {:?}",
            dist.code, serial.code
        ));
    }
    let serial_set = outcome_multiset(&parse_serial_v(&serial.stdout));
    let dist_set = outcome_multiset(&parse_dist_v(&dist.stdout));
    let diff = multiset_diff(&serial_set, &dist_set);
    if !diff.is_empty() {
        dp.push(format!("per-test outcomes differ:\n{diff}"));
    }
    match parse_summary(&dist.stdout) {
        None => dp.push(format!(
            "no summary line (serial: `{}`)",
            serial_summary.line
        )),
        Some(s) if s.counts != serial_summary.counts => dp.push(format!(
            "summary `{}`, serial `{}`",
            s.line, serial_summary.line
        )),
        Some(_) => {}
    }
    dp
}

/// The header lines, the report sections and the `Interrupted:` line.
fn report_differences(serial: &RunOutput, dist: &RunOutput) -> Vec<String> {
    let mut dp = Vec::new();
    if !dist
        .stdout
        .lines()
        .any(|l| l.trim() == "created: 2/2 workers")
    {
        dp.push("no `created: 2/2 workers` line".to_string());
    }
    let collection_errors = serial.code == Some(2);
    if !collection_errors {
        let n = parse_collected(&serial.stdout).expect("serial `collected N items`");
        match parse_workers_items(&dist.stdout) {
            Some((2, m)) if m == n => {}
            other => dp.push(format!(
                "want a `2 workers [{n} items]` line, got {other:?}"
            )),
        }
    }
    for sec in SECTIONS {
        let s = has_line_containing(&serial.stdout, sec);
        let d = has_line_containing(&dist.stdout, sec);
        if s != d {
            dp.push(format!(
                "section `{sec}`: serial {}, distributed {}",
                if s { "has it" } else { "has not" },
                if d { "has it" } else { "has not" }
            ));
        }
    }
    // `Interrupted: 2 errors during collection` and similar must carry over.
    for l in serial.stdout.lines().filter(|l| l.contains("Interrupted:")) {
        let text = l.trim_matches(|c| c == '!' || c == ' ');
        if !has_line_containing(&dist.stdout, text) {
            dp.push(format!("no `{text}` line"));
        }
    }
    dp
}

fn compare_suite(suite: &str) {
    let mut problems = compare_with(suite, &test_python());
    if let Some(py) = test_python_with_xdist() {
        problems.extend(compare_with(suite, &py));
    }
    if !problems.is_empty() {
        panic!("{}", problems.join("\n\n#####################\n\n"));
    }
}

/// One `#[test]` per suite, and `SUITES`, the list of them. Every suite
/// directory in examples/ must be listed here or in `common::NOT_COMPARED`.
macro_rules! suite_tests {
    ($($name:ident),* $(,)?) => {
        const SUITES: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                compare_suite(stringify!($name));
            }
        )*
    };
}

suite_tests!(
    basic,
    collection_errors,
    controller_hooks,
    covpkg,
    demo,
    errors,
    fixtures,
    groups,
    mixed,
    output,
    packages,
    skips,
    subtests,
    summary_hooks,
    unicode,
    warnings,
    xfail,
);

/// Every directory in examples/ is compared here or checked elsewhere, and
/// every listed suite exists with its own pytest.ini (so it is its rootdir).
#[test]
fn every_example_suite_is_covered() {
    let mut dirs: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.starts_with("__"))
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = SUITES
        .iter()
        .chain(NOT_COMPARED)
        .map(|s| s.to_string())
        .collect();
    listed.sort();
    assert_eq!(
        dirs, listed,
        "examples/ and the suite lists of compare_examples.rs disagree"
    );
    for s in &dirs {
        assert!(
            examples_dir().join(s).join("pytest.ini").is_file(),
            "examples/{s} has no pytest.ini"
        );
    }
    let expected: Vec<&str> = EXPECTED_SERIAL.iter().map(|e| e.0).collect();
    assert_eq!(
        expected, SUITES,
        "EXPECTED_SERIAL must list SUITES in order"
    );
}

/// The lines of summary_hooks' `project summary` section.
fn project_summary(text: &str) -> Vec<String> {
    let mut lines = text
        .lines()
        .skip_while(|l| !l.contains("= project summary ="));
    lines.next();
    lines
        .take_while(|l| !l.starts_with('='))
        .map(str::to_string)
        .collect()
}

/// A conftest's `pytest_terminal_summary` sees every worker's reports and warnings, as on
/// pytest-xdist's controller: run by a lingering worker, or (after `-x` stopped them all)
/// by a pytest process of its own; `--no-summary` skips it as pytest does.
#[test]
fn conftest_terminal_summary_sees_the_whole_run() {
    let python = test_python();
    let dir = examples_dir().join("summary_hooks");
    let run = |argv: Vec<String>, args: &[&str]| {
        let mut cmd = base_command(&argv[0], &dir);
        cmd.args(&argv[1..])
            .args(["-p", "no:cacheprovider"])
            .args(args);
        run_with_timeout(&mut cmd, timeout())
    };
    let serial_argv = |py: &Path| {
        vec![
            py.to_string_lossy().into_owned(),
            "-m".into(),
            "pytest".into(),
        ]
    };
    let xdist_argv = |py: &Path| distributed_cmd(env!("CARGO_BIN_EXE_xdist"), py);
    for args in [&[][..], &["-rA"][..]] {
        let p = run(serial_argv(&python), args);
        let x = run(xdist_argv(&python), args);
        let want = project_summary(&p.stdout);
        assert!(want.len() > 5, "{}", p.describe(3000));
        assert_eq!(
            want,
            project_summary(&x.stdout),
            "{args:?}\n{}",
            x.describe(6000)
        );
    }
    // `-x`: the workers stop, so the hooks run in a process of their own.
    let x = run(xdist_argv(&python), &["-x"]);
    let got = project_summary(&x.stdout);
    assert!(
        got.iter().any(|l| l.starts_with("failed: ")) && got.contains(&"exit status: 1".into()),
        "{}",
        x.describe(6000)
    );
    let x = run(xdist_argv(&python), &["--no-summary"]);
    assert!(
        !x.stdout.contains("project summary"),
        "{}",
        x.describe(3000)
    );
    assert_eq!(x.code, Some(1));
}

/// A `pytest_terminal_summary` that raises: pytest dies with a traceback; xdist shows it as
/// INTERNALERROR lines where the section would be, keeps the summary line, and exits 3.
#[test]
fn failing_terminal_summary_hook_is_an_internal_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(
        dir.path().join("conftest.py"),
        "def pytest_terminal_summary(terminalreporter):\n    raise ValueError('summary broke')\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("test_a.py"), "def test_a(): pass\n").unwrap();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &test_python());
    let mut cmd = base_command(&argv[0], dir.path());
    cmd.args(&argv[1..]).args(["-p", "no:cacheprovider"]);
    let x = run_with_timeout(&mut cmd, timeout());
    assert_eq!(x.code, Some(3), "{}", x.describe(4000));
    assert!(
        x.stdout
            .contains("INTERNALERROR> ValueError: summary broke"),
        "{}",
        x.describe(4000)
    );
    assert!(x.stdout.contains(" 1 passed in "), "{}", x.describe(4000));
}

/// `log_cli`: every record shows once, as it is logged, with its worker (pytest-xdist
/// drops them); without `log_cli` none do.
#[test]
fn live_logs_are_shown_with_their_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("test_l.py"),
        "import logging\nlog = logging.getLogger('t')\n\
         def test_a():\n    log.info('hello from a')\n\
         def test_b():\n    log.warning('warn from b')\n    assert 0\n",
    )
    .unwrap();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &test_python());
    let run = |ini: &str| {
        std::fs::write(dir.path().join("pytest.ini"), ini).unwrap();
        let mut cmd = base_command(&argv[0], dir.path());
        cmd.args(&argv[1..]).args(["-p", "no:cacheprovider"]);
        run_with_timeout(&mut cmd, timeout())
    };
    let x = run("[pytest]\nlog_cli = true\nlog_cli_level = INFO\n");
    assert_eq!(x.code, Some(1), "{}", x.describe(4000));
    for want in [
        "] INFO     t:test_l.py:4 hello from a",
        "] WARNING  t:test_l.py:6 warn from b",
    ] {
        let lines: Vec<&str> = x.stdout.lines().filter(|l| l.contains(want)).collect();
        assert_eq!(lines.len(), 1, "{want}\n{}", x.describe(4000));
        assert!(lines[0].starts_with("[gw"), "{}", x.describe(4000));
    }
    let x = run("[pytest]\n");
    assert!(!x.stdout.contains("hello from a"), "{}", x.describe(4000));
}

/// Conftest hooks that act on pytest-xdist's controller run in a controller session: the
/// environment it sets reaches the workers, `pytest_configure_node` fills their
/// `workerinput` (checked by the tests themselves), and `pytest_testnodedown` /
/// `pytest_sessionfinish` see every worker and every report.
#[test]
fn controller_side_conftest_hooks_run_once_for_the_run() {
    let dir = examples_dir().join("controller_hooks");
    let mut pythons = vec![test_python()];
    pythons.extend(test_python_with_xdist());
    for python in pythons {
        let out = tempfile::NamedTempFile::new().expect("tempfile");
        let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
        let mut cmd = base_command(&argv[0], &dir);
        cmd.args(&argv[1..])
            .args(["-p", "no:cacheprovider"])
            .env("CONTROLLER_HOOKS_OUT", out.path());
        let x = run_with_timeout(&mut cmd, timeout());
        assert_eq!(x.code, Some(1), "{}", x.describe(4000));
        let written = std::fs::read_to_string(out.path()).unwrap_or_default();
        assert_eq!(written, "exit 1 ran 8 workers 2", "{}", x.describe(4000));
    }
}

/// One node id can report twice in one collection (a module and its doctests, both
/// skipped or broken by one import): counted as plain pytest counts, once per worker.
#[test]
fn a_node_reported_twice_by_collection_counts_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pytest.ini"),
        "[pytest]\naddopts = --doctest-modules\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("test_b.py"), "def test_b(): pass\n").unwrap();
    let python = test_python();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
    for (module, extra) in [
        (
            "import pytest\npytest.importorskip('no_such_module_xyz')\ndef test_x(): pass\n",
            &["-rs"][..],
        ),
        (
            "import no_such_module_xyz\ndef test_x(): pass\n",
            &["--continue-on-collection-errors"][..],
        ),
        ("import no_such_module_xyz\ndef test_x(): pass\n", &[][..]),
    ] {
        std::fs::write(dir.path().join("test_a.py"), module).unwrap();
        let mut serial = base_command(&python.to_string_lossy(), dir.path());
        serial
            .args(["-m", "pytest", "-p", "no:cacheprovider"])
            .args(extra);
        let p = run_with_timeout(&mut serial, timeout());
        let mut dist = base_command(&argv[0], dir.path());
        dist.args(&argv[1..])
            .args(["-p", "no:cacheprovider"])
            .args(extra);
        let x = run_with_timeout(&mut dist, timeout());
        let (ps, xs) = (parse_summary(&p.stdout), parse_summary(&x.stdout));
        assert_eq!(
            ps.map(|s| s.counts),
            xs.map(|s| s.counts),
            "{extra:?}\n{}",
            x.describe(4000)
        );
        assert_eq!(p.code, x.code, "{}", x.describe(4000));
        assert_eq!(
            short_summary_lines(&p.stdout),
            short_summary_lines(&x.stdout)
        );
    }
}

/// The first run finds out that a controller session is needed and starts over (its
/// workers configure twice); the cache remembers, so the next run starts with one; once
/// no conftest needs it, the cache forgets.
#[test]
fn the_cache_remembers_a_needed_controller_session() {
    for mode in START_MODES {
        cache_remembers_a_needed_controller_session(mode);
    }
}

fn cache_remembers_a_needed_controller_session(mode: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_tree(&examples_dir().join("controller_hooks"), dir.path());
    let log = dir.path().join("configures.log");
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &test_python());
    let run = || {
        let _ = std::fs::remove_file(&log);
        let mut cmd = base_command(&argv[0], dir.path());
        cmd.args(&argv[1..])
            .args(start_args(mode))
            .env("CONTROLLER_HOOKS_CONFIGURES", &log);
        let x = run_with_timeout(&mut cmd, timeout());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let count = |who: &str| text.lines().filter(|l| *l == who).count();
        (x, count("worker"), count("controller"))
    };
    // `pytest_configure` runs in each worker: its `pytest_configure_node` gives each worker
    // its own `workerinput`, so fork mode spawns them too once the session is known (a first
    // attempt without it forks: its fork server configures once).
    let per_attempt = 2;
    let marker = dir.path().join(".pytest_cache/v/xdist/controller_session");
    let (x, workers, controllers) = run();
    assert_eq!(x.code, Some(1), "{}", x.describe(4000));
    // The first attempt's workers are stopped once one of them is ready.
    assert!(
        workers > per_attempt && controllers == 1,
        "{mode}: {workers} {controllers}"
    );
    assert!(marker.is_file());
    let (x, workers, controllers) = run();
    assert_eq!(x.code, Some(1), "{}", x.describe(4000));
    assert_eq!(
        (workers, controllers),
        (per_attempt, 1),
        "{}",
        x.describe(4000)
    );
    // Without controller-side hooks the session is still started once, then forgotten.
    std::fs::write(dir.path().join("conftest.py"), "").unwrap();
    std::fs::write(
        dir.path().join("test_controller.py"),
        "def test_a(): pass\n",
    )
    .unwrap();
    let (x, _, _) = run();
    assert_eq!(x.code, Some(0), "{}", x.describe(4000));
    assert!(!marker.exists());
}

/// Tests that patch `time.sleep` / `time.monotonic` see only their own calls: the worker's
/// threads keep their own references (a patched `sleep` made the flusher spin and count).
#[test]
fn patched_time_functions_are_the_tests_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(
        dir.path().join("test_sleep.py"),
        "import threading, time\nfrom unittest import mock\n\n\
         def test_patched_sleep_called_once():\n\
         \x20   with mock.patch('time.sleep') as sleep:\n\
         \x20       time.sleep(1)\n\
         \x20       threading.Event().wait(0.3)\n\
         \x20       sleep.assert_called_once_with(1)\n",
    )
    .unwrap();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &test_python());
    let mut cmd = base_command(&argv[0], dir.path());
    cmd.args(&argv[1..]).args(["-p", "no:cacheprovider"]);
    let x = run_with_timeout(&mut cmd, timeout());
    assert_eq!(x.code, Some(0), "{}", x.describe(4000));
}

/// SQLAlchemy's test plugin: `pytest_configure_node` registered only where
/// `hasplugin("xdist")`, and workers that read `workerinput["follower_ident"]` while they
/// configure. No worker can name that need in advance: the first attempt's workers fail on
/// the missing key, and the run starts over with a controller session that adds it (and
/// hands the same node to `pytest_testnodedown`).
#[test]
fn a_plugin_that_needs_configure_node_gets_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pytest.ini"),
        "[pytest]\npythonpath = .\naddopts = -p follower_plugin\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("follower_plugin.py"),
        "class XDistHooks:\n\
         \x20   def pytest_configure_node(self, node):\n\
         \x20       node.workerinput['follower_ident'] = 'test_' + node.gateway.id\n\
         \x20   def pytest_testnodedown(self, node, error):\n\
         \x20       assert node.workerinput['follower_ident'] == 'test_' + node.gateway.id\n\n\
         def pytest_configure(config):\n\
         \x20   if config.pluginmanager.hasplugin('xdist'):\n\
         \x20       config.pluginmanager.register(XDistHooks())\n\
         \x20   if hasattr(config, 'workerinput'):\n\
         \x20       config.follower_ident = config.workerinput['follower_ident']\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("test_follower.py"),
        "import os\n\n\
         def test_ident(request):\n\
         \x20   want = 'test_' + os.environ.get('PYTEST_XDIST_WORKER', '')\n\
         \x20   assert getattr(request.config, 'follower_ident', 'serial') in ('serial', want)\n\n\
         def test_other():\n    pass\n",
    )
    .unwrap();
    let mut pythons = vec![test_python()];
    pythons.extend(test_python_with_xdist());
    for python in pythons {
        let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
        let mut cmd = base_command(&argv[0], dir.path());
        cmd.args(&argv[1..]).args(["-p", "no:cacheprovider"]);
        let x = run_with_timeout(&mut cmd, timeout());
        assert_eq!(x.code, Some(0), "{}", x.describe(4000));
        assert!(x.stdout.contains("2 passed"), "{}", x.describe(4000));
    }
}

/// `-vv` shows where a test was defined when that is not its module (`<- <string>` for
/// generated tests), as pytest and pytest-xdist do.
#[test]
fn very_verbose_lines_show_where_a_test_was_defined() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pytest.ini"), "[pytest]\n").unwrap();
    std::fs::write(
        dir.path().join("test_loc.py"),
        "ns = {}\nexec(compile('def test_gen():\\n    pass\\n', '<string>', 'exec'), ns)\n\
         test_gen = ns['test_gen']\n",
    )
    .unwrap();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &test_python());
    let mut cmd = base_command(&argv[0], dir.path());
    cmd.args(&argv[1..]).args(["-p", "no:cacheprovider", "-vv"]);
    let x = run_with_timeout(&mut cmd, timeout());
    assert_eq!(x.code, Some(0), "{}", x.describe(4000));
    assert!(
        has_line_containing(&x.stdout, "PASSED test_loc.py::test_gen <- <string>"),
        "{}",
        x.describe(4000)
    );
}

/// Parametrize ids from `datetime.now()`, `random` and set order: serial pytest passes and so
/// does fork mode (one collection); spawned workers each collect other ids and stop with
/// pytest-xdist's collection diff.
#[test]
fn nondeterministic_ids_need_one_collection() {
    if distributed_cmd_overridden() {
        return;
    }
    let suite_dir = examples_dir().join("nondeterministic");
    let python = test_python();
    let serial = run_serial(&python, &suite_dir);
    let serial_summary = parse_summary(&serial.stdout).map(|s| s.counts);
    assert_eq!(serial.code, Some(0), "{}", serial.describe(4000));
    let fork = run_distributed(&python, "nondeterministic", &suite_dir, "fork");
    assert_eq!(fork.code, Some(0), "{}", fork.describe(6000));
    assert_eq!(
        parse_summary(&fork.stdout).map(|s| s.counts),
        serial_summary,
        "{}",
        fork.describe(6000)
    );
    assert_eq!(parse_workers_items(&fork.stdout), Some((2, 13)));
    let spawn = run_distributed(&python, "nondeterministic", &suite_dir, "spawn");
    assert_ne!(spawn.code, Some(0), "{}", spawn.describe(6000));
    assert!(
        has_line_containing(&spawn.stdout, "Different tests were collected between"),
        "{}",
        spawn.describe(6000)
    );
}
