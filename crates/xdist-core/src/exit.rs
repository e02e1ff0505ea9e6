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

    /// The exit code pytest's `ExitCode` value `code` stands for.
    pub fn from_code(code: i64) -> Option<ExitCode> {
        Some(match code {
            0 => ExitCode::Ok,
            1 => ExitCode::TestsFailed,
            2 => ExitCode::Interrupted,
            3 => ExitCode::InternalError,
            4 => ExitCode::UsageError,
            5 => ExitCode::NoTestsCollected,
            _ => return None,
        })
    }
}
