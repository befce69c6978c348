//! The host's I/O thread. Network clients run here: ldap3's connection drivers, and the
//! searches that read ahead. So a server's next page arrives, and is decoded, while the
//! plugin and the store work on the last one. Each plugin's own runtime (see `runtime`)
//! only drives that plugin's calls, and runs nothing between them.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// Runs `task` on the I/O thread.
pub fn spawn<F>(task: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    static IO: OnceLock<Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("roster-io")
            .enable_all()
            .build()
            .expect("the I/O runtime starts")
    })
    .spawn(task)
}
