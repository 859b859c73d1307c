//! The command queue from [`Conn`](super::Conn) handles to their
//! connection's task.
//!
//! Owns the hand-over of sends, closes and the other commands: a deque
//! behind a lock plus one waker. The lock is a spin lock whose waiter
//! yields its time slice (`spin`'s `SpinMutex` with `Yield`): it is held
//! for a `push_back` or a swap of two deques, and its unlock is a plain
//! store, where std's futex mutex needs a second atomic read-modify-write
//! to find out whether to wake a waiter. On one core that is ~5 ns of a
//! send's ~55 (`perf annotate`: the mutex's two atomic instructions were
//! four fifths of `push_send`). A handle pushes under the lock and wakes
//! the task only if no wake-up is already on its way; the task takes the
//! whole deque at once (swapping buffers, so a steady stream allocates
//! nothing), so a burst of sends costs it one lock, not one channel
//! message each. An idle connection's inbox holds no allocation (a
//! channel's first block of slots would be ~1.5 KiB per connection).
//!
//! It also keeps the send queue's size (messages handed to `send` and not
//! yet written, wherever they are) under the same lock: a send checks the
//! limit and counts itself in the lock it takes anyway, and the task
//! subtracts a whole batch of written messages at once, instead of two
//! atomic read-modify-writes per message on each side.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use spin::mutex::SpinMutex;
use spin::relax::Yield;

use super::conn::Command;
use crate::message::Message;

/// The handles' side: shared, in the connection's state.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    queue: SpinMutex<Queue, Yield>,
    waker: AtomicWaker,
    /// A wake-up is on its way (the task has not yet looked at the queue
    /// since): further pushes need not wake it again.
    notified: AtomicBool,
    /// The task's waker, as first registered (kept here, off the task's
    /// future, whose size is budgeted): see [`Receiver::poll_recv`].
    task_waker: OnceLock<Waker>,
    /// The last registration was of `task_waker`. Only the task touches
    /// it (plain loads and stores).
    registered_task_waker: AtomicBool,
}

#[derive(Debug, Default)]
struct Queue {
    commands: VecDeque<Command>,
    /// The task is gone: nothing more is accepted.
    closed: bool,
    /// Messages sent and not yet written or handed back.
    len: usize,
    /// Their payload bytes.
    bytes: usize,
}

/// Why [`Inbox::push_send`] refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue is at its limit.
    Full,
    /// The task has finished.
    Closed,
}

impl Inbox {
    #[inline]
    fn lock(&self) -> spin::mutex::SpinMutexGuard<'_, Queue, Yield> {
        self.queue.lock()
    }

    /// Queues a command for the task; hands it back when the task has
    /// finished.
    pub(crate) fn push(&self, command: Command) -> Result<(), Command> {
        {
            let mut q = self.lock();
            if q.closed {
                return Err(command);
            }
            q.commands.push_back(command);
        }
        self.wake();
        Ok(())
    }

    /// Queues the message `wrap` makes of `payload` (`len` payload bytes)
    /// and counts it in the queue's size, unless that would take a
    /// non-empty queue over `limit` bytes. The message is made in its
    /// slot (see `Conn::enqueue_with`).
    #[inline(always)]
    pub(crate) fn push_send<P>(
        &self,
        payload: P,
        len: usize,
        wrap: fn(P) -> Message,
        limit: usize,
    ) -> Result<(), (P, Refused)> {
        {
            let mut q = self.lock();
            if q.closed {
                return Err((payload, Refused::Closed));
            }
            if q.bytes > 0 && q.bytes + len > limit {
                return Err((payload, Refused::Full));
            }
            q.len += 1;
            q.bytes += len;
            q.commands.push_back(Command::Send(wrap(payload)));
        }
        self.wake();
        Ok(())
    }

    /// Wakes the task unless a wake-up is already on its way (looked at
    /// first: a plain load, no read-modify-write, in a burst of sends).
    #[inline]
    fn wake(&self) {
        if !self.notified.load(Ordering::Acquire) && !self.notified.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// The task is about to run callbacks and will look at the queue
    /// right after them: commands pushed meanwhile (a reply sent from
    /// `on_message`, typically) need not wake it, which would only poll it
    /// once more for nothing. It must look (through
    /// [`Receiver::poll_recv`]) before it next waits.
    pub(crate) fn awake(&self) {
        if !self.notified.load(Ordering::Relaxed) {
            self.notified.store(true, Ordering::Relaxed);
        }
    }

    /// The send queue's size: messages and payload bytes.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let q = self.lock();
        (q.len, q.bytes)
    }

    /// Takes `n` messages of `bytes` payload bytes off the queue's size
    /// (written, or handed back); returns the bytes still queued.
    pub(crate) fn release(&self, n: usize, bytes: usize) -> usize {
        let mut q = self.lock();
        q.len = q.len.saturating_sub(n);
        q.bytes = q.bytes.saturating_sub(bytes);
        q.bytes
    }

    /// Moves every queued command to the back of `into`; false when there
    /// were none.
    fn take(&self, into: &mut VecDeque<Command>) -> bool {
        let mut q = self.lock();
        if q.commands.is_empty() {
            return false;
        }
        if into.is_empty() {
            std::mem::swap(&mut q.commands, into);
        } else {
            into.append(&mut q.commands);
        }
        true
    }

    /// Refuses further commands and returns those still queued.
    fn close(&self) -> VecDeque<Command> {
        let mut q = self.lock();
        q.closed = true;
        std::mem::take(&mut q.commands)
    }
}

/// The task's side: commands taken from the [`Inbox`], a batch at a time.
#[derive(Debug)]
pub(crate) struct Receiver {
    shared: std::sync::Arc<super::conn::Shared>,
    taken: VecDeque<Command>,
}

impl Receiver {
    /// The receiver for the inbox in `shared`.
    pub(crate) fn new(shared: std::sync::Arc<super::conn::Shared>) -> Self {
        Receiver {
            shared,
            taken: VecDeque::new(),
        }
    }

    fn inbox(&self) -> &Inbox {
        &self.shared.inbox
    }

    /// The next command, if one is queued.
    pub(crate) fn try_recv(&mut self) -> Option<Command> {
        self.front()?;
        self.pop()
    }

    /// The next command, left in the queue (taken from the inbox if this
    /// side holds none): a message to send is encoded from here and then
    /// moved once, by [`Receiver::pop`], to where it waits to be written.
    #[inline]
    pub(crate) fn front(&mut self) -> Option<&Command> {
        if self.taken.is_empty() {
            let Receiver { shared, taken } = self;
            shared.inbox.take(taken);
        }
        self.taken.front()
    }

    /// Removes the command [`Receiver::front`] returned.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Command> {
        self.taken.pop_front()
    }

    /// The next command; `Pending` (with the waker registered) while there
    /// is none.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Command> {
        if let Some(c) = self.taken.pop_front() {
            return Poll::Ready(c);
        }
        let inbox = self.inbox();
        // Nothing pushed since the last look below, which registered this
        // same waker: every push after that look sets `notified` (in its
        // `wake`), and a push still on its way to its `wake` will wake us.
        // So there is nothing to take, and no need to register again or to
        // take the lock (four atomic read-modify-writes in all, on every
        // turn of the connection's loop).
        if !inbox.notified.load(Ordering::Acquire)
            && inbox.registered_task_waker.load(Ordering::Relaxed)
            && inbox
                .task_waker
                .get()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        // Register before looking, and say "no wake-up on its way" before
        // looking too: a push after the look then sees `notified` false and
        // wakes us; a push before it is found by the look.
        inbox.waker.register(cx.waker());
        let same = match inbox.task_waker.get() {
            Some(w) => w.will_wake(cx.waker()),
            None => inbox.task_waker.set(cx.waker().clone()).is_ok(),
        };
        inbox.registered_task_waker.store(same, Ordering::Relaxed);
        inbox.notified.store(false, Ordering::SeqCst);
        let Receiver { shared, taken } = self;
        shared.inbox.take(taken);
        match self.taken.pop_front() {
            Some(c) => Poll::Ready(c),
            None => Poll::Pending,
        }
    }

    /// Waits for the next command.
    pub(crate) async fn recv(&mut self) -> Command {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Closes the inbox (handles' commands are refused from now on) and
    /// returns every command not yet handled, in order.
    pub(crate) fn close(&mut self) -> VecDeque<Command> {
        let mut rest = std::mem::take(&mut self.taken);
        let mut queued = self.inbox().close();
        rest.append(&mut queued);
        rest
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::events::conn::{SendType, Shared};
    use crate::message::Message;

    fn shared() -> Arc<Shared> {
        Arc::new(Shared::new(1, "ws://x/".into(), SendType::Text, 1 << 20))
    }

    fn seq(c: &Command) -> (u8, u32) {
        match c {
            Command::Send(Message::Binary(b)) => {
                (b[0], u32::from_be_bytes([b[1], b[2], b[3], b[4]]))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_command_arrives_once_in_order_per_sender() {
        const SENDERS: u8 = 4;
        const EACH: u32 = 20_000;
        let shared = shared();
        let mut rx = Receiver::new(shared.clone());
        let threads: Vec<_> = (0..SENDERS)
            .map(|t| {
                let s = shared.clone();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let mut b = vec![t];
                        b.extend_from_slice(&i.to_be_bytes());
                        assert!(s.inbox.push(Command::Send(Message::binary(b))).is_ok());
                    }
                })
            })
            .collect();
        let mut next = [0u32; SENDERS as usize];
        let total = u32::from(SENDERS) * EACH;
        for _ in 0..total {
            // A lost wake-up would hang here: bounded.
            let c = tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
                .await
                .expect("a command was pushed but the receiver was not woken");
            let (t, i) = seq(&c);
            assert_eq!(i, next[usize::from(t)], "sender {t} out of order");
            next[usize::from(t)] += 1;
        }
        for t in threads {
            t.join().unwrap();
        }
        assert!(rx.try_recv().is_none());
        // After close: what was queued comes back, new commands are refused.
        assert!(shared.inbox.push(Command::Wake).is_ok());
        let rest = rx.close();
        assert_eq!(rest.len(), 1);
        assert!(matches!(
            shared.inbox.push(Command::Reconnect),
            Err(Command::Reconnect)
        ));
    }

    /// A waker that counts its wake-ups.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    #[test]
    fn a_push_wakes_the_waker_of_the_last_poll() {
        let shared = shared();
        let mut rx = Receiver::new(shared.clone());
        let (a_count, a) = counter();
        let (b_count, b) = counter();
        let mut poll = |w: &Waker| rx.poll_recv(&mut Context::from_waker(w));
        let wakes = || {
            (
                a_count.0.load(Ordering::SeqCst),
                b_count.0.load(Ordering::SeqCst),
            )
        };
        // Polled with `a`, then again with `a` (nothing pushed: answered
        // without registering again), then with another waker `b`.
        assert!(poll(&a).is_pending());
        assert!(poll(&a).is_pending());
        assert!(shared.inbox.push(Command::Wake).is_ok());
        assert_eq!(wakes(), (1, 0));
        assert!(matches!(poll(&a), Poll::Ready(Command::Wake)));
        assert!(poll(&b).is_pending());
        // `b` is the one registered now: a push wakes it.
        assert!(shared.inbox.push(Command::Reconnect).is_ok());
        assert_eq!(wakes(), (1, 1));
        // And polled with `a` again, `a` is registered again.
        assert!(matches!(poll(&b), Poll::Ready(Command::Reconnect)));
        assert!(poll(&a).is_pending());
        assert!(shared.inbox.push(Command::PauseRecv).is_ok());
        assert_eq!(wakes(), (2, 1));
    }

    #[test]
    fn the_send_queue_counts_and_limits_under_the_lock() {
        let inbox = Inbox::default();
        let bytes = |n: usize| Bytes::from(vec![0u8; n]);
        let push = |n: usize, limit: usize| inbox.push_send(bytes(n), n, Message::Binary, limit);
        // An empty queue takes any message, however large.
        assert!(push(150, 100).is_ok());
        assert_eq!(inbox.queued(), (1, 150));
        // A non-empty one refuses what would go over, and hands it back.
        let (back, why) = push(10, 100).unwrap_err();
        assert_eq!((back.len(), why), (10, Refused::Full));
        assert_eq!(inbox.queued(), (1, 150));
        assert_eq!(inbox.release(1, 150), 0);
        assert!(push(60, 100).is_ok());
        assert!(push(40, 100).is_ok());
        assert!(push(1, 100).is_err());
        assert_eq!(inbox.queued(), (2, 100));
        assert_eq!(inbox.release(1, 60), 40);
        // Closed: refused as such.
        let _ = inbox.close();
        let (_, why) = push(1, 100).unwrap_err();
        assert_eq!(why, Refused::Closed);
    }
}
