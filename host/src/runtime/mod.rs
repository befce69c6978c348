//! The sandbox: wasmtime engine, linker, per-call limits and the on-disk compile cache.
//!
//! Every plugin call runs with a wall-clock deadline (epoch interruption), a memory cap
//! (a [`wasmtime::ResourceLimiter`]) and, for batches, a cap on entries and bytes. Plugins get
//! no ambient authority: no environment, no sockets, no preopened directories. Their
//! stdout/stderr go to roster's log.

mod limits;

pub use limits::Limits;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::caps::files::Grants;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "source",
    with: {
        "roster:plugin/files.file": crate::caps::files::OpenFile,
        "roster:plugin/ldap.connection": crate::caps::ldap::Connection,
        "roster:plugin/ldap.search": crate::caps::ldap::Search,
    },
    additional_derives: [serde::Serialize],
});

pub use exports::roster::plugin::connector::{RunEnd, RunRequest, TestReport};
pub use roster::plugin::types::Attribute;
pub use roster::plugin::types::{
    Batch, Entry, ObjectKind, PluginError, PluginInfo, Row, RunMode, SourceObject,
};

/// How often the epoch ticks; deadlines are counted in ticks.
const TICK: Duration = Duration::from_millis(10);

/// Guest stdout+stderr kept per run before writes fail.
const GUEST_OUTPUT_CAP: usize = 4 << 20;

/// What a call failed of. The message names the limit so the admin knows what to raise.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Plugin(String),
    #[error("plugin call `{call}` exceeded its timeout of {timeout:?} (deadline); raise `timeout` if the source is just slow")]
    Deadline { call: String, timeout: Duration },
    #[error("plugin exceeded its memory limit of {limit} bytes (memory_limit); raise `memory_limit` if the source needs more")]
    Memory { limit: u64 },
    #[error("plugin returned a batch over the cap ({0}); a batch may hold at most {max} entries and {max_bytes} bytes", max = limits::MAX_BATCH_ENTRIES, max_bytes = limits::MAX_BATCH_BYTES)]
    BatchCap(String),
    #[error("plugin trapped in `{call}`: {msg}")]
    Trap { call: String, msg: String },
}

impl CallError {
    /// A plugin-reported error, worded by kind.
    pub fn from_plugin(e: PluginError) -> Self {
        CallError::Plugin(match e {
            PluginError::Config(m) => format!("configuration error: {m}"),
            PluginError::Authentication(m) => format!("authentication failed: {m}"),
            PluginError::Unavailable(m) => format!("source unavailable (worth a retry): {m}"),
            PluginError::BadData(m) => format!("bad data from source: {m}"),
        })
    }
}

/// Per-store host state: WASI (with nothing granted), capability state, limits.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: limits::MemoryLimiter,
    pub(crate) grants: Grants,
    pub(crate) source: String,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Engine, linker and compile cache; one per roster process.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: PathBuf,
}

impl Runtime {
    pub fn new(cache_dir: PathBuf) -> Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(wt)?;
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
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(wt)?;
        Source::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s).map_err(wt)?;
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
        let component = Component::new(&self.engine, wasm).map_err(wt)?;
        if let Err(e) = self.write_cache(&path, &component) {
            tracing::warn!("could not write compile cache {}: {e:#}", path.display());
        }
        Ok(component)
    }

    fn write_cache(&self, path: &Path, component: &Component) -> Result<()> {
        std::fs::create_dir_all(&self.cache_dir)?;
        let bytes = component.serialize().map_err(wt)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// Instantiate a connector with its limits and grants.
    pub fn instantiate(
        &self,
        component: &Component,
        source: &str,
        limits: Limits,
        grants: Grants,
    ) -> Result<Plugin> {
        let stdout = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(GUEST_OUTPUT_CAP);
        // Nothing is inherited: no env, args, preopens, network or stdin.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: limits::MemoryLimiter::new(limits.memory),
            grants,
            source: source.to_string(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(limits.ticks());
        let bindings = Source::instantiate(&mut store, component, &self.linker)
            .map_err(wt)
            .context("instantiating plugin")?;
        Ok(Plugin {
            store,
            bindings,
            limits,
            output: vec![(stdout, "stdout", 0), (stderr, "stderr", 0)],
        })
    }
}

/// Converts wasmtime's error type into anyhow's.
pub fn wt(e: wasmtime::Error) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}

/// Guest output pipes, with how much of each was already logged.
type Outputs = Vec<(MemoryOutputPipe, &'static str, usize)>;

/// An instantiated connector. Each call is bounded by the limits.
pub struct Plugin {
    store: Store<HostState>,
    bindings: Source,
    limits: Limits,
    output: Outputs,
}

/// A run in progress inside a plugin.
pub struct Session(wasmtime::component::ResourceAny);

impl Plugin {
    fn call<R>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Store<HostState>, &Source) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.store.set_epoch_deadline(self.limits.ticks());
        let r = f(&mut self.store, &self.bindings);
        self.flush_output();
        r.map_err(|e| {
            if let Some(limit) = self.store.data().limiter.exceeded() {
                return CallError::Memory { limit };
            }
            if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                return CallError::Deadline {
                    call: name.into(),
                    timeout: self.limits.timeout,
                };
            }
            CallError::Trap {
                call: name.into(),
                msg: format!("{e:?}"),
            }
        })
    }

    /// Forward what the guest printed since the last call to roster's log.
    fn flush_output(&mut self) {
        let source = self.store.data().source.clone();
        for (pipe, stream, seen) in self.output.iter_mut() {
            let all = pipe.contents();
            if all.len() > *seen {
                for line in String::from_utf8_lossy(&all[*seen..]).lines() {
                    tracing::info!(target: "roster::plugin", "[{source} {stream}] {line}");
                }
                *seen = all.len();
            }
        }
    }

    /// Sets the files this plugin may read (known once its config is checked).
    pub fn set_grants(&mut self, grants: Grants) {
        self.store.data_mut().grants = grants;
    }

    pub fn info(&mut self) -> Result<PluginInfo, CallError> {
        self.call("info", |s, b| b.roster_plugin_connector().call_info(s))
    }

    pub fn test(&mut self, config: &str) -> Result<TestReport, CallError> {
        self.call("test", |s, b| {
            b.roster_plugin_connector().call_test(s, config)
        })?
        .map_err(CallError::from_plugin)
    }

    pub fn open(&mut self, req: &RunRequest) -> Result<Session, CallError> {
        self.call("open", |s, b| b.roster_plugin_connector().call_open(s, req))?
            .map(Session)
            .map_err(CallError::from_plugin)
    }

    pub fn next_batch(&mut self, session: &Session) -> Result<Option<Batch>, CallError> {
        let batch = self
            .call("next-batch", |s, b| {
                b.roster_plugin_connector()
                    .session()
                    .call_next_batch(s, session.0)
            })?
            .map_err(CallError::from_plugin)?;
        if let Some(batch) = &batch {
            limits::check_batch(batch)?;
        }
        Ok(batch)
    }

    pub fn finish(&mut self, session: &Session) -> Result<RunEnd, CallError> {
        self.call("finish", |s, b| {
            b.roster_plugin_connector()
                .session()
                .call_finish(s, session.0)
        })?
        .map_err(CallError::from_plugin)
    }
}
