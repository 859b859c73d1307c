//! The interactive client (`wsc URL`) and `wsc replay`, on the
//! event-driven [`wsclient::Client`]: each flag maps to one of the seed's
//! options (ping interval, headers, send type, reconnect), the callbacks
//! print, record and echo, and a driver task feeds messages in from stdin,
//! `--send` or a recording.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, mpsc, watch};
use wsclient::events::SendType;
use wsclient::{Client, Conn, ConnectOptions, Error, Handler, Message, ReconnectPolicy, Response};

use crate::cli::{BinaryFormat, ClientArgs, ConnArgs, ReplayArgs};
use crate::exit;
use crate::output::Printer;
use crate::record::{self, Dir, Recorder};

impl ConnArgs {
    /// The connection options these flags describe, or the exit code and
    /// message for flags that cannot be used.
    pub fn options(&self, url: &str) -> Result<ConnectOptions, (u8, String)> {
        let t = self.connect_timeout;
        let mut o = ConnectOptions::new(url)
            .dns_timeout(t)
            .connect_timeout(t)
            .handshake_timeout(t);
        for (name, value) in &self.headers {
            o.add_header(name, value);
        }
        for p in &self.subprotocols {
            o = o.subprotocol(p.clone());
        }
        if let Some(origin) = &self.origin {
            o = o.origin(origin);
        }
        if let Some(ca) = &self.cacert {
            o = o.ca_file(ca.clone());
        }
        if self.insecure {
            o = o.danger_accept_invalid_certs(true);
        }
        if let Some(n) = self.max_message_size {
            o = o.max_message_size(n).max_frame_size(n);
        }
        if let Some(p) = &self.proxy {
            wsclient::transport::proxy::Proxy::parse(p)
                .map_err(|e| (exit::USAGE, format!("--proxy: {e}")))?;
            o = o.proxy(p);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            o = o.client_cert(cert.clone(), key.clone());
        }
        if self.proxy_from_env {
            o = o.proxy_from_env();
        }
        if let Some(ip) = self.bind {
            o = o.local_addr(ip);
        }
        #[cfg(unix)]
        if let Some(path) = &self.unix_socket {
            o = o.unix_socket(path.clone());
        }
        o = o.max_redirects(self.max_redirects);
        if self.compress {
            o = o.compression(true);
        }
        o.target()
            .map_err(|e| (exit::for_error(&e), e.to_string()))?;
        if self.http2 {
            let session = wsclient::http2::Http2Session::new(o.clone());
            o = o.via_http2(session);
        }
        Ok(o)
    }
}

/// Where outgoing messages come from.
#[derive(Debug)]
pub enum Input {
    /// Lines of stdin; `linger` after its end the connection closes,
    /// unless `stay`.
    Stdin {
        /// Keep the connection open after stdin ends (--count, --echo).
        stay: bool,
        /// How long to wait for replies after stdin ends.
        linger: Duration,
    },
    /// These messages, sent once.
    Send(Vec<String>),
    /// A recording, with its timing or as fast as possible, then wait for
    /// as many replies as it had (at most `wait`).
    Replay {
        /// When to send what, from the open.
        plan: Vec<(Duration, Message)>,
        /// Ignore the timing.
        asap: bool,
        /// How many replies to wait for.
        expect: u64,
        /// The longest wait for them after the last send.
        wait: Duration,
    },
}

/// Everything a client session needs.
#[derive(Debug)]
pub struct Session {
    url: String,
    conn: ConnArgs,
    ping_interval: Option<Duration>,
    ping_timeout: Option<Duration>,
    binary: bool,
    reconnect: Option<ReconnectPolicy>,
    json: bool,
    verbose: bool,
    binary_format: BinaryFormat,
    count: Option<u64>,
    echo: bool,
    record: Option<PathBuf>,
    timeout: Option<Duration>,
    input: Input,
}

impl Session {
    /// The session `wsc URL ...` describes.
    pub fn from_client(a: ClientArgs) -> Session {
        let reconnect = match (a.reconnect, a.backoff_max) {
            (None, None) if a.max_attempts.is_none() => None,
            (first, Some(max)) => Some(ReconnectPolicy::exponential(
                first.unwrap_or(Duration::from_secs(1)),
                max,
            )),
            (first, None) => Some(ReconnectPolicy::fixed(
                first.unwrap_or(Duration::from_secs(1)),
            )),
        }
        .map(|p| match a.max_attempts {
            Some(n) => p.max_attempts(n),
            None => p,
        });
        let input = if a.send.is_empty() {
            Input::Stdin {
                stay: a.count.is_some() || a.echo,
                linger: a.linger,
            }
        } else {
            Input::Send(a.send.clone())
        };
        let count = match &input {
            Input::Send(m) => Some(a.count.unwrap_or(m.len() as u64)),
            _ => a.count,
        };
        Session {
            url: a.url.unwrap_or_default(),
            conn: a.conn,
            ping_interval: a.ping_interval,
            ping_timeout: a.ping_timeout,
            binary: a.binary,
            reconnect,
            json: a.json,
            verbose: a.verbose,
            binary_format: a.binary_format,
            count,
            echo: a.echo,
            record: a.record,
            timeout: a.timeout,
            input,
        }
    }

    /// The session `wsc replay FILE URL ...` describes.
    pub fn from_replay(a: ReplayArgs) -> Result<Session, String> {
        let rec = record::read(&a.file)?;
        Ok(Session {
            url: a.url,
            conn: a.conn,
            ping_interval: None,
            ping_timeout: None,
            binary: false,
            reconnect: None,
            json: a.json,
            verbose: a.verbose,
            binary_format: a.binary_format,
            count: None,
            echo: false,
            record: a.record,
            timeout: a.timeout,
            input: Input::Replay {
                plan: rec.out,
                asap: a.as_fast_as_possible,
                expect: rec.received,
                wait: a.wait,
            },
        })
    }
}

/// What the callbacks and the driver share.
struct State {
    printer: Printer,
    recorder: Option<Recorder>,
    /// Close after this many messages.
    target: Option<u64>,
    received: AtomicU64,
    /// We asked for the close (stdin ended, --count reached, Ctrl-C...).
    closing: AtomicBool,
    /// The exit code of the current attempt's error, if it failed.
    error: Mutex<Option<u8>>,
    /// The current attempt completed the handshake.
    opened: AtomicBool,
    /// When the first connection opened (replay's clock).
    open_at: watch::Sender<Option<Instant>>,
    /// A message arrived.
    progress: Notify,
    /// The Unix domain socket connected through (--unix-socket), shown
    /// where a TCP connection shows the server's address.
    unix_socket: Option<PathBuf>,
    /// WebSockets over HTTP/2 (--http2).
    http2: bool,
}

impl State {
    fn close(&self, conn: &Conn) {
        if !self.closing.swap(true, Ordering::AcqRel) {
            conn.close();
        }
    }

    fn set_error(&self, code: Option<u8>) {
        *self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = code;
    }

    fn error(&self) -> Option<u8> {
        *self
            .error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The callbacks.
struct Events {
    st: Arc<State>,
    echo: bool,
}

fn headers_json(r: &Response) -> Value {
    let mut m = Map::new();
    for (k, v) in r.headers() {
        m.insert(
            k.as_str().to_owned(),
            Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
        );
    }
    Value::Object(m)
}

impl Handler for Events {
    fn on_connect(&mut self, conn: &Conn) {
        let st = &self.st;
        st.set_error(None);
        st.opened.store(false, Ordering::Release);
        // An HTTP/2 stream rides a shared connection: no address of its own.
        let (via, remote) = match (&st.unix_socket, st.http2) {
            (_, true) => ("http2", None),
            (Some(path), false) => ("unix", Some(format!("unix:{}", path.display()))),
            (None, false) => ("tcp", conn.remote_addr().map(|a| a.to_string())),
        };
        if st.printer.json() {
            st.printer
                .event("connect", json!({"remote": remote, "via": via}));
        } else {
            let line = match (&st.unix_socket, st.http2) {
                (_, true) => "http/2 stream opened".to_owned(),
                (Some(path), false) => format!("unix socket connected ({})", path.display()),
                (None, false) => format!("tcp connected ({})", remote.unwrap_or_default()),
            };
            st.printer.notice(true, &line);
        }
    }

    fn on_websocket_connect(&mut self, _conn: &Conn, response: &Response) {
        let st = &self.st;
        st.opened.store(true, Ordering::Release);
        if st.printer.json() {
            st.printer.event(
                "open",
                json!({
                    "status": response.status().as_u16(),
                    "subprotocol": response.subprotocol(),
                    "headers": headers_json(response),
                }),
            );
        } else {
            st.printer.notice(true, &response.to_string());
        }
        if let Some(r) = &st.recorder {
            r.open(response.status().as_u16());
        }
        st.open_at.send_if_modified(|t| {
            if t.is_none() {
                *t = Some(Instant::now());
                true
            } else {
                false
            }
        });
    }

    fn on_message(&mut self, conn: &Conn, message: Message) {
        let st = &self.st;
        // --count N shows exactly N, whatever arrives while closing.
        if st
            .target
            .is_some_and(|t| st.received.load(Ordering::Acquire) >= t)
        {
            return;
        }
        st.printer.message(&message);
        if let Some(r) = &st.recorder {
            r.message(Dir::In, &message);
        }
        let n = st.received.fetch_add(1, Ordering::AcqRel) + 1;
        if self.echo && !st.closing.load(Ordering::Acquire) {
            let sent = match &message {
                Message::Text(t) => conn.send_text(t.clone()),
                Message::Binary(b) => conn.send_binary(b.clone()),
                _ => Ok(()),
            };
            match sent {
                Ok(()) => {
                    if let Some(r) = &st.recorder {
                        r.message(Dir::Out, &message);
                    }
                }
                Err(e) => st.printer.notice(false, &format!("echo: {e}")),
            }
        }
        if st.target.is_some_and(|t| n >= t) {
            st.close(conn);
        }
        st.progress.notify_waiters();
    }

    fn on_ping(&mut self, _conn: &Conn, payload: Bytes) {
        let p = &self.st.printer;
        if p.json() {
            p.event("ping", json!({"len": payload.len()}));
        } else {
            p.notice(true, "ping received (answered)");
        }
    }

    fn on_pong(&mut self, conn: &Conn, payload: Bytes) {
        let p = &self.st.printer;
        let rtt = conn.stats().rtt.map(|d| d.as_secs_f64() * 1e3);
        if p.json() {
            p.event("pong", json!({"len": payload.len(), "rtt_ms": rtt}));
        } else if let Some(ms) = rtt {
            p.notice(true, &format!("pong: rtt {ms:.3} ms"));
        } else {
            p.notice(true, "pong");
        }
    }

    fn on_error(&mut self, _conn: &Conn, error: &Error) {
        let st = &self.st;
        let code = exit::for_error(error);
        st.set_error(Some(code));
        if st.printer.json() {
            st.printer.event(
                "error",
                json!({
                    "error": error.to_string(),
                    "code": error.code(),
                    "error_kind": exit::kind(error),
                    "exit": code,
                    "status": error.response().map(|r| r.status().as_u16()),
                    "response": error.response().map(ToString::to_string),
                }),
            );
        } else {
            st.printer.notice(false, &format!("wsc: error: {error}"));
            // The server's answer behind a handshake failure (a refusal or
            // an invalid 101), as received.
            if let Some(response) = error.response() {
                st.printer.notice(
                    false,
                    &format!(
                        "wsc: server response:
{response}"
                    ),
                );
            }
        }
    }

    fn on_close(&mut self, conn: &Conn) {
        let st = &self.st;
        let opened = st.opened.load(Ordering::Acquire);
        let code = if opened { conn.close_code() } else { None };
        let reason = conn
            .close_frame()
            .filter(|f| Some(f.code) == code)
            .map(|f| f.reason.as_str().to_owned())
            .filter(|r| !r.is_empty());
        if let Some(r) = &st.recorder {
            r.close(code.map(|c| c.0));
        }
        if st.printer.json() {
            st.printer.event(
                "close",
                json!({"code": code.map(|c| c.0), "reason": reason, "local": st.closing.load(Ordering::Acquire)}),
            );
            return;
        }
        let Some(code) = code else { return };
        let text = match &reason {
            Some(r) => format!("{code} {r}"),
            None => code.to_string(),
        };
        let by_peer = !st.closing.load(Ordering::Acquire);
        if by_peer && code.0 != 1000 && code.0 != 1006 {
            st.printer.notice(false, &format!("closed by peer: {text}"));
        } else {
            st.printer.notice(true, &format!("closed: {text}"));
        }
    }

    fn on_reconnect(&mut self, _conn: &Conn, attempt: u32, delay: Duration) {
        let p = &self.st.printer;
        if p.json() {
            p.event(
                "reconnect",
                json!({"attempt": attempt, "delay_ms": delay.as_millis() as u64}),
            );
        } else {
            p.notice(
                false,
                &format!("reconnecting in {delay:.1?} (attempt {attempt})"),
            );
        }
    }

    fn on_undelivered(&mut self, _conn: &Conn, messages: Vec<Message>) {
        let p = &self.st.printer;
        if p.json() {
            p.event("undelivered", json!({"count": messages.len()}));
        } else {
            p.notice(
                false,
                &format!("wsc: {} message(s) not delivered", messages.len()),
            );
        }
    }
}

/// Queues a message, waiting while the send queue is full; false once the
/// connection is finished.
async fn send(conn: &Conn, st: &State, msg: Message) -> bool {
    let copy = st.recorder.as_ref().map(|_| msg.clone());
    if conn.send_wait(msg).await.is_err() {
        return false;
    }
    if let (Some(r), Some(m)) = (&st.recorder, copy) {
        r.message(Dir::Out, &m);
    }
    true
}

/// Reads stdin lines on a thread of its own (stdin has no portable async
/// read), handing them over a channel.
fn stdin_lines() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(256);
    std::thread::spawn(move || {
        use std::io::BufRead;
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        loop {
            let mut line = Vec::new();
            match input.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Feeds the connection from the input.
async fn drive(input: Input, binary: bool, conn: Conn, st: Arc<State>) {
    let make = |text: String| -> Message {
        if binary {
            Message::binary(text.into_bytes())
        } else {
            Message::text(text)
        }
    };
    match input {
        Input::Stdin { stay, linger } => {
            let mut lines = stdin_lines();
            while let Some(line) = lines.recv().await {
                let msg = if binary {
                    Message::binary(line)
                } else {
                    Message::text(String::from_utf8_lossy(&line).into_owned())
                };
                if !send(&conn, &st, msg).await {
                    return;
                }
            }
            if !stay {
                // Not before the first open: what stdin gave must go out,
                // through any reconnects it takes to get connected.
                let mut opened = st.open_at.subscribe();
                if opened.wait_for(Option::is_some).await.is_ok() {
                    tokio::time::sleep(linger).await;
                    st.close(&conn);
                }
            }
        }
        Input::Send(messages) => {
            for m in messages {
                if !send(&conn, &st, make(m)).await {
                    return;
                }
            }
        }
        Input::Replay {
            plan,
            asap,
            expect,
            wait,
        } => {
            let mut opened = st.open_at.subscribe();
            let Ok(open) = opened
                .wait_for(Option::is_some)
                .await
                .map(|t| t.unwrap_or_else(Instant::now))
            else {
                return;
            };
            for (at, msg) in plan {
                if !asap {
                    tokio::time::sleep_until((open + at).into()).await;
                }
                if !send(&conn, &st, msg).await {
                    return;
                }
            }
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = st.progress.notified();
                if st.received.load(Ordering::Acquire) >= expect {
                    break;
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    let got = st.received.load(Ordering::Acquire);
                    st.printer.notice(
                        false,
                        &format!("wsc replay: received {got} of the {expect} messages recorded"),
                    );
                    break;
                }
            }
            st.close(&conn);
        }
    }
}

/// Runs a client session; returns the exit code.
pub async fn run(s: Session) -> u8 {
    let options = match s.conn.options(&s.url) {
        Ok(o) => o,
        Err((code, msg)) => {
            eprintln!("wsc: {msg}");
            return code;
        }
    };
    let recorder = match &s.record {
        Some(path) => match Recorder::create(path, &s.url) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("wsc: cannot write {}: {e}", path.display());
                return exit::FAILURE;
            }
        },
        None => None,
    };
    let mut client = match Client::with_options(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wsc: {e}");
            return exit::for_error(&e);
        }
    };
    if let Some(i) = s.ping_interval {
        client.ping_interval(i);
    }
    if let Some(t) = s.ping_timeout {
        client.pong_timeout(t);
    }
    client.send_type(if s.binary {
        SendType::Binary
    } else {
        SendType::Text
    });
    if let Some(p) = s.reconnect.clone() {
        client.reconnect_policy(p);
    }
    let st = Arc::new(State {
        printer: Printer::new(s.json, s.verbose, s.binary_format),
        recorder,
        target: s.count,
        received: AtomicU64::new(0),
        closing: AtomicBool::new(false),
        error: Mutex::new(None),
        opened: AtomicBool::new(false),
        open_at: watch::channel(None).0,
        progress: Notify::new(),
        #[cfg(unix)]
        unix_socket: s.conn.unix_socket.clone(),
        #[cfg(not(unix))]
        unix_socket: None,
        http2: s.conn.http2,
    });
    client.handler(Events {
        st: st.clone(),
        echo: s.echo,
    });
    let conn = client.connect();
    let driver = tokio::spawn(drive(s.input, s.binary, conn.clone(), st.clone()));

    let timeout = async {
        match s.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let mut forced = None;
    tokio::select! {
        () = conn.finished() => {}
        _ = tokio::signal::ctrl_c() => {
            forced = Some(exit::INTERRUPTED);
            st.close(&conn);
            tokio::select! {
                () = conn.finished() => {}
                () = tokio::time::sleep(Duration::from_secs(3)) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        () = timeout => {
            forced = Some(exit::TIMEOUT);
            if st.printer.json() {
                st.printer.event("timeout", json!({"after_s": s.timeout.map(|t| t.as_secs_f64())}));
            } else {
                st.printer.notice(false, "wsc: timed out");
            }
            st.close(&conn);
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.finished()).await;
        }
    }
    driver.abort();
    forced.unwrap_or_else(|| final_code(&st, &conn))
}

/// The exit code for a finished connection.
fn final_code(st: &State, conn: &Conn) -> u8 {
    if let Some(code) = st.error() {
        return code;
    }
    if st.closing.load(Ordering::Acquire) {
        return exit::OK;
    }
    match conn.close_code() {
        Some(c) if st.opened.load(Ordering::Acquire) => exit::for_close(c),
        _ => exit::OK,
    }
}
