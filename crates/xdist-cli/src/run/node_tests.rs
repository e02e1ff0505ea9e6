//! The life cycle of a worker's process and session end, without a process.

use std::time::{Duration, Instant};

use serde_json::Map;
use xdist_worker::ExitKind;

use super::*;

fn node() -> Node {
    Node::new(0, "gw0".into(), 0, Map::new())
}

fn end_all_pipes(n: &mut Node) {
    for p in [Pipe::Channel, Pipe::Stdout, Pipe::Stderr] {
        n.pipes.end(p);
    }
}

#[test]
fn a_process_is_down_once_exited_and_drained_and_handled_once() {
    let (mut n, t0) = (node(), Instant::now());
    assert!(n.is_running() && !n.is_down(t0));
    assert_eq!(n.take_down(t0), None, "a running process is not down");
    assert!(n.exit(ExitKind::Code(1), t0));
    assert!(
        !n.exit(ExitKind::Signal(9), t0),
        "the first exit is the one"
    );
    assert!(n.awaits_down() && !n.is_down(t0), "its pipes still drain");
    end_all_pipes(&mut n);
    assert!(n.is_down(t0));
    assert_eq!(n.take_down(t0), Some(ExitKind::Code(1)));
    assert_eq!(n.take_down(t0), None, "handled once");
    assert!(n.is_down(t0) && !n.awaits_down() && !n.is_running());
}

#[test]
fn an_exited_process_whose_pipes_stay_open_is_down_after_the_grace() {
    let (mut n, t0) = (node(), Instant::now());
    n.exit(ExitKind::Signal(9), t0);
    n.pipes.end(Pipe::Stderr);
    assert!(!n.is_down(t0 + CHANNEL_GRACE - Duration::from_millis(1)));
    let late = t0 + CHANNEL_GRACE;
    assert_eq!(n.take_down(late), Some(ExitKind::Signal(9)));
}

#[test]
fn a_channel_that_ends_before_finished_while_the_process_runs_is_lost() {
    let (mut n, t0) = (node(), Instant::now());
    assert!(n.close_channel(t0));
    assert_eq!(n.channel_lost(), Some(t0));
    assert!(n.pipes.ended(Pipe::Channel) && !n.pipes.all_ended());
    n.exit(ExitKind::Code(0), t0);
    assert_eq!(
        n.channel_lost(),
        None,
        "an exited process has no lost channel to kill"
    );
    let mut done = node();
    done.state = NodeState::Finished { status: 0 };
    assert!(
        !done.close_channel(t0),
        "after finished a closed channel is the normal end"
    );
    let mut gone = node();
    gone.exit(ExitKind::Code(0), t0);
    assert!(!gone.close_channel(t0));
}

#[test]
fn a_session_is_told_to_end_once_and_may_linger() {
    let mut n = node();
    assert!(!n.told_to_end());
    assert!(n.tell_end());
    assert!(!n.tell_end(), "once");
    n.linger();
    assert!(n.told_to_end() && n.ending == Ending::Lingering);
}

#[test]
fn a_lost_channel_is_due_for_the_kill_once_its_wait_passed() {
    let t0 = Instant::now();
    let mut table = NodeTable::default();
    for key in 0..3 {
        table.push(Node::new(key, format!("gw{key}"), 0, Map::new()));
    }
    table[2].state = NodeState::Finished { status: 0 };
    for i in 0..3 {
        table.close_channel(i, t0);
    }
    table.set_exited(1, ExitKind::Code(1), t0);
    assert!(table.lost_channels_due(t0).is_empty(), "within the wait");
    let later = t0 + CHANNEL_LOST_WAIT;
    assert_eq!(
        table.lost_channels_due(later),
        [0],
        "exited and finished ones are not"
    );
    assert_eq!(
        table[0].fault,
        Some(crate::report::events::Fault::ChannelLost)
    );
    assert!(table.lost_channels_due(later).is_empty(), "due once");
}
