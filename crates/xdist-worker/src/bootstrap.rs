//! The Python code a worker runs: a bootstrap short enough for `python -c`, which reads the
//! real worker code from the channel as its first frame.

/// The parts of the embedded worker program, in the order they are concatenated into one
/// namespace: the fork server's part (definitions only, idle unless the controller starts a
/// fork server), the channel, the pytest-xdist stand-in, the controller session's crash
/// handler and scheduler driver, the controller-side steps, report rendering, the worker
/// session, and the start (`main`), whose end starts the program. Each part is also
/// importable on its own (its tests in `tests/worker`); see ARCHITECTURE.md.
pub const WORKER_PARTS: [&str; 8] = [
    "xdist_zygote.py",
    "xdist_channel.py",
    "xdist_standin.py",
    "xdist_scheduling.py",
    "xdist_steps.py",
    "xdist_report.py",
    "xdist_session.py",
    "xdist_start.py",
];

/// Embedded worker code: the [`WORKER_PARTS`] concatenated, sent as frame 0 to every worker
/// (local, forked, ssh/exec/socket) and run by the controller-side steps.
pub const WORKER_CODE: &str = concat!(
    include_str!("../python/xdist_zygote.py"),
    include_str!("../python/xdist_channel.py"),
    include_str!("../python/xdist_standin.py"),
    include_str!("../python/xdist_scheduling.py"),
    include_str!("../python/xdist_steps.py"),
    include_str!("../python/xdist_report.py"),
    include_str!("../python/xdist_session.py"),
    include_str!("../python/xdist_start.py"),
);

/// The `-c` program. It takes the channel file descriptors from `XDIST_CHANNEL_FDS`
/// (`read,write`; default `0,1` for stream transports such as SSH, where it moves the channel
/// off stdin/stdout so tests can't disturb it), makes them non-inheritable (so processes a
/// test starts never hold the channel open), reads one frame of code and runs it.
pub const BOOTSTRAP: &str = r#"import os,sys
r,w=(int(x) for x in os.environ.pop("XDIST_CHANNEL_FDS","0,1").split(","))
if r==0:
    r=os.dup(0);os.dup2(os.open(os.devnull,os.O_RDONLY),0)
if w==1:
    w=os.dup(1);os.dup2(2,1)
os.set_inheritable(r,False);os.set_inheritable(w,False)
f=os.fdopen(r,"rb")
n=int.from_bytes(f.read(4),"big")
exec(compile(f.read(n),"<xdist-worker>","exec"),{"__name__":"__xdist_worker__","CHANNEL_IN":f,"CHANNEL_OUT_FD":w})
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// `concat!` cannot take the array: the two lists of parts must stay the same.
    #[test]
    fn worker_code_is_the_parts_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
        let parts: String = (WORKER_PARTS.iter())
            .map(|name| std::fs::read_to_string(dir.join(name)).expect("a worker part"))
            .collect();
        assert!(
            parts == WORKER_CODE,
            "WORKER_CODE is not WORKER_PARTS concatenated"
        );
        let found = (std::fs::read_dir(&dir).expect("python/").flatten())
            .filter(|e| e.path().extension().is_some_and(|x| x == "py"))
            .count();
        assert_eq!(
            found,
            WORKER_PARTS.len(),
            "a .py file in python/ that is no part"
        );
    }
}
