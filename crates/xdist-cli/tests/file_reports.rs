//! The controller-side plugins xdist produces itself, compared with plain pytest:
//! - `--junitxml`: for every example suite (except `crashes`), `xdist -n 2 --junitxml` and
//!   `pytest --junitxml` give equivalent documents (testsuite counts; testcases with names,
//!   classnames and child elements with their message attributes; times, timestamp,
//!   hostname and order ignored), also with `junit_family`/`junit_logging`/prefix options
//!   and with control characters in the output;
//! - `--report-log`: lines parse and have pytest-reportlog's keys per `$report_type`
//!   (reference generated with pytest-reportlog when the test interpreter has it, else
//!   `tests/fixtures/reportlog_keys.json`);
//! - the cache: `xdist --lf` (and `pytest --lf`) after a failing xdist run reruns exactly
//!   the failures; `lastfailed` equals pytest's after the same runs; `--sw` is refused;
//! - `--durations` and `-rA` as pytest prints them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn timeout() -> Duration {
    let secs = std::env::var("XDIST_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

fn extra_dist_args(suite: &str) -> &'static [&'static str] {
    match suite {
        "groups" => &["--dist", "loadgroup"],
        _ => &[],
    }
}

/// `pytest ARGS` in `dir`.
fn pytest(python: &Path, dir: &Path, args: &[&str]) -> RunOutput {
    let mut cmd = clean_command(&python.to_string_lossy(), dir);
    cmd.args(["-m", "pytest", "-p", "no:randomly"]).args(args);
    run_with_timeout(&mut cmd, timeout())
}

/// `xdist -n 2 ARGS` in `dir`.
fn xdist(python: &Path, dir: &Path, args: &[&str]) -> RunOutput {
    let argv = distributed_cmd(env!("CARGO_BIN_EXE_xdist"), python);
    let mut cmd = clean_command(&argv[0], dir);
    cmd.args(&argv[1..]).args(["-p", "no:randomly"]).args(args);
    run_with_timeout(&mut cmd, timeout())
}

fn check_ran(r: &RunOutput) {
    assert!(
        !r.timed_out && matches!(r.code, Some(0..=2)),
        "run failed:\n{}",
        r.describe(4000)
    );
}

// ---------------------------------------------------------------------------
// --junitxml
// ---------------------------------------------------------------------------

/// Runs both tools with `--junitxml` (plus `args`) and compares the normalized documents.
fn compare_junit(suite: &str, dir: &Path, args: &[&str], with_text: bool) {
    let python = test_python();
    let out = scratch_dir(&format!("junit-{suite}-{}", args.len()));
    let p_xml = out.join("pytest.xml");
    let x_xml = out.join("xdist.xml");
    let p_arg = format!("--junitxml={}", p_xml.display());
    let x_arg = format!("--junitxml={}", x_xml.display());
    let mut pa: Vec<&str> = vec!["-p", "no:cacheprovider", &p_arg];
    pa.extend(args);
    let mut xa: Vec<&str> = vec!["-p", "no:cacheprovider", &x_arg];
    xa.extend(extra_dist_args(suite));
    xa.extend(args);
    let p = pytest(&python, dir, &pa);
    check_ran(&p);
    let x = xdist(&python, dir, &xa);
    check_ran(&x);
    assert_eq!(p.code, x.code, "exit codes differ:\n{}", x.describe(3000));
    // A lone surrogate cannot cross the worker channel (UTF-8): xdist shows it as U+FFFD,
    // as pytest's terminal does; pytest's junit escapes it as `#xDC80`. Same character.
    let surrogate = regex::Regex::new(r"#xD[89A-F][0-9A-F]{2}").unwrap();
    let expected = junit_normalized(&python, &p_xml, with_text).unwrap();
    let expected = surrogate.replace_all(&expected, r"\ufffd").into_owned();
    let actual = junit_normalized(&python, &x_xml, with_text)
        .unwrap_or_else(|e| panic!("{e}\n{}", x.describe(3000)));
    if expected != actual {
        let e: BTreeSet<&str> = expected.lines().collect();
        let a: BTreeSet<&str> = actual.lines().collect();
        let only_p: Vec<_> = e.difference(&a).take(20).collect();
        let only_x: Vec<_> = a.difference(&e).take(20).collect();
        panic!(
            "junit documents of {suite} {args:?} differ\nonly pytest: {only_p:#?}\nonly xdist: {only_x:#?}"
        );
    }
    let xml_line = format!("generated xml file: {}", x_xml.display());
    assert!(
        x.stdout.contains(&xml_line),
        "no `{xml_line}` line:\n{}",
        x.describe(2000)
    );
    let _ = std::fs::remove_dir_all(out);
}

macro_rules! junit_tests {
    ($($name:ident),* $(,)?) => {
        const SUITES: &[&str] = &[$(stringify!($name)),*];
        mod junit {
            $(
                #[test]
                fn $name() {
                    let suite = stringify!($name);
                    super::compare_junit(suite, &super::examples_dir().join(suite), &[], false);
                }
            )*
        }
    };
}

junit_tests!(
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

#[test]
fn every_example_suite_has_a_junit_test() {
    let mut dirs: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !common::NOT_COMPARED.contains(&n.as_str()))
        .filter(|n| !n.starts_with('.') && n != "__pycache__")
        .collect();
    dirs.sort();
    let mut listed: Vec<String> = SUITES.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(dirs, listed);
}

#[test]
fn junit_options_and_captured_output() {
    let dir = examples_dir().join("output");
    compare_junit(
        "output",
        &dir,
        &[
            "-o",
            "junit_family=xunit1",
            "-o",
            "junit_logging=all",
            "--junit-prefix=pre",
            "-o",
            "junit_suite_name=mine",
        ],
        true,
    );
    compare_junit(
        "output",
        &dir,
        &[
            "-o",
            "junit_family=legacy",
            "-o",
            "junit_logging=out-err",
            "-o",
            "junit_log_passing_tests=false",
            "-o",
            "junit_duration_report=call",
        ],
        true,
    );
    for suite in ["skips", "xfail"] {
        compare_junit(
            suite,
            &examples_dir().join(suite),
            &["-o", "junit_logging=system-out"],
            true,
        );
    }
}

#[test]
fn junit_control_characters_and_properties() {
    let dir = scratch_dir("junit-ctrl");
    std::fs::write(dir.join("pytest.ini"), "[pytest]\njunit_family = xunit1\n").unwrap();
    std::fs::write(
        dir.join("test_ctrl.py"),
        r#"import sys
import pytest

def test_ctrl_fail():
    print("bell\x07 esc\x1b[31m nul\x00 del\x7f uffff\uffff")
    sys.stderr.write("err\x08 <&>\"\n")
    assert 0, "ctrl \x07 <in> & message"

def test_props(record_property):
    # (pytest does not escape property names: a control character there is invalid XML)
    record_property("k", "v\x02 <x>")
    record_property("n", 3)
    print("ok\x0c")

@pytest.mark.parametrize("p", ["a::b", "x[y]", "sp ace"])
def test_ids(p):
    pytest.skip("skip \x03 " + p)

@pytest.mark.xfail(reason="why \x04")
def test_xf():
    assert 0
"#,
    )
    .unwrap();
    compare_junit("ctrl", &dir, &["-o", "junit_logging=all"], true);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// --report-log
// ---------------------------------------------------------------------------

type KeysByType = BTreeMap<String, BTreeSet<String>>;

/// Parses a report log: every line a JSON object with `$report_type`; SessionStart first,
/// SessionFinish last. Returns keys per type and the TestReport (nodeid, when, outcome)s.
fn read_report_log(path: &Path) -> (KeysByType, Vec<(String, String, String)>, i64) {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut keys: KeysByType = BTreeMap::new();
    let mut tests = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "report log too short:\n{text}");
    let mut exitstatus = -1;
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} is not JSON ({e}): {line}", i + 1));
        let obj = v.as_object().expect("a JSON object per line");
        let t = obj["$report_type"]
            .as_str()
            .expect("$report_type")
            .to_string();
        if i == 0 {
            assert_eq!(t, "SessionStart");
        }
        if i == lines.len() - 1 {
            assert_eq!(t, "SessionFinish");
            exitstatus = obj["exitstatus"].as_i64().expect("exitstatus");
        }
        if t == "TestReport" {
            tests.push((
                obj["nodeid"].as_str().unwrap_or("").to_string(),
                obj["when"].as_str().unwrap_or("").to_string(),
                obj["outcome"].as_str().unwrap_or("").to_string(),
            ));
        }
        keys.entry(t).or_default().extend(obj.keys().cloned());
    }
    tests.sort();
    (keys, tests, exitstatus)
}

/// An interpreter with pytest-reportlog: `XDIST_TEST_REPORTLOG_PYTHON`, or the test
/// interpreter when it has the plugin.
fn reportlog_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("XDIST_TEST_REPORTLOG_PYTHON").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let py = test_python();
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pytest_reportlog"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

const REPORTLOG_SUITES: &[&str] = &["mixed", "warnings", "collection_errors"];

fn xdist_report_log(
    python: &Path,
    suite: &str,
    out: &Path,
) -> (KeysByType, Vec<(String, String, String)>) {
    let log = out.join(format!("{suite}-xdist.jsonl"));
    let arg = format!("--report-log={}", log.display());
    let mut args = vec!["-p", "no:cacheprovider", &arg];
    args.extend(extra_dist_args(suite));
    let x = xdist(python, &examples_dir().join(suite), &args);
    check_ran(&x);
    let (keys, tests, exitstatus) = read_report_log(&log);
    assert_eq!(Some(exitstatus as i32), x.code, "SessionFinish exitstatus");
    assert!(
        x.stdout.contains("generated report log file: "),
        "{}",
        x.describe(2000)
    );
    (keys, tests)
}

#[test]
fn report_log_has_pytest_reportlogs_keys() {
    let out = scratch_dir("reportlog");
    match reportlog_python() {
        Some(ref_py) => {
            for suite in REPORTLOG_SUITES
                .iter()
                .chain(&["subtests", "output", "xfail"])
            {
                let log = out.join(format!("{suite}-pytest.jsonl"));
                let arg = format!("--report-log={}", log.display());
                let p = pytest(
                    &ref_py,
                    &examples_dir().join(suite),
                    &["-p", "no:cacheprovider", &arg],
                );
                check_ran(&p);
                let (mut want, want_tests, _) = read_report_log(&log);
                // Passing collect reports are not sent by workers (as with pytest-xdist):
                // their keys are the same as a failed one's, so only compare if present.
                let (got, got_tests) = xdist_report_log(&ref_py, suite, &out);
                if !got.contains_key("CollectReport") {
                    want.remove("CollectReport");
                }
                assert_eq!(
                    want, got,
                    "{suite}: keys per $report_type (pytest-reportlog installed)"
                );
                assert_eq!(want_tests, got_tests, "{suite}: test reports");
                // Also without the plugin installed in the workers' interpreter.
                let (got_plain, _) = xdist_report_log(&test_python(), suite, &out);
                assert_eq!(
                    got, got_plain,
                    "{suite}: keys without pytest-reportlog installed"
                );
            }
        }
        None => {
            let fixture =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reportlog_keys.json");
            let want: KeysByType =
                serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
            let mut got: KeysByType = BTreeMap::new();
            for suite in REPORTLOG_SUITES {
                let (keys, _) = xdist_report_log(&test_python(), suite, &out);
                for (t, k) in keys {
                    got.entry(t).or_default().extend(k);
                }
            }
            assert_eq!(
                want, got,
                "keys per $report_type (fixture from pytest-reportlog 1.0.0)"
            );
        }
    }
    let _ = std::fs::remove_dir_all(out);
}

// ---------------------------------------------------------------------------
// The cache: --lf, lastfailed, --sw
// ---------------------------------------------------------------------------

fn failed_ids(lines: &[OutcomeLine]) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| l.word == "FAILED" || l.word == "ERROR")
        .map(|l| l.nodeid.clone())
        .collect()
}

fn ran_ids(lines: &[OutcomeLine]) -> BTreeSet<String> {
    lines.iter().map(|l| l.nodeid.clone()).collect()
}

fn lastfailed(dir: &Path) -> serde_json::Value {
    let p = dir.join(".pytest_cache/v/cache/lastfailed");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).expect("lastfailed is JSON")
}

#[test]
fn last_failed_reruns_exactly_the_failures() {
    let python = test_python();
    let dir = scratch_dir("lf");
    copy_tree(&examples_dir().join("basic"), &dir);
    let first = xdist(&python, &dir, &["-v"]);
    check_ran(&first);
    let failed = failed_ids(&parse_dist_v(&first.stdout));
    assert!(!failed.is_empty(), "{}", first.describe(3000));

    let lf = xdist(&python, &dir, &["-v", "--lf"]);
    check_ran(&lf);
    let rerun = parse_dist_v(&lf.stdout);
    assert_eq!(
        ran_ids(&rerun),
        failed,
        "xdist --lf:\n{}",
        lf.describe(3000)
    );
    assert_eq!(failed_ids(&rerun), failed);

    let plain = pytest(&python, &dir, &["-v", "--lf"]);
    check_ran(&plain);
    assert_eq!(
        ran_ids(&parse_serial_v(&plain.stdout)),
        failed,
        "pytest --lf after xdist:\n{}",
        plain.describe(3000)
    );

    // --ff runs the failures first, then the rest.
    let ff = xdist(&python, &dir, &["-v", "--ff", "-p", "no:randomly"]);
    check_ran(&ff);
    assert!(
        ff.stdout.contains("run-last-failure: rerun previous"),
        "{}",
        ff.describe(3000)
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// The same sequence of runs (full, a subset, collection errors) leaves the same
/// `lastfailed` with xdist as with pytest, and `nodeids` for `--nf`.
#[test]
fn lastfailed_matches_pytest_bookkeeping() {
    let python = test_python();
    for (suite, runs) in [
        (
            "basic",
            vec![
                vec![],
                vec!["-k", "not test_fail_list and not test_fail_str"],
            ],
        ),
        ("collection_errors", vec![vec![]]),
        ("errors", vec![vec![]]),
        ("xfail", vec![vec![], vec!["--lf"]]),
    ] {
        let pdir = scratch_dir(&format!("lfp-{suite}"));
        let xdir = scratch_dir(&format!("lfx-{suite}"));
        copy_tree(&examples_dir().join(suite), &pdir);
        copy_tree(&examples_dir().join(suite), &xdir);
        for args in &runs {
            check_ran(&pytest(&python, &pdir, args));
            check_ran(&xdist(&python, &xdir, args));
            assert_eq!(
                lastfailed(&pdir),
                lastfailed(&xdir),
                "{suite} after {args:?}"
            );
        }
        let nodeids = |d: &Path| -> BTreeSet<String> {
            let t = std::fs::read_to_string(d.join(".pytest_cache/v/cache/nodeids")).unwrap();
            serde_json::from_str(&t).unwrap()
        };
        if suite != "collection_errors" {
            assert_eq!(nodeids(&pdir), nodeids(&xdir), "{suite}: nodeids");
        }
        for f in ["README.md", ".gitignore", "CACHEDIR.TAG"] {
            assert!(xdir.join(".pytest_cache").join(f).is_file(), "{f}");
        }
        let _ = std::fs::remove_dir_all(pdir);
        let _ = std::fs::remove_dir_all(xdir);
    }
}

#[test]
fn no_cacheprovider_writes_no_cache() {
    let dir = scratch_dir("nocache");
    copy_tree(&examples_dir().join("basic"), &dir);
    check_ran(&xdist(&test_python(), &dir, &["-p", "no:cacheprovider"]));
    assert!(!dir.join(".pytest_cache/v/cache/lastfailed").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn stepwise_is_refused_with_one_line() {
    if distributed_cmd_overridden() {
        return;
    }
    for flag in ["--sw", "--stepwise", "--sw-skip"] {
        let r = xdist(&test_python(), &examples_dir().join("basic"), &[flag]);
        assert_eq!(r.code, Some(4), "{}", r.describe(2000));
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.describe(2000));
        assert!(r.stderr.contains("--sw"), "{}", r.describe(2000));
    }
}

// ---------------------------------------------------------------------------
// --durations and -r
// ---------------------------------------------------------------------------

fn section_titles(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("=====") && l.ends_with("====="))
        .map(|l| l.trim_matches('=').trim().to_string())
        .collect()
}

fn duration_lines(text: &str) -> Vec<(String, String)> {
    let re = regex::Regex::new(r"^\d+\.\d\ds (\w+|\?\?\?)\s+(\S.*)$").unwrap();
    let mut lines = text.lines().skip_while(|l| !l.contains(" slowest "));
    lines.next();
    lines
        .take_while(|l| !l.starts_with('='))
        .filter_map(|l| re.captures(l).map(|c| (c[1].to_string(), c[2].to_string())))
        .collect()
}

#[test]
fn durations_section_as_pytest_prints_it() {
    let python = test_python();
    let dir = examples_dir().join("demo");
    let args = ["-p", "no:cacheprovider", "--durations", "3", "-rA"];
    let p = pytest(&python, &dir, &args);
    let x = xdist(&python, &dir, &args);
    check_ran(&p);
    check_ran(&x);
    assert!(
        x.stdout.contains("= slowest 3 durations ="),
        "{}",
        x.describe(4000)
    );
    // The section sits where pytest puts it (after PASSES, before the short summary).
    let order = |t: &str| {
        section_titles(t)
            .into_iter()
            .filter(|s| !s.contains(" in ") && !s.starts_with("test session"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        order(&p.stdout),
        order(&x.stdout),
        "{}\n\npytest:\n{}",
        x.describe(4000),
        p.describe(4000)
    );
    assert_eq!(duration_lines(&x.stdout).len(), 3, "{}", x.describe(4000));

    // Everything, unfiltered: the same (when, nodeid) entries as pytest.
    let args = [
        "-p",
        "no:cacheprovider",
        "--durations=0",
        "--durations-min=0",
    ];
    let p = pytest(&python, &dir, &args);
    let x = xdist(&python, &dir, &args);
    let mut pl = duration_lines(&p.stdout);
    let mut xl = duration_lines(&x.stdout);
    pl.sort();
    xl.sort();
    assert!(
        x.stdout.contains("= slowest durations ="),
        "{}",
        x.describe(4000)
    );
    assert_eq!(pl, xl);

    // Hidden ones are counted as pytest does.
    let x = xdist(
        &python,
        &dir,
        &[
            "-p",
            "no:cacheprovider",
            "--durations=5",
            "--durations-min=100",
        ],
    );
    assert!(
        x.stdout.contains("(5 durations < 100s hidden.)"),
        "{}",
        x.describe(4000)
    );
}

fn compare_short_summary(suite: &str, chars: &str) {
    let python = test_python();
    let dir = examples_dir().join(suite);
    let p = pytest(&python, &dir, &["-p", "no:cacheprovider", chars]);
    let mut xa = vec!["-p", "no:cacheprovider", chars];
    xa.extend(extra_dist_args(suite));
    let x = xdist(&python, &dir, &xa);
    check_ran(&p);
    check_ran(&x);
    let pl = short_summary_lines(&p.stdout);
    let xl = short_summary_lines(&x.stdout);
    assert_eq!(pl, xl, "{suite} {chars}:\n{}", x.describe(3000));
    // The summary sections shown (PASSES with -rP/-rA, warnings with w) are the same.
    let titles = |t: &str| {
        section_titles(t)
            .into_iter()
            .filter(|s| {
                !s.contains(" in ") && !s.starts_with("test session") && !s.contains("Interrupted")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(titles(&p.stdout), titles(&x.stdout), "{suite} {chars}");
}

#[test]
fn report_chars_like_pytest() {
    for suite in SUITES {
        compare_short_summary(suite, "-rA");
    }
    for chars in ["-ra", "-rfEsxXpPw", "-rN", "-rfE", "-rs", "-rxX", "-rp"] {
        for suite in ["mixed", "skips", "warnings"] {
            compare_short_summary(suite, chars);
        }
    }
}
