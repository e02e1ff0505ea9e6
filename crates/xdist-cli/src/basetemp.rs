//! The run's base temporary directory, made as pytest makes it, so that every worker's
//! `basetemp` is `<run basetemp>/popen-gwN` and `getbasetemp().parent` is shared by all.

use std::fs;
use std::path::{Path, PathBuf};

/// Creates the run basetemp: `--basetemp DIR` (emptied) or a new numbered
/// `pytest-of-<user>/pytest-<N>` under the temp root, keeping the newest three.
pub fn make_run_basetemp(given: Option<&Path>, cwd: &Path) -> std::io::Result<PathBuf> {
    if let Some(dir) = given {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            cwd.join(dir)
        };
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
        return Ok(dir);
    }
    let root = std::env::var_os("PYTEST_DEBUG_TEMPROOT")
        .or_else(|| std::env::var_os("TMPDIR"))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let user = ["LOGNAME", "USER", "LNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_string());
    let of_user = root.join(format!("pytest-of-{user}"));
    fs::create_dir_all(&of_user)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(&of_user, fs::Permissions::from_mode(0o700));
    }
    for _ in 0..10 {
        let max = numbered(&of_user).into_iter().max().unwrap_or(-1);
        let new = of_user.join(format!("pytest-{}", max + 1));
        match fs::create_dir(&new) {
            Ok(()) => {
                // pytest's cleanup lock: other pytest (and xdist) sessions never remove a
                // numbered directory whose `.lock` is younger than three days.
                let _ = fs::write(new.join(".lock"), std::process::id().to_string());
                let current = of_user.join("pytest-current");
                let _ = fs::remove_file(&current);
                #[cfg(unix)]
                let _ = std::os::unix::fs::symlink(&new, &current);
                for n in numbered(&of_user) {
                    let old = of_user.join(format!("pytest-{n}"));
                    if n <= max + 1 - 3 && deletable(&old) {
                        let _ = fs::remove_dir_all(old);
                    }
                }
                return Ok(new);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "could not create a numbered temporary directory",
    ))
}

/// pytest's `ensure_deletable` (no `.lock`, or one older than pytest's three-day timeout),
/// and a lock whose process is gone (xdist leaves its lock; pytest removes its own at exit).
fn deletable(dir: &Path) -> bool {
    if dir.is_symlink() {
        return false;
    }
    let lock = dir.join(".lock");
    match fs::metadata(&lock) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
        Err(_) => false,
        Ok(m) => {
            let three_days = std::time::Duration::from_secs(3 * 24 * 3600);
            let old = m
                .modified()
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > three_days);
            let dead = fs::read_to_string(&lock)
                .ok()
                .and_then(|t| t.trim().parse::<libc::pid_t>().ok())
                .filter(|&pid| pid > 0)
                // SAFETY: signal 0 only checks whether the process exists.
                .is_some_and(|pid| unsafe { libc::kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH));
            if old || dead {
                let _ = fs::remove_file(&lock);
            }
            old || dead
        }
    }
}

fn numbered(dir: &Path) -> Vec<i64> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("pytest-"))
                .and_then(|n| n.parse::<i64>().ok())
        })
        .collect()
}
