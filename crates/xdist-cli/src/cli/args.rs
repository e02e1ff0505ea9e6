//! Command-line handling, in two steps (as ripgrep does): split the raw argv into xdist's own
//! options and pytest's (kept in order), parse xdist's with clap, then validate into
//! [`RunOptions`].

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use xdist_config::ini::{PYTEST_LONG_WITH_VALUE, PYTEST_SHORT_WITH_VALUE};
use xdist_core::spec::XSpec;
use xdist_sched::DistMode;

use crate::error::CliError;

/// xdist's own options. Everything else goes to pytest unchanged.
#[derive(Debug, Parser, Default)]
#[command(
    name = "xdist",
    version,
    // As in pytest (argparse): an option given twice takes its last value (ini `addopts`,
    // then PYTEST_ADDOPTS, then the command line); repeatable options still collect.
    args_override_self = true,
    about = "Run a pytest suite across many CPUs: a faster, sturdier `pytest -n N`.",
    after_help = "Every argument xdist does not own is passed to pytest unchanged and in order,\n\
                  e.g. `xdist -n 4 tests/ -k slow -x`."
)]
pub struct RawArgs {
    /// Number of workers: a number, `auto` (physical cores, honouring CPU affinity and cgroup
    /// quotas) or `logical`. `0` runs plain pytest in this process's place.
    #[arg(short = 'n', long = "numprocesses", value_name = "N|auto|logical")]
    pub numprocesses: Option<String>,
    /// Upper bound on the number of workers.
    #[arg(long, value_name = "N")]
    pub maxprocesses: Option<String>,
    /// How many crashed workers may be replaced (default: 4 x workers; 0 disables).
    #[arg(long = "max-worker-restart", value_name = "N")]
    pub max_worker_restart: Option<String>,
    /// Distribution mode: load (default), each, loadscope, loadfile, loadgroup, worksteal;
    /// `no` means load (xdist always distributes, as pytest-xdist's `-n N` does).
    #[arg(long, value_name = "MODE")]
    pub dist: Option<String>,
    /// Shortcut for `--dist=load`.
    #[arg(short = 'd')]
    pub distload: bool,
    /// Order scope work units largest-first (default).
    #[arg(long = "loadscope-reorder")]
    pub loadscope_reorder: bool,
    /// Keep scope work units in collection order.
    #[arg(long = "no-loadscope-reorder")]
    pub no_loadscope_reorder: bool,
    /// `load` only: the most tests sent to a worker in one step.
    #[arg(long, value_name = "N")]
    pub maxschedchunk: Option<String>,
    /// Execution environment spec, repeatable: `popen`, `ssh=[user@]host`, `socket=host:port`,
    /// with `N*` and `//python=`, `//chdir=`, `//id=`, `//env:NAME=value`, `//nice=`,
    /// `//via=`, `//ssh_config=`. `-n` replaces all of them with N x `popen`.
    #[arg(long = "tx", value_name = "XSPEC")]
    pub tx: Vec<String>,
    /// Proxy gateway spec (must include `id=NAME`), used by `--tx ...//via=NAME`.
    #[arg(long = "px", value_name = "XSPEC")]
    pub px: Vec<String>,
    /// (Deprecated, as in pytest-xdist) a directory to rsync to remote workers; repeatable.
    #[arg(long = "rsyncdir", value_name = "DIR")]
    pub rsyncdir: Vec<PathBuf>,
    /// (Deprecated) a glob rsync ignores; repeatable.
    #[arg(long = "rsyncignore", value_name = "GLOB")]
    pub rsyncignore: Vec<String>,
    /// Run only shard K of N of the collected suite (CI job matrices): `--shard 2/4`, or
    /// `auto`: K and N from the CI provider's variables (CircleCI, GitLab, Buildkite, Bazel).
    #[arg(long = "shard", value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// How `--shard` splits: `hash` (by node id; stable when tests are added) or `duration`
    /// (balanced by recorded durations; hash when there is no history). Default: duration.
    #[arg(long = "shard-by", value_name = "hash|duration")]
    pub shard_by: Option<String>,
    /// Identifier shared by all workers (`testrun_uid` fixture); random by default.
    #[arg(long, value_name = "ID")]
    pub testrunuid: Option<String>,
    /// Python interpreter for the workers (default: $XDIST_PYTHON, $VIRTUAL_ENV/bin/python,
    /// then python3/python on PATH).
    #[arg(long, value_name = "PATH")]
    pub python: Option<OsString>,
    /// Do not use durations recorded by earlier runs to start the slowest tests first.
    #[arg(long = "no-durations")]
    pub no_durations: bool,
    /// Kill a worker whose test runs longer than this (its Python stacks are shown) and
    /// report the test as failed; the worker is replaced. Also ini `hang_timeout`.
    #[arg(long = "hang-timeout", value_name = "SECONDS")]
    pub hang_timeout: Option<String>,
    /// How local workers start: `fork` (one process imports and collects, workers are forked
    /// from it; replacements in milliseconds) or `spawn` (each worker is a new interpreter
    /// that collects again, as pytest-xdist's). Fork falls back to spawn where it is unsafe
    /// (the header says why). Also ini `xdist_start`. Default: fork (on Linux).
    #[arg(long = "start", value_name = "fork|spawn")]
    pub start: Option<String>,
    /// Loop on failing tests: rerun them whenever a file under `looponfailroots` (ini;
    /// default: rootdir) changes, then the whole suite once they pass. Ctrl-C ends it.
    #[arg(short = 'f', long = "looponfail")]
    pub looponfail: bool,
    /// Enable an xdist plugin: a `.so` built against xdist-plugin-api, or the name of one
    /// installed in a plugin directory (`crash-retry`); repeatable.
    #[arg(long = "plugin", value_name = "PATH|NAME")]
    pub plugin: Vec<PathBuf>,
    /// An option for a plugin, `NAME.KEY=VALUE`; repeatable.
    #[arg(long = "plugin-opt", value_name = "NAME.KEY=VALUE")]
    pub plugin_opt: Vec<String>,
}

/// Plugins' options that take a separate value, besides pytest's own
/// ([`PYTEST_LONG_WITH_VALUE`], [`PYTEST_SHORT_WITH_VALUE`]).
const PLUGIN_VALUE_OPTIONS: &[&str] = &["--report-log", "--cov", "--cov-report", "--timeout"];

/// Whether `a` is a pytest (or plugin) option whose separate value is never one of ours.
fn is_pytest_value_option(a: &str) -> bool {
    let mut short = a.strip_prefix('-').into_iter().flat_map(str::chars);
    PYTEST_LONG_WITH_VALUE.contains(&a)
        || PLUGIN_VALUE_OPTIONS.contains(&a)
        || a.len() == 2
            && short
                .next()
                .is_some_and(|c| PYTEST_SHORT_WITH_VALUE.contains(&c))
}

/// xdist's own option names as the splitter needs them, read from [`RawArgs`]' definitions
/// (the one place a flag is named; `--help`, the man page and the completions render the same).
struct OwnNames {
    /// `--name` forms (with aliases) that take a value.
    long_value: Vec<String>,
    /// `--name` forms that take none.
    long_flag: Vec<String>,
    /// `-c` forms that take a value (`-n 4`, `-n4`, `-n=4`).
    short_value: Vec<char>,
    /// `-c` forms that take none.
    short_flag: Vec<char>,
}

fn own_names() -> &'static OwnNames {
    static NAMES: std::sync::OnceLock<OwnNames> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        use clap::CommandFactory;
        let mut names = OwnNames {
            long_value: Vec::new(),
            long_flag: Vec::new(),
            short_value: Vec::new(),
            short_flag: Vec::new(),
        };
        let cmd = RawArgs::command();
        // `--help`/`--version` are answered before splitting (`generate::early`).
        for arg in cmd.get_arguments() {
            let value = arg.get_action().takes_values();
            let longs = arg
                .get_long()
                .into_iter()
                .chain(arg.get_all_aliases().unwrap_or_default());
            for long in longs {
                let list = if value {
                    &mut names.long_value
                } else {
                    &mut names.long_flag
                };
                list.push(format!("--{long}"));
            }
            if let Some(short) = arg.get_short() {
                let list = if value {
                    &mut names.short_value
                } else {
                    &mut names.short_flag
                };
                list.push(short);
            }
        }
        names
    })
}

/// Whether `v` can be the value of one of our options: not another option (negative numbers
/// are values, as argparse treats them).
fn takes_as_value(v: &str) -> bool {
    !v.starts_with('-') || v.len() > 1 && v[1..].chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Splits argv (without the program name) into (xdist args, pytest args).
pub fn split_args(argv: &[String]) -> (Vec<String>, Vec<String>) {
    let mut own = Vec::new();
    let mut pytest = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let a = &argv[i];
        if a == "--" {
            pytest.extend(argv[i..].iter().cloned());
            break;
        }
        if is_pytest_value_option(a) {
            pytest.push(a.clone());
            if let Some(v) = argv.get(i + 1) {
                pytest.push(v.clone());
            }
            i += 2;
            continue;
        }
        let names = own_names();
        let long_name = a.split('=').next().unwrap_or(a);
        let short = a
            .strip_prefix('-')
            .filter(|r| !r.starts_with('-'))
            .and_then(|r| r.chars().next());
        if a.starts_with("--") && names.long_value.iter().any(|n| n == long_name) {
            own.push(a.clone());
            if !a.contains('=') {
                if let Some(v) = argv.get(i + 1).filter(|v| takes_as_value(v)) {
                    own.push(v.clone());
                    i += 1;
                }
            }
        } else if names.long_flag.iter().any(|n| n == a)
            || a.len() == 2 && short.is_some_and(|c| names.short_flag.contains(&c))
        {
            own.push(a.clone());
        } else if let Some(c) = short.filter(|c| names.short_value.contains(c)) {
            own.push(format!("-{c}"));
            let inline = &a[1 + c.len_utf8()..];
            if !inline.is_empty() {
                own.push(inline.strip_prefix('=').unwrap_or(inline).to_string());
            } else if let Some(v) = argv.get(i + 1).filter(|v| takes_as_value(v)) {
                own.push(v.clone());
                i += 1;
            }
        } else {
            pytest.push(a.clone());
        }
        i += 1;
    }
    (own, pytest)
}

/// How many workers `-n` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumProcesses {
    Count(usize),
    Auto,
    Logical,
}

/// How `--shard` splits the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardBy {
    Hash,
    Duration,
}

/// `--shard K/N` (K is 1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub total: usize,
    pub by: ShardBy,
    /// `--shard auto`: the CI provider K and N came from.
    pub provider: Option<&'static crate::run::shard::Provider>,
}

impl Shard {
    /// `--shard auto` found Bazel's variables.
    pub fn is_bazel(&self) -> bool {
        self.provider.is_some_and(|p| p.is_bazel())
    }
}

/// Validated options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub numprocesses: NumProcesses,
    /// `--tx` specs (expanded); empty when `-n` was given (it discards them).
    pub tx: Vec<XSpec>,
    pub rsyncdirs: Vec<PathBuf>,
    pub rsyncignore: Vec<String>,
    pub shard: Option<Shard>,
    pub maxprocesses: Option<usize>,
    pub max_worker_restart: Option<usize>,
    pub dist: DistMode,
    pub loadscope_reorder: bool,
    pub maxschedchunk: Option<usize>,
    pub testrunuid: Option<String>,
    pub python: Option<OsString>,
    pub no_durations: bool,
    pub plugins: Vec<PathBuf>,
    pub plugin_opts: Vec<String>,
    pub hang_timeout: Option<f64>,
    /// `--start` (None: ini `xdist_start`, else the default).
    pub start: Option<StartMode>,
    pub looponfail: bool,
    /// pytest's arguments, in order.
    pub pytest_args: Vec<String>,
    /// Facts about pytest's arguments the controller needs before a worker is up.
    pub pytest: PytestFlags,
}

/// The pytest options the controller reads itself (they are still passed on).
#[derive(Debug, Clone, Default)]
pub struct PytestFlags {
    pub quiet: bool,
    pub collect_only: bool,
    pub pdb: bool,
    pub capture_no: bool,
    pub color: Option<String>,
    pub basetemp: Option<PathBuf>,
    pub help: bool,
    /// `--markers`, `--fixtures`/`--funcargs`, `--fixtures-per-test`: pytest answers them
    /// itself and runs no tests (plain pytest, as `--co`).
    pub informational: bool,
    /// `--junitxml`/`--junit-xml PATH` (the worker reports pytest's resolved value).
    pub junitxml: Option<String>,
    /// `--report-log PATH` (pytest-reportlog's option).
    pub report_log: Option<String>,
    pub durations: Option<String>,
    pub durations_min: Option<String>,
    /// `--lf`/`--last-failed`, `--ff`/`--failed-first`, `--nf`/`--new-first`.
    pub last_failed: bool,
    pub failed_first: bool,
    pub new_first: bool,
    /// `--sw`/`--stepwise`/`--sw-skip`/`--stepwise-skip`: not supported when distributing.
    pub stepwise: bool,
}

impl PytestFlags {
    /// Whether pytest runs no tests but answers by itself (plain pytest even with workers).
    pub fn runs_plain(&self) -> bool {
        self.collect_only || self.help || self.informational
    }

    /// Whether workers must send the extra report data file reporters use.
    pub fn want_files(&self) -> bool {
        self.junitxml.is_some() || self.report_log.is_some()
    }
}

fn parse_count(flag: &str, v: &str) -> Result<usize, CliError> {
    v.trim().parse::<usize>().map_err(|_| {
        CliError::Usage(format!(
            "invalid value '{v}' for {flag}: expected a non-negative whole number"
        ))
    })
}

/// A positive number of seconds.
pub fn parse_seconds(flag: &str, v: &str) -> Result<f64, CliError> {
    match v.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(s),
        _ => Err(CliError::Usage(format!(
            "invalid value '{v}' for {flag}: expected a positive number of seconds"
        ))),
    }
}

/// Step two: validate the raw options. `addopts` are xdist options found in pytest's ini
/// `addopts` and `PYTEST_ADDOPTS`; the command line wins over them.
pub fn validate(
    raw_cli: RawArgs,
    raw_addopts: RawArgs,
    pytest_args: Vec<String>,
) -> Result<RunOptions, CliError> {
    let num = raw_cli.numprocesses.or(raw_addopts.numprocesses);
    let tx = worker_specs(
        or_addopts(raw_cli.tx, raw_addopts.tx),
        or_addopts(raw_cli.px, raw_addopts.px),
    )?;
    // `-n` stands for N x popen and discards any --tx (pytest-xdist).
    let tx = if num.is_some() { Vec::new() } else { tx };
    let shard = parse_shard(
        raw_cli.shard.or(raw_addopts.shard).as_deref(),
        raw_cli.shard_by.or(raw_addopts.shard_by).as_deref(),
        |name| std::env::var(name).ok(),
    )?;
    let mut pytest_args = pytest_args;
    if shard.is_some_and(|s| s.is_bazel()) {
        add_bazel_junitxml(&mut pytest_args);
    }
    let mut rsyncdirs = raw_addopts.rsyncdir;
    rsyncdirs.extend(raw_cli.rsyncdir);
    let mut rsyncignore = raw_addopts.rsyncignore;
    rsyncignore.extend(raw_cli.rsyncignore);
    let numprocesses = parse_numprocesses(num.as_deref())?;
    let maxprocesses = raw_cli
        .maxprocesses
        .or(raw_addopts.maxprocesses)
        .map(|v| parse_count("--maxprocesses", &v))
        .transpose()?;
    let max_worker_restart = raw_cli
        .max_worker_restart
        .or(raw_addopts.max_worker_restart)
        .map(|v| parse_count("--max-worker-restart", &v))
        .transpose()?;
    let maxschedchunk = raw_cli
        .maxschedchunk
        .or(raw_addopts.maxschedchunk)
        .map(|v| parse_count("--maxschedchunk", &v))
        .transpose()?;
    let mut dist = parse_dist(raw_cli.dist.or(raw_addopts.dist).as_deref())?;
    if raw_cli.distload || raw_addopts.distload {
        dist = DistMode::Load;
    }
    let loadscope_reorder = !(raw_cli.no_loadscope_reorder
        || (raw_addopts.no_loadscope_reorder && !raw_cli.loadscope_reorder));
    let pytest = scan_pytest_flags(&pytest_args);
    Ok(RunOptions {
        numprocesses,
        tx,
        rsyncdirs,
        rsyncignore,
        shard,
        maxprocesses,
        max_worker_restart,
        dist,
        loadscope_reorder,
        maxschedchunk,
        testrunuid: raw_cli.testrunuid.or(raw_addopts.testrunuid),
        python: raw_cli.python,
        no_durations: raw_cli.no_durations || raw_addopts.no_durations,
        hang_timeout: raw_cli
            .hang_timeout
            .or(raw_addopts.hang_timeout)
            .map(|v| parse_seconds("--hang-timeout", &v))
            .transpose()?,
        start: raw_cli
            .start
            .or(raw_addopts.start)
            .map(|v| parse_start("--start", &v))
            .transpose()?,
        looponfail: raw_cli.looponfail || raw_addopts.looponfail,
        plugins: raw_cli.plugin,
        plugin_opts: raw_cli.plugin_opt,
        pytest_args,
        pytest,
    })
}

/// A list option given on the command line replaces the one in `addopts`.
fn or_addopts(cli: Vec<String>, addopts: Vec<String>) -> Vec<String> {
    if cli.is_empty() {
        addopts
    } else {
        cli
    }
}

/// `--tx` specs, with `via=` naming `--px` proxies.
fn worker_specs(tx: Vec<String>, px: Vec<String>) -> Result<Vec<XSpec>, CliError> {
    let proxies = xdist_core::spec::parse_px(&px).map_err(|e| CliError::Usage(e.to_string()))?;
    xdist_core::spec::parse_tx(&tx, &proxies).map_err(|e| CliError::Usage(e.to_string()))
}

/// Bazel reads the test's JUnit report from XML_OUTPUT_FILE.
fn add_bazel_junitxml(pytest_args: &mut Vec<String>) {
    let xml = std::env::var(xdist_core::env::XML_OUTPUT_FILE).unwrap_or_default();
    if !xml.is_empty() && scan_pytest_flags(pytest_args).junitxml.is_none() {
        pytest_args.push(format!("--junitxml={xml}"));
    }
}

/// `-n N|auto|logical` (none given: auto); a negative count is 0, as pytest-xdist.
fn parse_numprocesses(value: Option<&str>) -> Result<NumProcesses, CliError> {
    Ok(match value.map(str::trim) {
        None | Some("auto") => NumProcesses::Auto,
        Some("logical") => NumProcesses::Logical,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => NumProcesses::Count(n as usize),
            Ok(_) => NumProcesses::Count(0),
            Err(_) => {
                return Err(CliError::Usage(format!(
                "invalid value '{v}' for -n/--numprocesses: expected a number, 'auto' or 'logical'"
            )))
            }
        },
    })
}

/// `--dist NAME` (none given: load).
fn parse_dist(name: Option<&str>) -> Result<DistMode, CliError> {
    match name {
        None => Ok(DistMode::Load),
        Some(name) => DistMode::parse(name).ok_or_else(|| {
            CliError::Usage(format!(
                "invalid value '{name}' for --dist: choose from each, load, loadscope, loadfile, loadgroup, worksteal, no"
            ))
        }),
    }
}

/// How local workers start (`--start`, ini `xdist_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartMode {
    /// Forked from one process that collected (`xdist-worker::fork`).
    Fork,
    /// Each a new interpreter.
    Spawn,
}

/// `fork` or `spawn`, for `flag` (the option or ini key named in the error).
pub fn parse_start(flag: &str, v: &str) -> Result<StartMode, CliError> {
    match v.trim() {
        "fork" => Ok(StartMode::Fork),
        "spawn" => Ok(StartMode::Spawn),
        _ => Err(CliError::Usage(format!(
            "invalid value '{v}' for {flag}: choose from fork, spawn"
        ))),
    }
}

/// `--shard K/N|auto` and `--shard-by`; `env` looks up the CI provider's variables.
fn parse_shard(
    shard: Option<&str>,
    by: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Shard>, CliError> {
    let by = match by.map(str::trim) {
        None | Some("duration") => ShardBy::Duration,
        Some("hash") => ShardBy::Hash,
        Some(v) => {
            return Err(CliError::Usage(format!(
                "invalid value '{v}' for --shard-by: choose from hash, duration"
            )))
        }
    };
    let Some(v) = shard else {
        return Ok(None);
    };
    if v.trim() == "auto" {
        let (index, total, provider) = crate::run::shard::from_env(env).map_err(CliError::Usage)?;
        return Ok(Some(Shard {
            index,
            total,
            by,
            provider: Some(provider),
        }));
    }
    let bad = || {
        CliError::Usage(format!(
            "invalid value '{v}' for --shard: expected K/N with 1 <= K <= N, e.g. 2/4, or auto"
        ))
    };
    let (k, n) = v.trim().split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || k == 0 || k > n {
        return Err(bad());
    }
    Ok(Some(Shard {
        index: k,
        total: n,
        by,
        provider: None,
    }))
}

/// Parses xdist options with clap; errors become one-line usage errors.
pub fn parse_raw(own: &[String]) -> Result<RawArgs, CliError> {
    let argv = std::iter::once("xdist".to_string()).chain(own.iter().cloned());
    RawArgs::try_parse_from(argv).map_err(|e| {
        use clap::error::ErrorKind;
        match e.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => CliError::Display(e.to_string()),
            _ => {
                let text = e.to_string();
                let first = text
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_string();
                CliError::Usage(first)
            }
        }
    })
}

/// Parses a subcommand's arguments (`xdist serve`, `plugins`, `merge-*`): help is displayed,
/// errors are one usage line.
pub fn parse_subcommand<T: Parser>(name: &str, argv: &[String]) -> Result<T, CliError> {
    T::try_parse_from(std::iter::once(name.to_string()).chain(argv.iter().cloned())).map_err(|e| {
        match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                CliError::Display(e.to_string())
            }
            _ => {
                // clap's message up to its usage block, on one line.
                let text = e.to_string();
                let lines: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                    .map(str::trim)
                    .collect();
                let msg = lines.join(" ");
                CliError::Usage(format!(
                    "{} (see {name} --help)",
                    msg.trim_start_matches("error: ")
                ))
            }
        }
    })
}

fn scan_pytest_flags(args: &[String]) -> PytestFlags {
    let mut f = PytestFlags::default();
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "--" => break,
            "--co" | "--collect-only" | "--collectonly" => f.collect_only = true,
            "--pdb" | "--trace" => f.pdb = true,
            "-s" => f.capture_no = true,
            "--capture=no" => f.capture_no = true,
            "--capture" => {
                if args.get(i + 1).map(String::as_str) == Some("no") {
                    f.capture_no = true;
                }
                i += 1;
            }
            "-q" | "--quiet" => f.quiet = true,
            "--lf" | "--last-failed" => f.last_failed = true,
            "--ff" | "--failed-first" => f.failed_first = true,
            "--nf" | "--new-first" => f.new_first = true,
            "--sw" | "--stepwise" | "--sw-skip" | "--stepwise-skip" => f.stepwise = true,
            "-h" | "--help" => f.help = true,
            "--markers" | "--fixtures" | "--funcargs" | "--fixtures-per-test" => {
                f.informational = true
            }
            "--color" => {
                f.color = args.get(i + 1).cloned();
                i += 1;
            }
            "--basetemp" => {
                f.basetemp = args.get(i + 1).map(PathBuf::from);
                i += 1;
            }
            "--junitxml" | "--junit-xml" | "--report-log" | "--durations" | "--durations-min" => {
                let v = args.get(i + 1).cloned();
                set_valued(&mut f, a, v);
                i += 1;
            }
            _ => {
                if let Some((name, v)) = a.split_once('=').filter(|(n, _)| {
                    matches!(
                        *n,
                        "--junitxml"
                            | "--junit-xml"
                            | "--report-log"
                            | "--durations"
                            | "--durations-min"
                    )
                }) {
                    set_valued(&mut f, name, Some(v.to_string()));
                } else if let Some(v) = a.strip_prefix("--color=") {
                    f.color = Some(v.to_string());
                } else if let Some(v) = a.strip_prefix("--basetemp=") {
                    f.basetemp = Some(PathBuf::from(v));
                } else if a.starts_with('-') && !a.starts_with("--") && a.len() > 2 {
                    // Clustered short flags such as `-sv` or `-qx`.
                    let flags = &a[1..];
                    if flags.chars().all(|c| "svqxlrl".contains(c)) {
                        if flags.contains('s') {
                            f.capture_no = true;
                        }
                        if flags.contains('q') {
                            f.quiet = true;
                        }
                    }
                } else if is_pytest_value_option(a) {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    f
}

fn set_valued(f: &mut PytestFlags, name: &str, v: Option<String>) {
    match name {
        "--junitxml" | "--junit-xml" => f.junitxml = v,
        "--report-log" => f.report_log = v,
        "--durations" => f.durations = v,
        "--durations-min" => f.durations_min = v,
        _ => {}
    }
}

/// `--sw` needs one process seeing every result in order: refuse it when distributing.
pub fn check_stepwise(flags: &PytestFlags, workers: usize) -> Result<(), CliError> {
    if flags.stepwise && workers > 0 && !flags.runs_plain() {
        return Err(CliError::Usage(
            "--sw/--stepwise is not supported when distributing tests; use -n 0 to run plain pytest".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn splits_interleaved_args_keeping_pytest_order() {
        let (own, py) = split_args(&s(&[
            "tests/",
            "-n",
            "2",
            "-k",
            "-n",
            "--dist=loadfile",
            "-x",
            "-n4",
            "--python",
            "py",
        ]));
        assert_eq!(
            own,
            s(&["-n", "2", "--dist=loadfile", "-n", "4", "--python", "py"])
        );
        assert_eq!(py, s(&["tests/", "-k", "-n", "-x"]));
    }

    /// The splitter knows every option [`RawArgs`] defines, in each spelling, with its value.
    #[test]
    fn every_defined_option_is_split_as_ours() {
        use clap::CommandFactory;
        let cmd = RawArgs::command();
        let mut n = 0;
        for arg in cmd.get_arguments() {
            let value = arg.get_action().takes_values();
            let mut spellings: Vec<Vec<String>> = Vec::new();
            if let Some(long) = arg.get_long() {
                spellings.push(if value {
                    s(&[&format!("--{long}"), "2"])
                } else {
                    s(&[&format!("--{long}")])
                });
                if value {
                    spellings.push(s(&[&format!("--{long}=2")]));
                }
            }
            if let Some(short) = arg.get_short() {
                spellings.push(if value {
                    s(&[&format!("-{short}"), "2"])
                } else {
                    s(&[&format!("-{short}")])
                });
            }
            for spelling in spellings {
                let mut argv = spelling.clone();
                argv.push("tests/".into());
                let (own, pytest) = split_args(&argv);
                assert_eq!(own, spelling, "{argv:?}");
                assert_eq!(pytest, s(&["tests/"]), "{argv:?}");
                n += 1;
            }
        }
        assert!(n >= 35, "only {n} spellings");
    }

    #[test]
    fn a_pytest_options_value_is_never_taken_for_ours() {
        let shorts = PYTEST_SHORT_WITH_VALUE.iter().map(|c| format!("-{c}"));
        let names: Vec<String> = PYTEST_LONG_WITH_VALUE
            .iter()
            .map(|n| n.to_string())
            .chain(shorts)
            .chain(PLUGIN_VALUE_OPTIONS.iter().map(|n| n.to_string()))
            .collect();
        for name in names {
            let (own, pytest) = split_args(&s(&[&name, "-f", "-n", "2"]));
            assert_eq!(own, s(&["-n", "2"]), "{name}");
            assert_eq!(pytest, s(&[&name, "-f"]), "{name}");
        }
    }

    #[test]
    fn an_option_given_twice_takes_its_last_value() {
        for (args, want) in [
            (&["-n", "auto", "-n", "4"][..], "4"),
            (&["-n", "4", "-n", "auto"][..], "auto"),
            (&["-n2", "--numprocesses=logical", "-n", "0"][..], "0"),
        ] {
            let raw = parse_raw(&s(args)).unwrap();
            assert_eq!(raw.numprocesses.as_deref(), Some(want), "{args:?}");
        }
        let raw = parse_raw(&s(&["--dist", "load", "--dist=loadfile", "-d", "-d"])).unwrap();
        assert_eq!(raw.dist.as_deref(), Some("loadfile"));
        // Repeatable options keep every value.
        let raw = parse_raw(&s(&["--tx", "popen", "--tx", "2*popen", "--tx=popen"])).unwrap();
        assert_eq!(raw.tx, s(&["popen", "2*popen", "popen"]));
    }

    #[test]
    fn validates_bad_values_with_one_line() {
        let raw = parse_raw(&s(&["-n", "foo"])).unwrap();
        let e = validate(raw, RawArgs::default(), vec![]).unwrap_err();
        assert!(e.to_string().contains("'foo'"), "{e}");
        let raw = parse_raw(&s(&["--dist", "bogus"])).unwrap();
        let e = validate(raw, RawArgs::default(), vec![]).unwrap_err();
        assert!(e.to_string().contains("--dist"), "{e}");
        assert_eq!(e.exit_code(), 4);
    }

    #[test]
    fn scans_file_report_flags() {
        let f = scan_pytest_flags(&s(&[
            "--junitxml",
            "out.xml",
            "--report-log=log.json",
            "--durations",
            "3",
            "--durations-min=0.5",
            "--lf",
            "--sw",
        ]));
        assert_eq!(f.junitxml.as_deref(), Some("out.xml"));
        assert_eq!(f.report_log.as_deref(), Some("log.json"));
        assert_eq!(f.durations.as_deref(), Some("3"));
        assert_eq!(f.durations_min.as_deref(), Some("0.5"));
        assert!(f.last_failed && f.stepwise && f.want_files());
        assert_eq!(check_stepwise(&f, 2).unwrap_err().exit_code(), 4);
        assert!(check_stepwise(&f, 0).is_ok());
        let f = scan_pytest_flags(&s(&["--junit-xml=x.xml"]));
        assert_eq!(f.junitxml.as_deref(), Some("x.xml"));
    }

    #[test]
    fn tx_specs_and_n() {
        let raw = parse_raw(&s(&["--tx", "2*popen", "--tx", "ssh=h//python=py"])).unwrap();
        let o = validate(raw, RawArgs::default(), vec![]).unwrap();
        assert_eq!(o.tx.len(), 3);
        // -n discards --tx.
        let raw = parse_raw(&s(&["--tx", "2*popen", "-n", "3"])).unwrap();
        assert!(validate(raw, RawArgs::default(), vec![])
            .unwrap()
            .tx
            .is_empty());
        let raw = parse_raw(&s(&["--tx", "ssh="])).unwrap();
        let e = validate(raw, RawArgs::default(), vec![]).unwrap_err();
        assert_eq!(e.exit_code(), 4);
        assert!(e.to_string().contains("invalid --tx spec 'ssh='"), "{e}");
        let (own, py) = split_args(&s(&["--px", "id=p//popen", "--rsyncdir", "src", "t"]));
        assert_eq!(own.len(), 4);
        assert_eq!(py, s(&["t"]));
    }

    #[test]
    fn shard_values() {
        let raw = parse_raw(&s(&["--shard", "2/4", "--shard-by", "hash"])).unwrap();
        let o = validate(raw, RawArgs::default(), vec![]).unwrap();
        assert_eq!(
            o.shard,
            Some(Shard {
                index: 2,
                total: 4,
                by: ShardBy::Hash,
                provider: None,
            })
        );
        for bad in ["0/4", "5/4", "1/0", "x", "1/x"] {
            let raw = parse_raw(&s(&["--shard", bad])).unwrap();
            assert_eq!(
                validate(raw, RawArgs::default(), vec![])
                    .unwrap_err()
                    .exit_code(),
                4
            );
        }
        let raw = parse_raw(&s(&["--shard-by", "size"])).unwrap();
        assert!(validate(raw, RawArgs::default(), vec![]).is_err());
    }

    #[test]
    fn cli_wins_over_addopts() {
        let cli = parse_raw(&s(&["-n", "3"])).unwrap();
        let ini = parse_raw(&s(&["-n", "5", "--dist", "loadfile"])).unwrap();
        let o = validate(cli, ini, vec![]).unwrap();
        assert_eq!(o.numprocesses, NumProcesses::Count(3));
        assert_eq!(o.dist, DistMode::LoadFile);
    }
}
