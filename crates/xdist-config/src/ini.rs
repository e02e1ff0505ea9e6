//! (Over 700 lines: one port of pytest's `findpaths.py` and `iniconfig`, kept whole to read side by side with them; a third of it is tests.)
//! pytest's configuration-file discovery (rootdir and inifile), as pytest 9 does it, and the
//! values xdist needs from the file: `addopts`, `looponfailroots`, `rsyncdirs`, `rsyncignore`.
//!
//! This is a port of `_pytest/config/findpaths.py` (`determine_setup`, `locate_config`,
//! `get_common_ancestor`, `get_dirs_from_args`) and of the `iniconfig` parser, so that the
//! controller finds the same file pytest will find in the workers.
//!
//! Candidates in each directory, in precedence order: `pytest.toml`, `.pytest.toml`,
//! `pytest.ini`, `.pytest.ini`, `pyproject.toml`, `tox.ini`, `setup.cfg`.
//!
//! `PYTEST_ADDOPTS` takes part in discovery in pytest (it is prepended to the arguments before
//! the file is located, so `-c`/`--rootdir`/`-o` in it count); the ini's own `addopts` do not.
//! [`locate`] takes the arguments as given: callers prepend [`xdist_core::pystr::split_addopts`] of
//! `PYTEST_ADDOPTS` themselves when they want pytest's behaviour exactly.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;
use xdist_core::pystr::py_repr;
use xdist_core::pystr::split_addopts;

/// Names pytest discovers, in precedence order (`CONFIG_LOADERS_BY_NAME`).
pub const CONFIG_NAMES: [&str; 7] = [
    "pytest.toml",
    ".pytest.toml",
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "tox.ini",
    "setup.cfg",
];

/// Errors from locating or reading pytest's configuration. Each displays as one line, as
/// pytest would print it after `ERROR: ` (exit code 4).
#[derive(Debug, Error)]
pub enum IniError {
    /// The file could not be read (permissions, not UTF-8, ...).
    #[error("failed to read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's contents are malformed; the message names the file (and line where known).
    #[error("{0}")]
    Parse(String),
    /// A command-line value (`-c`, `--rootdir`, `-o`) or a configuration value is unusable.
    #[error("{0}")]
    Usage(String),
}

/// A configuration value as read from the file or from `-o`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IniValue {
    /// A string: any value of an `.ini`/`.cfg` file or of `-o`; a TOML string.
    Str(String),
    /// A TOML array of strings (in `[tool.pytest.ini_options]` any array, items as strings).
    List(Vec<String>),
    /// A native TOML value of another type (`[pytest]`/`[tool.pytest]` tables): bool, number,
    /// date, table, or an array holding non-strings, as Python's `str()` would show it.
    Other(String),
}

/// How pytest interprets a value: `Ini` coerces strings (`addopts` is shlex-split), `Toml`
/// (native `[pytest]`/`[tool.pytest]` tables) requires the native type (`addopts` must be an
/// array).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueMode {
    Ini,
    Toml,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    value: IniValue,
    mode: ValueMode,
}

/// `[tool.xdist]` of the `pyproject.toml` in the rootdir.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolXdist {
    /// The `pyproject.toml` it was read from.
    pub path: PathBuf,
    /// `plugins = [...]`, paths relative to the file's directory; bare names kept as given.
    pub plugins: Vec<PathBuf>,
    /// `plugin-opts = ["NAME.KEY=VALUE", ...]`.
    pub plugin_opts: Vec<String>,
}

/// The result of pytest's `determine_setup`: the rootdir, the config file (if any), and its
/// values with `-o` overrides applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PytestConfigFile {
    /// The config file pytest uses (`inipath`), if any. A `pyproject.toml` without a pytest
    /// table can be the inipath (with no values) when it decided the rootdir.
    pub path: Option<PathBuf>,
    /// pytest's rootdir.
    pub rootdir: PathBuf,
    /// The directory pytest was invoked from (relative `paths` values resolve against it when
    /// there is no config file).
    pub invocation_dir: PathBuf,
    /// Other config files in the same directory that hold pytest configuration but were
    /// ignored (pytest 9 warns about these).
    pub ignored_config_files: Vec<String>,
    values: BTreeMap<String, Entry>,
}

/// The arguments of a pytest command line that matter for discovery.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetupArgs {
    /// `-c`/`--config-file` (last one wins).
    pub config_file: Option<String>,
    /// `--rootdir` (last one wins).
    pub rootdir: Option<String>,
    /// `-o`/`--override-ini` values, in order.
    pub overrides: Vec<String>,
    /// Positional arguments (paths, node ids), in order.
    pub positional: Vec<String>,
}

/// pytest 9.2 core's long options that take one value: what its parser knows when it locates
/// the config file (plugins' options are not registered yet, so their values count as paths).
pub const PYTEST_LONG_WITH_VALUE: &[&str] = &[
    "--maxfail",
    "--pythonwarnings",
    "--max-warnings",
    "--ignore",
    "--ignore-glob",
    "--deselect",
    "--confcutdir",
    "--import-mode",
    "--config-file",
    "--rootdir",
    "--basetemp",
    "--durations",
    "--durations-min",
    "--override-ini",
    "--verbosity",
    "--report-chars",
    "--tb",
    "--show-capture",
    "--color",
    "--code-highlight",
    "--pdbcls",
    "--capture",
    "--pastebin",
    "--assert",
    "--junitxml",
    "--junit-xml",
    "--junitprefix",
    "--junit-prefix",
    "--doctest-report",
    "--doctest-glob",
    "--lfnf",
    "--last-failed-no-failures",
    "--log-level",
    "--log-format",
    "--log-date-format",
    "--log-cli-level",
    "--log-cli-format",
    "--log-cli-date-format",
    "--log-file",
    "--log-file-mode",
    "--log-file-level",
    "--log-file-format",
    "--log-file-date-format",
    "--log-auto-indent",
    "--log-disable",
];

/// pytest-xdist's long options that take one value (they may reach [`setup_args`] from a
/// command line meant for pytest-xdist).
const PYTEST_XDIST_LONG_WITH_VALUE: &[&str] = &[
    "--numprocesses",
    "--maxprocesses",
    "--max-worker-restart",
    "--dist",
    "--tx",
    "--px",
    "--rsyncdir",
    "--rsyncignore",
    "--testrunuid",
    "--maxschedchunk",
    "--ramp",
];

/// Long options with an optional value (argparse `nargs="?"`): they take the next argument
/// when it does not look like an option (so `pytest --debug tests/` logs to `tests/`).
const LONG_OPTIONAL_VALUE: &[&str] = &["--debug", "--cache-show"];

/// pytest core's short options that take a value (pytest-xdist adds `-n`).
pub const PYTEST_SHORT_WITH_VALUE: &[char] = &['k', 'm', 'W', 'c', 'p', 'o', 'r'];

/// Short flags that take no value (may be clustered: `-vvx`).
const SHORT_FLAGS: &[char] = &['x', 'V', 'h', 'v', 'q', 'l', 's', 'd', 'f'];

/// Picks the discovery-relevant arguments out of a pytest command line, skipping the values of
/// options that take one so they are not mistaken for paths.
pub fn setup_args(args: &[String]) -> SetupArgs {
    let mut out = SetupArgs::default();
    let mut i = 0;
    let record = |out: &mut SetupArgs, opt: &str, value: String| match opt {
        "-c" | "--config-file" => out.config_file = Some(value),
        "--rootdir" => out.rootdir = Some(value),
        "-o" | "--override-ini" => out.overrides.push(value),
        _ => {}
    };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.positional.extend(args[i..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            out.positional.push(arg.clone());
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                None => (arg.clone(), None),
            };
            if PYTEST_LONG_WITH_VALUE.contains(&name.as_str())
                || PYTEST_XDIST_LONG_WITH_VALUE.contains(&name.as_str())
            {
                let value = match inline {
                    Some(v) => Some(v),
                    None if i < args.len() => {
                        i += 1;
                        Some(args[i - 1].clone())
                    }
                    None => None,
                };
                if let Some(v) = value {
                    record(&mut out, &name, v);
                }
            } else if LONG_OPTIONAL_VALUE.contains(&name.as_str())
                && inline.is_none()
                && i < args.len()
                && !args[i].starts_with('-')
            {
                i += 1;
            }
            continue;
        }
        // Single dash: `-kEXPR`, `-k EXPR`, `-k=EXPR`, clusters like `-vvk EXPR`.
        let body = &arg[1..];
        for (pos, c) in body.char_indices() {
            if SHORT_FLAGS.contains(&c) {
                continue;
            }
            if PYTEST_SHORT_WITH_VALUE.contains(&c) || c == 'n' {
                let rest = &body[pos + c.len_utf8()..];
                let rest = if pos == 0 {
                    rest.strip_prefix('=').unwrap_or(rest)
                } else {
                    rest
                };
                let value = if !rest.is_empty() {
                    Some(rest.to_string())
                } else if i < args.len() {
                    i += 1;
                    Some(args[i - 1].clone())
                } else {
                    None
                };
                if let Some(v) = value {
                    record(&mut out, &format!("-{c}"), v);
                }
            }
            // An unknown short option ends the cluster (argparse keeps it as unknown).
            break;
        }
    }
    out
}

/// Finds pytest's rootdir and config file for a command line, as pytest's `determine_setup`
/// does, and applies its `-o` overrides. `args` are the pytest arguments as given (options
/// included); `cwd` is the invocation directory (absolute).
pub fn locate(args: &[String], cwd: &Path) -> Result<PytestConfigFile, IniError> {
    let setup = setup_args(args);
    let cwd = absolutepath(cwd, "");
    let mut cfg = determine_setup(
        setup.config_file.as_deref(),
        &setup.positional,
        setup.rootdir.as_deref(),
        &cwd,
    )?;
    cfg.apply_overrides(&setup.overrides)?;
    Ok(cfg)
}

/// `determine_setup` without the overrides.
fn determine_setup(
    inifile: Option<&str>,
    args: &[String],
    rootdir_cmd_arg: Option<&str>,
    invocation_dir: &Path,
) -> Result<PytestConfigFile, IniError> {
    let dirs = get_dirs_from_args(args, invocation_dir);
    let rootdir_given = rootdir_cmd_arg.is_some();
    let found = match inifile.filter(|s| !s.is_empty()) {
        Some(inifile) => given_config_file(inifile, invocation_dir, &dirs, rootdir_given)?,
        None => discovered_config(invocation_dir, &dirs, rootdir_given)?,
    };
    let mut rootdir = found.rootdir;
    if let Some(arg) = rootdir_cmd_arg.filter(|s| !s.is_empty()) {
        let r = absolutepath(invocation_dir, expandvars(arg));
        if !r.is_dir() {
            return Err(IniError::Usage(format!(
                "Directory '{}' not found. Check your '--rootdir' option.",
                r.display()
            )));
        }
        rootdir = Some(r);
    }
    Ok(PytestConfigFile {
        path: found.inipath,
        rootdir: rootdir.unwrap_or_else(|| invocation_dir.to_path_buf()),
        invocation_dir: invocation_dir.to_path_buf(),
        ignored_config_files: found.ignored,
        values: found.values,
    })
}

/// `-c FILE`: that file's values; the rootdir is its directory unless `--rootdir` is given.
fn given_config_file(
    inifile: &str,
    invocation_dir: &Path,
    dirs: &[PathBuf],
    rootdir_given: bool,
) -> Result<Located, IniError> {
    let p = absolutepath(invocation_dir, inifile);
    if !p.exists() {
        return Err(IniError::Usage(format!(
            "Config file '{}' not found. Check your '-c/--config-file' option.",
            p.display()
        )));
    }
    if p.is_dir() {
        return Err(IniError::Usage(format!(
            "Config file '{}' is a directory. Check your '-c/--config-file' option.",
            p.display()
        )));
    }
    let mut values = BTreeMap::new();
    match loader_for(&p, true) {
        Some(loader) => values = load(loader, &p)?.unwrap_or_default(),
        None if p.is_file() => {
            return Err(IniError::Usage(format!(
                "Config file '{}' has an unsupported format. Supported extensions are: \
                 .cfg, .ini, .toml.",
                p.display()
            )))
        }
        None => {}
    }
    let rootdir = match rootdir_given {
        true => None,
        false if p.is_file() => p.parent().map(Path::to_path_buf),
        false => {
            let r = get_common_ancestor(invocation_dir, dirs);
            Some(if is_fs_root(&r) {
                invocation_dir.to_path_buf()
            } else {
                r
            })
        }
    };
    Ok(Located {
        rootdir,
        inipath: Some(p),
        values,
        ignored: Vec::new(),
    })
}

/// No `-c`: pytest's search from the args' common ancestor, then `setup.py`, then each arg.
fn discovered_config(
    invocation_dir: &Path,
    dirs: &[PathBuf],
    rootdir_given: bool,
) -> Result<Located, IniError> {
    let ancestor = get_common_ancestor(invocation_dir, dirs);
    let mut found = locate_config(invocation_dir, std::slice::from_ref(&ancestor))?;
    if found.rootdir.is_some() || rootdir_given {
        return Ok(found);
    }
    found.rootdir = ancestors(&ancestor)
        .find(|d| d.join("setup.py").is_file())
        .map(Path::to_path_buf);
    if found.rootdir.is_some() {
        return Ok(found);
    }
    if dirs != std::slice::from_ref(&ancestor) {
        let f = locate_config(invocation_dir, dirs)?;
        found.rootdir = f.rootdir;
        found.inipath = f.inipath;
        found.values = f.values;
    }
    if found.rootdir.is_none() {
        let r = get_common_ancestor(
            invocation_dir,
            &[invocation_dir.to_path_buf(), ancestor.clone()],
        );
        found.rootdir = Some(if is_fs_root(&r) { ancestor } else { r });
    }
    Ok(found)
}

struct Located {
    rootdir: Option<PathBuf>,
    inipath: Option<PathBuf>,
    values: BTreeMap<String, Entry>,
    ignored: Vec<String>,
}

/// pytest's `locate_config`: walks up from each arg for the first file holding pytest config.
fn locate_config(invocation_dir: &Path, args: &[PathBuf]) -> Result<Located, IniError> {
    let mut args: Vec<PathBuf> = args
        .iter()
        .filter(|a| !a.as_os_str().to_string_lossy().starts_with('-'))
        .cloned()
        .collect();
    if args.is_empty() {
        args.push(invocation_dir.to_path_buf());
    }
    let mut found_pyproject: Option<PathBuf> = None;
    for arg in &args {
        let argpath = absolutepath(invocation_dir, arg);
        for base in ancestors(&argpath) {
            for (index, name) in CONFIG_NAMES.iter().enumerate() {
                let p = base.join(name);
                if !p.is_file() {
                    continue;
                }
                if *name == "pyproject.toml" && found_pyproject.is_none() {
                    found_pyproject = Some(p.clone());
                }
                let loader = loader_for(&p, false).unwrap_or(Loader::PyprojectToml);
                if let Some(values) = load(loader, &p)? {
                    let mut ignored = Vec::new();
                    for other in &CONFIG_NAMES[index + 1..] {
                        let p2 = base.join(other);
                        if p2.is_file() {
                            if let Some(l2) = loader_for(&p2, false) {
                                if load(l2, &p2)?.is_some() {
                                    ignored.push((*other).to_string());
                                }
                            }
                        }
                    }
                    return Ok(Located {
                        rootdir: Some(base.to_path_buf()),
                        inipath: Some(p),
                        values,
                        ignored,
                    });
                }
            }
        }
    }
    Ok(match found_pyproject {
        Some(p) => Located {
            rootdir: p.parent().map(Path::to_path_buf),
            inipath: Some(p),
            values: BTreeMap::new(),
            ignored: Vec::new(),
        },
        None => Located {
            rootdir: None,
            inipath: None,
            values: BTreeMap::new(),
            ignored: Vec::new(),
        },
    })
}

/// pytest's `get_dirs_from_args`: existing paths among the positional args (node ids count by
/// their path part), as directories.
fn get_dirs_from_args(args: &[String], invocation_dir: &Path) -> Vec<PathBuf> {
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .map(|a| {
            let path_part = a.split_once("::").map_or(a.as_str(), |(p, _)| p);
            absolutepath(invocation_dir, path_part)
        })
        .filter(|p| p.exists())
        .map(|p| {
            if p.is_dir() {
                p
            } else {
                p.parent().map_or(p.clone(), Path::to_path_buf)
            }
        })
        .collect()
}

/// pytest's `get_common_ancestor`.
fn get_common_ancestor(invocation_dir: &Path, paths: &[PathBuf]) -> PathBuf {
    let mut common: Option<PathBuf> = None;
    for path in paths {
        if !path.exists() {
            continue;
        }
        common = Some(match common {
            None => path.clone(),
            Some(c) => {
                if path.starts_with(&c) {
                    c
                } else if c.starts_with(path) {
                    path.clone()
                } else {
                    commonpath(path, &c).unwrap_or(c)
                }
            }
        });
    }
    match common {
        None => invocation_dir.to_path_buf(),
        Some(c) if c.is_file() => c.parent().map_or(c.clone(), Path::to_path_buf),
        Some(c) => c,
    }
}

fn commonpath(a: &Path, b: &Path) -> Option<PathBuf> {
    if a.is_absolute() != b.is_absolute() {
        return None;
    }
    let mut out = PathBuf::new();
    for (x, y) in a.components().zip(b.components()) {
        if x != y {
            break;
        }
        out.push(x.as_os_str());
    }
    Some(out)
}

fn ancestors(p: &Path) -> impl Iterator<Item = &Path> {
    p.ancestors().filter(|a| !a.as_os_str().is_empty())
}

fn is_fs_root(p: &Path) -> bool {
    p.parent().is_none() && p.has_root()
}

/// `os.path.abspath`: joins onto `base` and normalizes `.`/`..` lexically (no symlinks).
fn absolutepath(base: &Path, p: impl AsRef<Path>) -> PathBuf {
    let joined = base.join(p.as_ref());
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if out.parent().is_some() {
                    out.pop();
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` of set variables; others left as they are.
fn expandvars(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match std::env::var_os(name).filter(|_| !name.is_empty()) {
            Some(v) => {
                out.push_str(&v.to_string_lossy());
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, Copy)]
enum Loader {
    PytestToml,
    PytestIni,
    PyprojectToml,
    IniFile,
    CfgFile,
    CustomToml,
}

fn loader_for(p: &Path, by_suffix: bool) -> Option<Loader> {
    let name = p.file_name().and_then(OsStr::to_str).unwrap_or("");
    match name {
        "pytest.toml" | ".pytest.toml" => return Some(Loader::PytestToml),
        "pytest.ini" | ".pytest.ini" => return Some(Loader::PytestIni),
        "pyproject.toml" => return Some(Loader::PyprojectToml),
        "tox.ini" => return Some(Loader::IniFile),
        "setup.cfg" => return Some(Loader::CfgFile),
        _ => {}
    }
    if !by_suffix {
        return None;
    }
    match p.extension().and_then(OsStr::to_str) {
        Some("ini") => Some(Loader::IniFile),
        Some("cfg") => Some(Loader::CfgFile),
        Some("toml") => Some(Loader::CustomToml),
        _ => None,
    }
}

type Values = BTreeMap<String, Entry>;

fn load(loader: Loader, path: &Path) -> Result<Option<Values>, IniError> {
    match loader {
        Loader::PytestIni => {
            let ini = parse_ini_file(path)?;
            Ok(Some(ini_section(&ini, "pytest").unwrap_or_default()))
        }
        Loader::IniFile => {
            let ini = parse_ini_file(path)?;
            Ok(ini_section(&ini, "pytest"))
        }
        Loader::CfgFile => {
            let ini = parse_ini_file(path)?;
            if let Some(v) = ini_section(&ini, "tool:pytest") {
                Ok(Some(v))
            } else if ini.iter().any(|(s, _)| s == "pytest") {
                Err(IniError::Usage(
                    "[pytest] section in setup.cfg files is no longer supported, change to \
                     [tool:pytest] instead."
                        .to_string(),
                ))
            } else {
                Ok(None)
            }
        }
        Loader::PytestToml => {
            let doc = parse_toml_file(path)?;
            Ok(Some(from_pytest_table(path, &doc)?.unwrap_or_default()))
        }
        Loader::PyprojectToml => {
            let doc = parse_toml_file(path)?;
            from_tool_pytest(path, &doc)
        }
        Loader::CustomToml => {
            let doc = parse_toml_file(path)?;
            match from_tool_pytest(path, &doc)? {
                None => from_pytest_table(path, &doc),
                Some(_) if doc.contains_key("pytest") => Err(IniError::Usage(format!(
                    "{}: Cannot use both [pytest] and [tool.pytest]/[tool.pytest.ini_options] \
                     in the same file. Please use [pytest], which is what pytest's own \
                     configuration files use; the [tool.pytest] tables are meant for \
                     pyproject.toml.",
                    path.display()
                ))),
                Some(v) => Ok(Some(v)),
            }
        }
    }
}

type IniSections = Vec<(String, Vec<(String, String)>)>;

fn ini_section(ini: &IniSections, name: &str) -> Option<Values> {
    ini.iter().find(|(s, _)| s == name).map(|(_, items)| {
        items
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Entry {
                        value: IniValue::Str(v.clone()),
                        mode: ValueMode::Ini,
                    },
                )
            })
            .collect()
    })
}

fn read_text(path: &Path) -> Result<String, IniError> {
    std::fs::read_to_string(path).map_err(|source| IniError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_ini_file(path: &Path) -> Result<IniSections, IniError> {
    let text = read_text(path)?;
    parse_ini(&path.display().to_string(), &text)
}

fn py_isspace(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\x1c'..='\x1f')
}

/// The `iniconfig` parser (as pytest uses it: no inline-comment stripping). Returns sections in
/// file order with their `(name, value)` pairs; errors read `path:line: message`.
fn parse_ini(path: &str, text: &str) -> Result<IniSections, IniError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let err = |lineno: usize, msg: String| IniError::Parse(format!("{path}:{}: {msg}", lineno + 1));
    let mut sections: IniSections = Vec::new();
    // (section index, value lines) of the last key, for continuations.
    let mut last: Option<(usize, usize, Vec<String>)> = None;
    let flush = |sections: &mut IniSections, last: &mut Option<(usize, usize, Vec<String>)>| {
        if let Some((s, k, lines)) = last.take() {
            sections[s].1[k].1 = lines.join("\n");
        }
    };
    let mut current: Option<usize> = None;
    for (lineno, raw) in xdist_core::pystr::splitlines(text).into_iter().enumerate() {
        let stripped_start = raw.trim_start_matches(py_isspace);
        if stripped_start.is_empty() || stripped_start.starts_with(['#', ';']) {
            continue;
        }
        let line = raw.trim_end_matches(py_isspace);
        let first = line.chars().next().unwrap_or(' ');
        if first == '[' {
            let mut l = line;
            for c in ['#', ';'] {
                l = l.split(c).next().unwrap_or("").trim_end_matches(py_isspace);
            }
            if l.ends_with(']') && l.len() >= 2 {
                let name = &l[1..l.len() - 1];
                if name.is_empty() {
                    return Err(err(lineno, "empty section name".into()));
                }
                flush(&mut sections, &mut last);
                if sections.iter().any(|(s, _)| s == name) {
                    return Err(err(lineno, format!("duplicate section {}", py_repr(name))));
                }
                sections.push((name.to_string(), Vec::new()));
                current = Some(sections.len() - 1);
                continue;
            }
            // Not a section header: a continuation of the previous value.
            let data = line.trim_matches(py_isspace).to_string();
            match last.as_mut() {
                Some((_, _, lines)) => lines.push(data),
                None => return Err(err(lineno, "unexpected value continuation".into())),
            }
            continue;
        }
        if py_isspace(first) {
            let data = line.trim_matches(py_isspace).to_string();
            match last.as_mut() {
                Some((_, _, lines)) => lines.push(data),
                None => return Err(err(lineno, "unexpected value continuation".into())),
            }
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) if !n.contains(':') => (n, v),
            _ => match line.split_once(':') {
                Some(nv) => nv,
                None => return Err(err(lineno, format!("unexpected line: {}", py_repr(line)))),
            },
        };
        let name = name.trim_matches(py_isspace);
        let value = value.trim_matches(py_isspace);
        let Some(s) = current else {
            return Err(err(lineno, "no section header defined".into()));
        };
        flush(&mut sections, &mut last);
        if sections[s].1.iter().any(|(k, _)| k == name) {
            return Err(err(lineno, format!("duplicate name {}", py_repr(name))));
        }
        sections[s].1.push((name.to_string(), String::new()));
        let lines = if value.is_empty() {
            Vec::new()
        } else {
            vec![value.to_string()]
        };
        last = Some((s, sections[s].1.len() - 1, lines));
    }
    flush(&mut sections, &mut last);
    Ok(sections)
}

fn parse_toml_file(path: &Path) -> Result<toml::Table, IniError> {
    let text = read_text(path)?;
    parse_toml(path, &text)
}

fn parse_toml(path: &Path, text: &str) -> Result<toml::Table, IniError> {
    text.parse::<toml::Table>().map_err(|e| {
        let mut msg = e.message().trim().replace('\n', "; ");
        if let Some(span) = e.span() {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            msg = format!("{msg} (at line {line}, column {col})");
        }
        IniError::Parse(format!("{}: {msg}", path.display()))
    })
}

fn from_pytest_table(path: &Path, doc: &toml::Table) -> Result<Option<Values>, IniError> {
    if let Some(v) = doc.get("pytest") {
        let Some(table) = v.as_table() else {
            return Err(IniError::Parse(format!(
                "{}: pytest configuration must be a [pytest] table",
                path.display()
            )));
        };
        return Ok(Some(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_entry(v)))
                .collect(),
        ));
    }
    let top: Vec<&str> = doc
        .iter()
        .filter(|(_, v)| !v.is_table())
        .map(|(k, _)| k.as_str())
        .collect();
    if !top.is_empty() {
        return Err(IniError::Parse(format!(
            "{}: pytest configuration must be under a [pytest] table (found top-level \
             options: {})",
            path.display(),
            top.join(", ")
        )));
    }
    Ok(None)
}

fn from_tool_pytest(path: &Path, doc: &toml::Table) -> Result<Option<Values>, IniError> {
    let Some(tool_pytest) = doc
        .get("tool")
        .and_then(|t| t.as_table())
        .and_then(|t| t.get("pytest"))
        .and_then(|p| p.as_table())
    else {
        return Ok(None);
    };
    let toml_config: Values = tool_pytest
        .iter()
        .filter(|(k, _)| k.as_str() != "ini_options")
        .map(|(k, v)| (k.clone(), toml_entry(v)))
        .collect();
    let ini_config = tool_pytest.get("ini_options");
    if !toml_config.is_empty() && ini_config.is_some() {
        return Err(IniError::Parse(format!(
            "{}: Cannot use both [tool.pytest] (native TOML types) and \
             [tool.pytest.ini_options] (string-based INI format) simultaneously. Please use \
             [tool.pytest] with native TOML types (recommended) or [tool.pytest.ini_options] \
             for backwards compatibility.",
            path.display()
        )));
    }
    if !toml_config.is_empty() {
        return Ok(Some(toml_config));
    }
    match ini_config {
        None => Ok(None),
        Some(toml::Value::Table(t)) => Ok(Some(
            t.iter()
                .map(|(k, v)| {
                    let value = match v {
                        toml::Value::Array(a) => IniValue::List(a.iter().map(py_str).collect()),
                        other => IniValue::Str(py_str(other)),
                    };
                    (
                        k.clone(),
                        Entry {
                            value,
                            mode: ValueMode::Ini,
                        },
                    )
                })
                .collect(),
        )),
        Some(_) => Err(IniError::Parse(format!(
            "{}: [tool.pytest.ini_options] must be a table",
            path.display()
        ))),
    }
}

fn toml_entry(v: &toml::Value) -> Entry {
    let value = match v {
        toml::Value::String(s) => IniValue::Str(s.clone()),
        toml::Value::Array(a) if a.iter().all(|x| x.is_str()) => IniValue::List(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        other => IniValue::Other(py_str(other)),
    };
    Entry {
        value,
        mode: ValueMode::Toml,
    }
}

/// Python's `str()` of a value decoded by `tomllib`.
fn py_str(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => py_repr_value(other),
    }
}

fn py_repr_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => py_repr(s),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => py_float(*f),
        toml::Value::Boolean(b) => if *b { "True" } else { "False" }.to_string(),
        toml::Value::Datetime(d) => {
            let s = d.to_string().replacen('T', " ", 1);
            match s.strip_suffix('Z') {
                Some(base) => format!("{base}+00:00"),
                None => s,
            }
        }
        toml::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(py_repr_value).collect::<Vec<_>>().join(", ")
        ),
        toml::Value::Table(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(k), py_repr_value(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        };
    }
    let s = format!("{f:?}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

impl PytestConfigFile {
    /// A configuration with no file: rootdir and invocation dir `dir`.
    pub fn empty(dir: &Path) -> Self {
        PytestConfigFile {
            path: None,
            rootdir: dir.to_path_buf(),
            invocation_dir: dir.to_path_buf(),
            ignored_config_files: Vec::new(),
            values: BTreeMap::new(),
        }
    }

    /// The raw value of `key`, if set (by the file or by `-o`).
    pub fn get(&self, key: &str) -> Option<&IniValue> {
        self.values.get(key).map(|e| &e.value)
    }

    /// How `key`'s value is interpreted, if set.
    pub fn mode(&self, key: &str) -> Option<ValueMode> {
        self.values.get(key).map(|e| e.mode)
    }

    /// Names of all set keys.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// `key` as a string, if it is set to a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            IniValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `key` as pytest's `args` type (`addopts`): an ini-mode string is shlex-split, a list is
    /// taken as is; unset is empty. Native-TOML mode requires a list, as pytest does.
    pub fn get_args(&self, key: &str) -> Result<Vec<String>, IniError> {
        self.list_value(key, "args").map(|(v, _)| v)
    }

    /// `key` as pytest's `paths` type (`rsyncdirs`, `looponfailroots`): like [`get_args`],
    /// each made relative to the config file's directory (or the invocation dir without one).
    ///
    /// [`get_args`]: PytestConfigFile::get_args
    pub fn get_paths(&self, key: &str) -> Result<Vec<PathBuf>, IniError> {
        let (items, _) = self.list_value(key, "paths")?;
        let base = self
            .path
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(&self.invocation_dir);
        Ok(items.into_iter().map(|x| base.join(x)).collect())
    }

    /// `key` as pytest's `linelist` type: an ini-mode string split into non-empty stripped
    /// lines, a list as is.
    pub fn get_linelist(&self, key: &str) -> Result<Vec<String>, IniError> {
        match self.values.get(key) {
            Some(Entry {
                value: IniValue::Str(s),
                mode: ValueMode::Ini,
            }) => Ok(s
                .split('\n')
                .map(|l| l.trim_matches(py_isspace))
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()),
            _ => self.list_value(key, "linelist").map(|(v, _)| v),
        }
    }

    fn list_value(&self, key: &str, ty: &str) -> Result<(Vec<String>, bool), IniError> {
        let Some(entry) = self.values.get(key) else {
            return Ok((Vec::new(), false));
        };
        let where_ = self
            .path
            .as_ref()
            .map_or_else(|| "None".to_string(), |p| p.display().to_string());
        match (&entry.value, entry.mode) {
            (IniValue::List(l), _) => Ok((l.clone(), true)),
            (IniValue::Str(s), ValueMode::Ini) => split_addopts(s)
                .map(|v| (v, true))
                .map_err(|e| IniError::Usage(format!("{where_}: config option '{key}': {e}"))),
            (IniValue::Str(s), ValueMode::Toml) => Err(IniError::Usage(format!(
                "{where_}: config option '{key}' expects a list for type '{ty}', got str: {}",
                py_repr(s)
            ))),
            (IniValue::Other(s), _) => Err(IniError::Usage(format!(
                "{where_}: config option '{key}' expects a list of strings for type '{ty}', \
                 got: {s}"
            ))),
        }
    }

    /// Applies `-o key=value` overrides (later ones win), as pytest's `parse_override_ini`.
    pub fn apply_overrides(&mut self, overrides: &[String]) -> Result<(), IniError> {
        for o in overrides {
            let Some((k, v)) = o.split_once('=') else {
                return Err(IniError::Usage(format!(
                    "-o/--override-ini expects option=value style (got: {}).",
                    py_repr(o)
                )));
            };
            self.values.insert(
                k.to_string(),
                Entry {
                    value: IniValue::Str(v.to_string()),
                    mode: ValueMode::Ini,
                },
            );
        }
        Ok(())
    }

    /// `[tool.xdist]` of `rootdir/pyproject.toml`, if the file and the table exist.
    pub fn tool_xdist(&self) -> Result<Option<ToolXdist>, IniError> {
        let path = self.rootdir.join("pyproject.toml");
        if !path.is_file() {
            return Ok(None);
        }
        let doc = parse_toml_file(&path)?;
        let Some(tool) = doc
            .get("tool")
            .and_then(|t| t.as_table())
            .and_then(|t| t.get("xdist"))
        else {
            return Ok(None);
        };
        let bad = |what: &str| IniError::Parse(format!("{}: [tool.xdist] {what}", path.display()));
        let tool = tool.as_table().ok_or_else(|| bad("must be a table"))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut plugins = Vec::new();
        if let Some(p) = tool.get("plugins") {
            let arr = p
                .as_array()
                .ok_or_else(|| bad("plugins must be a list of paths"))?;
            for item in arr {
                let s = item
                    .as_str()
                    .ok_or_else(|| bad("plugins must be a list of paths"))?;
                // A bare name (`crash-retry`) names an installed plugin, not a file here.
                let bare = !s.contains('/') && Path::new(s).extension().is_none();
                plugins.push(if bare { PathBuf::from(s) } else { base.join(s) });
            }
        }
        let mut plugin_opts = Vec::new();
        if let Some(p) = tool.get("plugin-opts") {
            let arr = p
                .as_array()
                .ok_or_else(|| bad("plugin-opts must be a list of \"NAME.KEY=VALUE\" strings"))?;
            for item in arr {
                let s = item.as_str().ok_or_else(|| {
                    bad("plugin-opts must be a list of \"NAME.KEY=VALUE\" strings")
                })?;
                plugin_opts.push(s.to_string());
            }
        }
        Ok(Some(ToolXdist {
            path: path.clone(),
            plugins,
            plugin_opts,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn write(p: &Path, text: &str) {
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap();
        }
        fs::write(p, text).unwrap();
    }

    fn tmp() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        (t, root)
    }

    #[test]
    fn pytest_ini_beats_pyproject_in_same_dir() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "[pytest]\naddopts = -x\n");
        write(
            &root.join("pyproject.toml"),
            "[tool.pytest.ini_options]\naddopts = '-v'\n",
        );
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(cfg.path, Some(root.join("pytest.ini")));
        assert_eq!(cfg.rootdir, root);
        assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-x"]));
        assert_eq!(cfg.ignored_config_files, s(&["pyproject.toml"]));
    }

    #[test]
    fn empty_pytest_ini_matches() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "");
        write(&root.join("tox.ini"), "[pytest]\naddopts = -v\n");
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(cfg.path, Some(root.join("pytest.ini")));
        assert!(cfg.get_args("addopts").unwrap().is_empty());
    }

    #[test]
    fn nearer_dir_wins() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "[pytest]\naddopts = -x\n");
        write(&root.join("sub/tox.ini"), "[pytest]\naddopts = -q\n");
        let sub = root.join("sub");
        let cfg = locate(&[], &sub).unwrap();
        assert_eq!(cfg.path, Some(sub.join("tox.ini")));
        assert_eq!(cfg.rootdir, sub);
        // From the top, with the sub dir as the path arg, the same.
        let cfg = locate(&s(&["sub"]), &root).unwrap();
        assert_eq!(cfg.path, Some(sub.join("tox.ini")));
        // A tox.ini without [pytest] is skipped.
        write(&root.join("sub/tox.ini"), "[tox]\nenvlist = py3\n");
        let cfg = locate(&[], &sub).unwrap();
        assert_eq!(cfg.path, Some(root.join("pytest.ini")));
        assert_eq!(cfg.rootdir, root);
    }

    #[test]
    fn setup_cfg_without_section_ignored() {
        let (_t, root) = tmp();
        write(&root.join("setup.cfg"), "[metadata]\nname = x\n");
        write(&root.join("a/b/test_x.py"), "");
        let cfg = locate(&s(&["a/b/test_x.py::test_one"]), &root).unwrap();
        assert_eq!(cfg.path, None);
        write(&root.join("setup.cfg"), "[tool:pytest]\naddopts = -ra\n");
        let cfg = locate(&s(&["a/b/test_x.py::test_one"]), &root).unwrap();
        assert_eq!(cfg.path, Some(root.join("setup.cfg")));
        assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-ra"]));
        write(&root.join("setup.cfg"), "[pytest]\naddopts = -ra\n");
        let err = locate(&[], &root).unwrap_err().to_string();
        assert!(err.contains("[pytest] section in setup.cfg"), "{err}");
    }

    #[test]
    fn pyproject_tables() {
        let (_t, root) = tmp();
        write(
            &root.join("pyproject.toml"),
            "[project]\nname='x'\n[tool.pytest.ini_options]\naddopts = ['-p', 'no:cacheprovider']\nminversion = 7.0\nxfail_strict = true\n",
        );
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(
            cfg.get_args("addopts").unwrap(),
            s(&["-p", "no:cacheprovider"])
        );
        assert_eq!(cfg.get_str("minversion"), Some("7.0"));
        assert_eq!(cfg.get_str("xfail_strict"), Some("True"));
        // pytest 9 native table: addopts must be a list.
        write(
            &root.join("pyproject.toml"),
            "[tool.pytest]\naddopts = '-x'\nrsyncdirs = ['src', 'lib']\n",
        );
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(cfg.mode("addopts"), Some(ValueMode::Toml));
        assert!(cfg.get_args("addopts").is_err());
        assert_eq!(
            cfg.get_paths("rsyncdirs").unwrap(),
            vec![root.join("src"), root.join("lib")]
        );
        // Both styles: error.
        write(
            &root.join("pyproject.toml"),
            "[tool.pytest]\naddopts = ['-x']\n[tool.pytest.ini_options]\naddopts = '-x'\n",
        );
        assert!(locate(&[], &root).is_err());
    }

    #[test]
    fn pyproject_without_table_is_rootdir_fallback() {
        let (_t, root) = tmp();
        write(&root.join("pyproject.toml"), "[project]\nname = 'x'\n");
        write(&root.join("tests/test_a.py"), "");
        let tests = root.join("tests");
        let cfg = locate(&[], &tests).unwrap();
        assert_eq!(cfg.rootdir, root);
        assert_eq!(cfg.path, Some(root.join("pyproject.toml")));
        assert!(cfg.keys().next().is_none());
        // A real config further up still wins over the bare pyproject.
        let (_t2, root2) = tmp();
        write(&root2.join("tox.ini"), "[pytest]\naddopts=-q\n");
        write(&root2.join("p/pyproject.toml"), "[project]\nname = 'x'\n");
        let cfg = locate(&[], &root2.join("p")).unwrap();
        assert_eq!(cfg.path, Some(root2.join("tox.ini")));
    }

    #[test]
    fn pytest_toml_first() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "[pytest]\naddopts = -x\n");
        write(&root.join(".pytest.toml"), "[pytest]\naddopts = ['-q']\n");
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(cfg.path, Some(root.join(".pytest.toml")));
        assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-q"]));
        write(&root.join(".pytest.toml"), "addopts = ['-q']\n");
        let err = locate(&[], &root).unwrap_err().to_string();
        assert!(err.contains("must be under a [pytest] table"), "{err}");
        write(&root.join(".pytest.toml"), "addopts = [\n");
        let err = locate(&[], &root).unwrap_err().to_string();
        assert!(err.starts_with(&root.join(".pytest.toml").display().to_string()));
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn config_file_option() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "[pytest]\naddopts = -x\n");
        write(&root.join("conf/custom.ini"), "[pytest]\naddopts = -q -s\n");
        write(&root.join("tests/test_a.py"), "");
        for args in [
            s(&["-c", "conf/custom.ini", "tests"]),
            s(&["--config-file=conf/custom.ini"]),
            s(&["-cconf/custom.ini"]),
        ] {
            let cfg = locate(&args, &root).unwrap();
            assert_eq!(cfg.path, Some(root.join("conf/custom.ini")));
            assert_eq!(cfg.rootdir, root.join("conf"));
            assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-q", "-s"]));
        }
        let err = locate(&s(&["-c", "nope.ini"]), &root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Config file '{}' not found. Check your '-c/--config-file' option.",
                root.join("nope.ini").display()
            )
        );
        write(&root.join("conf/x.json"), "{}");
        assert!(locate(&s(&["-c", "conf/x.json"]), &root)
            .unwrap_err()
            .to_string()
            .contains("unsupported format"));
        // A custom toml reads [pytest] or [tool.pytest.ini_options].
        write(&root.join("conf/c.toml"), "[pytest]\naddopts = ['-v']\n");
        let cfg = locate(&s(&["-c", "conf/c.toml"]), &root).unwrap();
        assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-v"]));
        // --rootdir overrides.
        let cfg = locate(&s(&["-c", "conf/c.toml", "--rootdir", "tests"]), &root).unwrap();
        assert_eq!(cfg.rootdir, root.join("tests"));
        assert!(locate(&s(&["--rootdir=nowhere"]), &root).is_err());
        // A non-file (/dev/null) asks for no configuration.
        let cfg = locate(&s(&["-c", "/dev/null", "tests"]), &root).unwrap();
        assert_eq!(cfg.rootdir, root.join("tests"));
        assert!(cfg.keys().next().is_none());
    }

    #[test]
    fn rootdir_without_ini_is_common_ancestor() {
        let (_t, root) = tmp();
        write(&root.join("a/x/test_1.py"), "");
        write(&root.join("a/y/test_2.py"), "");
        let cfg = locate(&s(&["a/x/test_1.py", "a/y/test_2.py::t", "-k", "a"]), &root).unwrap();
        assert_eq!(cfg.path, None);
        // common ancestor a, but invocation dir is root: common of [cwd, ancestor] = root.
        assert_eq!(cfg.rootdir, root);
        // invoked from inside the ancestor: rootdir is the ancestor.
        let cfg = locate(&s(&["x", "y"]), &root.join("a")).unwrap();
        assert_eq!(cfg.rootdir, root.join("a"));
        // from a sibling dir: common ancestor of cwd and the args.
        fs::create_dir_all(root.join("b")).unwrap();
        let cfg = locate(&s(&["../a/x"]), &root.join("b")).unwrap();
        assert_eq!(cfg.rootdir, root);
        // setup.py marks the rootdir.
        write(&root.join("a/setup.py"), "");
        let cfg = locate(&s(&["x", "y"]), &root.join("a/x")).unwrap();
        assert_eq!(cfg.rootdir, root.join("a"));
        // The invocation dir is normalized like os.path.abspath.
        let cfg = locate(&s(&["x"]), &root.join("a/./y/..")).unwrap();
        assert_eq!(cfg.invocation_dir, root.join("a"));
        // Non-existing paths do not count.
        let cfg = locate(&s(&["nonexistent"]), &root.join("b")).unwrap();
        assert_eq!(cfg.rootdir, root.join("b"));
    }

    #[test]
    fn args_with_values_are_not_paths() {
        let (_t, root) = tmp();
        write(&root.join("sub/pytest.ini"), "[pytest]\n");
        let a = setup_args(&s(&[
            "-k",
            "sub",
            "-m",
            "sub",
            "-p",
            "sub",
            "--basetemp",
            "sub",
            "-vk",
            "sub",
            "-o",
            "a=b",
            "--tb=short",
            "--debug",
            "sub",
            "-n",
            "2",
            "--dist",
            "sub",
            "x::y",
        ]));
        assert_eq!(a.positional, s(&["x::y"]));
        assert_eq!(a.overrides, s(&["a=b"]));
        let cfg = locate(&s(&["-k", "sub"]), &root).unwrap();
        assert_eq!(cfg.path, None);
        let cfg = locate(&s(&["-x", "sub"]), &root).unwrap();
        assert_eq!(cfg.path, Some(root.join("sub/pytest.ini")));
        let a = setup_args(&s(&["--", "-k", "p"]));
        assert_eq!(a.positional, s(&["-k", "p"]));
    }

    #[test]
    fn overrides() {
        let (_t, root) = tmp();
        write(&root.join("pytest.ini"), "[pytest]\naddopts = -x\n");
        let mut cfg = locate(
            &s(&["-o", "addopts=-q -s", "--override-ini=rsyncdirs=a b"]),
            &root,
        )
        .unwrap();
        assert_eq!(cfg.get_args("addopts").unwrap(), s(&["-q", "-s"]));
        assert_eq!(
            cfg.get_paths("rsyncdirs").unwrap(),
            vec![root.join("a"), root.join("b")]
        );
        cfg.apply_overrides(&s(&["addopts=-v", "addopts=-l=x"]))
            .unwrap();
        assert_eq!(cfg.get_str("addopts"), Some("-l=x"));
        let err = cfg.apply_overrides(&s(&["novalue"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "-o/--override-ini expects option=value style (got: 'novalue')."
        );
    }

    #[test]
    fn addopts_continuation_lines() {
        // Continuation lines in an ini value are joined with newlines, then split.
        let (_t, root) = tmp();
        write(
            &root.join("tox.ini"),
            "[tox]\nx=1\n[pytest]\naddopts =\n    -p no:cacheprovider\n  # comment\n    --tb=short\nrsyncdirs: src ; x\n",
        );
        let cfg = locate(&[], &root).unwrap();
        assert_eq!(
            cfg.get_str("addopts"),
            Some("-p no:cacheprovider\n--tb=short")
        );
        assert_eq!(
            cfg.get_args("addopts").unwrap(),
            s(&["-p", "no:cacheprovider", "--tb=short"])
        );
        assert_eq!(cfg.get_str("rsyncdirs"), Some("src ; x"));
    }

    #[test]
    fn ini_parser_errors() {
        let e = |t: &str| parse_ini("f.ini", t).unwrap_err().to_string();
        assert_eq!(e("a = 1\n"), "f.ini:1: no section header defined");
        assert_eq!(e("[s]\n  x\n"), "f.ini:2: unexpected value continuation");
        assert_eq!(e("[s]\nabc\n"), "f.ini:2: unexpected line: 'abc'");
        assert_eq!(e("[s]\n[s]\n"), "f.ini:2: duplicate section 's'");
        assert_eq!(e("[s]\na=1\na:2\n"), "f.ini:3: duplicate name 'a'");
        assert_eq!(e("[]\n"), "f.ini:1: empty section name");
        let ok = parse_ini("f", "\u{feff}[s] # c\r\nk: v=1\r\nj=a:b\n").unwrap();
        assert_eq!(ok[0].0, "s");
        assert_eq!(
            ok[0].1,
            vec![
                ("k".to_string(), "v=1".to_string()),
                ("j".to_string(), "a:b".to_string())
            ]
        );
    }

    #[test]
    fn tool_xdist_plugins() {
        let (_t, root) = tmp();
        write(
            &root.join("pyproject.toml"),
            "[tool.xdist]\nplugins = ['plugins/libfoo.so', '/abs/libbar.so', 'crash-retry']\n",
        );
        let cfg = locate(&[], &root).unwrap();
        let tx = cfg.tool_xdist().unwrap().unwrap();
        assert_eq!(
            tx.plugins,
            vec![
                root.join("plugins/libfoo.so"),
                PathBuf::from("/abs/libbar.so"),
                PathBuf::from("crash-retry")
            ]
        );
        write(
            &root.join("pyproject.toml"),
            "[tool.xdist]\nplugins = 'x'\n",
        );
        assert!(cfg.tool_xdist().is_err());
        write(&root.join("pyproject.toml"), "[project]\n");
        assert_eq!(cfg.tool_xdist().unwrap(), None);
    }

    #[test]
    fn python_str_of_toml_scalars() {
        assert_eq!(py_float(7.0), "7.0");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1.5e-5), "1.5e-05");
    }
}
