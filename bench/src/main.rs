//! `wsbench`: end-to-end benchmarks of this project's WebSocket client
//! against tokio-tungstenite, tokio-websockets, fastwebsockets and raw TCP.
//!
//! ```text
//! wsbench all [--quick] [--no-pin] [--reps N] [--secs S] [--warm S] [--conns N]
//!             [--out FILE] [--cells recv,send,echo,idle,connect] [--clients a,b,...]
//!             [--invoked-as "CMD"] [--note "TEXT"] [--readme FILE] [--server-cc NAME]
//! wsbench server --mode send|echo|sink --size BYTES [--port P] [--cpu C] [--cc NAME] [--watch-stdin]
//! wsbench run --client NAME --cell recv|send|echo|idle|connect --size BYTES
//!             --port P [--secs S] [--warm S] [--conns N] [--cpu C] [--server-pid PID]
//! wsbench run --client A+B --cell connect --port P [--secs S] [--cpu C]
//! ```
//!
//! `run --client A+B` (connect only, two of the socket clients) has them
//! take turns in one process, A B A B ..., and prints a `RESULT
//! client=NAME` line for each: the finest comparison of two connect
//! paths this harness makes (same process state, same moment).
//!
//! `all` runs every cell: each (cell, repetition, client) is a fresh server
//! process and a fresh client process, pinned with `sched_setaffinity`;
//! clients are interleaved, each repetition starting one client further
//! along (A B C, B C A, C A B, ...). It prints the tables, writes them
//! as markdown with `--out`, and with `--readme` puts them into that file
//! between its `<!-- wsbench:... -->` markers. `--server-cc NAME` sets the
//! server's TCP congestion control (`TCP_CONGESTION` on its listening
//! socket, which accepted sockets inherit) instead of the system default.

mod cells;
mod clients;
mod frames;
mod report;
mod server;
mod sys;

use std::process::ExitCode;

/// Minimal `--name value` / `--flag` parsing.
/// The command line of each command: options that take a value, then flags.
const USAGE: &str = "usage:
  wsbench all [--quick] [--no-pin] [--reps N] [--secs S] [--warm S] [--conns N] [--out FILE]
              [--cells recv,send,echo,idle,connect] [--clients a,b,...]
              [--invoked-as \"CMD\"] [--note \"TEXT\"] [--readme FILE] [--server-cc NAME]
  wsbench server --mode send|echo|sink --size BYTES [--port P] [--cpu C] [--cc NAME] [--watch-stdin]
  wsbench run --client NAME --cell recv|send|echo|idle|connect --size BYTES
              --port P [--secs S] [--warm S] [--conns N] [--cpu C] [--server-pid PID]
  wsbench run --client A+B --cell connect --port P [--secs S] [--cpu C]";

/// Options each command accepts: those taking a value, and flags.
fn accepted(cmd: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match cmd {
        "all" => (
            &[
                "reps",
                "secs",
                "warm",
                "conns",
                "out",
                "cells",
                "clients",
                "invoked-as",
                "note",
                "readme",
                "server-cc",
            ],
            &["quick", "no-pin"],
        ),
        "server" => (&["mode", "size", "port", "cpu", "cc"], &["watch-stdin"]),
        "run" => (
            &[
                "client",
                "cell",
                "size",
                "port",
                "secs",
                "warm",
                "conns",
                "cpu",
                "server-pid",
            ],
            &[],
        ),
        _ => (&[], &[]),
    }
}

struct Args(Vec<String>);

impl Args {
    /// Fails on anything that is not one of `cmd`'s options (so a typo or
    /// `--help` does not start a ten-minute run with defaults).
    fn check(&self, cmd: &str) -> Result<(), String> {
        let (with_value, flags) = accepted(cmd);
        let mut it = self.0.iter();
        while let Some(a) = it.next() {
            let name = a.strip_prefix("--").unwrap_or_default();
            if with_value.contains(&name) {
                if it.next().is_none() {
                    return Err(format!("{a} needs a value"));
                }
            } else if !flags.contains(&name) {
                return Err(format!("unknown argument {a:?} for {cmd:?}\n{USAGE}"));
            }
        }
        Ok(())
    }

    fn opt(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.0
            .iter()
            .position(|a| *a == flag)
            .and_then(|i| self.0.get(i + 1))
            .map(String::as_str)
    }

    fn flag(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        self.0.contains(&flag)
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: bad value {v:?}")),
        }
    }
}

fn pin(args: &Args) -> Result<(), String> {
    if let Some(cpu) = args.opt("cpu") {
        let cpu: usize = cpu.parse().map_err(|_| "--cpu: bad value")?;
        sys::pin_to(cpu).map_err(|e| format!("pinning to CPU {cpu}: {e}"))?;
    }
    Ok(())
}

fn server(args: &Args) -> Result<(), String> {
    pin(args)?;
    sys::raise_nofile();
    let mode = args
        .opt("mode")
        .and_then(server::Mode::parse)
        .ok_or("--mode send|echo|sink is required")?;
    let size = args.num("size", 16usize)?;
    let port = args.num("port", 0u16)?;
    server::run(mode, size, port, args.opt("cc"), args.flag("watch-stdin"))
        .map_err(|e| e.to_string())
}

fn run_one(args: &Args) -> Result<(), String> {
    pin(args)?;
    sys::raise_nofile();
    let client = args.opt("client").ok_or("--client is required")?.to_owned();
    // `A+B`: two socket clients taking turns (connect only).
    let pair = client.split_once('+');
    if pair.is_none() && !clients::ALL.contains(&client.as_str()) {
        return Err(format!("--client: one of {}", clients::ALL.join(", ")));
    }
    let kind = args
        .opt("cell")
        .and_then(cells::Kind::parse)
        .ok_or("--cell recv|send|echo|idle|connect is required")?;
    if pair.is_some() && kind != cells::Kind::Connect {
        return Err("--client A+B: only with --cell connect".into());
    }
    let port: u16 = args.num("port", 0)?;
    if port == 0 {
        return Err("--port is required".into());
    }
    let p = cells::Params {
        addr: ([127, 0, 0, 1], port).into(),
        size: args.num("size", 16)?,
        secs: args.num("secs", 1.5)?,
        warm: args.num("warm", 0.2)?,
        conns: args.num("conns", 10_000)?,
    };
    if let Some(pid) = args.opt("server-pid") {
        let pid: u32 = pid.parse().map_err(|_| "--server-pid: bad value")?;
        let _ = cells::SERVER_PID.set(pid);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if let Some((a, b)) = pair {
        // One `RESULT client=NAME ...` line each.
        let samples = rt
            .block_on(cells::alternate_connects(a, b, &p))
            .map_err(|e| format!("{client} connect: {e}"))?;
        for (name, s) in [a, b].iter().zip(samples) {
            let line = s.line();
            let fields = line.strip_prefix("RESULT ").unwrap_or(&line);
            println!("RESULT client={name} {fields}");
        }
        std::process::exit(0);
    }
    let local = tokio::task::LocalSet::new();
    let sample = local
        .block_on(&rt, cells::run(&client, kind, &p))
        .map_err(|e| format!("{client} {}: {e}", kind.name()))?;
    println!("{}", sample.line());
    // Exit without tearing down thousands of connections or tasks.
    std::process::exit(0);
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if argv
        .iter()
        .any(|a| matches!(a.as_str(), "-h" | "--help" | "help"))
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let args = Args(argv[1..].to_vec());
    if let Err(e) = args.check(&cmd) {
        eprintln!("wsbench: {e}");
        return ExitCode::from(2);
    }
    let r = match cmd.as_str() {
        "server" => server(&args),
        "run" => run_one(&args),
        "all" => report::all(&args),
        other => Err(format!("unknown command {other:?}: all|server|run")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsbench: {e}");
            ExitCode::FAILURE
        }
    }
}
