//! What the client prints: messages (text escaped on a terminal, binary as
//! hex or base64), notices on stderr, or one JSON object per event.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value, json};
use wsclient::Message;

use crate::cli::BinaryFormat;

/// Standard base64.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard base64.
pub fn unb64(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(s)
}

/// Lower-case hex.
pub fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Text made safe for a terminal: C0 controls (but tab and newline), DEL
/// and C1 controls are shown as escapes, so a message cannot move the
/// cursor, change colours or retitle the window.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| (c.is_control() && c != '\n' && c != '\t') || c == '\u{2028}' || c == '\u{2029}';
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// The current time as RFC 3339 UTC with microseconds.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_micros())
}

/// Formats a Unix time as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ`.
pub fn rfc3339(secs: u64, micros: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Prints events, as text or JSON lines.
#[derive(Debug)]
pub struct Printer {
    json: bool,
    verbose: bool,
    tty: bool,
    binary: BinaryFormat,
    start: Instant,
}

impl Printer {
    /// A printer for stdout as it is (terminal or not).
    pub fn new(json: bool, verbose: bool, binary: BinaryFormat) -> Self {
        Printer {
            json,
            verbose,
            tty: std::io::stdout().is_terminal(),
            binary,
            start: Instant::now(),
        }
    }

    /// JSON lines mode.
    pub fn json(&self) -> bool {
        self.json
    }

    fn write_stdout(bytes: &[u8]) {
        let mut out = std::io::stdout().lock();
        // A closed stdout (`| head -1`) is not worth failing over.
        let _ = out.write_all(bytes);
        let _ = out.flush();
    }

    /// Writes one JSON event: `time`, `elapsed`, `kind`, then `fields`.
    pub fn event(&self, kind: &str, fields: Value) {
        let mut obj = Map::new();
        obj.insert("time".into(), Value::String(now_rfc3339()));
        obj.insert(
            "elapsed".into(),
            json!((self.start.elapsed().as_secs_f64() * 1e6).round() / 1e6),
        );
        obj.insert("kind".into(), Value::String(kind.into()));
        if let Value::Object(m) = fields {
            obj.extend(m);
        }
        let mut line = Value::Object(obj).to_string();
        line.push('\n');
        Self::write_stdout(line.as_bytes());
    }

    /// A notice for people: on stderr in text mode (always, or only with
    /// -v when `verbose_only`); nothing in JSON mode (the caller emits an
    /// event instead).
    pub fn notice(&self, verbose_only: bool, text: &str) {
        if self.json || (verbose_only && !self.verbose) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}", escape_controls(text));
    }

    /// A received message.
    pub fn message(&self, msg: &Message) {
        match msg {
            Message::Text(t) => {
                if self.json {
                    self.event(
                        "message",
                        json!({"type": "text", "text": t.as_str(), "len": t.len()}),
                    );
                } else {
                    let shown = if self.tty {
                        escape_controls(t)
                    } else {
                        Cow::Borrowed(t.as_str())
                    };
                    let mut line = String::with_capacity(shown.len() + 1);
                    line.push_str(&shown);
                    line.push('\n');
                    Self::write_stdout(line.as_bytes());
                }
            }
            Message::Binary(b) => {
                if self.json {
                    self.event(
                        "message",
                        json!({"type": "binary", "data": b64(b), "len": b.len()}),
                    );
                    return;
                }
                match self.binary {
                    BinaryFormat::Raw if !self.tty => Self::write_stdout(b),
                    BinaryFormat::Base64 => {
                        Self::write_stdout(
                            format!("[binary {} bytes, base64] {}\n", b.len(), b64(b)).as_bytes(),
                        );
                    }
                    BinaryFormat::Hex | BinaryFormat::Raw => {
                        Self::write_stdout(
                            format!("[binary {} bytes] {}\n", b.len(), hex(b)).as_bytes(),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_only() {
        assert_eq!(escape_controls("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(escape_controls("a\u{1b}[31mred\r"), "a\\e[31mred\\r");
        assert_eq!(escape_controls("\u{7}\u{7f}\u{9b}"), "\\x07\\x7f\\x9b");
        assert_eq!(escape_controls("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn formats_time_and_bytes() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(1_700_000_000, 123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(b64(b"hello"), "aGVsbG8=");
        assert_eq!(unb64("aGVsbG8=").unwrap(), b"hello");
    }
}
