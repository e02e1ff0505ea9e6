//! `xdist --version`, `xdist --help` and the hidden `xdist --generate man|bash|zsh|fish` (what
//! `make install` and the Debian packages ship). Help, man page and completions all come from
//! the same clap definitions ([`crate::cli::args::RawArgs`]), so they cannot disagree.

use std::io::Write;

use clap::{Arg, ArgAction, Command, CommandFactory};
use xdist_plugin_api::abi::{ABI_MAJOR, ABI_REVISION};

use crate::cli::args::RawArgs;
use crate::error::CliError;

/// `0.1.0 (plugin ABI 1.0)`: the binary's semantic version and the plugin ABI it hosts.
pub fn version() -> String {
    format!(
        "{} (plugin ABI {ABI_MAJOR}.{ABI_REVISION})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The documented command: xdist's own options, the pytest arguments and `xdist plugins`.
/// Only rendered (help, man page, completions), never used for parsing.
pub fn command() -> Command {
    RawArgs::command()
        .version(version())
        .long_about(
            "Runs a pytest suite across many CPUs, like `pytest -n N` with pytest-xdist, but the \
             controller is a native program: it starts Python workers, schedules tests, survives \
             crashing and hanging workers and reports like pytest.\n\n\
             Every argument xdist does not own is passed to pytest unchanged and in order, so \
             `xdist -n 4 tests/ -k slow -x` runs `pytest tests/ -k slow -x` on 4 workers. \
             xdist options may also come from pytest's `addopts` (ini file or PYTEST_ADDOPTS).",
        )
        .after_help(
            "Every argument xdist does not own is passed to pytest unchanged and in order,\n\
             e.g. `xdist -n 4 tests/ -k slow -x`. pytest's own options: `python -m pytest --help`.\n\
             `xdist plugins --help` lists the plugins command; `man xdist` has the details.",
        )
        .arg(
            Arg::new("pytest_args")
                .value_name("PYTEST_ARGS")
                .num_args(0..)
                .action(ArgAction::Append)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .value_hint(clap::ValueHint::AnyPath)
                .help("Arguments for pytest (test paths, -k, -x, ...), passed on unchanged"),
        )
        .disable_help_subcommand(true)
        .subcommands([
            subcommand::<crate::cli::merge::MergeJunitArgs>("merge-junit"),
            subcommand::<crate::cli::merge::MergeDurationsArgs>("merge-durations"),
            subcommand::<crate::cli::plugins::PluginsArgs>("plugins"),
            subcommand::<crate::cli::serve::ServeArgs>("serve"),
        ])
}

/// A subcommand as documented: the same clap definition its arguments are parsed with.
fn subcommand<T: CommandFactory>(name: &'static str) -> Command {
    T::command().name(name).bin_name(format!("xdist {name}"))
}

/// Handles `--generate WHAT`, `--version`/`-V` and `--help`/`-h` (before any `--`); `None`
/// for everything else.
pub fn early(argv: &[String]) -> Option<Result<i32, CliError>> {
    if argv.first().map(String::as_str) == Some("--generate") {
        return Some(generate(argv.get(1).map(String::as_str)));
    }
    let own = argv.iter().take_while(|a| *a != "--");
    let mut help = None;
    for a in own {
        match a.as_str() {
            "-V" | "--version" => {
                outln!("xdist {}", version());
                return Some(Ok(0));
            }
            "-h" => help = help.or(Some(false)),
            "--help" => help = Some(true),
            _ => {}
        }
    }
    let long = help?;
    let mut cmd = command();
    let text = if long {
        cmd.render_long_help()
    } else {
        cmd.render_help()
    };
    out!("{text}");
    Some(Ok(0))
}

fn generate(what: Option<&str>) -> Result<i32, CliError> {
    let mut out = Vec::new();
    let mut cmd = command();
    let shell = match what {
        Some("man") => {
            write_man(&mut out).map_err(|e| CliError::Internal(e.to_string()))?;
            None
        }
        Some("bash") => Some(clap_complete::Shell::Bash),
        Some("zsh") => Some(clap_complete::Shell::Zsh),
        Some("fish") => Some(clap_complete::Shell::Fish),
        _ => {
            return Err(CliError::Usage(
                "--generate needs one of: man, bash, zsh, fish".into(),
            ))
        }
    };
    if let Some(shell) = shell {
        clap_complete::generate(shell, &mut cmd, "xdist", &mut out);
    }
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::Internal(format!("failed to write to stdout: {e}")))?;
    Ok(0)
}

/// xdist(1): clap_mangen's sections plus the subcommands, files, environment and exit status.
fn write_man(out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command())
        .section("1")
        .manual("xdist manual")
        .source(format!("xdist {}", env!("CARGO_PKG_VERSION")));
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    write_commands(out, &command());
    out.extend_from_slice(EXTRA_SECTIONS.as_bytes());
    man.render_version_section(out)?;
    Ok(())
}

/// The COMMANDS section: each subcommand's usage, description and arguments, from its clap
/// definition (clap_mangen renders subcommands only as separate pages).
fn write_commands(out: &mut Vec<u8>, cmd: &Command) {
    let mut text = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands() {
        let mut sub = sub.clone();
        let usage = sub.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage:").trim();
        let bin = sub.get_bin_name().unwrap_or(sub.get_name()).to_string();
        let rest = usage.strip_prefix(bin.as_str()).unwrap_or(usage).trim();
        let about = sub.get_long_about().or(sub.get_about());
        let about = about.map(|a| a.to_string()).unwrap_or_default();
        text += &format!(
            ".TP\n\\fB{}\\fR {}\n{}\n",
            roff(&bin),
            roff(rest),
            roff(&about)
        );
        text += ".RS\n";
        for arg in sub.get_arguments().filter(|a| documented(a)) {
            let value = match arg.get_action().takes_values() {
                true => arg
                    .get_value_names()
                    .map(|v| v.join(" "))
                    .unwrap_or_default(),
                false => String::new(),
            };
            let name = match arg.get_long() {
                Some(long) if value.is_empty() => format!("\\fB--{long}\\fR"),
                Some(long) => format!("\\fB--{long}\\fR \\fI{value}\\fR"),
                None => format!("\\fI{value}\\fR"),
            };
            let help = arg.get_long_help().or(arg.get_help());
            let help = help.map(|h| h.to_string()).unwrap_or_default();
            text += &format!(".TP\n{}\n{}\n", roff(&name), roff(&help));
        }
        text += ".RE\n";
    }
    out.extend_from_slice(text.as_bytes());
}

/// An argument the documentation lists (not clap's own `--help`/`--version`, not hidden).
fn documented(arg: &Arg) -> bool {
    !arg.is_hide_set() && !matches!(arg.get_id().as_str(), "help" | "version")
}

/// Text for roff: dashes are `\-`, one line, not starting with a control character (the
/// callers' `\fB`/`\fI` font escapes pass through).
fn roff(text: &str) -> String {
    let text = text.replace('\n', " ").replace('-', "\\-");
    match text.chars().next() {
        Some('.' | '\'') => format!("\\&{text}"),
        _ => text,
    }
}

const EXTRA_SECTIONS: &str = r#".SH PLUGINS
Plugins are shared libraries built against the \fBxdist\-plugin\-api\fR crate. They are enabled,
and loaded in this order, by \fB\-\-plugin\fR arguments, \fBXDIST_PLUGINS\fR and the \fBplugins\fR
list of \fB[tool.xdist]\fR in pyproject.toml: paths, or names of plugins installed in the user
or system plugin directories (see \fBFILES\fR), which are available, not enabled. \fB\-p no:\fR\fINAME\fR disables a plugin; \fB\-\-plugin\-opt\fR
\fINAME\fR.\fIKEY\fR=\fIVALUE\fR (or \fBplugin\-opts\fR in \fB[tool.xdist]\fR) configures one.
A plugin built for another plugin ABI major version is refused.
.SH FILES
.TP
\fI$XDG_DATA_HOME/xdist/plugins\fR (default \fI~/.local/share/xdist/plugins\fR)
User plugin directory.
.TP
\fI<directory of the xdist binary>/../lib/xdist/plugins\fR
System plugin directory of this installation (e.g. \fI/usr/local/lib/xdist/plugins\fR).
.TP
\fI/usr/lib/xdist/plugins\fR
System plugin directory of the distribution's packages.
.TP
\fI.pytest_cache\fR (pytest's \fBcache_dir\fR)
Test durations and collection sizes of earlier runs.
.SH ENVIRONMENT
.TP
\fBXDIST_PYTHON\fR
Python interpreter for the workers, unless \fB\-\-python\fR is given.
.TP
\fBVIRTUAL_ENV\fR
\fI$VIRTUAL_ENV/bin/python\fR is used when \fBXDIST_PYTHON\fR is not set.
.TP
\fBXDIST_PLUGINS\fR
Plugin libraries to load, separated by colons.
.TP
\fBPYTEST_ADDOPTS\fR
Extra arguments, as for pytest; xdist options in it are honoured.
.TP
\fBPYTEST_XDIST_AUTO_NUM_WORKERS\fR
Worker count for \fB\-n auto\fR, as with pytest\-xdist.
.TP
\fBNO_COLOR\fR, \fBFORCE_COLOR\fR, \fBPY_COLORS\fR, \fBCOLUMNS\fR
Terminal colour and width.
.TP
\fBCIRCLE_NODE_INDEX\fR/\fBCIRCLE_NODE_TOTAL\fR, \fBCI_NODE_INDEX\fR/\fBCI_NODE_TOTAL\fR, \fBBUILDKITE_PARALLEL_JOB\fR/\fBBUILDKITE_PARALLEL_JOB_COUNT\fR, \fBTEST_SHARD_INDEX\fR/\fBTEST_TOTAL_SHARDS\fR
The job's shard for \fB\-\-shard auto\fR (CircleCI, GitLab CI counting from 1, Buildkite, Bazel;
looked up Bazel first). With Bazel's, \fBTEST_SHARD_STATUS_FILE\fR is touched and the JUnit
report goes to \fBXML_OUTPUT_FILE\fR.
.SH "EXIT STATUS"
pytest's exit codes:
0 all tests passed,
1 some tests failed,
2 interrupted,
3 internal error (also a plugin failing in a hook),
4 usage error (also a plugin failing to load),
5 no tests collected.
.SH "SEE ALSO"
\fBpytest\fR(1),
\fIhttps://pytest\-xdist.readthedocs.io\fR,
\fI<prefix>/share/doc/xdist/plugins.md\fR (writing plugins).
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_command_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn version_names_the_plugin_abi() {
        assert_eq!(
            version(),
            format!(
                "{} (plugin ABI {ABI_MAJOR}.{ABI_REVISION})",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[test]
    fn man_page_documents_every_option() {
        let mut out = Vec::new();
        write_man(&mut out).unwrap();
        let man = String::from_utf8(out).unwrap().replace("\\-", "-");
        let mut cmd = command();
        cmd.build();
        let mut n = 0;
        for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
            if let Some(l) = arg.get_long() {
                assert!(man.contains(&format!("--{l}")), "man page lacks --{l}");
                n += 1;
            }
            if let Some(s) = arg.get_short() {
                assert!(man.contains(&format!("-{s}")), "man page lacks -{s}");
            }
        }
        assert!(n >= 15, "only {n} long options");
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "FILES",
            "ENVIRONMENT",
            "EXIT STATUS",
        ] {
            assert!(
                man.contains(&format!(".SH {section}"))
                    || man.contains(&format!(".SH \"{section}\"")),
                "{section}"
            );
        }
    }

    /// Every option of the command and of each subcommand, from its one clap definition, is
    /// in that command's `--help`, the man page and the bash, zsh and fish completions.
    #[test]
    fn every_flag_is_in_help_man_page_and_completions() {
        let mut out = Vec::new();
        write_man(&mut out).unwrap();
        let man = String::from_utf8(out).unwrap().replace("\\-", "-");
        let completions: Vec<(clap_complete::Shell, String)> = [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ]
        .into_iter()
        .map(|shell| {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command(), "xdist", &mut text);
            (shell, String::from_utf8(text).unwrap())
        })
        .collect();
        let top = command();
        let commands = std::iter::once(top.clone()).chain(top.get_subcommands().cloned());
        let mut n = 0;
        for mut cmd in commands {
            let help = cmd.render_long_help().to_string();
            let name = cmd.get_name().to_string();
            for arg in cmd.get_arguments().filter(|a| documented(a)) {
                let Some(long) = arg.get_long() else { continue };
                n += 1;
                assert!(
                    help.contains(&format!("--{long}")),
                    "{name} --help lacks --{long}"
                );
                assert!(
                    man.contains(&format!("--{long}")),
                    "man page lacks {name} --{long}"
                );
                for (shell, text) in &completions {
                    // fish spells long options without their dashes (`-l numprocesses`).
                    assert!(
                        text.contains(long),
                        "{shell} completion lacks {name} --{long}"
                    );
                }
                if let Some(short) = arg.get_short() {
                    assert!(
                        help.contains(&format!("-{short}")),
                        "{name} --help lacks -{short}"
                    );
                }
            }
        }
        assert!(n >= 25, "only {n} long options");
        for (_, text) in &completions {
            assert!(text.contains("token-file"), "serve's options are completed");
        }
    }

    #[test]
    fn every_subcommand_is_in_help_man_page_and_completions() {
        let mut out = Vec::new();
        write_man(&mut out).unwrap();
        let man = String::from_utf8(out).unwrap().replace("\\-", "-");
        let help = command().render_help().to_string();
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut command(),
            "xdist",
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 3, "{names:?}");
        for name in names {
            assert!(help.contains(&name), "--help lacks {name}");
            assert!(
                man.contains(&format!("xdist {name}")),
                "man page lacks {name}"
            );
            assert!(bash.contains(&name), "bash completion lacks {name}");
        }
    }
}
