//! What can go wrong with plugins, and the exit code it gives.

use std::fmt;
use std::path::PathBuf;

use super::discovery::XDIST_PLUGINS_ENV;
use crate::abi::{RHookError, RHookResult, ABI_MAJOR};

/// Everything that can go wrong with plugins. [`PluginError::exit_code`] gives the process exit
/// code: 4 (usage error) for load and option problems, 3 (internal error) for failing hooks.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin file {} does not exist (given by {origin}); fix the path or remove it", path.display())]
    MissingFile { path: PathBuf, origin: PluginOrigin },
    #[error("no plugin named {name} is installed (given by {origin}); install it in a plugin directory (`xdist plugins --paths`) or give its path")]
    NotInstalled { name: String, origin: PluginOrigin },
    #[error("{} is not an xdist plugin: {reason} (an xdist plugin is a cdylib that uses xdist_plugin_api::export_plugin!)", path.display())]
    NotAPlugin { path: PathBuf, reason: String },
    #[error("plugin {} was built for xdist plugin ABI {plugin}, but this xdist uses ABI {host}; rebuild the plugin against xdist-plugin-api {host_major}.x", path.display(), host_major = ABI_MAJOR)]
    AbiMismatch {
        path: PathBuf,
        plugin: String,
        host: String,
    },
    #[error("two plugins are named '{name}': {} and {}; remove one of them or disable the name with -p no:{name}", first.display(), second.display())]
    DuplicateName {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("bad plugin option {option:?}: {reason}")]
    BadOption { option: String, reason: String },
    #[error("plugin '{plugin}' rejected its options: {message}")]
    Configure { plugin: String, message: String },
    #[error("plugin '{plugin}' panicked in hook {hook}: {message}; report this to the plugin's author or disable it with -p no:{plugin}")]
    HookPanic {
        plugin: String,
        hook: &'static str,
        message: String,
    },
    #[error("plugin '{plugin}' failed in hook {hook}: {message}")]
    HookFailed {
        plugin: String,
        hook: &'static str,
        message: String,
    },
}

impl PluginError {
    /// 4 for everything that stops xdist before a run (bad path, not a plugin, ABI mismatch,
    /// duplicate name, bad options), 3 for a hook that failed or panicked during the run.
    pub fn exit_code(&self) -> i32 {
        match self {
            PluginError::HookPanic { .. } | PluginError::HookFailed { .. } => 3,
            _ => 4,
        }
    }
}

/// Errors of [`PluginHost::load`] (exit code 4, except a panic inside `configure`: 3).
pub type LoadError = PluginError;
/// Errors of hook calls (exit code 3).
pub type HookError = PluginError;

/// Where a plugin path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PluginOrigin {
    /// `--plugin PATH`
    CommandLine,
    /// `XDIST_PLUGINS`
    Env,
    /// `[tool.xdist] plugins` in pyproject.toml
    Pyproject,
    /// `$XDG_DATA_HOME/xdist/plugins` (default `~/.local/share/xdist/plugins`)
    UserDir,
    /// `<exe_dir>/../lib/xdist/plugins` or `/usr/lib/xdist/plugins`
    SystemDir,
}

impl fmt::Display for PluginOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginOrigin::CommandLine => "--plugin",
            PluginOrigin::Env => XDIST_PLUGINS_ENV,
            PluginOrigin::Pyproject => "[tool.xdist] plugins",
            PluginOrigin::UserDir => "the user plugin directory",
            PluginOrigin::SystemDir => "a system plugin directory",
        })
    }
}

pub(super) fn hook_error(plugin: &str, hook: &'static str, e: RHookError) -> PluginError {
    if e.panicked {
        PluginError::HookPanic {
            plugin: plugin.to_owned(),
            hook,
            message: e.message.into_string(),
        }
    } else {
        PluginError::HookFailed {
            plugin: plugin.to_owned(),
            hook,
            message: e.message.into_string(),
        }
    }
}

pub(super) fn check<T>(
    plugin: &str,
    hook: &'static str,
    r: RHookResult<T>,
) -> Result<T, PluginError> {
    r.into_result().map_err(|e| hook_error(plugin, hook, e))
}
