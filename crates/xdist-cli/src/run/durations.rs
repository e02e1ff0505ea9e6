//! Duration history: per-test durations of earlier runs, kept in pytest's cache directory
//! (`<cache_dir>/v/xdist/durations`, a JSON object `{nodeid: seconds}`), so `load` and
//! `worksteal` can start the slowest tests first.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

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

/// Merges this run's measurements into the history file (creating pytest's cache layout).
pub fn record<'a>(
    path: &Path,
    measured: impl Iterator<Item = (&'a str, f64)>,
) -> std::io::Result<()> {
    let mut known: BTreeMap<String, f64> = fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    for (id, d) in measured {
        known.insert(id.to_string(), (d * 1e6).round() / 1e6);
    }
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
    let text = serde_json::to_string_pretty(&known).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text)?;
    fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_median_fill() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let path = history_path(&dir.join(".pytest_cache"));
        record(&path, [("a", 1.0), ("b", 3.0), ("c", 2.0)].into_iter()).unwrap();
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
