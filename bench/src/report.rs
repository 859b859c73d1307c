//! `wsbench all`: runs every (cell, repetition, client) as a fresh server
//! process and a fresh client process, interleaving the clients, then
//! reduces the samples to medians and spreads and writes the tables.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Args;
use crate::cells::{Kind, Sample};
use crate::clients::{self, PEERS};

/// One cell: what is measured and at which message size.
#[derive(Debug, Clone, Copy)]
struct Spec {
    kind: Kind,
    size: usize,
}

impl Spec {
    fn label(self) -> String {
        match self.kind {
            Kind::Idle => "idle memory".into(),
            Kind::Connect => "connect rate".into(),
            k => format!("{} {}", k.name(), size_label(self.size)),
        }
    }
}

fn size_label(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn specs() -> Vec<Spec> {
    let mut v = Vec::new();
    for kind in [Kind::Recv, Kind::Send] {
        for size in [16, 1 << 10, 64 << 10, 1 << 20] {
            v.push(Spec { kind, size });
        }
    }
    for size in [16, 4 << 10] {
        v.push(Spec {
            kind: Kind::Echo,
            size,
        });
    }
    v.push(Spec {
        kind: Kind::Idle,
        size: 0,
    });
    v.push(Spec {
        kind: Kind::Connect,
        size: 0,
    });
    v
}

/// A figure reported per cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    MsgsPerSec,
    MBPerSec,
    P50,
    P99,
    BytesPerConn,
    HeapPerConn,
    ConnsPerSec,
    /// Client CPU time per message (per round trip for echo), in ns.
    CpuPerMsg,
    /// The server process's CPU time over the measured window, as a share
    /// of the window (in %): near 100% the server, not the client, sets
    /// the pace.
    ServerBusy,
}

impl Metric {
    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::MsgsPerSec | Metric::MBPerSec | Metric::ConnsPerSec
        )
    }

    fn value(self, s: &Sample) -> f64 {
        match self {
            Metric::MsgsPerSec | Metric::ConnsPerSec => s.msgs / s.secs,
            Metric::MBPerSec => s.bytes / s.secs / 1e6,
            Metric::P50 => s.p50_ns as f64 / 1e3,
            Metric::P99 => s.p99_ns as f64 / 1e3,
            Metric::BytesPerConn => s.per_conn,
            Metric::HeapPerConn => s.heap_per_conn,
            // Not measured (a cell without a CPU window): left out.
            Metric::CpuPerMsg if s.cpu_secs <= 0.0 || s.msgs <= 0.0 => f64::NAN,
            Metric::CpuPerMsg => s.cpu_secs / s.msgs * 1e9,
            Metric::ServerBusy if s.server_cpu_secs <= 0.0 || s.secs <= 0.0 => f64::NAN,
            // The two reads of the server's time bracket the window a
            // little: a busy server can read just over 100%.
            Metric::ServerBusy => (s.server_cpu_secs / s.secs * 100.0).min(100.0),
        }
    }

    fn fmt(self, v: f64) -> String {
        match self {
            Metric::MsgsPerSec => format!("{} msg/s", si(v)),
            Metric::ConnsPerSec => format!("{} conn/s", si(v)),
            Metric::MBPerSec => format!("{v:.0} MB/s"),
            Metric::P50 | Metric::P99 => format!("{v:.1} µs"),
            Metric::BytesPerConn => format!("{:.2} KiB", v / 1024.0),
            Metric::HeapPerConn => format!("{:.2} KiB live heap", v / 1024.0),
            Metric::CpuPerMsg if v < 10_000.0 => format!("{v:.0} ns"),
            Metric::CpuPerMsg => format!("{:.1} µs", v / 1e3),
            Metric::ServerBusy => format!("{v:.0}%"),
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Metric::P50 => " p50",
            Metric::P99 => " p99",
            _ => "",
        }
    }
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// The rows of the summary: a cell and its headline figure.
fn rows(spec: Spec) -> Vec<Metric> {
    match spec.kind {
        Kind::Recv | Kind::Send if spec.size < 64 << 10 => vec![Metric::MsgsPerSec],
        Kind::Recv | Kind::Send => vec![Metric::MBPerSec],
        Kind::Echo => vec![Metric::P50, Metric::P99],
        Kind::Idle => vec![Metric::BytesPerConn],
        Kind::Connect => vec![Metric::ConnsPerSec],
    }
}

#[derive(Debug, Clone)]
struct Config {
    reps: usize,
    secs: f64,
    warm: f64,
    conns: usize,
    quick: bool,
    server_cpu: Option<usize>,
    client_cpu: Option<usize>,
    echo_cpu: Option<usize>,
    /// The server's TCP congestion control, when not the system default.
    server_cc: Option<String>,
}

/// Median, min and max.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(mut v: Vec<f64>) -> Option<Stat> {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    };
    Some(Stat {
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// How `ours` compares with `reference`: > 1 is better, whichever way the
/// metric points.
fn ratio(m: Metric, ours: f64, reference: f64) -> f64 {
    if m.higher_is_better() {
        ours / reference
    } else {
        reference / ours
    }
}

struct Results {
    specs: Vec<Spec>,
    clients: Vec<String>,
    /// Each (cell, client)'s samples, with the repetition they came from.
    samples: HashMap<(usize, String), Vec<(usize, Sample)>>,
    failures: Vec<String>,
}

impl Results {
    fn stat(&self, cell: usize, client: &str, m: Metric) -> Option<Stat> {
        let s = self.samples.get(&(cell, client.to_owned()))?;
        stat(s.iter().map(|(_, s)| m.value(s)).collect())
    }

    /// `client` against `reference` one repetition at a time: the ratio of
    /// their samples from the same repetition (run seconds apart), over the
    /// repetitions both completed. The machine's speed drifts over minutes
    /// (the same client's rate can swing 2× between repetitions), so
    /// whether a difference holds in every repetition shows here, not in
    /// the ratio of two medians taken from different repetitions.
    fn paired(&self, cell: usize, client: &str, reference: &str, m: Metric) -> Vec<f64> {
        let (Some(ours), Some(refs)) = (
            self.samples.get(&(cell, client.to_owned())),
            self.samples.get(&(cell, reference.to_owned())),
        ) else {
            return Vec::new();
        };
        ours.iter()
            .filter_map(|(rep, s)| {
                let r = refs.iter().find(|(r, _)| r == rep)?;
                Some(ratio(m, m.value(s), m.value(&r.1)))
            })
            .filter(|r| r.is_finite())
            .collect()
    }

    /// [`Results::paired`] against the best peer (by median).
    fn paired_vs_peer(&self, cell: usize, client: &str, m: Metric) -> Vec<f64> {
        match self.best_peer(cell, m) {
            Some((_, peer)) => self.paired(cell, client, peer, m),
            None => Vec::new(),
        }
    }

    fn best_peer(&self, cell: usize, m: Metric) -> Option<(f64, &'static str)> {
        PEERS
            .iter()
            .filter_map(|p| self.stat(cell, p, m).map(|s| (s.median, *p)))
            .max_by(|a, b| ratio(m, a.0, b.0).total_cmp(&1.0))
    }

    fn vs_peer(&self, cell: usize, client: &str, m: Metric) -> Option<f64> {
        let ours = self.stat(cell, client, m)?.median;
        Some(ratio(m, ours, self.best_peer(cell, m)?.0))
    }

    fn vs_raw(&self, cell: usize, client: &str, m: Metric) -> Option<f64> {
        let ours = self.stat(cell, client, m)?.median;
        Some(ratio(m, ours, self.stat(cell, "raw", m)?.median))
    }

    fn find(&self, kind: Kind, size: usize) -> Option<usize> {
        self.specs.iter().position(|s| {
            s.kind == kind && (s.size == size || matches!(kind, Kind::Idle | Kind::Connect))
        })
    }
}

fn exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(
    exe: &PathBuf,
    mode: &str,
    size: usize,
    cpu: Option<usize>,
    cc: Option<&str>,
) -> Result<(Server, u16), String> {
    let mut cmd = Command::new(exe);
    cmd.args([
        "server",
        "--watch-stdin",
        "--mode",
        mode,
        "--size",
        &size.to_string(),
    ]);
    if let Some(c) = cpu {
        cmd.args(["--cpu", &c.to_string()]);
    }
    if let Some(cc) = cc {
        cmd.args(["--cc", cc]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the server: {e}"))?;
    let out = child.stdout.take().ok_or("server stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| format!("reading the server's port: {e}"))?;
    let port = line
        .trim()
        .strip_prefix("LISTENING ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("server did not start: {line:?}"))?;
    Ok((server, port))
}

fn run_pair(exe: &PathBuf, cfg: &Config, spec: Spec, client: &str) -> Result<Sample, String> {
    let (scpu, ccpu) = if spec.kind == Kind::Echo {
        (cfg.echo_cpu, cfg.echo_cpu)
    } else {
        (cfg.server_cpu, cfg.client_cpu)
    };
    let (server, port) = start_server(
        exe,
        spec.kind.server_mode(),
        spec.size,
        scpu,
        cfg.server_cc.as_deref(),
    )?;
    let server_pid = server.0.id().to_string();
    let mut cmd = Command::new(exe);
    cmd.args([
        "run",
        "--server-pid",
        &server_pid,
        "--client",
        client,
        "--cell",
        spec.kind.name(),
        "--size",
        &spec.size.to_string(),
        "--port",
        &port.to_string(),
        "--secs",
        &cfg.secs.to_string(),
        "--warm",
        &cfg.warm.to_string(),
        "--conns",
        &cfg.conns.to_string(),
    ]);
    if let Some(c) = ccpu {
        cmd.args(["--cpu", &c.to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the client: {e}"))?;
    let mut out = child.stdout.take().ok_or("client stdout")?;
    let mut err = child.stderr.take().ok_or("client stderr")?;
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let limit = Duration::from_secs_f64(cfg.secs * 4.0 + cfg.warm + 30.0)
        + if spec.kind == Kind::Idle {
            Duration::from_secs(150)
        } else {
            Duration::ZERO
        };
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!("timed out after {limit:?}"));
    };
    let sample = stdout.lines().find_map(Sample::parse);
    match sample {
        Some(s) if status.success() => Ok(s),
        _ => Err(format!(
            "exit {status}: {}",
            stderr.trim().lines().last().unwrap_or("no output")
        )),
    }
}

fn list(args: &Args, name: &str, all: &[&str]) -> Result<Vec<String>, String> {
    match args.opt(name) {
        None => Ok(all.iter().map(|s| (*s).to_owned()).collect()),
        Some(v) => {
            let picked: Vec<String> = v.split(',').map(str::to_owned).collect();
            if let Some(bad) = picked.iter().find(|p| !all.contains(&p.as_str())) {
                return Err(format!(
                    "--{name}: unknown {bad:?} (one of {})",
                    all.join(", ")
                ));
            }
            Ok(picked)
        }
    }
}

pub fn all(args: &Args) -> Result<(), String> {
    let quick = args.flag("quick");
    let cpus = crate::sys::allowed_cpus();
    let (server_cpu, client_cpu, echo_cpu) = if args.flag("no-pin") {
        (None, None, None)
    } else if cpus.len() >= 2 {
        (Some(cpus[0]), Some(cpus[1]), Some(cpus[1]))
    } else {
        (Some(cpus[0]), Some(cpus[0]), Some(cpus[0]))
    };
    let cfg = Config {
        reps: args.num("reps", if quick { 1 } else { 3 })?,
        secs: args.num("secs", if quick { 0.15 } else { 1.5 })?,
        warm: args.num("warm", if quick { 0.05 } else { 0.2 })?,
        conns: args.num("conns", if quick { 500 } else { 10_000 })?,
        quick,
        server_cpu,
        client_cpu,
        echo_cpu,
        server_cc: args.opt("server-cc").map(str::to_owned),
    };
    let kinds = list(args, "cells", &["recv", "send", "echo", "idle", "connect"])?;
    let client_list = list(args, "clients", clients::ALL)?;
    let specs: Vec<Spec> = specs()
        .into_iter()
        .filter(|s| kinds.iter().any(|k| k == s.kind.name()))
        .collect();
    let exe = exe()?;
    let load_before = crate::sys::loadavg();
    let started = Instant::now();
    let total = specs.len() * cfg.reps * client_list.len();
    let mut res = Results {
        specs: specs.clone(),
        clients: client_list.clone(),
        samples: HashMap::new(),
        failures: Vec::new(),
    };
    let mut done = 0;
    for (i, spec) in specs.iter().enumerate() {
        for rep in 0..cfg.reps {
            // Each repetition starts one client further along (A B C,
            // B C A, C A B, ...): whatever one run leaves behind for the
            // next (socket state, caches, the CPU's clock) falls on every
            // client in turn, not always on the same one.
            let n = client_list.len();
            for client in (0..n).map(|k| &client_list[(rep + k) % n]) {
                done += 1;
                let r = run_pair(&exe, &cfg, *spec, client);
                let shown = match &r {
                    Ok(s) => rows(*spec)
                        .iter()
                        .map(|m| format!("{}{}", m.fmt(m.value(s)), m.suffix()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    Err(e) => format!("FAILED: {e}"),
                };
                eprintln!(
                    "[{done:>3}/{total}] {:>6.1}s  {:<14} rep {}  {:<18} {shown}",
                    started.elapsed().as_secs_f64(),
                    spec.label(),
                    rep + 1,
                    client
                );
                match r {
                    Ok(s) => res
                        .samples
                        .entry((i, client.clone()))
                        .or_default()
                        .push((rep, s)),
                    Err(e) => {
                        res.failures
                            .push(format!("{} rep {} {client}: {e}", spec.label(), rep + 1))
                    }
                }
            }
        }
    }
    let invoked = args.opt("invoked-as").map_or_else(
        || {
            let argv: Vec<String> = std::env::args().collect();
            argv.join(" ")
        },
        str::to_owned,
    );
    let load = format!(
        "load average {load_before} before, {} after; nice {}",
        crate::sys::loadavg(),
        crate::sys::nice()
    );
    let load = match args.opt("note") {
        Some(note) => format!("{load}. {note}"),
        None => load,
    };
    let md = markdown(&res, &cfg, &invoked, &load, started.elapsed());
    println!("{md}");
    if let Some(path) = args.opt("out") {
        std::fs::write(path, &md).map_err(|e| format!("writing {path}: {e}"))?;
        eprintln!("wrote {path}");
    }
    if let Some(path) = args.opt("readme") {
        let readme = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
        let filled = fill_readme(&readme, &md).map_err(|e| format!("{path}: {e}"))?;
        std::fs::write(path, filled).map_err(|e| format!("writing {path}: {e}"))?;
        eprintln!("updated the tables in {path}");
    }
    Ok(())
}

/// The README with the run's tables in place: the lines between
/// `<!-- wsbench:table:N -->` and `<!-- /wsbench:table:N -->` become the
/// run's N-th table (1 summary, 2 client CPU, 3 server core, 4 targets),
/// and those between `<!-- wsbench:run -->` and `<!-- /wsbench:run -->`
/// the run's "Generated ..." line. The prose around them is the author's.
fn fill_readme(readme: &str, md: &str) -> Result<String, String> {
    let tables = tables(md);
    if tables.len() < 4 {
        return Err(format!("the run has {} tables, not 4", tables.len()));
    }
    let generated = md
        .lines()
        .find(|l| l.starts_with("Generated "))
        .ok_or("the run's markdown has no \"Generated\" line")?;
    let blocks = std::iter::once(("run".to_owned(), generated)).chain(
        tables
            .iter()
            .take(4)
            .enumerate()
            .map(|(n, t)| (format!("table:{}", n + 1), t.as_str())),
    );
    let mut out = readme.to_owned();
    for (name, body) in blocks {
        let open = format!("<!-- wsbench:{name} -->\n");
        let close = format!("<!-- /wsbench:{name} -->");
        let start = out.find(&open).ok_or(format!("no {open:?} marker"))? + open.len();
        let end = start
            + out[start..]
                .find(&close)
                .ok_or(format!("no {close:?} after {open:?}"))?;
        // A blank line before the closing marker: the table ends there in
        // every Markdown reader.
        out.replace_range(start..end, &format!("{body}\n\n"));
    }
    Ok(out)
}

/// The markdown tables of `md`, in order, each as its lines joined.
fn tables(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in md.lines().chain(std::iter::once("")) {
        if line.starts_with('|') {
            cur.push(line);
        } else if !cur.is_empty() {
            out.push(cur.join("\n"));
            cur.clear();
        }
    }
    out
}

fn pinning(cfg: &Config) -> String {
    match (cfg.server_cpu, cfg.client_cpu, cfg.echo_cpu) {
        (Some(s), Some(c), Some(e)) if s != c => format!(
            "throughput, idle and connect cells: server pinned to CPU {s}, client to CPU {c}; \
             echo latency: server and client both pinned to CPU {e} (sched_setaffinity)"
        ),
        (Some(s), _, _) => format!(
            "only one CPU available: server and client both pinned to CPU {s} for every cell"
        ),
        _ => "not pinned (--no-pin)".into(),
    }
}

/// The server's congestion control, as the report states it.
fn server_tcp(cfg: &Config) -> String {
    let system = crate::sys::default_congestion_control().unwrap_or_else(|| "unknown".into());
    match &cfg.server_cc {
        Some(cc) => format!(
            "congestion control {cc} on the server's sockets (`--server-cc`; the system default is {system})"
        ),
        None => format!(
            "congestion control: the system default, {system} (`--server-cc NAME` sets another on the server's sockets)"
        ),
    }
}

fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}×"))
}

/// Paired ratios (see [`Results::paired`]) against a threshold: in how many
/// repetitions the ratio reached it, and their median and range; empty
/// when there are none.
fn fmt_paired(ratios: &[f64], threshold: f64) -> String {
    let Some(s) = stat(ratios.to_vec()) else {
        return String::new();
    };
    let met = ratios.iter().filter(|r| **r >= threshold).count();
    format!(
        "{met}/{} reps; {:.2}× ({:.2}–{:.2}×)",
        ratios.len(),
        s.median,
        s.min,
        s.max
    )
}

fn markdown(res: &Results, cfg: &Config, invoked: &str, load: &str, took: Duration) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "# wsclient benchmarks\n");
    let _ = writeln!(
        o,
        "Generated {} by `{invoked}` in {:.0} s{}.\n",
        utc_now(),
        took.as_secs_f64(),
        if cfg.quick {
            " (**--quick smoke run: figures are not meaningful**)"
        } else {
            ""
        }
    );
    let _ = writeln!(o, "- **Machine:** {}", crate::sys::machine());
    let _ = writeln!(
        o,
        "- **Load:** {load} (other work on the machine shows up as spread)."
    );
    let _ = writeln!(o, "- **Pinning:** {}.", pinning(cfg));
    let _ = writeln!(o, "- **Server TCP:** {}.", server_tcp(cfg));
    let _ = writeln!(
        o,
        "- **Method:** every (cell, repetition, client) is a fresh neutral server process \
         (tokio TCP, hand-written framing; receive cells: pre-built frames sent with \
         `sendfile(2)` from a memory file, so the server copies nothing) and a fresh client process on a current-thread \
         tokio runtime; clients interleaved, each repetition starting one client further along (A B C, B C A, ...), {} repetition(s) of {} s each (after {} s warm-up \
         for receive and echo); median (min–max). Payloads are binary; MB = 10^6 payload \
         bytes. Receive cells count in the client: the socket clients in local variables, \
         the event client in its own counters (`Conn::stats`). Send cells end with the \
         close handshake, so queued bytes are counted only once the server has read them. \
         Echo: one message in flight, hdrhistogram; the \
         socket clients send then await the reply, the event client sends each next \
         message from `on_message` (as the seed's `onMessage` does). The event client's \
         receive and echo cells time their warm-up and window from `on_message`, so that no \
         timer is pending while they run (with one, every sleep of the runtime is an \
         `epoll_wait` with a timeout, which the socket clients' loops do not pay). Idle: RSS \
         growth (/proc/self/statm) over {} connections, each held by a task waiting to \
         read, divided by the count (64 connections opened first are not counted); the \
         live heap per connection (glibc mallinfo2) is shown beside it. Connect: \
         sequential TCP connect + upgrade, timed to the open socket (the event client: to the start of \
         `on_websocket_connect`), then a close handshake that is not timed; every client, raw TCP \
         included, ends each connection that way, since how the last connection ended changes \
         what the next connect costs.",
        cfg.reps, cfg.secs, cfg.warm, cfg.conns
    );
    let _ = writeln!(
        o,
        "- **Clients:** library defaults, TCP_NODELAY on for all (tokio-tungstenite \
         `connect_async_with_config(.., true)`; tokio-websockets and fastwebsockets over a \
         `TcpStream` set up here); default limits (64 MiB messages, 16 MiB frames or more) \
         all admit 1 MiB. Sending uses each library's buffered path (`Sink::feed`; \
         fastwebsockets has none and writes every frame); the event client queues with \
         `Conn::send_binary` with no yields of its own, and when the queue is full \
         (`SendFailure::BufferFull`, the default 16 MiB limit) waits for `on_buffer_drain`, \
         the seed's onBufferFull/onBufferDrain idiom. fastwebsockets reads \
         through \
         `FragmentCollector`. raw TCP: the same bytes with no WebSocket code, in the same \
         system calls as wsclient's socket: 512 KiB writes of pre-built frames (its write \
         batch), 256 KiB reads, and frames from 128 KiB on read whole, one read each, with \
         `SO_RCVLOWAT` at the frame's length.",
    );
    let _ = writeln!(
        o,
        "- **Ratios:** × best peer compares with the best of tokio-tungstenite, \
         tokio-websockets and fastwebsockets in the same run; × raw TCP with raw TCP in the \
         same run. Above 1.00× is better, for every metric (for latency and memory the ratio \
         is reference ÷ ours).\n"
    );

    let _ = writeln!(o, "## Summary (medians)\n");
    summary(&mut o, res, rows);
    let _ = writeln!(o, "\n## Client CPU per message (medians)\n");
    let _ = writeln!(
        o,
        "CPU time of the client process (user + system, `CLOCK_PROCESS_CPUTIME_ID`) over \
         the measured window, divided by the messages (by the round trips for echo; for \
         the connect row, the CPU time within the timed connects, per connect): the \
         client's own work, system calls included. Lower is better; the ratios are \
         reference ÷ ours, so above 1.00× means less CPU than the reference. Throughput \
         also depends on the server process and on how the machine's CPUs are shared; \
         this figure shows what each client itself costs.\n"
    );
    summary(&mut o, res, |spec| match spec.kind {
        Kind::Recv | Kind::Send | Kind::Echo | Kind::Connect => vec![Metric::CpuPerMsg],
        Kind::Idle => Vec::new(),
    });
    let _ = writeln!(o, "\n## Server core busy (medians)\n");
    let _ = writeln!(
        o,
        "CPU time of the server process over the same window, as a share of the window \
         (its thread's time on a CPU, `/proc/<pid>/task/*/schedstat`; on loopback this \
         includes the kernel's receive processing of the packets it sends). Near 100% the \
         server sets the pace and the cell cannot tell the faster clients apart; their \
         CPU per message above still does.\n"
    );
    summary_with(
        &mut o,
        res,
        |spec| match spec.kind {
            Kind::Recv | Kind::Send => vec![Metric::ServerBusy],
            Kind::Echo | Kind::Idle | Kind::Connect => Vec::new(),
        },
        false,
    );
    let _ = writeln!(o, "\n## Targets (issue 5)\n");
    let _ = writeln!(
        o,
        "Status compares the medians, as the issue defines its targets. The last column \
         pairs the two clients one repetition at a time (in each repetition the clients \
         run back to back, seconds apart, while the machine's speed drifts over minutes): \
         in how many repetitions that repetition's ratio met the target, then the median \
         and range of those ratios. A target met in some repetitions and missed in others \
         is within the machine's drift; one missed in every repetition is a real gap.\n"
    );
    let _ = writeln!(
        o,
        "| target | client | measured | status | per repetition (paired) |\n|---|---|---|---|---|"
    );
    for line in targets(res) {
        let _ = writeln!(o, "{line}");
    }

    let _ = writeln!(o, "\n## All figures\n");
    let _ = writeln!(
        o,
        "| cell | client | median | min–max | also (median) | × best peer | × raw TCP | n |\n\
         |---|---|---:|---:|---:|---:|---:|---:|"
    );
    for (i, spec) in res.specs.iter().enumerate() {
        for m in rows(*spec) {
            let best = res.best_peer(i, m).map(|(_, p)| p).unwrap_or("–");
            for c in &res.clients {
                let Some(s) = res.stat(i, c, m) else {
                    let _ = writeln!(
                        o,
                        "| {}{} | {} | failed | | | | | 0 |",
                        spec.label(),
                        m.suffix(),
                        clients::label(c)
                    );
                    continue;
                };
                let also = match spec.kind {
                    Kind::Recv | Kind::Send => {
                        let other = if m == Metric::MBPerSec {
                            Metric::MsgsPerSec
                        } else {
                            Metric::MBPerSec
                        };
                        res.stat(i, c, other)
                            .map(|s| other.fmt(s.median))
                            .unwrap_or_default()
                    }
                    Kind::Idle => res
                        .stat(i, c, Metric::HeapPerConn)
                        .map(|s| Metric::HeapPerConn.fmt(s.median))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                // Client CPU per message, on each cell's first row.
                let cpu = res
                    .stat(i, c, Metric::CpuPerMsg)
                    .filter(|_| rows(*spec).first() == Some(&m))
                    .map(|s| format!("{} CPU/msg", Metric::CpuPerMsg.fmt(s.median)));
                // And how busy the server was, beside it.
                let busy = res
                    .stat(i, c, Metric::ServerBusy)
                    .filter(|_| rows(*spec).first() == Some(&m))
                    .map(|s| format!("server {}", Metric::ServerBusy.fmt(s.median)));
                let also = [Some(also), cpu, busy]
                    .into_iter()
                    .flatten()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                let mark = if *c == best { " (best peer)" } else { "" };
                let n = res.samples.get(&(i, c.clone())).map_or(0, Vec::len);
                let _ = writeln!(
                    o,
                    "| {}{} | {}{mark} | {} | {} – {} | {also} | {} | {} | {n} |",
                    spec.label(),
                    m.suffix(),
                    clients::label(c),
                    m.fmt(s.median),
                    m.fmt(s.min),
                    m.fmt(s.max),
                    fmt_ratio(res.vs_peer(i, c, m)),
                    fmt_ratio(res.vs_raw(i, c, m)),
                );
            }
        }
    }
    if !res.failures.is_empty() {
        let _ = writeln!(o, "\n## Failed runs\n");
        for f in &res.failures {
            let _ = writeln!(o, "- {f}");
        }
    }
    o
}

/// A table of medians, one row per (cell, metric) that `rows` gives, one
/// column per client, then our clients' ratios to the best peer and raw TCP.
fn summary(o: &mut String, res: &Results, rows: impl Fn(Spec) -> Vec<Metric>) {
    summary_with(o, res, rows, true);
}

/// [`summary`], with or without the ratio columns.
fn summary_with(o: &mut String, res: &Results, rows: impl Fn(Spec) -> Vec<Metric>, ratios: bool) {
    use std::fmt::Write as _;
    let mut head = String::from("| cell |");
    let mut sep = String::from("|---|");
    for c in &res.clients {
        let _ = write!(head, " {} |", clients::label(c));
        sep.push_str("---:|");
    }
    let ours: Vec<&str> = ["wsclient", "wsclient-events"]
        .into_iter()
        .filter(|c| ratios && res.clients.iter().any(|x| x == c))
        .collect();
    for c in &ours {
        let short = if *c == "wsclient" { "socket" } else { "events" };
        let _ = write!(head, " {short} × best peer | {short} × raw |");
        sep.push_str("---:|---:|");
    }
    let _ = writeln!(o, "{head}\n{sep}");
    for (i, spec) in res.specs.iter().enumerate() {
        for m in rows(*spec) {
            let _ = write!(o, "| {}{} |", spec.label(), m.suffix());
            for c in &res.clients {
                let v = res
                    .stat(i, c, m)
                    .map_or_else(|| "–".into(), |s| m.fmt(s.median));
                let _ = write!(o, " {v} |");
            }
            for c in &ours {
                let _ = write!(
                    o,
                    " {} | {} |",
                    fmt_ratio(res.vs_peer(i, c, m)),
                    fmt_ratio(res.vs_raw(i, c, m))
                );
            }
            o.push('\n');
        }
    }
}

fn status(ok: bool) -> &'static str {
    if ok { "pass" } else { "**MISS**" }
}

/// The targets, checked against the medians.
fn targets(res: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for (c, short) in [("wsclient", "socket"), ("wsclient-events", "events")] {
        if !res.clients.iter().any(|x| x == c) {
            continue;
        }
        // Every cell >= 1.0x the best peer; small messages >= 1.2x.
        let mut misses = Vec::new();
        let mut worst: Option<f64> = None;
        let mut small_misses = Vec::new();
        for (i, spec) in res.specs.iter().enumerate() {
            for m in rows(*spec) {
                let Some(r) = res.vs_peer(i, c, m) else {
                    continue;
                };
                worst = Some(worst.map_or(r, |w: f64| w.min(r)));
                let paired = res.paired_vs_peer(i, c, m);
                if r < 1.0 {
                    misses.push(format!(
                        "{}{} {r:.2}× [{}]",
                        spec.label(),
                        m.suffix(),
                        fmt_paired(&paired, 1.0)
                    ));
                }
                let small = matches!(spec.kind, Kind::Recv | Kind::Send) && spec.size <= 1024;
                if small && r < 1.2 {
                    small_misses.push(format!(
                        "{}{} {r:.2}× [{}]",
                        spec.label(),
                        m.suffix(),
                        fmt_paired(&paired, 1.2)
                    ));
                }
            }
        }
        if let Some(w) = worst {
            out.push(format!(
                "| every cell ≥ 1.0× best peer | {short} | lowest {w:.2}×{} | {} | {} |",
                if misses.is_empty() {
                    String::new()
                } else {
                    format!("; below: {}", misses.join(", "))
                },
                status(misses.is_empty()),
                if misses.is_empty() {
                    ""
                } else {
                    "each cell's in brackets"
                }
            ));
            out.push(format!(
                "| small messages (16 B, 1 KiB recv/send) ≥ 1.2× best peer | {short} | {} | {} | {} |",
                if small_misses.is_empty() {
                    "all ≥ 1.2×".to_owned()
                } else {
                    format!("below: {}", small_misses.join(", "))
                },
                status(small_misses.is_empty()),
                if small_misses.is_empty() { "" } else { "each cell's in brackets" }
            ));
        }
        for (kind, min) in [(Kind::Recv, 0.85), (Kind::Send, 0.80)] {
            for size in [64 << 10, 1 << 20] {
                let Some(i) = res.find(kind, size) else {
                    continue;
                };
                if let Some(r) = res.vs_raw(i, c, Metric::MBPerSec) {
                    out.push(format!(
                        "| {} ≥ {min:.2}× raw TCP | {short} | {r:.2}× | {} | {} |",
                        res.specs[i].label(),
                        status(r >= min),
                        fmt_paired(&res.paired(i, c, "raw", Metric::MBPerSec), min)
                    ));
                }
            }
        }
        for size in [16, 4 << 10] {
            let Some(i) = res.find(Kind::Echo, size) else {
                continue;
            };
            for m in [Metric::P50, Metric::P99] {
                if let Some(r) = res.vs_raw(i, c, m) {
                    out.push(format!(
                        "| {}{} ≥ 0.97× raw TCP (raw ÷ ours) | {short} | {r:.2}× | {} | {} |",
                        res.specs[i].label(),
                        m.suffix(),
                        status(r >= 0.97),
                        fmt_paired(&res.paired(i, c, "raw", m), 0.97)
                    ));
                }
            }
        }
        if let Some(i) = res.find(Kind::Idle, 0)
            && let Some(s) = res.stat(i, c, Metric::BytesPerConn)
        {
            out.push(format!(
                "| idle ≤ 2 KiB RSS per connection | {short} | {} | {} | |",
                Metric::BytesPerConn.fmt(s.median),
                status(s.median <= 2048.0)
            ));
        }
    }
    if let Some(i) = res.find(Kind::Recv, 16)
        && let (Some(ev), Some(so)) = (
            res.stat(i, "wsclient-events", Metric::MsgsPerSec),
            res.stat(i, "wsclient", Metric::MsgsPerSec),
        )
    {
        let r = ev.median / so.median;
        out.push(format!(
            "| events ≤ 10% slower than socket at recv 16 B | events ÷ socket | {r:.2}× | {} | {} |",
            status(r >= 0.90),
            fmt_paired(
                &res.paired(i, "wsclient-events", "wsclient", Metric::MsgsPerSec),
                0.90
            )
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_gets_the_runs_tables_between_its_markers() {
        let md = "# wsclient benchmarks\n\nGenerated 2026-11-28 by x.\n\n\
                  | a |\n|---|\n| 1 |\n\ntext\n\n| b |\n| 2 |\n\n| c |\n\n\
                  | d |\n| 4 |\n\n| e |\n";
        let readme = "intro\n<!-- wsbench:run -->\nold line\n<!-- /wsbench:run -->\n\
                      <!-- wsbench:table:1 -->\n| old |\n<!-- /wsbench:table:1 -->\nprose\n\
                      <!-- wsbench:table:2 -->\n<!-- /wsbench:table:2 -->\n\
                      <!-- wsbench:table:3 -->\n| x |\n| y |\n<!-- /wsbench:table:3 -->\n\
                      <!-- wsbench:table:4 -->\n| z |\n<!-- /wsbench:table:4 -->\nend\n";
        let filled = fill_readme(readme, md).unwrap();
        assert_eq!(
            filled,
            "intro\n<!-- wsbench:run -->\nGenerated 2026-11-28 by x.\n\n<!-- /wsbench:run -->\n\
             <!-- wsbench:table:1 -->\n| a |\n|---|\n| 1 |\n\n<!-- /wsbench:table:1 -->\nprose\n\
             <!-- wsbench:table:2 -->\n| b |\n| 2 |\n\n<!-- /wsbench:table:2 -->\n\
             <!-- wsbench:table:3 -->\n| c |\n\n<!-- /wsbench:table:3 -->\n\
             <!-- wsbench:table:4 -->\n| d |\n| 4 |\n\n<!-- /wsbench:table:4 -->\nend\n"
        );
        // Filling again changes nothing; a missing marker is an error.
        assert_eq!(fill_readme(&filled, md).unwrap(), filled);
        let err = fill_readme("no markers\n", md).unwrap_err();
        assert!(err.contains("wsbench:run"), "{err}");
    }

    fn sample(msgs: f64) -> Sample {
        Sample {
            msgs,
            secs: 1.0,
            ..Sample::default()
        }
    }

    #[test]
    fn paired_ratios_match_repetitions_and_skip_a_failed_one() {
        let mut samples = HashMap::new();
        // Ours: 10, 20, 30; raw: 20, (failed), 20. The machine drifts, so the
        // medians (20 and 20) say 1.00×, while the repetitions say 0.50×
        // and 1.50×.
        samples.insert(
            (0, "wsclient".to_owned()),
            vec![(0, sample(10.0)), (1, sample(20.0)), (2, sample(30.0))],
        );
        samples.insert(
            (0, "raw".to_owned()),
            vec![(0, sample(20.0)), (2, sample(20.0))],
        );
        let res = Results {
            specs: vec![Spec {
                kind: Kind::Recv,
                size: 16,
            }],
            clients: vec!["raw".into(), "wsclient".into()],
            samples,
            failures: Vec::new(),
        };
        let r = res.paired(0, "wsclient", "raw", Metric::MsgsPerSec);
        assert_eq!(r, vec![0.5, 1.5]);
        assert_eq!(fmt_paired(&r, 1.0), "1/2 reps; 1.00× (0.50–1.50×)");
        // Lower is better for latency: the ratio is reference ÷ ours.
        assert_eq!(ratio(Metric::P50, 40.0, 20.0), 0.5);
        // No reference samples: nothing to pair.
        assert!(
            res.paired(0, "wsclient", "fastwebsockets", Metric::MsgsPerSec)
                .is_empty()
        );
        assert_eq!(fmt_paired(&[], 1.0), "");
    }
}
