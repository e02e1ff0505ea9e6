//! `xdist`: run a pytest suite across many CPUs.
//!
//! Flow: [`cli::args`] splits and validates the command line; the pytest config file supplies
//! xdist options from `addopts`; [`run::controller::Controller`] starts the workers and owns the
//! run; [`report::terminal::TerminalReporter`] prints what a pytest user expects.

/// `println!` that never panics: output to a closed pipe (`xdist --help | head`) is dropped.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that never panics (see `outln!`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout();
        let _ = write!(stdout, $($arg)*);
        let _ = stdout.flush();
    }};
}

mod cli;
mod error;
mod pystep;
mod report;
mod run;

use cli::{args, generate, merge, plain, plugins, serve};
use pystep::controller_session;
use report::{cache, junit, reportlog, status};
use run::{basetemp, controller, durations, looponfail, rsync, signals};

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use xdist_config::cpus::{auto_workers, AutoKind};
use xdist_config::ini::PytestConfigFile;
use xdist_core::env as envnames;
use xdist_core::spec::{Gateway, XSpec};
use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::ConfigView;

use crate::cli::args::{NumProcesses, RunOptions};
use crate::error::CliError;
use crate::report::terminal::TerminalReporter;
use crate::report::termwriter::TermWriter;
use crate::run::controller::{Controller, RunSetup};

fn main() {
    // Before any thread exists: every process xdist starts inherits it (no pytest hand-off
    // from inside an xdist run).
    std::env::set_var(
        envnames::XDIST_CONTROLLER_PID,
        std::process::id().to_string(),
    );
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(argv) {
        Ok(code) => code,
        Err(CliError::Display(text)) => {
            out!("{text}");
            0
        }
        Err(e) => {
            eprintln!("xdist: error: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}

fn run(argv: Vec<String>) -> Result<i32, CliError> {
    if let Some(done) = subcommand(&argv) {
        return done;
    }
    if let Some(done) = generate::early(&argv) {
        return done; // --version, --help, --generate man|bash|zsh|fish
    }
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::Usage(format!("failed to read the current directory: {e}")))?;
    let (opts, ini) = options(&argv, &cwd)?;
    if opts.shard.is_some_and(|s| s.is_bazel()) {
        touch_shard_status_file()?;
    }
    let host = plugins::load(&opts, &ini)?;
    let config_view = plugins::config_view(&opts, &ini);
    let python = xdist_config::python::find_python(opts.python.as_deref())?;
    // `--tx` specs (without `-n`) say exactly which workers to start.
    let explicit_tx = !opts.tx.is_empty();
    let (workers, auto_kind) = requested_workers(&opts, &host, &config_view)?;
    // Never start more workers than the same invocation collected tests last time.
    let args_key = format!("{}\0{}", cwd.display(), opts.pytest_args.join("\0"));
    let cache_dir = cache_dir(&ini, &opts);
    let collected_last = (cache_dir.as_deref())
        .and_then(|d| durations::last_collection_size(d, &args_key))
        .filter(|_| !explicit_tx);
    let workers = collected_last.map_or(workers, |c| workers.min(c.max(1)));
    // What a controller session's `pytest_xdist_auto_num_workers` answer is capped to.
    let max_workers = [opts.maxprocesses, collected_last.map(|c| c.max(1))]
        .into_iter()
        .flatten()
        .min();
    check_pdb(&opts, workers)?;
    args::check_stepwise(&opts.pytest, workers)?;
    if workers == 0 || opts.pytest.runs_plain() {
        let shard = opts
            .shard
            .filter(|_| !opts.pytest.help && !opts.pytest.informational)
            .map(|shard| plain::PlainShard {
                shard,
                history: cache_dir
                    .as_deref()
                    .map(|d| durations::History::load(&durations::history_path(d))),
            });
        return plain::run_plain_pytest(&python, &opts.pytest_args, &cwd, shard);
    }
    let specs: Vec<XSpec> = if explicit_tx {
        opts.tx.clone()
    } else {
        vec![XSpec::popen(); workers]
    };
    let remote = RemoteSetup::new(&opts, &ini, &specs, &cwd)?;
    let token = socket_token(&specs)?;
    let color = decide_color(&opts);
    let width = terminal_width();
    let hang_timeout = hang_timeout(&opts, &ini)?;
    let start = start_mode(&opts, &ini)?;
    signals::install();
    let session = Session {
        python,
        cwd,
        specs,
        rsync_roots: remote.roots,
        rsync_ignore: remote.ignore,
        remote_args: remote.args,
        token,
        color,
        width,
        hang_timeout,
        start,
        host: &host,
        config_view,
        cache_dir,
        auto_kind,
        max_workers,
    };
    if opts.looponfail {
        return run_looponfail(&session, opts, &ini);
    }
    session.run_once(opts, Some(args_key)).map(|o| o.exit)
}

/// `--looponfail`: runs again whenever a file under the roots changes.
fn run_looponfail(
    session: &Session,
    opts: RunOptions,
    ini: &PytestConfigFile,
) -> Result<i32, CliError> {
    let mut roots = ini.get_paths("looponfailroots")?;
    if roots.is_empty() {
        roots.push(ini.rootdir.clone());
    }
    let base = opts.pytest_args.clone();
    looponfail::run_loop(&base, &roots, session.color, session.width, |args| {
        let mut o = opts.clone();
        o.pytest_args = args.to_vec();
        let outcome = session.run_once(o, None)?;
        Ok(looponfail::LoopRun {
            exit: outcome.exit,
            failed: outcome.failed,
            collection_failed: outcome.collection_failed,
        })
    })
}

/// `xdist plugins|serve|merge-junit|merge-durations ...`, or None for a run.
fn subcommand(argv: &[String]) -> Option<Result<i32, CliError>> {
    let rest = argv.get(1..).unwrap_or_default();
    Some(match argv.first().map(String::as_str) {
        Some("plugins") => plugins::list_command(rest),
        Some("serve") => serve::command(rest),
        Some("merge-junit") => merge::merge_junit(rest),
        Some("merge-durations") => merge::merge_durations(rest),
        _ => return None,
    })
}

/// The validated options: the command line, then pytest's `addopts` and `PYTEST_ADDOPTS`
/// (xdist options may live there too), and the ini file they were found with.
fn options(argv: &[String], cwd: &Path) -> Result<(RunOptions, PytestConfigFile), CliError> {
    let (own, pytest_args) = args::split_args(argv);
    let raw_cli = args::parse_raw(&own)?;
    let env_addopts = std::env::var(envnames::PYTEST_ADDOPTS)
        .ok()
        .map(|s| xdist_core::pystr::split_addopts(&s).map_err(CliError::Usage))
        .transpose()?
        .unwrap_or_default();
    // Config discovery sees pytest's arguments only (xdist's option values are no paths).
    let (_, mut located_args) = args::split_args(&env_addopts);
    located_args.extend(pytest_args.iter().cloned());
    let ini = xdist_config::ini::locate(&located_args, cwd)?;
    let mut addopts = ini.get_args("addopts")?;
    addopts.extend(env_addopts);
    let (own_addopts, _) = args::split_args(&addopts);
    let raw_addopts = args::parse_raw(&own_addopts)?;
    let opts = args::validate(raw_cli, raw_addopts, pytest_args)?;
    Ok((opts, ini))
}

/// Bazel's sharding protocol: touching this file says the runner shards.
fn touch_shard_status_file() -> Result<(), CliError> {
    let Some(path) = std::env::var_os(envnames::TEST_SHARD_STATUS_FILE) else {
        return Ok(());
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| {
            CliError::Usage(format!(
                "cannot touch {} ({}): {e}",
                envnames::TEST_SHARD_STATUS_FILE,
                Path::new(&path).display()
            ))
        })?;
    Ok(())
}

/// How many workers `-n`/`--tx`/`--maxprocesses` ask for (`-n auto`: a plugin's answer first,
/// the hook called once; with `--pdb`, none), and `auto` or `logical` when that count is the
/// default one (a controller session's `pytest_xdist_auto_num_workers` may answer instead).
fn requested_workers(
    opts: &RunOptions,
    host: &PluginHost,
    config_view: &ConfigView,
) -> Result<(usize, Option<&'static str>), CliError> {
    if !opts.tx.is_empty() {
        return Ok((opts.tx.len(), None));
    }
    let mut auto_kind = None;
    let workers = match opts.numprocesses {
        NumProcesses::Count(n) => n,
        NumProcesses::Auto | NumProcesses::Logical if opts.pytest.pdb => 0,
        NumProcesses::Auto | NumProcesses::Logical => {
            match host
                .auto_num_workers(config_view)
                .map_err(plugins::hook_error)?
            {
                Some(n) => n,
                None => {
                    let kind = if opts.numprocesses == NumProcesses::Logical {
                        AutoKind::Logical
                    } else {
                        AutoKind::Auto
                    };
                    auto_kind = Some(match kind {
                        AutoKind::Logical => "logical",
                        AutoKind::Auto => "auto",
                    });
                    let auto = auto_workers(kind);
                    if let Some(w) = auto.warning {
                        eprintln!("xdist: warning: {w}");
                    }
                    auto.count
                }
            }
        }
    };
    Ok((
        opts.maxprocesses.map_or(workers, |max| workers.min(max)),
        auto_kind,
    ))
}

/// `--pdb` runs tests in one process: not with workers, not with `--looponfail`.
fn check_pdb(opts: &RunOptions, workers: usize) -> Result<(), CliError> {
    if opts.looponfail && opts.pytest.pdb {
        return Err(CliError::Usage(
            "--pdb is incompatible with --looponfail.".into(),
        ));
    }
    if opts.pytest.pdb && workers > 0 && !opts.pytest.runs_plain() {
        return Err(CliError::Usage(
            "--pdb is incompatible with distributing tests; try using -n0 or -nauto.".into(),
        ));
    }
    Ok(())
}

/// Remote and `chdir=` workers: the rsync roots, what rsync ignores, and pytest's arguments
/// rewritten relative to the roots.
struct RemoteSetup {
    roots: Vec<PathBuf>,
    ignore: Vec<String>,
    args: Option<Vec<String>>,
}

impl RemoteSetup {
    fn new(
        opts: &RunOptions,
        ini: &PytestConfigFile,
        specs: &[XSpec],
        cwd: &Path,
    ) -> Result<RemoteSetup, CliError> {
        let ini_rsyncdirs = ini.get_paths("rsyncdirs")?;
        if let Some(exec) = specs.iter().find(|s| s.is_exec()) {
            if !opts.rsyncdirs.is_empty() {
                return Err(CliError::Usage(format!(
                    "--rsyncdir does not apply to exec= workers ({exec}): there is nothing to rsync to; make the files available where the command runs (a volume, a checkout) and drop --rsyncdir"
                )));
            }
        }
        if !opts.rsyncdirs.is_empty() || !ini_rsyncdirs.is_empty() {
            eprintln!(
                "xdist: warning: DeprecationWarning: {}",
                rsync::DEPRECATION.replace('\n', " ")
            );
        }
        let roots = if specs.iter().any(XSpec::needs_rsync) {
            rsync::roots(&opts.rsyncdirs, &ini_rsyncdirs, cwd)?
        } else {
            Vec::new()
        };
        let mut ignore = ini.get_args("rsyncignore")?;
        ignore.extend(opts.rsyncignore.iter().cloned());
        let args = if roots.is_empty() {
            None
        } else {
            Some(rsync::rewrite_args(&roots, &opts.pytest_args, cwd)?)
        };
        Ok(RemoteSetup {
            roots,
            ignore,
            args,
        })
    }
}

/// `XDIST_TOKEN`, which `socket=` workers need.
fn socket_token(specs: &[XSpec]) -> Result<Option<String>, CliError> {
    let token = std::env::var(envnames::XDIST_TOKEN)
        .ok()
        .filter(|t| !t.is_empty());
    if token.is_none()
        && specs
            .iter()
            .any(|s| matches!(s.gateway, Gateway::Socket { .. }))
    {
        return Err(CliError::Usage(format!(
            "socket= workers need the server's shared token: set {}",
            envnames::XDIST_TOKEN
        )));
    }
    Ok(token)
}

/// `--hang-timeout`, else the ini's `hang_timeout`.
fn hang_timeout(
    opts: &RunOptions,
    ini: &PytestConfigFile,
) -> Result<Option<std::time::Duration>, CliError> {
    let seconds = match opts.hang_timeout {
        Some(s) => Some(s),
        None => ini
            .get_str("hang_timeout")
            .map(|v| args::parse_seconds("ini hang_timeout", v))
            .transpose()?,
    };
    Ok(seconds.map(std::time::Duration::from_secs_f64))
}

/// `--start`, else the ini's `xdist_start`, else fork.
fn start_mode(opts: &RunOptions, ini: &PytestConfigFile) -> Result<args::StartMode, CliError> {
    match opts.start {
        Some(s) => Ok(s),
        None => Ok(ini
            .get_str("xdist_start")
            .map(|v| args::parse_start("ini xdist_start", v))
            .transpose()?
            .unwrap_or(args::StartMode::Fork)),
    }
}

/// What stays the same across runs of one invocation (several with `--looponfail`).
struct Session<'h> {
    python: PathBuf,
    cwd: PathBuf,
    specs: Vec<XSpec>,
    rsync_roots: Vec<PathBuf>,
    rsync_ignore: Vec<String>,
    remote_args: Option<Vec<String>>,
    token: Option<String>,
    color: bool,
    width: usize,
    hang_timeout: Option<std::time::Duration>,
    start: args::StartMode,
    host: &'h xdist_plugin_api::host::PluginHost,
    config_view: xdist_plugin_api::ConfigView,
    /// pytest's cache directory, unless the cache plugin is disabled.
    cache_dir: Option<PathBuf>,
    /// `-n auto`/`-n logical` with the default count (see `requested_workers`).
    auto_kind: Option<&'static str>,
    /// The most workers a count from `pytest_xdist_auto_num_workers` may start
    /// (`--maxprocesses`, the last collection's size).
    max_workers: Option<usize>,
}

impl Session<'_> {
    /// One distributed run with fresh workers, and a controller session when its workers
    /// ask for one. The cache remembers that they did: the next run starts with one
    /// instead of starting over.
    fn run_once(
        &self,
        opts: RunOptions,
        args_key: Option<String>,
    ) -> Result<controller::RunOutcome, CliError> {
        let cache = self.cache_dir.as_deref();
        let session = match cache.is_some_and(durations::controller_session_wanted) {
            true => Some(self.start_controller_session(&opts)?),
            false => None,
        };
        let started_with_session = session.is_some();
        let outcome = self.run_attempt(opts.clone(), args_key.clone(), session)?;
        if started_with_session && !outcome.controller_session_used {
            if let Some(dir) = cache {
                let _ = durations::record_controller_session(dir, false);
            }
        }
        if !outcome.needs_controller_session {
            return Ok(outcome);
        }
        if let Some(dir) = cache {
            let _ = durations::record_controller_session(dir, true);
        }
        let session = self.start_controller_session(&opts)?;
        self.run_attempt(opts, args_key, Some(session))
    }

    fn start_controller_session(
        &self,
        opts: &RunOptions,
    ) -> Result<controller_session::ControllerSession, CliError> {
        controller_session::ControllerSession::start(
            &self.python,
            &self.cwd,
            &opts.pytest_args,
            self.specs.len(),
            self.width,
            self.color,
        )
        .map_err(|e| CliError::Internal(format!("failed to start the controller session: {e}")))
    }

    /// The run's workers: `-n auto`'s count from the controller session's
    /// `pytest_xdist_auto_num_workers` when one answers (as pytest-xdist's controller asks
    /// before it starts any), else the ones found before.
    fn specs_for(
        &self,
        session: Option<&mut controller_session::ControllerSession>,
    ) -> Result<Vec<XSpec>, CliError> {
        let (Some(session), Some(kind)) = (session, self.auto_kind) else {
            return Ok(self.specs.clone());
        };
        let count = (session.auto_num_workers(kind)).map_err(|e| {
            CliError::Internal(format!("pytest_xdist_auto_num_workers failed: {e}"))
        })?;
        Ok(match count {
            Some(n) => vec![XSpec::popen(); self.max_workers.map_or(n, |m| n.min(m)).max(1)],
            None => self.specs.clone(),
        })
    }

    fn run_attempt(
        &self,
        opts: RunOptions,
        args_key: Option<String>,
        mut controller_session: Option<controller_session::ControllerSession>,
    ) -> Result<controller::RunOutcome, CliError> {
        let specs = self.specs_for(controller_session.as_mut())?;
        let run_basetemp = basetemp::make_run_basetemp(opts.pytest.basetemp.as_deref(), &self.cwd)
            .map_err(|e| {
                CliError::Usage(format!(
                    "failed to create the base temporary directory: {e}"
                ))
            })?;
        if !self.rsync_roots.is_empty() {
            rsync::sync_all(
                &specs,
                &self.rsync_roots,
                &self.rsync_ignore,
                self.host,
                &self.cwd,
            )?;
        }
        let workers = specs.len();
        let setup = RunSetup {
            max_restarts: Some(opts.max_worker_restart.unwrap_or(workers * 4)),
            testrunuid: opts.testrunuid.clone().unwrap_or_else(random_uid),
            python: self.python.clone(),
            cwd: self.cwd.clone(),
            specs,
            remote_args: self.remote_args.clone(),
            token: self.token.clone(),
            run_basetemp: Some(run_basetemp),
            color: self.color,
            width: self.width,
            mainargv: std::env::args().collect(),
            durations: None,
            args_key,
            hang_timeout: self.hang_timeout,
            start: self.start,
            opts,
        };
        let mut out: Box<dyn std::io::Write> = Box::new(std::io::stdout());
        let mut live = None;
        if status::wanted(setup.opts.pytest.quiet) {
            let (wrapped, handle) = status::wrap(out, self.width);
            (out, live) = (wrapped, Some(handle));
        }
        let tw = TermWriter::new(out, self.color, self.width);
        let mut terminal = TerminalReporter::new(tw, setup.opts.pytest.quiet)
            .with_status(live)
            .with_isatty(std::io::stdout().is_terminal());
        let (mut junit, mut reportlog) = (
            junit::JunitReporter::new(),
            reportlog::ReportLogReporter::new(),
        );
        let mut cache = cache::CacheReporter::new();
        let controller = Controller::new(
            setup,
            self.host,
            self.config_view.clone(),
            vec![&mut terminal, &mut junit, &mut reportlog, &mut cache],
            controller_session,
        )?;
        let outcome = controller.run_outcome()?;
        junit.finish()?;
        reportlog.finish()?;
        Ok(outcome)
    }
}

/// pytest's cache directory (`cache_dir` ini, default `.pytest_cache` in rootdir), unless the
/// cache plugin is disabled.
fn cache_dir(ini: &xdist_config::ini::PytestConfigFile, opts: &RunOptions) -> Option<PathBuf> {
    let args = &opts.pytest_args;
    let disabled = args
        .windows(2)
        .any(|w| w[0] == "-p" && w[1] == "no:cacheprovider")
        || args.iter().any(|a| a == "-pno:cacheprovider");
    if disabled {
        return None;
    }
    let dir = ini.get_str("cache_dir").unwrap_or(".pytest_cache");
    Some(ini.rootdir.join(dir))
}

/// pytest's color decision: `--color`, then PY_COLORS, NO_COLOR, FORCE_COLOR, then a tty.
fn decide_color(opts: &RunOptions) -> bool {
    match opts.pytest.color.as_deref() {
        Some("yes") => return true,
        Some("no") => return false,
        _ => {}
    }
    match std::env::var(envnames::PY_COLORS).ok().as_deref() {
        Some("1") => return true,
        Some("0") => return false,
        _ => {}
    }
    if std::env::var_os(envnames::NO_COLOR).is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if std::env::var_os(envnames::FORCE_COLOR).is_some_and(|v| !v.is_empty()) {
        return true;
    }
    report::termwriter::stdout_is_smart_terminal()
}

/// pytest's `get_terminal_width`: COLUMNS, else the terminal, else 80; below 40 means 80.
fn terminal_width() -> usize {
    let from_env = std::env::var(envnames::COLUMNS)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&w| w > 0);
    let width = from_env.or_else(tty_width).unwrap_or(80);
    if width < 40 {
        80
    } else {
        width
    }
}

fn tty_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_col > 0 {
            Some(ws.ws_col as usize)
        } else {
            None
        }
    }
}

fn random_uid() -> String {
    xdist_core::random_hex()
}
