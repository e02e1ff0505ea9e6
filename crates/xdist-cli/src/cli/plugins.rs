//! Glue between the CLI and `xdist-plugin-api`: which plugins to load, what they see, and
//! the `xdist plugins` command.

use std::path::PathBuf;

use serde_json::json;
use xdist_config::ini::PytestConfigFile;
use xdist_plugin_api::host::{disabled_from_args, Discovery, LoadOptions, PluginError, PluginHost};
use xdist_plugin_api::ConfigView;

use crate::cli::args::RunOptions;
use crate::error::CliError;

/// A plugin error becomes the run's error, with the plugin's exit code (4 load, 3 hook).
pub fn hook_error(e: PluginError) -> CliError {
    CliError::Plugin {
        code: e.exit_code(),
        message: e.to_string(),
    }
}

/// Loads the enabled plugins: `--plugin`, `XDIST_PLUGINS`, `[tool.xdist] plugins` (paths, or
/// names of plugins installed in the plugin directories). Installed alone is not enabled.
pub fn load(opts: &RunOptions, ini: &PytestConfigFile) -> Result<PluginHost, CliError> {
    let tool = ini.tool_xdist()?;
    let (pyproject, mut plugin_opts) = match tool {
        Some(t) => (t.plugins, t.plugin_opts),
        None => (Vec::new(), Vec::new()),
    };
    // The command line wins: its options come last.
    plugin_opts.extend(opts.plugin_opts.iter().cloned());
    let sources = Discovery::standard(opts.plugins.clone(), pyproject).sources();
    // With options but no plugin, load_with reports the options' unknown plugin names.
    if sources.is_empty() && plugin_opts.is_empty() {
        return Ok(PluginHost::empty());
    }
    let host = PluginHost::load_with(
        &sources,
        &LoadOptions {
            disabled: disabled_from_args(&opts.pytest_args),
            plugin_opts,
        },
    )
    .map_err(hook_error)?;
    for w in host.warnings() {
        eprintln!("xdist: warning: {w}");
    }
    Ok(host)
}

/// What plugin hooks see of the run's configuration.
pub fn config_view(opts: &RunOptions, ini: &PytestConfigFile) -> ConfigView {
    let mut options = serde_json::Map::new();
    let num = match opts.numprocesses {
        crate::cli::args::NumProcesses::Count(n) => json!(n),
        crate::cli::args::NumProcesses::Auto => json!("auto"),
        crate::cli::args::NumProcesses::Logical => json!("logical"),
    };
    options.insert("numprocesses".into(), num);
    options.insert("dist".into(), json!(opts.dist.as_str()));
    options.insert("maxprocesses".into(), json!(opts.maxprocesses));
    options.insert("maxworkerrestart".into(), json!(opts.max_worker_restart));
    options.insert("maxschedchunk".into(), json!(opts.maxschedchunk));
    options.insert("loadscopereorder".into(), json!(opts.loadscope_reorder));
    options.insert("testrunuid".into(), json!(opts.testrunuid));
    ConfigView {
        options,
        args: opts.pytest_args.clone(),
        rootdir: ini.rootdir.display().to_string(),
    }
}

/// `xdist plugins [--paths] [--plugin PATH]...`: list loaded plugins and their hooks.
/// `xdist plugins`: its options (parsed, and rendered in `--help`, the man page and the
/// completions).
#[derive(Debug, clap::Parser)]
#[command(
    name = "xdist plugins",
    about = "List the plugins xdist loads, their versions and hooks",
    long_about = "Lists the plugins a run in the current directory enables (--plugin, \
                  $XDIST_PLUGINS, [tool.xdist] plugins in pyproject.toml) and those installed in \
                  the plugin directories, which a bare name (`--plugin crash-retry`) enables, \
                  with their versions, origin, plugin ABI revision, path and hooks."
)]
pub struct PluginsArgs {
    /// Print the plugin directories searched, in order, and exit.
    #[arg(long)]
    paths: bool,
    /// Also load this plugin library (or an installed plugin's name); repeatable.
    #[arg(long = "plugin", value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    plugin: Vec<PathBuf>,
}

pub fn list_command(args: &[String]) -> Result<i32, CliError> {
    let args: PluginsArgs = crate::args::parse_subcommand("xdist plugins", args)?;
    let explicit = args.plugin;
    if args.paths {
        if let Some(dir) = Discovery::user_dir() {
            outln!("{}", dir.display());
        }
        for dir in Discovery::system_dirs() {
            outln!("{}", dir.display());
        }
        return Ok(0);
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::Usage(format!("failed to read the current directory: {e}")))?;
    let pyproject = xdist_config::ini::locate(&[], &cwd)
        .ok()
        .and_then(|ini| ini.tool_xdist().ok().flatten())
        .map(|t| t.plugins)
        .unwrap_or_default();
    let discovery = Discovery::standard(explicit, pyproject);
    let sources = discovery.sources();
    let host = PluginHost::load_with(&sources, &LoadOptions::default()).map_err(hook_error)?;
    let same = |a: &std::path::Path, b: &std::path::Path| {
        a == b
            || a.canonicalize()
                .ok()
                .is_some_and(|a| b.canonicalize().ok() == Some(a))
    };
    let available: Vec<_> = (discovery.available().into_iter())
        .filter(|a| !sources.iter().any(|s| same(&s.path, &a.path)))
        .collect();
    let installed =
        PluginHost::load_with(&available, &LoadOptions::default()).map_err(hook_error)?;
    if host.is_empty() && installed.is_empty() {
        outln!(
            "no plugins enabled or installed (see `xdist plugins --paths` for where xdist looks)"
        );
        return Ok(0);
    }
    for (h, enabled) in [(&host, true), (&installed, false)] {
        for p in h.plugins() {
            outln!(
                "{} {} ({:?}, ABI 1.{}) {}",
                p.name,
                p.version,
                p.origin,
                p.abi_revision,
                p.path.display()
            );
            if !p.description.is_empty() {
                outln!("    {}", p.description);
            }
            outln!("    hooks: {}", p.hooks.join(", "));
            if !enabled {
                outln!("    installed, not enabled: `--plugin {}` (or XDIST_PLUGINS, [tool.xdist] plugins) enables it", p.name);
            }
        }
    }
    Ok(0)
}
