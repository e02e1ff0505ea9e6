//! Runs where xdist must behave exactly as plain pytest (or pytest-xdist) does: the
//! plain-pytest passthrough (`-n 0`, `--co`, `--pdb`, `--markers`, `--fixtures`, ...) with and
//! without pytest-xdist installed, options given in several places, an error in a worker's
//! `pytest_unconfigure`, signal dispositions inherited by the workers, and the basetemp root's
//! user name.
//!
//! Interpreters: `XDIST_TEST_PYTHON` (default `<repo>/.venv/bin/python`) and, where present,
//! `XDIST_TEST_PYTHON_WITH_XDIST` (default `<repo>/.venv-xdist/bin/python`); see `dev/venv.sh`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use regex::Regex;

const XDIST: &str = env!("CARGO_BIN_EXE_xdist");
const TIMEOUT: Duration = Duration::from_secs(120);

fn pythons() -> Vec<PathBuf> {
    let mut out = vec![test_python()];
    out.extend(test_python_with_xdist());
    out
}

fn has_pytest_xdist(python: &Path) -> bool {
    test_python_with_xdist().is_some_and(|p| p == python)
}

/// Timings and the run's temp paths differ between two runs of the same suite.
fn normalized(text: &str) -> String {
    let t = Regex::new(r"\d+\.\d\ds").unwrap();
    t.replace_all(text, "N.NNs").into_owned()
}

fn xdist(python: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = clean_command(XDIST, dir);
    cmd.arg("--python").arg(python).args(args);
    cmd
}

fn pytest(python: &Path, dir: &Path, args: &[&str]) -> Command {
    let mut cmd = clean_command(python.to_str().unwrap(), dir);
    cmd.args(["-m", "pytest"]).args(args);
    cmd
}

/// A suite using pytest-xdist's fixtures, with pytest's warnings as errors.
fn fixture_suite(dir: &Path) {
    std::fs::write(dir.join("pytest.ini"), "[pytest]\nfilterwarnings = error\n").unwrap();
    std::fs::write(
        dir.join("test_ids.py"),
        "def test_worker(worker_id):\n    assert worker_id == 'master' or worker_id.startswith('gw')\n\n\
         def test_uid(testrun_uid):\n    assert testrun_uid\n\n\
         def test_plain():\n    pass\n",
    )
    .unwrap();
}

/// `-n 0`, `--co`, `--pdb` and the informational options are plain pytest: no warning
/// about pytest-xdist being imported too early, no deprecated stand-in fixture, and, where
/// pytest-xdist is installed, exactly plain pytest's output and exit code.
#[test]
fn passthrough_is_plain_pytest() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_suite(tmp.path());
    let cases: &[(&[&str], &[&str])] = &[
        (&["-n", "0", "-q"], &["-q"]),
        (&["-n", "0", "-W", "error"], &["-W", "error"]),
        (&["--co", "-q"], &["--co", "-q"]),
        (&["-n", "2", "--co"], &["--co"]),
        (&["--pdb", "-q"], &["--pdb", "-q"]),
        (&["-n", "2", "--markers"], &["--markers"]),
        (&["-n", "2", "--fixtures"], &["--fixtures"]),
        (
            &["-n", "2", "--fixtures-per-test", "-q"],
            &["--fixtures-per-test", "-q"],
        ),
        (&["-n", "2", "--funcargs"], &["--funcargs"]),
    ];
    for python in pythons() {
        for (ours, theirs) in cases {
            let mut args = vec!["-p", "no:cacheprovider"];
            args.extend_from_slice(ours);
            let out = run_with_timeout(&mut xdist(&python, tmp.path(), &args), TIMEOUT);
            let ctx = out.describe(4000);
            assert_eq!(out.code, Some(0), "{ctx}");
            for bad in [
                "warnings summary",
                "PytestAssertRewriteWarning",
                "PytestRemovedIn",
                "INTERNALERROR",
                "crashed",
                "Traceback",
            ] {
                assert!(
                    !out.stdout.contains(bad) && !out.stderr.contains(bad),
                    "{bad}: {ctx}"
                );
            }
            let informational = ours
                .iter()
                .any(|a| a.starts_with("--f") || *a == "--markers");
            if !informational && !ours.contains(&"--co") {
                assert!(out.stdout.contains("3 passed"), "{ctx}");
            }
            if ours.contains(&"--markers") {
                assert!(out.stdout.contains("@pytest.mark.xdist_group"), "{ctx}");
            }
            if ours.contains(&"--fixtures") || ours.contains(&"--funcargs") {
                assert!(out.stdout.contains("worker_id [session scope]"), "{ctx}");
            }
            if has_pytest_xdist(&python) {
                let mut args = vec!["-p", "no:cacheprovider"];
                args.extend_from_slice(theirs);
                let plain = run_with_timeout(&mut pytest(&python, tmp.path(), &args), TIMEOUT);
                assert_eq!(plain.code, out.code, "{ctx}\n{}", plain.describe(4000));
                assert_eq!(
                    normalized(&out.stdout),
                    normalized(&plain.stdout),
                    "{ctx}\n{}",
                    plain.describe(4000)
                );
            }
        }
    }
}

/// `-p xdist` with plugin autoloading off (as documented by pytest-xdist), and `-n` in
/// PYTEST_ADDOPTS or the ini's addopts: every mode starts, with and without pytest-xdist.
#[test]
fn p_xdist_with_autoload_disabled() {
    let tmp = tempfile::tempdir().unwrap();
    fixture_suite(tmp.path());
    let cases: &[(&[&str], Option<&str>)] = &[
        (&["-p", "xdist", "-n", "2"], None),
        (&["-pxdist", "-n", "0"], None),
        (&["-n", "2"], Some("-p xdist")),
        (&["-p", "xdist"], Some("-n 0")),
        (&["-p", "xdist", "--co"], Some("-n 2")),
        (&[], Some("-n 0")),
    ];
    for python in pythons() {
        for (args, addopts) in cases {
            let mut cmd = xdist(&python, tmp.path(), &["-p", "no:cacheprovider"]);
            cmd.args(*args).env("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1");
            if let Some(a) = addopts {
                cmd.env("PYTEST_ADDOPTS", a);
            }
            let out = run_with_timeout(&mut cmd, TIMEOUT);
            let ctx = out.describe(4000);
            assert_eq!(out.code, Some(0), "{}: {ctx}", python.display());
            if !args.contains(&"--co") {
                assert!(out.stdout.contains("3 passed"), "{ctx}");
            }
        }
    }
}

/// An option given in the ini's `addopts`, PYTEST_ADDOPTS and on the command line takes its
/// last value, in that order, as in pytest.
#[test]
fn the_last_numprocesses_wins() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    // Two tests: fork mode starts no more workers than there are tests.
    std::fs::write(
        tmp.path().join("test_ok.py"),
        "def test_ok():\n    pass\n\ndef test_ok_too():\n    pass\n",
    )
    .unwrap();
    // (ini addopts, PYTEST_ADDOPTS, command line, workers started)
    type Case<'a> = (&'a str, Option<&'a str>, &'a [&'a str], Option<u64>);
    let cases: &[Case] = &[
        ("-n auto", Some("-n 2"), &[], Some(2)),
        ("-n 2", Some("-n auto -n 1"), &[], Some(1)),
        ("-n 1", Some("-n 2"), &["-n", "1"], Some(1)),
        ("-n auto", None, &["-n", "2", "-n", "1"], Some(1)),
        ("-n 2", Some("-n 1"), &["-n", "0"], None),
    ];
    for (ini, env, cli, workers) in cases {
        std::fs::write(
            tmp.path().join("pytest.ini"),
            format!("[pytest]\naddopts = {ini}\n"),
        )
        .unwrap();
        let mut cmd = xdist(&python, tmp.path(), &["-p", "no:cacheprovider"]);
        cmd.args(*cli);
        if let Some(e) = env {
            cmd.env("PYTEST_ADDOPTS", e);
        }
        let out = run_with_timeout(&mut cmd, TIMEOUT);
        let ctx = out.describe(3000);
        assert_eq!(out.code, Some(0), "{ctx}");
        assert_eq!(
            parse_workers_items(&out.stdout).map(|(w, _)| w),
            *workers,
            "{ctx}"
        );
    }
}

/// A `pytest_unconfigure` that raises (or warns under `filterwarnings = error`) after the
/// tests finished: pytest exits 1 with the traceback; pytest-xdist ignores its workers'
/// errors (exit 0) and exits 1 when its controller raises too. Never INTERNALERROR/exit 3.
#[test]
fn an_error_in_unconfigure_is_no_internal_error() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("conftest.py"),
        "import os, warnings\n\
         def pytest_unconfigure(config):\n\
         \x20   who = os.environ.get('PYTEST_XDIST_WORKER', 'master')\n\
         \x20   if os.environ['WHERE'] in ('all', who):\n\
         \x20       if os.environ['HOW'] == 'warn':\n\
         \x20           warnings.warn('deprecated in unconfigure', DeprecationWarning)\n\
         \x20       else:\n\
         \x20           raise RuntimeError('boom in unconfigure')\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("test_u.py"),
        "import pytest\n\n@pytest.mark.parametrize('i', range(8))\ndef test_u(i):\n    pass\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("pytest.ini"),
        "[pytest]\nfilterwarnings = error\n",
    )
    .unwrap();
    for how in ["raise", "warn"] {
        let serial = run_with_timeout(
            pytest(&python, tmp.path(), &["-q", "-p", "no:cacheprovider"])
                .env("WHERE", "all")
                .env("HOW", how),
            TIMEOUT,
        );
        for (where_, want) in [("gw0", Some(0)), ("gw1", Some(0)), ("all", serial.code)] {
            let out = run_with_timeout(
                xdist(
                    &python,
                    tmp.path(),
                    &["-n", "2", "-q", "-p", "no:cacheprovider"],
                )
                .env("WHERE", where_)
                .env("HOW", how),
                TIMEOUT,
            );
            let ctx = format!("{how} in {where_}: {}", out.describe(4000));
            assert_eq!(out.code, want, "{ctx}\nserial: {}", serial.describe(2000));
            assert!(out.stdout.contains("8 passed"), "{ctx}");
            assert!(!out.stdout.contains("INTERNALERROR"), "{ctx}");
            assert!(!out.stderr.contains("INTERNALERROR"), "{ctx}");
            let shown = if how == "warn" {
                "deprecated in unconfigure"
            } else {
                "boom"
            };
            assert!(out.stderr.contains(shown), "{ctx}");
        }
    }
}

/// Signals ignored when xdist starts (`nohup`, a background job of a non-interactive
/// shell) are ignored in the workers' tests, as in a serial pytest started the same way.
#[test]
fn ignored_signals_stay_ignored_in_workers() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    let marks = tmp.path().join("marks");
    std::fs::write(
        tmp.path().join("test_sig.py"),
        "import os, signal, pytest\n\n@pytest.mark.parametrize('i', range(4))\n\
         def test_sig(i):\n\
         \x20   path = os.path.join(os.environ['MARKS'], str(os.getpid()))\n\
         \x20   with open(path, 'w') as f:\n\
         \x20       f.write(f'{signal.getsignal(signal.SIGINT)!r} {signal.getsignal(signal.SIGTERM)!r}')\n",
    )
    .unwrap();
    let seen = |mut cmd: Command, ignore: &'static [libc::c_int]| -> BTreeSet<String> {
        let _ = std::fs::remove_dir_all(&marks);
        std::fs::create_dir_all(&marks).unwrap();
        cmd.env("MARKS", &marks);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for &sig in ignore {
                    libc::signal(sig, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        let out = run_with_timeout(&mut cmd, TIMEOUT);
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        std::fs::read_dir(&marks)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    };
    let cases: [&'static [libc::c_int]; 4] = [
        &[],
        &[libc::SIGINT],
        &[libc::SIGTERM],
        &[libc::SIGINT, libc::SIGTERM],
    ];
    for ignore in cases {
        let serial = seen(
            pytest(&python, tmp.path(), &["-p", "no:cacheprovider"]),
            ignore,
        );
        assert_eq!(serial.len(), 1, "{serial:?}");
        let dist = seen(
            xdist(&python, tmp.path(), &["-n", "2", "-p", "no:cacheprovider"]),
            ignore,
        );
        assert_eq!(dist, serial, "ignored: {ignore:?}");
    }
}

/// The basetemp root is `pytest-of-<user>` with the user as pytest finds it
/// (`getpass.getuser()`: LOGNAME, USER, LNAME, USERNAME, then the password database).
#[test]
fn basetemp_root_names_the_user_as_pytest_does() {
    let python = test_python();
    let tmp = tempfile::tempdir().unwrap();
    let suite = tmp.path().join("suite");
    std::fs::create_dir_all(&suite).unwrap();
    std::fs::write(
        suite.join("test_tmp.py"),
        "import os\n\ndef test_tmp(tmp_path_factory):\n\
         \x20   base = tmp_path_factory.getbasetemp()\n\
         \x20   root = next(p for p in [base, *base.parents] if p.name.startswith('pytest-of-'))\n\
         \x20   open(os.environ['ROOT_OUT'], 'w').write(root.name)\n",
    )
    .unwrap();
    std::fs::create_dir_all(tmp.path().join("temproot")).unwrap();
    let names = ["LOGNAME", "USER", "LNAME", "USERNAME"];
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("USER", "alice")],
        &[("LOGNAME", ""), ("USER", "bob")],
        &[("USERNAME", "carol")],
        &[("LOGNAME", ""), ("USER", "")],
    ];
    let root_of = |mut cmd: Command, env: &[(&str, &str)]| -> String {
        let out_file = tmp.path().join("root.txt");
        for n in names {
            cmd.env_remove(n);
        }
        cmd.envs(env.iter().copied())
            .env("PYTEST_DEBUG_TEMPROOT", tmp.path().join("temproot"))
            .env("ROOT_OUT", &out_file);
        let out = run_with_timeout(&mut cmd, TIMEOUT);
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        std::fs::read_to_string(&out_file).unwrap()
    };
    for env in cases {
        let serial = root_of(pytest(&python, &suite, &["-p", "no:cacheprovider"]), env);
        assert_ne!(serial, "pytest-of-unknown", "{env:?}");
        let dist = root_of(
            xdist(&python, &suite, &["-n", "1", "-p", "no:cacheprovider"]),
            env,
        );
        assert_eq!(dist, serial, "{env:?}");
    }
}
