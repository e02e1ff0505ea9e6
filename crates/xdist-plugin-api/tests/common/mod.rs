//! Shared helpers: build the real plugin libraries and the test fixtures, copy them to
//! private temporary paths (each copy is its own library instance with its own state).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use xdist_plugin_api::host::{PluginOrigin, PluginSource};

/// `<target>/<profile>` of this test binary (`<target>/<profile>/deps/<test-exe>`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

fn profile_args() -> Vec<String> {
    let dir = profile_dir();
    match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => vec![],
        Some("release") => vec!["--release".into()],
        Some(other) => vec!["--profile".into(), other.into()],
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo for {what}: {e}"));
    assert!(
        out.status.success(),
        "building {what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Build the four first-party plugins (no-op when up to date) in this test's target dir.
pub fn first_party_dir() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let _g = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let target = profile_dir().parent().expect("target dir").to_path_buf();
        let mut cmd = cargo();
        cmd.current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--quiet"])
            .args(profile_args());
        for p in [
            "priority-scheduler",
            "crash-retry",
            "node-lifecycle",
            "auto-workers",
        ] {
            cmd.args(["-p", p]);
        }
        run(cmd, "the first-party plugins");
        profile_dir()
    })
}

/// Build the fixture workspaces into `<target>/plugin-fixtures`.
pub fn fixtures_out_dir() -> &'static Path {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let _g = BUILD_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let target = profile_dir()
            .parent()
            .expect("target dir")
            .join("plugin-fixtures");
        for manifest in ["Cargo.toml", "old-plugin/Cargo.toml"] {
            let mut cmd = cargo();
            cmd.env("CARGO_TARGET_DIR", &target)
                .args(["build", "--quiet", "--workspace", "--manifest-path"])
                .arg(fixtures_dir().join(manifest));
            run(cmd, manifest);
        }
        target.join("debug")
    })
}

fn lib_file(dir: &Path, crate_name: &str) -> PathBuf {
    dir.join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name,
        std::env::consts::DLL_SUFFIX
    ))
}

/// A private copy of a library (own inode, so its own statics), in a fresh temp dir.
pub fn private_copy(src: &Path) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xdist-plugin-tests-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dst = dir.join(src.file_name().expect("file name"));
    std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    dst
}

/// A private copy of a first-party plugin (`crash_retry`, ...).
pub fn plugin(crate_name: &str) -> PathBuf {
    private_copy(&lib_file(first_party_dir(), crate_name))
}

/// A private copy of a fixture library (`recorder`, `panicky`, ...).
pub fn fixture(crate_name: &str) -> PathBuf {
    private_copy(&lib_file(fixtures_out_dir(), crate_name))
}

pub fn src(path: &Path) -> PluginSource {
    PluginSource::new(path, PluginOrigin::CommandLine)
}

/// A temp file path (not created).
pub fn temp_file(name: &str) -> PathBuf {
    let dir = private_copy_dir();
    dir.join(name)
}

fn private_copy_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "xdist-plugin-tests-f{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
