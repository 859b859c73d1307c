//! `wsc` driven as a user would: the built binary, real peers (`wsc serve`,
//! Python `websockets`, Node `ws`), stdin, stdout, exit codes.
//!
//! Every command is bounded by a timeout; waiting is on output (a server's
//! `listening on`/`PORT n` line), never on sleeps.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
// The same refused port as the library's tests use.
#[path = "../../wsclient/tests/support/ports.rs"]
mod ports;
use ports::refusing_port;
use predicates::prelude::*;
use serde_json::Value;

/// The bound on any one command.
const LIMIT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate is in the workspace")
        .to_path_buf()
}

fn wsc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wsc"));
    c.timeout(LIMIT);
    c
}

fn python() -> PathBuf {
    let py = root().join(".venv-peers/bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/install-peers.sh from the workspace root",
        py.display()
    );
    py
}

/// A background process, killed when dropped, whose stdout lines arrive
/// on a channel.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut StdCommand) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The port of a peer that prints `PORT <n>` once listening (0 for
    /// one listening on a Unix socket).
    fn port(&self) -> u16 {
        self.wait_line("PORT", |l| {
            l.strip_prefix("PORT ").and_then(|n| n.trim().parse().ok())
        })
    }

    /// The first stdout line for which `f` gives a value.
    fn wait_line<T>(&self, what: &str, f: impl Fn(&str) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = f(&line) {
                        return v;
                    }
                }
                Err(e) => panic!("no {what} line: {e}"),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `wsc serve --listen 127.0.0.1:0 ARGS` and its `ws://` URL.
fn serve(args: &[&str]) -> (Proc, String) {
    let p = Proc::spawn(
        StdCommand::new(env!("CARGO_BIN_EXE_wsc"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args),
    );
    let url = p.wait_line("listening", |l| {
        l.strip_prefix("listening on ")
            .and_then(|r| r.split_whitespace().next())
            .map(str::to_owned)
    });
    (p, url)
}

/// The Python `websockets` peer server (peers/py_server.py) and its base URL.
fn py_peer() -> (Proc, String) {
    let p = Proc::spawn(
        StdCommand::new(python())
            .arg(root().join("peers/py_server.py"))
            .args(["--port", "0"]),
    );
    let port: u16 = p.port();
    (p, format!("ws://127.0.0.1:{port}"))
}

/// A free local port (for a server the test starts on it).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .collect()
}

// ---------------------------------------------------------------- client

#[test]
fn stdin_lines_become_messages_against_wsc_serve() {
    let (_srv, url) = serve(&["--echo"]);
    wsc()
        .arg(&url)
        .write_stdin("hello\nsecond line\n\nlast")
        .assert()
        .code(0)
        .stdout("hello\nsecond line\n\nlast\n");
}

#[test]
fn stdin_lines_become_messages_against_python_peer() {
    let (_peer, base) = py_peer();
    wsc()
        .arg(format!("{base}/echo"))
        .write_stdin("héllo ✓\r\nworld\n")
        .assert()
        .code(0)
        .stdout("héllo ✓\nworld\n");
}

#[test]
fn json_events_have_a_schema() {
    let (_peer, base) = py_peer();
    let out = wsc()
        .args([&format!("{base}/echo"), "--json", "--send", "hi"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    assert_eq!(
        kinds(&events),
        ["connect", "open", "message", "close"],
        "{events:?}"
    );
    for e in &events {
        let time = e["time"].as_str().expect("time is a string");
        assert!(
            time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(e["elapsed"].as_f64().is_some_and(|t| t >= 0.0), "{e}");
    }
    assert_eq!(events[1]["status"], 101);
    assert!(events[1]["headers"].is_object());
    assert_eq!(events[2]["type"], "text");
    assert_eq!(events[2]["text"], "hi");
    assert_eq!(events[2]["len"], 2);
    assert_eq!(events[3]["code"], 1000);
    assert_eq!(events[3]["local"], true);

    // Binary payloads are base64 in "data".
    let out = wsc()
        .args([
            &format!("{base}/echo"),
            "--json",
            "--binary",
            "--send",
            "hi",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let msg = events
        .iter()
        .find(|e| e["kind"] == "message")
        .expect("a message");
    assert_eq!(msg["type"], "binary");
    assert_eq!(msg["data"], "aGk=");
    assert!(msg.get("text").is_none());
}

#[test]
fn binary_is_shown_as_hex_or_base64() {
    let (_srv, url) = serve(&["--echo"]);
    wsc()
        .args([&url, "--binary", "--send", "hi\u{1b}"])
        .assert()
        .code(0)
        .stdout("[binary 3 bytes] 68691b\n");
    wsc()
        .args([
            &url,
            "--binary",
            "--binary-format",
            "base64",
            "--send",
            "hello",
        ])
        .assert()
        .code(0)
        .stdout("[binary 5 bytes, base64] aGVsbG8=\n");
}

#[test]
fn count_exits_after_n_messages() {
    let (_peer, base) = py_peer();
    let out = wsc()
        .args([
            &format!("{base}/send?size=5&count=3&type=text"),
            "--count",
            "2",
        ])
        .write_stdin("")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    assert_eq!(String::from_utf8_lossy(&out), "héll\nhéll\n");
}

#[test]
fn send_exits_after_the_replies() {
    let (_srv, url) = serve(&["--echo"]);
    wsc()
        .args([&url, "--send", "one", "--send", "two"])
        .assert()
        .code(0)
        .stdout("one\ntwo\n");
}

#[test]
fn verbose_prints_the_handshake_response() {
    let (_srv, url) = serve(&["--echo"]);
    wsc()
        .args([&url, "-v", "--send", "x", "-H", "X-Test: 1"])
        .assert()
        .code(0)
        .stdout("x\n")
        .stderr(
            predicate::str::contains("tcp connected")
                .and(predicate::str::contains("HTTP/1.1 101 Switching Protocols"))
                .and(predicate::str::contains("Sec-WebSocket-Accept:")),
        );
}

#[test]
fn headers_subprotocol_and_origin_reach_the_server() {
    let (_peer, base) = py_peer();
    let out = wsc()
        .args([
            &format!("{base}/headers"),
            "--json",
            "--count",
            "1",
            "-H",
            "Cookie: PHPSID=82u98fjhakfusuanfnahfi",
            "--header",
            "OtherKey: values",
            "--origin",
            "http://example.test",
            "--subprotocol",
            "chat.v1",
        ])
        .write_stdin("")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let msg = events
        .iter()
        .find(|e| e["kind"] == "message")
        .expect("a message");
    let seen: Value =
        serde_json::from_str(msg["text"].as_str().expect("text")).expect("JSON headers");
    assert_eq!(seen["cookie"], "PHPSID=82u98fjhakfusuanfnahfi");
    assert_eq!(seen["otherkey"], "values");
    assert_eq!(seen["origin"], "http://example.test");
    assert_eq!(seen["sec-websocket-protocol"], "chat.v1");
}

// ---------------------------------------------------------------- exit codes

#[test]
fn exit_5_when_the_handshake_is_refused() {
    let (_peer, base) = py_peer();
    wsc()
        .args([&format!("{base}/reject?status=403"), "--send", "x"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(
            predicate::str::contains("403").and(predicate::str::contains(
                "wsc: server response:\nHTTP/1.1 403",
            )),
        );
}

/// A raw server answering every upgrade with a well-formed 101 whose
/// `Sec-WebSocket-Accept` is wrong (no real server does that): wsc fails
/// with exit 5 and prints the server's response head, in text and JSON.
#[test]
fn an_invalid_101_prints_the_server_response() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match s.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Accept: bm90IHRoZSByaWdodCBrZXk=\r\n\
                  X-Custom: from-the-server\r\n\r\n",
            );
        }
    });
    wsc()
        .args([&url, "--send", "x"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(
            predicate::str::contains("Sec-WebSocket-Accept is missing or does not match")
                .and(predicate::str::contains("wsc: server response:"))
                .and(predicate::str::contains(
                    "HTTP/1.1 101 Switching Protocols\n",
                ))
                .and(predicate::str::contains("\nX-Custom: from-the-server")),
        );
    let out = wsc()
        .args([&url, "--json", "--send", "x"])
        .assert()
        .code(5)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let error = events
        .iter()
        .find(|e| e["kind"] == "error")
        .unwrap_or_else(|| panic!("an error event: {events:?}"));
    assert_eq!(error["code"], 8, "{error}");
    assert_eq!(error["status"], 101, "{error}");
    let response = error["response"].as_str().expect("the response head");
    assert!(
        response.starts_with("HTTP/1.1 101") && response.contains("X-Custom: from-the-server"),
        "{response}"
    );
}

#[test]
fn exit_3_when_the_connection_is_refused() {
    let (_held, port) = refusing_port();
    wsc()
        .args([&format!("ws://127.0.0.1:{port}/"), "--send", "x"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("refused"));
}

#[test]
fn exit_3_after_the_reconnect_attempts() {
    let (_held, port) = refusing_port();
    let out = wsc()
        .args([
            &format!("ws://127.0.0.1:{port}/"),
            "--reconnect",
            "0.05",
            "--max-attempts",
            "2",
            "--json",
        ])
        .write_stdin("")
        .assert()
        .code(3)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let k = kinds(&events);
    assert_eq!(k.iter().filter(|k| **k == "reconnect").count(), 2, "{k:?}");
    assert_eq!(k.iter().filter(|k| **k == "error").count(), 3, "{k:?}");
    assert_eq!(events[0]["exit"], 3);
    assert_eq!(events[0]["error_kind"], "connect");
}

#[test]
fn exit_7_when_the_peer_closes_with_another_code() {
    let (_peer, base) = py_peer();
    wsc()
        .args([
            &format!("{base}/close?code=4001&reason=bye"),
            "--count",
            "1",
        ])
        .write_stdin("")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("closed by peer: 4001 bye"));
    // 1000 from the peer is a normal end.
    wsc()
        .args([&format!("{base}/close?code=1000"), "--count", "1"])
        .write_stdin("")
        .assert()
        .code(0);
}

#[test]
fn exit_8_when_the_connection_is_lost() {
    let (_peer, base) = py_peer();
    wsc()
        .args([&format!("{base}/drop-mid-message"), "--count", "1"])
        .write_stdin("")
        .assert()
        .code(8);
    // No pong within --ping-timeout.
    wsc()
        .args([
            &format!("{base}/silent"),
            "--ping-interval",
            "0.2",
            "--ping-timeout",
            "0.3",
            "--count",
            "1",
        ])
        .write_stdin("")
        .assert()
        .code(8)
        .stderr(predicate::str::contains("no pong"));
}

#[test]
fn exit_9_on_timeout() {
    let (_peer, base) = py_peer();
    wsc()
        .args([
            &format!("{base}/silent"),
            "--timeout",
            "0.3",
            "--count",
            "1",
        ])
        .write_stdin("")
        .assert()
        .code(9);
}

#[test]
fn exit_2_on_usage_errors_and_help_documents_exit_codes() {
    wsc().assert().code(2);
    wsc().args(["ws://x", "--count", "many"]).assert().code(2);
    wsc()
        .args(["ftp://example.test/", "--send", "x"])
        .assert()
        .code(2);
    wsc()
        .args(["ws://127.0.0.1:1/", "--proxy", "gopher://p:1"])
        .assert()
        .code(2);
    wsc().arg("--help").assert().code(0).stdout(
        predicate::str::contains("Exit codes:")
            .and(predicate::str::contains("7    closed by the peer")),
    );
}

// ---------------------------------------------------------------- heartbeat, echo

#[test]
fn ping_interval_shows_pongs_with_rtt() {
    let (_srv, url) = serve(&["--echo"]);
    let out = wsc()
        .args([
            &url,
            "--ping-interval",
            "0.1",
            "--json",
            "--timeout",
            "0.6",
            "--count",
            "1",
        ])
        .write_stdin("")
        .assert()
        .code(9)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let pong = events
        .iter()
        .find(|e| e["kind"] == "pong")
        .expect("a pong event");
    assert!(pong["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{pong}");
    assert_eq!(events.last().expect("events")["kind"], "close");
}

#[test]
fn echo_mode_sends_messages_back() {
    let probe =
        Proc::spawn(StdCommand::new(python()).arg(root().join("wsc/tests/peers/py_echo_probe.py")));
    let port: u16 = probe.port();
    wsc()
        .args([&format!("ws://127.0.0.1:{port}/"), "--echo"])
        .write_stdin("")
        .assert()
        .code(0)
        .stdout("probe-1\n[binary 7 bytes] 70726f62652d32\n");
    let verdict = probe.wait_line("verdict", |l| {
        (l.starts_with("ECHOED") || l.starts_with("BAD")).then(|| l.to_owned())
    });
    assert_eq!(verdict, "ECHOED probe-1 probe-2");
}

// ---------------------------------------------------------------- demo

#[test]
fn demo_runs_the_seed_scenario() {
    let started = std::time::Instant::now();
    let out = wsc()
        .arg("demo")
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8_lossy(&out);
    let mut at = 0;
    for want in [
        "tcp connected",
        "HTTP/1.1 101 Switching Protocols",
        "recv: hello",
        "pong: rtt",
        "connection closed and try to reconnect",
        "tcp connected",
        "HTTP/1.1 101 Switching Protocols",
        "recv: hello",
        "connection closed",
    ] {
        match text[at..].find(want) {
            Some(i) => at += i + want.len(),
            None => panic!("{want:?} missing (in order) from the demo's output:\n{text}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the demo took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------- serve

fn node_ok() -> bool {
    let ok = StdCommand::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && root().join("peers/node_modules/ws/package.json").exists(),
        "node and peers/node_modules/ws are needed: run scripts/install-peers.sh"
    );
    ok
}

#[test]
fn serve_interoperates_with_python_websockets() {
    let (_srv, url) = serve(&["--echo"]);
    Command::new(python())
        .arg(root().join("wsc/tests/peers/py_client.py"))
        .args(["echo", &url])
        .timeout(LIMIT)
        .assert()
        .code(0)
        .stdout("OK\n");
}

#[test]
fn serve_interoperates_with_node_ws() {
    assert!(node_ok());
    let (_srv, url) = serve(&["--echo"]);
    Command::new("node")
        .arg(root().join("wsc/tests/peers/node_client.js"))
        .arg(&url)
        .timeout(LIMIT)
        .assert()
        .code(0)
        .stdout("OK\n");
}

#[test]
fn serve_compresses_with_python_and_node() {
    assert!(node_ok());
    let (_srv, url) = serve(&["--echo", "--compress"]);
    Command::new(python())
        .arg(root().join("wsc/tests/peers/py_client.py"))
        .args(["echo", &url, "--compress"])
        .timeout(LIMIT)
        .assert()
        .code(0)
        .stdout("OK\n");
    Command::new("node")
        .arg(root().join("wsc/tests/peers/node_client.js"))
        .args([&url, "--compress"])
        .timeout(LIMIT)
        .assert()
        .code(0)
        .stdout("OK\n");
}

#[test]
fn serve_broadcasts_to_every_client() {
    let (_srv, url) = serve(&["--broadcast"]);
    Command::new(python())
        .arg(root().join("wsc/tests/peers/py_client.py"))
        .args(["broadcast", &url])
        .timeout(LIMIT)
        .assert()
        .code(0)
        .stdout("OK\n");
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_echo_against_wsc_serve() {
    let (_srv, url) = serve(&["--echo"]);
    let out = wsc()
        .args([
            "bench",
            &url,
            "--conns",
            "10",
            "--duration",
            "2",
            "--size",
            "64",
            "--json",
        ])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("/10 | out"))
        .get_output()
        .stdout
        .clone();
    let s: Value = serde_json::from_slice(&out).expect("one JSON summary");
    assert_eq!(s["connected"], 10, "{s}");
    assert_eq!(s["errors"], 0, "{s}");
    assert!(s["messages"].as_u64().is_some_and(|n| n > 0), "{s}");
    assert_eq!(
        s["sent"]["bytes"].as_u64(),
        s["sent"]["messages"].as_u64().map(|n| n * 64)
    );
    let lat = &s["latency_ms"];
    for k in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(lat[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {s}");
    }
    assert!(
        lat["p50"].as_f64() <= lat["p99"].as_f64() && lat["p99"].as_f64() <= lat["max"].as_f64()
    );
}

#[test]
fn bench_paced_send_mode_and_text_report() {
    let (_srv, url) = serve(&["--echo"]);
    wsc()
        .args([
            "bench", &url, "-c", "3", "-r", "50", "-d", "1", "-m", "send", "-q",
        ])
        .assert()
        .code(0)
        .stdout(
            predicate::str::contains("3 opened, 0 failed")
                .and(predicate::str::contains("errors: none")),
        );
}

// ---------------------------------------------------------------- record, replay

#[test]
fn record_and_replay_round_trip() {
    let (_srv, url) = serve(&["--echo"]);
    let dir = std::env::temp_dir().join(format!("wsc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("session.ndjson");
    wsc()
        .args([&url, "--record", file.to_str().expect("utf-8 path")])
        .write_stdin("first\nsecond\nthird\n")
        .assert()
        .code(0)
        .stdout("first\nsecond\nthird\n");
    let recorded = json_lines(&std::fs::read(&file).expect("recording"));
    assert_eq!(recorded[0]["wsc_record"], 1);
    let dirs: Vec<&str> = recorded.iter().filter_map(|l| l["dir"].as_str()).collect();
    assert_eq!(
        dirs.iter().filter(|d| **d == "out").count(),
        3,
        "{recorded:?}"
    );
    assert_eq!(
        dirs.iter().filter(|d| **d == "in").count(),
        3,
        "{recorded:?}"
    );
    assert!(
        recorded
            .iter()
            .all(|l| l.get("wsc_record").is_some() || l["t"].is_f64())
    );

    for extra in [None, Some("--as-fast-as-possible")] {
        let mut cmd = wsc();
        cmd.args(["replay", file.to_str().expect("utf-8 path"), &url, "--json"]);
        if let Some(e) = extra {
            cmd.arg(e);
        }
        let out = cmd.assert().code(0).get_output().stdout.clone();
        let texts: Vec<String> = json_lines(&out)
            .iter()
            .filter(|e| e["kind"] == "message")
            .map(|e| e["text"].as_str().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(texts, ["first", "second", "third"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------- proxy, compression

/// Waits (bounded) until something accepts on 127.0.0.1:`port`.
fn wait_accepting(port: u16, what: &str) {
    let deadline = std::time::Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn proxy_flag_goes_through_socks5() {
    let bin = ["/usr/bin/microsocks", "/usr/local/bin/microsocks"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("microsocks is needed: run scripts/install-proxies.sh");
    let (_srv, url) = serve(&["--echo"]);
    let port = free_port();
    let _proxy =
        Proc::spawn(StdCommand::new(bin).args(["-i", "127.0.0.1", "-p", &port.to_string()]));
    wait_accepting(port, "microsocks");
    let out = wsc()
        .args([
            &url,
            "--proxy",
            &format!("socks5://127.0.0.1:{port}"),
            "--json",
            "--send",
            "via proxy",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    assert_eq!(
        events[0]["remote"],
        format!("127.0.0.1:{port}"),
        "connected to the proxy"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "message" && e["text"] == "via proxy")
    );
    // A proxy that is not there is a connect failure.
    let (_held, refusing) = refusing_port();
    wsc()
        .args([
            &url,
            "--proxy",
            &format!("socks5://127.0.0.1:{refusing}"),
            "--send",
            "x",
        ])
        .assert()
        .code(3);
}

#[test]
fn compress_flag_negotiates_permessage_deflate() {
    let p = Proc::spawn(
        StdCommand::new(python())
            .arg(root().join("peers/py_server.py"))
            .args(["--port", "0", "--compression"]),
    );
    let port: u16 = p.port();
    let big = "compressible ".repeat(1000);
    let out = wsc()
        .args([
            &format!("ws://127.0.0.1:{port}/echo"),
            "--compress",
            "--json",
            "--send",
            &big,
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let ext = events[1]["headers"]["sec-websocket-extensions"]
        .as_str()
        .unwrap_or_default();
    assert!(ext.starts_with("permessage-deflate"), "{}", events[1]);
    assert_eq!(events[2]["text"], big.as_str());
}

// ---------------------------------------------------------------- TLS, limits

/// A throw-away CA and a server certificate for 127.0.0.1, as PEM files:
/// `(dir, ca, cert, key)`.
fn test_pki() -> (PathBuf, PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let dir = std::env::temp_dir().join(format!("wsc-pki-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "wsc test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("leaf params");
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).expect("sign leaf");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("write");
    std::fs::write(&paths.1, cert.pem()).expect("write");
    std::fs::write(&paths.2, key.serialize_pem()).expect("write");
    (dir, paths.0, paths.1, paths.2)
}

#[test]
fn tls_exit_4_unless_the_ca_is_trusted_or_insecure() {
    let (dir, ca, cert, key) = test_pki();
    let p = Proc::spawn(
        StdCommand::new(python())
            .arg(root().join("peers/py_server.py"))
            .args(["--port", "0", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key),
    );
    let port: u16 = p.port();
    let url = format!("wss://127.0.0.1:{port}/echo");
    wsc()
        .args([&url, "--send", "x"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("TLS"));
    wsc()
        .args([&url, "--send", "trusted", "--cacert"])
        .arg(&ca)
        .assert()
        .code(0)
        .stdout("trusted\n");
    wsc()
        .args([&url, "--send", "insecure", "--insecure"])
        .assert()
        .code(0)
        .stdout("insecure\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn exit_6_when_a_message_exceeds_max_message_size() {
    let (_peer, base) = py_peer();
    let out = wsc()
        .args([
            &format!("{base}/send?size=100&count=1&type=text"),
            "--max-message-size",
            "10",
            "--count",
            "1",
            "--json",
        ])
        .write_stdin("")
        .assert()
        .code(6)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    let err = events
        .iter()
        .find(|e| e["kind"] == "error")
        .expect("an error event");
    assert_eq!(err["error_kind"], "protocol");
    assert!(!events.iter().any(|e| e["kind"] == "message"));
}

/// `--bind` connects from the given local address, and `--max-redirects`
/// follows a redirect to the real server (`wsc serve`).
#[test]
fn bind_address_and_redirects() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen_tx, seen_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        seen_tx.send(peer.ip()).unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
    });
    wsc()
        .args([
            "--bind",
            "127.0.0.2",
            "--send",
            "x",
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .timeout(Duration::from_secs(20))
        .assert()
        .code(5);
    assert_eq!(
        seen_rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .to_string(),
        "127.0.0.2"
    );

    // A redirecting server in front of a real echo server.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    drop(echo);
    let mut serve = StdCommand::new(env!("CARGO_BIN_EXE_wsc"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{echo_port}"),
            "--echo",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(serve.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("listening"), "{first}");
    let redirector = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rport = redirector.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = redirector.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
        let reply = format!(
            "HTTP/1.1 307 Temporary Redirect\r\nLocation: ws://127.0.0.1:{echo_port}/\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = s.write_all(reply.as_bytes());
    });
    wsc()
        .args([
            "--max-redirects",
            "2",
            "--send",
            "via redirect",
            &format!("ws://127.0.0.1:{rport}/"),
        ])
        .timeout(Duration::from_secs(20))
        .assert()
        .success()
        .stdout(predicate::str::contains("via redirect"));
    let _ = serve.kill();
    let _ = serve.wait();
}

/// A fresh directory for Unix socket files (short: a socket path has room
/// for about 100 bytes), removed when dropped.
#[cfg(unix)]
struct SockDir(PathBuf);

#[cfg(unix)]
impl SockDir {
    fn new(tag: &str) -> SockDir {
        let dir = std::env::temp_dir().join(format!("wsc-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("socket dir");
        SockDir(dir)
    }
}

#[cfg(unix)]
impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
#[test]
fn unix_socket_flag_talks_to_wsc_serve_and_python_websockets() {
    let dir = SockDir::new("unix");
    let sock = dir.0.join("serve.sock");
    let sock_arg = sock.to_str().expect("utf-8 path");
    let start_serve = || {
        let p = Proc::spawn(
            StdCommand::new(env!("CARGO_BIN_EXE_wsc"))
                .args(["serve", "--unix", sock_arg, "--echo"]),
        );
        let shown = p.wait_line("listening", |l| {
            l.strip_prefix("listening on ")
                .and_then(|r| r.split_whitespace().next())
                .map(str::to_owned)
        });
        assert_eq!(shown, format!("unix:{sock_arg}"));
        p
    };
    let srv = start_serve();
    wsc()
        .args(["ws://localhost/chat", "--unix-socket", sock_arg])
        .args(["--send", "héllo", "-v"])
        .assert()
        .code(0)
        .stdout("héllo\n")
        .stderr(predicate::str::contains(format!(
            "unix socket connected ({sock_arg})"
        )));
    // Killed, the server leaves its socket file behind; a new one takes
    // the stale file over.
    drop(srv);
    assert!(sock.exists(), "a killed server leaves its socket file");
    let _srv = start_serve();
    wsc()
        .args([
            "ws://localhost/",
            "--unix-socket",
            sock_arg,
            "--send",
            "again",
        ])
        .assert()
        .code(0)
        .stdout("again\n");

    // Another implementation listening on a path.
    let py_sock = dir.0.join("py.sock");
    let py = Proc::spawn(
        StdCommand::new(python())
            .arg(root().join("peers/py_server.py"))
            .arg("--unix")
            .arg(&py_sock),
    );
    py.port();
    let out = wsc()
        .args(["ws://app.local:9000/headers", "--unix-socket"])
        .arg(&py_sock)
        .args(["--send", "x", "--json", "-H", "X-Via: unix"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    assert_eq!(
        events[0]["remote"],
        format!("unix:{}", py_sock.display()),
        "{events:?}"
    );
    let seen: Value = events
        .iter()
        .find(|e| e["kind"] == "message")
        .and_then(|e| e["text"].as_str())
        .and_then(|t| serde_json::from_str(t).ok())
        .expect("the /headers message");
    assert_eq!(seen["host"], "app.local:9000", "{seen}");
    assert_eq!(seen["x-via"], "unix", "{seen}");

    // Nothing there: exit 3 (connect failure), naming the path.
    wsc()
        .args(["ws://localhost/", "--unix-socket"])
        .arg(dir.0.join("none.sock"))
        .args(["--send", "x"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("none.sock"));
}

/// A TCP echo server on a thread (a backend for `wsc serve --to`); its
/// port.
fn tcp_echo_backend() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { break };
            std::thread::spawn(move || {
                let mut back = conn.try_clone().expect("clone");
                // Echo until the client's end of stream, then end ours.
                let _ = std::io::copy(&mut conn, &mut back);
                let _ = back.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// `wsc forward --listen 127.0.0.1:0 URL` and its local port.
fn forward(url: &str) -> (Proc, u16) {
    let p = Proc::spawn(StdCommand::new(env!("CARGO_BIN_EXE_wsc")).args([
        "forward",
        "--listen",
        "127.0.0.1:0",
        url,
    ]));
    let port = p.wait_line("listening", |l| {
        l.strip_prefix("listening on 127.0.0.1:")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok())
    });
    (p, port)
}

/// Sends `n` bytes to `port` over TCP, shuts the sending side (a
/// half-close) and reads until the end of stream: what came back.
fn send_then_half_close(port: u16, n: usize, seed: u8) -> (Vec<u8>, Vec<u8>) {
    use std::io::{Read, Write};
    let sent: Vec<u8> = (0..n)
        .map(|i| (i.wrapping_mul(31) as u8) ^ seed ^ (i >> 11) as u8)
        .collect();
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    conn.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut reader = conn.try_clone().expect("clone");
    let got = std::thread::spawn(move || {
        let mut got = Vec::new();
        reader
            .read_to_end(&mut got)
            .expect("read to the end of stream");
        got
    });
    conn.write_all(&sent).expect("write");
    conn.shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    (sent, got.join().expect("reader"))
}

#[test]
fn forward_and_serve_to_tunnel_tcp_through_websocket_with_half_close() {
    let backend = tcp_echo_backend();
    let (_srv, url) = serve(&["--to", &format!("127.0.0.1:{backend}")]);
    let (_fwd, port) = forward(&url);
    // Two tunnels at once, each its own WebSocket connection; every byte
    // back after the client's half-close (the end of stream crosses the
    // WebSocket as an empty message and reaches the backend).
    let a = std::thread::spawn(move || send_then_half_close(port, (2 << 20) + 7, 1));
    let b = std::thread::spawn(move || send_then_half_close(port, 100_000, 2));
    for t in [a, b] {
        let (sent, got) = t.join().expect("client");
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the bytes came back changed");
    }
}

#[test]
fn forward_through_python_and_node_echo_servers() {
    let (_py, base) = py_peer();
    let (_fwd, port) = forward(&format!("{base}/echo"));
    let (sent, got) = send_then_half_close(port, (1 << 20) + 3, 3);
    assert!(got == sent, "python: {} of {} bytes", got.len(), sent.len());
    if node_ok() {
        let node = Proc::spawn(
            StdCommand::new("node")
                .arg(root().join("peers/node_server.js"))
                .args(["--port", "0"]),
        );
        let node_port: u16 = node.port();
        let (_fwd, port) = forward(&format!("ws://127.0.0.1:{node_port}/echo"));
        let (sent, got) = send_then_half_close(port, (1 << 20) + 3, 4);
        assert!(got == sent, "node: {} of {} bytes", got.len(), sent.len());
    }
}

#[test]
fn serve_to_an_unreachable_backend_closes_with_1014() {
    let (_held, dead) = refusing_port();
    let (_srv, url) = serve(&["--to", &format!("127.0.0.1:{dead}")]);
    wsc()
        .args([&url, "--send", "x", "--json"])
        .assert()
        .code(7)
        .stdout(predicate::str::contains(r#""code":1014"#));
}

/// `peers/h2_server.js` (Node's HTTP/2 server with RFC 8441, `ws` framing)
/// and its `ws://` base URL.
fn h2_peer() -> (Proc, String) {
    assert!(node_ok());
    let p = Proc::spawn(
        StdCommand::new("node")
            .arg(root().join("peers/h2_server.js"))
            .args(["--port", "0"]),
    );
    let port: u16 = p.port();
    (p, format!("ws://127.0.0.1:{port}"))
}

#[test]
fn http2_flag_for_the_client_and_one_shared_connection_for_bench() {
    let (_peer, base) = h2_peer();
    let out = wsc()
        .args([
            &format!("{base}/echo"),
            "--http2",
            "--send",
            "héllo",
            "--json",
        ])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let events = json_lines(&out);
    assert_eq!(events[0]["via"], "http2", "{events:?}");
    assert_eq!(events[1]["status"], 200, "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "message" && e["text"] == "héllo"),
        "{events:?}"
    );
    // 300 WebSockets of one bench, all on one HTTP/2 connection.
    let report = wsc()
        .args([
            "bench",
            &format!("{base}/echo"),
            "--http2",
            "--conns",
            "300",
        ])
        .args(["--duration", "1s", "--mode", "echo", "--json", "-q"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let report = json_lines(&report);
    let last = report.last().expect("a summary");
    assert_eq!(last["errors"], 0, "{last}");
    let out = wsc()
        .args([&format!("{base}/headers"), "--http2", "--send", "x"])
        .assert()
        .code(0)
        .get_output()
        .stdout
        .clone();
    let seen: Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap()).unwrap();
    // The first wsc's connection, the bench's one, and this one.
    assert_eq!(seen["sessions"], 3, "{seen}");
}
