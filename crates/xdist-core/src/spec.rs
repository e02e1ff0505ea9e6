//! Execution environment specs: `--tx` and `--px`, in execnet's XSpec syntax
//! (`key=value//key2=value2//flag`), plus xdist's `N*spec` multiplier.
//!
//! Supported keys: one gateway type (`popen`, `ssh=[user@]host`, `socket=host:port`,
//! `exec=<command>`), and
//! `python=`, `chdir=`, `id=`, `env:NAME=value`, `nice=`, `via=`, `ssh_config=`,
//! `dont_write_bytecode`. Anything else is refused with one message naming the spec, so a typo
//! never silently runs tests somewhere unexpected.

use std::collections::HashSet;
use std::fmt;

/// Where a worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gateway {
    /// A local child process.
    Popen,
    /// A process started by the system `ssh` client on `[user@]host`.
    Ssh { target: String },
    /// A connection to `xdist serve` at `host:port`.
    Socket { host: String, port: u16 },
    /// Any command that starts Python somewhere (`docker exec -i box python3`, `srun python3`):
    /// its stdin/stdout are the channel. `argv` is the command split by shell word rules.
    Exec { argv: Vec<String> },
}

/// One parsed spec (after `N*` expansion: one worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XSpec {
    /// The spec as written (without the `N*` prefix); specs are compared by it.
    pub raw: String,
    pub gateway: Gateway,
    pub python: Option<String>,
    pub chdir: Option<String>,
    pub id: Option<String>,
    pub env: Vec<(String, String)>,
    pub nice: Option<i32>,
    pub via: Option<String>,
    pub ssh_config: Option<String>,
    pub dont_write_bytecode: bool,
    /// For `via=` through an ssh proxy: the proxy's `[user@]host` (ssh `ProxyJump`).
    pub jump: Option<String>,
}

impl fmt::Display for XSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl XSpec {
    /// The plain local spec `-n N` stands for.
    pub fn popen() -> XSpec {
        XSpec {
            raw: "popen".into(),
            gateway: Gateway::Popen,
            python: None,
            chdir: None,
            id: None,
            env: Vec::new(),
            nice: None,
            via: None,
            ssh_config: None,
            dont_write_bytecode: false,
            jump: None,
        }
    }

    /// A worker on another machine (or behind a socket): pytest-xdist rewrites path
    /// arguments relative to the rsync roots and puts the worker's cwd on `sys.path`.
    pub fn is_remote(&self) -> bool {
        !matches!(self.gateway, Gateway::Popen)
    }

    /// Whether this spec needs rsync roots (reference: non-popen or `chdir`). Never for
    /// `exec=`: there is nothing to rsync to (the launcher's environment has the files).
    pub fn needs_rsync(&self) -> bool {
        !self.is_exec() && (self.is_remote() || self.chdir.is_some())
    }

    /// An `exec=` spec.
    pub fn is_exec(&self) -> bool {
        matches!(self.gateway, Gateway::Exec { .. })
    }

    /// The directory the worker runs in: `chdir=`, else `pyexecnetcache` for remote specs
    /// (relative to the remote home), else None (the controller's cwd; for `exec=`: wherever
    /// the command starts).
    pub fn workdir(&self) -> Option<&str> {
        match (&self.chdir, self.is_remote() && !self.is_exec()) {
            (Some(d), _) => Some(d.as_str()),
            (None, true) => Some("pyexecnetcache"),
            (None, false) => None,
        }
    }
}

/// A bad `--tx`/`--px` value (a usage error, exit 4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {option} spec '{spec}': {reason}")]
pub struct SpecError {
    pub option: &'static str,
    pub spec: String,
    pub reason: String,
}

fn err(option: &'static str, spec: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        option,
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// Parses one spec without a multiplier.
pub fn parse_spec(option: &'static str, s: &str) -> Result<XSpec, SpecError> {
    parse_parts(s).map_err(|reason| err(option, s, reason))
}

/// One `key[=value]` between `//`s.
struct Part<'a> {
    key: &'a str,
    value: Option<&'a str>,
}

impl<'a> Part<'a> {
    fn split(part: &'a str) -> Result<Part<'a>, String> {
        if part.is_empty() {
            return Err("empty key (a '//' too many?)".into());
        }
        let (key, value) = match part.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (part, None),
        };
        if key.starts_with('_') {
            return Err(format!("keys may not start with '_': '{key}'"));
        }
        Ok(Part { key, value })
    }

    fn need(&self, what: &str) -> Result<String, String> {
        match self.value {
            Some(v) if !v.is_empty() => Ok(v.to_string()),
            _ => Err(format!("'{}' needs a value ({what})", self.key)),
        }
    }
}

fn parse_parts(s: &str) -> Result<XSpec, String> {
    if s.trim().is_empty() {
        return Err("empty spec".into());
    }
    let mut spec = XSpec::popen();
    spec.raw = s.to_string();
    let mut gateway: Option<Gateway> = None;
    let mut seen = HashSet::new();
    for part in s.split("//") {
        let part = Part::split(part)?;
        if !seen.insert(part.key) {
            return Err(format!("duplicate key '{}'", part.key));
        }
        match gateway_of(&part)? {
            Some(_) if gateway.is_some() => {
                return Err("more than one gateway type (popen, ssh=, socket=, exec=)".into());
            }
            Some(g) => gateway = Some(g),
            None => apply_option(&mut spec, &part)?,
        }
    }
    spec.gateway = match gateway {
        Some(g) => g,
        None if spec.via.is_some() => Gateway::Popen,
        None => return Err(
            "no gateway type: start with popen, ssh=[user@]host, socket=host:port or exec=COMMAND"
                .into(),
        ),
    };
    check_combination(&spec)?;
    Ok(spec)
}

/// The gateway a part names, or None for a part that is an option.
fn gateway_of(part: &Part) -> Result<Option<Gateway>, String> {
    Ok(Some(match part.key {
        "popen" => {
            if part.value.is_some() {
                return Err("'popen' takes no value".into());
            }
            Gateway::Popen
        }
        "ssh" => {
            let target = part.need("[user@]host")?;
            if target.starts_with('-')
                || target.contains(char::is_whitespace)
                || target.ends_with('@')
                || target.starts_with('@')
            {
                return Err(format!("bad ssh host '{target}'"));
            }
            Gateway::Ssh { target }
        }
        "socket" => socket_gateway(&part.need("host:port")?)?,
        "exec" => {
            let command = part.need("a command that starts Python")?;
            let argv = crate::pystr::split_addopts(&command)
                .map_err(|e| format!("bad exec command: {e}"))?;
            if argv.is_empty() {
                return Err("'exec' needs a command that starts Python".into());
            }
            Gateway::Exec { argv }
        }
        _ => return Ok(None),
    }))
}

fn socket_gateway(addr: &str) -> Result<Gateway, String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("socket needs host:port, got '{addr}'"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("bad port '{port}'"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("socket needs a host".into());
    }
    Ok(Gateway::Socket {
        host: host.to_string(),
        port,
    })
}

/// A part that is not a gateway: sets one of the spec's options.
fn apply_option(spec: &mut XSpec, part: &Part) -> Result<(), String> {
    match part.key {
        "python" => spec.python = Some(part.need("an interpreter")?),
        "chdir" => spec.chdir = Some(part.need("a directory")?),
        "id" => {
            let id = part.need("a worker id")?;
            if id.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(format!("bad id '{id}'"));
            }
            spec.id = Some(id)
        }
        "nice" => {
            let v = part.need("a niceness")?;
            spec.nice = Some(
                v.parse()
                    .map_err(|_| format!("nice needs a whole number, got '{v}'"))?,
            )
        }
        "via" => spec.via = Some(part.need("a --px id")?),
        "ssh_config" => spec.ssh_config = Some(part.need("a file")?),
        "dont_write_bytecode" => spec.dont_write_bytecode = true,
        "execmodel" => {
            return Err(
                "'execmodel' is not supported (workers always run tests in the main thread)".into(),
            )
        }
        "vagrant_ssh" | "installvia" => return Err(format!("'{}' is not supported", part.key)),
        k if k.starts_with("env:") => {
            let name = &k[4..];
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("bad environment variable name in '{k}'"));
            }
            spec.env
                .push((name.to_string(), part.value.unwrap_or("").to_string()));
        }
        other => {
            return Err(format!(
                "unknown key '{other}' (known: popen, ssh=, socket=, exec=, python=, chdir=, id=, env:NAME=, nice=, via=, ssh_config=, dont_write_bytecode)"
            ))
        }
    }
    Ok(())
}

/// Options that only some gateways take.
fn check_combination(spec: &XSpec) -> Result<(), String> {
    if spec.ssh_config.is_some()
        && !matches!(spec.gateway, Gateway::Ssh { .. })
        && spec.via.is_none()
    {
        return Err("'ssh_config' only applies to ssh= specs".into());
    }
    if spec.is_exec() && spec.python.is_some() {
        return Err(
            "'python' does not apply to exec= (the command starts the interpreter: exec=... python3)".into(),
        );
    }
    Ok(())
}

/// Splits `N*spec` into (N, spec).
fn split_multiplier<'a>(option: &'static str, s: &'a str) -> Result<(usize, &'a str), SpecError> {
    match s.split_once('*') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
            let n: usize = n
                .parse()
                .map_err(|_| err(option, s, format!("bad multiplier '{n}'")))?;
            if n == 0 {
                return Err(err(option, s, "the multiplier must be at least 1"));
            }
            if n > 4096 {
                return Err(err(option, s, "the multiplier is larger than 4096"));
            }
            Ok((n, rest))
        }
        Some((n, _)) if !n.contains("//") => Err(err(option, s, format!("bad multiplier '{n}'"))),
        _ => Ok((1, s)),
    }
}

/// Parses `--px` values: every proxy needs an `id=`.
pub fn parse_px(values: &[String]) -> Result<Vec<XSpec>, SpecError> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for v in values {
        let spec = parse_spec("--px", v)?;
        let Some(id) = spec.id.clone() else {
            return Err(err(
                "--px",
                v,
                "a proxy gateway must include an id (id=NAME)",
            ));
        };
        if spec.via.is_some() {
            return Err(err("--px", v, "a proxy cannot itself use via="));
        }
        if !ids.insert(id.clone()) {
            return Err(err("--px", v, format!("duplicate proxy id '{id}'")));
        }
        out.push(spec);
    }
    Ok(out)
}

/// Parses `--tx` values (with `N*` expansion) and resolves `via=` against `proxies`: a worker
/// "via" a proxy runs where the proxy is (an ssh proxy is also an ssh jump host for ssh
/// workers). Worker ids (`id=`) must be unique.
pub fn parse_tx(values: &[String], proxies: &[XSpec]) -> Result<Vec<XSpec>, SpecError> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    for v in values {
        let (n, body) = split_multiplier("--tx", v)?;
        let mut spec = parse_spec("--tx", body)?;
        if let Some(via) = spec.via.clone() {
            let proxy = proxies
                .iter()
                .find(|p| p.id.as_deref() == Some(&via))
                .ok_or_else(|| {
                    err(
                        "--tx",
                        v,
                        format!("via={via} names no --px proxy (give --px id={via}//...)"),
                    )
                })?;
            resolve_via(&mut spec, proxy).map_err(|reason| err("--tx", v, reason))?;
            if spec.is_exec() && spec.python.is_some() {
                return Err(err("--tx", v, "'python' does not apply via an exec= proxy (its command starts the interpreter)"));
            }
        }
        if let Some(id) = &spec.id {
            if n > 1 {
                return Err(err("--tx", v, "id= cannot be used with a multiplier N*"));
            }
            if !ids.insert(id.clone()) {
                return Err(err("--tx", v, format!("duplicate worker id '{id}'")));
            }
        }
        out.extend(std::iter::repeat_n(spec, n));
    }
    Ok(out)
}

fn resolve_via(spec: &mut XSpec, proxy: &XSpec) -> Result<(), String> {
    match (&spec.gateway, &proxy.gateway) {
        (_, Gateway::Popen) => Ok(()), // a local proxy changes nothing
        (Gateway::Popen, g) => {
            spec.gateway = g.clone();
            if spec.ssh_config.is_none() {
                spec.ssh_config = proxy.ssh_config.clone();
            }
            Ok(())
        }
        (Gateway::Ssh { .. }, Gateway::Ssh { target }) => {
            spec.jump = Some(target.clone());
            if spec.ssh_config.is_none() {
                spec.ssh_config = proxy.ssh_config.clone();
            }
            Ok(())
        }
        _ => Err("only popen workers can run via a socket or exec= proxy, and only ssh workers via an ssh proxy (as a jump host)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_every_key() {
        let x = parse_spec(
            "--tx",
            "ssh=me@box//python=python3.12//chdir=cache//id=w1//env:A=1//env:B=//nice=5//ssh_config=/tmp/cfg//dont_write_bytecode",
        )
        .unwrap();
        assert_eq!(
            x.gateway,
            Gateway::Ssh {
                target: "me@box".into()
            }
        );
        assert_eq!(x.python.as_deref(), Some("python3.12"));
        assert_eq!(x.chdir.as_deref(), Some("cache"));
        assert_eq!(x.id.as_deref(), Some("w1"));
        assert_eq!(
            x.env,
            vec![("A".into(), "1".into()), ("B".into(), "".into())]
        );
        assert_eq!(x.nice, Some(5));
        assert_eq!(x.ssh_config.as_deref(), Some("/tmp/cfg"));
        assert!(x.dont_write_bytecode && x.is_remote() && x.needs_rsync());
        let x = parse_spec("--tx", "socket=127.0.0.1:8888").unwrap();
        assert_eq!(
            x.gateway,
            Gateway::Socket {
                host: "127.0.0.1".into(),
                port: 8888
            }
        );
        assert_eq!(x.workdir(), Some("pyexecnetcache"));
        let x = parse_spec("--tx", "popen").unwrap();
        assert!(!x.needs_rsync() && x.workdir().is_none());
    }

    #[test]
    fn expands_multipliers_and_mixes() {
        let v = parse_tx(&s(&["2*popen//python=python3", "ssh=h"]), &[]).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].raw, "popen//python=python3");
        assert_eq!(v[2].raw, "ssh=h");
    }

    #[test]
    fn refuses_bad_specs_with_one_line() {
        for bad in [
            "",
            "0*popen",
            "x*popen",
            "popen//ssh=h",
            "popen//popen",
            "python=py",
            "ssh=",
            "ssh=-oProxyCommand=x",
            "socket=host",
            "socket=host:99999",
            "socket=:80",
            "popen//nice=high",
            "popen//bogus=1",
            "popen//_private=1",
            "popen//execmodel=thread",
            "popen////chdir=x",
            "popen//ssh_config=x",
            "popen//env:=1",
            "2*popen//id=a",
            "popen//via=nowhere",
            "exec=",
            "exec=docker exec -i 'box",
            "exec=python3//python=python3",
            "exec=a//ssh=h",
        ] {
            let e = parse_tx(&s(&[bad]), &[]).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("invalid --tx spec"), "{bad}: {msg}");
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert!(parse_tx(&s(&["popen//id=a", "ssh=h//id=a"]), &[]).is_err());
    }

    #[test]
    fn exec_commands_split_like_a_shell() {
        let v = parse_tx(
            &s(&["2*exec=docker exec -i 'ci box' python3 -X \"dev mode\"//chdir=/src//env:A=1"]),
            &[],
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0].gateway,
            Gateway::Exec {
                argv: s(&["docker", "exec", "-i", "ci box", "python3", "-X", "dev mode"])
            }
        );
        // The launcher decides where it starts; nothing to rsync to.
        assert!(v[0].is_remote() && !v[0].needs_rsync());
        assert_eq!(v[0].workdir(), Some("/src"));
        let x = parse_spec("--tx", "exec=srun -N1 python3").unwrap();
        assert_eq!(x.workdir(), None);
        let px = parse_px(&s(&["id=box//exec=podman exec -i box python3"])).unwrap();
        let v = parse_tx(&s(&["popen//via=box"]), &px).unwrap();
        assert!(v[0].is_exec());
        assert!(parse_tx(&s(&["popen//python=py//via=box"]), &px).is_err());
    }

    #[test]
    fn proxies_need_ids_and_resolve() {
        assert!(parse_px(&s(&["socket=h:1"])).is_err());
        let px = parse_px(&s(&["id=p//socket=10.0.0.2:8888", "id=j//ssh=gate"])).unwrap();
        let v = parse_tx(&s(&["2*popen//via=p//python=py3", "ssh=inner//via=j"]), &px).unwrap();
        assert_eq!(
            v[0].gateway,
            Gateway::Socket {
                host: "10.0.0.2".into(),
                port: 8888
            }
        );
        assert_eq!(v[0].python.as_deref(), Some("py3"));
        assert_eq!(v[2].jump.as_deref(), Some("gate"));
        assert!(parse_tx(&s(&["socket=a:1//via=j"]), &px).is_err());
        assert!(parse_px(&s(&["id=a//popen", "id=a//popen"])).is_err());
    }
}
