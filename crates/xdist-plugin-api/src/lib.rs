//! The stable plugin ABI of xdist, and its loader.
//!
//! xdist plugins are `cdylib` libraries that implement some of pytest-xdist's hooks in Rust.
//! They compile against this crate; xdist loads them at run time. The ABI is built on
//! `abi_stable` (a prefix-type root module, so hooks can be appended without breaking old
//! plugins), but neither plugin authors nor the controller see `abi_stable` types: plugins
//! implement [`Plugin`] with plain Rust types ([`ConfigView`], [`NodeView`], [`ReportView`],
//! `xdist_sched::Scheduling`), and the controller uses [`host::PluginHost`].
//!
//! ABI version: [`abi::ABI_MAJOR`] `1` (checked at load: another major is refused with
//! [`host::PluginError::AbiMismatch`]), revision [`abi::ABI_REVISION`] `0`.
//! The author's guide is `docs/plugins.md` in the repository.
//!
//! # Writing a plugin
//! ```ignore
//! use xdist_plugin_api::{export_plugin, HookResult, NodeView, Plugin, PluginOptions};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn new(_options: &PluginOptions) -> HookResult<Self> {
//!         Ok(Hello)
//!     }
//!     fn configure_node(&mut self, node: &mut NodeView) -> HookResult {
//!         node.workerinput.insert("hello".into(), "world".into());
//!         Ok(())
//!     }
//! }
//! export_plugin! {
//!     plugin: Hello,
//!     name: "hello",
//!     version: env!("CARGO_PKG_VERSION"),
//!     description: "adds workerinput['hello']",
//!     hooks: [configure_node],
//! }
//! ```
//!
//! # Using plugins from the controller
//! The call sequence of one run (every call returns `Result<_, PluginError>`; on `Err(e)` print
//! `e` and exit with `e.exit_code()`: 4 for load/option errors, 3 for a failing hook):
//! ```no_run
//! use xdist_plugin_api::host::{disabled_from_args, Discovery, LoadOptions, PluginHost};
//! use xdist_plugin_api::{ConfigView, GatewayView, NodeView, ReportView};
//! # fn run() -> Result<(), xdist_plugin_api::host::PluginError> {
//! # let pytest_args: Vec<String> = vec![];
//! // 1. Find and load (--plugin paths, [tool.xdist] plugins resolved by the caller).
//! let sources = Discovery::standard(vec!["./libcrash_retry.so".into()], vec![]).sources();
//! let host = PluginHost::load_with(
//!     &sources,
//!     &LoadOptions {
//!         disabled: disabled_from_args(&pytest_args),             // -p no:NAME
//!         plugin_opts: vec!["crash-retry.max-reruns=2".into()], // --plugin-opt
//!     },
//! )?;
//! for w in host.warnings() { eprintln!("warning: {w}"); }
//! let config = ConfigView { args: pytest_args.clone(), ..Default::default() };
//! // 2. -n auto: plugins first, then the built-in count.
//! let n = host.auto_num_workers(&config)?.unwrap_or(2);
//! // 3. Workers.
//! let specs: Vec<String> = (0..n).map(|_| "popen".to_owned()).collect();
//! host.setupnodes(&config, &specs)?;
//! for (i, spec) in specs.iter().enumerate() {
//!     let id = format!("gw{i}");
//!     host.newgateway(&GatewayView { id: id.clone(), spec: spec.clone() })?;
//!     let _python_code = host.getremotemodule()?; // None: the embedded worker code
//!     let mut node = NodeView { workerid: id, spec: spec.clone(), ..Default::default() };
//!     host.configure_node(&mut node)?; // node.workerinput now has the plugins' keys
//!     // ... start the worker with node.workerinput; on `workerready` fill node.workerinfo:
//!     host.testnodeready(&node)?;
//!     // ... on `collectionfinish`:
//!     host.node_collection_finished(&node, &["test_a.py::test_1".to_owned()])?;
//! }
//! // 4. The scheduler: a plugin's, or the built-in one for --dist.
//! let sched_config = xdist_sched::SchedConfig { num_nodes: n, ..Default::default() };
//! let mut sched = match host.make_scheduler(&config, &sched_config)? {
//!     Some(s) => s,
//!     None => unimplemented!("xdist_sched::make_scheduler(...)"),
//! };
//! // ... drive `sched`; after each batch of calls: if let Some(e) = host.take_error() { ... }
//! // 5. A worker crashed while running test index 0:
//! let ids = vec!["test_a.py::test_1".to_owned()];
//! let mut report = ReportView {
//!     nodeid: ids[0].clone(), outcome: "failed".into(), when: "???".into(),
//!     longrepr: format!("worker 'gw0' crashed while running '{}'", ids[0]),
//!     ..Default::default()
//! };
//! let mut actions = Vec::new();
//! host.handlecrashitem(&ids[0], &mut report, sched.as_mut(), &ids, &mut actions)?;
//! // send `actions`, then log `report` (outcome may now be "rerun").
//! // 6. Each worker going down, then the end of the session:
//! # let node = NodeView::default();
//! host.testnodedown(&node, None)?; // Some("Not properly terminated") for a crash
//! for (plugin, text) in host.sessionfinish(0)? {
//!     println!("{plugin}:\n{text}");
//! }
//! # Ok(()) }
//! ```
//!
//! `xdist plugins` prints [`host::PluginHost::plugins`]: name, version, path, origin and the
//! implemented hooks of each plugin.

pub mod abi;
pub mod host;
mod plugin;
mod types;

pub use plugin::{catch_hook, panic_message, CrashScheduler, Hook, HookResult, Plugin};
pub use types::{ConfigView, GatewayView, JsonMap, NodeView, PluginOptions, ReportView};
/// The scheduler crate plugins implement `Scheduling` from.
pub use xdist_sched;

/// Used by [`export_plugin!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::plugin::{build_module, Hook, PluginState, StateCell};
    pub use abi_stable;
}

#[cfg(test)]
mod tests {
    #[test]
    fn export_symbol_name_matches_abi_stable() {
        assert_eq!(
            abi_stable::library::ROOT_MODULE_LOADER_NAME,
            "_1as_0lib_1header_0root_bmodule_bloader"
        );
    }
}
