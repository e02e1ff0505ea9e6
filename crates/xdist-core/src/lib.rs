//! Shared vocabulary of xdist: test outcomes and reports, the controller/worker protocol and
//! its framing, the options model, ini-file discovery, CPU counting, exit codes and errors.

pub mod env;
