//! The host's I/O thread. Network clients run here: ldap3's connection drivers, and the
//! searches that read ahead. So a server's next page arrives, and is decoded, while the
//! plugin and the store work on the last one. Each plugin's own runtime (see `runtime`)
//! only drives that plugin's calls, and runs nothing between them.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use tokio::runtime::{Builder, Runtime};
use tokio::task::{JoinError, JoinHandle};

/// Runs `task` on the I/O thread; it goes on when the handle is dropped.
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

/// A task on the I/O thread that is cancelled when its handle is dropped: a plugin call cut
/// at its deadline leaves nothing running behind it.
pub struct Task<T>(JoinHandle<T>);

/// Runs `task` on the I/O thread until it ends or its [`Task`] is dropped.
pub fn run<F>(task: F) -> Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Task(spawn(task))
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for Task<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}
