//! The host event loop from a plain `fn main()`-style test (no runtime of
//! ours): `run_all` blocks until every client has finished, and `shutdown`
//! closes them all gracefully (1001), runs their callbacks and stops
//! reconnects. Its own test binary: shutdown is process-wide.

mod support;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::peers::{Peer, PeerKind, PeerOptions};
use wsclient::{Client, CloseCode};

#[test]
fn run_all_returns_after_graceful_shutdown() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let closes = Arc::new(Mutex::new(Vec::new()));
    let (up_tx, up_rx) = mpsc::channel();
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut ws = Client::new(&peer.url("/echo")).unwrap();
        let up = up_tx.clone();
        ws.on_websocket_connect(move |_, _| {
            let _ = up.send(i);
        });
        let c = closes.clone();
        ws.on_close(move |conn| {
            c.lock().unwrap().push(conn.close_code());
            // The seed's handler asks to reconnect; shutdown must win.
            conn.reconnect(Duration::from_millis(10));
        });
        // No tokio runtime here: the clients run on the host runtime.
        conns.push(ws.connect());
    }
    for _ in 0..3 {
        up_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("all three connect");
    }
    assert_eq!(wsclient::live_connections(), 3);
    let stopper = std::thread::spawn(wsclient::shutdown);
    // Returns once every connection has closed (bounded by 10 s inside).
    let started = std::time::Instant::now();
    wsclient::run_all();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    assert_eq!(wsclient::live_connections(), 0);
    let closes = closes.lock().unwrap().clone();
    // Each closed once, with the server's echo of our 1001.
    assert_eq!(closes, vec![Some(CloseCode::GOING_AWAY); 3]);
    for c in &conns {
        assert!(c.is_finished());
        assert_eq!(c.stats().reconnects, 0);
    }
}
