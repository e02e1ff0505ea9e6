//! Running a Python step (pytest-cov's combine, the summary step, the controller session):
//! its input on stdin, its result (the session: its replies) on a pipe of its own, fd
//! [`RESULT_FD`] in the step, so nothing is scraped back out of what it (or a plugin in it)
//! prints.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// The step's descriptor for its result: it writes the JSON there and closes it.
pub(crate) const RESULT_FD: i32 = 3;

/// Runs `cmd` with `input` on its stdin; what it wrote on [`RESULT_FD`], or why there is
/// nothing (the last line of its stderr, else `missing`).
pub(crate) fn run(mut cmd: Command, input: Vec<u8>, missing: &str) -> Result<Vec<u8>, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (mut child, read) = spawn(cmd)?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::fs::File::from(read).read_to_end(&mut out).map(|_| out)
    });
    // A writer thread: the step may write (plugins configuring) before it reads all input.
    let stdin = child.stdin.take();
    let writer = std::thread::spawn(move || {
        if let Some(mut stdin) = stdin {
            let _ = stdin.write_all(&input);
        }
    });
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let result = reader.join().ok().and_then(Result::ok);
    match result.filter(|r| !r.is_empty()) {
        Some(r) => Ok(r),
        None => {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err.trim_end().lines().last().unwrap_or(missing);
            Err(last.to_string())
        }
    }
}

/// Starts `cmd` (its stdio as the caller set it) with the write end of a new pipe as its
/// [`RESULT_FD`]; the child and the read end, which ends when the step's copy does (the
/// controller session reads its replies there, one line each).
pub(crate) fn spawn(mut cmd: Command) -> Result<(Child, OwnedFd), String> {
    let (read, write) = pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
    let write_fd = write.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(write_fd, RESULT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The copy is inherited (dup2 onto the same number would keep CLOEXEC).
            libc::fcntl(RESULT_FD, libc::F_SETFD, 0);
            Ok(())
        });
    }
    let program = cmd.get_program().to_string_lossy().into_owned();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    // Ours closed, the result ends when the step's copy does.
    drop(write);
    Ok((child, read))
}

/// A pipe whose ends are closed on exec (only the step's fd 3 copy is inherited).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are open descriptors owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn the_result_comes_from_fd_3_whatever_the_step_prints() {
        let script = "read x; echo noise; echo \"got $x\" >&3; echo more noise";
        let r = run(sh(script), b"input\n".to_vec(), "none");
        assert_eq!(r.as_deref(), Ok(&b"got input\n"[..]));
    }

    #[test]
    fn no_result_is_the_last_line_of_stderr_or_the_fallback() {
        let r = run(sh("echo first >&2; echo why >&2"), Vec::new(), "none");
        assert_eq!(r, Err("why".to_string()));
        let r = run(sh("echo 'RESULT: 1'"), Vec::new(), "none");
        assert_eq!(r, Err("none".to_string()), "printed text is no result");
    }
}
