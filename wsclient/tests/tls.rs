//! `wss://` against real TLS WebSocket servers of other implementations
//! (Python `websockets` and Node `ws`, see `peers/README.md`), with a CA and
//! certificates made at run time: verification (unknown issuer, expired,
//! wrong host), CA files, IP-address URLs, mutual TLS, the explicit opt-out,
//! ALPN and SNI, and the TLS timeout.

#[path = "support/peers.rs"]
mod peers;
#[path = "support/pki.rs"]
mod pki;

use std::time::Duration;

use futures_util::StreamExt;
use peers::{Peer, PeerKind, PeerOptions};
use pki::Pki;
use wsclient::handshake::HandshakeError;
use wsclient::transport::tls::TlsError;
use wsclient::{ConnectOptions, Error, MaybeTlsStream, Message, Phase};

/// Bound on each connection attempt, so a hang fails the test.
const LIMIT: Duration = Duration::from_secs(15);

async fn connect(
    opts: ConnectOptions,
) -> Result<(wsclient::WebSocket<MaybeTlsStream>, wsclient::Response), Error> {
    tokio::time::timeout(LIMIT, opts.connect())
        .await
        .expect("connect did not finish in time")
}

fn tls_peer(kind: PeerKind, cert: &pki::Issued) -> Peer {
    Peer::start(
        kind,
        &PeerOptions {
            tls: Some(cert.pair()),
            ..PeerOptions::default()
        },
    )
}

/// Sends a text and a binary message and expects them back.
async fn echo(ws: &mut wsclient::WebSocket<MaybeTlsStream>, tag: &str) {
    ws.send(Message::text(format!("hello {tag}")))
        .await
        .unwrap();
    let got = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.as_text(), Some(format!("hello {tag}").as_str()));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    let got = tokio::time::timeout(LIMIT, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.as_payload(), &[0u8, 1, 2, 255]);
    ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
}

fn tls_err(res: Result<impl Sized, Error>) -> TlsError {
    match res {
        Err(Error::Tls(e)) => e,
        Err(e) => panic!("expected a TLS error, got {e:?}"),
        Ok(_) => panic!("expected a TLS error, the connection succeeded"),
    }
}

#[tokio::test]
async fn wss_echo_with_ca_file() {
    let pki = Pki::new("echo");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    for kind in PeerKind::ALL {
        let peer = tls_peer(kind, &cert);
        let (mut ws, response) =
            connect(ConnectOptions::new(peer.url_with_host("localhost", "/echo")).ca_file(&pki.ca))
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(response.status(), 101, "{kind}");
        let MaybeTlsStream::Tls(tls) = ws.get_ref() else {
            panic!("{kind}: wss:// gave a plain stream");
        };
        // ALPN: both servers select http/1.1 from our offer.
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"http/1.1"[..]),
            "{kind}"
        );
        echo(&mut ws, kind.name()).await;
    }
}

#[tokio::test]
async fn unknown_issuer_without_the_ca() {
    let pki = Pki::new("unknown");
    let cert = pki.server("server", &["localhost"]);
    let peer = tls_peer(PeerKind::Python, &cert);
    let res = connect(ConnectOptions::new(
        peer.url_with_host("localhost", "/echo"),
    ))
    .await;
    let err = res.expect_err("an untrusted certificate must be refused");
    assert!(
        matches!(err, Error::Tls(TlsError::UnknownIssuer)),
        "{err:?}"
    );
    assert_eq!(err.phase(), Some(Phase::Tls));
    assert_eq!(err.code(), 5);
    assert!(err.to_string().contains("unknown issuer"), "{err}");

    // Another CA does not help either.
    let other = Pki::new("other");
    let res =
        connect(ConnectOptions::new(peer.url_with_host("localhost", "/echo")).ca_file(&other.ca))
            .await;
    assert!(matches!(tls_err(res), TlsError::UnknownIssuer));
}

#[tokio::test]
async fn expired_certificate() {
    let pki = Pki::new("expired");
    let cert = pki.expired_server("expired", &["localhost", "127.0.0.1"]);
    for kind in PeerKind::ALL {
        let peer = tls_peer(kind, &cert);
        let res =
            connect(ConnectOptions::new(peer.url_with_host("localhost", "/echo")).ca_file(&pki.ca))
                .await;
        let err = tls_err(res);
        assert!(
            matches!(err, TlsError::CertificateExpired),
            "{kind}: {err:?}"
        );
    }
}

#[tokio::test]
async fn wrong_host_certificate() {
    let pki = Pki::new("wronghost");
    let cert = pki.server("elsewhere", &["example.com", "192.0.2.1"]);
    let peer = tls_peer(PeerKind::Python, &cert);
    for host in ["localhost", "127.0.0.1"] {
        let res =
            connect(ConnectOptions::new(peer.url_with_host(host, "/echo")).ca_file(&pki.ca)).await;
        let err = tls_err(res);
        assert!(
            matches!(err, TlsError::CertificateWrongHost),
            "{host}: {err:?}"
        );
    }
}

#[tokio::test]
async fn ip_address_url_with_an_ip_san() {
    let pki = Pki::new("ip");
    let cert = pki.server("ip", &["127.0.0.1"]);
    for kind in PeerKind::ALL {
        let peer = tls_peer(kind, &cert);
        let url = peer.url("/echo");
        assert!(url.starts_with("wss://127.0.0.1:"), "{url}");
        let (mut ws, _) = connect(ConnectOptions::new(&url).ca_file(&pki.ca))
            .await
            .unwrap_or_else(|e| panic!("{kind} {url}: {e}"));
        echo(&mut ws, "ip").await;
    }
    // A certificate with only the DNS name does not cover the address.
    let name_only = pki.server("name-only", &["localhost"]);
    let peer = tls_peer(PeerKind::Python, &name_only);
    let res = connect(ConnectOptions::new(peer.url("/echo")).ca_file(&pki.ca)).await;
    assert!(matches!(tls_err(res), TlsError::CertificateWrongHost));
}

#[tokio::test]
async fn mutual_tls() {
    let pki = Pki::new("mtls");
    let server = pki.server("server", &["localhost"]);
    let client = pki.client("client");
    let stranger_ca = Pki::new("stranger");
    let stranger = stranger_ca.client("stranger");
    let ca = pki.ca.to_str().unwrap().to_owned();
    for kind in PeerKind::ALL {
        let peer = Peer::start_with_args(
            kind,
            &PeerOptions {
                tls: Some(server.pair()),
                ..PeerOptions::default()
            },
            &["--tls-client-ca", &ca],
        );
        let url = peer.url_with_host("localhost", "/echo");

        // With the client certificate: accepted.
        let (mut ws, _) = connect(
            ConnectOptions::new(&url)
                .ca_file(&pki.ca)
                .client_cert(&client.cert, &client.key),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}: mTLS with a client certificate failed: {e}"));
        echo(&mut ws, "mtls").await;

        // Without: refused. Under TLS 1.3 the server decides after the
        // client's side of the handshake is done, so the refusal shows on
        // the first read of the upgrade: Node sends the `certificate_required`
        // alert (a typed TLS error); Python's asyncio drops the connection
        // without an alert, which can only be an incomplete handshake.
        let res = connect(ConnectOptions::new(&url).ca_file(&pki.ca)).await;
        let err = res
            .err()
            .unwrap_or_else(|| panic!("{kind}: connected without a client certificate"));
        match kind {
            PeerKind::Node => {
                assert!(
                    matches!(err, Error::Tls(TlsError::ClientCertificateRequired)),
                    "{kind}: {err:?}"
                );
                assert_eq!(err.phase(), Some(Phase::Tls), "{kind}");
            }
            PeerKind::Python => assert!(
                matches!(
                    err,
                    Error::Tls(_) | Error::Handshake(HandshakeError::Incomplete)
                ),
                "{kind}: {err:?}"
            ),
        }

        // With a certificate from a CA the server does not trust: refused
        // (both servers drop the connection without an alert).
        let res = connect(
            ConnectOptions::new(&url)
                .ca_file(&pki.ca)
                .client_cert(&stranger.cert, &stranger.key),
        )
        .await;
        let err = res
            .err()
            .unwrap_or_else(|| panic!("{kind}: connected with an untrusted client certificate"));
        assert!(
            matches!(
                err,
                Error::Tls(_) | Error::Handshake(HandshakeError::Incomplete)
            ),
            "{kind}: {err:?}"
        );
    }
}

#[tokio::test]
async fn bad_client_cert_files_are_typed_errors() {
    let pki = Pki::new("files");
    let server = pki.server("server", &["localhost"]);
    let peer = tls_peer(PeerKind::Python, &server);
    let url = peer.url_with_host("localhost", "/echo");
    let missing = pki.dir.join("nope.pem");
    let res = connect(ConnectOptions::new(&url).ca_file(&missing)).await;
    assert!(matches!(tls_err(res), TlsError::File { .. }));
    // A key file given as the certificate holds no certificate.
    let res = connect(
        ConnectOptions::new(&url)
            .ca_file(&pki.ca)
            .client_cert(&server.key, &server.key),
    )
    .await;
    assert!(matches!(
        tls_err(res),
        TlsError::Pem {
            what: "certificate",
            ..
        }
    ));
    let res = connect(
        ConnectOptions::new(&url)
            .ca_file(&pki.ca)
            .client_cert(&server.cert, &server.cert),
    )
    .await;
    assert!(matches!(
        tls_err(res),
        TlsError::Pem {
            what: "private key",
            ..
        }
    ));
}

#[tokio::test]
async fn danger_accept_invalid_certs_connects_to_an_untrusted_server() {
    let pki = Pki::new("danger");
    for (file, cert) in [
        ("expired", pki.expired_server("expired", &["example.com"])),
        ("wrong-host", pki.server("wrong-host", &["example.com"])),
    ] {
        for kind in PeerKind::ALL {
            let peer = tls_peer(kind, &cert);
            // No CA file at all: the issuer is unknown too.
            let (mut ws, _) = connect(
                ConnectOptions::new(peer.url_with_host("localhost", "/echo"))
                    .danger_accept_invalid_certs(true),
            )
            .await
            .unwrap_or_else(|e| panic!("{kind} {file}: {e}"));
            echo(&mut ws, "danger").await;
        }
    }
}

/// SNI and ALPN as the server sees them, with an in-test rustls server
/// (the peers do not report the ClientHello); it then serves the upgrade
/// with this crate's server role, so the connection completes.
#[tokio::test]
async fn sends_sni_for_names_not_for_addresses_and_offers_http11() {
    use tokio_rustls::LazyConfigAcceptor;
    use tokio_rustls::rustls::server::Acceptor;

    let pki = Pki::new("sni");
    let cert = pki.server("server", &["localhost", "127.0.0.1"]);
    let config = cert.server_config();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = listener.accept().await.unwrap();
            let start = LazyConfigAcceptor::new(Acceptor::default(), tcp)
                .await
                .unwrap();
            let hello = start.client_hello();
            let sni = hello.server_name().map(str::to_owned);
            let alpn: Vec<Vec<u8>> = hello
                .alpn()
                .map(|a| a.map(<[u8]>::to_vec).collect())
                .unwrap_or_default();
            seen.push((sni, alpn));
            let tls = start.into_stream(config.clone()).await.unwrap();
            let (mut ws, _) =
                wsclient::server::accept(tls, &wsclient::server::AcceptOptions::default())
                    .await
                    .unwrap();
            while let Some(Ok(msg)) = ws.next().await {
                if !msg.is_control() {
                    ws.send(msg).await.unwrap();
                }
            }
        }
        seen
    });
    for host in ["localhost", "127.0.0.1"] {
        let (mut ws, _) =
            connect(ConnectOptions::new(format!("wss://{host}:{port}/")).ca_file(&pki.ca))
                .await
                .unwrap_or_else(|e| panic!("{host}: {e}"));
        echo(&mut ws, host).await;
    }
    let seen = tokio::time::timeout(LIMIT, server).await.unwrap().unwrap();
    assert_eq!(
        seen[0],
        (Some("localhost".to_owned()), vec![b"http/1.1".to_vec()])
    );
    assert_eq!(
        seen[1],
        (None, vec![b"http/1.1".to_vec()]),
        "no SNI for an IP address"
    );
}

#[tokio::test]
async fn tls_handshake_timeout() {
    // Accepts TCP, never answers the ClientHello.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(LIMIT).await;
        drop(s);
    });
    let err = connect(
        ConnectOptions::new(format!("wss://localhost:{port}/"))
            .handshake_timeout(Duration::from_millis(300)),
    )
    .await
    .expect_err("must time out");
    assert!(
        matches!(err, Error::Timeout { phase: Phase::Tls, after } if after == Duration::from_millis(300)),
        "{err:?}"
    );
    assert_eq!(err.code(), 4);
    hold.abort();
}

/// Connections made with the same options share one client configuration,
/// so a reconnect resumes the TLS session (rustls keeps the server's
/// session tickets in the configuration) instead of a full handshake, with
/// both peers' TLS stacks (Python's OpenSSL, Node's OpenSSL).
#[tokio::test]
async fn reconnects_resume_the_tls_session() {
    use tokio_rustls::rustls::HandshakeKind;
    let pki = Pki::new("resume");
    let cert = pki.server("server", &["localhost"]);
    for kind in PeerKind::ALL {
        let peer = tls_peer(kind, &cert);
        let mut kinds = Vec::new();
        for round in 0..3 {
            let opts =
                ConnectOptions::new(peer.url_with_host("localhost", "/echo")).ca_file(&pki.ca);
            let (mut ws, _) = connect(opts)
                .await
                .unwrap_or_else(|e| panic!("{kind} round {round}: {e}"));
            let MaybeTlsStream::Tls(tls) = ws.get_ref() else {
                panic!("{kind}: wss:// gave a plain stream");
            };
            kinds.push(tls.get_ref().1.handshake_kind());
            // Reading the echoes also takes in the session tickets the
            // server sends after its handshake.
            echo(&mut ws, kind.name()).await;
            ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        }
        assert_eq!(
            kinds,
            [
                Some(HandshakeKind::Full),
                Some(HandshakeKind::Resumed),
                Some(HandshakeKind::Resumed)
            ],
            "{kind}"
        );
    }
}

/// The shared configuration follows the files it was built from: the same
/// options give the same configuration, a replaced CA file a new one.
#[test]
fn a_replaced_ca_file_gives_a_new_configuration() {
    use wsclient::transport::tls::{TlsOptions, client_config};
    let first = Pki::new("rotate-a");
    let second = Pki::new("rotate-b");
    let ca = first.dir.join("rotating-ca.pem");
    std::fs::copy(&first.ca, &ca).unwrap();
    let opts = TlsOptions {
        ca_files: vec![ca.clone()],
        ..TlsOptions::default()
    };
    let a = client_config(&opts).unwrap();
    let b = client_config(&opts).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b), "same options, same files");
    // A different CA (another size or at least another modification time).
    std::thread::sleep(Duration::from_millis(20));
    std::fs::copy(&second.ca, &ca).unwrap();
    let c = client_config(&opts).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&a, &c), "the CA file was replaced");
    // Other options, other configuration.
    let danger = TlsOptions {
        danger_accept_invalid_certs: true,
        ..opts.clone()
    };
    assert!(!std::sync::Arc::ptr_eq(
        &c,
        &client_config(&danger).unwrap()
    ));
}
