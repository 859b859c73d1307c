//! Deadlines for the timeouts that every connection starts and almost
//! never reaches: DNS, TCP connect, TLS, the upgrade, the close handshake.
//!
//! They are watched by one background thread of the process rather than
//! by the tokio runtime's timer. A tokio timer costs each connection more
//! than its registration: while one is pending, every sleep of the runtime
//! is an `epoll_wait` with a timeout, for which the kernel arms and cancels
//! a timer each time; and registering one due sooner than the runtime's
//! next wake-up wakes the runtime's driver (an `eventfd` write and a
//! spurious turn of the event loop), which the close timer after the
//! upgrade's did on every connection. On the benchmark's VM the upgrade's
//! tokio timer alone cost ~1.2 µs of CPU per connect (of ~40), measured
//! with connects alternating in one process. Here a registration is a
//! lock and a map insert, and the runtime's sleeps stay untimed unless the
//! application has timers of its own.
//!
//! The watcher sleeps until the earliest deadline, but never longer than
//! [`TICK`] while any is pending, so that a later registration (the usual
//! case: every connection's deadline is seconds away) never has to wake
//! it; only one due sooner than its next wake-up does (a timeout shorter
//! than [`TICK`], or the first after an idle spell). With nothing pending
//! for a few ticks it sleeps until woken. Deadlines run on real time:
//! tokio's paused test clock does not move them. If the thread cannot be
//! started, deadlines fall back to tokio timers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The watcher's longest sleep while deadlines are pending.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// Ticks with nothing pending before the watcher sleeps until woken.
const IDLE_TICKS: u32 = 4;

/// What the watcher knows, under one lock.
struct Watch {
    /// Pending deadlines, earliest first: (due, id) → the task to wake.
    pending: BTreeMap<(Instant, u64), Waker>,
    /// The next registration's id.
    next_id: u64,
    /// When the watcher wakes next; `None` while it sleeps until woken.
    wakes_at: Option<Instant>,
}

static WATCH: Mutex<Watch> = Mutex::new(Watch {
    pending: BTreeMap::new(),
    next_id: 0,
    wakes_at: None,
});

/// The watcher thread, started on first use; `None` if it could not be.
static WATCHER: OnceLock<Option<Thread>> = OnceLock::new();

fn watch() -> MutexGuard<'static, Watch> {
    // The lock guards plain data that no code path leaves half-updated
    // (wakers are woken after it is released), so a poisoned lock is
    // still consistent.
    WATCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn watcher() -> Option<&'static Thread> {
    WATCHER
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("wsclient-deadlines".into())
                .spawn(run_watcher)
                .ok()
                .map(|h| h.thread().clone())
        })
        .as_ref()
}

fn run_watcher() {
    let mut idle = 0u32;
    let mut due = Vec::new();
    loop {
        let now = Instant::now();
        let wakes_at = {
            let mut w = watch();
            while let Some(first) = w.pending.first_entry() {
                if first.key().0 > now {
                    break;
                }
                due.push(first.remove());
            }
            let wakes_at = match w.pending.first_key_value() {
                Some((&(at, _), _)) => {
                    idle = 0;
                    Some(at.min(now + TICK))
                }
                None if idle < IDLE_TICKS => {
                    idle += 1;
                    Some(now + TICK)
                }
                None => None,
            };
            w.wakes_at = wakes_at;
            wakes_at
        };
        for waker in due.drain(..) {
            waker.wake();
        }
        // A registration between the lock's release and here unparks us
        // first, and the park then returns at once.
        match wakes_at {
            Some(at) => std::thread::park_timeout(at.saturating_duration_since(now)),
            None => std::thread::park(),
        }
    }
}

/// A deadline `after` its first wait begins: [`Deadline::poll_elapsed`]
/// is ready once it has passed.
#[derive(Debug)]
pub(crate) struct Deadline {
    after: Duration,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not waited on yet.
    Idle,
    /// Registered with the watcher, with the waker it holds.
    Watched { key: (Instant, u64), waker: Waker },
    /// Beyond any clock (a timeout of `Duration::MAX`): never elapses.
    Never,
    /// The watcher thread could not be started: a tokio timer.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// Elapsed.
    Elapsed,
}

impl Deadline {
    /// A deadline `after` from the first time it is waited on.
    pub(crate) fn after(after: Duration) -> Deadline {
        Deadline {
            after,
            state: State::Idle,
        }
    }

    /// Ready once the deadline has passed; otherwise `cx`'s task is woken
    /// when it does.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.state {
            State::Elapsed => Poll::Ready(()),
            State::Never => Poll::Pending,
            State::Tokio(sleep) => {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.state = State::Elapsed;
                Poll::Ready(())
            }
            State::Idle => {
                let now = Instant::now();
                let Some(at) = now.checked_add(self.after) else {
                    self.state = State::Never;
                    return Poll::Pending;
                };
                if at <= now {
                    self.state = State::Elapsed;
                    return Poll::Ready(());
                }
                let Some(thread) = watcher() else {
                    let mut sleep = Box::pin(tokio::time::sleep(self.after));
                    let poll = sleep.as_mut().poll(cx);
                    self.state = State::Tokio(sleep);
                    return poll;
                };
                let waker = cx.waker().clone();
                let mut w = watch();
                let key = (at, w.next_id);
                w.next_id += 1;
                w.pending.insert(key, waker.clone());
                let wake = w.wakes_at.is_none_or(|t| at < t);
                if wake {
                    w.wakes_at = Some(at);
                }
                drop(w);
                if wake {
                    thread.unpark();
                }
                self.state = State::Watched { key, waker };
                Poll::Pending
            }
            State::Watched { key, waker } => {
                if Instant::now() >= key.0 {
                    let key = *key;
                    watch().pending.remove(&key);
                    self.state = State::Elapsed;
                    return Poll::Ready(());
                }
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                    if let Some(held) = watch().pending.get_mut(key) {
                        held.clone_from(waker);
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let State::Watched { key, .. } = &self.state {
            watch().pending.remove(key);
        }
    }
}

/// `fut` within `after` (from its first wait): its output, or `None` when
/// the deadline passed first.
pub(crate) async fn timeout<F: Future>(after: Duration, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut deadline = Deadline::after(after);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        deadline.poll_elapsed(cx).map(|()| None)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_elapses_after_its_time_and_not_before() {
        let t = Instant::now();
        let out = timeout(Duration::from_millis(120), std::future::pending::<()>()).await;
        let took = t.elapsed();
        assert!(out.is_none());
        assert!(took >= Duration::from_millis(120), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }

    #[tokio::test]
    async fn a_future_that_finishes_first_wins_and_leaves_nothing_registered() {
        let out = timeout(Duration::from_secs(3000), async {
            tokio::task::yield_now().await;
            7
        })
        .await;
        assert_eq!(out, Some(7));
        // Other tests' deadlines may be pending at the same time, none as
        // far away as this one, whose registration must be gone.
        let far = Instant::now() + Duration::from_secs(1000);
        assert!(watch().pending.keys().all(|(at, _)| *at < far));
    }

    #[tokio::test]
    async fn a_short_deadline_wakes_a_watcher_sleeping_for_a_later_one() {
        // A long deadline first, so that the watcher sleeps a full tick.
        let long = tokio::spawn(timeout(
            Duration::from_secs(20),
            std::future::pending::<()>(),
        ));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t = Instant::now();
        let out = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        let took = t.elapsed();
        assert!(out.is_none());
        // Without the wake-up it would fire at the watcher's next tick,
        // about 220 ms after it was registered.
        assert!(took < Duration::from_millis(150), "fired after {took:?}");
        long.abort();
        let _ = long.await;
    }

    #[tokio::test]
    async fn zero_elapses_at_once_and_max_never() {
        assert_eq!(
            timeout(Duration::ZERO, std::future::pending::<()>()).await,
            None
        );
        let never = timeout(Duration::MAX, std::future::pending::<()>());
        let out = tokio::time::timeout(Duration::from_millis(50), never).await;
        assert!(out.is_err(), "Duration::MAX elapsed");
    }

    #[tokio::test]
    async fn many_deadlines_each_fire_once() {
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                tokio::spawn(timeout(
                    Duration::from_millis(10 + i % 50),
                    std::future::pending::<()>(),
                ))
            })
            .collect();
        for t in tasks {
            let out = tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("every deadline fires")
                .expect("no panic");
            assert!(out.is_none());
        }
    }
}
