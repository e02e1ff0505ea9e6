//! The one error type at the top of the binary, and its exit codes.

use xdist_core::exit::ExitCode;

/// Everything that ends a run early. Messages are fragments that read well after
/// `xdist: error: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad command-line or configuration input (exit 4).
    #[error("{0}")]
    Usage(String),
    /// `--help`/`--version` text, printed to stdout (exit 0).
    #[error("{0}")]
    Display(String),
    #[error(transparent)]
    Python(#[from] xdist_config::python::PythonError),
    #[error(transparent)]
    Ini(#[from] xdist_config::ini::IniError),
    #[error(transparent)]
    Spawn(#[from] xdist_worker::SpawnError),
    /// A plugin failed to load (exit 4) or failed inside a hook (exit 3).
    #[error("{message}")]
    Plugin { code: i32, message: String },
    /// A report file could not be written (exit 1, as pytest).
    #[error(transparent)]
    ReportFile(#[from] crate::report::FileError),
    /// Something inside xdist or a worker went wrong (exit 3).
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Display(_) => ExitCode::Ok.code(),
            CliError::Usage(_) | CliError::Python(_) | CliError::Ini(_) | CliError::Spawn(_) => {
                ExitCode::UsageError.code()
            }
            CliError::Internal(_) => ExitCode::InternalError.code(),
            CliError::ReportFile(_) => ExitCode::TestsFailed.code(),
            CliError::Plugin { code, .. } => *code,
        }
    }
}
