//! Real WebSocket server peers from other implementations, for integration tests.
//!
//! * [`PeerKind::Python`]: `peers/py_server.py` (Python `websockets`), run with
//!   `.venv-peers/bin/python`.
//! * [`PeerKind::Node`]: `peers/node_server.js` (Node `ws`), run with `node`.
//!
//! Both are installed by `scripts/install-peers.sh` and behave the same; the
//! behaviour is chosen by the request path (see `peers/README.md`):
//! `/echo`, `/headers`, `/fragmented?size=N&count=K&type=text|binary`,
//! `/send?size=N&count=C&type=binary|text`, `/close?code=C&reason=R[&raw=1]`,
//! `/ping?data=X`, `/reject?status=S[&retry_after=N]`, `/drop-mid-message`,
//! `/silent`, `/close-after?n=K`; any other path is rejected with 404.
//!
//! Only `std` is used, so this works from sync and async tests alike.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How long to wait for a peer to print `PORT <n>`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Which implementation serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKind {
    /// Python `websockets` (asyncio server).
    Python,
    /// Node `ws`.
    Node,
}

impl PeerKind {
    /// Both kinds, for tests that run against each.
    pub const ALL: [PeerKind; 2] = [PeerKind::Python, PeerKind::Node];

    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Python => "python-websockets",
            PeerKind::Node => "node-ws",
        }
    }
}

impl std::fmt::Display for PeerKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Server options. `Default` = plain `ws://`, no compression, no subprotocols.
#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// `(certificate PEM, private key PEM)`: serve `wss://`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Enable permessage-deflate on the server.
    pub compression: bool,
    /// Subprotocols the server supports; it picks the first one the client
    /// offers that is in this list (and none otherwise, without failing).
    pub subprotocols: Vec<String>,
    /// Listen on this Unix domain socket instead of TCP (`port` is then 0).
    pub unix: Option<PathBuf>,
}

/// A running peer process; killed when dropped.
pub struct Peer {
    pub port: u16,
    pub kind: PeerKind,
    child: Child,
    tls: bool,
}

/// The workspace root (parent of the `wsclient` crate directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("CARGO_MANIFEST_DIR has a parent")
        .to_path_buf()
}

fn python_path() -> PathBuf {
    workspace_root()
        .join(".venv-peers")
        .join("bin")
        .join("python")
}

/// Why `kind` cannot start, if its interpreter or dependencies are missing.
pub fn missing(kind: PeerKind) -> Option<String> {
    let root = workspace_root();
    match kind {
        PeerKind::Python => {
            let py = python_path();
            if !py.exists() {
                return Some(format!("{} does not exist", py.display()));
            }
        }
        PeerKind::Node => {
            let ws = root.join("peers/node_modules/ws/package.json");
            if !ws.exists() {
                return Some(format!("{} does not exist", ws.display()));
            }
            let ok = Command::new("node")
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Some("`node` is not on PATH".to_string());
            }
        }
    }
    None
}

/// Whether `kind` looks installed (see [`missing`]).
pub fn is_installed(kind: PeerKind) -> bool {
    missing(kind).is_none()
}

impl Peer {
    /// Start a peer and wait (up to 20 s) until it listens on 127.0.0.1.
    ///
    /// Panics with a message naming `scripts/install-peers.sh` when the
    /// interpreter, venv or `node_modules` is missing, and when the peer
    /// exits or stays silent instead of printing its port.
    pub fn start(kind: PeerKind, opts: &PeerOptions) -> Peer {
        Peer::start_with_args(kind, opts, &[])
    }

    /// Like [`Peer::start`], with extra command-line arguments for the peer,
    /// e.g. `&["--max-size", "1000"]`.
    pub fn start_with_args(kind: PeerKind, opts: &PeerOptions, extra_args: &[&str]) -> Peer {
        if let Some(why) = missing(kind) {
            panic!(
                "{kind} test peer is not installed: {why}; run `scripts/install-peers.sh` \
                 from the workspace root ({})",
                workspace_root().display()
            );
        }
        let root = workspace_root();
        let mut cmd = match kind {
            PeerKind::Python => {
                let mut c = Command::new(python_path());
                c.arg(root.join("peers/py_server.py"));
                c
            }
            PeerKind::Node => {
                let mut c = Command::new("node");
                c.arg(root.join("peers/node_server.js"));
                c
            }
        };
        cmd.args(["--port", "0", "--host", "127.0.0.1"]);
        if let Some((cert, key)) = &opts.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        }
        if opts.compression {
            cmd.arg("--compression");
        }
        if !opts.subprotocols.is_empty() {
            cmd.arg("--subprotocols").arg(opts.subprotocols.join(","));
        }
        if let Some(path) = &opts.unix {
            cmd.arg("--unix").arg(path);
        }
        cmd.args(extra_args);
        cmd.current_dir(&root)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());

        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "failed to spawn {kind} test peer ({cmd:?}): {e}; run `scripts/install-peers.sh`"
            )
        });

        let port = match wait_for_port(&mut child, kind.name()) {
            Ok(port) => port,
            Err(msg) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "{kind} test peer failed to start: {msg} (exit status: {status:?}; \
                     is `scripts/install-peers.sh` done?)"
                );
            }
        };

        Peer {
            port,
            kind,
            child,
            tls: opts.tls.is_some(),
        }
    }

    /// `ws://127.0.0.1:PORT{path}` (`wss://` when TLS is on). `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        self.url_with_host("127.0.0.1", path)
    }

    /// Like [`Peer::url`] with another host name (e.g. `localhost` for a
    /// certificate issued to that name). The peer listens on 127.0.0.1 only.
    pub fn url_with_host(&self, host: &str, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{host}:{}{path}", self.port)
    }

    /// `127.0.0.1:PORT`, for raw TCP connections.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("kind", &self.kind)
            .field("port", &self.port)
            .field("pid", &self.child.id())
            .field("tls", &self.tls)
            .finish()
    }
}

// ---------------------------------------------------------------------------
// Payloads the peers send (same rules as peers/py_server.py / node_server.js).
// ---------------------------------------------------------------------------

/// The repeating unit of text payloads (18 bytes of UTF-8).
pub const TEXT_UNIT: &str = "héllo wörld ✓ ";

/// Text payload of `/fragmented` and `/send` for `size=n`: exactly `n` bytes
/// of valid UTF-8 — `TEXT_UNIT` repeated and cut to `n` bytes; if the cut
/// splits a multi-byte character, that partial character's bytes are replaced
/// by `'.'` (one per byte).
pub fn text_payload(n: usize) -> String {
    let unit = TEXT_UNIT.as_bytes();
    let raw: Vec<u8> = (0..n).map(|i| unit[i % unit.len()]).collect();
    let valid = match std::str::from_utf8(&raw) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    let mut out = String::from_utf8(raw[..valid].to_vec()).expect("valid prefix");
    out.extend(std::iter::repeat_n('.', n - valid));
    out
}

/// Binary payload of `/fragmented` and `/send` for `size=n`: byte `i` is `i % 256`.
pub fn binary_payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 256) as u8).collect()
}

/// Frame payload sizes `/fragmented?size=n&count=k` uses: frame `i` carries
/// bytes `[i*n/k, (i+1)*n/k)` (byte boundaries, so a text message's UTF-8
/// characters may be split across frames).
pub fn fragment_sizes(n: usize, k: usize) -> Vec<usize> {
    let k = k.max(1);
    (0..k).map(|i| (i + 1) * n / k - i * n / k).collect()
}

/// Forwards a started peer's stderr to the test's output (prefixed with
/// `tag`, so the harness captures it) and waits up to [`START_TIMEOUT`] for
/// the `PORT <n>` line on its stdout, which is drained afterwards.
pub fn wait_for_port(child: &mut Child, tag: &str) -> Result<u16, String> {
    if let Some(stderr) = child.stderr.take() {
        let tag = tag.to_owned();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[peer {tag}] {line}");
            }
        });
    }
    let stdout = child
        .stdout
        .take()
        .ok_or("the peer's stdout is not piped")?;
    let (tx, rx) = mpsc::channel::<Result<u16, String>>();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = match reader.read_line(&mut line) {
            Ok(0) => Err("peer closed stdout without printing `PORT <n>`".to_string()),
            Ok(_) => line
                .trim()
                .strip_prefix("PORT ")
                .and_then(|p| p.trim().parse::<u16>().ok())
                .ok_or_else(|| format!("unexpected first stdout line {line:?}")),
            Err(e) => Err(format!("reading peer stdout: {e}")),
        };
        let _ = tx.send(first);
        let mut sink = [0u8; 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    rx.recv_timeout(START_TIMEOUT)
        .unwrap_or_else(|_| Err(format!("no `PORT <n>` within {START_TIMEOUT:?}")))
}
