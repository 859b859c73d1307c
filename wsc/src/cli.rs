//! The command line: every subcommand's flags (clap derive), the shared
//! connection flags, and the parsers for durations and sizes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit;

/// `wsc`: a WebSocket client, demo, server and load generator.
#[derive(Debug, Parser)]
#[command(
    name = "wsc",
    version,
    about = "A WebSocket command-line client, demo, echo/broadcast server and load generator",
    long_about = "A WebSocket command-line client built on the wsclient library.\n\n\
        `wsc URL` connects and sends each line read on stdin as a message, printing \
        every message received. `wsc demo` runs the README's scenario against an \
        embedded echo server; `wsc serve` runs a small echo or broadcast server; \
        `wsc bench` generates load; `wsc replay` plays back a session recorded with \
        --record; `wsc forward` tunnels TCP connections over WebSocket.",
    after_help = exit::HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand; without one, `wsc URL` runs the interactive client.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The interactive client's flags.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the README's first scenario against an embedded echo server:
    /// connect, handshake, `hello`, ping/pong, server restart, reconnect.
    #[command(after_help = exit::HELP)]
    Demo(DemoArgs),
    /// Run a WebSocket server that echoes or broadcasts messages.
    #[command(after_help = exit::HELP)]
    Serve(ServeArgs),
    /// Generate load: N connections sending, echoing or receiving messages.
    #[command(after_help = exit::HELP)]
    Bench(BenchArgs),
    /// Send the outgoing messages of a session recorded with --record
    /// again, with their original timing.
    #[command(after_help = exit::HELP)]
    Replay(ReplayArgs),
    /// Tunnel TCP over WebSocket: every connection to a local port gets
    /// its own WebSocket connection to URL, its bytes carried as binary
    /// messages both ways (`wsc serve --to` is the other end).
    #[command(after_help = exit::HELP)]
    Forward(ForwardArgs),
}

/// How to connect: handshake headers, TLS, proxy, limits. Shared by the
/// client, `replay` and `bench`.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Add a handshake header, `'Name: value'` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "'K: V'", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Offer a subprotocol (repeatable, in preference order).
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// Set the `Origin` header.
    #[arg(long, value_name = "ORIGIN")]
    pub origin: Option<String>,
    /// Trust this CA certificate (PEM file) for wss://.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Accept any TLS certificate (testing only).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Connect through a proxy: `http://[user:pass@]host:port`, `socks5://...`, `socks5h://...`
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// Client certificate for mutual TLS (PEM file; needs --key).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key of --cert (PEM file).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Take the proxy from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY.
    #[arg(long, conflicts_with = "proxy")]
    pub proxy_from_env: bool,
    /// Follow up to N redirects (301/302/303/307/308; never wss to ws).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_redirects: u32,
    /// Connect from this local address (Workerman's bindto).
    #[arg(long, value_name = "IP")]
    pub bind: Option<std::net::IpAddr>,
    /// Connect through this Unix domain socket instead of TCP; the URL
    /// still gives the Host header, the path and TLS (like curl's
    /// --unix-socket).
    #[cfg(unix)]
    #[arg(long, value_name = "PATH", conflicts_with_all = ["proxy", "proxy_from_env", "bind"])]
    pub unix_socket: Option<PathBuf>,
    /// Offer permessage-deflate compression.
    #[arg(long)]
    pub compress: bool,
    /// WebSockets over HTTP/2 (RFC 8441): h2c for ws://, ALPN h2 for
    /// wss://; every connection of the command (bench's too, and
    /// reconnects) rides one shared HTTP/2 connection.
    #[arg(long, conflicts_with = "max_redirects")]
    pub http2: bool,
    /// The largest message accepted (bytes; k/M/G suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_message_size: Option<usize>,
    /// Limit on DNS + TCP connect, and on the TLS + HTTP handshake, each.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "10")]
    pub connect_timeout: Duration,
}

/// The interactive client (`wsc URL`).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The ws:// or wss:// URL to connect to.
    #[arg(required = true, value_name = "URL")]
    pub url: Option<String>,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Send a ping every SECS (the seed's websocketPingInterval).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub ping_interval: Option<Duration>,
    /// After a ping, how long to wait for the server before declaring the
    /// connection dead (default: the ping interval).
    #[arg(long, value_name = "SECS", value_parser = parse_duration, requires = "ping_interval")]
    pub ping_timeout: Option<Duration>,
    /// Send messages as binary frames (the seed's BINARY_TYPE_ARRAYBUFFER).
    #[arg(long)]
    pub binary: bool,
    /// Reconnect after SECS when the connection fails or is lost (fixed
    /// delay; with --backoff-max it is the first delay of an exponential
    /// backoff).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub reconnect: Option<Duration>,
    /// Exponential backoff between reconnects, up to SECS.
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub backoff_max: Option<Duration>,
    /// Give up after N consecutive failed reconnect attempts.
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Print connection events and the handshake response (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
    /// Print one JSON object per event on stdout (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Exit after receiving N messages.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Send MSG once connected and exit after the reply (repeatable: exits
    /// after as many replies as messages sent, unless --count says
    /// otherwise). Stdin is not read.
    #[arg(long, value_name = "MSG")]
    pub send: Vec<String>,
    /// After stdin ends, wait SECS for replies before closing (like
    /// `nc -q`; 0 closes at once).
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "1")]
    pub linger: Duration,
    /// Send every received message straight back.
    #[arg(long)]
    pub echo: bool,
    /// Record the session as timestamped NDJSON (for `wsc replay`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Give up after SECS (exit code 9).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How binary messages are shown (raw bytes are never written to a
    /// terminal: there `raw` falls back to hex).
    #[arg(long, value_enum, default_value_t = BinaryFormat::Hex)]
    pub binary_format: BinaryFormat,
}

/// How binary payloads are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BinaryFormat {
    /// Lower-case hex.
    Hex,
    /// Standard base64.
    Base64,
    /// The bytes as they are (only when stdout is not a terminal).
    Raw,
}

/// `wsc demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The client's ping interval during the demo.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "1")]
    pub ping_interval: Duration,
    /// The delay before reconnecting (the seed's reConnect(1)).
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "1")]
    pub reconnect: Duration,
}

/// What `wsc serve` does with messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeMode {
    /// Send each message back to its sender.
    Echo,
    /// Send each message to every connected client.
    Broadcast,
    /// Bridge each client to a new TCP connection to this address.
    Forward(String),
}

/// `wsc serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port; the first line
    /// on stdout says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Listen on this Unix domain socket instead of TCP (a stale socket
    /// file, with nothing accepting on it, is replaced; the file is removed
    /// on exit).
    #[cfg(unix)]
    #[arg(long, value_name = "PATH", conflicts_with = "listen")]
    pub unix: Option<std::path::PathBuf>,
    /// Echo each message back to its sender (the default).
    #[arg(long, conflicts_with = "broadcast")]
    pub echo: bool,
    /// Send each message to every connected client (the sender included);
    /// lines typed on stdin are broadcast too.
    #[arg(long)]
    pub broadcast: bool,
    /// Subprotocols to accept (repeatable; the first one the client offers
    /// that is listed here is chosen).
    #[arg(long = "subprotocol", value_name = "NAME")]
    pub subprotocols: Vec<String>,
    /// The largest message accepted (bytes; k/M/G suffixes allowed).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_message_size: Option<usize>,
    /// Accept permessage-deflate offers (compressed messages).
    #[arg(long)]
    pub compress: bool,
    /// Bridge each client to a new TCP connection to HOST:PORT (like
    /// websockify): its messages' bytes are written there, the bytes read
    /// there come back as binary messages. A backend that cannot be
    /// reached closes the client with 1014 (bad gateway).
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["echo", "broadcast"])]
    pub to: Option<String>,
    /// Log connections and messages on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}

impl ServeArgs {
    /// The mode chosen by the flags.
    pub fn mode(&self) -> ServeMode {
        if let Some(to) = &self.to {
            ServeMode::Forward(to.clone())
        } else if self.broadcast {
            ServeMode::Broadcast
        } else {
            ServeMode::Echo
        }
    }
}

/// `wsc forward`.
#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// The ws:// or wss:// URL every local connection is tunnelled to.
    #[arg(value_name = "URL")]
    pub url: String,
    /// The local TCP address to accept connections on (port 0 picks a
    /// free port; the first line on stdout says which).
    #[arg(short, long, value_name = "ADDR")]
    pub listen: String,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Log tunnels opened and closed on stderr (failures are always
    /// logged).
    #[arg(short, long)]
    pub verbose: bool,
}

/// What each `wsc bench` connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    /// Send messages and wait for their echoes: latency is the round trip.
    Echo,
    /// Only receive what the server sends (throughput).
    Recv,
    /// Only send (throughput); incoming messages are read and discarded.
    Send,
}

/// `wsc bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The ws:// or wss:// URL.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Number of connections.
    #[arg(short = 'c', long, value_name = "N", default_value_t = 1)]
    pub conns: usize,
    /// Messages per second per connection; 0: as fast as possible (in echo
    /// mode: one message in flight per connection, the next sent when its
    /// echo arrives).
    #[arg(short = 'r', long, value_name = "R", default_value_t = 0.0)]
    pub rate: f64,
    /// Message size in bytes (k/M suffixes allowed).
    #[arg(short = 's', long, value_name = "BYTES", value_parser = parse_size, default_value = "32")]
    pub size: usize,
    /// How long to run (SECS, or with a unit: 500ms, 10s, 2m).
    #[arg(short = 'd', long, value_name = "D", value_parser = parse_duration, default_value = "10")]
    pub duration: Duration,
    /// What each connection does.
    #[arg(short = 'm', long, value_enum, default_value_t = BenchMode::Echo)]
    pub mode: BenchMode,
    /// Send text frames instead of binary frames.
    #[arg(long)]
    pub text: bool,
    /// How many connections may be opening at the same time.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Print the final summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No live progress line on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `wsc replay FILE URL`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// A session recorded with `wsc URL --record FILE`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Where to send it.
    #[arg(value_name = "URL")]
    pub url: String,
    /// Connection flags.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Send the messages back to back instead of with their recorded timing.
    #[arg(long)]
    pub as_fast_as_possible: bool,
    /// After the last message, wait at most SECS for the replies the
    /// recording had.
    #[arg(long, value_name = "SECS", value_parser = parse_duration, default_value = "5")]
    pub wait: Duration,
    /// Print one JSON object per event on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print connection events and the handshake response (on stderr).
    #[arg(short, long)]
    pub verbose: bool,
    /// Give up after SECS (exit code 9).
    #[arg(long, value_name = "SECS", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// How binary messages are shown.
    #[arg(long, value_enum, default_value_t = BinaryFormat::Hex)]
    pub binary_format: BinaryFormat,
    /// Record the replayed session too.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// Parses `'Name: value'`.
fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected 'Name: value', got {s:?}"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("empty header name in {s:?}"));
    }
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// Parses a duration: seconds (`1.5`), or a number with a unit (`500ms`,
/// `2s`, `1m`, `1h`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 1.5, 500ms, 10s, 2m)"))?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "us" => 0.000_001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}")),
    };
    let secs = v * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a size in bytes: `1024`, `4k`, `16M`, `1G`, `64KiB`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: usize = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (try 1024, 4k, 16M)"))?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    v.checked_mul(scale)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_size("4k").unwrap(), 4096);
        assert_eq!(parse_size("16M").unwrap(), 16 << 20);
        assert!(parse_size("-1").is_err());
        assert_eq!(
            parse_header("Cookie: a=b; c").unwrap(),
            ("Cookie".into(), "a=b; c".into())
        );
        assert!(parse_header("nocolon").is_err());
    }

    #[test]
    fn subcommands_and_url() {
        let c = Cli::try_parse_from(["wsc", "ws://x", "--count", "2", "-H", "A: b"]).unwrap();
        assert!(c.command.is_none());
        assert_eq!(c.client.url.as_deref(), Some("ws://x"));
        assert_eq!(c.client.count, Some(2));
        let c = Cli::try_parse_from(["wsc", "demo"]).unwrap();
        assert!(matches!(c.command, Some(Command::Demo(_))));
        let c = Cli::try_parse_from(["wsc", "serve", "--listen", "127.0.0.1:0", "--echo"]).unwrap();
        assert!(matches!(c.command, Some(Command::Serve(_))));
        assert!(Cli::try_parse_from(["wsc"]).is_err());
        assert!(Cli::try_parse_from(["wsc", "serve", "--echo", "--broadcast"]).is_err());
    }
}
