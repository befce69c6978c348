//! The sandbox: wasmtime engine, linker, per-call limits and the on-disk compile cache.
//!
//! Every plugin call runs with a wall-clock deadline, a memory cap (a
//! [`wasmtime::ResourceLimiter`]) and, for batches, a cap on entries and bytes. Plugins get
//! no ambient authority: no environment, no sockets, no preopened directories. Their
//! stdout/stderr go to roster's log. What a plugin may reach is decided by the capability
//! contexts in [`crate::caps`]; the runtime only carries them.
//!
//! # Async
//! The host's capabilities wait on the network (ldap3 and reqwest are async), and a plugin
//! can also wait inside the host through WASI clocks and polls. So plugins run on
//! wasmtime's async support: each [`Plugin`] owns its `Store` and a current-thread tokio
//! runtime, and each call is a future raced against the source's `timeout`.
//! - Guest code that spins is stopped by the epoch deadline, which traps (a spinning guest
//!   never yields to the timer).
//! - A guest waiting in the host (a sleep, a poll, a slow server) is stopped by the timer:
//!   the call's future is dropped, which cancels the wait, and the plugin is spent.
//!
//! One owner per store, as Zed and Spin do, keeps wasmtime's `Store` single-threaded; the
//! sync pipeline drives the plugin from its own thread, so calls look blocking to it.

mod error;
mod limits;

pub use crate::bindings::{
    Attribute, Batch, Entry, MapResult, ObjectKind, PluginError, PluginInfo, Row, RunEnd, RunMode,
    RunRequest, SourceObject, TestReport,
};
pub use error::{CallError, PluginErrorKind, PluginFailure, TrapCause};
pub use limits::{Limits, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES};

use crate::bindings::mapper::Mapper;
use crate::bindings::Source;
use crate::caps::emit::Refused;
use crate::caps::{Capabilities, CapabilitiesView};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// How often the epoch ticks; deadlines are counted in ticks.
const TICK: Duration = Duration::from_millis(10);

/// Guest stdout+stderr kept per run before writes fail.
const GUEST_OUTPUT_CAP: usize = 4 << 20;

/// Host resources (open files, pollables, streams, searches) one plugin may hold at once.
pub const MAX_HOST_HANDLES: usize = 10_000;

/// The version of the `roster:plugin` contract this host speaks (`wit/`).
pub const CONTRACT_VERSION: &str = "0.1.0";

/// The connector interface a source component must export.
const CONNECTOR: &str = "roster:plugin/connector";

/// Per-store data: WASI (with nothing granted), the capability contexts, the memory limiter.
pub struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: limits::MemoryLimiter,
    caps: Capabilities,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CapabilitiesView for StoreData {
    fn capabilities(&mut self) -> (&mut Capabilities, &mut ResourceTable) {
        (&mut self.caps, &mut self.table)
    }
}

/// Engine, linker and compile cache; one per roster process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreData>,
    cache_dir: PathBuf,
}

impl Runtime {
    pub fn new(cache_dir: PathBuf) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        // For profiling with `perf`: name the guests' compiled functions in /tmp/perf-PID.map.
        if std::env::var_os("ROSTER_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        let engine = Engine::new(&config)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("roster-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        crate::caps::add_to_linker(&mut linker)?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
        })
    }

    /// Compile a component, or load it from the cache keyed by its sha256 and wasmtime's
    /// own compatibility hash.
    pub fn load(&self, wasm: &[u8]) -> Result<Component> {
        let digest = hex::encode(Sha256::digest(wasm));
        let compat = {
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&self.engine.precompile_compatibility_hash(), &mut h);
            std::hash::Hasher::finish(&h)
        };
        let path = self
            .cache_dir
            .join(format!("{}-{compat:016x}.cwasm", &digest[..32]));
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this engine
            // configuration (the name carries the compatibility hash) into roster's own cache.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => return Ok(c),
                Err(e) => tracing::warn!("ignoring unusable compile cache {}: {e}", path.display()),
            }
        }
        // A component's preamble is `\0asm` with layer 1; a core module has layer 0.
        if wasm.len() < 8 || &wasm[..4] != b"\0asm" || wasm[6..8] != [1, 0] {
            anyhow::bail!("not a WebAssembly component (a core module or another file)");
        }
        let component = Component::new(&self.engine, wasm)?;
        if let Err(e) = self.write_cache(&path, &component) {
            tracing::warn!("could not write compile cache {}: {e:#}", path.display());
        }
        Ok(component)
    }

    fn write_cache(&self, path: &Path, component: &Component) -> Result<()> {
        std::fs::create_dir_all(&self.cache_dir)?;
        let bytes = component.serialize()?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Checks from the component's type, before anything runs, that it exports the
    /// connector of a contract version this host speaks.
    pub fn check_contract(&self, component: &Component) -> Result<()> {
        let ty = component.component_type();
        let names: Vec<String> = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        let Some(found) = names
            .iter()
            .find(|n| n.split('@').next() == Some(CONNECTOR))
        else {
            anyhow::bail!(
                "the component does not export {CONNECTOR}@{CONTRACT_VERSION} (it exports {}): \
                 it is not a roster connector",
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            );
        };
        let version = found.split_once('@').map(|(_, v)| v).unwrap_or("");
        if !contract_compatible(version) {
            anyhow::bail!(
                "the component was built against contract {found}, but this roster supports \
                 {CONNECTOR}@{CONTRACT_VERSION}: rebuild it with an SDK for {CONTRACT_VERSION} \
                 or use a roster that supports {version}"
            );
        }
        Ok(())
    }

    /// Instantiate a connector with its limits and what it is granted (see
    /// [`crate::caps::grant`]; a connector is often instantiated with nothing and granted
    /// its capabilities once its `info` is known).
    pub fn instantiate(
        &self,
        component: &Component,
        limits: Limits,
        caps: Capabilities,
    ) -> Result<Plugin> {
        self.check_contract(component)?;
        self.instance(component, limits, caps)
    }

    /// Instantiate a mapping plugin (world `mapper`) with its limits and grants.
    pub fn instantiate_mapper(
        &self,
        component: &Component,
        limits: Limits,
        caps: Capabilities,
    ) -> Result<MappingPlugin> {
        self.instance(component, limits, caps)
    }

    fn instance<B: Bindings>(
        &self,
        component: &Component,
        limits: Limits,
        caps: Capabilities,
    ) -> Result<Instance<B>> {
        let stdout = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        // Nothing is inherited: no env, args, preopens, network or stdin.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_HANDLES);
        let state = StoreData {
            wasi,
            table,
            limiter: limits::MemoryLimiter::new(limits.memory),
            caps,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(limits::HOSTCALL_FUEL);
        store.set_epoch_deadline(limits.ticks());
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the plugin's async runtime")?;
        let bindings = tokio
            .block_on(B::instantiate(&mut store, component, &self.linker))
            .map_err(anyhow::Error::from)
            .context("instantiating plugin")?;
        Ok(Instance {
            store,
            bindings,
            tokio,
            limits,
            spent: false,
            output: vec![(stdout, "stdout", 0), (stderr, "stderr", 0)],
            held: None,
        })
    }
}

/// The generated bindings of a world the runtime instantiates.
pub trait Bindings: Sized {
    fn instantiate(
        store: &mut Store<StoreData>,
        component: &Component,
        linker: &Linker<StoreData>,
    ) -> impl std::future::Future<Output = wasmtime::Result<Self>>;
}

impl Bindings for Source {
    async fn instantiate(
        store: &mut Store<StoreData>,
        component: &Component,
        linker: &Linker<StoreData>,
    ) -> wasmtime::Result<Self> {
        Source::instantiate_async(store, component, linker).await
    }
}

impl Bindings for Mapper {
    async fn instantiate(
        store: &mut Store<StoreData>,
        component: &Component,
        linker: &Linker<StoreData>,
    ) -> wasmtime::Result<Self> {
        Mapper::instantiate_async(store, component, linker).await
    }
}

/// Whether a component's contract version is semver-compatible with ours: the same major
/// version, and for 0.x the same minor.
fn contract_compatible(version: &str) -> bool {
    let parts = |v: &str| -> Option<(u64, u64)> {
        let mut it = v.split('.');
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    match (parts(version), parts(CONTRACT_VERSION)) {
        (Some((0, minor)), Some((0, ours))) => minor == ours,
        (Some((major, _)), Some((ours, _))) => major == ours,
        _ => false,
    }
}

/// Guest output pipes, with how much of each was already logged.
type Outputs = Vec<(MemoryOutputPipe, &'static str, usize)>;

/// An instantiated plugin of one world. Each call is bounded by the limits.
pub struct Instance<B> {
    store: Store<StoreData>,
    bindings: B,
    tokio: tokio::runtime::Runtime,
    limits: Limits,
    /// A call was cut off: the instance may be mid-way through anything.
    spent: bool,
    output: Outputs,
    /// What a `next-batch` call returned while it had also pushed batches: it goes to the
    /// run after them.
    held: Option<Option<Batch>>,
}

/// An instantiated connector.
pub type Plugin = Instance<Source>;
/// An instantiated mapping plugin.
pub type MappingPlugin = Instance<Mapper>;

/// A run in progress inside a plugin.
pub struct Session(wasmtime::component::ResourceAny);

impl<B> Instance<B> {
    fn call<R>(
        &mut self,
        name: &str,
        f: impl AsyncFnOnce(&mut Store<StoreData>, &B) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if self.spent {
            return Err(CallError::Spent);
        }
        self.store.set_epoch_deadline(self.limits.ticks());
        let (store, bindings, timeout) = (&mut self.store, &self.bindings, self.limits.timeout);
        let r = self
            .tokio
            .block_on(async move { tokio::time::timeout(timeout, f(store, bindings)).await });
        let panic = self.flush_output();
        let r = match r {
            Ok(r) => r,
            Err(_elapsed) => {
                self.spent = true;
                return Err(CallError::Deadline {
                    call: name.into(),
                    timeout,
                });
            }
        };
        r.map_err(|e| {
            self.spent = true;
            tracing::debug!("plugin call `{name}` failed: {e:?}");
            if let Some(limit) = self.store.data().limiter.exceeded() {
                return CallError::Memory { limit };
            }
            if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                return CallError::Deadline {
                    call: name.into(),
                    timeout,
                };
            }
            if e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<wasmtime::component::ResourceTableError>(),
                    Some(wasmtime::component::ResourceTableError::Full)
                )
            }) {
                return CallError::Handles;
            }
            if limits::is_hostcall_fuel(&e) {
                return CallError::BatchCap(crate::batch::OverCap(format!(
                    "over {} bytes in one call",
                    limits::HOSTCALL_FUEL
                )));
            }
            CallError::Trap {
                call: name.into(),
                cause: trap_cause(&e, panic),
            }
        })
    }

    /// Forward what the guest printed since the last call to roster's log. Returns the
    /// message of a guest panic, if the guest printed one.
    fn flush_output(&mut self) -> Option<String> {
        let source = &self.store.data().caps.log.source;
        let mut panic = None;
        for (pipe, stream, seen) in self.output.iter_mut() {
            let all = pipe.contents();
            if all.len() > *seen {
                let text = String::from_utf8_lossy(&all[*seen..]);
                for line in text.lines() {
                    tracing::info!(target: "roster::plugin", "[{source} {stream}] {line}");
                }
                panic = panic.or_else(|| guest_panic(&text));
                *seen = all.len();
            }
        }
        panic
    }

    /// The largest linear memory the plugin has had so far, in bytes.
    pub fn peak_memory(&self) -> u64 {
        self.store.data().limiter.peak()
    }

    /// Grants what the source's config allows, once the plugin's `info` is known. Only
    /// before a run: it replaces every capability's context.
    pub fn set_capabilities(&mut self, caps: Capabilities) {
        self.store.data_mut().caps = caps;
    }
}

impl Plugin {
    pub fn info(&mut self) -> Result<PluginInfo, CallError> {
        self.call("info", async |s, b| {
            b.roster_plugin_connector().call_info(s).await
        })
    }

    pub fn test(&mut self, config: &str) -> Result<TestReport, CallError> {
        self.call("test", async |s, b| {
            b.roster_plugin_connector().call_test(s, config).await
        })?
        .map_err(CallError::from_plugin)
    }

    pub fn open(&mut self, req: &RunRequest) -> Result<Session, CallError> {
        self.call("open", async |s, b| {
            b.roster_plugin_connector().call_open(s, req).await
        })?
        .map(Session)
        .map_err(CallError::from_plugin)
    }

    /// The next batch: first those the plugin pushed (`emit`) during its last call, then
    /// what that call returned, then a new call.
    pub fn next_batch(&mut self, session: &Session) -> Result<Option<Batch>, CallError> {
        if let Some(batch) = self.spooled()? {
            return Ok(Some(batch));
        }
        if let Some(held) = self.held.take() {
            return Ok(held);
        }
        let batch = self.call("next-batch", async |s, b| {
            b.roster_plugin_connector()
                .session()
                .call_next_batch(s, session.0)
                .await
        });
        if let Some(refused) = self.store.data_mut().caps.emit.refused.take() {
            self.spent = true;
            return Err(match refused {
                Refused::OverCap(e) => CallError::BatchCap(e),
                Refused::Spool(m) => CallError::Spool(m),
            });
        }
        let batch = batch?.map_err(CallError::from_plugin)?;
        if let Some(batch) = &batch {
            limits::check_batch(batch)?;
        }
        if self.store.data().caps.emit.pending() > 0 {
            self.held = Some(batch);
            return self.spooled();
        }
        Ok(batch)
    }

    fn spooled(&mut self) -> Result<Option<Batch>, CallError> {
        (self.store.data_mut().caps.emit.take()).map_err(|e| CallError::Spool(format!("{e:#}")))
    }

    pub fn finish(&mut self, session: &Session) -> Result<RunEnd, CallError> {
        self.call("finish", async |s, b| {
            b.roster_plugin_connector()
                .session()
                .call_finish(s, session.0)
                .await
        })?
        .map_err(CallError::from_plugin)
    }
}

impl MappingPlugin {
    /// Prepares the mapping with its config (JSON).
    pub fn init(&mut self, config: &str) -> Result<(), CallError> {
        self.call("init", async |s, b| {
            b.roster_plugin_mapping().call_init(s, config).await
        })?
        .map_err(CallError::from_plugin)
    }

    /// Maps a batch of objects: one result per object, in order.
    pub fn transform(
        &mut self,
        objects: &[SourceObject],
    ) -> Result<Vec<Result<MapResult, String>>, CallError> {
        let out = self.call("transform", async |s, b| {
            b.roster_plugin_mapping().call_transform(s, objects).await
        })?;
        if out.len() != objects.len() {
            self.spent = true;
            return Err(CallError::Contract(format!(
                "the mapping plugin returned {} results for {} objects",
                out.len(),
                objects.len()
            )));
        }
        Ok(out)
    }
}

/// The message of a Rust guest's panic in what it printed: `panicked at FILE:LINE:COL:`
/// and the message on the next line, joined.
fn guest_panic(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let at = lines.find(|l| l.contains("panicked at"))?.trim();
    match lines.next() {
        Some(msg) if at.ends_with(':') => Some(format!("{at} {}", msg.trim())),
        _ => Some(at.to_string()),
    }
}

/// A trap's cause in one line: the guest's panic message when it printed one, then the
/// trap itself. The wasm backtrace stays in the debug log.
fn trap_cause(e: &wasmtime::Error, panic: Option<String>) -> TrapCause {
    let trap = e.downcast_ref::<wasmtime::Trap>().copied();
    let cause = match trap {
        Some(trap) => trap.to_string(),
        None => e.root_cause().to_string(),
    };
    let summary = match &panic {
        Some(p) => format!("{p} ({cause})"),
        None => cause,
    };
    TrapCause {
        summary,
        trap,
        panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_versions_are_compatible_by_semver() {
        assert!(contract_compatible("0.1.0"));
        assert!(contract_compatible("0.1.7"));
        for v in ["0.2.0", "9.9.9", "1.1.0", "", "x"] {
            assert!(!contract_compatible(v), "{v}");
        }
    }

    #[test]
    fn a_guest_panic_is_found_with_its_message() {
        let out = "starting\nthread '<unnamed>' panicked at src/lib.rs:12:5:\nthe directory said no\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            guest_panic(out).as_deref(),
            Some("thread '<unnamed>' panicked at src/lib.rs:12:5: the directory said no")
        );
        assert_eq!(
            guest_panic("panicked at 'old style', src/lib.rs:1").as_deref(),
            Some("panicked at 'old style', src/lib.rs:1")
        );
        assert_eq!(guest_panic("all is well\n"), None);
    }

    #[test]
    fn a_trap_is_its_cause_with_the_panic_first() {
        let e = wasmtime::Error::from(wasmtime::Trap::UnreachableCodeReached)
            .context("error while executing at wasm backtrace:\n 0: 0x1 - <unknown>!f");
        let cause = trap_cause(&e, None).summary;
        assert!(cause.contains("unreachable"), "{cause}");
        assert!(!cause.contains("backtrace"), "{cause}");
        let with_panic = trap_cause(&e, Some("panicked at x: boom".into())).summary;
        assert!(
            with_panic.starts_with("panicked at x: boom ("),
            "{with_panic}"
        );
    }
}
