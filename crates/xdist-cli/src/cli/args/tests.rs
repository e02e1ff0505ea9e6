//! Unit tests of the argument splitter and validation.

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
