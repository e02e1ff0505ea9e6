//! Every load and hook error case, with deliberately broken libraries built by the tests.
mod common;

use std::path::PathBuf;

use common::{fixture, src};
use xdist_plugin_api::host::{LoadOptions, PluginError, PluginHost, PluginOrigin, PluginSource};
use xdist_plugin_api::xdist_sched::SchedConfig;
use xdist_plugin_api::ConfigView;

fn load_err(sources: &[PluginSource], opts: &LoadOptions) -> PluginError {
    match PluginHost::load_with(sources, opts) {
        Ok(h) => panic!("expected an error, loaded {:?}", h.plugins()),
        Err(e) => e,
    }
}

#[test]
fn missing_file() {
    let path = PathBuf::from("/nonexistent/libnothing.so");
    let e = load_err(
        &[PluginSource::new(&path, PluginOrigin::Env)],
        &LoadOptions::default(),
    );
    assert!(matches!(e, PluginError::MissingFile { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 4);
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/libnothing.so") && msg.contains("XDIST_PLUGINS"),
        "{msg}"
    );
}

#[test]
fn plain_shared_library_is_not_a_plugin() {
    let p = fixture("not_a_plugin");
    let e = load_err(&[src(&p)], &LoadOptions::default());
    assert!(matches!(e, PluginError::NotAPlugin { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 4);
    assert!(e.to_string().contains(&*p.to_string_lossy()), "{e}");
}

#[test]
fn text_file_is_not_a_plugin() {
    let p = common::temp_file("libfake.so");
    std::fs::write(&p, "not an ELF file").expect("write");
    let e = load_err(&[src(&p)], &LoadOptions::default());
    assert!(matches!(e, PluginError::NotAPlugin { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 4);
}

#[test]
fn abi_major_mismatch_names_both_versions() {
    let p = fixture("abi_future");
    let e = load_err(&[src(&p)], &LoadOptions::default());
    match &e {
        PluginError::AbiMismatch { plugin, host, .. } => {
            assert_eq!(plugin, "2.0.0");
            assert_eq!(host, "1.0.0");
        }
        other => panic!("expected AbiMismatch, got {other:?}"),
    }
    assert_eq!(e.exit_code(), 4);
    let msg = e.to_string();
    assert!(
        msg.contains("ABI 2.0.0") && msg.contains("ABI 1.0.0") && msg.contains("rebuild"),
        "{msg}"
    );
}

#[test]
fn two_plugins_with_one_name() {
    let a = fixture("recorder");
    let b = fixture("recorder"); // another copy: another file, same plugin name
    let e = load_err(&[src(&a), src(&b)], &LoadOptions::default());
    match &e {
        PluginError::DuplicateName {
            name,
            first,
            second,
        } => {
            assert_eq!(name, "recorder");
            assert_eq!((first, second), (&a, &b));
        }
        other => panic!("expected DuplicateName, got {other:?}"),
    }
    assert_eq!(e.exit_code(), 4);
    // The same file named twice is loaded once, not a duplicate.
    let host = PluginHost::load(&[src(&a), src(&a)]).expect("same path twice");
    assert_eq!(host.plugins().len(), 1);
    // Disabling the name removes both.
    let host = PluginHost::load_with(
        &[src(&a), src(&b)],
        &LoadOptions {
            disabled: vec!["recorder".into()],
            plugin_opts: vec!["recorder.log=/dev/null".into()],
        },
    )
    .expect("disabled duplicates");
    assert!(host.is_empty());
}

#[test]
fn panic_in_hook_is_an_error_not_an_abort() {
    let p = fixture("panicky");
    let host = PluginHost::load(&[src(&p)]).expect("load panicky");
    let e = host
        .setupnodes(&ConfigView::default(), &["popen".into()])
        .expect_err("setupnodes panics");
    match &e {
        PluginError::HookPanic {
            plugin,
            hook,
            message,
        } => {
            assert_eq!((plugin.as_str(), *hook), ("panicky", "setupnodes"));
            assert!(message.contains("boom in setupnodes"), "{message}");
        }
        other => panic!("expected HookPanic, got {other:?}"),
    }
    assert_eq!(e.exit_code(), 3);
    assert!(
        e.to_string()
            .contains("plugin 'panicky' panicked in hook setupnodes"),
        "{e}"
    );
    // The process survived and the plugin is still callable.
    let e2 = host
        .auto_num_workers(&ConfigView::default())
        .expect_err("returns Err");
    assert!(
        matches!(
            e2,
            PluginError::HookFailed {
                hook: "auto_num_workers",
                ..
            }
        ),
        "{e2:?}"
    );
    assert_eq!(e2.exit_code(), 3);
}

#[test]
fn panic_inside_a_plugin_scheduler_is_recorded() {
    let p = fixture("panicky");
    let host = PluginHost::load(&[src(&p)]).expect("load panicky");
    let mut sched = host
        .make_scheduler(&ConfigView::default(), &SchedConfig::default())
        .expect("make_scheduler")
        .expect("panicky answers");
    assert_eq!(sched.name(), "PanicScheduling");
    assert!(host.take_error().is_none());
    let mut out = Vec::new();
    sched.schedule(&mut out);
    assert!(out.is_empty());
    let e = host.take_error().expect("recorded error");
    assert!(
        matches!(
            e,
            PluginError::HookPanic {
                hook: "Scheduling::schedule",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 3);
    // Disabled after the failure: finished, nothing pending, no more calls into the plugin.
    assert!(sched.tests_finished());
    assert!(!sched.has_pending());
    sched.schedule(&mut out);
    assert!(host.take_error().is_none());
}

#[test]
fn panic_and_rejection_in_configure() {
    let p = fixture("panicky");
    let e = load_err(
        &[src(&p)],
        &LoadOptions {
            plugin_opts: vec!["panicky.panic-in-new=1".into()],
            ..Default::default()
        },
    );
    assert!(
        matches!(
            e,
            PluginError::HookPanic {
                hook: "configure",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.exit_code(), 3);
    let p = fixture("panicky");
    let e = load_err(
        &[src(&p)],
        &LoadOptions {
            plugin_opts: vec!["panicky.reject=yes".into()],
            ..Default::default()
        },
    );
    assert!(matches!(e, PluginError::Configure { .. }), "{e:?}");
    assert_eq!(e.exit_code(), 4);
}

#[test]
fn bad_plugin_options() {
    let p = fixture("recorder");
    for (opt, why) in [
        ("recorder", "expected NAME.KEY=VALUE"),
        ("recorder=1", "expected NAME.KEY=VALUE"),
        (".key=1", "expected NAME.KEY=VALUE"),
        ("nosuch.key=1", "no plugin named 'nosuch'"),
    ] {
        let e = load_err(
            &[src(&p)],
            &LoadOptions {
                plugin_opts: vec![opt.into()],
                ..Default::default()
            },
        );
        assert!(matches!(e, PluginError::BadOption { .. }), "{opt}: {e:?}");
        assert!(e.to_string().contains(why), "{opt}: {e}");
        assert_eq!(e.exit_code(), 4);
    }
}
