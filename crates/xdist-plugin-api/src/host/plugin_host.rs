//! The loaded plugins and the hook calls a controller makes.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use xdist_sched::{Action, SchedConfig, Scheduling};

use super::discovery::{dedup_sources, PluginSource};
use super::error::{check, hook_error, HookError, LoadError, PluginError, PluginOrigin};
use super::library::load_one;
use super::scheduler::PluginScheduler;
use crate::abi::{self, PluginModuleRef, RCrashSched, RCrashSched_TO};
use crate::types::{
    options_to_abi, parse_map, rstrings, sched_config_to_abi, ConfigView, GatewayView, NodeView,
    ReportView,
};

/// `workerinput` keys owned by xdist: `configure_node` may add keys, but these are restored.
pub const RESERVED_WORKERINPUT_KEYS: [&str; 4] =
    ["workerid", "workercount", "testrunuid", "mainargv"];

/// What [`PluginHost::load_with`] needs besides the paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Plugin names disabled with `-p no:NAME` (see [`disabled_from_args`]). Unknown names are
    /// ignored: they may name pytest plugins.
    pub disabled: Vec<String>,
    /// `NAME.KEY=VALUE` strings from `--plugin-opt` and pyproject.toml, in order (a later value
    /// for the same key wins).
    pub plugin_opts: Vec<String>,
}

/// A loaded plugin, as `xdist plugins` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub path: PathBuf,
    pub origin: PluginOrigin,
    /// The ABI revision the plugin was built with.
    pub abi_revision: u32,
    /// Implemented hooks, in [`HOOK_NAMES`] order.
    pub hooks: Vec<&'static str>,
    /// The plugin's options as given.
    pub options: BTreeMap<String, String>,
}

/// Every hook name, in ABI order (`configure` is not listed: every plugin has it).
pub const HOOK_NAMES: [&str; 13] = [
    "setupnodes",
    "newgateway",
    "configure_node",
    "testnodeready",
    "testnodedown",
    "node_collection_finished",
    "make_scheduler",
    "auto_num_workers",
    "handlecrashitem",
    "getremotemodule",
    "rsyncstart",
    "rsyncfinish",
    "sessionfinish",
];

fn implemented_hooks(m: PluginModuleRef) -> Vec<&'static str> {
    let present = [
        m.setupnodes().is_some(),
        m.newgateway().is_some(),
        m.configure_node().is_some(),
        m.testnodeready().is_some(),
        m.testnodedown().is_some(),
        m.node_collection_finished().is_some(),
        m.make_scheduler().is_some(),
        m.auto_num_workers().is_some(),
        m.handlecrashitem().is_some(),
        m.getremotemodule().is_some(),
        m.rsyncstart().is_some(),
        m.rsyncfinish().is_some(),
        m.sessionfinish().is_some(),
    ];
    HOOK_NAMES
        .iter()
        .zip(present)
        .filter_map(|(n, p)| p.then_some(*n))
        .collect()
}

struct Loaded {
    info: PluginInfo,
    module: PluginModuleRef,
}

/// The loaded plugins and the hook calls a controller makes.
///
/// See the crate documentation for the call sequence. `PluginHost` is `Send + Sync`; hook calls
/// take `&self` (plugins serialise their own state).
pub struct PluginHost {
    plugins: Vec<Loaded>,
    warnings: Vec<String>,
    errors: Arc<Mutex<Vec<PluginError>>>,
}

impl fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginHost")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| &p.info).collect::<Vec<_>>(),
            )
            .field("warnings", &self.warnings)
            .finish()
    }
}

fn parse_plugin_opt(opt: &str) -> Result<(String, String, String), PluginError> {
    let bad = |reason: &str| PluginError::BadOption {
        option: opt.to_owned(),
        reason: reason.to_owned(),
    };
    let (lhs, value) = opt
        .split_once('=')
        .ok_or_else(|| bad("expected NAME.KEY=VALUE"))?;
    let (name, key) = lhs
        .split_once('.')
        .ok_or_else(|| bad("expected NAME.KEY=VALUE"))?;
    let (name, key) = (name.trim(), key.trim());
    if name.is_empty() || key.is_empty() {
        return Err(bad("expected NAME.KEY=VALUE"));
    }
    Ok((name.to_owned(), key.to_owned(), value.to_owned()))
}

impl PluginHost {
    /// Load plugins with no options and nothing disabled. See [`PluginHost::load_with`].
    pub fn load(sources: &[PluginSource]) -> Result<PluginHost, LoadError> {
        Self::load_with(sources, &LoadOptions::default())
    }

    /// A host without plugins (every hook is "no answer").
    pub fn empty() -> PluginHost {
        PluginHost {
            plugins: Vec::new(),
            warnings: Vec::new(),
            errors: Arc::default(),
        }
    }

    /// Load every source in order (a path given twice is loaded once), drop the disabled names,
    /// check names are unique, hand each plugin its options (`configure`), and collect
    /// deprecation warnings. Any failure stops loading and names the plugin.
    pub fn load_with(
        sources: &[PluginSource],
        opts: &LoadOptions,
    ) -> Result<PluginHost, LoadError> {
        let mut plugins: Vec<Loaded> = Vec::new();
        for source in dedup_sources(sources.to_vec()) {
            let module = load_one(&source)?;
            let name = module.name().to_string();
            if opts.disabled.iter().any(|d| d == &name) {
                continue;
            }
            if let Some(first) = plugins.iter().find(|p| p.info.name == name) {
                return Err(PluginError::DuplicateName {
                    name,
                    first: first.info.path.clone(),
                    second: source.path.clone(),
                });
            }
            plugins.push(Loaded {
                info: PluginInfo {
                    name,
                    version: module.version().to_string(),
                    description: module.description().to_string(),
                    path: source.path.clone(),
                    origin: source.origin,
                    abi_revision: module.abi_revision(),
                    hooks: implemented_hooks(module),
                    options: BTreeMap::new(),
                },
                module,
            });
        }
        for opt in &opts.plugin_opts {
            let (name, key, value) = parse_plugin_opt(opt)?;
            match plugins.iter_mut().find(|p| p.info.name == name) {
                Some(p) => {
                    p.info.options.insert(key, value);
                }
                None if opts.disabled.contains(&name) => {}
                None => {
                    return Err(PluginError::BadOption {
                        option: opt.clone(),
                        reason: format!("no plugin named '{name}' is loaded"),
                    })
                }
            }
        }
        let mut warnings = Vec::new();
        for p in &plugins {
            if let Some(configure) = p.module.configure() {
                match configure(&options_to_abi(&p.info.options)) {
                    RResult::ROk(()) => {}
                    RResult::RErr(e) if e.panicked => {
                        return Err(hook_error(&p.info.name, "configure", e))
                    }
                    RResult::RErr(e) => {
                        return Err(PluginError::Configure {
                            plugin: p.info.name.clone(),
                            message: e.message.to_string(),
                        })
                    }
                }
            }
            for hook in ["rsyncstart", "rsyncfinish"] {
                if p.info.hooks.contains(&hook) {
                    warnings.push(format!(
                        "plugin '{}' implements the deprecated hook pytest_xdist_{hook}: the rsync feature is deprecated and will be removed in pytest-xdist 4.0",
                        p.info.name
                    ));
                }
            }
        }
        Ok(PluginHost {
            plugins,
            warnings,
            errors: Arc::default(),
        })
    }

    /// The loaded plugins, in call order.
    pub fn plugins(&self) -> Vec<&PluginInfo> {
        self.plugins.iter().map(|p| &p.info).collect()
    }

    /// True when no plugin is loaded.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Warnings collected at load (deprecated hooks implemented), to print once.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The first error raised inside a plugin scheduler returned by
    /// [`PluginHost::make_scheduler`] (its trait methods cannot return errors). Check after
    /// each batch of scheduler calls; once an error is recorded the scheduler hands out no more
    /// work and reports itself finished.
    pub fn take_error(&self) -> Option<PluginError> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            None
        } else {
            Some(errors.remove(0))
        }
    }

    fn implementing<'a, F: Copy>(
        &'a self,
        get: impl Fn(PluginModuleRef) -> Option<F> + 'a,
    ) -> impl Iterator<Item = (&'a str, F)> + 'a {
        self.plugins
            .iter()
            .filter_map(move |p| get(p.module).map(|f| (p.info.name.as_str(), f)))
    }

    /// `pytest_xdist_setupnodes(config, specs)`: before any worker starts.
    pub fn setupnodes(&self, config: &ConfigView, specs: &[String]) -> Result<(), HookError> {
        let (c, s) = (config.to_abi(), rstrings(specs));
        for (name, f) in self.implementing(|m| m.setupnodes()) {
            check(name, "setupnodes", f(&c, &s))?;
        }
        Ok(())
    }

    /// `pytest_xdist_newgateway(gateway)`: after each worker process is created.
    pub fn newgateway(&self, gateway: &GatewayView) -> Result<(), HookError> {
        let g = gateway.to_abi();
        for (name, f) in self.implementing(|m| m.newgateway()) {
            check(name, "newgateway", f(&g))?;
        }
        Ok(())
    }

    /// `pytest_configure_node(node)`: plugins may add keys to `node.workerinput` (updated in
    /// place; each plugin sees the previous plugins' additions). The reserved keys
    /// ([`RESERVED_WORKERINPUT_KEYS`]) are restored after each plugin.
    pub fn configure_node(&self, node: &mut NodeView) -> Result<(), HookError> {
        for (name, f) in self.implementing(|m| m.configure_node()) {
            let mut r = node.to_abi();
            check(name, "configure_node", f(&mut r))?;
            let mut input = parse_map("workerinput", &r.workerinput_json).map_err(|message| {
                PluginError::HookFailed {
                    plugin: name.to_owned(),
                    hook: "configure_node",
                    message,
                }
            })?;
            for key in RESERVED_WORKERINPUT_KEYS {
                match node.workerinput.get(key) {
                    Some(v) => input.insert(key.to_owned(), v.clone()),
                    None => input.remove(key),
                };
            }
            node.workerinput = input;
        }
        Ok(())
    }

    /// `pytest_testnodeready(node)`: the worker is ready (`workerinfo` filled).
    pub fn testnodeready(&self, node: &NodeView) -> Result<(), HookError> {
        let n = node.to_abi();
        for (name, f) in self.implementing(|m| m.testnodeready()) {
            check(name, "testnodeready", f(&n))?;
        }
        Ok(())
    }

    /// `pytest_testnodedown(node, error)`: `error` is `None` for a clean finish.
    pub fn testnodedown(&self, node: &NodeView, error: Option<&str>) -> Result<(), HookError> {
        let n = node.to_abi();
        for (name, f) in self.implementing(|m| m.testnodedown()) {
            let e: ROption<RString> = error.map(RString::from).into();
            check(name, "testnodedown", f(&n, e))?;
        }
        Ok(())
    }

    /// `pytest_xdist_node_collection_finished(node, ids)`.
    pub fn node_collection_finished(
        &self,
        node: &NodeView,
        ids: &[String],
    ) -> Result<(), HookError> {
        let mut hooks = self
            .implementing(|m| m.node_collection_finished())
            .peekable();
        if hooks.peek().is_none() {
            // Converting every id for nobody costs more than the rest of a collection.
            return Ok(());
        }
        let n = node.to_abi();
        let i = rstrings(ids);
        for (name, f) in hooks {
            check(name, "node_collection_finished", f(&n, &i))?;
        }
        Ok(())
    }

    /// `pytest_xdist_make_scheduler(config, log)`, first-result. `Ok(None)`: use the built-in
    /// scheduler for `--dist` (taken from `config.options["dist"]` and passed to the plugin).
    /// Errors inside the returned scheduler surface through [`PluginHost::take_error`].
    pub fn make_scheduler(
        &self,
        config: &ConfigView,
        sched: &SchedConfig,
    ) -> Result<Option<Box<dyn Scheduling>>, HookError> {
        let c = config.to_abi();
        let dist = config
            .options
            .get("dist")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let s = sched_config_to_abi(sched, dist);
        for (name, f) in self.implementing(|m| m.make_scheduler()) {
            if let Some(inner) = check(name, "make_scheduler", f(&c, &s))?.into_option() {
                let errors = Arc::clone(&self.errors);
                return Ok(Some(Box::new(PluginScheduler::new(inner, name, errors))));
            }
        }
        Ok(None)
    }

    /// `pytest_xdist_auto_num_workers(config)`, first-result: `Ok(None)` = use xdist's own
    /// count.
    pub fn auto_num_workers(&self, config: &ConfigView) -> Result<Option<usize>, HookError> {
        let c = config.to_abi();
        for (name, f) in self.implementing(|m| m.auto_num_workers()) {
            if let Some(n) = check(name, "auto_num_workers", f(&c))?.into_option() {
                return Ok(Some(usize::try_from(n).unwrap_or(usize::MAX)));
            }
        }
        Ok(None)
    }

    /// `pytest_handlecrashitem(crashitem, report, sched)`, first-result. The controller builds
    /// the crash report (outcome `failed`, when `???`, longrepr `worker 'gw0' crashed while
    /// running '...'`) and calls this before logging it; plugins may change
    /// `report.outcome`/`report.longrepr` (kept in `report`) and call `mark_test_pending` on
    /// `sched`, whose actions are appended to `out`. `collection` maps node ids to indices.
    /// Returns whether a plugin handled it.
    pub fn handlecrashitem(
        &self,
        crashitem: &str,
        report: &mut ReportView,
        sched: &mut dyn Scheduling,
        collection: &[String],
        out: &mut Vec<Action>,
    ) -> Result<bool, HookError> {
        let item = RString::from(crashitem);
        for (name, f) in self.implementing(|m| m.handlecrashitem()) {
            let mut r = report.to_abi();
            let mut handle = HostCrashSched {
                sched: &mut *sched,
                collection,
                out: &mut *out,
            };
            let result = f(
                &item,
                &mut r,
                RCrashSched_TO::from_ptr(&mut handle, TD_Opaque),
            );
            let handled = check(name, "handlecrashitem", result)?;
            report.outcome = r.outcome.to_string();
            report.longrepr = r.longrepr.to_string();
            if handled {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `pytest_xdist_getremotemodule()`, first-result: replacement Python worker code.
    pub fn getremotemodule(&self) -> Result<Option<String>, HookError> {
        for (name, f) in self.implementing(|m| m.getremotemodule()) {
            if let Some(code) = check(name, "getremotemodule", f())?.into_option() {
                return Ok(Some(code.into_string()));
            }
        }
        Ok(None)
    }

    /// Deprecated `pytest_xdist_rsyncstart(source, gateways)`.
    pub fn rsyncstart(&self, source: &str, gateways: &[GatewayView]) -> Result<(), HookError> {
        let (s, g) = (RString::from(source), gateways_abi(gateways));
        for (name, f) in self.implementing(|m| m.rsyncstart()) {
            check(name, "rsyncstart", f(&s, &g))?;
        }
        Ok(())
    }

    /// Deprecated `pytest_xdist_rsyncfinish(source, gateways)`.
    pub fn rsyncfinish(&self, source: &str, gateways: &[GatewayView]) -> Result<(), HookError> {
        let (s, g) = (RString::from(source), gateways_abi(gateways));
        for (name, f) in self.implementing(|m| m.rsyncfinish()) {
            check(name, "rsyncfinish", f(&s, &g))?;
        }
        Ok(())
    }

    /// The end of the session (after the last worker is down, before the summary): plugins
    /// write their files and may return text for the terminal summary, returned here as
    /// `(plugin name, text)` in call order.
    pub fn sessionfinish(&self, exitstatus: i32) -> Result<Vec<(String, String)>, HookError> {
        let mut out = Vec::new();
        for (name, f) in self.implementing(|m| m.sessionfinish()) {
            if let Some(text) = check(name, "sessionfinish", f(exitstatus))?.into_option() {
                out.push((name.to_owned(), text.into_string()));
            }
        }
        Ok(out)
    }
}

fn gateways_abi(g: &[GatewayView]) -> RVec<abi::RGateway> {
    g.iter().map(GatewayView::to_abi).collect()
}

struct HostCrashSched<'a> {
    sched: &'a mut dyn Scheduling,
    collection: &'a [String],
    out: &'a mut Vec<Action>,
}

impl RCrashSched for HostCrashSched<'_> {
    fn mark_test_pending(&mut self, nodeid: RStr<'_>) -> RResult<(), RString> {
        let Some(index) = self.collection.iter().position(|id| id == nodeid.as_str()) else {
            return RResult::RErr(format!("unknown test id {:?}", nodeid.as_str()).into());
        };
        match self.sched.mark_test_pending(index, self.out) {
            Ok(()) => RResult::ROk(()),
            Err(e) => RResult::RErr(e.to_string().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_opt_syntax() {
        let (n, k, v) = parse_plugin_opt("crash-retry.max-reruns=2").expect("ok");
        assert_eq!(
            (n.as_str(), k.as_str(), v.as_str()),
            ("crash-retry", "max-reruns", "2")
        );
        let (_, k, v) = parse_plugin_opt("p.patterns=a=b,c.d").expect("ok");
        assert_eq!((k.as_str(), v.as_str()), ("patterns", "a=b,c.d"));
        for bad in ["x", "x=1", ".k=1", "n.=1"] {
            let e = parse_plugin_opt(bad).expect_err(bad);
            assert_eq!(e.exit_code(), 4);
        }
    }

    #[test]
    fn empty_host_has_no_answers() {
        let h = PluginHost::empty();
        assert!(h.is_empty());
        assert_eq!(
            h.auto_num_workers(&ConfigView::default()).expect("ok"),
            None
        );
        assert_eq!(h.getremotemodule().expect("ok"), None);
        assert!(h.sessionfinish(0).expect("ok").is_empty());
    }
}
