//! CPU counting for `-n auto` / `-n logical`: the CPUs this process may run on (affinity mask),
//! capped by the cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`),
//! and physical cores from `/sys/devices/system/cpu/cpu*/topology`.
//!
//! pytest-xdist 3.8 ignores quotas (#9, #716); xdist honours them (SPEC 3.1).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use xdist_core::env::PYTEST_XDIST_AUTO_NUM_WORKERS;
use xdist_core::pystr::py_repr;

/// Which count `-n` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoKind {
    /// `-n auto`: physical cores.
    Auto,
    /// `-n logical`: logical CPUs.
    Logical,
}

/// The worker count for `-n auto`/`-n logical`, and a warning to show the user, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoWorkers {
    /// Number of workers. Only `PYTEST_XDIST_AUTO_NUM_WORKERS` can make it 0 (a negative value
    /// there counts as 0: no workers, run in-process, as pytest-xdist does).
    pub count: usize,
    /// `PYTEST_XDIST_AUTO_NUM_WORKERS is not a number: 'x'. Ignoring it.` when it was not.
    pub warning: Option<String>,
}

/// Logical CPUs this process may use: the CPUs in its affinity mask, capped by the cgroup CPU
/// quota (rounded up); at least 1.
pub fn available_cpus() -> usize {
    available_cpus_in(Path::new("/"), affinity_cpus().as_deref())
}

/// Distinct physical cores (package, core) among the CPUs in this process's affinity mask, not
/// capped by any quota; `None` when the topology cannot be read.
pub fn physical_cores() -> Option<usize> {
    let cpus = affinity_cpus().or_else(|| online_cpus(Path::new("/")))?;
    physical_cores_in(Path::new("/"), &cpus)
}

/// The worker count for `-n auto` (physical cores in the affinity mask, capped by the quota;
/// `available_cpus()` when the topology is unknown) or `-n logical` (`available_cpus()`),
/// unless `PYTEST_XDIST_AUTO_NUM_WORKERS` holds an integer.
pub fn auto_workers(kind: AutoKind) -> AutoWorkers {
    let env = std::env::var_os(PYTEST_XDIST_AUTO_NUM_WORKERS);
    let root = Path::new("/");
    auto_workers_with(kind, env, || {
        let affinity = affinity_cpus();
        let logical = available_cpus_in(root, affinity.as_deref());
        let cpus = affinity.or_else(|| online_cpus(root));
        let physical = cpus.and_then(|c| physical_cores_in(root, &c));
        (logical, physical, quota_cpus(root))
    })
}

/// [`auto_workers`] with the environment value and the detection given, for tests.
/// `detect` returns (available logical CPUs, physical cores, quota CPUs).
fn auto_workers_with(
    kind: AutoKind,
    env: Option<OsString>,
    detect: impl FnOnce() -> (usize, Option<usize>, Option<usize>),
) -> AutoWorkers {
    let mut warning = None;
    if let Some(raw) = env.filter(|v| !v.is_empty()) {
        let text = raw.to_string_lossy();
        match parse_python_int(&text) {
            Some(n) => {
                return AutoWorkers {
                    count: usize::try_from(n.max(0)).unwrap_or(usize::MAX),
                    warning: None,
                }
            }
            None => {
                warning = Some(format!(
                    "{PYTEST_XDIST_AUTO_NUM_WORKERS} is not a number: {}. Ignoring it.",
                    py_repr(&text)
                ))
            }
        }
    }
    let (logical, physical, quota) = detect();
    let count = match kind {
        AutoKind::Logical => logical,
        AutoKind::Auto => match physical {
            Some(p) if p > 0 => quota.map_or(p, |q| p.min(q)),
            _ => logical,
        },
    }
    .max(1);
    AutoWorkers { count, warning }
}

/// Python's `int(str)`: surrounding whitespace, a sign, digits with single `_` between them.
fn parse_python_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    // Huge values saturate rather than fail: Python would accept them.
    let v = clean.parse::<i64>().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

fn available_cpus_in(root: &Path, affinity: Option<&[usize]>) -> usize {
    let n = match affinity {
        Some(a) if !a.is_empty() => a.len(),
        _ => online_cpus(root)
            .map(|c| c.len())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1),
    };
    quota_cpus(root).map_or(n, |q| n.min(q)).max(1)
}

/// CPU ids in this process's affinity mask, via `sched_getaffinity(0)`.
#[cfg(target_os = "linux")]
fn affinity_cpus() -> Option<Vec<usize>> {
    // Grow the mask for machines with more CPUs than `cpu_set_t` holds (1024).
    let mut words = std::mem::size_of::<libc::cpu_set_t>() / std::mem::size_of::<libc::c_ulong>();
    for _ in 0..8 {
        let mut mask: Vec<libc::c_ulong> = vec![0; words];
        let bytes = words * std::mem::size_of::<libc::c_ulong>();
        // SAFETY: the buffer is `bytes` long and writable; the kernel writes at most that many
        // bytes. `cpu_set_t` is a plain bit array, so a larger buffer is valid.
        let rc = unsafe { libc::sched_getaffinity(0, bytes, mask.as_mut_ptr().cast()) };
        if rc == 0 {
            let bits = libc::c_ulong::BITS as usize;
            let cpus = (0..words * bits)
                .filter(|i| mask[i / bits] & (1 << (i % bits)) != 0)
                .collect();
            return Some(cpus);
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            return None;
        }
        words *= 2;
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn affinity_cpus() -> Option<Vec<usize>> {
    None
}

/// CPU ids from `root/sys/devices/system/cpu/online` (a list like `0-3,6`).
fn online_cpus(root: &Path) -> Option<Vec<usize>> {
    let text = std::fs::read_to_string(root.join("sys/devices/system/cpu/online")).ok()?;
    parse_cpu_list(&text)
}

fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (
                    a.trim().parse::<usize>().ok()?,
                    b.trim().parse::<usize>().ok()?,
                );
                if b < a || b - a > 1 << 16 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

fn physical_cores_in(root: &Path, cpus: &[usize]) -> Option<usize> {
    let mut cores = BTreeSet::new();
    for cpu in cpus {
        let topo = root.join(format!("sys/devices/system/cpu/cpu{cpu}/topology"));
        let read = |name: &str| -> Option<i64> {
            std::fs::read_to_string(topo.join(name))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        cores.insert((read("physical_package_id")?, read("core_id")?));
    }
    (!cores.is_empty()).then_some(cores.len())
}

/// The CPU quota of this process's cgroup (the tightest along its path), rounded up; `None`
/// when there is no quota.
fn quota_cpus(root: &Path) -> Option<usize> {
    let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup")).unwrap_or_default();
    let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo")).unwrap_or_default();
    let mut best: Option<usize> = None;
    let mut consider = |q: Option<usize>| {
        if let Some(q) = q {
            best = Some(best.map_or(q, |b| b.min(q)));
        }
    };
    for line in cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            let mount = find_mount(&mountinfo, "cgroup2", None)
                .unwrap_or_else(|| ("/".into(), PathBuf::from("/sys/fs/cgroup")));
            for dir in cgroup_dirs(root, &mount, path) {
                consider(read_v2(&dir.join("cpu.max")));
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            let mount = find_mount(&mountinfo, "cgroup", Some("cpu")).unwrap_or_else(|| {
                let default = ["sys/fs/cgroup/cpu,cpuacct", "sys/fs/cgroup/cpu"]
                    .into_iter()
                    .find(|d| root.join(d).is_dir())
                    .unwrap_or("sys/fs/cgroup/cpu");
                ("/".into(), Path::new("/").join(default))
            });
            for dir in cgroup_dirs(root, &mount, path) {
                consider(read_v1(&dir));
            }
        }
    }
    // No usable /proc/self/cgroup: the cgroup v2 root as seen from here (containers).
    if cgroup.trim().is_empty() {
        consider(read_v2(&root.join("sys/fs/cgroup/cpu.max")));
    }
    best
}

/// (mount root, mount point) of the first cgroup mount of `fstype` (with `option` among its
/// super options, for v1) in `/proc/self/mountinfo`.
fn find_mount(mountinfo: &str, fstype: &str, option: Option<&str>) -> Option<(String, PathBuf)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let mut r = right.split(' ');
        if r.next()? != fstype {
            return None;
        }
        let superopts = r.nth(1).unwrap_or("");
        if let Some(opt) = option {
            if !superopts.split(',').any(|o| o == opt) {
                return None;
            }
        }
        Some((
            unescape_mount(fields.get(3)?),
            PathBuf::from(unescape_mount(fields.get(4)?)),
        ))
    })
}

fn unescape_mount(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The directories from this process's cgroup up to the mount point, under `root`.
fn cgroup_dirs(root: &Path, mount: &(String, PathBuf), cgroup_path: &str) -> Vec<PathBuf> {
    let (mount_root, mount_point) = mount;
    // Inside a cgroup namespace the path may lie outside the mount's root: use the mount point.
    let rel = if mount_root == "/" {
        cgroup_path
    } else {
        cgroup_path.strip_prefix(mount_root.as_str()).unwrap_or("/")
    };
    let base = root.join(mount_point.strip_prefix("/").unwrap_or(mount_point));
    let mut dir = base.join(rel.trim_start_matches('/'));
    let mut out = Vec::new();
    loop {
        out.push(dir.clone());
        if dir == base || !dir.pop() || !dir.starts_with(&base) {
            break;
        }
    }
    out
}

/// cgroup v2 `cpu.max`: `max 100000` (no limit) or `QUOTA PERIOD`.
fn read_v2(path: &Path) -> Option<usize> {
    parse_cpu_max(&std::fs::read_to_string(path).ok()?)
}

fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period = it.next().unwrap_or("100000");
    if quota == "max" {
        return None;
    }
    quota_to_cpus(quota.parse().ok()?, period.parse().ok()?)
}

/// cgroup v1 `cpu.cfs_quota_us` (`-1` = no limit) and `cpu.cfs_period_us`.
fn read_v1(dir: &Path) -> Option<usize> {
    let read = |name: &str| -> Option<i64> {
        std::fs::read_to_string(dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    quota_to_cpus(read("cpu.cfs_quota_us")?, read("cpu.cfs_period_us")?)
}

fn quota_to_cpus(quota: i64, period: i64) -> Option<usize> {
    if quota <= 0 || period <= 0 {
        return None;
    }
    let cpus = quota.div_euclid(period) + i64::from(quota.rem_euclid(period) != 0);
    Some(usize::try_from(cpus).unwrap_or(usize::MAX).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(quota_to_cpus(-1, 100000), None);
        assert_eq!(quota_to_cpus(1, 100000), Some(1));
    }

    #[test]
    fn cgroup_v2_own_cgroup_and_ancestors() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "proc/self/cgroup", "0::/user.slice/app.scope\n");
        write(
            r,
            "proc/self/mountinfo",
            "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        write(r, "sys/fs/cgroup/cpu.max", "max 100000\n");
        write(r, "sys/fs/cgroup/user.slice/cpu.max", "300000 100000\n");
        write(
            r,
            "sys/fs/cgroup/user.slice/app.scope/cpu.max",
            "max 100000\n",
        );
        assert_eq!(quota_cpus(r), Some(3));
        write(
            r,
            "sys/fs/cgroup/user.slice/app.scope/cpu.max",
            "150000 100000\n",
        );
        assert_eq!(quota_cpus(r), Some(2));
        assert_eq!(available_cpus_in(r, Some(&[0, 1, 2, 3, 4, 5, 6, 7])), 2);
        assert_eq!(available_cpus_in(r, Some(&[3])), 1);
    }

    #[test]
    fn cgroup_v2_namespaced_container() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(r, "proc/self/cgroup", "0::/\n");
        write(r, "proc/self/mountinfo", "");
        write(r, "sys/fs/cgroup/cpu.max", "250000 100000\n");
        assert_eq!(quota_cpus(r), Some(3));
        // No /proc at all: the cgroup root is read directly.
        fs::remove_dir_all(r.join("proc")).unwrap();
        assert_eq!(quota_cpus(r), Some(3));
    }

    #[test]
    fn cgroup_v1_quota() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        write(
            r,
            "proc/self/cgroup",
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
        );
        write(
            r,
            "proc/self/mountinfo",
            "40 30 0:35 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n",
        );
        write(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "400000\n");
        write(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
        assert_eq!(quota_cpus(r), Some(4));
        write(r, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
        assert_eq!(quota_cpus(r), None);
    }

    #[test]
    fn physical_cores_from_topology() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        // 2 packages x 2 cores x 2 threads; core ids repeat across packages.
        for cpu in 0..8 {
            let base = format!("sys/devices/system/cpu/cpu{cpu}/topology");
            write(
                r,
                &format!("{base}/physical_package_id"),
                &format!("{}\n", cpu / 4),
            );
            write(
                r,
                &format!("{base}/core_id"),
                &format!("{}\n", (cpu / 2) % 2),
            );
        }
        assert_eq!(physical_cores_in(r, &(0..8).collect::<Vec<_>>()), Some(4));
        // Affinity limited to the two threads of one core, then to one thread per package.
        assert_eq!(physical_cores_in(r, &[0, 1]), Some(1));
        assert_eq!(physical_cores_in(r, &[0, 4]), Some(2));
        assert_eq!(physical_cores_in(r, &[9]), None);
        write(r, "sys/devices/system/cpu/online", "0-3,6\n");
        assert_eq!(online_cpus(r), Some(vec![0, 1, 2, 3, 6]));
        assert_eq!(available_cpus_in(r, None), 5);
    }

    #[test]
    fn affinity_is_readable() {
        let cpus = affinity_cpus();
        if cfg!(target_os = "linux") {
            let cpus = cpus.unwrap();
            assert!(!cpus.is_empty());
            assert!(available_cpus() >= 1 && available_cpus() <= cpus.len());
        }
        let _ = physical_cores();
    }

    #[test]
    fn env_override() {
        let none = || -> (usize, Option<usize>, Option<usize>) { panic!("detection ran") };
        let w = auto_workers_with(AutoKind::Auto, Some("5".into()), none);
        assert_eq!(
            w,
            AutoWorkers {
                count: 5,
                warning: None
            }
        );
        let w = auto_workers_with(AutoKind::Logical, Some(" +1_0 ".into()), none);
        assert_eq!(w.count, 10);
        assert_eq!(
            auto_workers_with(AutoKind::Auto, Some("-2".into()), none).count,
            0
        );
        assert_eq!(
            auto_workers_with(AutoKind::Auto, Some("0".into()), none).count,
            0
        );
        let det = || (8, Some(4), None);
        // Empty is ignored silently.
        let w = auto_workers_with(AutoKind::Auto, Some("".into()), det);
        assert_eq!(
            w,
            AutoWorkers {
                count: 4,
                warning: None
            }
        );
        let w = auto_workers_with(AutoKind::Logical, Some("x".into()), det);
        assert_eq!(w.count, 8);
        assert_eq!(
            w.warning.as_deref(),
            Some("PYTEST_XDIST_AUTO_NUM_WORKERS is not a number: 'x'. Ignoring it.")
        );
    }

    #[test]
    fn auto_and_logical() {
        assert_eq!(
            auto_workers_with(AutoKind::Auto, None, || (8, Some(4), None)).count,
            4
        );
        assert_eq!(
            auto_workers_with(AutoKind::Auto, None, || (3, Some(4), Some(3))).count,
            3
        );
        assert_eq!(
            auto_workers_with(AutoKind::Auto, None, || (6, None, None)).count,
            6
        );
        assert_eq!(
            auto_workers_with(AutoKind::Logical, None, || (6, Some(3), None)).count,
            6
        );
        assert_eq!(
            auto_workers_with(AutoKind::Auto, None, || (0, Some(0), None)).count,
            1
        );
        assert!(auto_workers(AutoKind::Logical).count >= 1);
    }
}
