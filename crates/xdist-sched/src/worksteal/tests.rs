//! Unit tests of the work-stealing scheduler.

use super::*;
use crate::testutil::*;

#[test]
fn even_split_and_steal_worked_example() {
    let (mut s, out) = started(WorkStealingScheduling::new(cfg(2)), 16, 2);
    assert_eq!(
        out,
        vec![run(0, (0..8).collect()), run(1, (8..16).collect())]
    );
    let mut out = Vec::new();
    for i in 0..6 {
        s.mark_test_complete(NodeKey(0), i, 0.0, &mut out);
    }
    assert!(out.is_empty());
    s.mark_test_complete(NodeKey(0), 6, 0.0, &mut out);
    assert_eq!(out, vec![steal(1, vec![12, 13, 14, 15])]);
    assert!(!s.tests_finished());
    out.clear();
    s.remove_pending_tests_from_node(NodeKey(1), &[12, 13, 14, 15], &mut out)
        .unwrap();
    assert_eq!(out, vec![run(0, vec![12, 13, 14, 15])]);
}

#[test]
fn uneven_splits() {
    let (_, out) = started(WorkStealingScheduling::new(cfg(3)), 5, 3);
    // [0], [1, 2], [3, 4]; node 0 is idle and nothing can be stolen: it runs its last test.
    assert_eq!(
        out,
        vec![
            run(0, vec![0]),
            run(1, vec![1, 2]),
            run(2, vec![3, 4]),
            shutdown(0)
        ]
    );
    let (_, out) = started(WorkStealingScheduling::new(cfg(3)), 2, 3);
    // [], [0], [1]: node 0 has nothing to do or steal and is shut down.
    assert_eq!(
        out,
        vec![
            run(1, vec![0]),
            run(2, vec![1]),
            shutdown(0),
            shutdown(1),
            shutdown(2)
        ]
    );
}

#[test]
fn empty_steal_answer_waits_for_a_completion() {
    let (mut s, _) = started(WorkStealingScheduling::new(cfg(2)), 16, 2);
    let mut out = Vec::new();
    for i in 0..7 {
        s.mark_test_complete(NodeKey(0), i, 0.0, &mut out);
    }
    out.clear();
    s.remove_pending_tests_from_node(NodeKey(1), &[], &mut out)
        .unwrap();
    assert!(out.is_empty());
    s.mark_test_complete(NodeKey(1), 8, 0.0, &mut out);
    // Node 1 now holds 7: steal min(7 / 2, 7 - 2) = 3.
    assert_eq!(out, vec![steal(1, vec![13, 14, 15])]);
}

#[test]
fn groups_are_never_split() {
    // 8 tests; 4..8 are one group.
    let mut c = collection(8);
    c.groups = (0..8).map(|i| (i >= 4).then(|| "g".to_string())).collect();
    let (mut s, out) = started_with(WorkStealingScheduling::new(cfg(2)), c, 2);
    // Units: 0, 1, 2, 3, g. Split: node 0 gets 4 tests (units 0..3), node 1 gets g.
    assert_eq!(
        out,
        vec![run(0, vec![0, 1, 2, 3]), run(1, vec![4, 5, 6, 7])]
    );
    let mut out = Vec::new();
    for i in 0..3 {
        s.mark_test_complete(NodeKey(0), i, 0.0, &mut out);
    }
    // Node 0 is idle; node 1 holds only its running unit: nothing to steal.
    assert_eq!(out, vec![shutdown(0)]);
    // A partial answer that would split the group goes back to node 1.
    let (mut s, _) = started_with(
        WorkStealingScheduling::new(cfg(2)),
        {
            let mut c = collection(8);
            c.groups = (0..8).map(|i| (i >= 6).then(|| "g".to_string())).collect();
            c
        },
        2,
    );
    // Units 0..5 single, g = [6, 7]. node 0: [0, 1, 2, 3], node 1: [4, 5, 6, 7].
    let mut out = Vec::new();
    for i in 0..3 {
        s.mark_test_complete(NodeKey(0), i, 0.0, &mut out);
    }
    // Victim node 1 (4 pending): num_steal = 2: the whole group [6, 7].
    assert_eq!(out, vec![steal(1, vec![6, 7])]);
    out.clear();
    s.remove_pending_tests_from_node(NodeKey(1), &[7], &mut out)
        .unwrap();
    assert_eq!(out[0], run(1, vec![7]));
}

fn files(names: &[&str]) -> Collection {
    Collection {
        ids: names
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{f}::test_{i}"))
            .collect(),
        groups: Vec::new(),
    }
}

#[test]
fn durations_split_files_into_contiguous_runs_of_equal_time() {
    let mut c = cfg(2);
    c.durations = Some(Arc::new(vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0]));
    let coll = files(&["a.py", "a.py", "b.py", "b.py", "c.py", "c.py", "c.py"]);
    let (_, out) = started_with(WorkStealingScheduling::new(c), coll, 2);
    // Files longest first (b 4 s, c 3 s, a 2 s), cut where node 0 is closest to half
    // of 9 s: no file is split but c.py.
    assert_eq!(out, vec![run(0, vec![2, 3, 4]), run(1, vec![5, 6, 0, 1])]);
}

#[test]
fn a_file_longer_than_a_share_is_dealt_longest_first() {
    let mut c = cfg(2);
    c.durations = Some(Arc::new(vec![1.0, 1.0, 1.0, 1.0, 4.0, 1.0]));
    let coll = files(&["m0.py", "m0.py", "m0.py", "m1.py", "m1.py", "m1.py"]);
    let (_, out) = started_with(WorkStealingScheduling::new(c), coll, 2);
    // m1.py (6 s) is more than half of 9 s: its tests go 4 -> node 0, 3 and 5 -> node 1;
    // then m0.py tops node 0 up to 5 s and node 1 to 4 s.
    assert_eq!(out, vec![run(0, vec![4, 0]), run(1, vec![3, 5, 1, 2])]);
}

#[test]
fn long_tests_at_the_end_of_one_file_are_balanced() {
    // bench/'s `skewed` suite: 19 files of ten 5 ms tests, then one file of ten long
    // tests. Cutting the long file in one place gave one node 6.5 s and the other 5.45 s.
    let long = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 2.0];
    let mut names: Vec<String> = (0..190)
        .map(|i| format!("test_skew_{:02}.py", i / 10))
        .collect();
    let mut durations = vec![0.005; 190];
    names.extend((0..10).map(|_| "test_skew_zz_long.py".to_string()));
    durations.extend(long);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut c = cfg(2);
    c.durations = Some(Arc::new(durations.clone()));
    let (_, out) = started_with(WorkStealingScheduling::new(c), files(&names), 2);
    let loads: Vec<f64> = out
        .iter()
        .map(|a| match a {
            Action::Run { indices, .. } => indices.iter().map(|&i| durations[i]).sum(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let total: f64 = durations.iter().sum();
    assert_eq!(loads.len(), 2);
    for load in loads {
        assert!((load - total / 2.0).abs() < 0.05, "{load} of {total}");
    }
}
