//! Duration history: per-test durations of earlier runs, kept in pytest's cache directory
//! (`<cache_dir>/v/xdist/durations`, a JSON object `{nodeid: seconds}`), so `load` and
//! `worksteal` can start the slowest tests first.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The history file of a pytest cache directory.
pub fn history_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join("v").join("xdist").join("durations")
}

/// The recorded durations, read once per run and handed to whoever needs them (shard
/// selection, the schedulers, the status line's ETA).
#[derive(Debug, Default)]
pub struct History {
    known: BTreeMap<String, f64>,
}

impl History {
    /// Reads a history file; empty when it is missing or unreadable (it is a cache).
    pub fn load(path: &Path) -> History {
        let known = fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        History { known }
    }

    /// Estimated seconds per test index, or None without any history for these ids.
    /// Tests without history get the median of those with history.
    pub fn estimates(&self, ids: &[String]) -> Option<Vec<f64>> {
        let mut found: Vec<Option<f64>> = ids
            .iter()
            .map(|id| {
                self.known
                    .get(id)
                    .copied()
                    .filter(|d| d.is_finite() && *d >= 0.0)
            })
            .collect();
        let mut have: Vec<f64> = found.iter().flatten().copied().collect();
        if have.is_empty() {
            return None;
        }
        have.sort_by(|a, b| a.total_cmp(b));
        let median = have[have.len() / 2];
        Some(found.iter_mut().map(|d| d.unwrap_or(median)).collect())
    }
}

impl From<BTreeMap<String, f64>> for History {
    fn from(known: BTreeMap<String, f64>) -> History {
        History { known }
    }
}

impl History {
    /// Adds this run's measurements (seconds, kept to the microsecond).
    pub fn record<'a>(&mut self, measured: impl Iterator<Item = (&'a str, f64)>) {
        for (id, d) in measured {
            self.known.insert(id.to_string(), (d * 1e6).round() / 1e6);
        }
    }

    /// Writes the history file whole (creating pytest's cache layout), replacing it atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            let cache_root = dir.parent().and_then(Path::parent);
            if let Some(root) = cache_root {
                if !root.exists() {
                    fs::create_dir_all(root)?;
                    fs::write(
                        root.join(".gitignore"),
                        "# Created by pytest automatically.\n*\n",
                    )?;
                }
            }
            fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.known).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("tmp");
        fs::write(&tmp, text)?;
        fs::rename(tmp, path)
    }
}

/// This run's durations: the history (read once, on first use), its estimates for the
/// run's collection, and what each test took here, added to the history at the end.
#[derive(Debug, Default)]
pub(super) struct RunDurations {
    history: Option<History>,
    pub(super) estimates: Option<Arc<Vec<f64>>>,
    /// Whole-protocol duration of each test run here, by collection index.
    measured: HashMap<usize, f64>,
}

impl RunDurations {
    /// The history at `path`, read the first time.
    pub(super) fn history(&mut self, path: &Path) -> &mut History {
        self.history.get_or_insert_with(|| History::load(path))
    }

    /// Test `index` took `seconds`.
    pub(super) fn measured(&mut self, index: usize, seconds: f64) {
        self.measured.insert(index, seconds);
    }

    /// Adds what this run measured (`ids`: the collection's node ids) to the history at
    /// `path` and writes it, unless nothing was measured.
    pub(super) fn save(&mut self, path: &Path, ids: &[String]) {
        if self.measured.is_empty() {
            return;
        }
        let measured =
            (self.measured.iter()).filter_map(|(&i, &d)| ids.get(i).map(|id| (id.as_str(), d)));
        let history = self.history.get_or_insert_with(|| History::load(path));
        history.record(measured);
        // The history is a cache: failing to write it must not fail the run.
        let _ = history.save(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_runs_measurements_join_the_history_by_node_id() {
        let tmp = tempfile::tempdir().unwrap();
        let path = history_path(&tmp.path().join(".pytest_cache"));
        let ids: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut run = RunDurations::default();
        run.save(&path, &ids);
        assert!(!path.exists(), "nothing measured: nothing written");
        run.measured(1, 2.0);
        run.measured(7, 9.0);
        run.save(&path, &ids);
        assert_eq!(History::load(&path).estimates(&ids), Some(vec![2.0, 2.0]));
        assert!(
            run.history(&path).estimates(&ids).is_some(),
            "kept, not read again"
        );
    }

    #[test]
    fn round_trip_and_median_fill() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = history_path(&dir.join(".pytest_cache"));
        let mut history = History::load(&path);
        history.record([("a", 1.0), ("b", 3.0), ("c", 2.0)].into_iter());
        history.save(&path).unwrap();
        let ids: Vec<String> = ["a", "new", "b", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // `new` has no history: it gets the median of this collection's known tests.
        let history = History::load(&path);
        assert_eq!(history.estimates(&ids), Some(vec![1.0, 2.0, 3.0, 2.0]));
        assert!(dir.join(".pytest_cache/.gitignore").exists());
        assert_eq!(history.estimates(&["zzz".to_string()]), None);
        assert_eq!(History::load(&dir.join("missing")).estimates(&ids), None);
        let _ = fs::remove_dir_all(dir);
    }
}

/// Where the size of the last collection is kept, per invocation (`v/xdist/last_collection`).
fn last_collection_path(cache_dir: &Path) -> std::path::PathBuf {
    cache_dir.join("v").join("xdist").join("last_collection")
}

/// Remembers how many tests these arguments collected, so the next identical run starts
/// no more workers than there are tests.
pub fn record_collection_size(
    cache_dir: &Path,
    args_key: &str,
    count: usize,
) -> std::io::Result<()> {
    let path = last_collection_path(cache_dir);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let text = serde_json::json!({ "args": args_key, "count": count }).to_string();
    fs::write(path, text)
}

/// The number of tests the same arguments collected last time, if known.
pub fn last_collection_size(cache_dir: &Path, args_key: &str) -> Option<usize> {
    let text = fs::read_to_string(last_collection_path(cache_dir)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v.get("args")?.as_str()? != args_key {
        return None;
    }
    v.get("count")?.as_u64().map(|c| c as usize)
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn collection_size_is_keyed_by_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        record_collection_size(&dir, "a\0b", 3).unwrap();
        assert_eq!(last_collection_size(&dir, "a\0b"), Some(3));
        assert_eq!(last_collection_size(&dir, "other"), None);
        let _ = fs::remove_dir_all(dir);
    }
}

/// Where the last run's need for a controller session is kept (`v/xdist/controller_session`).
fn controller_session_path(cache_dir: &Path) -> std::path::PathBuf {
    cache_dir.join("v").join("xdist").join("controller_session")
}

/// Remembers whether this project's runs need a controller session.
pub fn record_controller_session(cache_dir: &Path, wanted: bool) -> std::io::Result<()> {
    let path = controller_session_path(cache_dir);
    if !wanted {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(path, "true")
}

/// Whether the last run needed a controller session.
pub fn controller_session_wanted(cache_dir: &Path) -> bool {
    controller_session_path(cache_dir).is_file()
}

#[cfg(test)]
mod controller_session_tests {
    use super::*;

    #[test]
    fn remembered_until_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!controller_session_wanted(tmp.path()));
        record_controller_session(tmp.path(), true).unwrap();
        assert!(controller_session_wanted(tmp.path()));
        record_controller_session(tmp.path(), false).unwrap();
        assert!(!controller_session_wanted(tmp.path()));
        record_controller_session(tmp.path(), false).unwrap();
    }
}
