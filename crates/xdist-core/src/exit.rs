//! pytest's exit codes, which xdist returns unchanged.

/// Process exit status, as pytest's `ExitCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    Ok = 0,
    TestsFailed = 1,
    Interrupted = 2,
    InternalError = 3,
    UsageError = 4,
    NoTestsCollected = 5,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}
