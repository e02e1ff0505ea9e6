//! The plugin author's side: the [`Plugin`] trait, [`export_plugin!`](crate::export_plugin) and
//! the glue that turns trait methods into panic-safe `extern "C"` hooks.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Once};

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use xdist_sched::{Action, Collection, NodeKey, SchedConfig, Scheduling};

use crate::abi::{
    self, PluginModule, PluginModuleRef, RConfig, RCrashSchedMut, RGateway, RHookError,
    RHookResult, RNode, RReport, RSchedConfig, RSchedError, RScheduler, RSchedulerBox,
};
use crate::types::{
    actions_to_abi, options_from_abi, sched_config_from_abi, sched_error_to_abi, strings,
    ConfigView, GatewayView, NodeView, PluginOptions, ReportView,
};

/// Result of a hook body: `Err(message)` is reported by the host as an error of this plugin.
pub type HookResult<T = ()> = Result<T, String>;

/// The scheduler handle `handlecrashitem` receives (pytest-xdist's `sched`).
pub trait CrashScheduler {
    /// Put the test back in the queue so that another worker runs it. Works for schedulers that
    /// support rescheduling (`load`, `worksteal`, and plugin schedulers that implement it).
    fn mark_test_pending(&mut self, nodeid: &str) -> HookResult;
}

/// An xdist plugin. Implement the hooks you need (every one has a "no answer" default) and list
/// them in [`export_plugin!`](crate::export_plugin): only listed hooks are exported, so the host
/// and `xdist plugins` know exactly which hooks a plugin implements.
///
/// One value of the type lives per loaded library, created by [`Plugin::new`] with the plugin's
/// options; hooks are called with `&mut self`, one at a time. A panic inside a hook is caught and
/// reported by the host as an error naming the plugin and the hook.
#[allow(unused_variables)]
pub trait Plugin: Send + Sized + 'static {
    /// Create the plugin from its options (`--plugin-opt NAME.KEY=VALUE`). An `Err` is a usage
    /// error (the run stops with exit code 4).
    fn new(options: &PluginOptions) -> HookResult<Self>;

    /// `pytest_xdist_setupnodes(config, specs)`: once, before any worker starts.
    fn setupnodes(&mut self, config: &ConfigView, specs: &[String]) -> HookResult {
        Ok(())
    }
    /// `pytest_xdist_newgateway(gateway)`: a worker process was started (also replacements).
    fn newgateway(&mut self, gateway: &GatewayView) -> HookResult {
        Ok(())
    }
    /// `pytest_configure_node(node)`: before the worker starts its session. Keys added to
    /// `node.workerinput` reach the worker's `config.workerinput`.
    fn configure_node(&mut self, node: &mut NodeView) -> HookResult {
        Ok(())
    }
    /// `pytest_testnodeready(node)`: the worker is up; `node.workerinfo` is filled.
    fn testnodeready(&mut self, node: &NodeView) -> HookResult {
        Ok(())
    }
    /// `pytest_testnodedown(node, error)`: the worker finished (`error` is `None`) or died.
    fn testnodedown(&mut self, node: &NodeView, error: Option<&str>) -> HookResult {
        Ok(())
    }
    /// `pytest_xdist_node_collection_finished(node, ids)`.
    fn node_collection_finished(&mut self, node: &NodeView, ids: &[String]) -> HookResult {
        Ok(())
    }
    /// `pytest_xdist_make_scheduler(config, log)`, first-result: return a scheduler to replace
    /// the built-in one for this run, or `None`.
    fn make_scheduler(
        &mut self,
        config: &ConfigView,
        sched: &SchedConfig,
    ) -> HookResult<Option<Box<dyn Scheduling>>> {
        Ok(None)
    }
    /// `pytest_xdist_auto_num_workers(config)`, first-result: the worker count for `-n auto` /
    /// `-n logical` (`config.options["numprocesses"]` says which), or `None`.
    fn auto_num_workers(&mut self, config: &ConfigView) -> HookResult<Option<usize>> {
        Ok(None)
    }
    /// `pytest_handlecrashitem(crashitem, report, sched)`, first-result: a worker died while
    /// running `crashitem`. May change `report.outcome`/`report.longrepr` and call
    /// `sched.mark_test_pending(crashitem)`. Return `true` when handled (stops other plugins).
    fn handlecrashitem(
        &mut self,
        crashitem: &str,
        report: &mut ReportView,
        sched: &mut dyn CrashScheduler,
    ) -> HookResult<bool> {
        Ok(false)
    }
    /// `pytest_xdist_getremotemodule()`, first-result: replacement Python worker code.
    fn getremotemodule(&mut self) -> HookResult<Option<String>> {
        Ok(None)
    }
    /// Deprecated `pytest_xdist_rsyncstart(source, gateways)`.
    fn rsyncstart(&mut self, source: &str, gateways: &[GatewayView]) -> HookResult {
        Ok(())
    }
    /// Deprecated `pytest_xdist_rsyncfinish(source, gateways)`.
    fn rsyncfinish(&mut self, source: &str, gateways: &[GatewayView]) -> HookResult {
        Ok(())
    }
    /// xdist's own end-of-session call (pytest's `sessionfinish` + `terminal_summary`): write
    /// files, and return text for the terminal summary.
    fn sessionfinish(&mut self, exitstatus: i32) -> HookResult<Option<String>> {
        Ok(None)
    }
}

/// Turn a panic payload into a message.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Run a hook body, catching panics: the helper for authors writing raw [`crate::abi`] hooks.
/// `Err(message)` becomes an error value, a panic becomes an error value with `panicked` set.
/// Never lets a panic cross the `extern "C"` boundary.
///
/// A panic inside `f` prints nothing (the host reports it as one error line); its message gets
/// the panic's location appended (`... (at src/lib.rs:12)`).
pub fn catch_hook<T>(f: impl FnOnce() -> HookResult<T>) -> RHookResult<T> {
    install_quiet_panic_hook();
    let _ = HOOK_DEPTH.try_with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    let _ = HOOK_DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
    match result {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(message)) => RResult::RErr(RHookError {
            panicked: false,
            message: message.into(),
        }),
        Err(payload) => {
            let mut message = panic_message(payload.as_ref());
            if let Some(at) = PANIC_AT.try_with(|p| p.borrow_mut().take()).ok().flatten() {
                message.push_str(&format!(" (at {at})"));
            }
            RResult::RErr(RHookError {
                panicked: true,
                message: message.into(),
            })
        }
    }
}

thread_local! {
    /// How many [`catch_hook`] calls are running on this thread.
    static HOOK_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic caught by [`catch_hook`] happened.
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Wraps this library's panic hook (once): panics inside [`catch_hook`] are not printed (the
/// default hook would write `thread '...' panicked at ...` to xdist's stderr) but their location
/// is kept; other panics go to the previous hook.
fn install_quiet_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if HOOK_DEPTH.try_with(Cell::get).unwrap_or(0) > 0 {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                let _ = PANIC_AT.try_with(|p| *p.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Which hooks a plugin exports (the names used in [`export_plugin!`](crate::export_plugin)).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    setupnodes,
    newgateway,
    configure_node,
    testnodeready,
    testnodedown,
    node_collection_finished,
    make_scheduler,
    auto_num_workers,
    handlecrashitem,
    getremotemodule,
    rsyncstart,
    rsyncfinish,
    sessionfinish,
}

/// Per-library plugin state, declared by [`export_plugin!`](crate::export_plugin).
pub struct StateCell<T>(Mutex<Option<T>>);

impl<T> StateCell<T> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        StateCell(Mutex::new(None))
    }
}

impl<T> Default for StateCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// Implemented by [`export_plugin!`](crate::export_plugin): where the plugin value lives.
pub trait PluginState: Plugin {
    fn cell() -> &'static StateCell<Self>;
}

fn with_state<T: PluginState, R>(f: impl FnOnce(&mut T) -> HookResult<R>) -> RHookResult<R> {
    catch_hook(|| {
        let mut guard = T::cell().0.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(T::new(&PluginOptions::default())?);
        }
        match guard.as_mut() {
            Some(state) => f(state),
            None => Err("plugin state missing".to_owned()),
        }
    })
}

extern "C" fn configure<T: PluginState>(
    options: &RVec<Tuple2<RString, RString>>,
) -> RHookResult<()> {
    catch_hook(|| {
        let value = T::new(&options_from_abi(options))?;
        let mut guard = T::cell().0.lock().unwrap_or_else(|p| p.into_inner());
        *guard = Some(value);
        Ok(())
    })
}

extern "C" fn setupnodes<T: PluginState>(
    config: &RConfig,
    specs: &RVec<RString>,
) -> RHookResult<()> {
    with_state::<T, _>(|p| p.setupnodes(&ConfigView::from_abi(config)?, &strings(specs)))
}

extern "C" fn newgateway<T: PluginState>(gateway: &RGateway) -> RHookResult<()> {
    with_state::<T, _>(|p| p.newgateway(&GatewayView::from_abi(gateway)))
}

extern "C" fn configure_node<T: PluginState>(node: &mut RNode) -> RHookResult<()> {
    with_state::<T, _>(|p| {
        let mut view = NodeView::from_abi(node)?;
        p.configure_node(&mut view)?;
        node.workerinput_json = crate::types::map_json(&view.workerinput);
        Ok(())
    })
}

extern "C" fn testnodeready<T: PluginState>(node: &RNode) -> RHookResult<()> {
    with_state::<T, _>(|p| p.testnodeready(&NodeView::from_abi(node)?))
}

extern "C" fn testnodedown<T: PluginState>(
    node: &RNode,
    error: ROption<RString>,
) -> RHookResult<()> {
    with_state::<T, _>(|p| {
        p.testnodedown(
            &NodeView::from_abi(node)?,
            error.as_ref().into_option().map(|s| s.as_str()),
        )
    })
}

extern "C" fn node_collection_finished<T: PluginState>(
    node: &RNode,
    ids: &RVec<RString>,
) -> RHookResult<()> {
    with_state::<T, _>(|p| p.node_collection_finished(&NodeView::from_abi(node)?, &strings(ids)))
}

extern "C" fn make_scheduler<T: PluginState>(
    config: &RConfig,
    sched: &RSchedConfig,
) -> RHookResult<ROption<RSchedulerBox>> {
    with_state::<T, _>(|p| {
        let made = p.make_scheduler(
            &ConfigView::from_abi(config)?,
            &sched_config_from_abi(sched),
        )?;
        Ok(match made {
            Some(inner) => {
                let name = inner.name();
                ROption::RSome(abi::RScheduler_TO::from_value(
                    SchedAdapter { inner, name },
                    abi_stable::sabi_trait::TD_Opaque,
                ))
            }
            None => ROption::RNone,
        })
    })
}

extern "C" fn auto_num_workers<T: PluginState>(config: &RConfig) -> RHookResult<ROption<u64>> {
    with_state::<T, _>(|p| {
        Ok(p.auto_num_workers(&ConfigView::from_abi(config)?)?
            .map(|n| n as u64)
            .into())
    })
}

struct CrashSchedShim<'a, 'b, 'c>(&'a mut RCrashSchedMut<'b, 'c>);

impl CrashScheduler for CrashSchedShim<'_, '_, '_> {
    fn mark_test_pending(&mut self, nodeid: &str) -> HookResult {
        self.0
            .mark_test_pending(RStr::from_str(nodeid))
            .into_result()
            .map_err(|e| e.to_string())
    }
}

extern "C" fn handlecrashitem<T: PluginState>(
    crashitem: &RString,
    report: &mut RReport,
    mut sched: RCrashSchedMut<'_, '_>,
) -> RHookResult<bool> {
    with_state::<T, _>(|p| {
        let mut view = ReportView::from_abi(report);
        let handled = p.handlecrashitem(
            crashitem.as_str(),
            &mut view,
            &mut CrashSchedShim(&mut sched),
        )?;
        report.outcome = view.outcome.into();
        report.longrepr = view.longrepr.into();
        Ok(handled)
    })
}

extern "C" fn getremotemodule<T: PluginState>() -> RHookResult<ROption<RString>> {
    with_state::<T, _>(|p| Ok(p.getremotemodule()?.map(RString::from).into()))
}

fn gateways(g: &RVec<RGateway>) -> Vec<GatewayView> {
    g.iter().map(GatewayView::from_abi).collect()
}

extern "C" fn rsyncstart<T: PluginState>(
    source: &RString,
    gws: &RVec<RGateway>,
) -> RHookResult<()> {
    with_state::<T, _>(|p| p.rsyncstart(source.as_str(), &gateways(gws)))
}

extern "C" fn rsyncfinish<T: PluginState>(
    source: &RString,
    gws: &RVec<RGateway>,
) -> RHookResult<()> {
    with_state::<T, _>(|p| p.rsyncfinish(source.as_str(), &gateways(gws)))
}

extern "C" fn sessionfinish<T: PluginState>(exitstatus: i32) -> RHookResult<ROption<RString>> {
    with_state::<T, _>(|p| Ok(p.sessionfinish(exitstatus)?.map(RString::from).into()))
}

/// Build the root module of plugin `T`. Called by [`export_plugin!`](crate::export_plugin).
pub fn build_module<T: PluginState>(
    name: &'static str,
    version: &'static str,
    description: &'static str,
    hooks: &[Hook],
) -> PluginModuleRef {
    use abi_stable::prefix_type::PrefixTypeTrait;
    let has = |h: Hook| hooks.contains(&h);
    PluginModule {
        abi_revision: abi::ABI_REVISION,
        name: RStr::from_str(name),
        version: RStr::from_str(version),
        description: RStr::from_str(description),
        configure: Some(configure::<T>),
        setupnodes: has(Hook::setupnodes).then_some(setupnodes::<T> as abi::SetupnodesFn),
        newgateway: has(Hook::newgateway).then_some(newgateway::<T> as abi::NewgatewayFn),
        configure_node: has(Hook::configure_node)
            .then_some(configure_node::<T> as abi::ConfigureNodeFn),
        testnodeready: has(Hook::testnodeready).then_some(testnodeready::<T> as abi::NodeFn),
        testnodedown: has(Hook::testnodedown).then_some(testnodedown::<T> as abi::TestnodedownFn),
        node_collection_finished: has(Hook::node_collection_finished)
            .then_some(node_collection_finished::<T> as abi::CollectionFinishedFn),
        make_scheduler: has(Hook::make_scheduler)
            .then_some(make_scheduler::<T> as abi::MakeSchedulerFn),
        auto_num_workers: has(Hook::auto_num_workers)
            .then_some(auto_num_workers::<T> as abi::AutoNumWorkersFn),
        handlecrashitem: has(Hook::handlecrashitem)
            .then_some(handlecrashitem::<T> as abi::HandlecrashitemFn),
        getremotemodule: has(Hook::getremotemodule)
            .then_some(getremotemodule::<T> as abi::GetremotemoduleFn),
        rsyncstart: has(Hook::rsyncstart).then_some(rsyncstart::<T> as abi::RsyncFn),
        rsyncfinish: has(Hook::rsyncfinish).then_some(rsyncfinish::<T> as abi::RsyncFn),
        sessionfinish: has(Hook::sessionfinish)
            .then_some(sessionfinish::<T> as abi::SessionfinishFn),
    }
    .leak_into_prefix()
}

// ---------------------------------------------------------------------------------------------
// A plugin's `Box<dyn Scheduling>` behind the ABI.

struct SchedAdapter {
    inner: Box<dyn Scheduling>,
    name: &'static str,
}

fn sched_result(
    r: Result<Vec<Action>, xdist_sched::SchedError>,
) -> RResult<RVec<abi::RAction>, RSchedError> {
    match r {
        Ok(out) => RResult::ROk(actions_to_abi(&out)),
        Err(e) => RResult::RErr(sched_error_to_abi(&e)),
    }
}

fn to_usize(i: u64) -> HookResult<usize> {
    usize::try_from(i).map_err(|_| format!("test index {i} out of range"))
}

impl RScheduler for SchedAdapter {
    fn name(&self) -> RStr<'static> {
        RStr::from_str(self.name)
    }
    fn nodes(&self) -> RHookResult<RVec<u32>> {
        catch_hook(|| Ok(self.inner.nodes().into_iter().map(|n| n.0).collect()))
    }
    fn collection_is_completed(&self) -> RHookResult<bool> {
        catch_hook(|| Ok(self.inner.collection_is_completed()))
    }
    fn tests_finished(&self) -> RHookResult<bool> {
        catch_hook(|| Ok(self.inner.tests_finished()))
    }
    fn has_pending(&self) -> RHookResult<bool> {
        catch_hook(|| Ok(self.inner.has_pending()))
    }
    fn add_node(&mut self, node: u32, spec: RStr<'_>) -> RHookResult<()> {
        catch_hook(|| {
            self.inner.add_node(NodeKey(node), spec.as_str());
            Ok(())
        })
    }
    fn add_node_collection(
        &mut self,
        node: u32,
        ids: &RVec<RString>,
        groups: &RVec<ROption<RString>>,
    ) -> RHookResult<()> {
        catch_hook(|| {
            let collection = Collection {
                ids: strings(ids),
                groups: groups
                    .iter()
                    .map(|g| g.as_ref().into_option().map(|s| s.to_string()))
                    .collect(),
            };
            self.inner
                .add_node_collection(NodeKey(node), Arc::new(collection));
            Ok(())
        })
    }
    fn mark_test_complete(
        &mut self,
        node: u32,
        index: u64,
        duration: f64,
    ) -> RHookResult<RVec<abi::RAction>> {
        catch_hook(|| {
            let mut out = Vec::new();
            self.inner
                .mark_test_complete(NodeKey(node), to_usize(index)?, duration, &mut out);
            Ok(actions_to_abi(&out))
        })
    }
    fn mark_test_pending(
        &mut self,
        index: u64,
    ) -> RHookResult<RResult<RVec<abi::RAction>, RSchedError>> {
        catch_hook(|| {
            let mut out = Vec::new();
            let r = self.inner.mark_test_pending(to_usize(index)?, &mut out);
            Ok(sched_result(r.map(|()| out)))
        })
    }
    fn remove_pending_tests_from_node(
        &mut self,
        node: u32,
        indices: &RVec<u64>,
    ) -> RHookResult<RResult<RVec<abi::RAction>, RSchedError>> {
        catch_hook(|| {
            let idx = indices
                .iter()
                .map(|&i| to_usize(i))
                .collect::<HookResult<Vec<usize>>>()?;
            let mut out = Vec::new();
            let r = self
                .inner
                .remove_pending_tests_from_node(NodeKey(node), &idx, &mut out);
            Ok(sched_result(r.map(|()| out)))
        })
    }
    fn remove_node(&mut self, node: u32) -> RHookResult<Tuple2<ROption<u64>, RVec<abi::RAction>>> {
        catch_hook(|| {
            let mut out = Vec::new();
            let running = self.inner.remove_node(NodeKey(node), &mut out);
            Ok(Tuple2(
                running.map(|i| i as u64).into(),
                actions_to_abi(&out),
            ))
        })
    }
    fn schedule(&mut self) -> RHookResult<RVec<abi::RAction>> {
        catch_hook(|| {
            let mut out = Vec::new();
            self.inner.schedule(&mut out);
            Ok(actions_to_abi(&out))
        })
    }
}

/// Export a [`Plugin`] type as an xdist plugin library (crate type `cdylib`).
///
/// ```ignore
/// xdist_plugin_api::export_plugin! {
///     plugin: MyPlugin,
///     name: "my-plugin",
///     version: env!("CARGO_PKG_VERSION"),
///     description: "what it does, one line",
///     hooks: [setupnodes, testnodedown],
/// }
/// ```
///
/// `hooks` lists the [`Plugin`] methods the library exports (names of [`Hook`]); a typo is a
/// compile error. Use it once per library.
#[macro_export]
macro_rules! export_plugin {
    (
        plugin: $plugin:ty,
        name: $name:expr,
        version: $version:expr,
        description: $description:expr,
        hooks: [$($hook:ident),* $(,)?] $(,)?
    ) => {
        const _: () = {
            static __XDIST_PLUGIN_STATE: $crate::__private::StateCell<$plugin> =
                $crate::__private::StateCell::new();

            impl $crate::__private::PluginState for $plugin {
                fn cell() -> &'static $crate::__private::StateCell<Self> {
                    &__XDIST_PLUGIN_STATE
                }
            }

            fn __xdist_plugin_root_module() -> $crate::abi::PluginModuleRef {
                $crate::__private::build_module::<$plugin>(
                    $name,
                    $version,
                    $description,
                    &[$($crate::__private::Hook::$hook),*],
                )
            }

            extern "C" fn __xdist_plugin_erased_module(
            ) -> $crate::__private::abi_stable::library::RootModuleResult {
                $crate::__private::abi_stable::library::__call_root_module_loader(
                    __xdist_plugin_root_module,
                )
            }

            // What `#[abi_stable::export_root_module]` expands to, spelled with `$crate` paths
            // so that plugin crates need no direct abi_stable dependency. The symbol name is
            // abi_stable's `ROOT_MODULE_LOADER_NAME` (checked by a unit test of the API crate).
            #[export_name = "_1as_0lib_1header_0root_bmodule_bloader"]
            pub static __XDIST_PLUGIN_LIB_HEADER: $crate::__private::abi_stable::library::LibHeader =
                unsafe {
                    $crate::__private::abi_stable::library::LibHeader::from_constructor::<
                        $crate::abi::PluginModuleRef,
                    >(
                        __xdist_plugin_erased_module,
                        $crate::__private::abi_stable::library::CheckTypeLayout::Yes,
                    )
                };
        };
    };
}
