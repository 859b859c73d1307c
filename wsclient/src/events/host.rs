//! The host event loop (the seed's `Worker::runAll()`): a process-wide
//! tokio runtime for clients connected outside any runtime, a count of live
//! connections, and graceful shutdown.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};
use tokio::sync::Notify;

use super::conn::Conn;
use crate::proto::CloseCode;

struct Host {
    runtime: OnceLock<Runtime>,
    live: AtomicUsize,
    changed: Notify,
    /// Running connections by id (for `shutdown`); each removes itself
    /// when its task ends, so finished connections hold no memory here.
    conns: Mutex<BTreeMap<u64, Conn>>,
    shutting_down: AtomicBool,
}

static HOST: Host = Host {
    runtime: OnceLock::new(),
    live: AtomicUsize::new(0),
    changed: Notify::const_new(),
    conns: Mutex::new(BTreeMap::new()),
    shutting_down: AtomicBool::new(false),
};

fn runtime() -> &'static Runtime {
    HOST.runtime.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wsclient-host")
            .enable_all()
            .build()
            // Without a runtime nothing can run; this only fails when the OS
            // refuses threads or an epoll instance.
            .unwrap_or_else(|e| panic!("wsclient: cannot start the host runtime: {e}"))
    })
}

fn conns() -> std::sync::MutexGuard<'static, BTreeMap<u64, Conn>> {
    HOST.conns
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A connection counted as live and listed for [`shutdown`] until this is
/// dropped, which its task does when it ends (or when the runtime drops
/// the task).
#[derive(Debug)]
pub(crate) struct Registration(u64);

impl Registration {
    /// Counts `conn` as live and lists it.
    pub(crate) fn new(conn: &Conn) -> Registration {
        HOST.live.fetch_add(1, Ordering::AcqRel);
        let id = conn.id();
        conns().insert(id, conn.clone());
        Registration(id)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        conns().remove(&self.0);
        HOST.live.fetch_sub(1, Ordering::AcqRel);
        HOST.changed.notify_waiters();
    }
}

/// Runs a connection's task: on the current tokio runtime if there is one,
/// else on the host runtime. The task is spawned as it is, not wrapped in
/// another future: an `async` wrapper that awaits it would hold it twice
/// (once captured, once being awaited), doubling each connection's task.
pub(crate) fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
    match Handle::try_current() {
        Ok(h) => {
            h.spawn(fut);
        }
        Err(_) => {
            runtime().spawn(fut);
        }
    }
}

/// True once [`shutdown`] (or Ctrl-C in [`run_all`]) began: no reconnects.
pub(crate) fn is_shutting_down() -> bool {
    HOST.shutting_down.load(Ordering::Acquire)
}

/// The number of event-driven connections still running (open, connecting
/// or waiting to reconnect).
#[must_use]
pub fn live_connections() -> usize {
    HOST.live.load(Ordering::Acquire)
}

/// Closes every connection with 1001 (going away) and stops reconnects;
/// `run_all` returns once they have closed.
pub fn shutdown() {
    HOST.shutting_down.store(true, Ordering::Release);
    for c in conns().values() {
        c.close_with(CloseCode::GOING_AWAY, "shutting down");
    }
}

async fn wait_all() {
    loop {
        let changed = HOST.changed.notified();
        if live_connections() == 0 {
            return;
        }
        changed.await;
    }
}

/// Runs the host event loop (the seed's `Worker::runAll()`): blocks until
/// every event-driven connection has finished. Ctrl-C starts a graceful
/// shutdown: close frames are sent, callbacks run, then it returns (after
/// at most 10 s).
///
/// Call it from a plain `fn main()`, not from inside a tokio runtime (there,
/// await [`Conn::finished`] instead).
pub fn run_all() {
    runtime().block_on(async {
        tokio::select! {
            () = wait_all() => {}
            _ = tokio::signal::ctrl_c() => {
                shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(10), wait_all()).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::events::Client;

    #[tokio::test]
    async fn finished_connections_leave_the_host_list() {
        // A port with nothing listening: each connection fails once and
        // finishes (no reconnect policy).
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("ws://127.0.0.1:{port}/");
        let conns: Vec<Conn> = (0..50)
            .map(|_| Client::new(&url).unwrap().connect())
            .collect();
        for c in &conns {
            tokio::time::timeout(Duration::from_secs(10), c.finished())
                .await
                .unwrap();
        }
        // The task removes its entry right after `finished` fires.
        let ids: Vec<u64> = conns.iter().map(Conn::id).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ids.iter().any(|id| conns_contains(*id)) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "finished connections still held by the host"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn conns_contains(id: u64) -> bool {
        super::conns().contains_key(&id)
    }
}
