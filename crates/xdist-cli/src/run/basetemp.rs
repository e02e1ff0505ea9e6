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
    let root = std::env::var_os(xdist_core::env::PYTEST_DEBUG_TEMPROOT)
        .or_else(|| std::env::var_os(xdist_core::env::TMPDIR))
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let user = current_user().unwrap_or_else(|| "unknown".to_string());
    let mut of_user = root.join(format!("pytest-of-{user}"));
    if fs::create_dir_all(&of_user).is_err() {
        // pytest's fallback: a name that is no valid directory name.
        of_user = root.join("pytest-of-unknown");
        fs::create_dir_all(&of_user)?;
    }
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

/// Python's `getpass.getuser()` (what pytest names `pytest-of-<user>` after): the first
/// non-empty of `LOGNAME`, `USER`, `LNAME`, `USERNAME`, else the password database's name
/// for the real user id.
fn current_user() -> Option<String> {
    use xdist_core::env::{LNAME, LOGNAME, USER, USERNAME};
    if let Some(name) = [LOGNAME, USER, LNAME, USERNAME]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    {
        return Some(name);
    }
    password_db_name(unsafe { libc::getuid() })
}

/// The user name of `uid` in the password database (`pwd.getpwuid(uid).pw_name`).
fn password_db_name(uid: libc::uid_t) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    loop {
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pwd`.
        let rc =
            unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated string in `buf`.
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
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
