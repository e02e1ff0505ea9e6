//! `--rsyncdir` / `--rsyncignore` and ini `rsyncdirs` / `rsyncignore` (deprecated in
//! pytest-xdist, kept for compatibility): copies each root to `<workdir>/<root name>` of every
//! worker that needs it (a remote spec, or one with `chdir=`), through the system `rsync` over
//! the same `ssh` arguments the workers use, and rewrites command-line paths relative to the
//! roots for those workers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use xdist_core::spec::{Gateway, XSpec};
use xdist_plugin_api::host::PluginHost;
use xdist_plugin_api::GatewayView;
use xdist_worker::remote::{shell_quote, ssh_args, ssh_target};

use crate::error::CliError;

/// pytest-xdist's warning whenever rsync roots are configured.
pub const DEPRECATION: &str = "The --rsyncdir command line argument and rsyncdirs config variable are deprecated.\nThe rsync feature will be removed in pytest-xdist 4.0.";

/// What rsync always skips (not overridable, as in pytest-xdist).
const DEFAULT_IGNORES: &[&str] = &[".*", "*.pyc", "*.pyo", "*~"];

/// The roots: `--rsyncdir` then ini `rsyncdirs`, resolved, existing, without repeats.
pub fn roots(cli: &[PathBuf], ini: &[PathBuf], cwd: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut out: Vec<PathBuf> = Vec::new();
    for d in cli.iter().chain(ini) {
        let p = cwd.join(d);
        let p = p
            .canonicalize()
            .map_err(|_| CliError::Usage(format!("rsyncdir doesn't exist: '{}'", d.display())))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// pytest-xdist's `make_reltoroot`: every argument that is an existing path (before any
/// `::`) becomes `<root name>/<path inside the root>`; one outside every root is an error.
pub fn rewrite_args(
    roots: &[PathBuf],
    args: &[String],
    cwd: &Path,
) -> Result<Vec<String>, CliError> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        let mut parts: Vec<&str> = arg.split("::").collect();
        let fspath = cwd.join(parts[0]);
        if parts[0].is_empty() || arg.starts_with('-') || !fspath.exists() {
            out.push(arg.clone());
            continue;
        }
        let fspath = fspath.canonicalize().unwrap_or(fspath);
        let mut rewritten = None;
        for root in roots {
            if let Ok(rel) = fspath.strip_prefix(root) {
                let name = root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                rewritten = Some(if rel.as_os_str().is_empty() {
                    name
                } else {
                    format!("{name}/{}", rel.display())
                });
                break;
            }
        }
        let Some(first) = rewritten else {
            return Err(CliError::Usage(format!(
                "arg {arg} not relative to an rsync root (give --rsyncdir for it)"
            )));
        };
        parts[0] = &first;
        out.push(parts.join("::"));
    }
    Ok(out)
}

/// The gateway ids the controller will give `specs`, in order (`id=` or `gwN`).
pub fn gateway_views(specs: &[XSpec]) -> Vec<GatewayView> {
    let mut n = 0;
    specs
        .iter()
        .map(|s| {
            let id = s.id.clone().unwrap_or_else(|| {
                n += 1;
                format!("gw{}", n - 1)
            });
            GatewayView {
                id,
                spec: s.raw.clone(),
            }
        })
        .collect()
}

/// Where a spec's copies go; specs with the same destination are synced once.
fn destination(spec: &XSpec, cwd: &Path) -> Option<String> {
    let dir = spec.workdir()?;
    match &spec.gateway {
        Gateway::Popen => Some(cwd.join(dir).display().to_string()),
        Gateway::Ssh { .. } => Some(
            format!(
                "{}\0{}",
                ssh_args(spec).join("\0"),
                ssh_target(spec).unwrap_or_default()
            ) + "\0"
                + dir,
        ),
        Gateway::Socket { .. } | Gateway::Exec { .. } => None,
    }
}

/// Copies every root to every worker that needs it, firing the deprecated
/// `rsyncstart`/`rsyncfinish` hooks around each (root, destination).
pub fn sync_all(
    specs: &[XSpec],
    roots: &[PathBuf],
    ignores: &[String],
    host: &PluginHost,
    cwd: &Path,
) -> Result<(), CliError> {
    let views = gateway_views(specs);
    let mut done = HashSet::new();
    for (i, spec) in specs.iter().enumerate() {
        if !spec.needs_rsync() {
            continue;
        }
        if matches!(spec.gateway, Gateway::Socket { .. }) {
            if done.insert(format!("socket\0{}", spec.raw)) && !roots.is_empty() {
                eprintln!(
                    "xdist: warning: rsync to socket= workers is not supported; {} gets no copy",
                    spec.raw
                );
            }
            continue;
        }
        let Some(dest) = destination(spec, cwd) else {
            continue;
        };
        if !done.insert(dest.clone()) {
            continue;
        }
        let gateways: Vec<GatewayView> = specs
            .iter()
            .zip(&views)
            .filter(|(s, _)| destination(s, cwd).as_deref() == Some(dest.as_str()))
            .map(|(_, v)| v.clone())
            .collect();
        for root in roots {
            let source = root.display().to_string();
            host.rsyncstart(&source, &gateways)
                .map_err(crate::cli::plugins::hook_error)?;
            rsync_one(spec, root, ignores, cwd).map_err(|e| {
                CliError::Usage(format!(
                    "rsync of {source} to {} ({}) failed: {e}",
                    views[i].id, spec.raw
                ))
            })?;
            host.rsyncfinish(&source, &gateways)
                .map_err(crate::cli::plugins::hook_error)?;
        }
    }
    Ok(())
}

/// The `rsync` command for one root and one spec.
pub fn rsync_command(spec: &XSpec, root: &Path, ignores: &[String], cwd: &Path) -> Command {
    let dir = spec.workdir().unwrap_or(".");
    let mut cmd = Command::new("rsync");
    cmd.arg("-a").arg("--delete");
    for pat in DEFAULT_IGNORES
        .iter()
        .copied()
        .chain(ignores.iter().map(String::as_str))
    {
        cmd.arg(format!("--exclude={pat}"));
    }
    // No trailing slash: `<root>` lands as `<dir>/<root name>`.
    cmd.arg(root);
    match ssh_target(spec) {
        Some(target) => {
            let ssh: Vec<String> = std::iter::once("ssh".to_string())
                .chain(ssh_args(spec))
                .map(|a| shell_quote(&a))
                .collect();
            cmd.arg("-e").arg(ssh.join(" "));
            cmd.arg(format!(
                "--rsync-path=mkdir -p {} && rsync",
                shell_quote(dir)
            ));
            cmd.arg(format!("{target}:{dir}/"));
        }
        None => {
            cmd.arg(format!("{}/", cwd.join(dir).display()));
        }
    }
    cmd
}

fn rsync_one(spec: &XSpec, root: &Path, ignores: &[String], cwd: &Path) -> Result<(), String> {
    if !spec.is_remote() {
        let dir = cwd.join(spec.workdir().unwrap_or("."));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let out = rsync_command(spec, root, ignores, cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run rsync ({e}); install rsync"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdist_core::spec::parse_tx;

    #[test]
    fn rewrites_paths_relative_to_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        std::fs::create_dir_all(base.join("tests/sub")).unwrap();
        std::fs::write(base.join("tests/sub/test_a.py"), "").unwrap();
        std::fs::create_dir_all(base.join("other")).unwrap();
        let roots = roots(&[PathBuf::from("tests")], &[], &base).unwrap();
        let args: Vec<String> = [
            "tests",
            "tests/sub/test_a.py::test_x",
            "-k",
            "nothere",
            "-v",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = rewrite_args(&roots, &args, &base).unwrap();
        assert_eq!(
            out,
            [
                "tests",
                "tests/sub/test_a.py::test_x",
                "-k",
                "nothere",
                "-v"
            ]
        );
        let e = rewrite_args(&roots, &["other".to_string()], &base).unwrap_err();
        assert!(
            e.to_string().contains("not relative to an rsync root"),
            "{e}"
        );
        let e = super::roots(&[PathBuf::from("missing")], &[], &base).unwrap_err();
        assert_eq!(e.to_string(), "rsyncdir doesn't exist: 'missing'");
    }

    #[test]
    fn ids_and_commands() {
        let specs = parse_tx(
            &[
                "popen//id=a".to_string(),
                "2*ssh=u@h//ssh_config=/c//chdir=w".to_string(),
            ],
            &[],
        )
        .unwrap();
        let v: Vec<String> = gateway_views(&specs).into_iter().map(|g| g.id).collect();
        assert_eq!(v, ["a", "gw0", "gw1"]);
        let cmd = rsync_command(
            &specs[1],
            Path::new("/src/tests"),
            &["*.log".into()],
            Path::new("/"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-a",
                "--delete",
                "--exclude=.*",
                "--exclude=*.pyc",
                "--exclude=*.pyo",
                "--exclude=*~",
                "--exclude=*.log",
                "/src/tests",
                "-e",
                "ssh -T -o BatchMode=yes -F /c",
                "--rsync-path=mkdir -p w && rsync",
                "u@h:w/"
            ]
        );
    }
}
