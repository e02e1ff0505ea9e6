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

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use abi_stable::abi_stability::abi_checking::check_layout_compatibility;
use abi_stable::library::{lib_header_from_path, LibHeader, LibraryError, RootModule};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::sabi_types::VersionNumber;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use abi_stable::StableAbi;
use xdist_sched::{Action, Collection, NodeKey, SchedConfig, SchedError, Scheduling};

use crate::abi::{
    self, PluginModuleRef, RCrashSched, RCrashSched_TO, RHookError, RHookResult, RSchedulerBox,
    ABI_MAJOR, ABI_VERSION_STRING,
};
use crate::types::{
    action_from_abi, options_to_abi, parse_map, rstrings, sched_config_to_abi,
    sched_error_from_abi, ConfigView, GatewayView, NodeView, ReportView,
};

/// Environment variable with extra plugin paths, separated like `PATH`.
pub const XDIST_PLUGINS_ENV: &str = xdist_core::env::XDIST_PLUGINS;

/// `workerinput` keys owned by xdist: `configure_node` may add keys, but these are restored.
pub const RESERVED_WORKERINPUT_KEYS: [&str; 4] =
    ["workerid", "workercount", "testrunuid", "mainargv"];

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

/// One plugin library to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSource {
    pub path: PathBuf,
    pub origin: PluginOrigin,
}

impl PluginSource {
    pub fn new(path: impl Into<PathBuf>, origin: PluginOrigin) -> Self {
        PluginSource {
            path: path.into(),
            origin,
        }
    }
}

/// Which plugins are enabled (`--plugin`, `XDIST_PLUGINS`, `[tool.xdist] plugins`: the
/// user's choice, in priority = load = call order) and where installed plugins are available
/// (the plugin directories: a bare name such as `crash-retry` is looked up there; installing
/// a plugin enables it nowhere).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// `--plugin PATH`, in the order given.
    pub cli: Vec<PathBuf>,
    /// `XDIST_PLUGINS` entries.
    pub env: Vec<PathBuf>,
    /// `[tool.xdist] plugins`, already resolved against the pyproject.toml's directory.
    pub pyproject: Vec<PathBuf>,
    /// The plugin directories (`*.so`, `*.dylib`, `*.dll`), each with its origin.
    pub dirs: Vec<(PathBuf, PluginOrigin)>,
}

impl Discovery {
    /// The standard locations: the given `--plugin` and pyproject paths, `XDIST_PLUGINS` from
    /// the environment, [`Discovery::user_dir`] and [`Discovery::system_dirs`].
    pub fn standard(cli: Vec<PathBuf>, pyproject: Vec<PathBuf>) -> Self {
        let env = std::env::var_os(XDIST_PLUGINS_ENV)
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let mut dirs = Vec::new();
        if let Some(u) = Self::user_dir() {
            dirs.push((u, PluginOrigin::UserDir));
        }
        dirs.extend(
            Self::system_dirs()
                .into_iter()
                .map(|d| (d, PluginOrigin::SystemDir)),
        );
        Discovery {
            cli,
            env,
            pyproject,
            dirs,
        }
    }

    /// `$XDG_DATA_HOME/xdist/plugins`, else `$HOME/.local/share/xdist/plugins`.
    pub fn user_dir() -> Option<PathBuf> {
        use xdist_core::env::{HOME, XDG_DATA_HOME};
        Self::user_dir_from(std::env::var_os(XDG_DATA_HOME), std::env::var_os(HOME))
    }

    /// [`Discovery::user_dir`] for given `XDG_DATA_HOME` and `HOME` values (a relative or
    /// empty `XDG_DATA_HOME` is ignored, as the XDG spec says).
    pub fn user_dir_from(
        xdg_data_home: Option<std::ffi::OsString>,
        home: Option<std::ffi::OsString>,
    ) -> Option<PathBuf> {
        let base = match xdg_data_home {
            Some(d) if !d.is_empty() && Path::new(&d).is_absolute() => PathBuf::from(d),
            _ => PathBuf::from(home.filter(|h| !h.is_empty())?).join(".local/share"),
        };
        Some(base.join("xdist/plugins"))
    }

    /// `<dir of the xdist executable>/../lib/xdist/plugins`, then `/usr/lib/xdist/plugins`
    /// (de-duplicated when the binary lives in `/usr/bin`).
    pub fn system_dirs() -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(bin_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            out.push(bin_dir.join("../lib/xdist/plugins"));
        }
        let usr = PathBuf::from("/usr/lib/xdist/plugins");
        let same = out.first().is_some_and(|d| same_file(d, &usr));
        if !same {
            out.push(usr);
        }
        out
    }

    /// The enabled plugin files, in order, de-duplicated (a file named twice keeps its first
    /// place; paths are compared after resolving symlinks). A bare name (no `/`, no library
    /// suffix) is the plugin installed in the directories as `lib<name>.so` (`-` read as `_`),
    /// the first directory that has it winning. Explicit paths are returned even if they do not
    /// exist, so that [`PluginHost::load`] reports them.
    pub fn sources(&self) -> Vec<PluginSource> {
        let mut out = Vec::new();
        let explicit = [
            (&self.cli, PluginOrigin::CommandLine),
            (&self.env, PluginOrigin::Env),
            (&self.pyproject, PluginOrigin::Pyproject),
        ];
        for (paths, origin) in explicit {
            out.extend(
                paths
                    .iter()
                    .map(|p| PluginSource::new(self.resolve_name(p), origin)),
            );
        }
        dedup_sources(out)
    }

    /// The plugins installed in the directories (available, not enabled), in directory order
    /// and by file name; missing directories are skipped.
    pub fn available(&self) -> Vec<PluginSource> {
        let mut out = Vec::new();
        for (dir, origin) in &self.dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_library(p) && p.is_file())
                .collect();
            files.sort();
            out.extend(files.into_iter().map(|p| PluginSource::new(p, *origin)));
        }
        dedup_sources(out)
    }

    /// `crash-retry` -> `<first dir having it>/libcrash_retry.so`; paths are kept as given.
    fn resolve_name(&self, p: &Path) -> PathBuf {
        let Some(name) = bare_name(p) else {
            return p.to_path_buf();
        };
        let file = format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            name.replace('-', "_"),
            std::env::consts::DLL_SUFFIX
        );
        self.dirs
            .iter()
            .map(|(dir, _)| dir.join(&file))
            .find(|f| f.is_file())
            .unwrap_or_else(|| p.to_path_buf())
    }
}

/// `crash-retry` in `--plugin crash-retry`: no directory part, no library suffix.
fn bare_name(p: &Path) -> Option<&str> {
    p.to_str().filter(|n| !n.contains('/') && !is_library(p))
}

fn is_library(p: &Path) -> bool {
    let suffix = std::env::consts::DLL_SUFFIX.trim_start_matches('.');
    p.extension() == Some(OsStr::new(suffix))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn dedup_sources(sources: Vec<PluginSource>) -> Vec<PluginSource> {
    let mut seen = HashSet::new();
    sources
        .into_iter()
        .filter(|s| seen.insert(s.path.canonicalize().unwrap_or_else(|_| s.path.clone())))
        .collect()
}

/// `-p no:NAME` / `-pno:NAME` / `-p=no:NAME` names in pytest arguments (stops at `--`).
pub fn disabled_from_args<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter().map(AsRef::as_ref);
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        let value = if a == "-p" {
            it.next()
        } else {
            a.strip_prefix("-p=").or_else(|| a.strip_prefix("-p"))
        };
        if let Some(name) = value.and_then(|v| v.strip_prefix("no:")) {
            out.push(name.to_owned());
        }
    }
    out
}

/// What [`PluginHost::load_with`] needs besides the paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Plugin names disabled with `-p no:NAME` (see [`disabled_from_args`]). Unknown names are
    /// ignored: they may name pytest plugins.
    pub disabled: Vec<String>,
    /// `NAME.KEY=VALUE` strings from `--plugin-opt` and pyproject.toml, in order (a later value
    /// for the same key wins).
    pub plugin_opts: Vec<String>,
}

/// A loaded plugin, as `xdist plugins` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub path: PathBuf,
    pub origin: PluginOrigin,
    /// The ABI revision the plugin was built with.
    pub abi_revision: u32,
    /// Implemented hooks, in [`HOOK_NAMES`] order.
    pub hooks: Vec<&'static str>,
    /// The plugin's options as given.
    pub options: BTreeMap<String, String>,
}

/// Every hook name, in ABI order (`configure` is not listed: every plugin has it).
pub const HOOK_NAMES: [&str; 13] = [
    "setupnodes",
    "newgateway",
    "configure_node",
    "testnodeready",
    "testnodedown",
    "node_collection_finished",
    "make_scheduler",
    "auto_num_workers",
    "handlecrashitem",
    "getremotemodule",
    "rsyncstart",
    "rsyncfinish",
    "sessionfinish",
];

fn implemented_hooks(m: PluginModuleRef) -> Vec<&'static str> {
    let present = [
        m.setupnodes().is_some(),
        m.newgateway().is_some(),
        m.configure_node().is_some(),
        m.testnodeready().is_some(),
        m.testnodedown().is_some(),
        m.node_collection_finished().is_some(),
        m.make_scheduler().is_some(),
        m.auto_num_workers().is_some(),
        m.handlecrashitem().is_some(),
        m.getremotemodule().is_some(),
        m.rsyncstart().is_some(),
        m.rsyncfinish().is_some(),
        m.sessionfinish().is_some(),
    ];
    HOOK_NAMES
        .iter()
        .zip(present)
        .filter_map(|(n, p)| p.then_some(*n))
        .collect()
}

struct Loaded {
    info: PluginInfo,
    module: PluginModuleRef,
}

/// The loaded plugins and the hook calls a controller makes.
///
/// See the crate documentation for the call sequence. `PluginHost` is `Send + Sync`; hook calls
/// take `&self` (plugins serialise their own state).
pub struct PluginHost {
    plugins: Vec<Loaded>,
    warnings: Vec<String>,
    errors: Arc<Mutex<Vec<PluginError>>>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| &p.info).collect::<Vec<_>>(),
            )
            .field("warnings", &self.warnings)
            .finish()
    }
}

fn load_one(source: &PluginSource) -> Result<PluginModuleRef, PluginError> {
    let path = &source.path;
    if !path.is_file() && bare_name(path).is_some() {
        return Err(PluginError::NotInstalled {
            name: path.display().to_string(),
            origin: source.origin,
        });
    }
    if !path.is_file() {
        return Err(PluginError::MissingFile {
            path: path.clone(),
            origin: source.origin,
        });
    }
    let not_plugin = |reason: String| PluginError::NotAPlugin {
        path: path.clone(),
        reason,
    };
    let header: &'static LibHeader = lib_header_from_path(path).map_err(|e| match e {
        LibraryError::OpenError { err, .. } => not_plugin(format!("cannot load it: {err}")),
        LibraryError::GetSymbolError { .. } => {
            not_plugin("it exports no abi_stable root module".to_owned())
        }
        LibraryError::InvalidAbiHeader(h) => PluginError::AbiMismatch {
            path: path.clone(),
            plugin: format!("(abi_stable header {h:?})"),
            host: ABI_VERSION_STRING.to_owned(),
        },
        other => not_plugin(other.to_string()),
    })?;
    let consts = header.root_mod_consts();
    if consts.name().as_str() != <PluginModuleRef as RootModule>::NAME {
        return Err(not_plugin(format!(
            "its root module is '{}', not '{}'",
            consts.name(),
            <PluginModuleRef as RootModule>::NAME
        )));
    }
    let plugin_version = header.version_strings();
    let major = VersionNumber::new(plugin_version).map(|v| v.major);
    if major != Ok(ABI_MAJOR) {
        return Err(PluginError::AbiMismatch {
            path: path.clone(),
            plugin: plugin_version.to_string(),
            host: ABI_VERSION_STRING.to_owned(),
        });
    }
    // abi_stable's own `init_root_module` only accepts a library whose root module has at
    // least the host's fields (a newer plugin). A plugin built before fields were appended has
    // fewer, so check the layout in both directions: either way, every field the two share
    // is verified compatible, and the prefix accessors read absent fields as `None` using the
    // library's own field count.
    let Some(lib_layout) = header.layout() else {
        return Err(not_plugin(
            "its root module carries no layout information".to_owned(),
        ));
    };
    let host_layout = <PluginModuleRef as StableAbi>::LAYOUT;
    if let Err(forward) = check_layout_compatibility(host_layout, lib_layout) {
        if check_layout_compatibility(lib_layout, host_layout).is_err() {
            return Err(PluginError::AbiMismatch {
                path: path.clone(),
                plugin: format!(
                    "{plugin_version} with an incompatible layout ({})",
                    layout_error_summary(&forward.to_string())
                ),
                host: ABI_VERSION_STRING.to_owned(),
            });
        }
    }
    // SAFETY: the layout was checked just above.
    unsafe { header.init_root_module_with_unchecked_layout::<PluginModuleRef>() }.map_err(|e| {
        match e {
            LibraryError::IncompatibleVersionNumber { .. } => PluginError::AbiMismatch {
                path: path.clone(),
                plugin: plugin_version.to_string(),
                host: ABI_VERSION_STRING.to_owned(),
            },
            other => not_plugin(other.to_string()),
        }
    })
}

/// The gist of abi_stable's (very long) layout error: its `Error:` lines.
fn layout_error_summary(full: &str) -> String {
    let gist: Vec<String> = full
        .split("Error:")
        .skip(1)
        .map(|chunk| chunk.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let mut text = if gist.is_empty() {
        full.split_whitespace().collect::<Vec<_>>().join(" ")
    } else {
        gist.join("; ")
    };
    if text.len() > 300 {
        let mut cut = 300;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

fn parse_plugin_opt(opt: &str) -> Result<(String, String, String), PluginError> {
    let bad = |reason: &str| PluginError::BadOption {
        option: opt.to_owned(),
        reason: reason.to_owned(),
    };
    let (lhs, value) = opt
        .split_once('=')
        .ok_or_else(|| bad("expected NAME.KEY=VALUE"))?;
    let (name, key) = lhs
        .split_once('.')
        .ok_or_else(|| bad("expected NAME.KEY=VALUE"))?;
    let (name, key) = (name.trim(), key.trim());
    if name.is_empty() || key.is_empty() {
        return Err(bad("expected NAME.KEY=VALUE"));
    }
    Ok((name.to_owned(), key.to_owned(), value.to_owned()))
}

impl PluginHost {
    /// Load plugins with no options and nothing disabled. See [`PluginHost::load_with`].
    pub fn load(sources: &[PluginSource]) -> Result<PluginHost, LoadError> {
        Self::load_with(sources, &LoadOptions::default())
    }

    /// A host without plugins (every hook is "no answer").
    pub fn empty() -> PluginHost {
        PluginHost {
            plugins: Vec::new(),
            warnings: Vec::new(),
            errors: Arc::default(),
        }
    }

    /// Load every source in order (a path given twice is loaded once), drop the disabled names,
    /// check names are unique, hand each plugin its options (`configure`), and collect
    /// deprecation warnings. Any failure stops loading and names the plugin.
    pub fn load_with(
        sources: &[PluginSource],
        opts: &LoadOptions,
    ) -> Result<PluginHost, LoadError> {
        let mut plugins: Vec<Loaded> = Vec::new();
        for source in dedup_sources(sources.to_vec()) {
            let module = load_one(&source)?;
            let name = module.name().to_string();
            if opts.disabled.iter().any(|d| d == &name) {
                continue;
            }
            if let Some(first) = plugins.iter().find(|p| p.info.name == name) {
                return Err(PluginError::DuplicateName {
                    name,
                    first: first.info.path.clone(),
                    second: source.path.clone(),
                });
            }
            plugins.push(Loaded {
                info: PluginInfo {
                    name,
                    version: module.version().to_string(),
                    description: module.description().to_string(),
                    path: source.path.clone(),
                    origin: source.origin,
                    abi_revision: module.abi_revision(),
                    hooks: implemented_hooks(module),
                    options: BTreeMap::new(),
                },
                module,
            });
        }
        for opt in &opts.plugin_opts {
            let (name, key, value) = parse_plugin_opt(opt)?;
            match plugins.iter_mut().find(|p| p.info.name == name) {
                Some(p) => {
                    p.info.options.insert(key, value);
                }
                None if opts.disabled.contains(&name) => {}
                None => {
                    return Err(PluginError::BadOption {
                        option: opt.clone(),
                        reason: format!("no plugin named '{name}' is loaded"),
                    })
                }
            }
        }
        let mut warnings = Vec::new();
        for p in &plugins {
            if let Some(configure) = p.module.configure() {
                match configure(&options_to_abi(&p.info.options)) {
                    RResult::ROk(()) => {}
                    RResult::RErr(e) if e.panicked => {
                        return Err(hook_error(&p.info.name, "configure", e))
                    }
                    RResult::RErr(e) => {
                        return Err(PluginError::Configure {
                            plugin: p.info.name.clone(),
                            message: e.message.to_string(),
                        })
                    }
                }
            }
            for hook in ["rsyncstart", "rsyncfinish"] {
                if p.info.hooks.contains(&hook) {
                    warnings.push(format!(
                        "plugin '{}' implements the deprecated hook pytest_xdist_{hook}: the rsync feature is deprecated and will be removed in pytest-xdist 4.0",
                        p.info.name
                    ));
                }
            }
        }
        Ok(PluginHost {
            plugins,
            warnings,
            errors: Arc::default(),
        })
    }

    /// The loaded plugins, in call order.
    pub fn plugins(&self) -> Vec<&PluginInfo> {
        self.plugins.iter().map(|p| &p.info).collect()
    }

    /// True when no plugin is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Warnings collected at load (deprecated hooks implemented), to print once.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The first error raised inside a plugin scheduler returned by
    /// [`PluginHost::make_scheduler`] (its trait methods cannot return errors). Check after
    /// each batch of scheduler calls; once an error is recorded the scheduler hands out no more
    /// work and reports itself finished.
    pub fn take_error(&self) -> Option<PluginError> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            None
        } else {
            Some(errors.remove(0))
        }
    }

    fn implementing<'a, F: Copy>(
        &'a self,
        get: impl Fn(PluginModuleRef) -> Option<F> + 'a,
    ) -> impl Iterator<Item = (&'a str, F)> + 'a {
        self.plugins
            .iter()
            .filter_map(move |p| get(p.module).map(|f| (p.info.name.as_str(), f)))
    }

    /// `pytest_xdist_setupnodes(config, specs)`: before any worker starts.
    pub fn setupnodes(&self, config: &ConfigView, specs: &[String]) -> Result<(), HookError> {
        let (c, s) = (config.to_abi(), rstrings(specs));
        for (name, f) in self.implementing(|m| m.setupnodes()) {
            check(name, "setupnodes", f(&c, &s))?;
        }
        Ok(())
    }

    /// `pytest_xdist_newgateway(gateway)`: after each worker process is created.
    pub fn newgateway(&self, gateway: &GatewayView) -> Result<(), HookError> {
        let g = gateway.to_abi();
        for (name, f) in self.implementing(|m| m.newgateway()) {
            check(name, "newgateway", f(&g))?;
        }
        Ok(())
    }

    /// `pytest_configure_node(node)`: plugins may add keys to `node.workerinput` (updated in
    /// place; each plugin sees the previous plugins' additions). The reserved keys
    /// ([`RESERVED_WORKERINPUT_KEYS`]) are restored after each plugin.
    pub fn configure_node(&self, node: &mut NodeView) -> Result<(), HookError> {
        for (name, f) in self.implementing(|m| m.configure_node()) {
            let mut r = node.to_abi();
            check(name, "configure_node", f(&mut r))?;
            let mut input = parse_map("workerinput", &r.workerinput_json).map_err(|message| {
                PluginError::HookFailed {
                    plugin: name.to_owned(),
                    hook: "configure_node",
                    message,
                }
            })?;
            for key in RESERVED_WORKERINPUT_KEYS {
                match node.workerinput.get(key) {
                    Some(v) => input.insert(key.to_owned(), v.clone()),
                    None => input.remove(key),
                };
            }
            node.workerinput = input;
        }
        Ok(())
    }

    /// `pytest_testnodeready(node)`: the worker is ready (`workerinfo` filled).
    pub fn testnodeready(&self, node: &NodeView) -> Result<(), HookError> {
        let n = node.to_abi();
        for (name, f) in self.implementing(|m| m.testnodeready()) {
            check(name, "testnodeready", f(&n))?;
        }
        Ok(())
    }

    /// `pytest_testnodedown(node, error)`: `error` is `None` for a clean finish.
    pub fn testnodedown(&self, node: &NodeView, error: Option<&str>) -> Result<(), HookError> {
        let n = node.to_abi();
        for (name, f) in self.implementing(|m| m.testnodedown()) {
            let e: ROption<RString> = error.map(RString::from).into();
            check(name, "testnodedown", f(&n, e))?;
        }
        Ok(())
    }

    /// `pytest_xdist_node_collection_finished(node, ids)`.
    pub fn node_collection_finished(
        &self,
        node: &NodeView,
        ids: &[String],
    ) -> Result<(), HookError> {
        let mut hooks = self
            .implementing(|m| m.node_collection_finished())
            .peekable();
        if hooks.peek().is_none() {
            // Converting every id for nobody costs more than the rest of a collection.
            return Ok(());
        }
        let n = node.to_abi();
        let i = rstrings(ids);
        for (name, f) in hooks {
            check(name, "node_collection_finished", f(&n, &i))?;
        }
        Ok(())
    }

    /// `pytest_xdist_make_scheduler(config, log)`, first-result. `Ok(None)`: use the built-in
    /// scheduler for `--dist` (taken from `config.options["dist"]` and passed to the plugin).
    /// Errors inside the returned scheduler surface through [`PluginHost::take_error`].
    pub fn make_scheduler(
        &self,
        config: &ConfigView,
        sched: &SchedConfig,
    ) -> Result<Option<Box<dyn Scheduling>>, HookError> {
        let c = config.to_abi();
        let dist = config
            .options
            .get("dist")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let s = sched_config_to_abi(sched, dist);
        for (name, f) in self.implementing(|m| m.make_scheduler()) {
            if let Some(inner) = check(name, "make_scheduler", f(&c, &s))?.into_option() {
                let sched_name = inner.name().as_str();
                return Ok(Some(Box::new(PluginScheduler {
                    inner,
                    plugin: name.to_owned(),
                    name: sched_name,
                    errors: Arc::clone(&self.errors),
                    failed: AtomicBool::new(false),
                })));
            }
        }
        Ok(None)
    }

    /// `pytest_xdist_auto_num_workers(config)`, first-result: `Ok(None)` = use xdist's own
    /// count.
    pub fn auto_num_workers(&self, config: &ConfigView) -> Result<Option<usize>, HookError> {
        let c = config.to_abi();
        for (name, f) in self.implementing(|m| m.auto_num_workers()) {
            if let Some(n) = check(name, "auto_num_workers", f(&c))?.into_option() {
                return Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)));
            }
        }
        Ok(None)
    }

    /// `pytest_handlecrashitem(crashitem, report, sched)`, first-result. The controller builds
    /// the crash report (outcome `failed`, when `???`, longrepr `worker 'gw0' crashed while
    /// running '...'`) and calls this before logging it; plugins may change
    /// `report.outcome`/`report.longrepr` (kept in `report`) and call `mark_test_pending` on
    /// `sched`, whose actions are appended to `out`. `collection` maps node ids to indices.
    /// Returns whether a plugin handled it.
    pub fn handlecrashitem(
        &self,
        crashitem: &str,
        report: &mut ReportView,
        sched: &mut dyn Scheduling,
        collection: &[String],
        out: &mut Vec<Action>,
    ) -> Result<bool, HookError> {
        let item = RString::from(crashitem);
        for (name, f) in self.implementing(|m| m.handlecrashitem()) {
            let mut r = report.to_abi();
            let mut handle = HostCrashSched {
                sched: &mut *sched,
                collection,
                out: &mut *out,
            };
            let result = f(
                &item,
                &mut r,
                RCrashSched_TO::from_ptr(&mut handle, TD_Opaque),
            );
            let handled = check(name, "handlecrashitem", result)?;
            report.outcome = r.outcome.to_string();
            report.longrepr = r.longrepr.to_string();
            if handled {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `pytest_xdist_getremotemodule()`, first-result: replacement Python worker code.
    pub fn getremotemodule(&self) -> Result<Option<String>, HookError> {
        for (name, f) in self.implementing(|m| m.getremotemodule()) {
            if let Some(code) = check(name, "getremotemodule", f())?.into_option() {
                return Ok(Some(code.into_string()));
            }
        }
        Ok(None)
    }

    /// Deprecated `pytest_xdist_rsyncstart(source, gateways)`.
    pub fn rsyncstart(&self, source: &str, gateways: &[GatewayView]) -> Result<(), HookError> {
        let (s, g) = (RString::from(source), gateways_abi(gateways));
        for (name, f) in self.implementing(|m| m.rsyncstart()) {
            check(name, "rsyncstart", f(&s, &g))?;
        }
        Ok(())
    }

    /// Deprecated `pytest_xdist_rsyncfinish(source, gateways)`.
    pub fn rsyncfinish(&self, source: &str, gateways: &[GatewayView]) -> Result<(), HookError> {
        let (s, g) = (RString::from(source), gateways_abi(gateways));
        for (name, f) in self.implementing(|m| m.rsyncfinish()) {
            check(name, "rsyncfinish", f(&s, &g))?;
        }
        Ok(())
    }

    /// The end of the session (after the last worker is down, before the summary): plugins
    /// write their files and may return text for the terminal summary, returned here as
    /// `(plugin name, text)` in call order.
    pub fn sessionfinish(&self, exitstatus: i32) -> Result<Vec<(String, String)>, HookError> {
        let mut out = Vec::new();
        for (name, f) in self.implementing(|m| m.sessionfinish()) {
            if let Some(text) = check(name, "sessionfinish", f(exitstatus))?.into_option() {
                out.push((name.to_owned(), text.into_string()));
            }
        }
        Ok(out)
    }
}

fn gateways_abi(g: &[GatewayView]) -> RVec<abi::RGateway> {
    g.iter().map(GatewayView::to_abi).collect()
}

fn hook_error(plugin: &str, hook: &'static str, e: RHookError) -> PluginError {
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

fn check<T>(plugin: &str, hook: &'static str, r: RHookResult<T>) -> Result<T, PluginError> {
    r.into_result().map_err(|e| hook_error(plugin, hook, e))
}

struct HostCrashSched<'a> {
    sched: &'a mut dyn Scheduling,
    collection: &'a [String],
    out: &'a mut Vec<Action>,
}

impl RCrashSched for HostCrashSched<'_> {
    fn mark_test_pending(&mut self, nodeid: RStr<'_>) -> RResult<(), RString> {
        let Some(index) = self.collection.iter().position(|id| id == nodeid.as_str()) else {
            return RResult::RErr(format!("unknown test id {:?}", nodeid.as_str()).into());
        };
        match self.sched.mark_test_pending(index, self.out) {
            Ok(()) => RResult::ROk(()),
            Err(e) => RResult::RErr(e.to_string().into()),
        }
    }
}

/// A plugin's scheduler as a `Box<dyn Scheduling>`. A failing call records a [`PluginError`]
/// (see [`PluginHost::take_error`]) and disables the scheduler.
struct PluginScheduler {
    inner: RSchedulerBox,
    plugin: String,
    name: &'static str,
    errors: Arc<Mutex<Vec<PluginError>>>,
    failed: AtomicBool,
}

impl PluginScheduler {
    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    fn ok<T>(&self, method: &'static str, r: RHookResult<T>) -> Option<T> {
        match r {
            RResult::ROk(v) => Some(v),
            RResult::RErr(e) => {
                self.fail(hook_error(&self.plugin, method, e));
                None
            }
        }
    }

    fn fail(&self, e: PluginError) {
        self.failed.store(true, Ordering::Relaxed);
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    fn push_actions(
        &self,
        method: &'static str,
        actions: RVec<abi::RAction>,
        out: &mut Vec<Action>,
    ) {
        for a in actions.iter() {
            match action_from_abi(a) {
                Ok(a) => out.push(a),
                Err(message) => {
                    let e = PluginError::HookFailed {
                        plugin: self.plugin.clone(),
                        hook: method,
                        message,
                    };
                    self.fail(e);
                    return;
                }
            }
        }
    }

    fn sched_result(
        &self,
        method: &'static str,
        r: RHookResult<RResult<RVec<abi::RAction>, abi::RSchedError>>,
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        match self.ok(method, r) {
            Some(RResult::ROk(actions)) => {
                self.push_actions(method, actions, out);
                Ok(())
            }
            Some(RResult::RErr(e)) => Err(sched_error_from_abi(&e)),
            None => Err(SchedError::Unsupported { mode: self.name }),
        }
    }
}

impl Scheduling for PluginScheduler {
    fn name(&self) -> &'static str {
        self.name
    }
    fn nodes(&self) -> Vec<NodeKey> {
        if self.failed() {
            return Vec::new();
        }
        let r = self.inner.nodes();
        self.ok("Scheduling::nodes", r)
            .map(|v| v.iter().map(|&n| NodeKey(n)).collect())
            .unwrap_or_default()
    }
    fn collection_is_completed(&self) -> bool {
        self.query(
            "Scheduling::collection_is_completed",
            |s| s.collection_is_completed(),
            true,
        )
    }
    fn tests_finished(&self) -> bool {
        self.query("Scheduling::tests_finished", |s| s.tests_finished(), true)
    }
    fn has_pending(&self) -> bool {
        self.query("Scheduling::has_pending", |s| s.has_pending(), false)
    }
    fn add_node(&mut self, node: NodeKey, spec: &str) {
        if !self.failed() {
            let r = self.inner.add_node(node.0, RStr::from_str(spec));
            self.ok("Scheduling::add_node", r);
        }
    }
    fn add_node_collection(&mut self, node: NodeKey, collection: Arc<Collection>) {
        if !self.failed() {
            let ids = rstrings(&collection.ids);
            let groups: RVec<ROption<RString>> = collection
                .groups
                .iter()
                .map(|g| g.as_deref().map(RString::from).into())
                .collect();
            let r = self.inner.add_node_collection(node.0, &ids, &groups);
            self.ok("Scheduling::add_node_collection", r);
        }
    }
    fn mark_test_complete(
        &mut self,
        node: NodeKey,
        index: usize,
        duration: f64,
        out: &mut Vec<Action>,
    ) {
        if !self.failed() {
            let r = self
                .inner
                .mark_test_complete(node.0, index as u64, duration);
            if let Some(a) = self.ok("Scheduling::mark_test_complete", r) {
                self.push_actions("Scheduling::mark_test_complete", a, out);
            }
        }
    }
    fn mark_test_pending(&mut self, index: usize, out: &mut Vec<Action>) -> Result<(), SchedError> {
        if self.failed() {
            return Err(SchedError::Unsupported { mode: self.name });
        }
        let r = self.inner.mark_test_pending(index as u64);
        self.sched_result("Scheduling::mark_test_pending", r, out)
    }
    fn remove_pending_tests_from_node(
        &mut self,
        node: NodeKey,
        indices: &[usize],
        out: &mut Vec<Action>,
    ) -> Result<(), SchedError> {
        if self.failed() {
            return Ok(());
        }
        let idx: RVec<u64> = indices.iter().map(|&i| i as u64).collect();
        let r = self.inner.remove_pending_tests_from_node(node.0, &idx);
        self.sched_result("Scheduling::remove_pending_tests_from_node", r, out)
    }
    fn remove_node(&mut self, node: NodeKey, out: &mut Vec<Action>) -> Option<usize> {
        if self.failed() {
            return None;
        }
        let r = self.inner.remove_node(node.0);
        let t = self.ok("Scheduling::remove_node", r)?;
        let (running, actions) = (t.0, t.1);
        self.push_actions("Scheduling::remove_node", actions, out);
        running.into_option().and_then(|i| usize::try_from(i).ok())
    }
    fn schedule(&mut self, out: &mut Vec<Action>) {
        if !self.failed() {
            let r = self.inner.schedule();
            if let Some(a) = self.ok("Scheduling::schedule", r) {
                self.push_actions("Scheduling::schedule", a, out);
            }
        }
    }
}

impl PluginScheduler {
    fn query(
        &self,
        method: &'static str,
        f: impl FnOnce(&RSchedulerBox) -> RHookResult<bool>,
        when_failed: bool,
    ) -> bool {
        if self.failed() {
            return when_failed;
        }
        let r = f(&self.inner);
        self.ok(method, r).unwrap_or(when_failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xdist-host-unit-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("tmp");
        d
    }

    #[test]
    fn discovery_order_and_dedup() {
        let d = tmpdir("disc");
        let user = d.join("user");
        let sys = d.join("sys");
        std::fs::create_dir_all(&user).expect("dir");
        std::fs::create_dir_all(&sys).expect("dir");
        let suffix = std::env::consts::DLL_SUFFIX;
        for f in [
            format!("libb{suffix}"),
            format!("liba{suffix}"),
            "README.md".into(),
        ] {
            std::fs::write(user.join(f), "x").expect("write");
        }
        std::fs::write(sys.join(format!("libc{suffix}")), "x").expect("write");
        let dup = user.join(format!("liba{suffix}"));
        let disc = Discovery {
            cli: vec![PathBuf::from("/cli/one.so"), dup.clone()],
            env: vec![PathBuf::from("/env/two.so"), PathBuf::from("/cli/one.so")],
            pyproject: vec![PathBuf::from("/py/three.so")],
            dirs: vec![
                (user.clone(), PluginOrigin::UserDir),
                (d.join("missing"), PluginOrigin::SystemDir),
                (sys.clone(), PluginOrigin::SystemDir),
            ],
        };
        let pairs = |v: Vec<PluginSource>| -> Vec<(PathBuf, PluginOrigin)> {
            v.into_iter().map(|s| (s.path, s.origin)).collect()
        };
        // Only what was named is enabled; installed plugins are available.
        assert_eq!(
            pairs(disc.sources()),
            vec![
                (PathBuf::from("/cli/one.so"), PluginOrigin::CommandLine),
                (dup.clone(), PluginOrigin::CommandLine),
                (PathBuf::from("/env/two.so"), PluginOrigin::Env),
                (PathBuf::from("/py/three.so"), PluginOrigin::Pyproject),
            ]
        );
        assert_eq!(
            pairs(disc.available()),
            vec![
                (dup.clone(), PluginOrigin::UserDir),
                (user.join(format!("libb{suffix}")), PluginOrigin::UserDir),
                (sys.join(format!("libc{suffix}")), PluginOrigin::SystemDir),
            ]
        );
        // Bare names resolve in the directories, in their order; unknown names stay as given.
        let named = Discovery {
            cli: vec!["c".into(), "b".into()],
            env: vec!["nope".into()],
            pyproject: vec!["a".into()],
            ..disc.clone()
        };
        assert_eq!(
            pairs(named.sources()),
            vec![
                (sys.join(format!("libc{suffix}")), PluginOrigin::CommandLine),
                (
                    user.join(format!("libb{suffix}")),
                    PluginOrigin::CommandLine
                ),
                (PathBuf::from("nope"), PluginOrigin::Env),
                (dup, PluginOrigin::Pyproject),
            ]
        );
    }

    #[test]
    fn user_dir_follows_xdg() {
        assert_eq!(
            Discovery::user_dir_from(Some("/xdg".into()), Some("/home/u".into())),
            Some(PathBuf::from("/xdg/xdist/plugins"))
        );
        assert_eq!(
            Discovery::user_dir_from(Some("relative".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.local/share/xdist/plugins"))
        );
        assert_eq!(
            Discovery::user_dir_from(None, Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.local/share/xdist/plugins"))
        );
        assert_eq!(Discovery::user_dir_from(None, None), None);
        assert!(Discovery::system_dirs()
            .iter()
            .any(|d| d == Path::new("/usr/lib/xdist/plugins") || d.ends_with("lib/xdist/plugins")));
    }

    #[test]
    fn disabled_names_from_pytest_args() {
        let args = [
            "-p",
            "no:crash-retry",
            "-pno:a",
            "-p=no:b",
            "-p",
            "cov",
            "--",
            "-p",
            "no:c",
        ];
        assert_eq!(disabled_from_args(&args), vec!["crash-retry", "a", "b"]);
        assert!(disabled_from_args::<&str>(&[]).is_empty());
    }

    #[test]
    fn plugin_opt_syntax() {
        let (n, k, v) = parse_plugin_opt("crash-retry.max-reruns=2").expect("ok");
        assert_eq!(
            (n.as_str(), k.as_str(), v.as_str()),
            ("crash-retry", "max-reruns", "2")
        );
        let (_, k, v) = parse_plugin_opt("p.patterns=a=b,c.d").expect("ok");
        assert_eq!((k.as_str(), v.as_str()), ("patterns", "a=b,c.d"));
        for bad in ["x", "x=1", ".k=1", "n.=1"] {
            let e = parse_plugin_opt(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 4);
        }
    }

    #[test]
    fn layout_error_gist() {
        let s = layout_error_summary("lots of dump\nError:too many fields\nExpected:\n    18\n");
        assert_eq!(s, "too many fields Expected: 18");
    }

    #[test]
    fn empty_host_has_no_answers() {
        let h = PluginHost::empty();
        assert!(h.is_empty());
        assert_eq!(
            h.auto_num_workers(&ConfigView::default()).expect("ok"),
            None
        );
        assert_eq!(h.getremotemodule().expect("ok"), None);
        assert!(h.sessionfinish(0).expect("ok").is_empty());
    }
}
