//! Every environment variable name lives in `xdist_core::env`: this scans the workspace's Rust
//! sources (`crates/`, `plugins/`, `bench/`; not the `tests/` directories or inline test
//! modules, which set up the environment of the programs they run) for a string literal handed
//! to `env::var`, `var_os`, `Command::env`, `env_remove`, `set_var` or `remove_var`, and for a
//! `&str` constant spelling a name `env.rs` defines, anywhere but `env.rs`. The Python side
//! (the embedded worker, the wheel's plugin) spells names itself: each must be defined there.

use std::path::{Path, PathBuf};

/// The calls whose first argument is a variable name.
const CALLS: &[&str] = &[
    "var",
    "var_os",
    "env",
    "env_remove",
    "set_var",
    "remove_var",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(NAME, value)` of every `pub const NAME: &str = "value";` in `env.rs`.
fn defined_names() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join("crates/xdist-core/src/env.rs"))
        .expect("env.rs");
    text.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            let (value, _) = rest.split_once('"')?;
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

/// The string literal starting `text` (after blanks and newlines), if one does.
fn leading_literal(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('"')?;
    rest.split_once('"').map(|(lit, _)| lit)
}

/// The variable names `source` spells as literals where it should name an `env` constant.
fn literal_names(source: &str, defined: &[(String, String)]) -> Vec<String> {
    // Inline test modules come last in a file and may set up a child's environment freely.
    let source = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut found = Vec::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (pos, _) in source.match_indices('(') {
        let before = &source[..pos];
        let start = before.trim_end_matches(ident).len();
        let name = &before[start..];
        let preceded_ok = before[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !ident(c));
        if CALLS.contains(&name) && preceded_ok {
            if let Some(lit) = leading_literal(&source[pos + 1..]) {
                found.push(lit.to_string());
            }
        }
    }
    for (pos, _) in source.match_indices(": &str =") {
        if let Some(lit) = leading_literal(&source[pos + ": &str =".len()..]) {
            if defined.iter().any(|(_, v)| v == lit) {
                found.push(lit.to_string());
            }
        }
    }
    found
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if !matches!(name.to_str(), Some("target" | "tests" | "fuzz")) {
                rust_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_variable_name_is_spelled_outside_env_rs() {
    let root = workspace_root();
    let defined = defined_names();
    let env_rs = root
        .join("crates/xdist-core/src/env.rs")
        .canonicalize()
        .unwrap();
    let mut files = Vec::new();
    for dir in ["crates", "plugins", "bench"] {
        rust_sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 30, "found only {} sources", files.len());
    let mut stray = Vec::new();
    for file in files {
        if file.canonicalize().ok().as_ref() == Some(&env_rs) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for name in literal_names(&text, &defined) {
            let rel = file
                .strip_prefix(&root)
                .unwrap_or(&file)
                .display()
                .to_string();
            stray.push(format!("{rel}: \"{name}\""));
        }
    }
    assert!(
        stray.is_empty(),
        "environment variable names spelled outside crates/xdist-core/src/env.rs (add a \
         constant there and use it):\n{}",
        stray.join("\n")
    );
}

/// The variable names Python `source` spells: `os.environ["X"]`, `os.environ.get("X"`,
/// `.pop("X"`, `os.getenv("X"` and constants `..._ENV = "X"`.
fn python_names(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for opener in [
        "os.environ[",
        "os.environ.get(",
        "os.environ.pop(",
        "os.environ.setdefault(",
        "os.getenv(",
        "_ENV = ",
    ] {
        for (pos, _) in source.match_indices(opener) {
            if let Some(lit) = leading_literal(&source[pos + opener.len()..]) {
                found.push(lit.to_string());
            }
        }
    }
    found
}

#[test]
fn every_name_the_python_side_uses_is_in_env_rs() {
    let root = workspace_root();
    let defined = defined_names();
    let mut missing = Vec::new();
    let mut files = 0;
    for dir in ["crates/xdist-worker/python", "python/xdist_rs"] {
        let entries = std::fs::read_dir(root.join(dir)).expect(dir);
        for path in entries.flatten().map(|e| e.path()) {
            if path.extension().is_none_or(|e| e != "py") {
                continue;
            }
            files += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            for name in python_names(&text) {
                if !defined.iter().any(|(_, v)| *v == name) {
                    let rel = path.strip_prefix(&root).unwrap_or(&path);
                    missing.push(format!("{}: \"{name}\"", rel.display()));
                }
            }
        }
    }
    assert!(files >= 6, "found only {files} Python files");
    assert!(
        missing.is_empty(),
        "environment variables the Python side uses without a constant in \
         crates/xdist-core/src/env.rs:\n{}",
        missing.join("\n")
    );
    let sample = "os.environ[\"A\"] = 1\nos.environ.get(\"B\", 2)\nX_ENV = \"C\"\nf(\"D\")";
    assert_eq!(python_names(sample), ["A", "B", "C"]);
}

#[test]
fn the_scanner_finds_each_kind_of_use() {
    let defined = vec![("HOME".to_string(), "HOME".to_string())];
    let source = r#"
        let a = std::env::var("ONE");
        let b = env::var_os(
            "TWO",
        );
        cmd.env("THREE", "x").env_remove("FOUR");
        std::env::set_var("FIVE", "1");
        pub const MY_HOME: &str = "HOME";
        let fine = std::env::var(xdist_core::env::HOME);
        let other = my_var("NOT_A_NAME");
        #[cfg(test)]
        mod tests { fn t() { cmd.env("IN_TESTS", "1"); } }
    "#;
    assert_eq!(
        literal_names(source, &defined),
        ["ONE", "TWO", "THREE", "FOUR", "FIVE", "HOME"]
    );
}

#[test]
fn each_constant_is_named_as_its_variable() {
    let defined = defined_names();
    assert!(defined.len() > 40, "{defined:?}");
    for (name, value) in &defined {
        assert_eq!(name, value, "env.rs: {name} should be \"{name}\"");
    }
    let mut values: Vec<&String> = defined.iter().map(|(_, v)| v).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len(), defined.len(), "a name is defined twice");
}
