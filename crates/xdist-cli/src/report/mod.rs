//! Reporters: consumers of run events that render or write them (the terminal reporter
//! with its live status line, `--junitxml`, `--report-log`, pytest's cache files), and all
//! the wording the run shows: worker failures and the errors a worker ends the run with
//! (`crash`), xdist's own lines, stop reasons and the collection-mismatch report (`text`).
//! The run hands facts (`events`: `XdistNote`, `Interruption`, `ShouldFail`, `Fault`,
//! `CrashMoment`); words are made here. They read events and options only (and
//! `pystep::cov`'s outcome type); they never drive the run.
//! A report file that cannot be written is returned as a [`FileError`] and fails the run.

pub mod cache;
pub mod crash;
pub mod events;
pub mod junit;
pub mod reportlog;
pub mod status;
pub mod terminal;
pub mod termwriter;
pub mod text;

/// A report file (`--junitxml`, `--report-log`) that could not be written: the run fails,
/// as pytest's does (it exits 1).
#[derive(Debug, thiserror::Error)]
#[error("could not write {what} {}: {source}; give a path in a writable directory", path.display())]
pub struct FileError {
    pub what: &'static str,
    pub path: std::path::PathBuf,
    pub source: std::io::Error,
}

impl FileError {
    pub fn new(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        let path = path.to_path_buf();
        FileError { what, path, source }
    }
}
