//! Micro benchmark: head parsing (ours vs bare httparse on the same bytes)
//! and response encoding, for a short GET, a browser-like GET with 12
//! header fields, and 16 pipelined GETs. Throughput is in requests, so the
//! per-request time of the pipelined input is the reported time / 16.

use std::hint::black_box;
use std::mem::MaybeUninit;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use runicorn_http::{
    encode_response_head, parse_head_into, Cycle, CycleOptions, DateCache, HeadStatus, Limits,
    RequestHead, ResponseContext, Version,
};

const SHORT: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n";

const BROWSER: &[u8] = b"GET /index.html?lang=en HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Sec-Fetch-User: ?1\r\n\
Cache-Control: max-age=0\r\n\r\n";

fn inputs() -> Vec<(&'static str, Vec<u8>, u64)> {
    vec![
        ("short_get", SHORT.to_vec(), 1),
        ("browser_get_12_headers", BROWSER.to_vec(), 1),
        ("pipelined_16", SHORT.repeat(16), 16),
    ]
}

/// Ours: every request in the buffer, into one reused head.
fn parse_ours(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> usize {
    let mut offset = 0;
    let mut count = 0;
    while offset < buf.len() {
        match parse_head_into(&buf[offset..], limits, head) {
            Ok(HeadStatus::Complete(info)) => {
                offset += info.head_len;
                count += 1;
            }
            _ => break,
        }
    }
    count
}

/// Bare httparse: the same loop, no validation or copying.
fn parse_bare(buf: &[u8]) -> usize {
    let mut offset = 0;
    let mut count = 0;
    while offset < buf.len() {
        let mut slots = [const { MaybeUninit::uninit() }; 101];
        let mut request = httparse::Request::new(&mut []);
        match request.parse_with_uninit_headers(&buf[offset..], &mut slots) {
            Ok(httparse::Status::Complete(len)) => {
                black_box(&request);
                offset += len;
                count += 1;
            }
            _ => break,
        }
    }
    count
}

fn bench_parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("parse");
    for (name, buf, requests) in inputs() {
        group.throughput(Throughput::Elements(requests));
        let mut head = RequestHead::default();
        group.bench_function(format!("{name}/runicorn"), |b| {
            b.iter(|| parse_ours(black_box(&buf), &limits, &mut head));
        });
        group.bench_function(format!("{name}/httparse"), |b| {
            b.iter(|| parse_bare(black_box(&buf)));
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let limits = Limits::default();
    let date = DateCache::new(std::time::SystemTime::now());
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(4096);
    group.bench_function("hello_content_length", |b| {
        b.iter(|| {
            out.clear();
            let context = ResponseContext {
                version: Version::Http11,
                head_request: false,
                keep_alive: true,
                date: date.as_bytes(),
            };
            let headers: [(&str, &[u8]); 2] =
                [("Content-Type", b"text/plain"), ("Content-Length", b"13")];
            let mut encoded =
                encode_response_head(&mut out, 200, black_box(&headers), &context).unwrap();
            encoded.body.encode(&mut out, b"Hello, World!").unwrap();
            encoded.body.finish(&mut out);
            black_box(out.len())
        });
    });
    let mut head = RequestHead::default();
    let Ok(HeadStatus::Complete(info)) = parse_head_into(SHORT, &limits, &mut head) else {
        panic!("bench input does not parse");
    };
    let mut cycle = Cycle::default();
    group.bench_function("cycle_parse_and_chunked_response", |b| {
        b.iter(|| {
            out.clear();
            let Ok(HeadStatus::Complete(info)) =
                parse_head_into(black_box(SHORT), &limits, &mut head)
            else {
                unreachable!()
            };
            cycle.reset(info, &head, &limits, CycleOptions::default());
            cycle
                .start_response(
                    &mut out,
                    200,
                    &[("Content-Type", b"text/plain")],
                    date.as_bytes(),
                )
                .unwrap();
            cycle.write_body(&mut out, b"Hello, World!").unwrap();
            black_box(cycle.finish(&mut out, date.as_bytes()))
        });
    });
    black_box(info);
    group.finish();
}

criterion_group!(benches, bench_parse, bench_encode);
criterion_main!(benches);
