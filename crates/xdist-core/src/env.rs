//! Every environment variable xdist reads or sets, in one place (`tests/env_names.rs` fails
//! on a name spelled as a literal anywhere else in the Rust sources, and on one the Python
//! side, which spells them itself, uses without a constant here).

/// Interpreter to run workers with, when `--python` is not given.
pub const XDIST_PYTHON: &str = "XDIST_PYTHON";
/// The active virtualenv; `$VIRTUAL_ENV/bin/python` is tried after `XDIST_PYTHON` and the
/// environment the binary was installed in.
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
/// The user name, as Python's `getpass.getuser()` reads it (first non-empty wins; then the
/// password database): pytest's `pytest-of-<user>` temp root.
pub const LOGNAME: &str = "LOGNAME";
pub const USER: &str = "USER";
pub const LNAME: &str = "LNAME";
pub const USERNAME: &str = "USERNAME";
/// Disables colored output when set to any non-empty value.
pub const NO_COLOR: &str = "NO_COLOR";
/// Forces colored output when set to any non-empty value (pytest honours it too).
pub const FORCE_COLOR: &str = "FORCE_COLOR";
/// pytest's `--color` default source.
pub const PY_COLORS: &str = "PY_COLORS";
/// Terminal width override, as pytest reads it; set for the Python steps xdist starts.
pub const COLUMNS: &str = "COLUMNS";
/// Set by GitHub Actions: pytest-github-actions-annotate-failures prints its annotations
/// then, and the controller session starts for it (`LIVE_REPORT_PLUGINS`).
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// `dumb` terminals get neither colour nor the live status line.
pub const TERM: &str = "TERM";
/// pytest's temp root (`pytest-of-<user>` lives under it), before `TMPDIR`.
pub const PYTEST_DEBUG_TEMPROOT: &str = "PYTEST_DEBUG_TEMPROOT";
/// The temp root when `PYTEST_DEBUG_TEMPROOT` is unset (as Python's `tempfile`).
pub const TMPDIR: &str = "TMPDIR";
/// The user plugin directory is `$XDG_DATA_HOME/xdist/plugins`...
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// ... else `$HOME/.local/share/xdist/plugins`.
pub const HOME: &str = "HOME";
/// Searched for `python3`/`python` when no other interpreter is given.
pub const PATH: &str = "PATH";
/// Worker side: file descriptor numbers of the protocol channel (read, write).
pub const XDIST_CHANNEL_FDS: &str = "XDIST_CHANNEL_FDS";
/// Developer aid: directory where each worker writes a cProfile dump (`gwN.prof`).
pub const XDIST_WORKER_PROFILE: &str = "XDIST_WORKER_PROFILE";
/// Hides the live status line on a terminal when set to any non-empty value.
pub const XDIST_NO_STATUS: &str = "XDIST_NO_STATUS";
/// `--shard auto`, CircleCI: this job's index among the parallel runs (0-based).
pub const CIRCLE_NODE_INDEX: &str = "CIRCLE_NODE_INDEX";
/// `--shard auto`, CircleCI: the number of parallel runs.
pub const CIRCLE_NODE_TOTAL: &str = "CIRCLE_NODE_TOTAL";
/// `--shard auto`, GitLab CI (`parallel:`): this job's index (1-based).
pub const CI_NODE_INDEX: &str = "CI_NODE_INDEX";
/// `--shard auto`, GitLab CI: the number of parallel jobs (1 when not parallel).
pub const CI_NODE_TOTAL: &str = "CI_NODE_TOTAL";
/// `--shard auto`, Buildkite (`parallelism:`): this job's index (0-based).
pub const BUILDKITE_PARALLEL_JOB: &str = "BUILDKITE_PARALLEL_JOB";
/// `--shard auto`, Buildkite: the number of parallel jobs.
pub const BUILDKITE_PARALLEL_JOB_COUNT: &str = "BUILDKITE_PARALLEL_JOB_COUNT";
/// `--shard auto`, Bazel test sharding: this shard's index (0-based).
pub const TEST_SHARD_INDEX: &str = "TEST_SHARD_INDEX";
/// `--shard auto`, Bazel: the number of shards.
pub const TEST_TOTAL_SHARDS: &str = "TEST_TOTAL_SHARDS";
/// Bazel: a file the test runner touches to say it supports sharding.
pub const TEST_SHARD_STATUS_FILE: &str = "TEST_SHARD_STATUS_FILE";
/// Bazel: where the test runner writes its JUnit XML.
pub const XML_OUTPUT_FILE: &str = "XML_OUTPUT_FILE";
/// Plain pytest runs with `--shard`: the pipe (read,write) that carries the collected ids to
/// xdist and the shard's indices back.
pub const XDIST_SHARD_FDS: &str = "XDIST_SHARD_FDS";
/// Set by the `xdist` binary for itself and so every process it starts (workers, the summary
/// step, the controller session, plain pytest): its pid. The wheel's pytest plugin never hands
/// a run to xdist while it is set, so nothing loops.
pub const XDIST_CONTROLLER_PID: &str = "XDIST_CONTROLLER_PID";
/// Opt-in for the wheel's pytest plugin (`python/xdist_rs/pytest_plugin.py`): `1`/`true`
/// hands `pytest -n N` runs to xdist, `0`/`false` never does (over the ini key `xdist_native`).
pub const XDIST_NATIVE: &str = "XDIST_NATIVE";
/// Set by the pytest plugin when it hands a run to xdist: the pytest command line it replaced
/// (shown in the run's header by the plugin inside the workers).
pub const XDIST_HANDED_OFF: &str = "XDIST_HANDED_OFF";
/// Fork server side: the controller's local socket forked workers connect back to.
pub const XDIST_ZYGOTE: &str = "XDIST_ZYGOTE";
/// Fork server side: the secret a forked worker's hello carries.
pub const XDIST_ZYGOTE_SECRET: &str = "XDIST_ZYGOTE_SECRET";
/// Benchmarks: how many tests `bench/synthetic-worker` collects.
pub const XDIST_SYNTH_TESTS: &str = "XDIST_SYNTH_TESTS";
/// Fault injection (tests): the fork server's N-th fork request fails with `EAGAIN`.
pub const XDIST_FAIL_FORK: &str = "XDIST_FAIL_FORK";
/// Remote workers prepend their (synced) working directory, as pytest-xdist's do (Python side).
pub const PYTHONPATH: &str = "PYTHONPATH";
