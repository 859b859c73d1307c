//! Micro-benchmarks of the protocol core (criterion):
//!
//! - masking: the word-at-a-time kernel against the naive byte loop
//!   (`proto::mask::apply_mask_naive`), aligned and unaligned;
//! - frame header decoding, for each header form;
//! - UTF-8 validation: `proto::utf8::Utf8Validator` (simdutf8) against
//!   `std::str::from_utf8`, ASCII and multi-byte text;
//! - the engine's receive path (bytes in, messages out) for 16 B and
//!   64 KiB messages, binary and text, and its send path (frame + mask).
//!
//! Run with `cargo bench -p wsclient --bench core` (add `-- mask` etc. to
//! filter).
//! - permessage-deflate: compressing and inflating 16 B, 1 KiB and 64 KiB
//!   of JSON-like text, with context takeover on and off (zlib-rs).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wsclient::Message;
use wsclient::proto::frame::{FrameHeader, MAX_HEADER_LEN, OpCode};
use wsclient::proto::mask::{apply_mask, apply_mask_naive, extend_masked};
use wsclient::proto::utf8::Utf8Validator;
use wsclient::proto::{Config, DeflateConfig, DeflateParams, Engine, PerMessageDeflate, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn size_name(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{}MiB", n >> 20)
    } else if n >= 1024 {
        format!("{}KiB", n >> 10)
    } else {
        format!("{n}B")
    }
}

fn masking(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    for size in [16usize, 1 << 10, 64 << 10, 1 << 20] {
        // One spare byte so that an unaligned start can be measured too.
        let mut buf = vec![0x5au8; size + 1];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("fast", size_name(size)), &size, |b, &n| {
            b.iter(|| apply_mask(black_box(&mut buf[..n]), KEY, 0));
        });
        g.bench_with_input(
            BenchmarkId::new("fast_unaligned", size_name(size)),
            &size,
            |b, &n| {
                b.iter(|| apply_mask(black_box(&mut buf[1..=n]), KEY, 0));
            },
        );
        g.bench_with_input(
            BenchmarkId::new("naive", size_name(size)),
            &size,
            |b, &n| {
                b.iter(|| apply_mask_naive(black_box(&mut buf[..n]), KEY));
            },
        );
        // Copy into an output buffer and mask: one pass (`extend_masked`)
        // against a copy followed by the in-place kernel.
        let src = vec![0x5au8; size];
        let mut out = BytesMut::with_capacity(size);
        g.bench_with_input(
            BenchmarkId::new("copy_fused", size_name(size)),
            &size,
            |b, _| {
                b.iter(|| {
                    out.clear();
                    extend_masked(&mut out, black_box(&src), KEY);
                });
            },
        );
        g.bench_with_input(
            BenchmarkId::new("copy_then_mask", size_name(size)),
            &size,
            |b, _| {
                b.iter(|| {
                    out.clear();
                    out.extend_from_slice(black_box(&src));
                    apply_mask(&mut out, KEY, 0);
                });
            },
        );
    }
    g.finish();
}

fn header(len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let h = FrameHeader {
        fin: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode: OpCode::Binary,
        mask,
        payload_len: len,
    };
    let mut out = [0u8; MAX_HEADER_LEN];
    let n = h.encode(&mut out);
    out[..n].to_vec()
}

fn header_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("header_decode");
    g.throughput(Throughput::Elements(1));
    for (name, bytes) in [
        ("7bit", header(16, None)),
        ("16bit", header(4096, None)),
        ("64bit", header(1 << 20, None)),
        ("64bit_masked", header(1 << 20, Some(KEY))),
    ] {
        g.bench_function(name, |b| b.iter(|| FrameHeader::decode(black_box(&bytes))));
    }
    g.finish();
}

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let ascii: Vec<u8> = (0..64 << 10).map(|i| b' ' + (i % 90) as u8).collect();
    // Greek, CJK and emoji mixed with ASCII: 1-4 byte sequences.
    let mixed: Vec<u8> = "Ωμέγα 漢字 😀 mixed text, "
        .repeat(4096)
        .into_bytes()
        .into_iter()
        .take(64 << 10)
        .collect();
    let mixed = {
        // Cut back to a code point boundary.
        let end = (0..=mixed.len())
            .rev()
            .find(|&e| std::str::from_utf8(&mixed[..e]).is_ok())
            .unwrap_or(0);
        mixed[..end].to_vec()
    };
    for (name, text) in [("ascii", &ascii), ("mixed", &mixed)] {
        for size in [16usize, 64 << 10] {
            let data = &text[..size.min(text.len())];
            let data = &data[..(0..=data.len())
                .rev()
                .find(|&e| std::str::from_utf8(&data[..e]).is_ok())
                .unwrap_or(0)];
            g.throughput(Throughput::Bytes(data.len() as u64));
            let id = format!("{name}/{}", size_name(size));
            g.bench_with_input(BenchmarkId::new("validator", &id), data, |b, d| {
                b.iter(|| {
                    let mut v = Utf8Validator::new();
                    v.feed(black_box(d)).unwrap();
                    v.finish().unwrap();
                });
            });
            g.bench_with_input(BenchmarkId::new("std", &id), data, |b, d| {
                b.iter(|| std::str::from_utf8(black_box(d)).unwrap().len());
            });
        }
    }
    g.finish();
}

/// `count` unmasked server frames of `size` bytes, back to back.
fn server_frames(opcode: OpCode, size: usize, count: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = Vec::new();
    for _ in 0..count {
        let h = FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: None,
            payload_len: size as u64,
        };
        let mut hb = [0u8; MAX_HEADER_LEN];
        let n = h.encode(&mut hb);
        out.extend_from_slice(&hb[..n]);
        out.extend_from_slice(&payload);
    }
    out
}

fn engine_receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_receive");
    for (size, count) in [(16usize, 1024usize), (64 << 10, 16)] {
        for (name, opcode) in [("binary", OpCode::Binary), ("text", OpCode::Text)] {
            let wire = server_frames(opcode, size, count);
            g.throughput(Throughput::Bytes((size * count) as u64));
            let mut engine = Engine::new(Role::Client, Config::default());
            g.bench_function(BenchmarkId::new(name, size_name(size)), |b| {
                b.iter_batched(
                    || BytesMut::from(&wire[..]),
                    |mut buf| {
                        let mut n = 0;
                        while let Some(m) = engine.receive(&mut buf).unwrap() {
                            black_box(&m);
                            n += 1;
                        }
                        assert_eq!(n, count);
                    },
                    BatchSize::SmallInput,
                );
            });
        }
    }
    g.finish();
}

fn engine_send(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine_send");
    for size in [16usize, 1 << 10, 64 << 10, 1 << 20] {
        let msg = Message::Binary(Bytes::from(vec![0x5au8; size]));
        g.throughput(Throughput::Bytes(size as u64));
        let mut engine = Engine::new(Role::Client, Config::default());
        g.bench_function(BenchmarkId::new("binary", size_name(size)), |b| {
            b.iter(|| {
                engine.send(black_box(&msg)).unwrap();
                let n = engine.output().len();
                engine.consume_output(n);
            });
        });
    }
    g.finish();
}

/// JSON-like text of about `size` bytes (market-data style records).
fn json_text(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 64);
    let mut i = 0u64;
    while out.len() < size {
        out.extend_from_slice(
            format!(
                "{{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"t\":{},\"p\":\"{}.{:02}\",\"q\":\"0.{:03}\"}}",
                1_000_000 + i,
                60_000 + (i * 7919) % 500,
                i % 100,
                (i * 31) % 1000
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(size);
    out
}

fn deflate(c: &mut Criterion) {
    let mut g = c.benchmark_group("deflate");
    for takeover in [true, false] {
        let params = DeflateParams {
            client_no_context_takeover: !takeover,
            server_no_context_takeover: !takeover,
            ..DeflateParams::default()
        };
        let ctx = if takeover { "takeover" } else { "no_takeover" };
        for size in [16usize, 1 << 10, 64 << 10] {
            let text = json_text(size);
            g.throughput(Throughput::Bytes(size as u64));
            let mut client =
                PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default());
            let mut out = Vec::new();
            g.bench_function(
                BenchmarkId::new(format!("compress_{ctx}"), size_name(size)),
                |b| {
                    b.iter(|| {
                        out.clear();
                        client.compress(black_box(&text), true, &mut out);
                    });
                },
            );
            // A message as the server sent it, inflated again and again.
            let mut server =
                PerMessageDeflate::new(Role::Server, params, &DeflateConfig::default());
            let mut wire = Vec::new();
            server.compress(&text, true, &mut wire);
            let mut reader =
                PerMessageDeflate::new(Role::Client, params, &DeflateConfig::default());
            let mut inflated = BytesMut::new();
            g.bench_function(
                BenchmarkId::new(format!("inflate_{ctx}"), size_name(size)),
                |b| {
                    b.iter(|| {
                        inflated.clear();
                        reader
                            .decompress(black_box(&wire), true, &mut inflated, 64 << 20)
                            .unwrap();
                    });
                },
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = masking, header_decode, utf8, engine_receive, engine_send, deflate
}
criterion_main!(benches);
