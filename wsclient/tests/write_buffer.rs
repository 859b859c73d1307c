//! What the event client holds encoded but unwritten when the server stops
//! reading: at most `SocketConfig::write_buffer_size` plus one message, so
//! that a program with many connections can bound their memory by lowering
//! it. Heap bytes are counted by a global allocator that tallies live
//! bytes; the server is a real TCP peer that completes the upgrade and then
//! never reads, so the kernel's buffers fill and the rest stays queued.
//! And a mark of 0 still sends every message (against Node's `ws`).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::peers::{Peer, PeerKind, PeerOptions};
use support::{Scripted, read_request, response_101};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use wsclient::socket::SocketConfig;
use wsclient::{Client, Conn, ConnectOptions, Message};

struct LiveBytes;

static LIVE: AtomicIsize = AtomicIsize::new(0);

fn add(n: usize) {
    LIVE.fetch_add(isize::try_from(n).unwrap_or(isize::MAX), Ordering::Relaxed);
}

fn sub(n: usize) {
    LIVE.fetch_sub(isize::try_from(n).unwrap_or(isize::MAX), Ordering::Relaxed);
}

// SAFETY: every call is passed on to `System` unchanged; the tally is one
// atomic counter (no allocation).
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            sub(layout.size());
            add(new_size);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: LiveBytes = LiveBytes;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Connects `client` and waits (at most 10 s) until its upgrade is done.
async fn open(mut client: Client) -> Conn {
    let (open_tx, open_rx) = oneshot::channel();
    let mut open_tx = Some(open_tx);
    client.on_websocket_connect(move |_, _| {
        if let Some(tx) = open_tx.take() {
            let _ = tx.send(());
        }
    });
    let conn = client.connect();
    tokio::time::timeout(Duration::from_secs(10), open_rx)
        .await
        .expect("opens within 10 s")
        .unwrap();
    conn
}

const MESSAGE: usize = 64 << 10;
/// 25 MiB: more than loopback's send and receive buffers hold together
/// (Linux's defaults stop at 4 MiB and 6 MiB), so that the queue backs up.
const MESSAGES: usize = 400;

/// Opens an event connection to a server that never reads, queues
/// [`MESSAGES`] messages of [`MESSAGE`] bytes, waits until nothing more is
/// written, and returns the heap bytes the connection then holds beyond
/// what it held before the sends, and the messages still queued.
async fn held_while_stuck(socket: Option<SocketConfig>) -> (isize, usize) {
    let (release, released) = oneshot::channel::<()>();
    let server = Scripted::start(|mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        // Holds the connection open, reading nothing.
        let _ = released.await;
    })
    .await;
    let mut options = ConnectOptions::new(server.url("/"));
    if let Some(c) = socket {
        options = options.socket_config(c);
    }
    let mut client = Client::with_options(options).unwrap();
    client.max_send_buffer(64 << 20);
    let conn = open(client).await;

    let payload = Bytes::from(vec![0x5a; MESSAGE]);
    let before = live();
    for _ in 0..MESSAGES {
        conn.send_binary(payload.clone()).unwrap();
    }
    // Stuck: no message written for 300 ms (and at least one second on).
    let start = Instant::now();
    let (mut last, mut since) = (u64::MAX, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let out = conn.stats().messages_out;
        if out != last {
            (last, since) = (out, Instant::now());
        } else if since.elapsed() >= Duration::from_millis(300)
            && start.elapsed() >= Duration::from_secs(1)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the connection kept writing for 20 s"
        );
    }
    let held = live() - before;
    let queued = conn.stats().queue_len;

    let _ = release.send(());
    conn.close();
    tokio::time::timeout(Duration::from_secs(10), conn.finished())
        .await
        .expect("the connection ends within 10 s of its server going away");
    drop(server);
    (held, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_client_encodes_no_more_than_its_write_buffer_ahead() {
    // The default batch (512 KiB): that much, at least, is encoded and
    // waiting for the kernel.
    let (held_default, queued) = held_while_stuck(None).await;
    assert!(
        queued > 0,
        "the kernel took every message: nothing backed up"
    );
    assert!(
        held_default >= 512 << 10,
        "default write buffer: {held_default} bytes held, want at least 512 KiB"
    );

    // 16 KiB: at most that plus one message is encoded (the buffer's
    // capacity may round it up), plus the queue's bookkeeping; none of
    // the payloads is copied until it is encoded.
    let small = SocketConfig {
        write_buffer_size: 16 << 10,
        ..SocketConfig::default()
    };
    let (held_small, queued) = held_while_stuck(Some(small)).await;
    assert!(
        queued > 0,
        "the kernel took every message: nothing backed up"
    );
    assert!(
        held_small < 256 << 10,
        "16 KiB write buffer: {held_small} bytes held, want under 256 KiB"
    );
}

/// A write buffer of 0 (write every message before taking the next) still
/// sends everything, in order: a message is always taken when nothing
/// waits to be written. Against Node's `ws` echo server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_write_buffer_sends_every_message_one_at_a_time() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let socket = SocketConfig {
        write_buffer_size: 0,
        ..SocketConfig::default()
    };
    let mut client =
        Client::with_options(ConnectOptions::new(peer.url("/echo")).socket_config(socket)).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    client.on_message(move |_, m| {
        let _ = tx.send(m);
    });
    // Sent once open: messages queued before are encoded all at once when
    // the connection opens, whatever the mark.
    let conn = open(client).await;
    let big = Bytes::from(vec![0xa5; 200 << 10]);
    for i in 0..200 {
        if i % 50 == 49 {
            conn.send_binary(big.clone()).unwrap();
        } else {
            conn.send(format!("m{i}")).unwrap();
        }
    }
    for i in 0..200 {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("echoed within 10 s")
            .unwrap();
        if i % 50 == 49 {
            assert_eq!(m, Message::Binary(big.clone()), "message {i}");
        } else {
            assert_eq!(m, Message::text(format!("m{i}")), "message {i}");
        }
    }
    assert_eq!(conn.stats().messages_out, 200);
    conn.close();
    tokio::time::timeout(Duration::from_secs(10), conn.finished())
        .await
        .expect("closes within 10 s");
}
