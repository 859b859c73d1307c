//! Exit codes: what happened, for scripts. Documented in `wsc --help`.

use wsclient::{CloseCode, Error, Phase};

/// Success: the session ended normally (closed with 1000 or an empty close
/// frame, --count/--send satisfied, stdin ended).
pub const OK: u8 = 0;
/// Any other failure (a file that cannot be written, a port that cannot be
/// bound, an internal error).
pub const FAILURE: u8 = 1;
/// Usage: invalid flags or URL.
pub const USAGE: u8 = 2;
/// DNS, TCP or proxy failure (including their timeouts).
pub const CONNECT: u8 = 3;
/// TLS failure (including its timeout).
pub const TLS: u8 = 4;
/// The WebSocket handshake was refused (non-101 status) or invalid, or
/// timed out.
pub const HANDSHAKE: u8 = 5;
/// The server broke the WebSocket protocol.
pub const PROTOCOL: u8 = 6;
/// The server closed the connection with a code other than 1000.
pub const PEER_CLOSED: u8 = 7;
/// The connection was lost without a close frame (1006), an I/O error, or
/// no pong within --ping-timeout.
pub const LOST: u8 = 8;
/// --timeout expired.
pub const TIMEOUT: u8 = 9;
/// Interrupted (Ctrl-C); the connection was closed with 1000 first.
pub const INTERRUPTED: u8 = 130;

/// The `--help` section on exit codes.
pub const HELP: &str = "\
Exit codes:
    0    ok: closed normally (1000, or a close frame without code), --count or
         --send satisfied, or stdin ended
    1    other failure (file, bind, internal error)
    2    usage: invalid flags or URL
    3    connect failure: DNS, TCP, Unix socket or proxy (timeouts included)
    4    TLS failure
    5    handshake refused (non-101 status), invalid or timed out
    6    protocol error from the peer
    7    closed by the peer with a code other than 1000
    8    connection lost: no close frame (1006), I/O error or ping timeout
    9    --timeout expired
    130  interrupted (Ctrl-C)";

/// The exit code for an error that ended the session.
pub fn for_error(e: &Error) -> u8 {
    match e {
        Error::Url(_) => USAGE,
        Error::Dns { .. } | Error::Connect { .. } | Error::ConnectUnix { .. } | Error::Proxy(_) => {
            CONNECT
        }
        Error::Tls(_) => TLS,
        Error::Handshake(_) => HANDSHAKE,
        Error::Protocol(_) => PROTOCOL,
        Error::Timeout { phase, .. } => match phase {
            Phase::Dns | Phase::Tcp | Phase::Unix | Phase::Proxy => CONNECT,
            Phase::Tls => TLS,
            Phase::Upgrade => HANDSHAKE,
            Phase::Open | Phase::Close => LOST,
        },
        Error::Io(_) | Error::AbnormalClosure | Error::PongTimeout { .. } => LOST,
        _ => FAILURE,
    }
}

/// The exit code for a connection the peer closed with `code`.
pub fn for_close(code: CloseCode) -> u8 {
    match code.0 {
        1000 | 1005 => OK,
        1006 => LOST,
        _ => PEER_CLOSED,
    }
}

/// A short, stable name for an error's kind (bench reports, JSON).
pub fn kind(e: &Error) -> &'static str {
    match e.code() {
        1 => "url",
        2 => "dns",
        3 => "connect",
        4 => "timeout",
        5 => "tls",
        6 => "proxy",
        7 => "handshake_refused",
        8 => "handshake_invalid",
        9 => "protocol",
        10 => "send",
        11 => "io",
        12 => "abnormal_close",
        13 => "closed",
        14 => "pong_timeout",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(for_close(CloseCode::NORMAL), OK);
        assert_eq!(for_close(CloseCode::NO_STATUS), OK);
        assert_eq!(for_close(CloseCode::ABNORMAL), LOST);
        assert_eq!(for_close(CloseCode::GOING_AWAY), PEER_CLOSED);
        assert_eq!(for_close(CloseCode(4000)), PEER_CLOSED);
    }

    #[test]
    fn errors() {
        assert_eq!(for_error(&Error::AbnormalClosure), LOST);
        let t = Error::Timeout {
            phase: Phase::Tcp,
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(for_error(&t), CONNECT);
        assert_eq!(kind(&t), "timeout");
    }
}
