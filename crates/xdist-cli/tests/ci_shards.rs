//! CI-native sharding: `--shard auto` with each provider's variables for 4 jobs (the union of
//! the jobs is the suite, each test exactly once; with a duration history the skewed bench
//! suite's shards are within 10% of the mean), Bazel's protocol (status file, XML_OUTPUT_FILE,
//! an empty shard passes), `--shard K/N --collect-only` listing exactly the shard, and 4 shards
//! merged back with `xdist merge-junit` and `xdist merge-durations`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const XDIST: &str = env!("CARGO_BIN_EXE_xdist");
const TIMEOUT: Duration = Duration::from_secs(180);

/// (provider, index variable, total variable, index of the first job).
const PROVIDERS: &[(&str, &str, &str, usize)] = &[
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("GitLab", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    (
        "Buildkite",
        "BUILDKITE_PARALLEL_JOB",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        0,
    ),
    ("Bazel", "TEST_SHARD_INDEX", "TEST_TOTAL_SHARDS", 0),
];

/// A clean command without any provider's variables (the host may itself be a CI job).
fn xdist_in(dir: &Path) -> Command {
    let mut cmd = clean_command(XDIST, dir);
    for (_, index, total, _) in PROVIDERS {
        cmd.env_remove(index).env_remove(total);
    }
    cmd.env_remove("TEST_SHARD_STATUS_FILE")
        .env_remove("XML_OUTPUT_FILE");
    cmd
}

/// Job `k` (0-based) of 4 as the provider numbers it: `xdist --python PY --shard auto ARGS`.
fn run_job(
    dir: &Path,
    provider: &(&str, &str, &str, usize),
    k: usize,
    envs: &[(&str, &Path)],
    args: &[&str],
) -> RunOutput {
    let (_, index, total, base) = provider;
    let mut cmd = xdist_in(dir);
    cmd.envs(envs.iter().copied());
    cmd.env(index, (k + base).to_string())
        .env(total, "4")
        .arg("--python")
        .arg(test_python())
        .args(["--shard", "auto"])
        .args(args);
    run_with_timeout(&mut cmd, TIMEOUT)
}

fn serial_outcomes(dir: &Path) -> BTreeMap<(String, String), usize> {
    outcome_multiset(&parse_serial_v(
        &run_serial_v(&test_python(), dir, &[]).stdout,
    ))
}

/// Node ids `--co -q` printed.
fn listed_ids(out: &RunOutput) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| l.contains("::"))
        .map(str::to_string)
        .collect()
}

#[test]
fn each_provider_runs_every_test_exactly_once_over_4_jobs() {
    let dir = example_copy("basic", "ci-providers");
    let expected = serial_outcomes(&dir);
    for provider in PROVIDERS {
        let mut union: BTreeMap<(String, String), usize> = BTreeMap::new();
        for k in 0..4 {
            let out = run_job(
                &dir,
                provider,
                k,
                &[],
                &["-n", "1", "-v", "-p", "no:cacheprovider"],
            );
            assert!(
                matches!(out.code, Some(0) | Some(1)),
                "{}: {}",
                provider.0,
                out.describe(3000)
            );
            for (key, n) in outcome_multiset(&parse_dist_v(&out.stdout)) {
                *union.entry(key).or_insert(0) += n;
            }
        }
        assert_eq!(union, expected, "{}", provider.0);
    }
}

/// The skewed bench suite (the shape bench/bench.py generates): 190 quick
/// tests and 10 long ones last; the history holds each test's designed seconds.
fn skewed_suite(dir: &Path) -> BTreeMap<String, f64> {
    std::fs::write(
        dir.join("conftest.py"),
        "import time\n\n\ndef burn(seconds):\n    end = time.process_time() + seconds\n    x = 0\n    \
         while time.process_time() < end:\n        for _ in range(1000):\n            x += 1\n    return x\n",
    )
    .unwrap();
    let mut history = BTreeMap::new();
    for f in 0..19 {
        let mut text = String::from("from conftest import burn\n\n");
        for i in 0..10 {
            text.push_str(&format!("def test_quick_{i:02}():\n    burn(0.005)\n\n"));
            history.insert(format!("test_skew_{f:02}.py::test_quick_{i:02}"), 0.005);
        }
        std::fs::write(dir.join(format!("test_skew_{f:02}.py")), text).unwrap();
    }
    let mut text = String::from("from conftest import burn\n\n");
    for (i, s) in [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 2.0]
        .iter()
        .enumerate()
    {
        let name = format!("test_long_{i:02}_{}ms", (s * 1000.0) as u32);
        text.push_str(&format!("def {name}():\n    burn({s})\n\n"));
        history.insert(format!("test_skew_zz_long.py::{name}"), *s);
    }
    std::fs::write(dir.join("test_skew_zz_long.py"), text).unwrap();
    let cache = dir.join(".pytest_cache/v/xdist");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join("durations"),
        serde_json::to_string(&history).unwrap(),
    )
    .unwrap();
    history
}

#[test]
fn provider_shards_are_balanced_by_the_history() {
    let dir = scratch_dir("ci-skewed");
    let history = skewed_suite(&dir);
    for provider in PROVIDERS {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut loads = Vec::new();
        for k in 0..4 {
            let out = run_job(&dir, provider, k, &[], &["--co", "-q"]);
            assert_eq!(out.code, Some(0), "{}: {}", provider.0, out.describe(3000));
            let ids = listed_ids(&out);
            loads.push(ids.iter().map(|id| history[id]).sum::<f64>());
            for id in ids {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), history.len(), "{}", provider.0);
        assert!(seen.values().all(|&n| n == 1), "{}: {seen:?}", provider.0);
        let mean = loads.iter().sum::<f64>() / loads.len() as f64;
        for l in &loads {
            assert!(
                (l - mean).abs() <= 0.10 * mean,
                "{}: shard loads {loads:?} (mean {mean})",
                provider.0
            );
        }
    }
}

#[test]
fn bazel_protocol_and_an_empty_shard() {
    let dir = scratch_dir("ci-bazel");
    std::fs::write(
        dir.join("test_two.py"),
        "def test_a():\n    pass\n\ndef test_b():\n    pass\n",
    )
    .unwrap();
    let bazel = PROVIDERS[3];
    let mut cases = 0;
    let mut empty = 0;
    for k in 0..4 {
        let status = dir.join(format!("status-{k}"));
        let xml = dir.join(format!("out-{k}.xml"));
        let envs = [
            ("TEST_SHARD_STATUS_FILE", status.as_path()),
            ("XML_OUTPUT_FILE", xml.as_path()),
        ];
        let args = ["-n", "1", "-p", "no:cacheprovider", "--shard-by", "hash"];
        let out = run_job(&dir, &bazel, k, &envs, &args);
        // 2 tests over 4 shards: some are empty, and an empty shard passes.
        assert_eq!(out.code, Some(0), "{}", out.describe(3000));
        assert!(
            status.exists(),
            "status file not touched\n{}",
            out.describe(2000)
        );
        let text = std::fs::read_to_string(&xml).unwrap_or_default();
        assert!(text.contains("<testsuite "), "{}", out.describe(2000));
        cases += text.matches("<testcase ").count();
        if out.stderr.contains(&format!(
            "shard {}/4 has none of the 2 collected tests: nothing to run, which passes",
            k + 1
        )) {
            empty += 1;
        }
    }
    assert_eq!(cases, 2);
    assert!(empty >= 2, "at least two of 4 shards of 2 tests are empty");
}

#[test]
fn collect_only_lists_exactly_the_shard() {
    let py = test_python();
    let dir = example_copy("basic", "ci-co");
    let mut all = BTreeSet::new();
    for k in 1..=4 {
        let shard = format!("{k}/4");
        let base = ["--python", py.to_str().unwrap(), "-p", "no:cacheprovider"];
        let co = run_with_timeout(
            xdist_in(&dir)
                .args(base)
                .args(["--shard", &shard, "--co", "-q"]),
            TIMEOUT,
        );
        assert_eq!(co.code, Some(0), "{}", co.describe(3000));
        let listed: BTreeSet<String> = listed_ids(&co).into_iter().collect();
        assert!(
            co.stdout
                .contains(&format!("{}/29 tests collected", listed.len())),
            "{}",
            co.describe(3000)
        );
        // What a distributed run of that shard runs, and a plain one (-n 0) too.
        for n in ["2", "0"] {
            let run = run_with_timeout(
                xdist_in(&dir)
                    .args(base)
                    .args(["--shard", &shard, "-n", n, "-v"]),
                TIMEOUT,
            );
            let ran: BTreeSet<String> = if n == "0" {
                parse_serial_v(&run.stdout)
                    .into_iter()
                    .map(|l| l.nodeid)
                    .collect()
            } else {
                parse_dist_v(&run.stdout)
                    .into_iter()
                    .map(|l| l.nodeid)
                    .collect()
            };
            assert_eq!(listed, ran, "-n {n}\n{}", run.describe(3000));
        }
        all.extend(listed);
    }
    assert_eq!(all.len(), 28);
}

#[test]
fn four_shards_merge_back_into_one_report_and_one_history() {
    let py = test_python();
    let dir = example_copy("basic", "ci-merge");
    let expected = serial_outcomes(&dir);
    let history = dir.join(".pytest_cache/v/xdist/durations");
    // A full run first: the history every job restores.
    let out = run_with_timeout(
        xdist_in(&dir).args(["--python", py.to_str().unwrap(), "-n", "2"]),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(1), "{}", out.describe(3000));
    let base = std::fs::read(&history).expect("history written");
    let (xmls, job_histories, ran_by) = run_four_shards(&dir, &py, &history, &base);
    // One JUnit file: every test case exactly once, counts the serial run's.
    let merged = dir.join("merged.xml");
    let out = run_with_timeout(
        xdist_in(&dir).arg("merge-junit").arg(&merged).args(&xmls),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{}", out.describe(3000));
    check_merged_junit(&py, &merged, &expected);
    let total: usize = expected.values().sum();

    // One history: every test, each with the duration the job that ran it measured.
    std::fs::write(&history, &base).unwrap();
    let out = run_with_timeout(
        xdist_in(&dir)
            .args(["merge-durations", ".pytest_cache"])
            .args(&job_histories),
        TIMEOUT,
    );
    assert_eq!(out.code, Some(0), "{}", out.describe(3000));
    let read = |p: &Path| -> BTreeMap<String, f64> {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let merged = read(&history);
    assert_eq!(ran_by.len(), total);
    for (id, k) in &ran_by {
        let job = read(&job_histories[k - 1]);
        assert_eq!(merged.get(id), job.get(id), "{id} (shard {k})");
        assert!(merged.contains_key(id), "{id}");
    }
}

/// Four `--shard k/4` jobs, each from the same restored history: their JUnit files, their
/// histories and which job ran each test.
fn run_four_shards(
    dir: &Path,
    py: &Path,
    history: &Path,
    base: &[u8],
) -> (Vec<PathBuf>, Vec<PathBuf>, BTreeMap<String, usize>) {
    let mut xmls = Vec::new();
    let mut job_histories = Vec::new();
    let mut ran_by: BTreeMap<String, usize> = BTreeMap::new();
    for k in 1..=4 {
        std::fs::write(history, base).unwrap();
        let xml = dir.join(format!("junit-{k}.xml"));
        let out = run_with_timeout(
            xdist_in(dir)
                .args(["--python", py.to_str().unwrap(), "-n", "2", "-v"])
                .args(["--shard", &format!("{k}/4"), "--junitxml"])
                .arg(&xml),
            TIMEOUT,
        );
        assert!(
            matches!(out.code, Some(0) | Some(1)),
            "{}",
            out.describe(3000)
        );
        for l in parse_dist_v(&out.stdout) {
            ran_by.insert(l.nodeid, k);
        }
        let saved = dir.join(format!("durations-{k}"));
        std::fs::copy(history, &saved).unwrap();
        xmls.push(xml);
        job_histories.push(saved);
    }
    (xmls, job_histories, ran_by)
}

/// The merged JUnit file: every test case exactly once, counts the serial run's.
fn check_merged_junit(py: &Path, merged: &Path, expected: &BTreeMap<(String, String), usize>) {
    let norm = junit_normalized(py, merged, false).expect("merged junit is pytest-shaped");
    let doc: serde_json::Value = serde_json::from_str(&norm).unwrap();
    let names: Vec<String> = doc["testcases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{}::{}", c["attrs"]["classname"], c["attrs"]["name"]))
        .collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    let total: usize = expected.values().sum();
    assert_eq!(names.len(), total, "{names:?}");
    assert_eq!(unique.len(), total);
    let suite = &doc["suite"];
    let count = |word: &str| expected.iter().filter(|((_, w), _)| w == word).count();
    assert_eq!(suite["tests"], total.to_string());
    assert_eq!(suite["failures"], count("FAILED").to_string());
    assert_eq!(
        suite["skipped"],
        (count("SKIPPED") + count("XFAIL")).to_string()
    );
}

/// Plain pytest runs (`--co`, `-n 0`) of an empty shard pass too, with the same line.
#[test]
fn an_empty_shard_passes_in_plain_runs() {
    let dir = scratch_dir("ci-empty-plain");
    std::fs::write(dir.join("test_one.py"), "def test_only():\n    pass\n").unwrap();
    let mut empty = 0;
    for k in 1..=4 {
        for mode in [&["--co", "-q"][..], &["-n", "0"][..]] {
            let out = run_with_timeout(
                xdist_in(&dir)
                    .arg("--python")
                    .arg(test_python())
                    .args(["-p", "no:cacheprovider", "--shard", &format!("{k}/4")])
                    .args(mode),
                TIMEOUT,
            );
            assert_eq!(out.code, Some(0), "{mode:?}\n{}", out.describe(3000));
            if out.stderr.contains(&format!(
                "shard {k}/4 has none of the 1 collected tests: nothing to run, which passes"
            )) {
                empty += 1;
            }
        }
    }
    // One shard holds the test; the other three are empty, in both modes.
    assert_eq!(empty, 6);
}
