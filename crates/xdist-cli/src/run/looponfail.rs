//! `-f/--looponfail`: run, show what failed, wait for a change, rerun only the failures, and
//! the whole suite once they pass; until Ctrl-C (exit 2).
//!
//! Changes come from native file events (`notify`), debounced; where native events are not
//! available (some network file systems) a polling watcher is chosen automatically. Every
//! rerun starts fresh workers, so edited modules are imported anew.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use crate::error::CliError;
use crate::report::termwriter::TermWriter;

/// Quiet time after the last event before a rerun starts.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// One run: pytest args in, (exit code, failing node ids, collection failed) out.
pub struct LoopRun {
    pub exit: i32,
    pub failed: Vec<String>,
    pub collection_failed: bool,
}

/// Runs the loop. `run` performs one distributed run with the given pytest arguments.
pub fn run_loop(
    base_args: &[String],
    roots: &[PathBuf],
    color: bool,
    width: usize,
    mut run: impl FnMut(&[String]) -> Result<LoopRun, CliError>,
) -> Result<i32, CliError> {
    let watcher = ChangeWatcher::new(roots)?;
    let options_only = strip_positional(base_args);
    let mut failing: Vec<String> = Vec::new();
    loop {
        let args = if failing.is_empty() {
            base_args.to_vec()
        } else {
            let mut a = options_only.clone();
            a.extend(failing.iter().cloned());
            a
        };
        let outcome = match run(&args) {
            Ok(o) => o,
            // A failing test that no longer exists: pytest refuses the node id; run all.
            Err(CliError::Usage(_)) if !failing.is_empty() => run(base_args)?,
            Err(e) => return Err(e),
        };
        if crate::run::signals::count() > 0 || outcome.exit == 2 && !outcome.collection_failed {
            return Ok(2);
        }
        let was_failing = !failing.is_empty();
        let outcome = if outcome.collection_failed && was_failing {
            // Collecting just the failures failed (a module broke, a test moved): run all.
            run(base_args)?
        } else {
            outcome
        };
        if crate::run::signals::count() > 0 {
            return Ok(2);
        }
        failing = outcome.failed;
        if was_failing && failing.is_empty() {
            // Everything that failed passes now: confirm with the whole suite at once.
            continue;
        }
        watcher.settle();
        let mut tw = TermWriter::new(Box::new(std::io::stdout()), color, width);
        if !failing.is_empty() {
            tw.sep('#', Some("LOOPONFAILING"), &["red"], None);
            for id in &failing {
                tw.line(id, &["red"]);
            }
        }
        tw.sep('#', Some("waiting for changes"), &[], None);
        for root in roots {
            tw.line(&format!("### Watching:   {}", root.display()), &[]);
        }
        tw.flush();
        match watcher.wait_for_change()? {
            Some(paths) => {
                let mut tw = TermWriter::new(Box::new(std::io::stdout()), color, width);
                for p in paths {
                    tw.line(&format!("# MODIFIED {}", p.display()), &[]);
                }
                tw.flush();
            }
            None => return Ok(2),
        }
    }
}

/// The arguments without positional ones (paths and node ids), so failing node ids can
/// take their place.
fn strip_positional(args: &[String]) -> Vec<String> {
    let setup = xdist_config::ini::setup_args(args);
    let mut positional = setup.positional;
    let mut out = Vec::new();
    for a in args {
        if let Some(pos) = positional.iter().position(|p| p == a) {
            positional.remove(pos);
            continue;
        }
        out.push(a.clone());
    }
    out
}

/// Whether a changed path matters: not in `.git`, `__pycache__`, `.pytest_cache`, hidden
/// directories, and not an editor swap/backup or bytecode file.
pub fn is_relevant(path: &Path) -> bool {
    for comp in path.components() {
        let s = comp.as_os_str().to_string_lossy();
        if s == "__pycache__" || (s.starts_with('.') && s != "." && s != "..") {
            return false;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    !(name.ends_with(".pyc")
        || name.ends_with(".pyo")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.starts_with(".#")
        || name.starts_with('#') && name.ends_with('#')
        || name == "4913")
}

/// Native file events, or polling where they are unavailable.
struct ChangeWatcher {
    _watcher: Box<dyn Watcher>,
    rx: Receiver<notify::Result<Event>>,
    roots: Vec<PathBuf>,
}

impl ChangeWatcher {
    fn new(roots: &[PathBuf]) -> Result<Self, CliError> {
        let (tx, rx) = channel();
        let native: notify::Result<RecommendedWatcher> = RecommendedWatcher::new(
            {
                let tx = tx.clone();
                move |e| {
                    let _ = tx.send(e);
                }
            },
            notify::Config::default(),
        );
        let mut watcher: Box<dyn Watcher> = match native {
            Ok(w) => Box::new(w),
            Err(_) => Box::new(Self::poller(tx.clone())?),
        };
        for root in roots {
            if watcher.watch(root, RecursiveMode::Recursive).is_err() {
                // Native events failed here (e.g. inotify limits, network file systems).
                let mut poll = Self::poller(tx.clone())?;
                for r in roots {
                    poll.watch(r, RecursiveMode::Recursive).map_err(|e| {
                        CliError::Usage(format!("failed to watch {}: {e}", r.display()))
                    })?;
                }
                watcher = Box::new(poll);
                break;
            }
        }
        Ok(ChangeWatcher {
            _watcher: watcher,
            rx,
            roots: roots.to_vec(),
        })
    }

    fn poller(
        tx: std::sync::mpsc::Sender<notify::Result<Event>>,
    ) -> Result<notify::PollWatcher, CliError> {
        notify::PollWatcher::new(
            move |e| {
                let _ = tx.send(e);
            },
            notify::Config::default().with_poll_interval(Duration::from_millis(500)),
        )
        .map_err(|e| CliError::Usage(format!("failed to watch files: {e}")))
    }

    /// Drops events caused by our own run (bytecode, caches, reports), including those
    /// still in flight. Called before the banner, so a save right after it is never lost.
    fn settle(&self) {
        std::thread::sleep(DEBOUNCE);
        while self.rx.try_recv().is_ok() {}
    }

    /// Blocks until a relevant change settles; None on Ctrl-C.
    fn wait_for_change(&self) -> Result<Option<Vec<PathBuf>>, CliError> {
        let mut changed: Vec<PathBuf> = Vec::new();
        let mut last: Option<Instant> = None;
        loop {
            if crate::run::signals::count() > 0 {
                return Ok(None);
            }
            match self.rx.recv_timeout(Duration::from_millis(50)) {
                Ok(Ok(ev)) => {
                    if matches!(ev.kind, EventKind::Access(_)) {
                        continue;
                    }
                    for p in ev.paths {
                        // Judge the part below the watched root: the root itself may live
                        // under a hidden directory.
                        let rel = self
                            .roots
                            .iter()
                            .find_map(|r| p.strip_prefix(r).ok())
                            .unwrap_or(&p);
                        if is_relevant(rel) && !changed.contains(&p) {
                            changed.push(p);
                            last = Some(Instant::now());
                        }
                    }
                }
                Ok(Err(_)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
            if let Some(t) = last {
                if t.elapsed() >= DEBOUNCE && !changed.is_empty() {
                    return Ok(Some(changed));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_noise() {
        assert!(is_relevant(Path::new("/p/tests/test_a.py")));
        assert!(is_relevant(Path::new("tests/test_a.py")));
        assert!(!is_relevant(Path::new("/p/.git/index")));
        assert!(!is_relevant(Path::new("/p/tests/__pycache__/x.pyc")));
        assert!(!is_relevant(Path::new("/p/.pytest_cache/v/x")));
        assert!(!is_relevant(Path::new("/p/tests/.test_a.py.swp")));
        assert!(!is_relevant(Path::new("/p/tests/test_a.py~")));
    }

    #[test]
    fn strips_paths_keeps_options() {
        let args: Vec<String> = ["-k", "x", "tests/", "-v", "a.py::t"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(strip_positional(&args), vec!["-k", "x", "-v"]);
    }
}
