//! The Python code a worker runs: a bootstrap short enough for `python -c`, which reads the
//! real worker code from the channel as its first frame.

/// Embedded worker code: the fork server's part (`python/xdist_zygote.py`, definitions only,
/// idle unless the controller starts a fork server), then `python/xdist_worker.py`.
pub const WORKER_CODE: &str = concat!(
    include_str!("../python/xdist_zygote.py"),
    include_str!("../python/xdist_worker.py")
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
