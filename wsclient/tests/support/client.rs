//! Bounded client steps shared by the TLS, proxy and handshake tests
//! (included by `#[path]`): a hang fails the test instead of blocking it.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use wsclient::{ConnectOptions, Error, MaybeTlsStream, WebSocket};

/// Bound on each connection attempt and each awaited message.
pub const LIMIT: Duration = Duration::from_secs(15);

/// Connects with `opts`, failing the test if it takes longer than [`LIMIT`].
pub async fn connect(
    opts: &ConnectOptions,
) -> Result<(WebSocket<MaybeTlsStream>, wsclient::Response), Error> {
    tokio::time::timeout(LIMIT, opts.connect())
        .await
        .expect("connect did not finish in time")
}

/// The next message, which must be text, within [`LIMIT`].
pub async fn next_text(ws: &mut WebSocket<MaybeTlsStream>) -> String {
    let msg = tokio::time::timeout(LIMIT, ws.next())
        .await
        .expect("no message in time")
        .expect("stream ended")
        .expect("read error");
    msg.as_text().expect("a text message").to_owned()
}
