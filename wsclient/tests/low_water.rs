//! Large frames over plain TCP: while the rest of a frame of 128 KiB or
//! more is on its way, the socket sets the kernel's read low-water mark
//! (`SO_RCVLOWAT`) to that rest, so it is woken once for the frame rather
//! than once per segment. These tests hold it to what must not change:
//! every frame arrives whole however the server paces it, the mark is back
//! at 1 afterwards (a small message after a large one is not held back),
//! and a server that stops mid-frame is still noticed at once.
#![cfg(target_os = "linux")]

mod support;

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use support::{Scripted, frame, read_request, response_101};
use tokio::io::AsyncWriteExt;
use wsclient::{MaybeTlsStream, Message, WebSocket};

/// The client socket's `SO_RCVLOWAT`, read back from the kernel.
fn rcvlowat(ws: &WebSocket<MaybeTlsStream>) -> i32 {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a live socket, and a `c_int` with its size.
    let rc = unsafe {
        libc::getsockopt(
            ws.get_ref().tcp().expect("plain TCP").as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    value
}

fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

/// A binary frame written in `piece`-byte writes with a pause after each.
async fn write_paced(s: &mut tokio::net::TcpStream, bytes: &[u8], piece: usize, pause: Duration) {
    for chunk in bytes.chunks(piece) {
        s.write_all(chunk).await.unwrap();
        tokio::time::sleep(pause).await;
    }
}

async fn next(ws: &mut WebSocket<MaybeTlsStream>) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.recv())
        .await
        .expect("a message within 10 s")
        .expect("a message")
        .expect("not an error")
}

#[tokio::test]
async fn paced_large_frames_arrive_whole_and_the_mark_is_reset() {
    let big = payload(300 << 10, 1);
    let bigger = payload(1 << 20, 2);
    let (b1, b2) = (big.clone(), bigger.clone());
    let server = Scripted::start(move |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        // 300 KiB in 20 KiB writes, 2 ms apart; then a small message; then
        // 1 MiB whose header and first bytes come alone, the rest after a
        // pause, and the last 10 bytes after another; then a small one.
        write_paced(
            &mut s,
            &frame(true, 2, &b1, None),
            20 << 10,
            Duration::from_millis(2),
        )
        .await;
        s.write_all(&frame(true, 1, b"after", None)).await.unwrap();
        let f = frame(true, 2, &b2, None);
        s.write_all(&f[..1000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(&f[1000..f.len() - 10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.write_all(&f[f.len() - 10..]).await.unwrap();
        s.write_all(&frame(true, 1, b"last", None)).await.unwrap();
        // Hold the connection open: the last message must arrive on its
        // own, not with the end of the stream.
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
    assert_eq!(rcvlowat(&ws), 1, "the default");
    assert_eq!(next(&mut ws).await, Message::binary(big));
    assert_eq!(next(&mut ws).await, Message::text("after"));
    assert_eq!(rcvlowat(&ws), 1, "reset after the large frame");
    // The 1 MiB frame's header is in, its payload is not: the socket waits
    // with the mark raised (a receive given up is resumed by the next).
    let early = tokio::time::timeout(Duration::from_millis(100), ws.recv()).await;
    assert!(early.is_err(), "{early:?} before the frame was sent");
    assert!(rcvlowat(&ws) > 1, "the mark while the frame is on its way");
    assert_eq!(next(&mut ws).await, Message::binary(bigger));
    let started = Instant::now();
    assert_eq!(next(&mut ws).await, Message::text("last"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the small message after a large one waited {:?}",
        started.elapsed()
    );
    assert_eq!(rcvlowat(&ws), 1, "reset after the large frame");
}

#[tokio::test]
async fn a_server_that_stops_mid_frame_is_noticed_at_once() {
    let big = payload(1 << 20, 3);
    let server = Scripted::start(move |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        let f = frame(true, 2, &big, None);
        s.write_all(&f[..200 << 10]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Ends the TCP connection with most of the frame unsent.
    })
    .await;
    let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the end of the stream is noticed");
    assert!(
        matches!(got, Some(Err(wsclient::Error::AbnormalClosure))),
        "{got:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_failure_inside_a_large_frame_lowers_the_mark_again() {
    // 300 KiB of text with an invalid byte early on: the client fails the
    // connection (1007) once the frame's bytes are in, then waits for the
    // end of the stream with the mark back at 1.
    let mut text = vec![b'a'; 300 << 10];
    text[1000] = 0xFF;
    let server = Scripted::start(move |mut s| async move {
        let req = read_request(&mut s).await;
        s.write_all(&response_101(req.key())).await.unwrap();
        s.write_all(&frame(true, 1, &text, None)).await.unwrap();
        let close = support::read_close(&mut s, bytes::BytesMut::new()).await;
        assert_eq!(
            close.map(|c| c.code),
            Some(wsclient::CloseCode::INVALID_PAYLOAD)
        );
        s.write_all(&support::close_frame(1007, "")).await.unwrap();
        // The server ends TCP only after a pause: the client is meanwhile
        // waiting for the end of the stream.
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    let (mut ws, _) = wsclient::connect(&server.url("/")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the failure within 5 s");
    assert!(
        matches!(
            got,
            Some(Err(wsclient::Error::Protocol(
                wsclient::proto::ProtocolError::InvalidUtf8
            )))
        ),
        "{got:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), ws.recv())
        .await
        .expect("the end within 5 s");
    assert!(end.is_none(), "{end:?}");
    assert_eq!(rcvlowat(&ws), 1, "lowered for the wait for the end");
    server.join().await;
}
