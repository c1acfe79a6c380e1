//! The conformance corpus, replayed as data: every `corpus/valid/*.http` and
//! `corpus/invalid/*.http` file is a raw request stream (escapes: `\r`,
//! `\n`, `\t`, `\0`, `\\`, `\xHH`; real newlines in the file are ignored so
//! lines can be laid out readably), and its `.expect` file the expected
//! outcome, rendered as text (see `render`). Each case is replayed whole,
//! byte by byte, and in seeded random splits; the outcome must be the same
//! in all of them and equal the expectation.
//!
//! `RUNICORN_BLESS=1 cargo test -p runicorn-http --test corpus` writes the
//! `.expect` files of valid cases that have none (review them by eye).
//! An `.expect` file may start with `limits LINE FIELDS FIELD_SIZE BODY`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use runicorn_http::{parse_head_into, BodyDecoder, BodyKind, HeadStatus, Limits, RequestHead};

/// Decode the escaped corpus text into raw bytes.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        index += 1;
        match byte {
            b'\n' => {}
            b'\\' => {
                let escape = bytes[index];
                index += 1;
                match escape {
                    b'r' => out.push(b'\r'),
                    b'n' => out.push(b'\n'),
                    b't' => out.push(b'\t'),
                    b'0' => out.push(0),
                    b'\\' => out.push(b'\\'),
                    b'x' => {
                        let hex = std::str::from_utf8(&bytes[index..index + 2]).unwrap();
                        out.push(u8::from_str_radix(hex, 16).unwrap());
                        index += 2;
                    }
                    other => panic!("unknown escape \\{}", other as char),
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Bytes as readable text: printable ASCII as is, the rest escaped.
fn escape(bytes: &[u8]) -> String {
    let mut text = String::new();
    for &byte in bytes {
        match byte {
            b'\r' => text.push_str("\\r"),
            b'\n' => text.push_str("\\n"),
            b'\t' => text.push_str("\\t"),
            b'\\' => text.push_str("\\\\"),
            0x20..=0x7e => text.push(byte as char),
            other => {
                let _ = write!(text, "\\x{other:02x}");
            }
        }
    }
    text
}

/// A tiny seeded generator for split points (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }
}

/// Cut `input` into pieces: whole, one byte each, or random sizes.
fn split(input: &[u8], mode: &Mode) -> Vec<Vec<u8>> {
    match mode {
        Mode::Whole => vec![input.to_vec()],
        Mode::Bytes => input.iter().map(|&byte| vec![byte]).collect(),
        Mode::Random(seed) => {
            let mut rng = Rng(*seed | 1);
            let mut pieces = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let take = 1 + rng.below(rest.len().min(40));
                pieces.push(rest[..take].to_vec());
                rest = &rest[take..];
            }
            pieces
        }
    }
}

#[derive(Debug)]
enum Mode {
    Whole,
    Bytes,
    Random(u64),
}

/// Replay pieces through the parser and body decoder, as a connection
/// would, and render what came out.
fn replay(pieces: Vec<Vec<u8>>, limits: &Limits, read_size: usize) -> String {
    let mut out = String::new();
    let mut pieces = pieces.into_iter();
    let mut buffer: Vec<u8> = Vec::new();
    let mut head = RequestHead::default();
    let mut decoder = BodyDecoder::new(BodyKind::Empty, limits);
    let mut in_body = false;
    let mut body = Vec::new();
    loop {
        if !in_body {
            if !buffer.is_empty() {
                match parse_head_into(&buffer, limits, &mut head) {
                    Ok(HeadStatus::Complete(info)) => {
                        buffer.drain(..info.head_len);
                        let _ = writeln!(
                            out,
                            "request {} {} {}",
                            head.method,
                            head.target,
                            head.version.as_str()
                        );
                        for field in &head.headers {
                            let _ =
                                writeln!(out, "header {}: {}", field.name, escape(&field.value));
                        }
                        let framing = match info.body {
                            BodyKind::Empty => "empty".to_owned(),
                            BodyKind::Length(length) => format!("length {length}"),
                            BodyKind::Chunked => "chunked".to_owned(),
                        };
                        let _ = writeln!(
                            out,
                            "framing {framing} keep-alive {} continue {}",
                            info.keep_alive, info.expect_continue
                        );
                        decoder.reset(info.body, limits);
                        body.clear();
                        in_body = true;
                        continue;
                    }
                    Ok(HeadStatus::Partial) => {}
                    Err(err) => {
                        let _ = writeln!(out, "error {} {}", err.status(), variant(&err));
                        return out;
                    }
                }
            }
        } else {
            loop {
                if decoder.is_done() {
                    break;
                }
                match decoder.decode(&buffer, read_size) {
                    Ok((used, data)) => {
                        body.extend_from_slice(data);
                        let progressed = used > 0;
                        buffer.drain(..used);
                        if !progressed || buffer.is_empty() && !decoder.is_done() {
                            break;
                        }
                    }
                    Err(err) => {
                        let _ = writeln!(out, "error {} {}", err.status(), variant(&err));
                        return out;
                    }
                }
            }
            if decoder.is_done() {
                if !body.is_empty() {
                    let _ = writeln!(out, "body {}", escape(&body));
                }
                for field in decoder.trailers() {
                    let _ = writeln!(out, "trailer {}: {}", field.name, escape(&field.value));
                }
                in_body = false;
                continue;
            }
        }
        match pieces.next() {
            Some(piece) => buffer.extend_from_slice(&piece),
            None => {
                if in_body {
                    let _ = writeln!(out, "incomplete body");
                } else if !buffer.is_empty() {
                    let _ = writeln!(out, "incomplete head");
                }
                return out;
            }
        }
    }
}

/// The variant name of an error, without its fields.
fn variant(err: &runicorn_http::ParseError) -> String {
    let debug = format!("{err:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn parse_limits(expect: &str) -> (Limits, String) {
    let mut lines = expect.lines();
    let first = lines.clone().next().unwrap_or_default();
    if let Some(rest) = first.strip_prefix("limits ") {
        let numbers: Vec<u64> = rest
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        let limits = Limits::from_settings(
            numbers[0] as usize,
            numbers[1] as usize,
            numbers[2] as usize,
            numbers[3],
        );
        lines.next();
        let body: Vec<&str> = lines.collect();
        return (limits, body.join("\n") + "\n");
    }
    (Limits::default(), expect.to_owned())
}

fn cases(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut cases: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "http"))
        .collect();
    cases.sort();
    cases
}

/// Run every case of `kind`; returns (cases, failures).
fn run(kind: &str) -> (usize, Vec<String>) {
    let bless = std::env::var_os("RUNICORN_BLESS").is_some();
    let mut failures = Vec::new();
    let cases = cases(kind);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let input = unescape(&fs::read_to_string(case).unwrap());
        let expect_path = case.with_extension("expect");
        let expect_text = fs::read_to_string(&expect_path).unwrap_or_default();
        let (limits, expected) = parse_limits(&expect_text);
        let whole = replay(split(&input, &Mode::Whole), &limits, usize::MAX);
        let modes = [
            Mode::Bytes,
            Mode::Random(1),
            Mode::Random(7),
            Mode::Random(0x5eed),
        ];
        for (index, mode) in modes.iter().enumerate() {
            let read_size = [1, 3, 64, 5][index];
            let got = replay(split(&input, mode), &limits, read_size);
            if got != whole {
                failures.push(format!(
                    "{kind}/{name}: {mode:?} differs from whole:\n{got}---\n{whole}"
                ));
            }
        }
        if expected.trim().is_empty() && bless {
            let limits_line = expect_text
                .lines()
                .next()
                .filter(|line| line.starts_with("limits "));
            let text = limits_line.map_or(String::new(), |line| format!("{line}\n")) + &whole;
            fs::write(&expect_path, text).unwrap();
            continue;
        }
        // A one-line expectation of an invalid case names the error only.
        let compared = if kind == "invalid" && expected.lines().count() == 1 {
            whole
                .lines()
                .last()
                .map(|line| format!("{line}\n"))
                .unwrap_or_default()
        } else {
            whole.clone()
        };
        if compared != expected {
            failures.push(format!(
                "{kind}/{name}: expected\n{expected}--- got\n{whole}"
            ));
        }
        let rejected = whole.contains("\nerror ") || whole.starts_with("error ");
        match kind {
            "valid" if rejected => {
                failures.push(format!("{kind}/{name}: a valid case was rejected"));
            }
            "invalid" if !rejected => {
                failures.push(format!("{kind}/{name}: an invalid case was accepted"));
            }
            _ => {}
        }
    }
    (cases.len(), failures)
}

#[test]
fn valid_corpus() {
    let (count, failures) = run("valid");
    assert!(count >= 80, "only {count} valid cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn invalid_corpus() {
    let (count, failures) = run("invalid");
    assert!(count >= 100, "only {count} invalid cases");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
