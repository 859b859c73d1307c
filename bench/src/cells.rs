//! The measurements ("cells"), each run by one client in its own process
//! against a server process: receive and send throughput, echo latency,
//! idle memory per connection, and connect rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::clients::{Fast, R, TokioWebsockets, Tungstenite, Ws, WsClient};
use crate::frames;

/// What a cell measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Recv,
    Send,
    Echo,
    Idle,
    Connect,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "recv" => Kind::Recv,
            "send" => Kind::Send,
            "echo" => Kind::Echo,
            "idle" => Kind::Idle,
            "connect" => Kind::Connect,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Recv => "recv",
            Kind::Send => "send",
            Kind::Echo => "echo",
            Kind::Idle => "idle",
            Kind::Connect => "connect",
        }
    }

    /// The server mode the cell runs against.
    pub fn server_mode(self) -> &'static str {
        match self {
            Kind::Recv => "send",
            Kind::Send => "sink",
            Kind::Echo | Kind::Idle | Kind::Connect => "echo",
        }
    }
}

/// A cell's parameters.
#[derive(Debug, Clone)]
pub struct Params {
    pub addr: SocketAddr,
    pub size: usize,
    /// Measured time.
    pub secs: f64,
    /// Warm-up before measuring (receive and echo).
    pub warm: f64,
    /// Connections for the idle cell.
    pub conns: usize,
}

/// What one run measured; printed as one `RESULT` line.
#[derive(Debug, Default, Clone)]
pub struct Sample {
    pub msgs: f64,
    pub bytes: f64,
    pub secs: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub per_conn: f64,
    /// Live heap per idle connection (allocator statistics).
    pub heap_per_conn: f64,
    /// The client process's CPU time (user + system) over the measured
    /// window (receive, send and echo cells).
    pub cpu_secs: f64,
    /// The server process's CPU time over the same window, when the run
    /// was told the server's pid (`--server-pid`).
    pub server_cpu_secs: f64,
}

impl Sample {
    pub fn line(&self) -> String {
        format!(
            "RESULT msgs={} bytes={} secs={} p50_ns={} p99_ns={} per_conn={} heap_per_conn={} cpu_secs={} server_cpu_secs={}",
            self.msgs,
            self.bytes,
            self.secs,
            self.p50_ns,
            self.p99_ns,
            self.per_conn,
            self.heap_per_conn,
            self.cpu_secs,
            self.server_cpu_secs
        )
    }

    pub fn parse(line: &str) -> Option<Sample> {
        let rest = line.strip_prefix("RESULT ")?;
        let mut s = Sample::default();
        for kv in rest.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "msgs" => s.msgs = v.parse().ok()?,
                "bytes" => s.bytes = v.parse().ok()?,
                "secs" => s.secs = v.parse().ok()?,
                "p50_ns" => s.p50_ns = v.parse().ok()?,
                "p99_ns" => s.p99_ns = v.parse().ok()?,
                "per_conn" => s.per_conn = v.parse().ok()?,
                "heap_per_conn" => s.heap_per_conn = v.parse().ok()?,
                "cpu_secs" => s.cpu_secs = v.parse().ok()?,
                "server_cpu_secs" => s.server_cpu_secs = v.parse().ok()?,
                _ => {}
            }
        }
        Some(s)
    }
}

/// The most connections one connect-rate run opens (TIME_WAIT keeps each
/// 4-tuple for a minute; the ephemeral range is ~28k ports).
const MAX_CONNECTS: usize = 10_000;
/// Handshakes in flight at once while opening idle connections.
const IDLE_CONCURRENCY: usize = 128;
/// Idle connections opened (and not counted) before the baseline.
const IDLE_WARM: usize = 64;

/// The raw TCP client's largest read (as `wsclient`'s socket reads).
const RAW_READ: usize = 256 << 10;

/// Frames from this size on are read by the raw TCP client one whole frame
/// per read, with `SO_RCVLOWAT` at the frame's length (`wsclient`'s socket
/// reads frames from 128 KiB on so).
const RAW_LARGE_FRAME: usize = 128 << 10;

/// The raw TCP client's write batch: frames up to this size per call, and a
/// 1 MiB frame in two calls, as `wsclient` writes with its default
/// `write_buffer_size`: the same bytes in the same writes, less the
/// WebSocket work. On the benchmark VM (kernel v1300), A/B with 256 KiB
/// writes, 8 interleaved pairs each: 1.55x as fast at 1 KiB, 1.67x at
/// 64 KiB, 1.13x at 1 MiB; 1 MiB writes were erratic against 512 KiB
/// (0.81x at 1 KiB, 1.25x at 64 KiB, 6 pairs each).
const RAW_WRITE: usize = 512 << 10;

/// Messages between two clock reads (about 64 KiB of payload).
fn check_every(size: usize) -> usize {
    (65_536 / (size + 14)).clamp(1, 1024)
}

fn secs(d: f64) -> Duration {
    Duration::from_secs_f64(d)
}

fn histogram() -> Histogram<u64> {
    // 100 ns .. 100 s, 3 significant digits.
    Histogram::new_with_bounds(100, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

/// Runs one cell for one client.
pub async fn run(client: &str, kind: Kind, p: &Params) -> R<Sample> {
    match client {
        "raw" => raw::run(kind, p).await,
        "wsclient-events" => events::run(kind, p).await,
        "wsclient" => generic::<WsClient>(kind, p).await,
        "tokio-tungstenite" => generic::<Tungstenite>(kind, p).await,
        "tokio-websockets" => generic::<TokioWebsockets>(kind, p).await,
        "fastwebsockets" => generic::<Fast>(kind, p).await,
        other => Err(format!("unknown client {other}").into()),
    }
}

async fn generic<W: Ws + 'static>(kind: Kind, p: &Params) -> R<Sample> {
    match kind {
        Kind::Recv => recv::<W>(p).await,
        Kind::Send => send::<W>(p).await,
        Kind::Echo => echo::<W>(p).await,
        Kind::Idle => idle::<W>(p).await,
        Kind::Connect => connect::<W>(p).await,
    }
}

async fn recv<W: Ws>(p: &Params) -> R<Sample> {
    let mut ws = W::connect(p.addr).await?;
    let k = check_every(p.size);
    let warm = Instant::now();
    while warm.elapsed() < secs(p.warm) {
        for _ in 0..k {
            ws.recv().await?;
        }
    }
    let w = Window::open();
    let (mut n, mut bytes) = (0u64, 0u64);
    loop {
        for _ in 0..k {
            bytes += ws.recv().await? as u64;
        }
        n += k as u64;
        if w.elapsed() >= secs(p.secs) {
            break;
        }
    }
    Ok(w.sample(n as f64, bytes as f64))
}

/// Sends for the measured time, then runs the close handshake: the server
/// answers the close frame only after reading everything before it, so the
/// time includes draining what the socket buffers still held.
async fn send<W: Ws>(p: &Params) -> R<Sample> {
    let mut ws = W::connect(p.addr).await?;
    let payload = Bytes::from(frames::payload(p.size));
    let k = check_every(p.size);
    let w = Window::open();
    let mut n = 0u64;
    loop {
        for _ in 0..k {
            ws.feed(&payload).await?;
        }
        n += k as u64;
        if w.elapsed() >= secs(p.secs) {
            break;
        }
    }
    ws.close().await?;
    Ok(w.sample(n as f64, (n * p.size as u64) as f64))
}

async fn echo<W: Ws>(p: &Params) -> R<Sample> {
    let mut ws = W::connect(p.addr).await?;
    let payload = Bytes::from(frames::payload(p.size));
    let warm = Instant::now();
    while warm.elapsed() < secs(p.warm) {
        ws.send_now(&payload).await?;
        ws.recv().await?;
    }
    let mut h = histogram();
    let w = Window::open();
    while w.elapsed() < secs(p.secs) {
        let t = Instant::now();
        ws.send_now(&payload).await?;
        let n = ws.recv().await?;
        record(&mut h, t.elapsed());
        if n != p.size {
            return Err(format!("echo of {} bytes came back as {n}", p.size).into());
        }
    }
    Ok(latency_sample(&h, &w))
}

/// The server's pid, when the run was given it: windows then also
/// measure the server's CPU time.
pub static SERVER_PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// A measured window: when it opened, in wall-clock time, in the process's
/// CPU time and in the server's.
struct Window {
    start: Instant,
    cpu: f64,
    server_cpu: Option<f64>,
}

/// The server's CPU seconds so far, when its pid is known.
fn server_cpu_now() -> Option<f64> {
    SERVER_PID
        .get()
        .and_then(|&pid| crate::sys::process_cpu_secs(pid))
}

impl Window {
    fn open() -> Self {
        Window {
            server_cpu: server_cpu_now(),
            start: Instant::now(),
            cpu: crate::sys::cpu_secs(),
        }
    }

    /// Closes the window on `msgs` messages of `bytes` payload bytes: its
    /// length, the client's CPU time in it and the server's (0 when
    /// unknown).
    fn sample(&self, msgs: f64, bytes: f64) -> Sample {
        let secs = self.elapsed().as_secs_f64();
        let cpu_secs = crate::sys::cpu_secs() - self.cpu;
        let server_cpu_secs = match (self.server_cpu, server_cpu_now()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        Sample {
            msgs,
            bytes,
            secs,
            cpu_secs,
            server_cpu_secs,
            ..Sample::default()
        }
    }

    /// Wall-clock time since the window opened.
    fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

fn latency_sample(h: &Histogram<u64>, w: &Window) -> Sample {
    Sample {
        p50_ns: h.value_at_quantile(0.50),
        p99_ns: h.value_at_quantile(0.99),
        ..w.sample(h.len() as f64, 0.0)
    }
}

/// Opens `n` connections, `IDLE_CONCURRENCY` handshakes at a time, each in
/// its own short-lived task; `hold` then parks each open connection in a
/// small task of its own, waiting to read (as an application's reader
/// would). The connect futures are gone by the time RSS is read.
async fn open_idle<T, C, Fut, H>(n: usize, connect: &C, hold: &H) -> R<()>
where
    T: 'static,
    C: Fn() -> Fut,
    Fut: std::future::Future<Output = R<T>> + 'static,
    H: Fn(T),
{
    let mut left = n;
    while left > 0 {
        let batch = left.min(IDLE_CONCURRENCY);
        let handles: Vec<_> = (0..batch)
            .map(|_| tokio::task::spawn_local(connect()))
            .collect();
        for h in handles {
            let t = h.await.map_err(|e| e.to_string())??;
            hold(t);
        }
        left -= batch;
    }
    Ok(())
}

/// Measures RSS growth per connection: `IDLE_WARM` connections first (not
/// counted), then `p.conns` more.
async fn idle_with<T, C, Fut, H>(p: &Params, connect: C, hold: H) -> R<Sample>
where
    T: 'static,
    C: Fn() -> Fut,
    Fut: std::future::Future<Output = R<T>> + 'static,
    H: Fn(T),
{
    open_idle(IDLE_WARM, &connect, &hold).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (before, heap_before) = (crate::sys::rss_bytes(), crate::sys::heap_in_use());
    open_idle(p.conns, &connect, &hold).await?;
    // Let every reader task reach its idle read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (after, heap_after) = (crate::sys::rss_bytes(), crate::sys::heap_in_use());
    Ok(Sample {
        msgs: p.conns as f64,
        per_conn: after.saturating_sub(before) as f64 / p.conns as f64,
        heap_per_conn: heap_after.saturating_sub(heap_before) as f64 / p.conns as f64,
        ..Sample::default()
    })
}

async fn idle<W: Ws + 'static>(p: &Params) -> R<Sample> {
    let addr = p.addr;
    idle_with(
        p,
        || W::connect(addr),
        |mut ws: W| {
            tokio::task::spawn_local(async move {
                let _ = ws.recv().await;
                std::future::pending::<()>().await;
                drop(ws);
            });
        },
    )
    .await
}

/// Sequential connects (TCP + upgrade), each timed from the call to the
/// open socket, with the client's CPU time over the same span. Each
/// connection then ends with its close handshake, not counted: the event
/// client always closes that way, and how a connection ended changes what
/// the next connect costs (a server that closed first answers the next
/// connect ~15 µs later on loopback), so every client ends its connections
/// alike.
async fn connect<W: Ws>(p: &Params) -> R<Sample> {
    timed_connects(
        p,
        || W::connect(p.addr),
        |mut ws: W| async move { ws.close().await },
    )
    .await
}

/// The connect cell's loop around `open` (timed) and `close` (not).
async fn timed_connects<T, O, OF, C, CF>(p: &Params, mut open: O, mut close: C) -> R<Sample>
where
    O: FnMut() -> OF,
    OF: std::future::Future<Output = R<T>>,
    C: FnMut(T) -> CF,
    CF: std::future::Future<Output = R<()>>,
{
    let wall = Instant::now();
    let mut total = Duration::ZERO;
    let mut cpu = 0.0;
    let mut n = 0usize;
    while wall.elapsed() < secs(p.secs) && n < MAX_CONNECTS {
        let cpu_at = crate::sys::cpu_secs();
        let t = Instant::now();
        let conn = open().await?;
        total += t.elapsed();
        cpu += crate::sys::cpu_secs() - cpu_at;
        n += 1;
        close(conn).await?;
    }
    Ok(Sample {
        msgs: n as f64,
        secs: total.as_secs_f64(),
        cpu_secs: cpu,
        ..Sample::default()
    })
}

/// One connect of `W`, timed with the client's CPU time over the same
/// span, then its close handshake (not timed).
async fn one_connect<W: Ws>(addr: SocketAddr) -> R<(Duration, f64)> {
    let cpu_at = crate::sys::cpu_secs();
    let t = Instant::now();
    let mut ws = W::connect(addr).await?;
    let took = t.elapsed();
    let cpu = crate::sys::cpu_secs() - cpu_at;
    ws.close().await?;
    Ok((took, cpu))
}

/// A socket client's [`one_connect`], boxed so that two clients can take
/// turns in one loop.
type OneConnect =
    fn(SocketAddr) -> std::pin::Pin<Box<dyn std::future::Future<Output = R<(Duration, f64)>>>>;

fn one_connect_of(client: &str) -> Option<OneConnect> {
    Some(match client {
        "wsclient" => |a| Box::pin(one_connect::<WsClient>(a)),
        "tokio-tungstenite" => |a| Box::pin(one_connect::<Tungstenite>(a)),
        "tokio-websockets" => |a| Box::pin(one_connect::<TokioWebsockets>(a)),
        "fastwebsockets" => |a| Box::pin(one_connect::<Fast>(a)),
        _ => return None,
    })
}

/// The connect cell for two socket clients taking turns in one process
/// (`wsbench run --client A+B --cell connect`): A, B, A, B, ... against
/// one server, a sample for each. Both then share the process's state,
/// the machine's phase and the server's, so a difference of a fraction
/// of a microsecond per connect shows that separate processes run
/// minutes apart would hide.
pub async fn alternate_connects(a: &str, b: &str, p: &Params) -> R<[Sample; 2]> {
    let pick = |c: &str| {
        one_connect_of(c).ok_or_else(|| {
            format!("{c}: alternating connects take wsclient, tokio-tungstenite, tokio-websockets or fastwebsockets")
        })
    };
    let clients = [pick(a)?, pick(b)?];
    let wall = Instant::now();
    let mut samples = [Sample::default(), Sample::default()];
    let mut n = 0usize;
    while wall.elapsed() < secs(p.secs) && n < MAX_CONNECTS {
        let (took, cpu) = clients[n % 2](p.addr).await?;
        let s = &mut samples[n % 2];
        s.msgs += 1.0;
        s.secs += took.as_secs_f64();
        s.cpu_secs += cpu;
        n += 1;
    }
    Ok(samples)
}

/// The limit: the same bytes over plain TCP, with a fixed upgrade request
/// and no WebSocket library.
mod raw {
    use super::*;

    async fn open(addr: SocketAddr) -> R<(TcpStream, Vec<u8>)> {
        let mut s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        s.write_all(&frames::raw_request(&addr.to_string())).await?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if let Some(n) = frames::head_end(&buf) {
                buf.drain(..n);
                return Ok((s, buf));
            }
            if s.read_buf(&mut buf).await? == 0 {
                return Err("EOF in the upgrade response".into());
            }
        }
    }

    /// The close handshake, as the WebSocket clients end a connection in
    /// the connect cell: a masked close frame, then reading until the
    /// server's end of stream (its close frame comes first).
    async fn close(s: &mut TcpStream) -> R<()> {
        let mut frame = Vec::new();
        frames::put_frame(&mut frame, 0x8, &1000u16.to_be_bytes(), Some([1, 2, 3, 4]));
        s.write_all(&frame).await?;
        let mut buf = [0u8; 256];
        while s.read(&mut buf).await? > 0 {}
        Ok(())
    }

    pub async fn run(kind: Kind, p: &Params) -> R<Sample> {
        match kind {
            Kind::Recv => recv(p).await,
            Kind::Send => send(p).await,
            Kind::Echo => echo(p).await,
            Kind::Idle => {
                let addr = p.addr;
                idle_with(
                    p,
                    move || async move { Ok(open(addr).await?.0) },
                    |mut s: TcpStream| {
                        tokio::task::spawn_local(async move {
                            let mut b = [0u8; 64];
                            let _ = s.read(&mut b).await;
                            std::future::pending::<()>().await;
                            drop(s);
                        });
                    },
                )
                .await
            }
            Kind::Connect => {
                timed_connects(
                    p,
                    || async { Ok(open(p.addr).await?.0) },
                    |mut s: TcpStream| async move { close(&mut s).await },
                )
                .await
            }
        }
    }

    async fn recv(p: &Params) -> R<Sample> {
        let (mut s, _) = open(p.addr).await?;
        let frame_len = frames::header_len(p.size, false) + p.size;
        let frame = frame_len as f64;
        // Large frames as `wsclient`'s socket reads them: a read of the
        // whole frame, woken only when all of it is there.
        let read_len = if frame_len >= RAW_LARGE_FRAME {
            crate::sys::set_read_low_water(&s, frame_len)?;
            frame_len
        } else {
            RAW_READ
        };
        let mut buf = vec![0u8; read_len];
        let warm = Instant::now();
        while warm.elapsed() < secs(p.warm) {
            if s.read(&mut buf).await? == 0 {
                return Err("EOF".into());
            }
        }
        let w = Window::open();
        let mut bytes = 0u64;
        while w.elapsed() < secs(p.secs) {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Err("EOF".into());
            }
            bytes += n as u64;
        }
        let msgs = bytes as f64 / frame;
        Ok(w.sample(msgs, msgs * p.size as f64))
    }

    async fn send(p: &Params) -> R<Sample> {
        let (mut s, _) = open(p.addr).await?;
        let (batch, per) = frames::frame_batch(p.size, true, RAW_WRITE);
        let w = Window::open();
        let mut n = 0u64;
        while w.elapsed() < secs(p.secs) {
            // At most 512 KiB a call, also for a 1 MiB frame.
            for piece in batch.chunks(RAW_WRITE) {
                s.write_all(piece).await?;
            }
            n += per as u64;
        }
        let mut close = Vec::new();
        frames::put_frame(
            &mut close,
            frames::OP_CLOSE,
            &1000u16.to_be_bytes(),
            Some([7, 7, 7, 7]),
        );
        s.write_all(&close).await?;
        let mut b = [0u8; 64];
        while s.read(&mut b).await? != 0 {}
        Ok(w.sample(n as f64, (n * p.size as u64) as f64))
    }

    async fn echo(p: &Params) -> R<Sample> {
        let (mut s, _) = open(p.addr).await?;
        let mut frame = Vec::new();
        frames::put_frame(
            &mut frame,
            frames::OP_BINARY,
            &frames::payload(p.size),
            Some([1, 2, 3, 4]),
        );
        let mut reply = vec![0u8; frames::header_len(p.size, false) + p.size];
        let warm = Instant::now();
        while warm.elapsed() < secs(p.warm) {
            s.write_all(&frame).await?;
            s.read_exact(&mut reply).await?;
        }
        let mut h = histogram();
        let w = Window::open();
        while w.elapsed() < secs(p.secs) {
            let t = Instant::now();
            s.write_all(&frame).await?;
            s.read_exact(&mut reply).await?;
            record(&mut h, t.elapsed());
        }
        Ok(latency_sample(&h, &w))
    }
}

/// This project's event-driven `Client`: callbacks on the same runtime.
mod events {
    use super::*;
    use wsclient::events::SendFailure;
    use wsclient::{Client, Conn};

    struct Signals {
        open: Arc<Notify>,
        failed: Arc<AtomicUsize>,
        /// When `on_websocket_connect` last began, and the process's CPU
        /// time then.
        opened_at: Arc<std::sync::Mutex<Option<(Instant, f64)>>>,
    }

    fn client(addr: SocketAddr) -> R<(Client, Signals)> {
        let mut c = Client::new(&format!("ws://{addr}/"))?;
        let open = Arc::new(Notify::new());
        let failed = Arc::new(AtomicUsize::new(0));
        let opened_at = Arc::new(std::sync::Mutex::new(None));
        let (o, at) = (open.clone(), opened_at.clone());
        c.on_websocket_connect(move |_, _| {
            if let Ok(mut at) = at.lock() {
                *at = Some((Instant::now(), crate::sys::cpu_secs()));
            }
            o.notify_one();
        });
        let (o, f) = (open.clone(), failed.clone());
        c.on_error(move |_, e| {
            eprintln!("wsclient-events: {e}");
            f.fetch_add(1, Ordering::Relaxed);
            o.notify_one();
        });
        Ok((
            c,
            Signals {
                open,
                failed,
                opened_at,
            },
        ))
    }

    /// Waits for the connection to open (or fail), at most 10 s.
    async fn opened(s: &Signals) -> R<()> {
        tokio::select! {
            biased;
            () = s.open.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(10)) => {
                return Err("timed out connecting".into());
            }
        }
        opened_ok(s)
    }

    /// [`opened`] without a timer of the harness's: bounded by the
    /// library's own connect and upgrade timeouts (10 s each by default),
    /// which end in `on_error`, so `open` is notified either way. For the
    /// connect cell, where the socket clients are awaited directly: a
    /// timer pending there makes every sleep of the runtime an
    /// `epoll_wait` with a timeout (the kernel arms and cancels a timer
    /// each time), and one registered per connect wakes the runtime's
    /// driver too.
    async fn opened_by_library_timeouts(s: &Signals) -> R<()> {
        s.open.notified().await;
        opened_ok(s)
    }

    fn opened_ok(s: &Signals) -> R<()> {
        if s.failed.load(Ordering::Relaxed) > 0 {
            return Err("connect failed".into());
        }
        Ok(())
    }

    /// A warm-up, then the measured window, both timed from `on_message`
    /// (the receive and echo cells). The main task waits for the end
    /// without a timer: a pending timer makes every sleep of the runtime
    /// an `epoll_wait` with a timeout (the kernel arms and cancels a timer
    /// each time), which the socket clients' loops, awaited directly, do
    /// not pay.
    struct Phases {
        /// Set when the connection is open ([`Phases::begin`]): messages
        /// that come before it do not open the window.
        warm_until: Instant,
        secs: Duration,
        window: Option<Window>,
    }

    /// Where [`Phases::step`] found the cell.
    enum Phase<'a> {
        /// Still warming up.
        Warming,
        /// The window opened at this step.
        Opened,
        /// Inside the window.
        Measuring,
        /// The window has lasted its length.
        Over(&'a Window),
    }

    impl Phases {
        fn new(secs: Duration) -> Self {
            Phases {
                warm_until: Instant::now() + Duration::from_secs(3600),
                secs,
                window: None,
            }
        }

        /// Starts the warm-up of `warm` (the connection is open).
        fn begin(&mut self, warm: Duration) {
            self.warm_until = Instant::now() + warm;
        }

        /// Looks at the clock: opens the window once the warm-up is over.
        fn step(&mut self) -> Phase<'_> {
            match self.window {
                None if Instant::now() < self.warm_until => Phase::Warming,
                None => {
                    self.window = Some(Window::open());
                    Phase::Opened
                }
                Some(ref w) if w.elapsed() >= self.secs => Phase::Over(w),
                Some(_) => Phase::Measuring,
            }
        }
    }

    pub async fn run(kind: Kind, p: &Params) -> R<Sample> {
        match kind {
            Kind::Recv => recv(p).await,
            Kind::Send => send(p).await,
            Kind::Echo => echo(p).await,
            Kind::Idle => idle(p).await,
            Kind::Connect => connect(p).await,
        }
    }

    async fn recv(p: &Params) -> R<Sample> {
        /// The cell's state, driven from `on_message` every `k` messages
        /// (as the socket clients' loops look at the clock).
        struct Counted {
            phases: Phases,
            /// The client's counters when the window opened.
            start: (u64, u64),
            result: Option<Sample>,
        }
        let (mut c, sig) = client(p.addr)?;
        let state = Arc::new(std::sync::Mutex::new(Counted {
            phases: Phases::new(secs(p.secs)),
            start: (0, 0),
            result: None,
        }));
        let ended = Arc::new(Notify::new());
        let (st, done) = (state.clone(), ended.clone());
        let k = check_every(p.size);
        let mut count = 0usize;
        // The messages and bytes are counted by the client itself
        // (`Conn::stats`), as the socket clients' loops count theirs in
        // local variables: counters of the harness's own, shared with this
        // task, would be two atomic read-modify-writes per message in the
        // callback, a third of its time at 16 B.
        c.on_message(move |conn, m| {
            std::hint::black_box(m.len());
            count += 1;
            if count < k {
                return;
            }
            count = 0;
            let mut guard = st.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let s = &mut *guard;
            if s.result.is_some() {
                return;
            }
            match s.phases.step() {
                Phase::Warming | Phase::Measuring => {}
                Phase::Opened => {
                    let stats = conn.stats();
                    s.start = (stats.messages_in, stats.bytes_in);
                }
                Phase::Over(w) => {
                    let stats = conn.stats();
                    let (m0, b0) = s.start;
                    s.result = Some(w.sample(
                        (stats.messages_in - m0) as f64,
                        (stats.bytes_in - b0) as f64,
                    ));
                    done.notify_one();
                }
            }
        });
        let done = ended.clone();
        c.on_close(move |_| done.notify_one());
        let _conn = c.connect();
        opened(&sig).await?;
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .phases
            .begin(secs(p.warm));
        // Woken at the end of the window, or by the connection's end (the
        // run's own limit bounds the rest).
        ended.notified().await;
        state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .result
            .take()
            .ok_or_else(|| "the stream ended before the window did".into())
    }

    /// Sends through the queue as fast as it takes messages, and when it
    /// is full waits for `on_buffer_drain` (the seed's onBufferFull /
    /// onBufferDrain), as the socket clients' producers wait only when
    /// their sink is not ready: no yields of its own. At the end closes
    /// (the close follows every queued message) and waits for the close
    /// handshake. A queue that never drains is an error.
    async fn send(p: &Params) -> R<Sample> {
        let (mut c, sig) = client(p.addr)?;
        let drain = Arc::new(Notify::new());
        let d = drain.clone();
        c.on_buffer_drain(move |_| d.notify_one());
        let conn = c.connect();
        opened(&sig).await?;
        let payload = Bytes::from(frames::payload(p.size));
        let k = check_every(p.size);
        let w = Window::open();
        let mut n = 0u64;
        // The connection task runs while this one waits for the drain.
        loop {
            for _ in 0..k {
                loop {
                    match conn.send_binary(payload.clone()) {
                        Ok(()) => break,
                        Err(e) if e.reason == SendFailure::BufferFull => {
                            // No timer (see `echo`); the run's own limit
                            // bounds a queue that never drains.
                            drain.notified().await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            n += k as u64;
            if w.elapsed() >= secs(p.secs) {
                break;
            }
        }
        // The close goes out after every message queued before it.
        conn.close();
        conn.finished().await;
        let sent = conn.stats().messages_out;
        if sent != n {
            return Err(format!("{n} messages queued but {sent} sent").into());
        }
        Ok(w.sample(n as f64, (n * p.size as u64) as f64))
    }

    /// Round trips driven from `on_message`, as an event-driven client
    /// answers (the seed's `onMessage` sends): each reply is timed and the
    /// next message sent from the callback, on the connection's task; the
    /// main task only sends the first message and waits for the end.
    async fn echo(p: &Params) -> R<Sample> {
        /// The exchange's state, owned by the `on_message` callback (as
        /// the socket clients' loops keep theirs in locals: shared with
        /// the main task behind a lock, it would cost a lock and an unlock
        /// per round trip that they do not pay). The warm-up starts at the
        /// first reply.
        struct Exchange {
            h: Histogram<u64>,
            sent_at: Instant,
            phases: Phases,
            started: bool,
            ended: bool,
        }
        let (mut c, sig) = client(p.addr)?;
        // The outcome, written once by the callback: the sample, or why
        // the exchange stopped (a send refused inside it is an error, not
        // a sample cut short).
        let outcome: Arc<std::sync::Mutex<Option<Result<Sample, String>>>> = Arc::default();
        let stopped = Arc::new(Notify::new());
        let payload = Bytes::from(frames::payload(p.size));
        let (out, done, pl) = (outcome.clone(), stopped.clone(), payload.clone());
        let warm = secs(p.warm);
        let mut x = Exchange {
            h: histogram(),
            sent_at: Instant::now(),
            phases: Phases::new(secs(p.secs)),
            started: false,
            ended: false,
        };
        let finish = move |result: Result<Sample, String>| {
            *out.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(result);
            done.notify_one();
        };
        c.on_message(move |conn, _| {
            if x.ended {
                return;
            }
            let d = x.sent_at.elapsed();
            if !x.started {
                x.started = true;
                x.phases.begin(warm);
            }
            match x.phases.step() {
                Phase::Warming | Phase::Opened => {}
                Phase::Measuring => record(&mut x.h, d),
                Phase::Over(w) => {
                    record(&mut x.h, d);
                    let sample = latency_sample(&x.h, w);
                    x.ended = true;
                    finish(Ok(sample));
                    return;
                }
            }
            x.sent_at = Instant::now();
            if let Err(e) = conn.send_binary(pl.clone()) {
                x.ended = true;
                finish(Err(format!("a send failed during the exchange: {e}")));
            }
        });
        let done = stopped.clone();
        c.on_close(move |_| done.notify_one());
        let conn = c.connect();
        opened(&sig).await?;
        conn.send_binary(payload.clone())?;
        // Woken by the callback at the end of the window, or by the
        // connection's end (the run's own limit bounds the rest).
        stopped.notified().await;
        let result = outcome
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match result {
            Some(Ok(sample)) if sample.msgs > 0.0 => Ok(sample),
            Some(Ok(_)) => Err("no round trip completed".into()),
            Some(Err(e)) => Err(e.into()),
            None => Err("the exchange ended before its window did".into()),
        }
    }

    async fn idle(p: &Params) -> R<Sample> {
        let url = format!("ws://{}/", p.addr);
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let notify = Arc::new(Notify::new());
        let mut conns: Vec<Conn> = Vec::with_capacity(p.conns + IDLE_WARM);
        let open_n = async |n: usize, conns: &mut Vec<Conn>| -> R<()> {
            let target = conns.len() + n;
            for _ in 0..n {
                // Keep at most IDLE_CONCURRENCY handshakes in flight.
                while conns.len() - (ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed))
                    >= IDLE_CONCURRENCY
                {
                    notify.notified().await;
                }
                let mut c = Client::new(&url)?;
                let (o, nf) = (ok.clone(), notify.clone());
                c.on_websocket_connect(move |_, _| {
                    o.fetch_add(1, Ordering::Relaxed);
                    nf.notify_one();
                });
                let (f, nf) = (failed.clone(), notify.clone());
                c.on_error(move |_, _| {
                    f.fetch_add(1, Ordering::Relaxed);
                    nf.notify_one();
                });
                conns.push(c.connect());
            }
            while ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < target {
                tokio::time::timeout(Duration::from_secs(120), notify.notified())
                    .await
                    .map_err(|_| "timed out opening idle connections")?;
            }
            if failed.load(Ordering::Relaxed) > 0 {
                return Err("idle connections failed".into());
            }
            Ok(())
        };
        open_n(IDLE_WARM, &mut conns).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (before, heap_before) = (crate::sys::rss_bytes(), crate::sys::heap_in_use());
        open_n(p.conns, &mut conns).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (after, heap_after) = (crate::sys::rss_bytes(), crate::sys::heap_in_use());
        Ok(Sample {
            msgs: p.conns as f64,
            per_conn: after.saturating_sub(before) as f64 / p.conns as f64,
            heap_per_conn: heap_after.saturating_sub(heap_before) as f64 / p.conns as f64,
            ..Sample::default()
        })
    }

    async fn connect(p: &Params) -> R<Sample> {
        let wall = Instant::now();
        let mut total = Duration::ZERO;
        let mut cpu = 0.0;
        let mut n = 0usize;
        while wall.elapsed() < secs(p.secs) && n < MAX_CONNECTS {
            let cpu_at = crate::sys::cpu_secs();
            let t = Instant::now();
            let (c, sig) = client(p.addr)?;
            let conn = c.connect();
            opened_by_library_timeouts(&sig).await?;
            // Timed to the start of `on_websocket_connect`, where the user's
            // code runs (as the socket clients are timed to the return of
            // their connect), not to this task's wake-up after it; so is
            // the CPU time.
            let at = sig.opened_at.lock().ok().and_then(|at| *at);
            let (end, cpu_end) = at.unwrap_or_else(|| (Instant::now(), crate::sys::cpu_secs()));
            total += end.duration_since(t);
            cpu += cpu_end - cpu_at;
            n += 1;
            conn.close();
            conn.finished().await;
        }
        Ok(Sample {
            msgs: n as f64,
            secs: total.as_secs_f64(),
            cpu_secs: cpu,
            ..Sample::default()
        })
    }
}
