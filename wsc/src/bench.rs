//! `wsc bench`: a load generator on the async [`wsclient::WebSocket`] API
//! (each connection split into its sink and stream halves and driven by one
//! task), with a live progress line on stderr and a final report:
//! throughput, latency percentiles from an HDR histogram, errors by kind.

use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use wsclient::{ConnectOptions, Error, Message};

use crate::cli::{BenchArgs, BenchMode};
use crate::exit;

/// After the run: how long echoes still in flight are waited for.
const GRACE: Duration = Duration::from_secs(2);
/// After that: how long the close handshakes may take.
const TEARDOWN: Duration = Duration::from_secs(5);
/// Messages written per flush when sending as fast as possible.
const BATCH: usize = 32;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn histogram() -> Histogram<u64> {
    // Microseconds, from 1 µs to 1 hour, 3 significant figures.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// Counters shared by every connection.
struct Stats {
    /// Connections open now.
    up: AtomicU64,
    /// Connections that completed the handshake.
    opened: AtomicU64,
    /// Connections that never opened.
    failed: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    recv: AtomicU64,
    recv_bytes: AtomicU64,
    error_count: AtomicU64,
    errors: Mutex<BTreeMap<&'static str, u64>>,
    /// The exit code of the first connect failure.
    first_failure: Mutex<Option<u8>>,
    latency: Mutex<Histogram<u64>>,
    connect: Mutex<Histogram<u64>>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            up: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            sent_bytes: AtomicU64::new(0),
            recv: AtomicU64::new(0),
            recv_bytes: AtomicU64::new(0),
            error_count: AtomicU64::new(0),
            errors: Mutex::new(BTreeMap::new()),
            first_failure: Mutex::new(None),
            latency: Mutex::new(histogram()),
            connect: Mutex::new(histogram()),
        }
    }

    fn error(&self, kind: &'static str) {
        self.error_count.fetch_add(1, Ordering::Relaxed);
        *lock(&self.errors).entry(kind).or_default() += 1;
    }

    fn record(h: &Mutex<Histogram<u64>>, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        lock(h).saturating_record(us);
    }
}

/// Why a connection ended before the run did.
enum Failure {
    Ws(Error),
    /// The server closed the connection (with this code).
    PeerClosed,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Ws(e)
    }
}

impl Failure {
    fn kind(&self) -> &'static str {
        match self {
            Failure::Ws(e) => exit::kind(e),
            Failure::PeerClosed => "closed_by_peer",
        }
    }
}

/// What every connection needs.
struct Plan {
    mode: BenchMode,
    payload: Message,
    period: Option<Duration>,
}

async fn connection(
    id: usize,
    options: Arc<ConnectOptions>,
    plan: Arc<Plan>,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
    gate: Arc<Semaphore>,
) {
    let permit = tokio::select! {
        p = gate.acquire_owned() => p,
        _ = stop.wait_for(|s| *s) => return,
    };
    let t0 = Instant::now();
    let connected = tokio::select! {
        r = options.connect() => r,
        _ = stop.wait_for(|s| *s) => return,
    };
    drop(permit);
    let ws = match connected {
        Ok((ws, _response)) => ws,
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            stats.error(exit::kind(&e));
            lock(&stats.first_failure).get_or_insert(exit::for_error(&e));
            return;
        }
    };
    Stats::record(&stats.connect, t0.elapsed());
    stats.opened.fetch_add(1, Ordering::Relaxed);
    stats.up.fetch_add(1, Ordering::Relaxed);
    let result = exchange(id, ws, &plan, &stats, &mut stop).await;
    stats.up.fetch_sub(1, Ordering::Relaxed);
    if let Err(f) = result {
        stats.error(f.kind());
    }
}

/// Runs one open connection until the stop signal, then closes it.
async fn exchange<S>(
    id: usize,
    ws: wsclient::WebSocket<S>,
    plan: &Plan,
    stats: &Stats,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Failure>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let len = plan.payload.len() as u64;
    let sends = plan.mode != BenchMode::Recv;
    let echo = plan.mode == BenchMode::Echo;
    // Paced sending: the connections' first ticks are spread over one period.
    let mut tick = plan.period.map(|p| {
        let offset = p.mul_f64(((id * 7919) % 1000) as f64 / 1000.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, p);
        t.set_missed_tick_behavior(MissedTickBehavior::Skip);
        t
    });
    let mut inflight: VecDeque<Instant> = VecDeque::new();
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        if grace.is_some() && (!echo || inflight.is_empty()) {
            break;
        }
        let writing = sends && grace.is_none();
        let free_run = writing && tick.is_none() && (!echo || inflight.is_empty());
        tokio::select! {
            _ = async { if let Some(t) = tick.as_mut() { t.tick().await; } }, if writing && tick.is_some() => {
                if echo {
                    inflight.push_back(Instant::now());
                }
                sink.send(plan.payload.clone()).await?;
                stats.sent.fetch_add(1, Ordering::Relaxed);
                stats.sent_bytes.fetch_add(len, Ordering::Relaxed);
            }
            () = std::future::ready(()), if free_run => {
                let n = if echo { 1 } else { BATCH };
                for _ in 0..n {
                    if echo {
                        inflight.push_back(Instant::now());
                    }
                    sink.feed(plan.payload.clone()).await?;
                }
                sink.flush().await?;
                stats.sent.fetch_add(n as u64, Ordering::Relaxed);
                stats.sent_bytes.fetch_add(len * n as u64, Ordering::Relaxed);
            }
            item = stream.next() => match item {
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    stats.recv.fetch_add(1, Ordering::Relaxed);
                    stats.recv_bytes.fetch_add(m.len() as u64, Ordering::Relaxed);
                    if echo {
                        if let Some(t) = inflight.pop_front() {
                            Stats::record(&stats.latency, t.elapsed());
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Failure::PeerClosed),
            },
            () = async { let _ = stop.wait_for(|s| *s).await; }, if grace.is_none() => {
                grace = Some(tokio::time::Instant::now() + GRACE);
            }
            () = async { if let Some(g) = grace { tokio::time::sleep_until(g).await } }, if grace.is_some() => {
                break;
            }
        }
    }
    // The close handshake: our close frame, then the server's reply and
    // the end of the stream.
    sink.close().await?;
    let drained = tokio::time::timeout(TEARDOWN, async {
        while let Some(item) = stream.next().await {
            item?;
        }
        Ok::<(), Error>(())
    })
    .await;
    match drained {
        Ok(r) => r.map_err(Failure::from),
        Err(_) => Err(Failure::Ws(Error::Timeout {
            phase: wsclient::Phase::Close,
            after: TEARDOWN,
        })),
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// The live progress line.
async fn progress(stats: Arc<Stats>, conns: usize, start: Instant, tty: bool) {
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let now = (
            stats.sent.load(Ordering::Relaxed),
            stats.sent_bytes.load(Ordering::Relaxed),
            stats.recv.load(Ordering::Relaxed),
            stats.recv_bytes.load(Ordering::Relaxed),
        );
        let line = format!(
            "[{:6.1}s] up {}/{conns} | out {} msg/s {:.2} MB/s | in {} msg/s {:.2} MB/s | errors {}",
            start.elapsed().as_secs_f64(),
            stats.up.load(Ordering::Relaxed),
            now.0 - last.0,
            mb(now.1 - last.1),
            now.2 - last.2,
            mb(now.3 - last.3),
            stats.error_count.load(Ordering::Relaxed),
        );
        last = now;
        let mut err = std::io::stderr().lock();
        if tty {
            let _ = write!(err, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }
}

fn percentiles(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return Value::Null;
    }
    let ms = |us: u64| (us as f64 / 1e3 * 1e3).round() / 1e3;
    json!({
        "count": h.len(),
        "min": ms(h.min()),
        "mean": ((h.mean() / 1e3) * 1e3).round() / 1e3,
        "p50": ms(h.value_at_quantile(0.5)),
        "p90": ms(h.value_at_quantile(0.9)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p99_9": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
    })
}

fn flow(count: u64, bytes: u64, secs: f64) -> Value {
    json!({
        "messages": count,
        "bytes": bytes,
        "msgs_per_s": (count as f64 / secs * 10.0).round() / 10.0,
        "mb_per_s": (mb(bytes) / secs * 1000.0).round() / 1000.0,
    })
}

fn print_report(s: &Value) {
    let f = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "wsc bench {} — mode {}, {} connections, {} bytes, rate {}/s per connection, {:.2} s",
        s["url"].as_str().unwrap_or(""),
        s["mode"].as_str().unwrap_or(""),
        s["conns"],
        s["size"],
        s["rate"],
        s["duration_s"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        out,
        "connections: {} opened, {} failed",
        s["connected"], s["failed"]
    );
    if let Some(c) = s.get("connect_ms").filter(|v| !v.is_null()) {
        let _ = writeln!(
            out,
            "connect time (ms): p50 {} p99 {} max {}",
            f(c, "p50"),
            f(c, "p99"),
            f(c, "max")
        );
    }
    for (name, key) in [("sent", "sent"), ("received", "received")] {
        let v = &s[key];
        let _ = writeln!(
            out,
            "{name:>9}: {} msgs ({} msg/s), {:.3} MB ({} MB/s)",
            v["messages"],
            v["msgs_per_s"],
            mb(v["bytes"].as_u64().unwrap_or(0)),
            v["mb_per_s"]
        );
    }
    match s.get("latency_ms").filter(|v| !v.is_null()) {
        Some(l) => {
            let _ = writeln!(
                out,
                "  latency (ms): p50 {} p90 {} p99 {} p99.9 {} max {} (mean {}, n={})",
                f(l, "p50"),
                f(l, "p90"),
                f(l, "p99"),
                f(l, "p99_9"),
                f(l, "max"),
                f(l, "mean"),
                f(l, "count")
            );
        }
        None => {
            let _ = writeln!(out, "  latency: n/a (echo mode measures round trips)");
        }
    }
    match s["errors_by_kind"].as_object().filter(|m| !m.is_empty()) {
        Some(m) => {
            let list: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(out, "    errors: {} ({})", s["errors"], list.join(", "));
        }
        None => {
            let _ = writeln!(out, "    errors: none");
        }
    }
    let _ = out.flush();
}

/// Runs `wsc bench`; returns the exit code.
pub async fn run(args: BenchArgs) -> u8 {
    if args.conns == 0 {
        eprintln!("wsc bench: --conns must be at least 1");
        return exit::USAGE;
    }
    if !(args.rate.is_finite() && args.rate >= 0.0) {
        eprintln!("wsc bench: --rate must be a number >= 0");
        return exit::USAGE;
    }
    let limit = crate::sys::raise_nofile();
    if limit > 0 && (args.conns as u64) + 64 > limit {
        eprintln!(
            "wsc bench: warning: {} connections need more open files than the limit ({limit})",
            args.conns
        );
    }
    let options = match args.conn.options(&args.url) {
        Ok(o) => Arc::new(o),
        Err((code, msg)) => {
            eprintln!("wsc bench: {msg}");
            return code;
        }
    };
    let payload = if args.text {
        Message::text("x".repeat(args.size))
    } else {
        Message::binary(Bytes::from(
            (0..args.size).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
        ))
    };
    let plan = Arc::new(Plan {
        mode: args.mode,
        payload,
        period: (args.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.rate)),
    });
    let stats = Arc::new(Stats::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let start = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let progress =
        (!args.quiet).then(|| tokio::spawn(progress(stats.clone(), args.conns, start, tty)));
    let mut tasks = JoinSet::new();
    for id in 0..args.conns {
        tasks.spawn(connection(
            id,
            options.clone(),
            plan.clone(),
            stats.clone(),
            stop_rx.clone(),
            gate.clone(),
        ));
    }
    let interrupted = tokio::select! {
        () = tokio::time::sleep(args.duration) => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let _ = stop_tx.send(true);
    let stuck = tokio::time::timeout(GRACE + TEARDOWN + Duration::from_secs(1), async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_err();
    if stuck {
        let n = tasks.len();
        tasks.abort_all();
        for _ in 0..n {
            stats.error("teardown_stalled");
        }
    }
    if let Some(p) = progress {
        p.abort();
        if tty {
            eprintln!();
        }
    }

    let sent = stats.sent.load(Ordering::Relaxed);
    let recv = stats.recv.load(Ordering::Relaxed);
    let errors: serde_json::Map<String, Value> = lock(&stats.errors)
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    let summary = json!({
        "url": args.url,
        "mode": match args.mode { BenchMode::Echo => "echo", BenchMode::Recv => "recv", BenchMode::Send => "send" },
        "conns": args.conns,
        "connected": stats.opened.load(Ordering::Relaxed),
        "failed": stats.failed.load(Ordering::Relaxed),
        "size": args.size,
        "rate": args.rate,
        "duration_s": (elapsed * 1000.0).round() / 1000.0,
        "messages": if args.mode == BenchMode::Send { sent } else { recv },
        "sent": flow(sent, stats.sent_bytes.load(Ordering::Relaxed), elapsed),
        "received": flow(recv, stats.recv_bytes.load(Ordering::Relaxed), elapsed),
        "latency_ms": percentiles(&lock(&stats.latency)),
        "connect_ms": percentiles(&lock(&stats.connect)),
        "errors": stats.error_count.load(Ordering::Relaxed),
        "errors_by_kind": errors,
        "interrupted": interrupted,
    });
    if args.json {
        println!("{summary}");
    } else {
        print_report(&summary);
    }
    if interrupted {
        return exit::INTERRUPTED;
    }
    if stats.opened.load(Ordering::Relaxed) == 0 {
        return lock(&stats.first_failure).unwrap_or(exit::CONNECT);
    }
    exit::OK
}
