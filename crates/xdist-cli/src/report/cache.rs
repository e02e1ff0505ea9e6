//! pytest's cache files the controller-side plugins write (`_pytest/cacheprovider.py`):
//! `v/cache/lastfailed` (LFPlugin's bookkeeping, so `--lf`/`--ff` of a later `xdist` or
//! plain `pytest` run reruns exactly the failures) and `v/cache/nodeids` (NFPlugin, for
//! `--nf`). Workers only read them. Nothing is written when the worker's pytest had no
//! cache (`-p no:cacheprovider`: `cache_dir` is None).

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use crate::report::events::{Reporter, RunEvent};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use xdist_core::protocol::Report;

/// pytest's `CACHEDIR_FILES`.
const CACHEDIR_FILES: &[(&str, &str)] = &[
    (
        "README.md",
        "# pytest cache directory #\n\n\
This directory contains data from the pytest's cache plugin,\n\
which provides the `--lf` and `--ff` options, as well as the `cache` fixture.\n\n\
**Do not** commit this to version control.\n\n\
See [the docs](https://docs.pytest.org/en/stable/how-to/cache.html) for more information.\n",
    ),
    (".gitignore", "# Created by pytest automatically.\n*\n"),
    (
        "CACHEDIR.TAG",
        "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by pytest.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/spec.html\n",
    ),
];

/// A JSON object read with its key order (Python dicts keep insertion order).
struct Ordered(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// LFPlugin's `lastfailed` dict: insertion-ordered node id -> true.
#[derive(Debug, Default, Clone)]
struct LastFailed {
    keys: Vec<Option<String>>,
    pos: HashMap<String, usize>,
    values: HashMap<String, Value>,
}

impl LastFailed {
    fn insert(&mut self, k: &str, v: Value) {
        if !self.pos.contains_key(k) {
            self.pos.insert(k.to_string(), self.keys.len());
            self.keys.push(Some(k.to_string()));
        }
        self.values.insert(k.to_string(), v);
    }

    fn pop(&mut self, k: &str) -> bool {
        match self.pos.remove(k) {
            Some(i) => {
                self.keys[i] = None;
                self.values.remove(k);
                true
            }
            None => false,
        }
    }

    fn contains(&self, k: &str) -> bool {
        self.pos.contains_key(k)
    }

    fn entries(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.keys
            .iter()
            .flatten()
            .filter_map(|k| self.values.get(k).map(|v| (k, v)))
    }

    fn same_as(&self, other: &LastFailed) -> bool {
        self.values == other.values
    }
}

/// Python's `json.dumps(value, ensure_ascii=False, indent=2)` of a string-keyed object.
fn dump_object<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>) -> String {
    let items: Vec<String> = entries
        .map(|(k, v)| {
            format!(
                "  {}: {}",
                serde_json::to_string(k).unwrap_or_default(),
                serde_json::to_string(v).unwrap_or_default()
            )
        })
        .collect();
    if items.is_empty() {
        "{}".into()
    } else {
        format!("{{\n{}\n}}", items.join(",\n"))
    }
}

fn dump_list<'a>(items: impl Iterator<Item = &'a String>) -> String {
    let items: Vec<String> = items
        .map(|s| format!("  {}", serde_json::to_string(s).unwrap_or_default()))
        .collect();
    if items.is_empty() {
        "[]".into()
    } else {
        format!("[\n{}\n]", items.join(",\n"))
    }
}

/// pytest's `_make_cachedir` (atomic creation with the supporting files), then `v/cache`.
fn ensure_cache_dirs(cache_dir: &Path, sub: &Path) -> std::io::Result<()> {
    if !cache_dir.is_dir() {
        let parent = cache_dir.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            "pytest-cache-files-xdist{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        fs::create_dir(&tmp)?;
        for (name, content) in CACHEDIR_FILES {
            fs::write(tmp.join(name), content)?;
        }
        if fs::rename(&tmp, cache_dir).is_err() {
            // Another process won the race: use its directory.
            let _ = fs::remove_dir_all(&tmp);
        }
    } else {
        // Another writer (the duration history, a worker) may have made the directory
        // without them.
        for (name, content) in CACHEDIR_FILES {
            let p = cache_dir.join(name);
            if !p.exists() {
                let _ = fs::write(p, content);
            }
        }
    }
    fs::create_dir_all(sub)
}

/// Writes `lastfailed` and `nodeids` as pytest's LFPlugin and NFPlugin do.
#[derive(Default)]
pub struct CacheReporter {
    cache_dir: Option<PathBuf>,
    saved: LastFailed,
    lastfailed: LastFailed,
    nodeids: BTreeSet<String>,
}

impl CacheReporter {
    pub fn new() -> Self {
        Self::default()
    }

    fn value_path(&self, key: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join("v").join(key))
    }

    fn start(&mut self, cache_dir: &str) {
        let dir = PathBuf::from(cache_dir);
        self.cache_dir = Some(dir);
        if let Some(p) = self.value_path("cache/lastfailed") {
            if let Some(Ordered(entries)) = fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
            {
                for (k, v) in entries {
                    self.saved.insert(&k, v);
                }
            }
        }
        self.lastfailed = self.saved.clone();
        if let Some(p) = self.value_path("cache/nodeids") {
            if let Some(ids) = fs::read_to_string(p)
                .ok()
                .and_then(|t| serde_json::from_str::<Vec<String>>(&t).ok())
            {
                self.nodeids.extend(ids);
            }
        }
    }

    /// LFPlugin's `pytest_runtest_logreport`.
    fn test_report(&mut self, nodeid: &str, report: &Report) {
        self.nodeids.insert(nodeid.to_string());
        if (report.when == "call" && report.outcome == "passed") || report.outcome == "skipped" {
            self.lastfailed.pop(nodeid);
        } else if report.outcome == "failed" {
            self.lastfailed.insert(nodeid, Value::Bool(true));
        }
    }

    /// LFPlugin's `pytest_collectreport`.
    fn collect_report(&mut self, nodeid: &str, report: &Report) {
        if report.outcome == "passed" || report.outcome == "skipped" {
            if self.lastfailed.contains(nodeid) {
                self.lastfailed.pop(nodeid);
                for id in &report.result {
                    self.lastfailed.insert(id, Value::Bool(true));
                }
            }
        } else {
            self.lastfailed.insert(nodeid, Value::Bool(true));
        }
    }

    fn set(&self, key: &str, data: &str) {
        let (Some(dir), Some(path)) = (self.cache_dir.as_ref(), self.value_path(key)) else {
            return;
        };
        let parent = path.parent().unwrap_or(dir);
        if let Err(e) = ensure_cache_dirs(dir, parent) {
            eprintln!(
                "xdist: warning: could not create cache path {}: {e}",
                path.display()
            );
            return;
        }
        if let Err(e) = fs::write(&path, data) {
            eprintln!(
                "xdist: warning: cache could not write path {}: {e}",
                path.display()
            );
        }
    }

    fn finish(&mut self) {
        if self.cache_dir.is_none() {
            return;
        }
        if !self.lastfailed.same_as(&self.saved) {
            self.set("cache/lastfailed", &dump_object(self.lastfailed.entries()));
        }
        self.set("cache/nodeids", &dump_list(self.nodeids.iter()));
    }
}

impl Reporter for CacheReporter {
    fn event(&mut self, event: &RunEvent) {
        match event {
            RunEvent::SessionStart { options, .. } => {
                if let Some(dir) = options.cache_dir.as_deref().filter(|d| !d.is_empty()) {
                    self.start(dir);
                    // pytest-randomly's controller stores its seed for `--randomly-seed=last`.
                    if let Some(seed) = options.randomly_seed {
                        self.set("randomly_seed", &seed.to_string());
                    }
                }
            }
            _ if self.cache_dir.is_none() => {}
            RunEvent::TestReport { nodeid, report, .. } => self.test_report(nodeid, report),
            RunEvent::CollectReport { nodeid, report, .. } => self.collect_report(nodeid, report),
            RunEvent::TestCrashed(c) => {
                self.test_report(&c.nodeid, &crate::report::crash::test_report(c, None));
            }
            RunEvent::RunFinished(_) => self.finish(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(when: &str, outcome: &str) -> Report {
        Report {
            when: when.into(),
            outcome: outcome.into(),
            ..Report::default()
        }
    }

    #[test]
    fn bookkeeping_and_files() {
        let dir = std::env::temp_dir().join(format!("xdist-cache-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = dir.join(".pytest_cache");
        fs::create_dir_all(cache.join("v/cache")).unwrap();
        fs::write(
            cache.join("v/cache/lastfailed"),
            "{\n  \"z.py::old\": true,\n  \"a.py\": true,\n  \"b.py::t\": true\n}",
        )
        .unwrap();
        let mut c = CacheReporter::new();
        c.start(cache.to_str().unwrap());
        c.test_report("b.py::t", &rep("setup", "passed"));
        c.test_report("b.py::t", &rep("call", "passed"));
        c.test_report("c.py::f", &rep("call", "failed"));
        let mut coll = rep("collect", "passed");
        coll.result = vec!["a.py::x".into()];
        c.collect_report("a.py", &coll);
        c.finish();
        let text = fs::read_to_string(cache.join("v/cache/lastfailed")).unwrap();
        assert_eq!(
            text,
            "{\n  \"z.py::old\": true,\n  \"c.py::f\": true,\n  \"a.py::x\": true\n}"
        );
        let ids = fs::read_to_string(cache.join("v/cache/nodeids")).unwrap();
        assert_eq!(ids, "[\n  \"b.py::t\",\n  \"c.py::f\"\n]");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn creates_cache_dir_like_pytest() {
        let dir = std::env::temp_dir().join(format!("xdist-cache-new-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut c = CacheReporter::new();
        c.start(dir.join(".pytest_cache").to_str().unwrap());
        c.test_report("t.py::f", &rep("call", "failed"));
        c.finish();
        assert!(dir.join(".pytest_cache/CACHEDIR.TAG").is_file());
        assert!(dir.join(".pytest_cache/README.md").is_file());
        assert_eq!(
            fs::read_to_string(dir.join(".pytest_cache/v/cache/lastfailed")).unwrap(),
            "{\n  \"t.py::f\": true\n}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
