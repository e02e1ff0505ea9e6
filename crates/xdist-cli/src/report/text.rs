//! Small text helpers shared by reporters.

use crate::report::events::{Interruption, ShouldFail, XdistNote};
use crate::report::termwriter::display_width;
use xdist_core::protocol::Report;

/// pytest's `_format_trimmed`: fit `" - {msg}"` into `available` cells, ellipsizing.
pub fn format_trimmed(msg: &str, available: usize) -> Option<String> {
    let msg = msg.split('\n').next().unwrap_or("");
    let format_width = 3; // " - "
    let ellipsis = "...";
    if format_width + ellipsis.len() > available {
        return None;
    }
    if format_width + display_width(msg) > available {
        let avail = available - ellipsis.len();
        let mut m: String = msg.chars().take(avail).collect();
        while format_width + display_width(&m) > avail {
            m.pop();
        }
        m.push_str(ellipsis);
        return Some(format!(" - {m}"));
    }
    Some(format!(" - {msg}"))
}

/// A short-summary line for a report the controller made itself (a crash).
pub fn short_line(
    word: &str,
    markup: &[&str],
    nodeid: &str,
    msg: &str,
    width: usize,
    color: bool,
) -> String {
    let (path, rest) = match nodeid.split_once("::") {
        Some((p, r)) => (p, Some(r)),
        None => (nodeid, None),
    };
    let paint = |t: &str, codes: &[&str]| -> String {
        if !color {
            return t.to_string();
        }
        let mut s = String::new();
        for c in codes {
            let code = match *c {
                "red" => 31,
                "bold" => 1,
                _ => continue,
            };
            s.push_str(&format!("\x1b[{code}m"));
        }
        format!("{s}{t}\x1b[0m")
    };
    let node = match rest {
        Some(r) => format!("{path}::{}", paint(r, &["bold"])),
        None => path.to_string(),
    };
    let mut line = format!("{} {node}", paint(word, markup));
    let plain_width = display_width(word) + 1 + display_width(nodeid);
    if let Some(m) = format_trimmed(msg, width.saturating_sub(plain_width)) {
        line.push_str(&m);
    }
    line
}

/// What a run of a shard without any of the `collected` tests says (it passes).
pub fn empty_shard_line(index: usize, total: usize, collected: usize) -> String {
    format!(
        "xdist: shard {index}/{total} has none of the {collected} collected tests: nothing to run, which passes"
    )
}

/// Python's `f"{x:g}"` (6 significant digits, trailing zeros stripped).
pub fn format_g(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return if x == 0.0 { "0".into() } else { x.to_string() };
    }
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if (-4..6).contains(&exp) {
        let decimals = (5 - exp).max(0) as usize;
        strip(&format!("{x:.decimals$}"))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.abs())
    }
}

#[cfg(test)]
mod format_g_tests {
    use super::format_g;

    #[test]
    fn like_python() {
        assert_eq!(format_g(0.005), "0.005");
        assert_eq!(format_g(1.0), "1");
        assert_eq!(format_g(0.5), "0.5");
        assert_eq!(format_g(1e-5), "1e-05");
        assert_eq!(format_g(123456789.0), "1.23457e+08");
        assert_eq!(format_g(0.0), "0");
        assert_eq!(format_g(2.25), "2.25");
    }
}

/// The line for one of xdist's own facts.
pub fn note_line(note: &XdistNote) -> String {
    match note {
        XdistNote::RestartLimit { worker, max: 0 } => {
            format!("worker {worker} crashed and worker restarting disabled")
        }
        XdistNote::RestartLimit { max, .. } => format!("maximum crashed workers reached: {max}"),
        XdistNote::NotRun { count } => {
            let s = if *count == 1 { " was" } else { "s were" };
            format!("{count} test{s} not run")
        }
        XdistNote::PluginSection { plugin, text } => format!("{plugin}: {}", text.trim_end()),
    }
}

/// The summary's `!!!! ... !!!!` line for an interrupted run.
pub fn interruption_line(why: &Interruption) -> String {
    match why {
        Interruption::Signal => "KeyboardInterrupt".into(),
        Interruption::Worker { worker } => {
            format!("<WorkerController {worker}> received keyboard-interrupt")
        }
        Interruption::CollectionErrors { count } => {
            let s = if *count == 1 { "" } else { "s" };
            format!("Interrupted: {count} error{s} during collection")
        }
    }
}

/// The summary's `!!!! ... !!!!` line for a run stopped early.
pub fn shouldfail_line(why: &ShouldFail) -> String {
    match why {
        ShouldFail::MaxFail { failures } => format!("stopping after {failures} failures"),
        ShouldFail::Worker(reason) => reason.clone(),
    }
}

/// The header line saying why the workers are spawned, not forked.
pub fn spawn_fallback_line(reason: &str) -> String {
    format!("xdist: spawning workers: {reason}")
}

/// The collection error of `worker`, which collected other tests than the first (`diff`).
pub fn collection_differs_report(worker: &str, diff: &str) -> Report {
    Report {
        when: "collect".into(),
        outcome: "failed".into(),
        category: "error".into(),
        letter: "E".into(),
        word: "ERROR".into(),
        head: Some(worker.to_string()),
        body: Some(format!("{}\n", diff.trim_end())),
        short: Some(format!("ERROR {worker}")),
        counts: true,
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_like_pytest() {
        assert_eq!(format_trimmed("abc", 80).as_deref(), Some(" - abc"));
        assert_eq!(
            format_trimmed("abcdefghij", 10).as_deref(),
            Some(" - abcd...")
        );
        assert_eq!(format_trimmed("abc", 5), None);
    }

    #[test]
    fn xdist_notes_and_stop_reasons_in_pytest_xdists_words() {
        let worker = "gw1".to_string();
        let note = |max| XdistNote::RestartLimit {
            worker: worker.clone(),
            max,
        };
        assert_eq!(
            note_line(&note(0)),
            "worker gw1 crashed and worker restarting disabled"
        );
        assert_eq!(note_line(&note(2)), "maximum crashed workers reached: 2");
        assert_eq!(
            note_line(&XdistNote::NotRun { count: 1 }),
            "1 test was not run"
        );
        assert_eq!(
            note_line(&XdistNote::NotRun { count: 3 }),
            "3 tests were not run"
        );
        let (plugin, text) = ("p".to_string(), "wrote x\n".to_string());
        let section = XdistNote::PluginSection { plugin, text };
        assert_eq!(note_line(&section), "p: wrote x");
        let errors = |count| Interruption::CollectionErrors { count };
        assert_eq!(
            interruption_line(&errors(1)),
            "Interrupted: 1 error during collection"
        );
        assert_eq!(
            interruption_line(&errors(2)),
            "Interrupted: 2 errors during collection"
        );
        assert_eq!(
            interruption_line(&Interruption::Worker { worker }),
            "<WorkerController gw1> received keyboard-interrupt"
        );
        assert_eq!(
            interruption_line(&Interruption::Signal),
            "KeyboardInterrupt"
        );
        let maxfail = ShouldFail::MaxFail { failures: 2 };
        assert_eq!(shouldfail_line(&maxfail), "stopping after 2 failures");
    }
}
