//! The socket split into a read half and a write half, used from two tasks
//! at once against a real server.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::peers::{Peer, PeerKind, PeerOptions};
use wsclient::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_and_write_halves_in_separate_tasks() {
    for kind in PeerKind::ALL {
        let peer = Peer::start(kind, &PeerOptions::default());
        let (ws, _) = wsclient::connect(&peer.url("/echo")).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let writer = tokio::spawn(async move {
            for i in 0..200u32 {
                sink.feed(Message::binary(i.to_be_bytes().to_vec()))
                    .await
                    .unwrap();
            }
            sink.flush().await.unwrap();
            sink
        });
        let reader = tokio::spawn(async move {
            for i in 0..200u32 {
                let m = stream.next().await.unwrap().unwrap();
                assert_eq!(m, Message::binary(i.to_be_bytes().to_vec()));
            }
            stream
        });
        let (sink, stream) = tokio::time::timeout(Duration::from_secs(10), async {
            (writer.await.unwrap(), reader.await.unwrap())
        })
        .await
        .expect("split halves finish");
        // The halves join back into the socket, which closes cleanly.
        let mut ws = sink.reunite(stream).unwrap();
        ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        assert_eq!(ws.close_code(), wsclient::CloseCode::NORMAL, "{kind:?}");
    }
}
