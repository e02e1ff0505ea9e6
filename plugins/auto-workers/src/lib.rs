//! `auto-workers`: the worker count for `-n auto` / `-n logical` from available memory and
//! the CPU quota.
//!
//! workers = max(1, min(MemAvailable / mb-per-worker, CPUs)), where CPUs is the cgroup CPU
//! quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us / cpu.cfs_period_us`, rounded up) when
//! there is one, else the CPUs this process may run on; optionally capped by `max`.
//!
//! Options (`--plugin-opt auto-workers.KEY=VALUE`):
//! - `mb-per-worker` (default 512): memory one worker needs, in MiB;
//! - `max`: an upper bound;
//! - `meminfo` (default `/proc/meminfo`), `cgroup-root` (default `/sys/fs/cgroup`): where to
//!   read from (tests point these at fixtures).

use std::path::{Path, PathBuf};

use xdist_plugin_api::{export_plugin, ConfigView, HookResult, Plugin, PluginOptions};

pub struct AutoWorkers {
    mb_per_worker: u64,
    max: Option<usize>,
    meminfo: PathBuf,
    cgroup_root: PathBuf,
}

/// `MemAvailable` in MiB, from a `/proc/meminfo`-format text.
pub fn mem_available_mb(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix("MemAvailable:")?;
        let mut parts = rest.split_whitespace();
        let value: u64 = parts.next()?.parse().ok()?;
        let unit = parts.next().unwrap_or("kB");
        Some(match unit {
            "kB" | "KB" | "kb" => value / 1024,
            "MB" | "mB" => value,
            _ => value / (1024 * 1024),
        })
    })
}

/// The CPU quota in whole CPUs (rounded up), if the cgroup sets one.
pub fn cpu_quota(cgroup_root: &Path) -> Option<usize> {
    let ceil = |quota: f64, period: f64| -> Option<usize> {
        (quota > 0.0 && period > 0.0).then(|| ((quota / period).ceil() as usize).max(1))
    };
    if let Ok(text) = std::fs::read_to_string(cgroup_root.join("cpu.max")) {
        let mut parts = text.split_whitespace();
        let quota = parts.next()?;
        if quota == "max" {
            return None;
        }
        let period = parts.next().unwrap_or("100000");
        return ceil(quota.parse().ok()?, period.parse().ok()?);
    }
    let read = |name: &str| -> Option<f64> {
        std::fs::read_to_string(cgroup_root.join("cpu").join(name))
            .or_else(|_| std::fs::read_to_string(cgroup_root.join(name)))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    ceil(read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?)
}

impl AutoWorkers {
    fn count(&self) -> HookResult<Option<usize>> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let cpus = cpu_quota(&self.cgroup_root).map_or(cpus, |q| q.min(cpus));
        let Ok(text) = std::fs::read_to_string(&self.meminfo) else {
            // No memory information (not Linux): no answer, xdist's own count applies.
            return Ok(None);
        };
        let Some(mem) = mem_available_mb(&text) else {
            return Ok(None);
        };
        let by_mem = usize::try_from(mem / self.mb_per_worker).unwrap_or(usize::MAX);
        let mut n = by_mem.min(cpus).max(1);
        if let Some(max) = self.max {
            n = n.min(max.max(1));
        }
        Ok(Some(n))
    }
}

impl Plugin for AutoWorkers {
    fn new(options: &PluginOptions) -> HookResult<Self> {
        for (key, _) in options.iter() {
            if !["mb-per-worker", "max", "meminfo", "cgroup-root"].contains(&key) {
                return Err(format!(
                    "unknown option {key:?} (known: mb-per-worker, max, meminfo, cgroup-root)"
                ));
            }
        }
        let mb_per_worker: u64 = options.parse("mb-per-worker")?.unwrap_or(512);
        if mb_per_worker == 0 {
            return Err("mb-per-worker must be at least 1".to_owned());
        }
        Ok(AutoWorkers {
            mb_per_worker,
            max: options.parse("max")?,
            meminfo: options.get("meminfo").unwrap_or("/proc/meminfo").into(),
            cgroup_root: options
                .get("cgroup-root")
                .unwrap_or("/sys/fs/cgroup")
                .into(),
        })
    }

    fn auto_num_workers(&mut self, _config: &ConfigView) -> HookResult<Option<usize>> {
        self.count()
    }
}

export_plugin! {
    plugin: AutoWorkers,
    name: "auto-workers",
    version: env!("CARGO_PKG_VERSION"),
    description: "-n auto from MemAvailable / mb-per-worker and the CPU quota",
    hooks: [auto_num_workers],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meminfo() {
        let text = "MemTotal: 16000000 kB\nMemFree: 100 kB\nMemAvailable:    2097152 kB\n";
        assert_eq!(mem_available_mb(text), Some(2048));
        assert_eq!(mem_available_mb("MemTotal: 1 kB\n"), None);
    }
}
