//! `xdist serve`: a socket worker server (execnet's socketserver role) for `--tx
//! socket=host:port`. Listens on loopback unless told otherwise; a client must first send
//! the shared token (`XDIST_TOKEN` or `--token-file`) in its hello frame, or it is refused;
//! each accepted connection becomes one worker process whose channel is the connection.
//! SIGINT/SIGTERM: stop accepting, end the running workers, exit 0.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use xdist_core::env as envnames;
use xdist_core::frame::write_frame;
use xdist_worker::bootstrap::BOOTSTRAP;
use xdist_worker::remote::{Hello, HelloReply};

use crate::error::CliError;

/// Where `xdist serve` listens unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8888";
/// The hello must arrive this quickly.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest hello accepted.
const MAX_HELLO: usize = 64 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "xdist serve",
    about = "Serve socket workers for `xdist --tx socket=HOST:PORT` (needs a shared token).",
    long_about = "Serves socket workers for `xdist --tx socket=HOST:PORT`: each accepted \
                  connection whose hello carries the shared token ($XDIST_TOKEN or --token-file) \
                  becomes one worker process. Listens on loopback unless --listen says \
                  otherwise; SIGINT/SIGTERM stop it."
)]
pub struct ServeArgs {
    /// Address to listen on (loopback by default; anything else is reachable by others).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: String,
    /// File holding the shared token (default: $XDIST_TOKEN).
    #[arg(long = "token-file", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Python interpreter for workers whose spec has no `//python=`.
    #[arg(long, value_name = "PATH")]
    python: Option<std::ffi::OsString>,
}

/// `xdist serve [--listen ADDR] [--token-file FILE] [--python PY]`.
pub fn command(argv: &[String]) -> Result<i32, CliError> {
    let args: ServeArgs = crate::args::parse_subcommand("xdist serve", argv)?;
    let token = match &args.token_file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("cannot read --token-file {}: {e}", f.display())))?
            .trim()
            .to_string(),
        None => std::env::var(envnames::XDIST_TOKEN).unwrap_or_default(),
    };
    if token.is_empty() {
        return Err(CliError::Usage(format!(
            "xdist serve needs a shared token: set {} or pass --token-file FILE",
            envnames::XDIST_TOKEN
        )));
    }
    let python = xdist_config::python::find_python(args.python.as_deref())?;
    let listener = TcpListener::bind(&args.listen)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::Internal(e.to_string()))?;
    if !local.ip().is_loopback() {
        eprintln!(
            "xdist serve: warning: listening on {local}, which other machines can reach: anyone with the token can run code as this user"
        );
    }
    outln!("xdist serve: listening on {local}");
    let _ = std::io::stdout().flush();
    listener
        .set_nonblocking(true)
        .map_err(|e| CliError::Internal(e.to_string()))?;
    crate::run::signals::install();
    let children: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let token = Arc::new(token);
    while crate::run::signals::count() == 0 {
        match listener.accept() {
            Ok((conn, peer)) => {
                let (token, children, python) = (token.clone(), children.clone(), python.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve_one(conn, peer, &token, &python, &children) {
                        eprintln!("xdist serve: {peer}: {e}");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => eprintln!("xdist serve: accept failed: {e}"),
        }
    }
    let pids: Vec<u32> = children.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!(
        "xdist serve: shutting down ({} running workers)",
        pids.len()
    );
    for pid in pids {
        // SAFETY: each worker leads its own process group; a stale one is at worst ESRCH.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGTERM);
        }
    }
    Ok(0)
}

/// Compares without an early exit, so timing does not reveal the token.
fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (*a.get(i).unwrap_or(&0) ^ *b.get(i).unwrap_or(&0)) as usize;
    }
    diff == 0
}

fn reply(conn: &mut TcpStream, ok: bool, error: Option<&str>) -> std::io::Result<()> {
    let r = HelloReply {
        ok,
        error: error.map(str::to_string),
    };
    write_frame(conn, &serde_json::to_vec(&r).unwrap_or_default())?;
    conn.flush()
}

fn serve_one(
    mut conn: TcpStream,
    peer: SocketAddr,
    token: &str,
    python: &std::path::Path,
    children: &Mutex<Vec<u32>>,
) -> Result<(), String> {
    let hello = read_hello(&mut conn, token)?;
    let mut cmd = worker_command(&conn, &hello, python)?;
    if let Err(e) = reply(&mut conn, true, None) {
        return Err(format!("client left: {e}"));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    drop(conn);
    let pid = child.id();
    children.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    eprintln!("xdist serve: {peer}: worker started (pid {pid})");
    let status = child.wait();
    children
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
    eprintln!(
        "xdist serve: {peer}: worker ended ({})",
        status.map_or_else(|e| e.to_string(), |s| s.to_string())
    );
    Ok(())
}

/// Reads the client's hello (bounded in size and time) and checks its token; a refused
/// client is told why before the connection closes.
fn read_hello(conn: &mut TcpStream, token: &str) -> Result<Hello, String> {
    conn.set_nonblocking(false).map_err(|e| e.to_string())?;
    conn.set_read_timeout(Some(HELLO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 4];
    conn.read_exact(&mut head)
        .map_err(|e| format!("no hello ({e}); refused"))?;
    let n = u32::from_be_bytes(head) as usize;
    if n > MAX_HELLO {
        let _ = reply(conn, false, Some("hello too large"));
        return Err("hello too large; refused".into());
    }
    let mut buf = vec![0u8; n];
    conn.read_exact(&mut buf)
        .map_err(|e| format!("truncated hello ({e}); refused"))?;
    let hello: Hello = match serde_json::from_slice(&buf) {
        Ok(h) => h,
        Err(_) => {
            let _ = reply(conn, false, Some("not an xdist hello"));
            return Err("not an xdist hello; refused".into());
        }
    };
    if !same_token(&hello.token, token) {
        let _ = reply(conn, false, Some("bad or missing token"));
        return Err("bad or missing token; refused".into());
    }
    conn.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok(hello)
}

/// The worker the hello asks for, its stdin and stdout on the connection.
fn worker_command(
    conn: &TcpStream,
    hello: &Hello,
    python: &std::path::Path,
) -> Result<Command, String> {
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let cwd = match &hello.chdir {
        Some(d) => {
            let dir = cwd.join(d);
            std::fs::create_dir_all(&dir).map_err(|e| format!("chdir {}: {e}", dir.display()))?;
            dir
        }
        None => cwd,
    };
    let stdin: OwnedFd = conn.try_clone().map_err(|e| e.to_string())?.into();
    let stdout: OwnedFd = conn.try_clone().map_err(|e| e.to_string())?.into();
    let py = hello
        .python
        .clone()
        .map_or_else(|| python.to_path_buf(), PathBuf::from);
    let mut cmd = Command::new(&py);
    cmd.arg("-u")
        .arg("-c")
        .arg(BOOTSTRAP)
        .current_dir(&cwd)
        .env_remove(envnames::XDIST_CHANNEL_FDS)
        .envs(hello.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::from(stdin))
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::inherit());
    let nice = hello.nice;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(n) = nice {
                libc::nice(n);
            }
            Ok(())
        });
    }
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
        assert!(!same_token("", "x"));
    }
}
