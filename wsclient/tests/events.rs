//! The event-driven client against real servers of other implementations:
//! callbacks in order, exactly once each; reconnects by the seed's manual
//! call and by policy; queued messages in order, none lost; dead-peer
//! detection (a SIGSTOPped server); buffer limits; retry rules.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::log::{Log, log, push, snapshot, wait_for};
use support::peers::{Peer, PeerKind, PeerOptions};
use tokio::sync::mpsc;
use wsclient::events::{Outcome, SendFailure};
use wsclient::{Client, ConnectOptions, Message, ReconnectPolicy};

fn recording_client(url: &str, log: &Log) -> Client {
    let mut ws = Client::new(url).unwrap();
    let l = log.clone();
    ws.on_connect(move |_| push(&l, "connect"));
    let l = log.clone();
    ws.on_websocket_connect(move |conn, resp| {
        push(&l, format!("websocket_connect {}", resp.status().as_u16()));
        conn.send("hello").unwrap();
    });
    let l = log.clone();
    ws.on_message(move |_, m| push(&l, format!("message {m}")));
    let l = log.clone();
    ws.on_error(move |_, e| push(&l, format!("error {}", e.code())));
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_reconnects_after_server_restart() {
    for kind in PeerKind::ALL {
        let peer = Peer::start(kind, &PeerOptions::default());
        let port = peer.port.to_string();
        let log = log();
        let mut ws = recording_client(&peer.url("/echo"), &log);
        let l = log.clone();
        ws.on_close(move |conn| {
            push(&l, "close");
            // The seed's onClose: reConnect(1), here 200 ms.
            conn.reconnect(Duration::from_millis(200));
        });
        let l = log.clone();
        ws.on_reconnect(move |_, attempt, delay| {
            push(&l, format!("reconnect {attempt} {}ms", delay.as_millis()))
        });
        let conn = ws.connect();
        wait_for(&log, "first echo", |l| {
            l.iter().any(|e| e == "message hello")
        })
        .await;
        assert_eq!(
            snapshot(&log),
            ["connect", "websocket_connect 101", "message hello"],
            "{kind:?}: callbacks in order, once each"
        );
        drop(peer);
        wait_for(&log, "close after server loss", |l| {
            l.iter().any(|e| e == "close")
        })
        .await;
        // The server is back on the same port: the next attempts get through.
        let peer = Peer::start_with_args(kind, &PeerOptions::default(), &["--port", &port]);
        wait_for(&log, "second echo", |l| {
            l.iter().filter(|e| *e == "message hello").count() == 2
        })
        .await;
        let events = snapshot(&log);
        let first_close = events.iter().position(|e| e == "close").unwrap();
        // Loss of the server: on_error (connection lost) then on_close, then
        // the reconnect; failed attempts while it was down each end in
        // error + close; the last attempt connects and echoes.
        assert!(
            events[first_close - 1].starts_with("error "),
            "{kind:?}: {events:?}"
        );
        assert!(
            events[first_close + 1].starts_with("reconnect 1 200ms"),
            "{kind:?}: {events:?}"
        );
        let tail: Vec<_> = events.iter().rev().take(3).rev().cloned().collect();
        assert_eq!(
            tail,
            ["connect", "websocket_connect 101", "message hello"],
            "{kind:?}"
        );
        assert!(conn.stats().reconnects >= 1);
        conn.close();
        tokio::time::timeout(Duration::from_secs(5), conn.finished())
            .await
            .unwrap_or_else(|_| {
                // on_close asks to reconnect again after a local close too (the
                // seed's handler always does); the user's close must still end
                // the connection.
                panic!(
                    "{kind:?}: close() must finish the connection; log {:?}",
                    snapshot(&log)
                )
            });
        drop(peer);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_before_handshake_arrive_in_order() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.on_message(move |_, m| {
        let _ = tx.send(m);
    });
    let conn = ws.connect();
    for i in 0..500 {
        conn.send(format!("m{i}")).unwrap();
    }
    for i in 0..500 {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::text(format!("m{i}")));
    }
    let stats = conn.stats();
    assert_eq!(stats.messages_out, 500);
    assert_eq!(stats.messages_in, 500);
    assert_eq!(stats.queue_len, 0);
    conn.close();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
}

/// A close queued behind messages goes out after all of them (the task
/// encodes a batch of sends straight from its queue, commands among
/// them in order), and messages queued behind the close come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_queued_behind_sends_follows_them_and_later_sends_come_back() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (open_tx, mut open_rx) = mpsc::unbounded_channel();
    let undelivered: Arc<Mutex<Vec<Message>>> = Arc::default();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.on_websocket_connect(move |_, _| {
        let _ = open_tx.send(());
    });
    ws.on_message(move |_, m| {
        let _ = tx.send(m);
    });
    let u = undelivered.clone();
    ws.on_undelivered(move |_, msgs| u.lock().unwrap().extend(msgs));
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), open_rx.recv())
        .await
        .unwrap()
        .unwrap();
    for i in 0..300 {
        conn.send(format!("m{i}")).unwrap();
    }
    conn.close();
    let mut refused = 0;
    for i in 0..5 {
        if conn.send(format!("late{i}")).is_err() {
            refused += 1;
        }
    }
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    for i in 0..300 {
        let m = rx
            .try_recv()
            .expect("every message before the close echoed");
        assert_eq!(m, Message::text(format!("m{i}")));
    }
    assert!(rx.try_recv().is_err(), "nothing sent after the close");
    let back = undelivered.lock().unwrap().clone();
    // Sends are refused only once the task has finished, so the accepted
    // ones are the first, and each comes back, in order.
    let expected: Vec<Message> = (0..5 - refused)
        .map(|i| Message::text(format!("late{i}")))
        .collect();
    assert_eq!(back, expected);
    let stats = conn.stats();
    assert_eq!(stats.messages_out, 300);
    assert_eq!(stats.queue_len, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_is_detected_by_ping_timeout() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/silent")).unwrap();
    ws.ping_interval(Duration::from_millis(200));
    ws.pong_timeout(Duration::from_millis(300));
    let l = log.clone();
    ws.on_error(move |_, e| push(&l, format!("error {}", e.code())));
    let l = log.clone();
    ws.on_close(move |_| push(&l, "close"));
    let start = Instant::now();
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(snapshot(&log), ["error 14", "close"]);
    // ping_interval + pong_timeout = 500 ms; loose bounds for a busy box.
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(conn.close_code(), Some(wsclient::CloseCode::ABNORMAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_process_is_detected() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.ping_interval(Duration::from_millis(200));
    ws.pong_timeout(Duration::from_millis(400));
    let l = log.clone();
    ws.on_pong(move |_, _| push(&l, "pong"));
    let l = log.clone();
    ws.on_error(move |_, e| push(&l, format!("error {}", e.code())));
    let conn = ws.connect();
    wait_for(&log, "a pong while the server runs", |l| {
        l.iter().any(|e| e == "pong")
    })
    .await;
    assert!(conn.stats().rtt.is_some());
    // Half-open: the process is frozen, TCP stays up, nothing answers.
    let status = std::process::Command::new("kill")
        .args(["-STOP", &peer.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let stopped = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &peer.pid().to_string()])
        .status();
    assert!(
        snapshot(&log).contains(&"error 14".to_string()),
        "{:?}",
        snapshot(&log)
    );
    assert!(stopped.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_policy_with_attempt_limit_against_refused_port() {
    let (_held, port) = support::ports::refusing_port();
    let log = log();
    let mut ws = Client::new(&format!("ws://127.0.0.1:{port}/")).unwrap();
    ws.reconnect_policy(
        ReconnectPolicy::exponential(Duration::from_millis(20), Duration::from_millis(200))
            .max_attempts(4),
    );
    let l = log.clone();
    ws.on_reconnect(move |_, attempt, delay| {
        push(&l, format!("reconnect {attempt} {}", delay.as_millis()))
    });
    let l = log.clone();
    ws.on_error(move |_, e| push(&l, format!("error {}", e.code())));
    let l = log.clone();
    ws.on_close(move |_| push(&l, "close"));
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    let events = snapshot(&log);
    // 1 first attempt + 4 retries, each refused (error 3) then closed.
    assert_eq!(
        events.iter().filter(|e| *e == "error 3").count(),
        5,
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| *e == "close").count(),
        5,
        "{events:?}"
    );
    let delays: Vec<u128> = events
        .iter()
        .filter_map(|e| e.strip_prefix("reconnect "))
        .map(|e| e.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(delays.len(), 4);
    // Exponential with 50% jitter: attempt n lies in [full/2, full].
    for (i, d) in delays.iter().enumerate() {
        let full = (20u128 << i).min(200);
        assert!(
            *d >= full / 2 && *d <= full,
            "attempt {}: {d} not in [{}, {full}]",
            i + 1,
            full / 2
        );
    }
    assert_eq!(
        conn.stop_reason().as_deref(),
        Some("reconnect attempts exhausted")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_rules_stop_on_403_and_honour_retry_after() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let mut ws = Client::new(&peer.url("/reject?status=403")).unwrap();
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(10)));
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(conn.stats().reconnects, 0);
    assert!(conn.stop_reason().unwrap().contains("403"));

    let log = log();
    let mut ws = Client::new(&peer.url("/reject?status=429&retry_after=1")).unwrap();
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(10)).max_attempts(1));
    let l = log.clone();
    ws.on_reconnect(move |_, _, delay| push(&l, format!("{}", delay.as_millis())));
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(snapshot(&log), ["1000"], "Retry-After: 1 gives a 1 s delay");
    // The outcome type the rules see.
    assert_eq!(
        wsclient::events::reconnect::default_rules(&Outcome::Refused {
            status: 403,
            retry_after: None
        }),
        wsclient::events::Retry::Stop("handshake refused with 403 (forbidden)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_queue_is_bounded_and_reports_full_and_drain() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/silent")).unwrap();
    ws.max_send_buffer(256 << 10);
    let l = log.clone();
    ws.on_buffer_full(move |_| push(&l, "full"));
    let l = log.clone();
    ws.on_undelivered(move |_, msgs| push(&l, format!("undelivered {}", msgs.len())));
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    ws.on_websocket_connect(move |_, _| {
        let _ = up_tx.send(());
    });
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), up_rx.recv())
        .await
        .unwrap();
    // The server never reads: kernel buffers fill, then our queue.
    let chunk = vec![0u8; 64 << 10];
    let mut accepted = 0usize;
    let refused = loop {
        match conn.send_binary(chunk.clone()) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        tokio::task::yield_now().await;
        assert!(
            accepted < 10_000,
            "the queue never filled: unbounded buffering"
        );
    };
    assert_eq!(refused.reason, SendFailure::BufferFull);
    assert_eq!(
        refused.message.len(),
        64 << 10,
        "the refused message comes back"
    );
    wait_for(&log, "on_buffer_full", |l| l.iter().any(|e| e == "full")).await;
    assert!(conn.stats().queue_bytes <= 256 << 10);
    // Closing with messages still queued hands them back: none vanish.
    conn.close();
    tokio::time::timeout(Duration::from_secs(8), conn.finished())
        .await
        .unwrap();
    let events = snapshot(&log);
    let undelivered: usize = events
        .iter()
        .filter_map(|e| e.strip_prefix("undelivered "))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    let sent = conn.stats().messages_out as usize;
    assert_eq!(
        sent + undelivered,
        accepted,
        "every accepted message is sent or given back: {events:?}"
    );
    let late = conn.send("late").unwrap_err();
    assert_eq!(late.reason, SendFailure::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_send_queue_holds_16_mib_and_an_empty_one_takes_any_message() {
    assert_eq!(wsclient::events::DEFAULT_MAX_SEND_BUFFER, 16 << 20);
    // A server that completes the TCP handshake (the kernel's backlog) but
    // never answers the upgrade: nothing is written meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", silent.local_addr().unwrap());
    let conn = Client::new(&url).unwrap().connect();
    // One buffer, shared by every message: 16 MiB queued, 1 MiB held.
    let chunk = bytes::Bytes::from(vec![0u8; 1 << 20]);
    let mut accepted = 0usize;
    let refused = loop {
        match conn.send_binary(chunk.clone()) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 16, "more than 16 MiB queued by default");
    };
    assert_eq!(refused.reason, SendFailure::BufferFull);
    assert_eq!(accepted, 16, "16 MiB of 1 MiB messages fits");
    assert_eq!(conn.stats().queue_bytes, 16 << 20);
    conn.close();
    tokio::time::timeout(Duration::from_secs(8), conn.finished())
        .await
        .unwrap();
    // A message larger than the limit is taken into an empty queue.
    let mut ws = Client::new(&url).unwrap();
    ws.max_send_buffer(1 << 20);
    let conn = ws.connect();
    conn.send_binary(vec![0u8; 3 << 20])
        .expect("an empty queue takes a message over its limit");
    let refused = conn.send("more").unwrap_err();
    assert_eq!(refused.reason, SendFailure::BufferFull);
    conn.close();
    tokio::time::timeout(Duration::from_secs(8), conn.finished())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_or_reconnect_while_connecting_acts_at_once() {
    // The upgrade is never answered: without looking at commands while
    // connecting, both would wait for the 10 s handshake timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", silent.local_addr().unwrap());
    let log = log();
    let mut ws = Client::new(&url).unwrap();
    let l = log.clone();
    ws.on_connect(move |_| push(&l, "tcp"));
    let l = log.clone();
    ws.on_reconnect(move |_, attempt, _| push(&l, format!("reconnect {attempt}")));
    let l = log.clone();
    ws.on_close(move |_| push(&l, "close"));
    let l = log.clone();
    ws.on_undelivered(move |_, msgs| push(&l, format!("undelivered {}", msgs.len())));
    let conn = ws.connect();
    wait_for(&log, "the TCP connection", |l| l.iter().any(|e| e == "tcp")).await;
    conn.send("queued while connecting").unwrap();
    conn.reconnect(Duration::from_millis(1));
    tokio::time::timeout(
        Duration::from_secs(3),
        wait_for(&log, "the reconnect", |l| {
            l.iter().any(|e| e == "reconnect 1")
        }),
    )
    .await
    .expect("a reconnect while connecting ends the attempt at once");
    wait_for(&log, "the second TCP connection", |l| {
        l.iter().filter(|e| *e == "tcp").count() == 2
    })
    .await;
    conn.close();
    tokio::time::timeout(Duration::from_secs(3), conn.finished())
        .await
        .expect("a close while connecting ends the connection at once");
    assert_eq!(
        snapshot(&log),
        [
            "tcp",
            "close",
            "reconnect 1",
            "tcp",
            "close",
            "undelivered 1"
        ],
        "the message queued while connecting is kept across the reconnect and handed back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_survives_reconnect_and_before_connect_refreshes_url() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let good = peer.url("/echo?token=2");
    // Refused for the test's life (a port only free when picked can be
    // taken meanwhile).
    let (_held, dead_port) = support::ports::refusing_port();
    let dead = format!("ws://127.0.0.1:{dead_port}/echo?token=1");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut ws = Client::with_options(ConnectOptions::new(&dead)).unwrap();
    let attempts = Arc::new(Mutex::new(0));
    let a = attempts.clone();
    // A fresh URL (token) for every attempt after the first.
    ws.before_connect(move |opts| {
        let mut n = a.lock().unwrap();
        *n += 1;
        if *n > 1 {
            opts.set_url(good.clone());
        }
    });
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(50)));
    ws.on_message(move |_, m| {
        let _ = tx.send(m);
    });
    let conn = ws.connect();
    // Sent while the first attempt fails: kept and delivered in order later.
    for i in 0..20 {
        conn.send(format!("q{i}")).unwrap();
    }
    for i in 0..20 {
        let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, Message::text(format!("q{i}")));
    }
    assert!(conn.url().ends_with("token=2"));
    assert!(*attempts.lock().unwrap() >= 2);
    conn.close();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
}

struct Counter {
    seen: Arc<Mutex<Vec<String>>>,
}

impl wsclient::Handler for Counter {
    fn on_websocket_connect(&mut self, conn: &wsclient::Conn, _: &wsclient::Response) {
        conn.send("via handler").unwrap();
    }
    fn on_message(&mut self, conn: &wsclient::Conn, m: Message) {
        self.seen.lock().unwrap().push(m.to_string());
        conn.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_trait_and_binary_send_type() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.send_type(wsclient::SendType::Binary);
    ws.handler(Counter { seen: seen.clone() });
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    // ARRAYBUFFER: the string went as a binary frame and came back binary.
    assert_eq!(*seen.lock().unwrap(), ["<11 bytes binary>"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_receiving() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    // Without `on_connect`, the addresses are looked up when asked for:
    // they are there in `on_websocket_connect`.
    ws.on_websocket_connect(move |conn, _| {
        let _ = up_tx.send((conn.remote_addr(), conn.local_addr()));
    });
    ws.on_message(move |_, m| {
        let _ = tx.send(m);
    });
    let conn = ws.connect();
    let (remote, local) = tokio::time::timeout(Duration::from_secs(5), up_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(remote.map(|a| a.port()), Some(peer.port));
    assert_eq!(local.map(|a| a.ip().is_loopback()), Some(true));
    assert_eq!(conn.state(), wsclient::events::ConnState::Open);
    assert_eq!(conn.remote_addr().map(|a| a.port()), Some(peer.port));
    assert!(conn.local_addr().is_some());
    conn.pause_recv();
    conn.send("while paused").unwrap();
    // Nothing is delivered while paused (the echo waits in the socket).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err()
    );
    conn.resume_recv();
    let m = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m, Message::text("while paused"));
    conn.close_with(4000u16, "bye");
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(conn.close_code(), Some(wsclient::CloseCode(4000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_the_sockets_while_connected_and_gone_after() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (mut io, client_addr) = listener.accept().await.unwrap();
        let request = support::read_request(&mut io).await;
        io.write_all(&support::response_101(request.key()))
            .await
            .unwrap();
        let _ = seen_tx.send(client_addr);
        // Holds the connection until the client closes it, answers its
        // close and ends the TCP connection (the server's part).
        let close = support::read_close(&mut io, request.leftover).await;
        assert!(close.is_some(), "the client's close frame");
        io.write_all(&support::close_frame(1000, "")).await.unwrap();
    });
    let conn = Client::new(&format!("ws://{server_addr}/"))
        .unwrap()
        .connect();
    let client_addr = tokio::time::timeout(Duration::from_secs(5), seen_rx)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), async {
        while conn.state() != wsclient::events::ConnState::Open {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the connection opens");
    // Asked from another thread than the connection's task's.
    let c = conn.clone();
    let (remote, local) = std::thread::spawn(move || (c.remote_addr(), c.local_addr()))
        .join()
        .unwrap();
    assert_eq!(remote, Some(server_addr));
    assert_eq!(local, Some(client_addr), "the address the server sees");
    conn.close();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(conn.remote_addr(), None, "no address once closed");
    assert_eq!(conn.local_addr(), None);
    server.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_redirects_when_enabled() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let target = peer.url("/echo");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let reply =
            format!("HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
        s.write_all(reply.as_bytes()).await.unwrap();
    });
    let log = log();
    let opts = ConnectOptions::new(format!("ws://127.0.0.1:{port}/old")).max_redirects(2);
    let mut ws = Client::with_options(opts).unwrap();
    let l = log.clone();
    ws.on_connect(move |conn| {
        push(
            &l,
            format!("connect {}", conn.remote_addr().unwrap().port()),
        )
    });
    let l = log.clone();
    ws.on_websocket_connect(move |conn, _| {
        push(&l, "websocket_connect");
        conn.send("after redirect").unwrap();
    });
    let l = log.clone();
    ws.on_message(move |conn, m| {
        push(&l, format!("message {m}"));
        conn.close();
    });
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(
        snapshot(&log),
        [
            format!("connect {port}"),
            format!("connect {}", peer.port),
            "websocket_connect".into(),
            "message after redirect".into()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_drains_after_a_stalled_server_resumes() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.max_send_buffer(256 << 10);
    let l = log.clone();
    ws.on_buffer_full(move |_| push(&l, "full"));
    let l = log.clone();
    ws.on_buffer_drain(move |_| push(&l, "drain"));
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    ws.on_websocket_connect(move |_, _| {
        let _ = up_tx.send(());
    });
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), up_rx.recv())
        .await
        .unwrap();
    // Freeze the server: it neither reads nor echoes until resumed.
    let pid = peer.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    let chunk = vec![1u8; 64 << 10];
    let mut accepted = 0u32;
    let mut stuck = 0;
    // Fill the kernel buffers and then our queue, until the queue has
    // stayed over half full for a while: the socket is really stalled.
    while stuck < 10 {
        match conn.send_binary(chunk.clone()) {
            Ok(()) => {
                accepted += 1;
                tokio::task::yield_now().await;
            }
            Err(e) => {
                assert_eq!(e.reason, SendFailure::BufferFull);
                tokio::time::sleep(Duration::from_millis(20)).await;
                if conn.stats().queue_bytes > 128 << 10 {
                    stuck += 1;
                } else {
                    stuck = 0;
                }
            }
        }
        assert!(accepted < 100_000, "the queue never stalled");
    }
    wait_for(&log, "on_buffer_full", |l| l.iter().any(|e| e == "full")).await;
    let _ = std::process::Command::new("kill")
        .args(["-CONT", &pid])
        .status();
    // Once the server reads again the queue empties and drain is reported,
    // with no further send to nudge it.
    wait_for(&log, "on_buffer_drain", |l| {
        l.last().map(String::as_str) == Some("drain")
    })
    .await;
    assert!(conn.stats().queue_bytes <= 128 << 10);
    let events = snapshot(&log);
    // full and drain alternate, starting with full.
    for pair in events.chunks(2) {
        assert_eq!(pair, ["full", "drain"], "{events:?}");
    }
    conn.send_binary(chunk)
        .expect("sends are accepted again after the drain");
    conn.close();
    tokio::time::timeout(Duration::from_secs(10), conn.finished())
        .await
        .unwrap();
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_against_a_refusing_server_keeps_memory_flat() {
    let (_held, port) = support::ports::refusing_port();
    let closes = Arc::new(Mutex::new(0u32));
    let mut ws = Client::new(&format!("ws://127.0.0.1:{port}/")).unwrap();
    ws.reconnect_policy(ReconnectPolicy::fixed(Duration::from_millis(1)).max_attempts(999));
    let c = closes.clone();
    ws.on_close(move |_| *c.lock().unwrap() += 1);
    // Messages queued meanwhile stay bounded and come back at the end.
    let undelivered = Arc::new(Mutex::new(0usize));
    let u = undelivered.clone();
    ws.on_undelivered(move |_, m| *u.lock().unwrap() += m.len());
    let before = rss_kib();
    let started = Instant::now();
    let conn = ws.connect();
    for i in 0..100 {
        conn.send(format!("q{i}")).unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), conn.finished())
        .await
        .unwrap();
    let after = rss_kib();
    // 1 attempt + 999 retries, each refused and closed exactly once.
    assert_eq!(*closes.lock().unwrap(), 1000);
    assert_eq!(conn.stats().reconnects, 999);
    // The 1 ms delay was honoured between attempts.
    assert!(started.elapsed() >= Duration::from_millis(999));
    assert_eq!(*undelivered.lock().unwrap(), 100);
    assert!(
        after.saturating_sub(before) < 16 << 10,
        "RSS grew {before} -> {after} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_resets_after_a_stable_connection() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let good = peer.url("/close-after?n=1");
    let (_held, dead_port) = support::ports::refusing_port();
    let dead = format!("ws://127.0.0.1:{dead_port}/");
    let mut ws = Client::new(&dead).unwrap();
    let n = Arc::new(Mutex::new(0));
    let n2 = n.clone();
    // Two refused attempts, then the real server.
    ws.before_connect(move |opts| {
        let mut n = n2.lock().unwrap();
        *n += 1;
        opts.set_url(if *n <= 2 { dead.clone() } else { good.clone() });
    });
    ws.reconnect_policy(
        ReconnectPolicy::exponential(Duration::from_millis(10), Duration::from_millis(100))
            .reset_after(Duration::from_millis(100)),
    );
    let log = log();
    let l = log.clone();
    ws.on_reconnect(move |conn, attempt, _| {
        push(&l, format!("reconnect {attempt}"));
        if attempt == 1 && conn.stats().reconnects >= 3 {
            // The reconnect after the stable connection: stop here.
            conn.close();
        }
    });
    let (up_tx, mut up_rx) = mpsc::unbounded_channel();
    ws.on_websocket_connect(move |_, _| {
        let _ = up_tx.send(());
    });
    let conn = ws.connect();
    tokio::time::timeout(Duration::from_secs(5), up_rx.recv())
        .await
        .unwrap();
    // Stay open longer than reset_after, then let the server close (1000).
    tokio::time::sleep(Duration::from_millis(250)).await;
    conn.send("bye").unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    assert_eq!(
        snapshot(&log),
        ["reconnect 1", "reconnect 2", "reconnect 1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_paces_a_producer_to_the_connection_and_loses_nothing() {
    let peer = Peer::start(PeerKind::Node, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.max_send_buffer(64 << 10);
    let l = log.clone();
    ws.on_buffer_full(move |_| push(&l, "full"));
    let (echo_tx, mut echo_rx) = mpsc::unbounded_channel();
    ws.on_message(move |_, m| {
        let _ = echo_tx.send(m);
    });
    let conn = ws.connect();
    // Far more than the queue holds, from a producer that never handles a
    // refusal: each message waits for room instead.
    const N: u32 = 300;
    let producer = {
        let conn = conn.clone();
        tokio::spawn(async move {
            for i in 0..N {
                let mut payload = vec![0u8; 16 << 10];
                payload[..4].copy_from_slice(&i.to_be_bytes());
                conn.send_wait(payload).await.unwrap();
            }
        })
    };
    for i in 0..N {
        let m = tokio::time::timeout(Duration::from_secs(10), echo_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("echo {i} did not come"))
            .unwrap();
        assert_eq!(m.len(), 16 << 10);
        assert_eq!(&m.as_payload()[..4], &i.to_be_bytes(), "in order");
    }
    producer.await.unwrap();
    assert!(
        snapshot(&log).iter().any(|e| e == "full"),
        "the queue filled, so the producer waited"
    );
    assert!(conn.stats().queue_bytes <= 64 << 10);
    conn.close();
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_wait_returns_the_message_when_the_connection_finishes_meanwhile() {
    let peer = Peer::start(PeerKind::Python, &PeerOptions::default());
    let log = log();
    let mut ws = Client::new(&peer.url("/echo")).unwrap();
    ws.max_send_buffer(64 << 10);
    let l = log.clone();
    ws.on_undelivered(move |_, msgs| push(&l, format!("undelivered {}", msgs.len())));
    let l = log.clone();
    ws.on_websocket_connect(move |_, _| push(&l, "open"));
    let conn = ws.connect();
    wait_for(&log, "the open", |l| l.iter().any(|e| e == "open")).await;
    // The server process is frozen: it reads nothing more, kernel buffers
    // fill, then the queue, and the producer ends up waiting.
    let status = std::process::Command::new("kill")
        .args(["-STOP", &peer.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let ok = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let producer = {
        let (conn, ok) = (conn.clone(), ok.clone());
        tokio::spawn(async move {
            loop {
                match conn.send_wait(vec![7u8; 64 << 10]).await {
                    Ok(()) => ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    Err(e) => break e,
                };
            }
        })
    };
    // Stuck: no message taken for a while.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = ok.load(std::sync::atomic::Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        assert!(now < 10_000, "never waited: unbounded buffering");
    }
    assert!(!producer.is_finished());
    // The server goes away (killed, its sockets closed by the kernel); no
    // reconnect is set, so the connection finishes, and the waiting send
    // comes back with its message.
    drop(peer);
    let refused = tokio::time::timeout(Duration::from_secs(10), producer)
        .await
        .expect("send_wait returns once the connection is finished")
        .unwrap();
    assert_eq!(refused.reason, SendFailure::Closed);
    assert_eq!(refused.message.len(), 64 << 10);
    tokio::time::timeout(Duration::from_secs(5), conn.finished())
        .await
        .unwrap();
    let undelivered: usize = snapshot(&log)
        .iter()
        .filter_map(|e| e.strip_prefix("undelivered "))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        conn.stats().messages_out as usize + undelivered,
        ok.load(std::sync::atomic::Ordering::Relaxed),
        "every message taken is sent or given back"
    );
}
