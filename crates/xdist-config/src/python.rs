//! Finding the Python interpreter that runs the workers (SPEC 1): `--python PATH`, else
//! `XDIST_PYTHON`, else the environment the `xdist` binary was installed in (a venv or conda
//! env whose `bin/` holds it and pytest: `pip install xdist-rs` there), else
//! `$VIRTUAL_ENV/bin/python`, else `python3` then `python` on `PATH`.
//!
//! The binary's own environment comes before `$VIRTUAL_ENV` for the reason any console
//! script's shebang does: running `venv/bin/xdist` (or `venv/bin/pytest -n 2`, which hands
//! off to it) names that venv, whatever venv happens to be activated. An environment without
//! pytest (the venv of `pipx install` / `uv tool install`) is skipped.
//!
//! Nothing is spawned here: whether pytest is importable is checked by the worker at startup.
//! Paths are returned as found, never canonicalized (a venv's `bin/python` is a symlink whose
//! location is what makes it the venv's interpreter).

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

use thiserror::Error;

use xdist_core::env::{VIRTUAL_ENV, XDIST_PYTHON};

/// Where the interpreter setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonSource {
    /// `--python`.
    Option,
    /// `XDIST_PYTHON`.
    XdistPython,
    /// `VIRTUAL_ENV`.
    VirtualEnv,
}

/// The interpreter of the environment the executable `exe` was installed in: `exe` lies in
/// `<env>/bin/`, `<env>` is a venv (`pyvenv.cfg`) or a conda env (`conda-meta/`), and its
/// `bin/` has `python` (or `python3`) and pytest's `pytest` script. `None` otherwise.
pub fn installed_env_python(exe: &Path) -> Option<PathBuf> {
    let bin = exe.parent()?;
    let env = bin.parent()?;
    if !env.join("pyvenv.cfg").is_file() && !env.join("conda-meta").is_dir() {
        return None;
    }
    check_file(&bin.join("pytest")).ok()?;
    ["python", "python3"]
        .iter()
        .map(|name| bin.join(name))
        .find(|p| check_file(p).is_ok())
}

/// What is wrong with a named interpreter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PythonProblem {
    /// The path does not exist.
    NoSuchFile,
    /// The path is a directory.
    IsDirectory,
    /// The file is not executable.
    NotExecutable,
    /// A bare name that is not on `PATH`.
    NotOnPath,
    /// An empty value.
    Empty,
}

impl fmt::Display for PythonProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PythonProblem::NoSuchFile => "no such file",
            PythonProblem::IsDirectory => "is a directory",
            PythonProblem::NotExecutable => "not executable",
            PythonProblem::NotOnPath => "not found on PATH",
            PythonProblem::Empty => "empty value",
        })
    }
}

/// Interpreter discovery failures; each displays as one line that says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PythonError {
    /// `--python`, `XDIST_PYTHON` or `VIRTUAL_ENV` names something unusable.
    #[error("{}", unusable_message(source_kind, given, problem))]
    Unusable {
        source_kind: PythonSource,
        given: String,
        problem: PythonProblem,
    },
    /// Nothing was configured and neither `python3` nor `python` is on `PATH`.
    #[error(
        "failed to find a Python interpreter: no python3 or python on PATH; \
         pass --python PATH or set XDIST_PYTHON"
    )]
    NotFound,
}

fn unusable_message(source: &PythonSource, given: &str, problem: &PythonProblem) -> String {
    const HINT: &str = "a Python interpreter that has pytest installed";
    match source {
        PythonSource::Option => {
            format!("failed to use --python {given}: {problem}; pass the path of {HINT}")
        }
        PythonSource::XdistPython => format!(
            "failed to use {XDIST_PYTHON}={given}: {problem}; set {XDIST_PYTHON} to the path of \
             {HINT}, or unset it"
        ),
        PythonSource::VirtualEnv => format!(
            "failed to use the virtualenv's interpreter {given}: {problem}; activate a valid \
             virtualenv, unset {VIRTUAL_ENV}, or pass --python PATH"
        ),
    }
}

/// Finds the interpreter: `explicit` (`--python`), else the environment and `PATH`.
pub fn find_python(explicit: Option<&OsStr>) -> Result<PathBuf, PythonError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let installed = std::env::current_exe()
        .ok()
        .and_then(|exe| installed_env_python(&exe));
    find_python_with(
        explicit,
        std::env::var_os(XDIST_PYTHON).as_deref(),
        installed.as_deref(),
        std::env::var_os(VIRTUAL_ENV).as_deref(),
        std::env::var_os(xdist_core::env::PATH).as_deref(),
        &cwd,
    )
}

/// [`find_python`] with the environment given: the values of `XDIST_PYTHON`, the
/// [`installed_env_python`] of the binary, `VIRTUAL_ENV` and `PATH`, and the directory
/// relative paths resolve against.
pub fn find_python_with(
    explicit: Option<&OsStr>,
    xdist_python: Option<&OsStr>,
    installed_env: Option<&Path>,
    virtual_env: Option<&OsStr>,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, PythonError> {
    if let Some(given) = explicit {
        return resolve(given, PythonSource::Option, path_var, cwd);
    }
    if let Some(given) = xdist_python.filter(|v| !v.is_empty()) {
        return resolve(given, PythonSource::XdistPython, path_var, cwd);
    }
    if let Some(python) = installed_env {
        return Ok(python.to_path_buf());
    }
    if let Some(venv) = virtual_env.filter(|v| !v.is_empty()) {
        let candidate = cwd.join(venv).join("bin").join("python");
        return check_file(&candidate)
            .map(|()| candidate.clone())
            .map_err(|problem| PythonError::Unusable {
                source_kind: PythonSource::VirtualEnv,
                given: candidate.display().to_string(),
                problem,
            });
    }
    ["python3", "python"]
        .iter()
        .find_map(|name| search_path(OsStr::new(name), path_var, cwd))
        .ok_or(PythonError::NotFound)
}

/// A path (anything with a `/`) is used as is; a bare name is looked up on `PATH`.
fn resolve(
    given: &OsStr,
    source: PythonSource,
    path_var: Option<&OsStr>,
    cwd: &Path,
) -> Result<PathBuf, PythonError> {
    let err = |problem| PythonError::Unusable {
        source_kind: source.clone(),
        given: given.to_string_lossy().into_owned(),
        problem,
    };
    if given.is_empty() {
        return Err(err(PythonProblem::Empty));
    }
    if given.as_encoded_bytes().contains(&b'/') {
        let candidate = cwd.join(given);
        check_file(&candidate).map_err(err)?;
        return Ok(candidate);
    }
    search_path(given, path_var, cwd).ok_or_else(|| err(PythonProblem::NotOnPath))
}

/// The first executable file `name` in the `PATH` entries (an empty entry is the cwd).
fn search_path(name: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .map(|dir| cwd.join(dir).join(name))
        .find(|candidate| check_file(candidate).is_ok())
}

fn check_file(p: &Path) -> Result<(), PythonProblem> {
    let meta = std::fs::metadata(p).map_err(|_| PythonProblem::NoSuchFile)?;
    if meta.is_dir() {
        return Err(PythonProblem::IsDirectory);
    }
    if !is_executable(&meta) {
        return Err(PythonProblem::NotExecutable);
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.is_file() && meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    meta.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn exe(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, "#!/bin/sh\n").unwrap();
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn os(s: &Path) -> OsString {
        s.as_os_str().to_owned()
    }

    #[test]
    fn precedence() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let (a, b, venv, bin1, bin2) = (
            r.join("a/python"),
            r.join("b/py"),
            r.join("venv"),
            r.join("bin1"),
            r.join("bin2"),
        );
        exe(&a);
        exe(&b);
        exe(&venv.join("bin/python"));
        exe(&bin1.join("python"));
        exe(&bin2.join("python3"));
        let path = std::env::join_paths([&bin1, &bin2]).unwrap();
        let find = |e: Option<&OsStr>, x: Option<&OsStr>, v: Option<&OsStr>| {
            find_python_with(e, x, None, v, Some(&path), r)
        };
        let (oa, ob, ov) = (os(&a), os(&b), os(&venv));
        assert_eq!(find(Some(&oa), Some(&ob), Some(&ov)).unwrap(), a);
        assert_eq!(find(None, Some(&ob), Some(&ov)).unwrap(), b);
        assert_eq!(
            find(None, Some(OsStr::new("")), Some(&ov)).unwrap(),
            venv.join("bin/python")
        );
        // python3 anywhere on PATH beats python earlier on PATH.
        assert_eq!(find(None, None, None).unwrap(), bin2.join("python3"));
        let only_python = os(&bin1);
        assert_eq!(
            find_python_with(None, None, None, None, Some(&only_python), r).unwrap(),
            bin1.join("python")
        );
        // Relative paths resolve against cwd; bare names go through PATH.
        assert_eq!(find(Some(OsStr::new("a/python")), None, None).unwrap(), a);
        assert_eq!(
            find(Some(OsStr::new("python3")), None, None).unwrap(),
            bin2.join("python3")
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let empty_path = os(&r.join("nothing"));
        let e = find_python_with(Some(OsStr::new("/x/y")), None, None, None, None, r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to use --python /x/y: no such file; pass the path of a Python interpreter \
             that has pytest installed"
        );
        let e = find_python_with(None, None, None, None, Some(&empty_path), r).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to find a Python interpreter: no python3 or python on PATH; pass --python \
             PATH or set XDIST_PYTHON"
        );
        let e = find_python_with(
            Some(OsStr::new("pythonX")),
            None,
            None,
            None,
            Some(&empty_path),
            r,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("--python pythonX: not found on PATH"),
            "{e}"
        );
        let e = find_python_with(None, Some(&os(r)), None, None, None, r).unwrap_err();
        assert!(
            e.to_string().contains("is a directory; set XDIST_PYTHON"),
            "{e}"
        );
        fs::write(r.join("plain"), "").unwrap();
        let e =
            find_python_with(Some(&os(&r.join("plain"))), None, None, None, None, r).unwrap_err();
        assert!(e.to_string().contains("not executable"), "{e}");
        let e =
            find_python_with(None, None, None, Some(&os(&r.join("venv"))), None, r).unwrap_err();
        assert!(e.to_string().contains("unset VIRTUAL_ENV"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    /// A venv whose `bin/` holds xdist and pytest (what `pip install xdist-rs` into it makes).
    fn venv_with(root: &Path, scripts: &[&str]) -> PathBuf {
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        for s in scripts {
            exe(&root.join("bin").join(s));
        }
        root.join("bin/xdist")
    }

    #[test]
    fn installed_env_is_a_venv_or_conda_env_with_pytest() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let xdist = venv_with(&r.join("v"), &["xdist", "python", "pytest"]);
        assert_eq!(installed_env_python(&xdist), Some(r.join("v/bin/python")));
        // Only python3 (some venv tools): that one.
        let xdist = venv_with(&r.join("v3"), &["xdist", "python3", "pytest"]);
        assert_eq!(installed_env_python(&xdist), Some(r.join("v3/bin/python3")));
        // A pipx / `uv tool` venv: no pytest there, so not the tests' interpreter.
        let xdist = venv_with(&r.join("tool"), &["xdist", "python"]);
        assert_eq!(installed_env_python(&xdist), None);
        // A prefix that is no environment (/usr/local/bin, ~/.local/bin).
        for s in ["xdist", "python", "pytest"] {
            exe(&r.join("prefix/bin").join(s));
        }
        assert_eq!(installed_env_python(&r.join("prefix/bin/xdist")), None);
        // A conda env has conda-meta/ instead of pyvenv.cfg.
        fs::create_dir_all(r.join("prefix/conda-meta")).unwrap();
        assert_eq!(
            installed_env_python(&r.join("prefix/bin/xdist")),
            Some(r.join("prefix/bin/python"))
        );
        assert_eq!(installed_env_python(Path::new("/")), None);
    }

    #[test]
    fn installed_env_comes_after_explicit_choices_and_before_virtual_env() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let own = r.join("own/bin/python");
        let (chosen, active, on_path) = (r.join("chosen"), r.join("active"), r.join("path"));
        exe(&own);
        exe(&chosen);
        exe(&active.join("bin/python"));
        exe(&on_path.join("python3"));
        let path = os(&on_path);
        let find = |e: Option<&OsStr>, x: Option<&OsStr>, i: Option<&Path>, v: Option<&OsStr>| {
            find_python_with(e, x, i, v, Some(&path), r)
        };
        let (oc, oa) = (os(&chosen), os(&active));
        assert_eq!(
            find(Some(&oc), None, Some(&own), Some(&oa)).unwrap(),
            chosen
        );
        assert_eq!(
            find(None, Some(&oc), Some(&own), Some(&oa)).unwrap(),
            chosen
        );
        // An activated venv does not override the venv `xdist` was started from.
        assert_eq!(find(None, None, Some(&own), Some(&oa)).unwrap(), own);
        assert_eq!(find(None, None, Some(&own), None).unwrap(), own);
        assert_eq!(
            find(None, None, None, Some(&oa)).unwrap(),
            active.join("bin/python")
        );
        assert_eq!(
            find(None, None, None, None).unwrap(),
            on_path.join("python3")
        );
    }
}
