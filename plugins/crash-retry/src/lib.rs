//! `crash-retry`: reruns a test whose worker crashed, up to N times.
//!
//! When a worker dies while running a test, xdist calls `handlecrashitem`. This plugin puts
//! the test back in the queue with `mark_test_pending` (so a fresh worker runs it again) and
//! reports the crash as `rerun` instead of `failed`, until the test has crashed `max-reruns`
//! times; the next crash is reported as the usual failure, with a note.
//!
//! Options: `--plugin-opt crash-retry.max-reruns=N` (default 1).

use std::collections::HashMap;

use xdist_plugin_api::{
    export_plugin, CrashScheduler, HookResult, Plugin, PluginOptions, ReportView,
};

pub struct CrashRetry {
    max_reruns: u32,
    reruns: HashMap<String, u32>,
}

impl Plugin for CrashRetry {
    fn new(options: &PluginOptions) -> HookResult<Self> {
        for (key, _) in options.iter() {
            if key != "max-reruns" {
                return Err(format!("unknown option {key:?} (known: max-reruns)"));
            }
        }
        Ok(CrashRetry {
            max_reruns: options.parse("max-reruns")?.unwrap_or(1),
            reruns: HashMap::new(),
        })
    }

    fn handlecrashitem(
        &mut self,
        crashitem: &str,
        report: &mut ReportView,
        sched: &mut dyn CrashScheduler,
    ) -> HookResult<bool> {
        let done = self.reruns.get(crashitem).copied().unwrap_or(0);
        if done >= self.max_reruns {
            report.longrepr.push_str(&format!(
                "\n(crash-retry: crashed {} times, not rerun again)",
                done + 1
            ));
            return Ok(false);
        }
        if let Err(why) = sched.mark_test_pending(crashitem) {
            report
                .longrepr
                .push_str(&format!("\n(crash-retry: cannot rerun: {why})"));
            return Ok(false);
        }
        self.reruns.insert(crashitem.to_owned(), done + 1);
        report.outcome = "rerun".to_owned();
        report.longrepr.push_str(&format!(
            "\n(crash-retry: rerun {}/{})",
            done + 1,
            self.max_reruns
        ));
        Ok(true)
    }
}

export_plugin! {
    plugin: CrashRetry,
    name: "crash-retry",
    version: env!("CARGO_PKG_VERSION"),
    description: "reruns a test whose worker crashed, up to max-reruns times",
    hooks: [handlecrashitem],
}
