//! Reporters: consumers of run events that render or write them (the terminal reporter
//! with its live status line, `--junitxml`, `--report-log`, pytest's cache files) and the
//! terminal-writing helpers they share. They read events and options only; they never
//! drive the run.

pub mod cache;
pub mod junit;
pub mod reportlog;
pub mod status;
pub mod terminal;
pub mod termwriter;
pub mod text;
