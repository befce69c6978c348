//! Reader connections for the API (read-only, see `Store::open_read`), apart from the runs'
//! writer: with WAL, reads never wait for a run and see only committed data.

use crate::store::Store;
use anyhow::{anyhow, Result};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Idle>,
    freed: Condvar,
    /// Async callers wait here, not on a blocking thread each: the threads (and their
    /// allocator heaps) stay as few as the connections.
    permits: Arc<tokio::sync::Semaphore>,
}

#[derive(Default)]
struct Idle {
    stores: Vec<Store>,
    /// Connections open now, idle or in use.
    open: usize,
}

/// Connections at most: more would only add memory (a page cache each) on a machine
/// with a few cores; requests beyond wait for one to be free.
const MAX: usize = 8;

impl Pool {
    pub fn new(path: PathBuf) -> Arc<Pool> {
        Arc::new(Pool {
            path,
            idle: Mutex::new(Idle::default()),
            freed: Condvar::new(),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX)),
        })
    }

    /// Runs `f` with a connection on a blocking thread.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self.permit().await?;
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with_blocking(f)
        })
        .await
        .map_err(|e| anyhow!("database task: {e}"))?
    }

    /// A turn at the pool, for a blocking task that then calls `with_blocking`.
    pub async fn permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        (self.permits.clone().acquire_owned().await).map_err(|e| anyhow!("database pool: {e}"))
    }

    pub fn with_blocking<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        // On one of tokio's workers (a quick check from a handler): let its other tasks move
        // away first. The PostgreSQL client blocks on a runtime of its own, which tokio
        // refuses on its own workers.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| self.with_pooled(f))
            }
            _ => self.with_pooled(f),
        }
    }

    fn with_pooled<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let store = {
            let mut idle = self.idle.lock().expect("pool lock");
            loop {
                if let Some(s) = idle.stores.pop() {
                    break Some(s);
                }
                if idle.open < MAX {
                    idle.open += 1;
                    break None;
                }
                idle = self.freed.wait(idle).expect("pool lock");
            }
        };
        let store = match store {
            Some(s) => s,
            None => match Store::open_read(&self.path) {
                Ok(s) => s,
                Err(e) => {
                    self.idle.lock().expect("pool lock").open -= 1;
                    self.freed.notify_one();
                    return Err(e);
                }
            },
        };
        let result = f(&store);
        self.idle.lock().expect("pool lock").stores.push(store);
        self.freed.notify_one();
        result
    }
}
