//! Every environment variable xdist reads or sets, in one place.

/// Interpreter to run workers with, when `--python` is not given.
pub const XDIST_PYTHON: &str = "XDIST_PYTHON";
/// The active virtualenv; `$VIRTUAL_ENV/bin/python` is tried after `XDIST_PYTHON`.
pub const VIRTUAL_ENV: &str = "VIRTUAL_ENV";
/// Extra plugin paths, separated like `PATH`.
pub const XDIST_PLUGINS: &str = "XDIST_PLUGINS";
/// Shared secret for `xdist serve` and `socket=` workers.
pub const XDIST_TOKEN: &str = "XDIST_TOKEN";
/// Integer override for `-n auto` / `-n logical` (pytest-xdist's name).
pub const PYTEST_XDIST_AUTO_NUM_WORKERS: &str = "PYTEST_XDIST_AUTO_NUM_WORKERS";
/// Set in every worker: its id (`gw0`, ...).
pub const PYTEST_XDIST_WORKER: &str = "PYTEST_XDIST_WORKER";
/// Set in every worker: the number of workers the run started with.
pub const PYTEST_XDIST_WORKER_COUNT: &str = "PYTEST_XDIST_WORKER_COUNT";
/// Set in every worker: the run's shared id.
pub const PYTEST_XDIST_TESTRUNUID: &str = "PYTEST_XDIST_TESTRUNUID";
/// pytest's own extra options; read for `-n`/`--dist` like `addopts`, inherited by workers.
pub const PYTEST_ADDOPTS: &str = "PYTEST_ADDOPTS";
/// Disables colored output when set to any non-empty value.
pub const NO_COLOR: &str = "NO_COLOR";
/// Forces colored output when set to any non-empty value (pytest honours it too).
pub const FORCE_COLOR: &str = "FORCE_COLOR";
/// pytest's `--color` default source.
pub const PY_COLORS: &str = "PY_COLORS";
/// Terminal width override, as pytest reads it.
pub const COLUMNS: &str = "COLUMNS";
/// Worker side: file descriptor numbers of the protocol channel (read, write).
pub const XDIST_CHANNEL_FDS: &str = "XDIST_CHANNEL_FDS";
/// Developer aid: directory where each worker writes a cProfile dump (`gwN.prof`).
pub const XDIST_WORKER_PROFILE: &str = "XDIST_WORKER_PROFILE";
/// Hides the live status line on a terminal when set to any non-empty value.
pub const XDIST_NO_STATUS: &str = "XDIST_NO_STATUS";
/// Fork server side: the controller's local socket forked workers connect back to.
pub const XDIST_ZYGOTE: &str = "XDIST_ZYGOTE";
/// Fork server side: the secret a forked worker's hello carries.
pub const XDIST_ZYGOTE_SECRET: &str = "XDIST_ZYGOTE_SECRET";
/// Fault injection (tests): the fork server's N-th fork request fails with `EAGAIN`.
pub const XDIST_FAIL_FORK: &str = "XDIST_FAIL_FORK";
