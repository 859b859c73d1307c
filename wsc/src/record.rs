//! `--record FILE`: the session as timestamped NDJSON, and reading it back
//! for `wsc replay`.
//!
//! The first line is a header, `{"wsc_record":1,"url":...,"time":...}`;
//! each following line is one event with `t`, seconds since the recording
//! started:
//!
//! - `{"t":0.01,"event":"open","status":101}` — the handshake completed;
//! - `{"t":0.02,"dir":"out","type":"text","text":"hello"}` — a message sent
//!   (`"type":"binary","data":"<base64>"` for binary);
//! - `{"t":0.03,"dir":"in","type":"text","text":"hello"}` — one received;
//! - `{"t":1.00,"event":"close","code":1000}` — the connection ended.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wsclient::Message;

use crate::output::{b64, now_rfc3339, unb64};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Sent by us.
    Out,
    /// Received.
    In,
}

/// Writes a session recording, one flushed line per event.
#[derive(Debug)]
pub struct Recorder {
    out: Mutex<BufWriter<File>>,
    start: Instant,
}

impl Recorder {
    /// Creates `path` and writes the header.
    pub fn create(path: &Path, url: &str) -> std::io::Result<Recorder> {
        let mut out = BufWriter::new(File::create(path)?);
        let header = json!({"wsc_record": 1, "url": url, "time": now_rfc3339()});
        writeln!(out, "{header}")?;
        out.flush()?;
        Ok(Recorder {
            out: Mutex::new(out),
            start: Instant::now(),
        })
    }

    fn t(&self) -> f64 {
        (self.start.elapsed().as_secs_f64() * 1e6).round() / 1e6
    }

    fn line(&self, mut v: Value) {
        if let Value::Object(m) = &mut v {
            m.insert("t".into(), json!(self.t()));
        }
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A recording that cannot be written is reported once at the end
        // by the OS's own error; the session goes on.
        let _ = writeln!(out, "{v}");
        let _ = out.flush();
    }

    /// Records a text or binary message (others are ignored).
    pub fn message(&self, dir: Dir, msg: &Message) {
        let dir = match dir {
            Dir::Out => "out",
            Dir::In => "in",
        };
        match msg {
            Message::Text(t) => self.line(json!({"dir": dir, "type": "text", "text": t.as_str()})),
            Message::Binary(b) => self.line(json!({"dir": dir, "type": "binary", "data": b64(b)})),
            _ => {}
        }
    }

    /// Records the end of the handshake.
    pub fn open(&self, status: u16) {
        self.line(json!({"event": "open", "status": status}));
    }

    /// Records the end of a connection.
    pub fn close(&self, code: Option<u16>) {
        self.line(json!({"event": "close", "code": code}));
    }
}

/// A recording read back: what to send and when.
#[derive(Debug, Default)]
pub struct Recording {
    /// The messages sent, each with its time since the connection opened.
    pub out: Vec<(Duration, Message)>,
    /// How many messages were received.
    pub received: u64,
}

/// Reads a recording made by [`Recorder`].
pub fn read(path: &Path) -> Result<Recording, String> {
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut rec = Recording::default();
    let mut opened: Option<f64> = None;
    let mut outs: Vec<(f64, Message)> = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{}:{}: {why}", path.display(), i + 1);
        let v: Value = serde_json::from_str(&line).map_err(|e| bad(&e.to_string()))?;
        if v.get("wsc_record").is_some() {
            continue;
        }
        let t = v
            .get("t")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("no \"t\""))?;
        if v.get("event").and_then(Value::as_str) == Some("open") {
            opened.get_or_insert(t);
            continue;
        }
        let Some(dir) = v.get("dir").and_then(Value::as_str) else {
            continue;
        };
        if dir == "in" {
            rec.received += 1;
            continue;
        }
        let msg = match v.get("type").and_then(Value::as_str) {
            Some("text") => Message::text(
                v.get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("text message without \"text\""))?,
            ),
            Some("binary") => {
                let data = v
                    .get("data")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("binary message without \"data\""))?;
                Message::binary(unb64(data).map_err(|e| bad(&e.to_string()))?)
            }
            _ => return Err(bad("unknown message type")),
        };
        outs.push((t, msg));
    }
    let base = opened.unwrap_or(0.0);
    rec.out = outs
        .into_iter()
        .map(|(t, m)| (Duration::from_secs_f64((t - base).max(0.0)), m))
        .collect();
    Ok(rec)
}
