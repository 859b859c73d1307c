//! Heap allocations on the receive path, counted by a global allocator
//! that tallies each thread's allocations: the engine hands out payloads
//! as slices of the read buffer, and a socket answering request/response
//! traffic makes one allocation per message it receives (the buffer the
//! message arrives in, which becomes its payload).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use wsclient::Message;
use wsclient::proto::{Config, Engine, Role};

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; the count is a
// const-initialized thread-local `Cell` (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made on this thread while `f` runs.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCS.with(Cell::get);
    let out = f();
    (out, ALLOCS.with(Cell::get) - before)
}

/// An unmasked binary frame as a server sends it (payload under 126 bytes).
fn server_frame(buf: &mut BytesMut, payload: &[u8]) {
    buf.put_u8(0x82);
    buf.put_u8(u8::try_from(payload.len()).unwrap());
    buf.put_slice(payload);
}

#[test]
fn many_messages_in_one_read_buffer_share_it() {
    let mut buf = BytesMut::with_capacity(64 << 10);
    for i in 0..1000u32 {
        server_frame(&mut buf, &i.to_be_bytes());
    }
    let mut engine = Engine::new(Role::Client, Config::default());
    let (messages, n) = allocations(|| {
        let mut out = Vec::with_capacity(1000);
        while let Some(m) = engine.receive(&mut buf).unwrap() {
            out.push(m);
        }
        out
    });
    assert_eq!(messages.len(), 1000);
    for (i, m) in (0..1000u32).zip(&messages) {
        assert_eq!(
            m,
            &Message::Binary(Bytes::copy_from_slice(&i.to_be_bytes()))
        );
    }
    // The Vec above, and the one shared-ownership record the first split
    // of the buffer makes; none per message.
    assert!(n <= 2, "{n} allocations for 1000 messages");
}

#[test]
fn a_buffer_that_is_one_frame_becomes_its_payload() {
    let mut buf = BytesMut::with_capacity(2 + 16);
    server_frame(&mut buf, &[7; 16]);
    let start = buf.as_ptr();
    let mut engine = Engine::new(Role::Client, Config::default());
    let (m, n) = allocations(|| engine.receive(&mut buf).unwrap().unwrap());
    assert_eq!(n, 0, "receiving a frame that fills its buffer allocated");
    let Message::Binary(payload) = m else {
        panic!("{m:?}")
    };
    assert_eq!(&payload[..], &[7; 16]);
    // The same memory, past the 2-byte header: no copy.
    assert_eq!(payload.as_ptr(), start.wrapping_add(2));
    assert_eq!(buf.capacity(), 0);
}

/// A request/response exchange over a real TCP connection: the client
/// thread allocates once per round trip (the read buffer of the reply,
/// which becomes the reply's payload); the server runs on its own thread.
#[test]
fn a_round_trip_allocates_once_on_the_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut ws, _) = wsclient::server::accept(tcp, &Default::default())
                .await
                .unwrap();
            // Echo until the client's close, which the socket answers;
            // the stream then ends.
            while let Some(Ok(m)) = ws.next().await {
                if !matches!(m, Message::Close(_)) && ws.send(m).await.is_err() {
                    break;
                }
            }
        });
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    const ROUND_TRIPS: u64 = 2000;
    let per_trip = rt.block_on(async {
        let (mut ws, _) = wsclient::connect(&format!("ws://{addr}/")).await.unwrap();
        let request = Message::Binary(Bytes::from_static(&[1; 16]));
        let mut round_trip = async || {
            ws.send(request.clone()).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(reply, request);
        };
        // Warm up: the runtime's and the socket's one-time allocations.
        for _ in 0..200 {
            round_trip().await;
        }
        let before = ALLOCS.with(Cell::get);
        for _ in 0..ROUND_TRIPS {
            round_trip().await;
        }
        let n = ALLOCS.with(Cell::get) - before;
        ws.close(wsclient::CloseCode::NORMAL, "").await.unwrap();
        n as f64 / ROUND_TRIPS as f64
    });
    server.join().unwrap();
    eprintln!("{per_trip} allocations per round trip");
    assert!(
        per_trip <= 1.05,
        "{per_trip} allocations per round trip on the client"
    );
}
