//! Reader connections for the API, apart from the runs' writer: with WAL, reads never wait
//! for a run and see only committed data.

use crate::store::Store;
use anyhow::{anyhow, Result};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Store>>,
}

/// Idle connections kept; more are opened under load and closed after.
const KEEP: usize = 16;

impl Pool {
    pub fn new(path: PathBuf) -> Arc<Pool> {
        Arc::new(Pool {
            path,
            idle: Mutex::new(Vec::new()),
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

    pub fn with_blocking<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        let store = self.idle.lock().expect("pool lock").pop();
        let store = match store {
            Some(s) => s,
            None => Store::open(&self.path)?,
        };
        let result = f(&store);
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.len() < KEEP {
            idle.push(store);
        }
        result
    }
}
