//! Property tests: random collections (files, classes, groups), 1..8 workers, durations,
//! crashes with replacements, re-pended crash items, and steal answers of every kind, driven
//! by the crate's simulator.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use proptest::prelude::*;
use xdist_sched::sim::{simulate, SimOptions, SimReport, StealAnswer};
use xdist_sched::{make_scheduler, Collection, DistMode, NodeKey, SchedConfig, ScopeKind};

#[derive(Debug, Clone)]
struct Case {
    mode: DistMode,
    /// Per test: (file, class, group).
    tests: Vec<(u8, Option<u8>, Option<u8>)>,
    nodes: usize,
    durations: Option<Vec<f64>>,
    reorder: bool,
    max_chunk: Option<usize>,
    seed: u64,
    crashes: usize,
    repend: bool,
    steal: StealAnswer,
}

fn collection(case: &Case) -> Collection {
    let ids = case
        .tests
        .iter()
        .enumerate()
        .map(|(i, (f, c, _))| match c {
            Some(c) => format!("test_f{f}.py::TestC{c}::test_{i}"),
            None => format!("test_f{f}.py::test_{i}"),
        })
        .collect();
    let groups = if case.tests.iter().any(|t| t.2.is_some()) {
        case.tests
            .iter()
            .map(|t| t.2.map(|g| format!("g{g}")))
            .collect()
    } else {
        Vec::new()
    };
    Collection { ids, groups }
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let mode = prop::sample::select(DistMode::ALL.to_vec());
    let test = (
        0u8..5,
        prop::option::weighted(0.3, 0u8..3),
        prop::option::weighted(0.3, 0u8..4),
    );
    let steal = prop::sample::select(vec![
        StealAnswer::AllOrNone,
        StealAnswer::Partial,
        StealAnswer::Random,
    ]);
    (
        mode,
        prop::collection::vec(test, 0..60),
        1usize..=8,
        any::<bool>(),
        any::<bool>(),
        prop::option::weighted(0.3, 1usize..5),
        any::<u64>(),
        0usize..4,
        any::<bool>(),
        steal,
    )
        .prop_flat_map(
            |(mode, tests, nodes, timed, reorder, max_chunk, seed, crashes, repend, steal)| {
                let n = tests.len();
                let durations = if timed {
                    prop::collection::vec(0.0f64..10.0, n..=n)
                        .prop_map(Some)
                        .boxed()
                } else {
                    Just(None).boxed()
                };
                durations.prop_map(move |durations| Case {
                    mode,
                    tests: tests.clone(),
                    nodes,
                    durations,
                    reorder,
                    max_chunk,
                    seed,
                    crashes,
                    repend,
                    steal,
                })
            },
        )
}

fn run_case(case: &Case) -> Result<(Collection, SimReport), String> {
    let coll = collection(case);
    let cfg = SchedConfig {
        num_nodes: case.nodes,
        max_sched_chunk: case.max_chunk,
        loadscope_reorder: case.reorder,
        durations: case.durations.clone().map(Arc::new),
    };
    let mut sched = make_scheduler(case.mode, cfg);
    let opts = SimOptions {
        seed: case.seed,
        num_nodes: case.nodes,
        distinct_specs: case.mode == DistMode::Each,
        crashes: case.crashes,
        crash_per_mille: 30,
        repend_crashes: case.repend,
        steal_answer: case.steal,
        max_steps: 200_000,
        trace: std::env::var_os("SIM_TRACE").is_some(),
    };
    let report = simulate(sched.as_mut(), Arc::new(coll.clone()), &opts)?;
    Ok((coll, report))
}

/// The unit each test must stay in (None: free to move).
fn unit_key(mode: DistMode, coll: &Collection, i: usize) -> Option<String> {
    match mode {
        DistMode::LoadScope => Some(ScopeKind::Scope.split(&coll.ids[i]).to_string()),
        DistMode::LoadFile => Some(ScopeKind::File.split(&coll.ids[i]).to_string()),
        DistMode::LoadGroup | DistMode::WorkSteal => coll.group(i).map(str::to_string),
        _ => None,
    }
}

fn check(case: &Case, coll: &Collection, r: &SimReport) -> Result<(), String> {
    let n = coll.len();
    let mut done = vec![0usize; n];
    let mut crashed = vec![0usize; n];
    let mut repended = vec![0usize; n];
    for &(i, _) in &r.completions {
        done[i] += 1;
    }
    for &(i, _) in &r.crashes {
        crashed[i] += 1;
    }
    for &i in &r.repended {
        repended[i] += 1;
    }
    if case.mode == DistMode::Each {
        let lineage: HashMap<NodeKey, usize> = r.lineage.iter().copied().collect();
        let mut per = vec![vec![0usize; n]; case.nodes];
        for &(i, k) in r.completions.iter().chain(&r.crashes) {
            per[lineage[&k]][i] += 1;
        }
        for (l, counts) in per.iter().enumerate() {
            for (i, &c) in counts.iter().enumerate() {
                if c != 1 {
                    return Err(format!("each: worker {l} ran test {i} {c} times"));
                }
            }
        }
        return Ok(());
    }
    for i in 0..n {
        if done[i] > 1 || done[i] + crashed[i] != repended[i] + 1 {
            return Err(format!(
                "test {i}: completed {} crashed {} re-pended {}",
                done[i], crashed[i], repended[i]
            ));
        }
    }
    // Units stay on one node; each crash inside a unit may move the rest of it once, and a
    // re-pended test whose unit went to a node that no longer takes work runs on its own.
    let mut nodes_of: HashMap<String, HashSet<NodeKey>> = HashMap::new();
    let mut crashes_in: HashMap<String, usize> = HashMap::new();
    for &(i, k) in &r.completions {
        if let Some(u) = unit_key(case.mode, coll, i) {
            nodes_of.entry(u).or_default().insert(k);
        }
    }
    for &i in r.crashes.iter().map(|(i, _)| i).chain(&r.repended) {
        if let Some(u) = unit_key(case.mode, coll, i) {
            *crashes_in.entry(u).or_default() += 1;
        }
    }
    for (u, nodes) in &nodes_of {
        // A worker that ran part of a unit and then crashed in another one hands the unit's
        // rest to another worker (pytest-xdist's `remove_node` does the same).
        let crashed_holders = (r.crashes.iter())
            .filter(|(i, k)| nodes.contains(k) && unit_key(case.mode, coll, *i).as_ref() != Some(u))
            .count();
        let allowed = 1 + crashes_in.get(u).copied().unwrap_or(0) + crashed_holders;
        if nodes.len() > allowed {
            return Err(format!("unit {u} ran on {} nodes: {nodes:?}", nodes.len()));
        }
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES=N runs more (or fewer) cases.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(600),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_scheduler_runs_every_test_once(case in case_strategy()) {
        let (coll, report) = run_case(&case).map_err(TestCaseError::fail)?;
        check(&case, &coll, &report).map_err(TestCaseError::fail)?;
    }
}

#[test]
fn worksteal_steals_and_keeps_groups_under_partial_answers() {
    // A fixed, steal-heavy scenario: many tests, a few groups, partial answers.
    let mut steals = 0;
    for seed in 0..40 {
        let case = Case {
            mode: DistMode::WorkSteal,
            tests: (0..120)
                .map(|i| ((i % 7) as u8, None, (i % 5 == 0).then_some((i % 3) as u8)))
                .collect(),
            nodes: 4,
            durations: None,
            reorder: true,
            max_chunk: None,
            seed,
            crashes: (seed % 3) as usize,
            repend: seed % 2 == 0,
            steal: StealAnswer::Random,
        };
        let (coll, report) = run_case(&case).unwrap();
        check(&case, &coll, &report).unwrap();
        steals += report.steals;
    }
    assert!(steals > 0, "the scenario must exercise stealing");
}
