//! The host side: finding plugin libraries, loading them safely, and calling their hooks with
//! pluggy's rules.
//!
//! # Call order
//! Hooks are called plugin by plugin in **load order**, which is discovery order:
//! `--plugin` paths (as given), then `XDIST_PLUGINS` entries, then `[tool.xdist] plugins`, then
//! the user plugin directory, then the system directories (inside a directory: by file name).
//! So for first-result hooks an explicitly named plugin wins over one installed in a directory.
//! (pluggy calls later-registered plugins first; xdist has no registration order that a user
//! could see, so it uses the order the user wrote.)
//!
//! First-result hooks (`make_scheduler`, `auto_num_workers`, `getremotemodule`,
//! `handlecrashitem`) stop at the first plugin that answers; "no answer" (`None` / `false` /
//! a plugin that does not implement the hook) falls through to the next plugin and finally to
//! xdist's built-in behaviour. Other hooks call every implementing plugin. The first error (a
//! hook returning `Err` or panicking) stops the call and is returned.
//!
//! # Parts
//! - `discovery`: which plugin libraries a run enables and where installed ones are found;
//! - `library`: opening one library and checking its ABI before any of its code runs;
//! - `plugin_host`: the loaded plugins and the hook calls, with pluggy's calling rules;
//! - `scheduler`: a plugin's scheduler behind xdist's `Scheduling` trait;
//! - `error`: what can go wrong, and its exit code.

mod discovery;
mod error;
mod library;
mod plugin_host;
mod scheduler;

pub use discovery::{disabled_from_args, Discovery, PluginSource, XDIST_PLUGINS_ENV};
pub use error::{HookError, LoadError, PluginError, PluginOrigin};
pub use plugin_host::{LoadOptions, PluginHost, PluginInfo, HOOK_NAMES, RESERVED_WORKERINPUT_KEYS};
