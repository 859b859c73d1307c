//! Soak test of the event-driven client ([`wsclient::Client`]): one process
//! holds many connections to an echo server for a long time, with periodic
//! traffic and the client's ping interval on, and checks that nothing leaks
//! and nothing is lost.
//!
//! ```text
//! soak [--url ws://127.0.0.1:9002/] [--conns 10000] [--seconds 600]
//!      [--warmup 60] [--interval 1] [--ping-interval 5] [--size 32]
//!      [--batch 500] [--sample-every 60] [--drain-timeout 30]
//!      [--rss-growth-pct 10] [--rss-slack-mib 8]
//! ```
//!
//! Every connection sends a text message carrying its index and a
//! per-connection sequence number every `--interval` seconds (spread evenly
//! over the interval); the echo must come back on the same connection, in
//! order, exactly once. Connections are opened `--batch` at a time (each
//! batch waits for the previous one), then traffic runs for `--warmup`
//! seconds before the first sample (RSS, open fds), then for `--seconds`.
//! The warm-up covers the first allocations that steady traffic causes
//! (each connection's command channel takes a second 32-slot block after
//! 32 sends), so the first sample is the steady state: keep it above
//! 32 intervals.
//! At the end sending stops, every echo is awaited, the last sample is
//! taken, every connection is closed (1000) and the fd count must be back at
//! its value before the first connect, plus the one descriptor the runtime
//! keeps from its first connect on (its deadline alarm, on Linux).
//!
//! It exits 1 when a message is lost, duplicated, reordered or malformed,
//! a send fails, a connection drops or fails to open, a connection got no
//! pong in a run of at least two ping intervals, the library's counters
//! disagree with the harness's, RSS grew more than `--rss-growth-pct`
//! percent plus `--rss-slack-mib` MiB between the first and the last sample,
//! or fds are left open after the close; 2 on bad arguments or a file limit
//! too low for `--conns`. `scripts/soak.sh` starts an echo server (`wsc
//! serve --echo`, a separate process, so the RSS measured is the client's
//! alone) and runs this program in release mode.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsclient::events::ConnState;
use wsclient::{Client, CloseCode, Conn, Message};

/// The command-line options.
#[derive(Debug, Clone)]
struct Opts {
    url: String,
    conns: usize,
    seconds: f64,
    warmup: f64,
    interval: f64,
    ping_interval: f64,
    size: usize,
    batch: usize,
    sample_every: f64,
    drain_timeout: f64,
    rss_growth_pct: f64,
    rss_slack_mib: f64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            url: "ws://127.0.0.1:9002/".into(),
            conns: 10_000,
            seconds: 600.0,
            warmup: 60.0,
            interval: 1.0,
            ping_interval: 5.0,
            size: 32,
            batch: 500,
            sample_every: 60.0,
            drain_timeout: 30.0,
            rss_growth_pct: 10.0,
            rss_slack_mib: 8.0,
        }
    }
}

const USAGE: &str = "usage: soak [--url URL] [--conns N] [--seconds S] [--warmup S] \
[--interval S] [--ping-interval S] [--size BYTES] [--batch N] [--sample-every S] \
[--drain-timeout S] [--rss-growth-pct P] [--rss-slack-mib M]";

fn parse_args() -> Result<Opts, String> {
    fn num<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
        v.parse().map_err(|_| format!("{name}: bad value {v:?}"))
    }
    let mut o = Opts::default();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        if name == "-h" || name == "--help" {
            return Err(String::new());
        }
        let v = args
            .next()
            .ok_or_else(|| format!("{name}: a value is required"))?;
        match name.as_str() {
            "--url" => o.url = v,
            "--conns" => o.conns = num(&name, &v)?,
            "--seconds" => o.seconds = num(&name, &v)?,
            "--warmup" => o.warmup = num(&name, &v)?,
            "--interval" => o.interval = num(&name, &v)?,
            "--ping-interval" => o.ping_interval = num(&name, &v)?,
            "--size" => o.size = num(&name, &v)?,
            "--batch" => o.batch = num(&name, &v)?,
            "--sample-every" => o.sample_every = num(&name, &v)?,
            "--drain-timeout" => o.drain_timeout = num(&name, &v)?,
            "--rss-growth-pct" => o.rss_growth_pct = num(&name, &v)?,
            "--rss-slack-mib" => o.rss_slack_mib = num(&name, &v)?,
            _ => return Err(format!("unknown option {name}")),
        }
    }
    let positive = [
        ("--interval", o.interval),
        ("--ping-interval", o.ping_interval),
        ("--sample-every", o.sample_every),
    ];
    for (name, v) in positive {
        if !(v > 0.0 && v.is_finite()) {
            return Err(format!("{name} must be positive"));
        }
    }
    if o.conns == 0 || o.batch == 0 {
        return Err("--conns and --batch must be at least 1".into());
    }
    if !(o.seconds >= 0.0 && o.warmup >= 0.0 && o.drain_timeout >= 0.0) {
        return Err("--seconds, --warmup and --drain-timeout must not be negative".into());
    }
    Ok(o)
}

/// What the harness knows about one connection.
#[derive(Default)]
struct Slot {
    /// The next sequence number to send (only the driver writes it).
    next_send: AtomicU64,
    /// The next sequence number expected back.
    next_recv: AtomicU64,
    /// Pongs received.
    pongs: AtomicU64,
    /// The connection opened (handshake done).
    opened: AtomicBool,
}

/// Counters over every connection.
#[derive(Default)]
struct Totals {
    opened: AtomicU64,
    sent: AtomicU64,
    send_failed: AtomicU64,
    received: AtomicU64,
    verified: AtomicU64,
    /// Sequence number lower than expected: a duplicate or a reordering.
    behind: AtomicU64,
    /// Sequence number higher than expected: messages skipped (lost or
    /// reordered).
    skipped: AtomicU64,
    /// Not a message of this connection (wrong index, unparsable, binary).
    malformed: AtomicU64,
    pongs: AtomicU64,
    errors: AtomicU64,
    /// Closes before the harness asked for them (including failed connects).
    unexpected_closes: AtomicU64,
    /// Closes after the harness asked, with code 1000 and no error.
    clean_closes: AtomicU64,
    /// Closes after the harness asked, with an error or another code.
    unclean_closes: AtomicU64,
    undelivered: AtomicU64,
}

/// State shared by the driver and every connection's callbacks.
struct State {
    slots: Vec<Slot>,
    totals: Totals,
    /// Set before the harness closes the connections.
    closing: AtomicBool,
    /// The first few problems, for the report.
    problems: Mutex<Vec<String>>,
}

impl State {
    fn problem(&self, what: String) {
        let mut p = self.problems.lock().unwrap_or_else(|e| e.into_inner());
        if p.len() < 20 {
            p.push(what);
        }
    }
}

/// The payload of message `seq` of connection `idx`: "idx seq " padded with
/// `x` to `size` bytes.
fn payload(idx: usize, seq: u64, size: usize) -> String {
    let mut s = format!("{idx} {seq} ");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Reads "idx seq " back from a payload.
fn parse_payload(p: &[u8]) -> Option<(usize, u64)> {
    let mut it = p.split(|&b| b == b' ');
    let idx = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    let seq = std::str::from_utf8(it.next()?).ok()?.parse().ok()?;
    Some((idx, seq))
}

/// Checks an echoed message against what connection `idx` expects.
fn on_echo(state: &State, idx: usize, msg: &Message) {
    let t = &state.totals;
    t.received.fetch_add(1, Ordering::Relaxed);
    let parsed = match msg {
        Message::Text(text) => parse_payload(text.as_bytes()),
        _ => None,
    };
    let Some((_, seq)) = parsed.filter(|(from, _)| *from == idx) else {
        t.malformed.fetch_add(1, Ordering::Relaxed);
        state.problem(format!("conn {idx}: unexpected message {msg}"));
        return;
    };
    let slot = &state.slots[idx];
    // Only this connection's task calls this: load + store is race-free.
    let expected = slot.next_recv.load(Ordering::Relaxed);
    if seq == expected {
        slot.next_recv.store(seq + 1, Ordering::Relaxed);
        t.verified.fetch_add(1, Ordering::Relaxed);
    } else if seq < expected {
        t.behind.fetch_add(1, Ordering::Relaxed);
        state.problem(format!(
            "conn {idx}: got seq {seq} after {} (duplicate or reordered)",
            expected - 1
        ));
    } else {
        t.skipped.fetch_add(seq - expected, Ordering::Relaxed);
        slot.next_recv.store(seq + 1, Ordering::Relaxed);
        state.problem(format!(
            "conn {idx}: got seq {seq}, expected {expected} (skipped)"
        ));
    }
}

/// Opens connection `idx` with its callbacks.
fn open(opts: &Opts, state: &Arc<State>, idx: usize) -> Result<Conn, wsclient::Error> {
    let mut c = Client::new(&opts.url)?;
    c.ping_interval(Duration::from_secs_f64(opts.ping_interval));
    let s = state.clone();
    c.on_websocket_connect(move |_, _| {
        s.slots[idx].opened.store(true, Ordering::Relaxed);
        s.totals.opened.fetch_add(1, Ordering::Relaxed);
    });
    let s = state.clone();
    c.on_message(move |_, msg| on_echo(&s, idx, &msg));
    let s = state.clone();
    c.on_pong(move |_, _| {
        s.slots[idx].pongs.fetch_add(1, Ordering::Relaxed);
        s.totals.pongs.fetch_add(1, Ordering::Relaxed);
    });
    let s = state.clone();
    let had_error = Arc::new(AtomicBool::new(false));
    let had_error2 = had_error.clone();
    c.on_error(move |_, e| {
        had_error2.store(true, Ordering::Relaxed);
        s.totals.errors.fetch_add(1, Ordering::Relaxed);
        s.problem(format!("conn {idx}: error {} {e}", e.code()));
    });
    let s = state.clone();
    c.on_undelivered(move |_, msgs| {
        s.totals
            .undelivered
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        s.problem(format!("conn {idx}: {} message(s) undelivered", msgs.len()));
    });
    let s = state.clone();
    c.on_close(move |conn| {
        let t = &s.totals;
        if !s.closing.load(Ordering::Relaxed) {
            t.unexpected_closes.fetch_add(1, Ordering::Relaxed);
            s.problem(format!(
                "conn {idx}: closed unexpectedly (code {:?})",
                conn.close_code()
            ));
        } else if !had_error.load(Ordering::Relaxed) && conn.close_code() == Some(CloseCode::NORMAL)
        {
            t.clean_closes.fetch_add(1, Ordering::Relaxed);
        } else {
            t.unclean_closes.fetch_add(1, Ordering::Relaxed);
            s.problem(format!(
                "conn {idx}: unclean close (code {:?})",
                conn.close_code()
            ));
        }
    });
    Ok(c.connect())
}

/// Resident set size in bytes (/proc/self/statm).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// Heap bytes handed out by the allocator and not freed (glibc only).
fn heap() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// Open file descriptors (/proc/self/fd, the directory's own fd included).
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the limit.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut r) != 0 {
            return 0;
        }
        if r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &raw const r);
            let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut r);
        }
        r.rlim_cur
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// One measurement of the process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss: u64,
    heap: Option<u64>,
    fds: usize,
}

impl Sample {
    fn now() -> Sample {
        Sample {
            rss: rss(),
            heap: heap(),
            fds: fds(),
        }
    }

    fn show(&self) -> String {
        let heap = self
            .heap
            .map(|h| format!(", heap {:.1} MiB", mib(h)))
            .unwrap_or_default();
        format!("RSS {:.1} MiB{heap}, {} fds", mib(self.rss), self.fds)
    }
}

/// Sends every connection's messages, one per connection per interval,
/// spread evenly, until `until`; samples RSS each second (max in `max_rss`)
/// and prints a progress line every `--sample-every` seconds.
struct Driver<'a> {
    opts: &'a Opts,
    state: &'a State,
    conns: &'a [Conn],
    /// Messages sent since the driver started (all connections).
    cursor: u64,
    started: Instant,
    max_rss: u64,
}

impl Driver<'_> {
    async fn run_until(&mut self, until: Instant, label: &str, t0: Instant) {
        let n = self.conns.len();
        let per_sec = n as f64 / self.opts.interval;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_rss = Instant::now();
        let mut next_line = Instant::now() + Duration::from_secs_f64(self.opts.sample_every);
        while Instant::now() < until {
            tick.tick().await;
            let target = (self.started.elapsed().as_secs_f64() * per_sec) as u64;
            while self.cursor < target {
                let idx = (self.cursor % n as u64) as usize;
                self.cursor += 1;
                self.send(idx);
            }
            let now = Instant::now();
            if now >= next_rss {
                next_rss = now + Duration::from_secs(1);
                self.max_rss = self.max_rss.max(rss());
            }
            if now >= next_line {
                next_line = now + Duration::from_secs_f64(self.opts.sample_every);
                self.progress(label, t0);
            }
        }
    }

    fn send(&self, idx: usize) {
        let slot = &self.state.slots[idx];
        let t = &self.state.totals;
        let seq = slot.next_send.load(Ordering::Relaxed);
        match self.conns[idx].send(payload(idx, seq, self.opts.size)) {
            Ok(()) => {
                slot.next_send.store(seq + 1, Ordering::Relaxed);
                t.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                t.send_failed.fetch_add(1, Ordering::Relaxed);
                self.state.problem(format!("conn {idx}: send failed: {e}"));
            }
        }
    }

    fn progress(&self, label: &str, t0: Instant) {
        let t = &self.state.totals;
        let open = self
            .conns
            .iter()
            .filter(|c| c.state() == ConnState::Open)
            .count();
        let sent = t.sent.load(Ordering::Relaxed);
        let received = t.received.load(Ordering::Relaxed);
        println!(
            "soak: [{label} {:>5.0} s] open {open}, sent {sent}, received {received} \
             (in flight {}), pongs {}, {}",
            t0.elapsed().as_secs_f64(),
            sent.saturating_sub(received),
            t.pongs.load(Ordering::Relaxed),
            Sample::now().show()
        );
    }
}

/// Waits until `done` or `timeout`; true when done.
async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn soak(opts: Opts) -> bool {
    let n = opts.conns;
    let state = Arc::new(State {
        slots: (0..n).map(|_| Slot::default()).collect(),
        totals: Totals::default(),
        closing: AtomicBool::new(false),
        problems: Mutex::new(Vec::new()),
    });
    let t = &state.totals;
    let base = Sample::now();
    println!(
        "soak: {n} connections to {}, {} s (after {} s warm-up), one {}-byte message \
         per connection every {} s, ping interval {} s",
        opts.url, opts.seconds, opts.warmup, opts.size, opts.interval, opts.ping_interval
    );
    println!("soak: before connecting: {}", base.show());

    // Ramp up, a batch at a time.
    let ramp = Instant::now();
    let mut conns: Vec<Conn> = Vec::with_capacity(n);
    let mut ramp_ok = true;
    for start in (0..n).step_by(opts.batch) {
        let end = (start + opts.batch).min(n);
        for idx in start..end {
            match open(&opts, &state, idx) {
                Ok(c) => conns.push(c),
                Err(e) => {
                    eprintln!("soak: {}: {e}", opts.url);
                    return false;
                }
            }
        }
        let settled = wait_for(Duration::from_secs(30), || {
            t.opened.load(Ordering::Relaxed) + t.unexpected_closes.load(Ordering::Relaxed)
                >= end as u64
        })
        .await;
        if !settled || t.unexpected_closes.load(Ordering::Relaxed) > 0 {
            ramp_ok = false;
            break;
        }
    }
    let opened = t.opened.load(Ordering::Relaxed);
    let ramp_secs = ramp.elapsed().as_secs_f64();
    println!(
        "soak: {opened} of {n} connections open in {ramp_secs:.1} s ({:.0} conn/s)",
        opened as f64 / ramp_secs.max(1e-9)
    );

    let mut driver = Driver {
        opts: &opts,
        state: &state,
        conns: &conns,
        cursor: 0,
        started: Instant::now(),
        max_rss: 0,
    };
    let mut start = Sample::now();
    let mut end = start;
    let mut drained = false;
    let mut measured = 0.0;
    if ramp_ok {
        let t0 = Instant::now();
        driver
            .run_until(t0 + Duration::from_secs_f64(opts.warmup), "warm-up", t0)
            .await;
        start = Sample::now();
        driver.max_rss = start.rss;
        println!("soak: start (after warm-up): {}", start.show());
        let run_started = Instant::now();
        driver
            .run_until(
                run_started + Duration::from_secs_f64(opts.seconds),
                "run",
                run_started,
            )
            .await;
        measured = run_started.elapsed().as_secs_f64();
        // Every echo back.
        drained = wait_for(Duration::from_secs_f64(opts.drain_timeout), || {
            t.received.load(Ordering::Relaxed) >= t.sent.load(Ordering::Relaxed)
        })
        .await;
        end = Sample::now();
        driver.max_rss = driver.max_rss.max(end.rss);
        println!("soak: end (connections still open): {}", end.show());
    }
    let max_rss = driver.max_rss;
    let still_open = conns
        .iter()
        .filter(|c| c.state() == ConnState::Open)
        .count();
    let stats = conns.iter().map(Conn::stats).fold((0, 0, 0), |a, s| {
        (
            a.0 + s.messages_out,
            a.1 + s.messages_in,
            a.2 + s.queue_len as u64,
        )
    });
    let rtts: Vec<Duration> = {
        let mut v: Vec<Duration> = conns.iter().filter_map(|c| c.stats().rtt).collect();
        v.sort();
        v
    };
    let no_pong = state
        .slots
        .iter()
        .filter(|s| s.opened.load(Ordering::Relaxed) && s.pongs.load(Ordering::Relaxed) == 0)
        .count();

    // Close everything, wait for every task, check the fds.
    state.closing.store(true, Ordering::Relaxed);
    let closing = Instant::now();
    for c in &conns {
        c.close();
    }
    let all_finished = wait_for(Duration::from_secs(60), || {
        conns.iter().all(Conn::is_finished) && wsclient::live_connections() == 0
    })
    .await;
    let close_secs = closing.elapsed().as_secs_f64();
    drop(conns);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = Sample::now();

    // The report.
    let sent = t.sent.load(Ordering::Relaxed);
    let received = t.received.load(Ordering::Relaxed);
    let verified = t.verified.load(Ordering::Relaxed);
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let per_conn = |s: &Sample| s.rss.saturating_sub(base.rss) as f64 / 1024.0 / n as f64;
    let growth = end.rss as f64 - start.rss as f64;
    let allowed = start.rss as f64 * opts.rss_growth_pct / 100.0 + opts.rss_slack_mib * 1048576.0;
    let pct = |part: usize| part as f64 * 100.0 / n as f64;
    println!();
    println!("soak report");
    println!("  connections       {n} ({opened} opened, {still_open} still open at the end)");
    println!(
        "  measured run      {measured:.1} s after {} s warm-up (ramp {ramp_secs:.1} s)",
        opts.warmup
    );
    println!(
        "  messages          sent {sent}, received {received}, echo verified (right connection, in order) {verified}"
    );
    println!(
        "  problems          missing (sent - received) {}, skipped {}, duplicate/reordered {}, malformed {}, send failures {}, undelivered {}",
        sent.saturating_sub(received),
        load(&t.skipped),
        load(&t.behind),
        load(&t.malformed),
        load(&t.send_failed),
        load(&t.undelivered)
    );
    println!(
        "  library stats     messages_out {} messages_in {} queued {}",
        stats.0, stats.1, stats.2
    );
    println!(
        "  pings             {} pongs, {no_pong} connection(s) without one; rtt p50 {:?} max {:?}",
        load(&t.pongs),
        rtts.get(rtts.len() / 2).copied().unwrap_or_default(),
        rtts.last().copied().unwrap_or_default()
    );
    println!(
        "  closes            unexpected {}, clean (1000) {}, unclean {}, errors {}; close took {close_secs:.1} s",
        load(&t.unexpected_closes),
        load(&t.clean_closes),
        load(&t.unclean_closes),
        load(&t.errors)
    );
    println!(
        "  RSS               before connecting {:.1} MiB; start {:.1} MiB ({:.2} KiB/conn); end {:.1} MiB ({:.2} KiB/conn); max {:.1} MiB; after close {:.1} MiB",
        mib(base.rss),
        mib(start.rss),
        per_conn(&start),
        mib(end.rss),
        per_conn(&end),
        mib(max_rss),
        mib(after.rss)
    );
    println!(
        "  RSS growth        {:+.2} MiB ({:+.2}%), allowed {:.2} MiB ({}% + {} MiB)",
        growth / 1048576.0,
        growth * 100.0 / start.rss.max(1) as f64,
        allowed / 1048576.0,
        opts.rss_growth_pct,
        opts.rss_slack_mib
    );
    if let (Some(b), Some(s), Some(e), Some(a)) = (base.heap, start.heap, end.heap, after.heap) {
        println!(
            "  heap in use       before {:.1} MiB, start {:.1} MiB, end {:.1} MiB, after close {:.1} MiB",
            mib(b),
            mib(s),
            mib(e),
            mib(a)
        );
    }
    println!(
        "  fds               before connecting {}, start {}, end {}, after close {}",
        base.fds, start.fds, end.fds, after.fds
    );

    let mut failures: Vec<String> = Vec::new();
    if !ramp_ok || opened != n as u64 {
        failures.push(format!("only {opened} of {n} connections opened"));
    }
    if still_open != n {
        failures.push(format!(
            "{} connection(s) not open at the end",
            n - still_open
        ));
    }
    if !drained {
        failures.push(format!(
            "{} echo(es) missing after {} s",
            sent.saturating_sub(received),
            opts.drain_timeout
        ));
    }
    if verified != sent || received != sent {
        failures.push(format!(
            "sent {sent}, received {received}, verified {verified}"
        ));
    }
    for (what, v) in [
        ("duplicate/reordered", &t.behind),
        ("skipped", &t.skipped),
        ("malformed", &t.malformed),
        ("send failure(s)", &t.send_failed),
        ("undelivered", &t.undelivered),
        ("unexpected close(s)", &t.unexpected_closes),
        ("unclean close(s)", &t.unclean_closes),
        ("error(s)", &t.errors),
    ] {
        if load(v) > 0 {
            failures.push(format!("{} {what}", load(v)));
        }
    }
    if stats.0 != sent || stats.1 != received || stats.2 != 0 {
        failures.push(format!(
            "library stats disagree: messages_out {} messages_in {} queued {} (harness: sent {sent} received {received})",
            stats.0, stats.1, stats.2
        ));
    }
    if measured >= 2.0 * opts.ping_interval && no_pong > 0 {
        failures.push(format!(
            "{no_pong} connection(s) got no pong ({:.1}% of {n})",
            pct(no_pong)
        ));
    }
    if growth > allowed {
        failures.push(format!(
            "RSS grew {:.2} MiB (allowed {:.2} MiB)",
            growth / 1048576.0,
            allowed / 1048576.0
        ));
    }
    if !all_finished {
        failures.push("connections still running 60 s after close".into());
    }
    // One descriptor stays open for the runtime's life once its first
    // connection has started: the runtime's deadline alarm (a timerfd, on
    // Linux; `deadline.rs`), one per runtime, not per connection.
    let runtime_fds = usize::from(cfg!(target_os = "linux"));
    if after.fds != base.fds + runtime_fds {
        failures.push(format!(
            "fds after close {} != {} before connecting + {runtime_fds} (the runtime's deadline alarm)",
            after.fds, base.fds
        ));
    }
    let problems = state.problems.lock().unwrap_or_else(|e| e.into_inner());
    if !problems.is_empty() {
        println!("  first problems:");
        for p in problems.iter() {
            println!("    {p}");
        }
    }
    if failures.is_empty() {
        println!("soak: PASS");
        true
    } else {
        for f in &failures {
            println!("soak: FAIL: {f}");
        }
        false
    }
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let limit = raise_nofile();
    let need = opts.conns as u64 + 64;
    if limit < need {
        eprintln!(
            "soak: the open-file limit is {limit}, {need} needed for {} connections \
             (raise the hard limit: ulimit -Hn)",
            opts.conns
        );
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("soak: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if rt.block_on(soak(opts)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
