//! The `native-roots` feature at run time: the platform's certificate store
//! really is trusted. `rustls-native-certs` reads the file named by
//! `SSL_CERT_FILE` (on Linux and other Unix systems) instead of the system
//! bundle, so a CA made at run time becomes "the platform's" store for a
//! child process, and a real TLS peer (Python `websockets`) serves a
//! certificate from it:
//!
//! - with `SSL_CERT_FILE` = that CA and NO CA file, `wss://` connects and
//!   echoes a message;
//! - with `SSL_CERT_FILE` = an unrelated CA, the connection fails with the
//!   typed unknown-issuer error.
//!
//! Environment variables are per process (and changing them in a threaded
//! test process is unsound), so each case runs in a child process: this
//! test binary again, running only [`native_child`].
//!
//! Run with `cargo test -p wsclient --features native-roots --test
//! native_roots` (the Mozilla roots stay on too; neither holds the run-time
//! CA) or with `--no-default-features --features native-roots` (platform
//! roots only).
#![cfg(feature = "native-roots")]

#[path = "support/client.rs"]
mod client;
#[path = "support/peers.rs"]
mod peers;
#[path = "support/pki.rs"]
mod pki;

use std::path::Path;
use std::process::Command;

use client::{connect, next_text};
use peers::{Peer, PeerKind, PeerOptions};
use pki::Pki;
use wsclient::transport::tls::TlsError;
use wsclient::{ConnectOptions, Error, Message, Phase};

/// The child half of [`platform_store_is_trusted`]: does nothing unless
/// run by it. Connects to `WSCLIENT_NATIVE_CHILD_URL` without any CA file
/// and checks the outcome against `WSCLIENT_NATIVE_CHILD_EXPECT` (`echo`
/// or `unknown-issuer`).
#[tokio::test]
async fn native_child() {
    let Ok(url) = std::env::var("WSCLIENT_NATIVE_CHILD_URL") else {
        return;
    };
    let expect = std::env::var("WSCLIENT_NATIVE_CHILD_EXPECT").unwrap();
    let result = connect(&ConnectOptions::new(&url)).await;
    match (result, expect.as_str()) {
        (Ok((mut ws, response)), "echo") => {
            assert_eq!(response.status(), 101);
            ws.send(Message::text("hello platform roots"))
                .await
                .unwrap();
            assert_eq!(next_text(&mut ws).await, "hello platform roots");
            ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        }
        (Err(e), "unknown-issuer") => {
            assert!(
                matches!(e, Error::Tls(TlsError::UnknownIssuer)),
                "{url}: expected the unknown-issuer error, got {e:?}"
            );
            assert_eq!((e.code(), e.phase()), (5, Some(Phase::Tls)));
        }
        (Ok(_), _) => panic!("{url}: connected, expected {expect}"),
        (Err(e), _) => panic!("{url}: expected {expect}, got {e} ({e:?})"),
    }
}

/// Runs [`native_child`] in a child process with `SSL_CERT_FILE` = `store`
/// (and no `SSL_CERT_DIR`, which would be read too).
fn run_child(store: &Path, url: &str, expect: &str) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["native_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("SSL_CERT_FILE", store)
        .env_remove("SSL_CERT_DIR")
        .env("WSCLIENT_NATIVE_CHILD_URL", url)
        .env("WSCLIENT_NATIVE_CHILD_EXPECT", expect)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child with SSL_CERT_FILE={} to {url} (expecting {expect}) failed:\n{text}",
        store.display()
    );
}

#[test]
fn platform_store_is_trusted() {
    let pki = Pki::new("native-roots");
    let cert = pki.server("server", &["localhost"]);
    let unrelated = Pki::new("native-roots-unrelated");
    let peer = Peer::start(
        PeerKind::Python,
        &PeerOptions {
            tls: Some(cert.pair()),
            ..PeerOptions::default()
        },
    );
    let url = peer.url_with_host("localhost", "/echo");

    // (a) The run-time CA is the platform store: trusted without a CA file.
    run_child(&pki.ca, &url, "echo");
    // (b) An unrelated CA as the platform store: the server's issuer is
    // unknown (and neither the Mozilla roots nor anything else trusts it).
    run_child(&unrelated.ca, &url, "unknown-issuer");
}
