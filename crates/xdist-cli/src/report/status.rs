//! The live status area: one line at the bottom of a terminal showing which test each
//! worker is running and for how long, `completed/total` and an ETA.
//!
//! It lives between the terminal reporter and stdout ([`wrap`]): whatever the reporter
//! writes is held until the next flush, and a flush writes, in one piece, the sequence that
//! erases the status line, the held text, and the status line again. The scrolling output
//! is therefore exactly what it would be without the status area; the line is erased for
//! good before the summary ([`StatusHandle::finish`]) and when the writer is dropped.
//!
//! When the scrolling output's last line is unfinished (pytest's progress letters), the
//! status is drawn on the line below it and the erase moves the cursor back to the end of
//! that unfinished line.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::rc::Rc;
use std::time::Instant;

use crate::report::events::RunEvent;

use crate::report::termwriter::{display_width, strip_ansi};

/// Whether a run should show the status area: stdout is a terminal that can move its
/// cursor, the run is not quiet, and `XDIST_NO_STATUS` is unset.
pub fn wanted(quiet: bool) -> bool {
    !quiet
        && crate::report::termwriter::stdout_is_smart_terminal()
        && std::env::var_os(xdist_core::env::XDIST_NO_STATUS).is_none_or(|v| v.is_empty())
}

/// Wraps `out` (a terminal) with a status area; `fallback_width` is used when the terminal
/// size cannot be read.
pub fn wrap(out: Box<dyn Write>, fallback_width: usize) -> (Box<dyn Write>, StatusHandle) {
    let shared = Rc::new(RefCell::new(Shared {
        model: Model::default(),
        active: true,
        drawn: None,
        partial: String::new(),
        pending: Vec::new(),
        fallback_width,
        fixed_width: None,
    }));
    let writer = StatusOut {
        inner: out,
        shared: shared.clone(),
    };
    (Box::new(writer), StatusHandle { shared })
}

/// The reporter's side of the status area: feeds it run events.
pub struct StatusHandle {
    shared: Rc<RefCell<Shared>>,
}

impl StatusHandle {
    /// Updates the status from a run event (the reporter flushes afterwards to redraw).
    pub fn event(&self, event: &RunEvent) {
        let mut s = self.shared.borrow_mut();
        match event {
            // `-q` hides the status line.
            RunEvent::SessionStart { options, .. } if options.verbose < 0 => {
                s.active = false;
            }
            RunEvent::CollectionComplete {
                workers,
                ids,
                estimates,
                ..
            } => {
                let m = &mut s.model;
                m.total = ids.len();
                m.workers = *workers;
                m.since = Some(Instant::now());
                if let Some(est) = estimates {
                    m.remaining = est.iter().sum();
                    m.estimates = ids.iter().cloned().zip(est.iter().copied()).collect();
                }
            }
            RunEvent::TestStarted { worker, nodeid } => {
                s.model
                    .running
                    .insert(WorkerKey::of(worker), (nodeid.to_string(), Instant::now()));
            }
            RunEvent::TestFinished { worker, nodeid, .. } => {
                let m = &mut s.model;
                if m.running.get(&WorkerKey::of(worker)).map(|r| r.0.as_str()) == Some(nodeid) {
                    m.running.remove(&WorkerKey::of(worker));
                }
                m.completed += 1;
                if let Some(est) = m.estimates.remove(nodeid) {
                    m.remaining -= est;
                }
            }
            RunEvent::NodeDown { worker, .. } => {
                s.model.running.remove(&WorkerKey::of(worker));
            }
            _ => {}
        }
    }

    /// Erases the status line for good (before the end-of-run summary).
    pub fn finish(&self) {
        self.shared.borrow_mut().active = false;
    }

    /// Whether the status line is still shown (and wants ticks to update its times).
    pub fn active(&self) -> bool {
        self.shared.borrow().active
    }

    /// Fixes the terminal width (tests; normally it is read from the terminal each draw).
    #[cfg(test)]
    fn set_width(&self, width: usize) {
        self.shared.borrow_mut().fixed_width = Some(width);
    }
}

/// Orders `gw2` before `gw10`.
#[derive(PartialEq, Eq, PartialOrd, Ord, Clone)]
struct WorkerKey(usize, String);

impl WorkerKey {
    fn of(worker: &str) -> Self {
        let n = worker
            .trim_start_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(usize::MAX);
        WorkerKey(n, worker.to_string())
    }
}

/// What the status line says.
#[derive(Default)]
struct Model {
    total: usize,
    completed: usize,
    workers: usize,
    /// When the tests started to run (collection complete).
    since: Option<Instant>,
    /// Running test and since when, per worker.
    running: BTreeMap<WorkerKey, (String, Instant)>,
    /// Recorded seconds of the tests not finished yet (empty without history).
    estimates: HashMap<String, f64>,
    /// Their sum.
    remaining: f64,
}

impl Model {
    /// Seconds left: from the recorded durations of the tests not finished (less what the
    /// running ones already spent) spread over the workers, else from this run's pace.
    fn eta(&self, now: Instant) -> Option<f64> {
        let since = self.since?;
        if self.completed >= self.total {
            return None;
        }
        if !self.estimates.is_empty() {
            let spent: f64 = self
                .running
                .values()
                .map(|(id, at)| {
                    let est = self.estimates.get(id).copied().unwrap_or(0.0);
                    now.duration_since(*at).as_secs_f64().min(est)
                })
                .sum();
            let work = (self.remaining - spent).max(0.0);
            return Some(work / self.workers.max(1) as f64);
        }
        if self.completed == 0 {
            return None;
        }
        let per_test = now.duration_since(since).as_secs_f64() / self.completed as f64;
        Some(per_test * (self.total - self.completed) as f64)
    }

    /// The status line, at most `width - 1` columns, or None before tests run.
    fn render(&self, now: Instant, width: usize) -> Option<String> {
        self.since?;
        let mut head = format!("[{}/{}]", self.completed, self.total);
        if let Some(eta) = self.eta(now) {
            let eta = eta.ceil();
            let eta = if eta < 60.0 {
                format!("{eta}s")
            } else {
                fmt_secs(eta)
            };
            head.push_str(&format!(" ETA {eta}"));
        }
        let max = width.saturating_sub(1);
        let running: Vec<(&str, &str, String)> = self
            .running
            .iter()
            .map(|(w, (id, at))| {
                let secs = now.duration_since(*at).as_secs_f64();
                (w.1.as_str(), id.as_str(), fmt_secs(secs))
            })
            .collect();
        let line = |short: bool| {
            let mut line = head.clone();
            for (worker, id, secs) in &running {
                let id = if short { short_name(id) } else { id };
                line.push_str(&format!(" | {worker} {secs} {id}"));
            }
            line
        };
        let mut text = line(false);
        if display_width(&text) > max {
            text = line(true);
        }
        Some(truncate(&text, max))
    }
}

/// `test_mod.py::TestC::test_x[1]` -> `test_x[1]`.
fn short_name(nodeid: &str) -> &str {
    let base = nodeid.split('[').next().unwrap_or(nodeid);
    match base.rfind("::") {
        Some(pos) => &nodeid[pos + 2..],
        None => nodeid,
    }
}

fn fmt_secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let s = secs as u64;
        if s < 3600 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if display_width(text) <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut w = 0;
    for c in text.chars() {
        let cw = display_width(c.encode_utf8(&mut [0; 4]));
        if w + cw + 1 > max {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

struct Shared {
    model: Model,
    active: bool,
    /// The status line is on screen; the column to return to on the line above it when the
    /// scrolling output's last line was unfinished (None: the status sits on that line).
    drawn: Option<Option<usize>>,
    /// The scrolling output's unfinished last line.
    partial: String,
    /// Written, not flushed yet.
    pending: Vec<u8>,
    fallback_width: usize,
    fixed_width: Option<usize>,
}

impl Shared {
    fn width(&self) -> usize {
        if let Some(w) = self.fixed_width {
            return w;
        }
        // SAFETY: TIOCGWINSZ fills a winsize struct we own.
        unsafe {
            let mut ws: libc::winsize = std::mem::zeroed();
            if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
                return ws.ws_col as usize;
            }
        }
        self.fallback_width
    }

    /// The bytes that erase the status line, write the pending text and redraw the line.
    fn frame(&mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Some(col) = self.drawn.take() {
            buf.extend_from_slice(b"\r\x1b[K");
            if let Some(col) = col {
                buf.extend_from_slice(format!("\x1b[1A\x1b[{}G", col + 1).as_bytes());
            }
        }
        let pending = std::mem::take(&mut self.pending);
        if !pending.is_empty() {
            let text = String::from_utf8_lossy(&pending);
            match text.rfind('\n') {
                Some(pos) => self.partial = text[pos + 1..].to_string(),
                None => self.partial.push_str(&text),
            }
            if let Some(pos) = self.partial.rfind('\r') {
                self.partial.drain(..=pos);
            }
            buf.extend_from_slice(&pending);
        }
        if !self.active {
            return buf;
        }
        let width = self.width();
        let Some(line) = self.model.render(Instant::now(), width) else {
            return buf;
        };
        let col = display_width(&strip_ansi(&self.partial));
        if col == 0 {
            buf.extend_from_slice(line.as_bytes());
            self.drawn = Some(None);
        } else if !col.is_multiple_of(width) {
            // (At an exact multiple of the width the cursor waits to wrap: no way back.)
            buf.push(b'\n');
            buf.extend_from_slice(line.as_bytes());
            self.drawn = Some(Some(col % width));
        }
        buf
    }
}

/// The writer between the terminal reporter and stdout.
struct StatusOut {
    inner: Box<dyn Write>,
    shared: Rc<RefCell<Shared>>,
}

impl Write for StatusOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.borrow_mut().pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let frame = self.shared.borrow_mut().frame();
        if !frame.is_empty() {
            self.inner.write_all(&frame)?;
        }
        self.inner.flush()
    }
}

impl Drop for StatusOut {
    fn drop(&mut self) {
        self.shared.borrow_mut().active = false;
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Buf {
        fn take(&self) -> String {
            String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
        }
    }

    fn started(h: &StatusHandle, ids: &[String]) {
        h.event(&RunEvent::CollectionComplete {
            workers: 2,
            items: ids.len(),
            deselected: 0,
            lines: Vec::new(),
            scheduler: "load".into(),
            ids: ids.to_vec(),
            estimates: None,
        });
    }

    #[test]
    fn erases_before_writing_and_returns_to_the_unfinished_line() {
        let buf = Buf::default();
        let (mut out, h) = wrap(Box::new(buf.clone()), 80);
        h.set_width(80);
        let ids = vec!["t.py::a".to_string(), "t.py::b".to_string()];
        started(&h, &ids);
        h.event(&RunEvent::TestStarted {
            worker: "gw0".into(),
            nodeid: "t.py::a".into(),
        });
        out.flush().unwrap();
        let first = buf.take();
        assert!(first.starts_with("[0/2] | gw0 0.0s t.py::a"), "{first:?}");
        write!(out, "..").unwrap();
        out.flush().unwrap();
        let second = buf.take();
        // Erase, the letters, then the status on the next line.
        assert!(second.starts_with("\r\x1b[K..\n[0/2]"), "{second:?}");
        out.write_all(b"F\n").unwrap();
        out.flush().unwrap();
        let third = buf.take();
        assert!(
            third.starts_with("\r\x1b[K\x1b[1A\x1b[3GF\n[0/2]"),
            "{third:?}"
        );
        h.finish();
        out.flush().unwrap();
        assert_eq!(buf.take(), "\r\x1b[K");
        out.flush().unwrap();
        assert_eq!(buf.take(), "");
    }

    #[test]
    fn eta_from_history_and_from_pace() {
        let mut m = Model {
            total: 4,
            workers: 2,
            since: Some(Instant::now()),
            ..Model::default()
        };
        assert_eq!(m.eta(Instant::now()), None);
        m.estimates = [("a", 2.0), ("b", 2.0), ("c", 4.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        m.remaining = 8.0;
        let eta = m.eta(Instant::now()).unwrap();
        assert!((eta - 4.0).abs() < 0.01, "{eta}");
        m.estimates.clear();
        m.completed = 2;
        m.since = Some(Instant::now() - std::time::Duration::from_secs(10));
        let eta = m.eta(Instant::now()).unwrap();
        assert!((eta - 10.0).abs() < 0.1, "{eta}");
    }

    #[test]
    fn long_lines_shorten_names_then_truncate() {
        assert_eq!(short_name("a/b.py::C::test_x[a::b]"), "test_x[a::b]");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(fmt_secs(75.0), "1m15s");
    }
}
