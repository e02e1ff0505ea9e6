//! Which plugin libraries a run enables (`--plugin`, `XDIST_PLUGINS`, pyproject) and the
//! directories where installed plugins are found by name.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::error::PluginOrigin;

/// Environment variable with extra plugin paths, separated like `PATH`.
pub const XDIST_PLUGINS_ENV: &str = xdist_core::env::XDIST_PLUGINS;

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
pub(super) fn bare_name(p: &Path) -> Option<&str> {
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

pub(super) fn dedup_sources(sources: Vec<PluginSource>) -> Vec<PluginSource> {
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
}
