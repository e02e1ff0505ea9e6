// Over 700 lines on purpose: one test binary per area (each file in tests/ is linked and started on its own), its cases sharing the helpers here.
//! Popular pytest plugins through xdist, each compared with plain pytest, with the pinned
//! versions of `dev/requirements-plugins.txt` (the `.venv-plugins` venv, made by
//! `dev/venv.sh`; `XDIST_TEST_PYTHON_PLUGINS` overrides it):
//! - pytest-cov: `xdist -n 2 --cov=covpkg` on `examples/covpkg` gives pytest's coverage
//!   table (every file line and TOTAL), with branches, `--cov-fail-under` (message, exit
//!   code) and the XML report's rates;
//! - pytest-randomly: one seed for all workers (no collection mismatch), `--randomly-seed=N`
//!   honoured, its header line printed once, `--randomly-seed=last` reuses the last seed;
//! - pytest-rerunfailures (`R`, `N rerun`), pytest-timeout (the timeout failure),
//!   pytest-asyncio (async tests and fixtures), hypothesis (property tests, a falsifying
//!   failing example, its example database): same outcomes per test and same summary counts;
//!   rerunfailures' `-rR` section lists the same attempts;
//! - pytest-html and pytest-json-report, which act only on pytest-xdist's controller: the
//!   summary step replays the run for them, so their files hold what plain pytest's hold;
//! - syrupy: the snapshot summary, unused snapshots and `--snapshot-update` over the whole run;
//! - pytest-django (each worker's own test database, `test_<name>_gwN`) and anyio's plugin
//!   (async tests and fixtures next to pytest-asyncio): same outcomes and summary counts.
//!
//! Each test runs twice: with forked workers (the default; a run that falls back to spawning
//! fails the test) and, in `spawn_mode`, with `--start spawn`. The larger suites are files
//! under `tests/fixtures/` (`plugin_suite`, `django_anyio`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use regex::Regex;

fn plugins_python() -> PathBuf {
    let (py, explicit) = python_from_env("XDIST_TEST_PYTHON_PLUGINS", ".venv-plugins/bin/python");
    if !py.exists() {
        panic!(
            "{} does not exist{}: run `dev/venv.sh` at the repo root (it builds .venv-plugins \
             from dev/requirements-plugins.txt)",
            py.display(),
            if explicit {
                " (XDIST_TEST_PYTHON_PLUGINS)"
            } else {
                ""
            }
        );
    }
    py
}

/// The tests of the other plugins leave pytest-rerunfailures out (their suites have no
/// flaky tests); its own test has it. With `--reruns` it needs a controller session (its
/// crash handler, `seed_hooks.rs`); with flaky marks alone none, and fork mode forks.
const NO_RERUNS: [&str; 2] = ["-p", "no:rerunfailures"];

fn pytest(dir: &Path, args: &[&str]) -> RunOutput {
    pytest_with(dir, &NO_RERUNS, args)
}

fn pytest_with(dir: &Path, plugins: &[&str], args: &[&str]) -> RunOutput {
    let mut cmd = clean_command(&plugins_python().to_string_lossy(), dir);
    cmd.args(["-m", "pytest"]).args(plugins).args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(180))
}

thread_local! {
    /// `--start` of the runs this test thread makes (see `spawn_mode`).
    static START: std::cell::Cell<&'static str> = const { std::cell::Cell::new("fork") };
}

fn fork_mode() -> bool {
    START.with(|m| m.get()) == "fork" && !distributed_cmd_overridden()
}

/// An xdist run that forks its workers in fork mode (checked: no fallback line).
fn xdist(dir: &Path, args: &[&str]) -> RunOutput {
    let out = xdist_with(dir, &NO_RERUNS, args);
    assert!(
        !fork_mode() || !out.stdout.contains("xdist: spawning workers:"),
        "fork mode fell back to spawning:\n{}",
        out.describe(3000)
    );
    out
}

fn xdist_with(dir: &Path, plugins: &[&str], args: &[&str]) -> RunOutput {
    let python = plugins_python();
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
    let mut cmd = clean_command(&argv[0], dir);
    cmd.args(&argv[1..])
        .args(start_args(START.with(|m| m.get())))
        .args(plugins)
        .args(args);
    run_with_timeout(&mut cmd, Duration::from_secs(180))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" || name.to_string_lossy().starts_with(".") {
            continue;
        }
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// A copy of examples/covpkg (coverage writes its data files where it runs).
fn covpkg() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&examples_dir().join("covpkg"), tmp.path());
    tmp
}

/// The coverage table: from the `Name ...` header to the `TOTAL` line.
fn cov_table(out: &RunOutput) -> Vec<String> {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("Name "))
        .unwrap_or_else(|| panic!("no coverage table:\n{}", out.describe(6000)));
    let end = start
        + lines[start..]
            .iter()
            .position(|l| l.starts_with("TOTAL "))
            .expect("TOTAL line");
    lines[start..=end].iter().map(|l| l.to_string()).collect()
}

/// The lines of pytest-cov's `tests coverage` section and the ones it writes around it.
fn cov_lines(out: &RunOutput) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| {
            l.contains("tests coverage")
                || l.contains("coverage: platform")
                || l.starts_with("Coverage ")
                || l.starts_with("ERROR: Coverage failure")
                || l.contains("Required test coverage")
        })
        .map(str::to_string)
        .collect()
}

/// Runs `--cov=covpkg` plus `extra` under pytest and xdist in `dir` and checks they agree:
/// exit code, coverage table, missing lines and summary counts. Returns pytest's table.
fn cov_like_pytest(dir: &Path, extra: &[&str]) -> Vec<String> {
    let base = [
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "--cov=covpkg",
    ];
    let args: Vec<&str> = base.iter().chain(extra).copied().collect();
    let p = pytest(dir, &args);
    let x = xdist(dir, &args);
    assert_eq!(
        p.code,
        x.code,
        "{extra:?}\n{}\n{}",
        p.describe(4000),
        x.describe(4000)
    );
    let (pt, xt) = (cov_table(&p), cov_table(&x));
    assert_eq!(pt, xt, "{extra:?}\n{}", x.describe(4000));
    assert_eq!(
        cov_lines(&p),
        cov_lines(&x),
        "{extra:?}\n{}",
        x.describe(4000)
    );
    assert_eq!(
        parse_summary(&p.stdout).map(|s| s.counts),
        parse_summary(&x.stdout).map(|s| s.counts)
    );
    pt
}

#[test]
fn coverage_equals_plain_pytest_cov() {
    let dir = covpkg();
    for extra in [
        &["--cov-report=term-missing"][..],
        &["--cov-branch", "--cov-report=term", "--cov-fail-under=90"][..],
        &[
            "--cov-report=term-missing:skip-covered",
            "--cov-fail-under=50",
        ][..],
    ] {
        let table = cov_like_pytest(dir.path(), extra);
        assert!(table.iter().any(|l| l.starts_with("covpkg/calc.py")) || extra[0].contains("skip"));
    }
    // The data is combined into one file, as pytest-cov leaves it; no worker files remain.
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".coverage."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(dir.path().join(".coverage").is_file());
}

#[test]
fn coverage_xml_report_rates_equal() {
    let dir = covpkg();
    let rates = |out: &RunOutput, file: &str| -> BTreeMap<String, String> {
        assert!(out
            .stdout
            .contains(&format!("Coverage XML written to file {file}")));
        let xml = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let re = Regex::new(r#"<class name="([^"]+)" filename="([^"]+)"[^>]* line-rate="([^"]+)""#)
            .unwrap();
        let mut m: BTreeMap<String, String> = re
            .captures_iter(&xml)
            .map(|c| (c[2].to_string(), c[3].to_string()))
            .collect();
        let total = Regex::new(r#"<coverage [^>]*line-rate="([^"]+)""#).unwrap();
        m.insert("TOTAL".into(), total.captures(&xml).unwrap()[1].to_string());
        m
    };
    let args = |f: &'static str| {
        vec![
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
            "--cov=covpkg",
            f,
        ]
    };
    let p = pytest(dir.path(), &args("--cov-report=xml:p.xml"));
    let x = xdist(dir.path(), &args("--cov-report=xml:x.xml"));
    let (pr, xr) = (rates(&p, "p.xml"), rates(&x, "x.xml"));
    assert!(pr.len() >= 5, "{pr:?}");
    assert_eq!(pr, xr);
}

#[test]
fn randomly_uses_one_seed_for_all_workers() {
    let dir = covpkg();
    let seed_lines = |out: &RunOutput| -> Vec<String> {
        out.stdout
            .lines()
            .filter(|l| l.starts_with("Using --randomly-seed="))
            .map(str::to_string)
            .collect()
    };
    // A given seed: the same outcomes as pytest with it, the header line once.
    let p = pytest(
        dir.path(),
        &["-p", "randomly", "--randomly-seed=1234", "-rA"],
    );
    let x = xdist(
        dir.path(),
        &["-p", "randomly", "--randomly-seed=1234", "-rA"],
    );
    assert_eq!(x.code, Some(0), "{}", x.describe(4000));
    assert_eq!(seed_lines(&x), vec!["Using --randomly-seed=1234"]);
    assert_eq!(seed_lines(&p), seed_lines(&x));
    assert_eq!(
        parse_summary(&p.stdout).map(|s| s.counts),
        parse_summary(&x.stdout).map(|s| s.counts)
    );
    // Fresh seeds: every worker collects the same order (a mismatch fails the run), for
    // several seeds; the seed is stored for `--randomly-seed=last`.
    for _ in 0..3 {
        let x = xdist(dir.path(), &["-p", "randomly"]);
        assert_eq!(x.code, Some(0), "{}", x.describe(4000));
        let lines = seed_lines(&x);
        assert_eq!(lines.len(), 1, "{}", x.stdout);
        let seed = lines[0]
            .trim_start_matches("Using --randomly-seed=")
            .to_string();
        let cached = std::fs::read_to_string(dir.path().join(".pytest_cache/v/randomly_seed"))
            .expect("randomly_seed in the cache");
        assert_eq!(cached.trim(), seed);
        let last = xdist(dir.path(), &["-p", "randomly", "--randomly-seed=last"]);
        assert_eq!(seed_lines(&last), lines, "{}", last.describe(3000));
    }
    // Without the plugin no seed is stored (pytest's own cache has none either).
    let cached = dir.path().join(".pytest_cache/v/randomly_seed");
    std::fs::remove_file(&cached).expect("randomly_seed in the cache");
    let x = xdist(dir.path(), &["-p", "no:randomly"]);
    assert_eq!(x.code, Some(0), "{}", x.describe(4000));
    assert!(!cached.exists(), "{}", x.describe(2000));
}

/// The lines of the `=== title ===` section that `keep` keeps, sorted.
fn section_lines(text: &str, title: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains(title))
        .skip(1)
        .take_while(|l| !l.starts_with('='))
        .filter(|l| keep(l))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// `-rA` short-summary lines: (word, nodeid), without messages.
fn outcomes(out: &RunOutput) -> BTreeMap<String, String> {
    let re = Regex::new(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS|RERUN) (\S+)").unwrap();
    out.stdout
        .lines()
        .filter_map(|l| re.captures(l))
        .map(|c| (c[2].to_string(), c[1].to_string()))
        .collect()
}

#[test]
fn rerunfailures_timeout_asyncio_hypothesis_match_pytest() {
    // A copy: Hypothesis and the cache write next to the tests.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_suite("plugin_suite"), dir.path());
    let args = ["-p", "no:randomly", "-rA"];
    let p = pytest_with(dir.path(), &[], &args);
    let x = xdist_with(dir.path(), &[], &args);
    assert_eq!(p.code, Some(1), "{}", p.describe(4000));
    assert_eq!(x.code, p.code, "{}", x.describe(6000));
    assert!(
        !fork_mode() || !x.stdout.contains("xdist: spawning workers:"),
        "{}",
        x.describe(3000)
    );
    let (po, xo) = (outcomes(&p), outcomes(&x));
    assert_eq!(po.len(), 11, "{po:?}");
    assert_eq!(po, xo, "{}", x.describe(6000));
    let (ps, xs) = (
        parse_summary(&p.stdout).unwrap(),
        parse_summary(&x.stdout).unwrap(),
    );
    assert_eq!(ps.counts, xs.counts, "{}", x.describe(3000));
    assert_eq!(xs.get("rerun"), 2, "{}", x.stdout);
    // Reruns are shown as `R` among the progress letters.
    let letters: String = x
        .stdout
        .lines()
        .filter(|l| Regex::new(r"^[.RFEsx]+ +\[").unwrap().is_match(l))
        .collect();
    assert_eq!(letters.matches('R').count(), 2, "{}", x.stdout);
    for needle in [
        "Failed: Timeout (>1.0s) from pytest-timeout.",
        "Failing test case: test_fails_for_big(",
    ] {
        assert!(p.stdout.contains(needle), "pytest lacks {needle}");
        assert!(
            x.stdout.contains(needle),
            "xdist lacks {needle}:\n{}",
            x.stdout
        );
    }
    // A second run, over the state Hypothesis and the cache left, still works. (No check
    // for `.hypothesis/`: on CI Hypothesis's `ci` profile keeps no example database.)
    let again = xdist_with(dir.path(), &[], &args);
    assert_eq!(outcomes(&again), po, "{}", again.describe(4000));
    // Without pytest-rerunfailures the run forks: pytest-timeout, pytest-asyncio and
    // hypothesis in forked workers (the flaky marks are then unknown marks to both).
    let (p, x) = (pytest(dir.path(), &args), xdist(dir.path(), &args));
    assert_eq!(outcomes(&p).len(), 11, "{}", p.describe(4000));
    assert_eq!(outcomes(&p), outcomes(&x), "{}", x.describe(6000));
    assert_eq!(
        parse_summary(&p.stdout).map(|s| s.counts),
        parse_summary(&x.stdout).map(|s| s.counts)
    );
}

/// rerunfailures' `-rR` section and hypothesis's statistics: terminal-summary output that
/// needs every worker's reports.
#[test]
fn rerun_and_hypothesis_sections_match_pytest() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_suite("plugin_suite"), dir.path());
    // rerunfailures' own `-rR` section (its `pytest_terminal_summary`, which needs every
    // worker's reports) lists the same attempts.
    let args = ["-p", "no:randomly", "-rR"];
    let (p, x) = (
        pytest_with(dir.path(), &[], &args),
        xdist_with(dir.path(), &[], &args),
    );
    let section = |text: &str| section_lines(text, " rerun test summary info ", |_| true);
    assert!(section(&p.stdout).len() >= 3, "{}", p.describe(4000));
    assert_eq!(
        section(&p.stdout),
        section(&x.stdout),
        "{}",
        x.describe(6000)
    );

    // hypothesis's statistics ride on teardown reports the worker would not send otherwise.
    let args = ["-p", "no:randomly", "--hypothesis-show-statistics"];
    let (p, x) = (pytest(dir.path(), &args), xdist(dir.path(), &args));
    let tested = |text: &str| {
        section_lines(text, " Hypothesis Statistics ", |l| {
            l.contains("::") && l.ends_with(':')
        })
    };
    assert!(!tested(&p.stdout).is_empty(), "{}", p.describe(4000));
    assert_eq!(tested(&p.stdout), tested(&x.stdout), "{}", x.describe(6000));
}

/// pytest-html's embedded data: node id -> sorted results of its rows.
fn html_results(path: &Path) -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(path).expect("html report");
    let re = Regex::new(r#"data-jsonblob="([^"]*)""#).unwrap();
    let blob = re.captures(&text).expect("data-jsonblob")[1]
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&blob).expect("jsonblob");
    let tests = v["tests"].as_object().expect("tests");
    tests
        .iter()
        .map(|(id, rows)| {
            let mut results: Vec<String> = (rows.as_array().unwrap().iter())
                .map(|r| r["result"].as_str().unwrap_or("").to_string())
                .collect();
            results.sort();
            (id.clone(), results)
        })
        .collect()
}

#[test]
fn html_and_json_reports_hold_what_plain_pytest_writes() {
    let suite = repo_root().join("examples/summary_hooks");
    let out = tempfile::tempdir().unwrap();
    let run = |xd: bool, tag: &str| {
        let html = out.path().join(format!("{tag}.html"));
        let json = out.path().join(format!("{tag}.json"));
        let args = [
            "-p".to_string(),
            "no:randomly".into(),
            "-p".into(),
            "no:cacheprovider".into(),
            format!("--html={}", html.display()),
            "--json-report".into(),
            format!("--json-report-file={}", json.display()),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = if xd {
            xdist(&suite, &args)
        } else {
            pytest(&suite, &args)
        };
        assert_eq!(r.code, Some(1), "{}", r.describe(4000));
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{tag}: no json report ({e})\n{}", r.describe(4000)));
        (r, html_results(&html), report)
    };
    let (p, p_html, p_json) = run(false, "pytest");
    let (x, x_html, x_json) = run(true, "xdist");
    assert!(p_html.len() >= 10, "{p_html:?}");
    assert_eq!(p_html, x_html);
    for key in ["summary", "exitcode", "warnings"] {
        assert_eq!(p_json[key], x_json[key], "{key}");
    }
    let outcomes = |v: &serde_json::Value| -> BTreeMap<String, String> {
        (v["tests"].as_array().unwrap().iter())
            .map(|t| {
                let id = t["nodeid"].as_str().unwrap().to_string();
                (id, t["outcome"].as_str().unwrap().to_string())
            })
            .collect()
    };
    assert_eq!(outcomes(&p_json), outcomes(&x_json));
    for r in [&p, &x] {
        assert!(
            r.stdout.contains("Generated html report: file://"),
            "{}",
            r.describe(3000)
        );
    }
}

const SNAPSHOT_TESTS: &str = r#"import pytest


@pytest.mark.parametrize("n", range(COUNT))
def test_snap(snapshot, n):
    assert {"n": n, "square": n * n} == snapshot


def test_text(snapshot):
    assert "hello" == snapshot
"#;

/// syrupy's worker reports reach pytest-xdist's controller through `pytest_testnodedown`
/// (compressed bytes in `workeroutput`); only there does it see the whole run: the snapshot
/// summary, unused snapshots (exit code 1 from its `pytest_sessionfinish`) and
/// `--snapshot-update` deleting them.
#[test]
fn syrupy_reports_the_whole_runs_snapshots_as_plain_pytest() {
    let dir = tempfile::tempdir().unwrap();
    let suite = dir.path();
    std::fs::write(suite.join("pytest.ini"), "[pytest]\n").unwrap();
    let write_tests = |count: usize| {
        let text = SNAPSHOT_TESTS.replace("COUNT", &count.to_string());
        std::fs::write(suite.join("test_snap.py"), text).unwrap();
    };
    let args = ["-p", "no:randomly"];
    let summary_line = |r: &RunOutput| -> String {
        let found = r.stdout.lines().find(|l| l.contains("snapshots passed"));
        found
            .unwrap_or_else(|| panic!("no snapshot summary\n{}", r.describe(3000)))
            .trim()
            .to_string()
    };

    write_tests(6);
    let created = pytest(suite, &["-p", "no:randomly", "--snapshot-update"]);
    assert_eq!(created.code, Some(0), "{}", created.describe(3000));
    let p = pytest(suite, &args);
    let x = xdist(suite, &args);
    assert_eq!((p.code, x.code), (Some(0), Some(0)), "{}", x.describe(3000));
    assert_eq!(summary_line(&p), "7 snapshots passed.");
    assert_eq!(summary_line(&x), summary_line(&p));

    // Two snapshots lose their tests: unused, which fails the run.
    write_tests(4);
    let p = pytest(suite, &args);
    let x = xdist(suite, &args);
    assert_eq!(summary_line(&p), "5 snapshots passed. 2 snapshots unused.");
    assert_eq!(summary_line(&x), summary_line(&p));
    assert_eq!(p.code, Some(1), "{}", p.describe(3000));
    assert_eq!(x.code, p.code, "{}", x.describe(3000));

    let updated = xdist(suite, &["-p", "no:randomly", "--snapshot-update"]);
    assert_eq!(updated.code, Some(0), "{}", updated.describe(3000));
    assert!(
        updated
            .stdout
            .contains("Deleted test_snap[4], test_snap[5]"),
        "{}",
        updated.describe(3000)
    );
    let after = pytest(suite, &args);
    assert_eq!(after.code, Some(0), "{}", after.describe(3000));
    assert_eq!(summary_line(&after), "5 snapshots passed.");
}

/// covpkg with a conftest that imports the package: its module-level lines run at conftest
/// import time, before any session starts (issue 16, item 14).
fn covpkg_imported_by_conftest() -> tempfile::TempDir {
    let dir = covpkg();
    let conftest = dir.path().join("conftest.py");
    let mut text = std::fs::read_to_string(&conftest).unwrap();
    text.push_str("import covpkg  # noqa: F401\n");
    std::fs::write(&conftest, text).unwrap();
    dir
}

#[test]
fn coverage_counts_conftest_import_time_like_plain_pytest_cov() {
    let dir = covpkg_imported_by_conftest();
    for extra in [
        &["--cov-report=term-missing"][..],
        &["--cov-branch", "--cov-report=term", "--cov-fail-under=75"][..],
    ] {
        cov_like_pytest(dir.path(), extra);
    }
}

/// The TOTAL line of `coverage combine; coverage report` run in `dir`.
fn combined_total(dir: &Path) -> String {
    let python = plugins_python();
    let mut combine = clean_command(&python.to_string_lossy(), dir);
    combine.args(["-m", "coverage", "combine"]);
    let c = run_with_timeout(&mut combine, Duration::from_secs(60));
    assert_eq!(c.code, Some(0), "{}", c.describe(2000));
    let mut report = clean_command(&python.to_string_lossy(), dir);
    report.args(["-m", "coverage", "report"]);
    let r = run_with_timeout(&mut report, Duration::from_secs(60));
    r.stdout
        .lines()
        .find(|l| l.starts_with("TOTAL"))
        .unwrap_or_else(|| panic!("no TOTAL:\n{}", r.describe(2000)))
        .to_string()
}

/// coverage's subprocess recipe (`COVERAGE_PROCESS_START`, saved by an atexit handler) and
/// the user's own atexit handlers work in workers as in a plain pytest process.
#[test]
fn worker_atexit_handlers_run() {
    let mut totals = Vec::new();
    for distributed in [false, true] {
        let dir = covpkg_imported_by_conftest();
        std::fs::write(
            dir.path().join(".coveragerc"),
            "[run]\nparallel = True\nsource = covpkg\n",
        )
        .unwrap();
        let conftest = dir.path().join("conftest.py");
        let mut text = std::fs::read_to_string(&conftest).unwrap();
        text.push_str(
            "import atexit, os\n\
             atexit.register(lambda: open('atexit-' + os.environ.get('PYTEST_XDIST_WORKER', \
             'main'), 'w').close())\n",
        );
        std::fs::write(&conftest, text).unwrap();
        let args = ["-p", "no:randomly", "-p", "no:cacheprovider"];
        let python = plugins_python();
        let mut cmd = if distributed {
            let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), &python);
            let mut cmd = clean_command(&argv[0], dir.path());
            cmd.args(&argv[1..])
                .args(start_args(START.with(|m| m.get())));
            cmd
        } else {
            let mut cmd = clean_command(&python.to_string_lossy(), dir.path());
            cmd.args(["-m", "pytest"]);
            cmd
        };
        cmd.args(NO_RERUNS)
            .args(args)
            .env("COVERAGE_PROCESS_START", dir.path().join(".coveragerc"));
        let out = run_with_timeout(&mut cmd, Duration::from_secs(180));
        assert!(
            !(distributed && fork_mode() && out.stdout.contains("xdist: spawning workers:")),
            "{}",
            out.describe(3000)
        );
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        let markers = if distributed {
            &["atexit-gw0", "atexit-gw1"][..]
        } else {
            &["atexit-main"][..]
        };
        for m in markers {
            assert!(
                dir.path().join(m).is_file(),
                "{m} missing: the atexit handler did not run"
            );
        }
        totals.push(combined_total(dir.path()));
    }
    assert_eq!(totals[0], totals[1], "plain pytest vs xdist");
}

/// A suite of `tests/fixtures/` (kept as files: pytest-django's settings module and tests).
fn fixture_suite(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// pytest-django (its test database per worker, named from `workerinput["workerid"]`) and
/// anyio's pytest plugin, alongside pytest-asyncio, in `tests/fixtures/django_anyio`.
#[test]
fn django_test_database_per_worker_and_anyio_match_pytest() {
    // A copy: each run writes its `dbname-*` files and the sqlite files next to the tests.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_suite("django_anyio"), dir.path());
    let args = ["-p", "no:randomly", "-rA"];
    let p = pytest(dir.path(), &args);
    assert_eq!(p.code, Some(1), "{}", p.describe(4000));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("dbname-master")).ok(),
        Some("test_proj".to_string())
    );
    let x = xdist(dir.path(), &args);
    assert_eq!(x.code, p.code, "{}", x.describe(6000));
    let (po, xo) = (outcomes(&p), outcomes(&x));
    assert_eq!(po.len(), 22, "{po:?}");
    assert_eq!(po, xo, "{}", x.describe(6000));
    let (ps, xs) = (
        parse_summary(&p.stdout).unwrap(),
        parse_summary(&x.stdout).unwrap(),
    );
    assert_eq!(ps.counts, xs.counts, "{}", x.describe(3000));
    // Both workers ran database tests, each in its own test database.
    for worker in ["gw0", "gw1"] {
        assert_eq!(
            std::fs::read_to_string(dir.path().join(format!("dbname-{worker}"))).ok(),
            Some(format!("test_proj_{worker}")),
            "{}",
            x.describe(6000)
        );
    }
}

/// Every plugin above again with spawned workers (`--start spawn`).
mod spawn_mode {
    macro_rules! in_spawn_mode {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                super::START.with(|m| m.set("spawn"));
                super::$name();
            }
        )*};
    }

    in_spawn_mode!(
        coverage_equals_plain_pytest_cov,
        coverage_xml_report_rates_equal,
        randomly_uses_one_seed_for_all_workers,
        rerunfailures_timeout_asyncio_hypothesis_match_pytest,
        rerun_and_hypothesis_sections_match_pytest,
        html_and_json_reports_hold_what_plain_pytest_writes,
        syrupy_reports_the_whole_runs_snapshots_as_plain_pytest,
        django_test_database_per_worker_and_anyio_match_pytest,
        coverage_counts_conftest_import_time_like_plain_pytest_cov,
        worker_atexit_handlers_run,
    );
}
