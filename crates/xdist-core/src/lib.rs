//! Shared vocabulary of xdist, what both the controller and the worker side need: test
//! outcomes and reports, the controller/worker protocol and its framing, worker specs,
//! environment variable names and exit codes. Configuration only the CLI resolves (ini files,
//! CPU counting, the interpreter) is in `xdist-config`.
//!
//! - [`frame`]: length-prefixed frames over any byte stream.
//! - [`protocol`]: the messages inside the frames ([`protocol::Command`] controller -> worker,
//!   [`protocol::WorkerEvent`] worker -> controller, [`protocol::Report`]).
//! - [`exit`]: pytest's exit codes.
//! - [`env`]: every environment variable name xdist reads or sets.
//! - [`spec`]: `--tx` worker specs.
//! - [`pystr`]: Python string semantics (`splitlines`, `repr`, `shlex.split`).

pub mod env;
pub mod exit;
pub mod frame;
pub mod protocol;
pub mod pystr;
pub mod spec;

/// 32 random hex digits (`/dev/urandom`; the clock and pid where it cannot be read): run ids
/// and per-run secrets.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (std::process::id() as u128) << 64;
        bytes = t.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
