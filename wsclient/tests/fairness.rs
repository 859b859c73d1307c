//! A flooded event connection shares its runtime: messages already read
//! cost no read call (and so none of tokio's cooperative budget), so the
//! connection's task takes a unit of budget per batch it delivers and
//! yields when the budget is spent, rather than running until the flood
//! stops.
//!
//! The server is this crate's own, on a thread of its own, sending as fast
//! as it can; the client runs on the test's single-threaded runtime beside
//! a task that only counts its turns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::SinkExt as _;
use wsclient::{Client, Message};

/// Small messages sent in one flood: far more than one task poll may
/// deliver (128 units of budget, 64 messages a batch).
const FLOOD: usize = 400_000;

#[tokio::test(flavor = "current_thread")]
async fn a_flooded_connection_lets_the_other_tasks_of_its_runtime_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            listener.set_nonblocking(true).expect("non-blocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let (tcp, _) = listener.accept().await.expect("accept");
            let (mut ws, _) = wsclient::server::accept(tcp, &Default::default())
                .await
                .expect("upgrade");
            let payload = bytes::Bytes::from_static(&[7u8; 16]);
            for _ in 0..FLOOD {
                ws.feed(Message::binary(payload.clone()))
                    .await
                    .expect("send");
            }
            ws.flush().await.expect("flush");
            // Held open until the client closes.
            let _ = futures_util::StreamExt::next(&mut ws).await;
        });
    });

    // Turns taken by another task of this runtime while the messages
    // arrive: read at the first message and at the last.
    let turns = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (turns, stop) = (turns.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                turns.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    let received = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let mut done_tx = Some(done_tx);
    let mut client = Client::new(&format!("ws://{addr}/")).expect("url");
    {
        let (received, seen, turns) = (received.clone(), seen.clone(), turns.clone());
        client.on_message(move |_, _| {
            // Some work per message, so that the server stays ahead and
            // the socket always has data: no read ever waits, and only the
            // budget can make the connection's task yield.
            for i in 0..100u32 {
                std::hint::black_box(i);
            }
            let n = received.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 {
                seen.lock().expect("lock").0 = turns.load(Ordering::Relaxed);
            }
            if n == FLOOD {
                seen.lock().expect("lock").1 = turns.load(Ordering::Relaxed);
                if let Some(tx) = done_tx.take() {
                    let _ = tx.send(());
                }
            }
        });
    }
    let conn = client.connect();
    tokio::time::timeout(Duration::from_secs(60), done_rx)
        .await
        .expect("every message arrives")
        .expect("the callback reports the last message");
    stop.store(true, Ordering::Relaxed);
    let (first, last) = *seen.lock().expect("lock");
    eprintln!("the other task ran {} times during the flood", last - first);
    // At most 128 × 64 messages a turn: the other task ran dozens of times
    // during the flood (about FLOOD / 8192 ≈ 49 yields at the least).
    assert!(
        last - first >= 20,
        "the other task ran {} times while {FLOOD} messages were delivered",
        last - first
    );
    conn.close();
    tokio::time::timeout(Duration::from_secs(10), conn.finished())
        .await
        .expect("the connection finishes");
    counter.await.expect("counter task");
    server.join().expect("server thread");
}
