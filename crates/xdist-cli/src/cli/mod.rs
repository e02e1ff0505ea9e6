//! What the user typed and the commands that are not a distributed run: the command line
//! and its validation (`args`), `--help`/man page/completions (`generate`), plugin
//! selection (`plugins`), `xdist serve`, plain pytest for `-n 0` and informational options
//! (`plain`), and the `merge-*` commands. May use `report` (for rendering) and `run` only
//! through their public entry points; nothing here owns run state.

pub mod args;
pub mod generate;
pub mod merge;
pub mod plain;
pub mod plugins;
pub mod serve;
