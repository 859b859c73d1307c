//! Deadlines for the timeouts that every connection starts and almost
//! never reaches: DNS, TCP connect, TLS, the upgrade, the close handshake.
//!
//! On Linux they are kept by the runtime itself, in one wheel per tokio
//! runtime: a map of pending deadlines and one `timerfd` alarm, read by a
//! small task on that runtime (the ticker) that wakes the tasks whose
//! deadlines have passed. Registering a deadline is a lock and a map
//! insert, with no system call (but for re-arming the alarm, below) and
//! no thread.
//!
//! Why not tokio's timer: one costs each connection more than its
//! registration. While it is pending every sleep of the runtime is an
//! `epoll_wait` with a timeout, for which the kernel arms and cancels a
//! timer each time; and registering one due sooner than the runtime's next
//! wake-up wakes the runtime's driver (an `eventfd` write and a spurious
//! turn of the event loop), which the close timer after the upgrade's did
//! on every connection. On the benchmark's VM the upgrade's tokio timer
//! alone cost ~1.2 µs of CPU per connect (of ~40). The alarm's timer runs
//! in the kernel on its own; the runtime's sleeps stay untimed and it
//! wakes only when the alarm rings.
//!
//! Why not a thread of our own (the previous design): a second thread
//! makes the kernel take and drop a reference on the file in every system
//! call on a descriptor, which it skips while a process's descriptor table
//! has one user. A current-thread runtime's process is otherwise
//! single-threaded; one parked thread added ~0.4–0.8 µs of CPU per connect
//! to tokio-websockets' on the same VM, and a little to every read and
//! write. A thread cannot step out of the table either: waking a task on
//! another runtime writes to that runtime's `eventfd`.
//!
//! The alarm rings at the earliest deadline, but at most [`TICK`] ahead
//! while any is pending, so that a later registration (the usual case:
//! every connection's deadline is seconds away) never needs to re-arm it;
//! only one due sooner does (a timeout shorter than [`TICK`], or the first
//! after an idle spell), with one `timerfd_settime`. With nothing pending
//! for a few ticks the alarm is disarmed. Deadlines run on real time:
//! tokio's paused test clock does not move them. The ticker lives as long
//! as its runtime. The alarm needs the runtime's I/O driver, as every
//! socket of a connection does (tokio panics on a runtime built without
//! it); if the alarm cannot be made (out of descriptors), or on a system
//! without `timerfd` (other than Linux), deadlines are tokio timers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The alarm's longest interval while deadlines are pending.
const TICK: Duration = Duration::from_millis(250);

/// Ticks with nothing pending before the alarm is disarmed.
const IDLE_TICKS: u32 = 4;

/// One runtime's pending deadlines and the alarm that serves them.
struct Wheel {
    /// Under one lock.
    state: Mutex<Pending>,
    /// Whether its ticker task still runs; once its runtime shuts down,
    /// `false` and no more registrations.
    alive: AtomicBool,
    alarm: alarm::Alarm,
}

/// What a wheel knows, under its lock.
struct Pending {
    /// Pending deadlines, earliest first: (due, id) → the task to wake.
    deadlines: BTreeMap<(Instant, u64), Waker>,
    /// The next registration's id.
    next_id: u64,
    /// When the alarm rings next; `None` while it is disarmed.
    rings_at: Option<Instant>,
}

impl Wheel {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // The lock guards plain data that no code path leaves half-updated
        // (wakers are woken after it is released), so a poisoned lock is
        // still consistent.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers `waker` for `at`, re-arming the alarm if it rings later.
    fn insert(&self, at: Instant, now: Instant, waker: Waker) -> (Instant, u64) {
        let mut p = self.lock();
        let key = (at, p.next_id);
        p.next_id += 1;
        p.deadlines.insert(key, waker);
        if p.rings_at.is_none_or(|r| at < r) {
            p.rings_at = Some(at);
            self.alarm.set(Some(at.saturating_duration_since(now)));
        }
        key
    }

    fn remove(&self, key: &(Instant, u64)) {
        self.lock().deadlines.remove(key);
    }

    /// The alarm rang: takes the deadlines due by now and re-arms it.
    /// `idle` counts the rings with nothing pending.
    fn ring(&self, idle: &mut u32, due: &mut Vec<Waker>) {
        let now = Instant::now();
        let mut p = self.lock();
        while let Some(first) = p.deadlines.first_entry() {
            if first.key().0 > now {
                break;
            }
            due.push(first.remove());
        }
        let next = match p.deadlines.first_key_value() {
            Some((&(at, _), _)) => {
                *idle = 0;
                Some(at.min(now + TICK))
            }
            None if *idle < IDLE_TICKS => {
                *idle += 1;
                Some(now + TICK)
            }
            None => None,
        };
        p.rings_at = next;
        self.alarm
            .set(next.map(|at| at.saturating_duration_since(now)));
    }
}

/// The runtimes' wheels, by runtime; a wheel leaves when its ticker ends.
static WHEELS: Mutex<Vec<(tokio::runtime::Id, Arc<Wheel>)>> = Mutex::new(Vec::new());

thread_local! {
    /// The wheel this thread used last, to skip [`WHEELS`]'s lock.
    static LAST: std::cell::RefCell<Option<(tokio::runtime::Id, Weak<Wheel>)>> =
        const { std::cell::RefCell::new(None) };
}

fn wheels() -> MutexGuard<'static, Vec<(tokio::runtime::Id, Arc<Wheel>)>> {
    WHEELS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The current runtime's wheel, its ticker started on first use; `None`
/// outside a runtime, or where no alarm can be had.
fn current_wheel() -> Option<Arc<Wheel>> {
    if !alarm::SUPPORTED {
        return None;
    }
    let handle = tokio::runtime::Handle::try_current().ok()?;
    let id = handle.id();
    let cached = LAST.with_borrow(|last| match last {
        Some((last_id, w)) if *last_id == id => w.upgrade(),
        _ => None,
    });
    if let Some(wheel) = cached.filter(|w| w.alive.load(Ordering::Acquire)) {
        return Some(wheel);
    }
    let wheel = {
        let mut all = wheels();
        // A wheel whose ticker is ending leaves this list right after it
        // is marked dead; it is not taken meanwhile.
        let live = all
            .iter()
            .find(|(i, w)| *i == id && w.alive.load(Ordering::Acquire));
        match live {
            Some((_, w)) => Arc::clone(w),
            None => {
                let wheel = Arc::new(Wheel {
                    state: Mutex::new(Pending {
                        deadlines: BTreeMap::new(),
                        next_id: 0,
                        rings_at: None,
                    }),
                    alive: AtomicBool::new(true),
                    alarm: alarm::Alarm::new().ok()?,
                });
                let ticker = alarm::Ticker::new(Arc::clone(&wheel)).ok()?;
                all.push((id, Arc::clone(&wheel)));
                drop(all);
                handle.spawn(ticker.run());
                wheel
            }
        }
    };
    LAST.set(Some((id, Arc::downgrade(&wheel))));
    Some(wheel)
}

/// Marks its wheel dead when the ticker ends (its runtime shut down),
/// and wakes whatever still waits on it to register elsewhere.
struct TickerGuard(Arc<Wheel>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::Release);
        wheels().retain(|(_, w)| !Arc::ptr_eq(w, &self.0));
        self.0.alarm.set(None);
        let waiting = std::mem::take(&mut self.0.lock().deadlines);
        for waker in waiting.into_values() {
            waker.wake();
        }
    }
}

/// The alarm: a `timerfd` on Linux.
#[cfg(target_os = "linux")]
mod alarm {
    use super::{Duration, TickerGuard, Wheel};
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::sync::Arc;
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// Deadlines have wheels here.
    pub(super) const SUPPORTED: bool = true;

    /// A non-blocking `CLOCK_MONOTONIC` timerfd (`Instant`'s clock).
    pub(super) struct Alarm(OwnedFd);

    impl Alarm {
        pub(super) fn new() -> io::Result<Self> {
            // SAFETY: plain integer arguments; a non-negative result is a
            // new descriptor that nothing else owns.
            let fd = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just created and is owned here only.
            Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
        }

        /// Rings `after` from now (at once for zero), or never for `None`.
        pub(super) fn set(&self, after: Option<Duration>) {
            let value = match after {
                None => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                // A zero value would disarm it: one nanosecond is "now".
                Some(d) if d.is_zero() => libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 1,
                },
                Some(d) => libc::timespec {
                    tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
                    // Below 10^9: fits a c_long of either width.
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                },
            };
            let spec = libc::itimerspec {
                it_interval: libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                },
                it_value: value,
            };
            // SAFETY: `spec` is a valid itimerspec; the old value is not
            // asked for. It cannot fail on a valid timerfd and value.
            unsafe {
                libc::timerfd_settime(self.0.as_raw_fd(), 0, &spec, std::ptr::null_mut());
            }
        }

        /// Consumes a ring: `Ok` if it rang since the last call.
        fn take(&self) -> io::Result<()> {
            let mut count = [0u8; 8];
            // SAFETY: reads at most 8 bytes into `count`.
            let n = unsafe { libc::read(self.0.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    }

    /// The alarm's descriptor as the runtime's reactor sees it; the wheel
    /// owns it, and the ticker that holds both deregisters it first.
    struct Raw(RawFd);

    impl AsRawFd for Raw {
        fn as_raw_fd(&self) -> RawFd {
            self.0
        }
    }

    /// The task that reads a wheel's alarm, on the wheel's runtime.
    pub(super) struct Ticker {
        // Fields drop in order: deregistered before the guard lets the
        // wheel (and its descriptor) go.
        fd: AsyncFd<Raw>,
        guard: TickerGuard,
    }

    impl Ticker {
        /// Registers the wheel's alarm with the current runtime.
        pub(super) fn new(wheel: Arc<Wheel>) -> io::Result<Self> {
            let raw = Raw(wheel.alarm.0.as_raw_fd());
            // SAFETY: the descriptor stays open and the same for the
            // AsyncFd's life: the wheel owns it, and the guard beside the
            // AsyncFd holds the wheel until after the AsyncFd is dropped.
            let fd = unsafe { AsyncFd::register_with_interest(raw, Interest::READABLE) }
                .map_err(io::Error::from)?;
            Ok(Self {
                fd,
                guard: TickerGuard(wheel),
            })
        }

        pub(super) async fn run(self) {
            let mut idle = 0;
            let mut due = Vec::new();
            loop {
                let Ok(mut ready) = self.fd.readable().await else {
                    // The reactor is gone: so is the runtime.
                    return;
                };
                let wheel = &self.guard.0;
                match ready.try_io(|_| wheel.alarm.take()) {
                    Ok(Ok(())) => {}
                    // Not rung after all: readiness cleared, wait again.
                    Err(_would_block) => continue,
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Cannot happen on a timerfd; ending wakes every
                    // waiter to register anew.
                    Ok(Err(_)) => return,
                }
                wheel.ring(&mut idle, &mut due);
                for waker in due.drain(..) {
                    waker.wake();
                }
            }
        }
    }
}

/// Elsewhere there is no alarm: deadlines are tokio timers.
#[cfg(not(target_os = "linux"))]
mod alarm {
    use super::{Duration, Wheel};
    use std::io;
    use std::sync::Arc;

    /// No wheels here.
    pub(super) const SUPPORTED: bool = false;

    /// Never made.
    pub(super) struct Alarm;

    impl Alarm {
        pub(super) fn new() -> io::Result<Self> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub(super) fn set(&self, _after: Option<Duration>) {}
    }

    /// Never made.
    pub(super) struct Ticker;

    impl Ticker {
        pub(super) fn new(_wheel: Arc<Wheel>) -> io::Result<Self> {
            Err(io::ErrorKind::Unsupported.into())
        }

        pub(super) async fn run(self) {}
    }
}

/// A deadline `after` its first wait begins: [`Deadline::poll_elapsed`]
/// is ready once it has passed.
#[derive(Debug)]
pub(crate) struct Deadline {
    after: Duration,
    state: State,
}

enum State {
    /// Not waited on yet.
    Idle,
    /// Registered with a wheel, with the waker it holds.
    Watched {
        wheel: Arc<Wheel>,
        key: (Instant, u64),
        waker: Waker,
    },
    /// Beyond any clock (a timeout of `Duration::MAX`): never elapses.
    Never,
    /// No wheel to be had: a tokio timer.
    Tokio(Pin<Box<tokio::time::Sleep>>),
    /// Elapsed.
    Elapsed,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            State::Idle => f.write_str("Idle"),
            State::Watched { key, .. } => f.debug_tuple("Watched").field(&key.0).finish(),
            State::Never => f.write_str("Never"),
            State::Tokio(sleep) => f.debug_tuple("Tokio").field(&sleep.deadline()).finish(),
            State::Elapsed => f.write_str("Elapsed"),
        }
    }
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
                self.register(at, now, cx)
            }
            State::Watched { wheel, key, waker } => {
                let now = Instant::now();
                if now >= key.0 {
                    wheel.remove(key);
                    self.state = State::Elapsed;
                    return Poll::Ready(());
                }
                if !wheel.alive.load(Ordering::Acquire) {
                    // Its runtime's ticker ended; find another.
                    let at = key.0;
                    self.state = State::Idle;
                    return self.register(at, now, cx);
                }
                if !waker.will_wake(cx.waker()) {
                    *waker = cx.waker().clone();
                    if let Some(held) = wheel.lock().deadlines.get_mut(key) {
                        held.clone_from(waker);
                    }
                }
                Poll::Pending
            }
        }
    }

    fn register(&mut self, at: Instant, now: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if at <= now {
            self.state = State::Elapsed;
            return Poll::Ready(());
        }
        let Some(wheel) = current_wheel() else {
            let mut sleep = Box::pin(tokio::time::sleep_until(at.into()));
            let poll = sleep.as_mut().poll(cx);
            self.state = State::Tokio(sleep);
            return poll;
        };
        let waker = cx.waker().clone();
        let key = wheel.insert(at, now, waker.clone());
        self.state = State::Watched { wheel, key, waker };
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let State::Watched { wheel, key, .. } = &self.state {
            wheel.remove(key);
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

    /// The current runtime's wheel's pending deadlines and alarm.
    fn pending() -> (usize, Option<Instant>) {
        let wheel = current_wheel().expect("a wheel");
        let p = wheel.lock();
        (p.deadlines.len(), p.rings_at)
    }

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
        // Each test has a runtime, so a wheel, of its own.
        assert_eq!(pending().0, 0);
    }

    #[tokio::test]
    async fn a_short_deadline_rearms_an_alarm_set_for_a_later_one() {
        // A long deadline first, so that the alarm is set a tick ahead.
        let long = tokio::spawn(timeout(
            Duration::from_secs(20),
            std::future::pending::<()>(),
        ));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let t = Instant::now();
        let out = timeout(Duration::from_millis(20), std::future::pending::<()>()).await;
        let took = t.elapsed();
        assert!(out.is_none());
        // Without the re-arm it would fire at the next tick, about 220 ms
        // after it was registered.
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

    #[tokio::test]
    async fn many_deadlines_each_fire_once_on_one_thread() {
        many_deadlines_each_fire_once().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_deadlines_each_fire_once_across_workers() {
        many_deadlines_each_fire_once().await;
    }

    /// Two runtimes on one thread, driven in turn: each has its own wheel
    /// (a deadline of the one being driven fires while the other sleeps),
    /// and a runtime's wheel goes with it.
    #[test]
    fn each_runtime_has_its_own_wheel_and_it_ends_with_the_runtime() {
        let build = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
        };
        let (a, b) = (build(), build());
        let wait = || async {
            let t = Instant::now();
            assert!(
                timeout(Duration::from_millis(30), std::future::pending::<()>())
                    .await
                    .is_none()
            );
            t.elapsed()
        };
        for rt in [&a, &b, &a, &b] {
            let took = rt.block_on(wait());
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
        let ids = [a.handle().id(), b.handle().id()];
        let registered = |id| wheels().iter().any(|(i, _)| *i == id);
        assert!(ids.iter().all(|id| registered(*id)));
        drop(a);
        assert!(!registered(ids[0]), "a dropped runtime's wheel stays");
        assert!(registered(ids[1]));
        drop(b);
        assert!(!registered(ids[1]));
    }

    /// The alarm, not a tokio timer, is what fires: a runtime without a
    /// time driver (where tokio's timers panic) still has deadlines.
    #[cfg(target_os = "linux")]
    #[test]
    fn deadlines_need_no_time_driver() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let out = rt.block_on(timeout(
            Duration::from_millis(20),
            std::future::pending::<()>(),
        ));
        assert!(out.is_none());
    }

    /// With nothing pending for a few ticks the alarm is disarmed, so an
    /// idle runtime is not woken.
    #[tokio::test]
    async fn an_idle_wheel_disarms_its_alarm() {
        assert!(
            timeout(Duration::from_millis(5), std::future::pending::<()>())
                .await
                .is_none()
        );
        assert!(pending().1.is_some(), "armed after use");
        let t = Instant::now();
        while pending().1.is_some() {
            assert!(t.elapsed() < Duration::from_secs(5), "still armed");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(t.elapsed() >= TICK * (IDLE_TICKS - 1), "{:?}", t.elapsed());
    }
}
