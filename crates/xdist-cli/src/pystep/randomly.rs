//! pytest-randomly through xdist: one seed for every worker.
//!
//! pytest-randomly's xdist support resolves the seed on the controller and hands it to the
//! workers as `workerinput["randomly_seed"]` (a worker reads only that), so every worker
//! shuffles the collection the same way and the collections agree. This resolves it as
//! pytest-randomly's `pytest_configure` does on a pytest-xdist controller: `--randomly-seed=N`
//! (the last one of ini `addopts`, `PYTEST_ADDOPTS` and the command line), `last` (pytest's
//! cache value `randomly_seed`), else a fresh random 32-bit seed. The first worker's header
//! prints `Using --randomly-seed=N` once; the workers hand the seed back in their
//! `ReportOptions` (when the plugin is active) and the cache reporter stores it for `last`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{json, Map, Value};

/// The seed chosen for each run (by test run id), so replacement workers get the same one.
static SEEDS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// Adds `randomly_seed` to a worker's `workerinput`.
pub fn add_workerinput(
    workerinput: &mut Map<String, Value>,
    pytest_args: &[String],
    cwd: &Path,
    testrunuid: &str,
) {
    let mut seeds = SEEDS.lock().unwrap_or_else(|e| e.into_inner());
    let seed = match seeds.iter().find(|(uid, _)| uid == testrunuid) {
        Some((_, seed)) => *seed,
        None => {
            let seed = resolve(pytest_args, cwd);
            seeds.push((testrunuid.to_string(), seed));
            seed
        }
    };
    workerinput.insert("randomly_seed".into(), json!(seed));
}

/// The seed pytest-randomly would use for these arguments.
fn resolve(pytest_args: &[String], cwd: &Path) -> u64 {
    let ini = xdist_config::ini::locate(pytest_args, cwd).ok();
    let mut args: Vec<String> = ini
        .as_ref()
        .and_then(|i| i.get_args("addopts").ok())
        .unwrap_or_default();
    if let Ok(env) = std::env::var(xdist_core::env::PYTEST_ADDOPTS) {
        args.extend(xdist_core::pystr::split_addopts(&env).unwrap_or_default());
    }
    args.extend(pytest_args.iter().cloned());
    match seed_option(&args).as_deref() {
        Some("last") => {
            let cache = ini.as_ref().map(|i| {
                let dir = i.get_str("cache_dir").unwrap_or(".pytest_cache");
                i.rootdir.join(dir)
            });
            cache.and_then(|d| last_seed(&d)).unwrap_or_else(fresh_seed)
        }
        Some(v) => v.parse().unwrap_or_else(|_| fresh_seed()),
        None => fresh_seed(),
    }
}

/// The value of the last `--randomly-seed` option (`--randomly-seed=V` or `--randomly-seed V`).
fn seed_option(args: &[String]) -> Option<String> {
    let mut value = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix("--randomly-seed=") {
            value = Some(v.to_string());
        } else if a == "--randomly-seed" {
            value = it.next().cloned();
        }
    }
    value
}

/// pytest's cache value `randomly_seed`.
fn last_seed(cache_dir: &Path) -> Option<u64> {
    let path: PathBuf = cache_dir.join("v").join("randomly_seed");
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<u64>(text.trim()).ok()
}

/// `random.Random().getrandbits(32)`.
fn fresh_seed() -> u64 {
    let mut bytes = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if ok {
        return u32::from_le_bytes(bytes) as u64;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (t ^ std::process::id().rotate_left(16)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn the_last_seed_option_wins() {
        assert_eq!(
            seed_option(&s(&["-x", "--randomly-seed=3"])),
            Some("3".into())
        );
        assert_eq!(
            seed_option(&s(&["--randomly-seed=3", "--randomly-seed", "last"])),
            Some("last".into())
        );
        assert_eq!(seed_option(&s(&["--", "--randomly-seed=3"])), None);
        assert_eq!(seed_option(&s(&["tests"])), None);
    }

    #[test]
    fn one_seed_per_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, mut b, mut c) = (Map::new(), Map::new(), Map::new());
        add_workerinput(&mut a, &[], tmp.path(), "run-1");
        add_workerinput(&mut b, &[], tmp.path(), "run-1");
        add_workerinput(&mut c, &s(&["--randomly-seed=7"]), tmp.path(), "run-2");
        assert_eq!(a["randomly_seed"], b["randomly_seed"]);
        assert_eq!(c["randomly_seed"], json!(7));
        std::fs::create_dir_all(tmp.path().join(".pytest_cache/v")).unwrap();
        std::fs::write(tmp.path().join(".pytest_cache/v/randomly_seed"), "1234").unwrap();
        let mut d = Map::new();
        add_workerinput(&mut d, &s(&["--randomly-seed=last"]), tmp.path(), "run-3");
        assert_eq!(d["randomly_seed"], json!(1234));
    }
}
