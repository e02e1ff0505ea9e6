//! Ctrl-C, SIGTERM and SIGHUP (a closed terminal or ssh session): counted by a handler, acted
//! on by the controller loop, so report files are completed and the exit code is 2 either way.
//!
//! The first signal stops scheduling and lets running tests finish for a short grace period;
//! the second kills every worker at once. Workers live in their own process group, so a
//! terminal Ctrl-C reaches only the controller, which decides.

use std::sync::atomic::{AtomicU32, Ordering};

static INTERRUPTS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP, except for a signal this process was
/// started with ignored (`nohup`, a background job of a non-interactive shell): it stays
/// ignored here and so in the workers, as in any process started there (Python, pytest).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        if !ignored(sig) {
            // SAFETY: the handler only touches an atomic, which is async-signal-safe.
            unsafe {
                libc::signal(sig, handler);
            }
        }
    }
}

/// Whether `sig` is ignored (inherited `SIG_IGN`).
fn ignored(sig: libc::c_int) -> bool {
    // SAFETY: a null new action only reads the current one into `old`.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
    }
}

/// How many interrupt signals arrived so far.
pub fn count() -> u32 {
    INTERRUPTS.load(Ordering::SeqCst)
}
