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

/// Installs the handlers for SIGINT, SIGTERM and SIGHUP.
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
        libc::signal(libc::SIGHUP, handler);
    }
}

/// How many interrupt signals arrived so far.
pub fn count() -> u32 {
    INTERRUPTS.load(Ordering::SeqCst)
}
