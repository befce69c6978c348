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
        })
    }

    /// Runs `f` with a connection on a blocking thread.
    pub async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || pool.with_blocking(f))
            .await
            .map_err(|e| anyhow!("database task: {e}"))?
    }

    /// A connection of its own, outside the pool's limit: for a response streamed to a
    /// client, which may read slowly and must not hold a pooled connection meanwhile.
    pub fn own(&self) -> Result<Store> {
        Store::open_read(&self.path)
    }

    pub fn with_blocking<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
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
