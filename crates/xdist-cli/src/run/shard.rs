//! `--shard K/N`: which of the collected tests this CI job runs.
//!
//! - `hash`: a test belongs to shard `fnv1a64(node id) % N`. Adding or removing tests never
//!   moves the others, and every job computes the same split from its own collection.
//! - `duration` (with a duration history): longest-processing-time first over the recorded
//!   durations (ties broken by node id, then by the lowest shard), so shard wall times come out
//!   balanced; deterministic for the same collection and history. Without history: `hash`.
//!
//! Either way the N shards partition the suite: every test is in exactly one.
//!
//! `--shard auto` takes K and N from the CI provider's variables ([`PROVIDERS`]).

use xdist_core::env as envnames;
use xdist_core::protocol::{Command, WorkerEvent};

use crate::cli::args::{Shard, ShardBy};

/// A CI system that runs parallel jobs and tells each which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provider {
    pub name: &'static str,
    pub index_var: &'static str,
    pub total_var: &'static str,
    /// What the first job's index is (0 or 1).
    pub base: usize,
}

impl Provider {
    /// Bazel's test sharding protocol also has a status file and an XML output path.
    pub fn is_bazel(&self) -> bool {
        self.index_var == envnames::TEST_SHARD_INDEX
    }
}

/// Looked up in this order: Bazel first, since a Bazel test may itself run inside another
/// provider's job, whose variables then describe the outer job.
pub const PROVIDERS: &[Provider] = &[
    Provider {
        name: "Bazel",
        index_var: envnames::TEST_SHARD_INDEX,
        total_var: envnames::TEST_TOTAL_SHARDS,
        base: 0,
    },
    Provider {
        name: "Buildkite",
        index_var: envnames::BUILDKITE_PARALLEL_JOB,
        total_var: envnames::BUILDKITE_PARALLEL_JOB_COUNT,
        base: 0,
    },
    Provider {
        name: "CircleCI",
        index_var: envnames::CIRCLE_NODE_INDEX,
        total_var: envnames::CIRCLE_NODE_TOTAL,
        base: 0,
    },
    Provider {
        name: "GitLab CI",
        index_var: envnames::CI_NODE_INDEX,
        total_var: envnames::CI_NODE_TOTAL,
        base: 1,
    },
];

/// `--shard auto`: (1-based K, N, provider) from the first provider whose total variable is
/// set. A total of 1 without an index (GitLab sets `CI_NODE_TOTAL=1` on jobs that are not
/// parallel) is the whole suite.
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(usize, usize, &'static Provider), String> {
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    for p in PROVIDERS {
        let Some(total_raw) = get(p.total_var) else {
            continue;
        };
        let number = |name: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| {
                format!(
                    "--shard auto: {name}='{v}' ({}) is not a whole number",
                    p.name
                )
            })
        };
        let total = number(p.total_var, &total_raw)?;
        if total == 0 {
            return Err(format!(
                "--shard auto: {}=0 ({}): there must be at least one job",
                p.total_var, p.name
            ));
        }
        let index = match get(p.index_var) {
            Some(v) => number(p.index_var, &v)?,
            None if total == 1 => p.base,
            None => {
                return Err(format!(
                    "--shard auto: {} is set but {} is not ({}); pass --shard K/N",
                    p.total_var, p.index_var, p.name
                ))
            }
        };
        if index < p.base || index - p.base >= total {
            return Err(format!(
                "--shard auto: {}={index} is out of range for {}={total} ({} counts from {})",
                p.index_var, p.total_var, p.name, p.base
            ));
        }
        return Ok((index - p.base + 1, total, p));
    }
    let known: Vec<String> = PROVIDERS
        .iter()
        .map(|p| format!("{} {}/{}", p.name, p.index_var, p.total_var))
        .collect();
    Err(format!(
        "--shard auto found no CI provider's job variables ({}); pass --shard K/N (GitHub Actions: --shard ${{{{ matrix.shard }}}}/N)",
        known.join(", ")
    ))
}

/// 64-bit FNV-1a: stable across platforms, processes and Rust versions.
pub fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The shard (0-based) of every test.
pub fn assign(ids: &[String], total: usize, by: ShardBy, durations: Option<&[f64]>) -> Vec<usize> {
    let total = total.max(1);
    match (by, durations) {
        (ShardBy::Duration, Some(d)) if d.len() == ids.len() => {
            let mut order: Vec<usize> = (0..ids.len()).collect();
            order.sort_by(|&a, &b| d[b].total_cmp(&d[a]).then_with(|| ids[a].cmp(&ids[b])));
            let mut load = vec![0.0f64; total];
            let mut count = vec![0usize; total];
            let mut out = vec![0; ids.len()];
            for i in order {
                // Least loaded; ties: fewer tests, then the lower shard.
                let s = (0..total)
                    .min_by(|&x, &y| {
                        load[x]
                            .total_cmp(&load[y])
                            .then(count[x].cmp(&count[y]))
                            .then(x.cmp(&y))
                    })
                    .unwrap_or(0);
                load[s] += d[i].max(0.0);
                count[s] += 1;
                out[i] = s;
            }
            out
        }
        _ => ids
            .iter()
            .map(|id| (fnv1a64(id) % total as u64) as usize)
            .collect(),
    }
}

/// Indices (ascending, in collection order) of the tests in `shard`.
pub fn select(ids: &[String], shard: Shard, durations: Option<&[f64]>) -> Vec<usize> {
    assign(ids, shard.total, shard.by, durations)
        .into_iter()
        .enumerate()
        .filter(|&(_, s)| s == shard.index - 1)
        .map(|(i, _)| i)
        .collect()
}

/// `--shard`'s index maps, fixed by the first collection: the scheduler sees only this
/// shard's tests, indexed 0..m; `map` takes its index to the workers' collection index,
/// `rev` back (MAX: not in this shard).
#[derive(Debug, Default)]
pub(super) struct ShardMaps {
    map: Option<Vec<usize>>,
    rev: Vec<usize>,
}

impl ShardMaps {
    /// The first collection (`len` tests, of which `selected` are this shard's) fixes them.
    pub(super) fn fix(&mut self, selected: &[usize], len: usize) {
        if self.map.is_some() {
            return;
        }
        let mut rev = vec![usize::MAX; len];
        for (s, &w) in selected.iter().enumerate() {
            rev[w] = s;
        }
        self.rev = rev;
        self.map = Some(selected.to_vec());
    }

    /// The suite has tests but none in this shard (a CI job that passes).
    pub(super) fn empty(&self) -> bool {
        self.map.as_ref().is_some_and(|m| m.is_empty()) && !self.rev.is_empty()
    }

    /// Scheduler indices -> the worker's collection indices.
    pub(super) fn for_workers(&self, cmds: &mut [Command]) {
        let Some(map) = &self.map else {
            return;
        };
        for c in cmds {
            if let Command::Run { indices } | Command::Steal { indices } = c {
                for x in indices.iter_mut() {
                    *x = map.get(*x).copied().unwrap_or(*x);
                }
            }
        }
    }

    /// The worker's collection indices -> scheduler indices (None: not ours).
    pub(super) fn for_scheduler(&self, ev: WorkerEvent) -> Option<WorkerEvent> {
        if self.map.is_none() {
            return Some(ev);
        }
        let m = |w: usize| self.rev.get(w).copied().filter(|&s| s != usize::MAX);
        Some(match ev {
            WorkerEvent::Logstart { i, loc } => WorkerEvent::Logstart { i: m(i)?, loc },
            WorkerEvent::Done { i, d } => WorkerEvent::Done { i: m(i)?, d },
            WorkerEvent::Report(mut r) => {
                r.index = r.index.and_then(m);
                WorkerEvent::Report(r)
            }
            WorkerEvent::Unscheduled { indices } => WorkerEvent::Unscheduled {
                indices: indices.into_iter().filter_map(m).collect(),
            },
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("tests/test_m{}.py::test_{i}", i % 7))
            .collect()
    }

    fn shard(k: usize, n: usize, by: ShardBy) -> Shard {
        Shard {
            index: k,
            total: n,
            by,
            provider: None,
        }
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn shard_maps_are_fixed_once_and_translate_both_ways() {
        let mut maps = ShardMaps::default();
        let report = |index| {
            WorkerEvent::Report(xdist_core::protocol::Report {
                index: Some(index),
                ..Default::default()
            })
        };
        let done = WorkerEvent::Done { i: 3, d: 0.5 };
        assert!(matches!(
            maps.for_scheduler(done),
            Some(WorkerEvent::Done { i: 3, .. })
        ));
        maps.fix(&[1, 3], 4);
        maps.fix(&[0], 4);
        let mut cmds = [
            Command::Run {
                indices: vec![1, 0],
            },
            Command::Shutdown,
        ];
        maps.for_workers(&mut cmds);
        assert!(matches!(&cmds[0], Command::Run { indices } if indices == &[3, 1]));
        let done = WorkerEvent::Done { i: 3, d: 0.5 };
        assert!(matches!(
            maps.for_scheduler(done),
            Some(WorkerEvent::Done { i: 1, .. })
        ));
        let other = WorkerEvent::Logstart { i: 2, loc: None };
        assert!(maps.for_scheduler(other).is_none(), "not this shard's");
        let kept = maps.for_scheduler(report(0));
        assert!(matches!(kept, Some(WorkerEvent::Report(r)) if r.index.is_none()));
        assert!(!maps.empty());
        let mut none = ShardMaps::default();
        none.fix(&[], 4);
        assert!(none.empty(), "tests, none of them this shard's");
        assert!(!ShardMaps::default().empty());
    }

    #[test]
    fn providers_index_bases() {
        let got = |pairs: &[(&str, &str)]| from_env(env(pairs)).map(|(k, n, p)| (k, n, p.name));
        assert_eq!(
            got(&[("CIRCLE_NODE_INDEX", "0"), ("CIRCLE_NODE_TOTAL", "4")]),
            Ok((1, 4, "CircleCI"))
        );
        assert_eq!(
            got(&[("CI_NODE_INDEX", "4"), ("CI_NODE_TOTAL", "4")]),
            Ok((4, 4, "GitLab CI"))
        );
        assert_eq!(
            got(&[
                ("BUILDKITE_PARALLEL_JOB", "3"),
                ("BUILDKITE_PARALLEL_JOB_COUNT", "4")
            ]),
            Ok((4, 4, "Buildkite"))
        );
        assert_eq!(
            got(&[
                ("TEST_SHARD_INDEX", "1"),
                ("TEST_TOTAL_SHARDS", "4"),
                ("CI_NODE_INDEX", "3"),
                ("CI_NODE_TOTAL", "4")
            ]),
            Ok((2, 4, "Bazel"))
        );
        // GitLab without `parallel:`: CI_NODE_TOTAL=1 alone is the whole suite.
        assert_eq!(got(&[("CI_NODE_TOTAL", "1")]), Ok((1, 1, "GitLab CI")));
        for bad in [
            &[][..],
            &[("CI_NODE_INDEX", "0"), ("CI_NODE_TOTAL", "4")][..],
            &[("CIRCLE_NODE_INDEX", "4"), ("CIRCLE_NODE_TOTAL", "4")][..],
            &[("CIRCLE_NODE_INDEX", "x"), ("CIRCLE_NODE_TOTAL", "4")][..],
            &[("TEST_TOTAL_SHARDS", "0")][..],
            &[("TEST_TOTAL_SHARDS", "3")][..],
        ] {
            let e = got(bad).unwrap_err();
            assert!(e.starts_with("--shard auto") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn shards_partition_the_suite() {
        let all = ids(1000);
        let d: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 / 10.0).collect();
        for by in [ShardBy::Hash, ShardBy::Duration] {
            for n in [1, 2, 3, 4, 7] {
                let mut seen = vec![0; all.len()];
                for k in 1..=n {
                    for i in select(&all, shard(k, n, by), Some(&d)) {
                        seen[i] += 1;
                    }
                }
                assert!(seen.iter().all(|&c| c == 1), "{by:?} {n}");
            }
        }
    }

    #[test]
    fn hash_is_stable_when_tests_are_added() {
        let before = ids(500);
        let mut after = before.clone();
        after.extend((0..50).map(|i| format!("tests/test_new.py::test_{i}")));
        after.rotate_left(17);
        for k in 1..=4 {
            let s = shard(k, 4, ShardBy::Hash);
            let a: Vec<&String> = select(&before, s, None)
                .iter()
                .map(|&i| &before[i])
                .collect();
            let b: std::collections::HashSet<&String> =
                select(&after, s, None).iter().map(|&i| &after[i]).collect();
            assert!(a.iter().all(|id| b.contains(id)));
        }
        // Known value: the split must not change between releases.
        assert_eq!(fnv1a64("a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn durations_balance_within_15_percent() {
        let all = ids(400);
        let d: Vec<f64> = (0..400)
            .map(|i| 0.01 + ((i * 7919) % 997) as f64 / 100.0)
            .collect();
        let loads: Vec<f64> = (1..=4)
            .map(|k| {
                select(&all, shard(k, 4, ShardBy::Duration), Some(&d))
                    .iter()
                    .map(|&i| d[i])
                    .sum()
            })
            .collect();
        let max = loads.iter().cloned().fold(0.0, f64::max);
        let min = loads.iter().cloned().fold(f64::MAX, f64::min);
        assert!((max - min) / max < 0.15, "{loads:?}");
        // Deterministic.
        assert_eq!(
            select(&all, shard(2, 4, ShardBy::Duration), Some(&d)),
            select(&all, shard(2, 4, ShardBy::Duration), Some(&d))
        );
    }
}
