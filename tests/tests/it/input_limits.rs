//! Input at the limits (issue 7): a 40 MB message, 100,000-line headers, 1,000
//! nested MIME levels, 10,000 attachments, a zip bomb, malformed encoded-words.
//! Each gets a clear outcome (kind, disposition, warning), a ticket of bounded
//! size, no panic and no stack overflow, in bounded memory.
//!
//! Every input is generated here, deterministically. The big ones are triaged
//! by the `triage-one` harness in a process of their own (its peak RSS is that
//! message's alone, and a stack overflow there cannot take this process down);
//! it triages on a 2 MiB stack, the size of the tokio worker a Lambda handler
//! runs on.
//!
//! Memory bound: mail-ingest has 256 MB and triages two messages at once
//! (`INGEST_CONCURRENCY=2` in infra/template.yaml, for SES's 40 MB maximum).
//! Less about 40 MB for the runtime and the SDK clients, that leaves each
//! message about 108 MB: triage's peak RSS above an empty harness's (the raw
//! message read into memory included) must stay under 100 MiB, and the
//! harness's absolute peak under 128 MiB (half the function). Times are
//! printed, never asserted (the machines are noisy).

use base64::Engine as _;
use rootmail_domain::{Disposition, Kind, Triage};
use rootmail_tests::{Triager, XorShift};
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::LazyLock;

const ROOT: &str = "root+a7f3k9q2@root.example-msp.com";
const MIB: u64 = 1024 * 1024;
/// SES's largest message (the S3 action), and the `MAX_MESSAGE_BYTES` of mail-ingest.
const SES_MAX_BYTES: usize = 40 * 1024 * 1024;
/// Triage's share of mail-ingest's memory (see the top of the file).
const MAX_EXTRA_RSS: u64 = 100 * MIB;
const MAX_PEAK_RSS: u64 = 128 * MIB;

/// The headers SES and a plain sender write; `tag` makes each message distinct.
fn head(tag: &str, subject: &str, content_type: &str) -> String {
    format!(
        "Return-Path: <bounce@vendor.example>\r\n\
         Received: from mx.vendor.example (mx.vendor.example [198.51.100.9])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {tag}\r\n for {ROOT};\r\n Mon, 04 May 2026 10:00:00 +0000 (UTC)\r\n\
         X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
         From: Vendor Reports <reports@vendor.example>\r\nTo: {ROOT}\r\nSubject: {subject}\r\n\
         Message-ID: <{tag}@vendor.example>\r\nDate: Mon, 04 May 2026 09:59:58 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: {content_type}\r\n"
    )
}

// ------------------------------------------------------------------ the harness

/// What `triage-one` reports for one message.
struct Measured {
    triage: Value,
    bytes: u64,
    elapsed_ms: u64,
    rss_after_read: u64,
    peak_rss: u64,
}

impl Measured {
    fn kind(&self) -> &str {
        self.triage["kind"].as_str().unwrap_or_default()
    }
    fn disposition(&self) -> &str {
        self.triage["disposition"].as_str().unwrap_or_default()
    }
    fn body(&self) -> &str {
        self.triage["ticket"]["body"].as_str().unwrap_or_default()
    }
    fn warnings(&self) -> Vec<&str> {
        self.triage["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    /// The triage's own serialized size (what a ledger row, a queue message
    /// and a log line can carry of it).
    fn serialized_len(&self) -> usize {
        self.triage.to_string().len()
    }
}

/// Triages `raw` in a `triage-one` process and prints what it measured. With
/// `INPUT_LIMITS_KEEP=<dir>`, the message is kept there too.
fn measure(name: &str, raw: &[u8]) -> Measured {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(format!("{name}.eml"));
    std::fs::write(&path, raw).expect("message written");
    if let Some(keep) = std::env::var_os("INPUT_LIMITS_KEEP") {
        std::fs::copy(
            &path,
            std::path::Path::new(&keep).join(format!("{name}.eml")),
        )
        .expect("message kept");
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_triage-one"))
        .arg(&path)
        .output()
        .expect("triage-one runs");
    assert!(
        output.status.success(),
        "{name}: triage-one failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("triage-one report");
    let kib = |key: &str| report[key].as_u64().expect("a number") * 1024;
    let measured = Measured {
        triage: report["triage"].clone(),
        bytes: report["bytes"].as_u64().expect("bytes"),
        elapsed_ms: report["elapsed_ms"].as_u64().expect("elapsed"),
        rss_after_read: kib("rss_after_read_kib"),
        peak_rss: kib("peak_rss_kib"),
    };
    eprintln!(
        "{name}: {:.1} MiB -> {} {} | ticket body {} bytes, triage JSON {} bytes | triage {} ms | peak RSS {:.1} MiB ({:.1} MiB after reading the file) | warnings {:?}",
        measured.bytes as f64 / MIB as f64,
        measured.kind(),
        measured.disposition(),
        measured.body().len(),
        measured.serialized_len(),
        measured.elapsed_ms,
        measured.peak_rss as f64 / MIB as f64,
        measured.rss_after_read as f64 / MIB as f64,
        measured.warnings()
    );
    measured
}

/// The harness's peak for a small message: what every run costs anyway.
static BASELINE: LazyLock<u64> = LazyLock::new(|| {
    let raw = head("baseline", "Small", "text/plain") + "\r\nHello.\r\n";
    measure("baseline", raw.as_bytes()).peak_rss
});

fn assert_memory_bounded(name: &str, m: &Measured) {
    let extra = m.peak_rss.saturating_sub(*BASELINE);
    eprintln!(
        "{name}: {:.1} MiB above the baseline of {:.1} MiB",
        extra as f64 / MIB as f64,
        *BASELINE as f64 / MIB as f64
    );
    assert!(
        extra < MAX_EXTRA_RSS && m.peak_rss < MAX_PEAK_RSS,
        "{name}: peak RSS {} MiB ({} MiB above baseline)",
        m.peak_rss / MIB,
        extra / MIB
    );
}

/// A ticket's body stays readable whatever the message: the text is cut at
/// 16,000 characters, lists are cut short.
const MAX_TICKET_BODY: usize = 40_000;

fn assert_ticket_bounded(name: &str, m: &Measured) {
    let subject = m.triage["ticket"]["subject"].as_str().unwrap_or_default();
    assert!(!subject.is_empty(), "{name}: no ticket: {}", m.triage);
    assert!(subject.chars().count() <= 250, "{name}: subject {subject}");
    assert!(
        m.body().len() < MAX_TICKET_BODY,
        "{name}: ticket body is {} bytes",
        m.body().len()
    );
    assert!(
        m.serialized_len() < 200_000,
        "{name}: the triage serializes to {} bytes",
        m.serialized_len()
    );
}

// ------------------------------------------------------------------ 40 MB

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Just under 40 MiB: a page of text and a base64 attachment filling the rest.
fn forty_mb_with_attachment() -> Vec<u8> {
    let mut rng = XorShift::new(40);
    let mut raw = (head("big-attachment", "Quarterly export", "multipart/mixed; boundary=\"b40\"")
        + "\r\n--b40\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe export is attached.\r\n\
           \r\n--b40\r\nContent-Type: application/octet-stream; name=\"export.bin\"\r\n\
           Content-Disposition: attachment; filename=\"export.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        .into_bytes();
    let end = b"\r\n--b40--\r\n";
    while raw.len() + 78 + end.len() <= SES_MAX_BYTES {
        raw.extend((0..76).map(|_| BASE64[(rng.next_u64() % 64) as usize]));
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(end);
    raw
}

/// Just under 40 MiB of plain text in one body.
fn forty_mb_of_text() -> Vec<u8> {
    let mut raw = head("big-text", "Full log", "text/plain; charset=utf-8").into_bytes();
    raw.extend_from_slice(b"\r\n");
    let mut i = 0u64;
    while raw.len() + 100 <= SES_MAX_BYTES {
        raw.extend_from_slice(
            format!(
                "{i:08} GET /health 200 from 203.0.113.{} in 3 ms, all quiet on the line\r\n",
                i % 250
            )
            .as_bytes(),
        );
        i += 1;
    }
    raw
}

#[test]
fn a_40_mb_message_with_a_big_attachment_is_triaged_in_bounded_memory() {
    let raw = forty_mb_with_attachment();
    let m = measure("40mb-attachment", &raw);
    assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"));
    assert_eq!(m.triage["account_id"], "111122223333");
    assert!(
        m.body().contains("export.bin (application/octet-stream, 2"),
        "the attachment is listed with its size: {}",
        m.body()
    );
    assert_ticket_bounded("40mb-attachment", &m);
    assert_memory_bounded("40mb-attachment", &m);
}

#[test]
fn a_40_mb_text_body_is_triaged_in_bounded_memory() {
    let raw = forty_mb_of_text();
    let m = measure("40mb-text", &raw);
    assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"));
    assert!(m.body().contains("[truncated: "), "the text is cut");
    assert_ticket_bounded("40mb-text", &m);
    assert_memory_bounded("40mb-text", &m);
}

// ------------------------------------------------------------------ headers

fn hundred_thousand_header_fields() -> Vec<u8> {
    let mut raw = String::new();
    for i in 0..100_000 {
        let _ = write!(
            raw,
            "X-Relay-Hop-{i}: relay{i}.vendor.example accepted it\r\n"
        );
    }
    (head("many-fields", "Many hops", "text/plain") + &raw + "\r\nDelivered after many hops.\r\n")
        .into_bytes()
}

/// One `Subject:` folded over 100,000 lines (about 1.5 MB of subject).
fn subject_folded_over_100_000_lines() -> Vec<u8> {
    let mut subject = String::from("Report");
    for i in 0..100_000 {
        let _ = write!(subject, "\r\n part-{i}");
    }
    (head("folded", &subject, "text/plain") + "\r\nA very long subject.\r\n").into_bytes()
}

#[test]
fn a_hundred_thousand_header_lines_finish_with_a_bounded_ticket() {
    let fields = measure("100k-header-fields", &hundred_thousand_header_fields());
    assert_eq!((fields.kind(), fields.disposition()), ("unknown", "ticket"));
    assert_eq!(fields.triage["account_id"], "111122223333");
    assert_ticket_bounded("100k-header-fields", &fields);
    assert_memory_bounded("100k-header-fields", &fields);

    let folded = measure("100k-line-subject", &subject_folded_over_100_000_lines());
    assert_eq!((folded.kind(), folded.disposition()), ("unknown", "ticket"));
    assert_ticket_bounded("100k-line-subject", &folded);
    assert!(
        folded
            .warnings()
            .iter()
            .any(|w| w.contains("Subject") && w.contains("cut")),
        "the cut subject is said: {:?}",
        folded.warnings()
    );
    // Far more fields than any mail system writes: refused before parsing.
    let mut flood = hundred_thousand_header_fields();
    let extra: String = (0..100_000).map(|i| format!("X-More-{i}: x\r\n")).collect();
    flood.splice(0..0, extra.into_bytes());
    let refused = measure("200k-header-fields", &flood);
    assert_eq!(
        (refused.kind(), refused.disposition()),
        ("mail.unparseable", "quarantine")
    );
    assert!(
        refused
            .warnings()
            .join(" ")
            .contains("more than 150000 header fields"),
        "{:?}",
        refused.warnings()
    );
    assert_memory_bounded("200k-header-fields", &refused);

    let subject = folded.triage["subject"].as_str().unwrap_or_default();
    assert!(subject.starts_with("Report part-0 part-1 "), "{subject}");
    assert_memory_bounded("100k-line-subject", &folded);
}

// ------------------------------------------------------------------ nesting

/// `depth` multiparts, each the only part of the one around it.
fn nested_multiparts(depth: usize) -> Vec<u8> {
    let mut raw = head(
        "nested-multipart",
        "Nested",
        "multipart/mixed; boundary=\"n0\"",
    ) + "\r\n";
    for level in 1..depth {
        let _ = write!(
            raw,
            "--n{}\r\nContent-Type: multipart/mixed; boundary=\"n{level}\"\r\n\r\n",
            level - 1
        );
    }
    let _ = write!(
        raw,
        "--n{}\r\nContent-Type: text/plain\r\n\r\ninnermost text\r\n",
        depth - 1
    );
    for level in (0..depth).rev() {
        let _ = write!(raw, "--n{level}--\r\n");
    }
    raw.into_bytes()
}

/// `depth` forwarded messages (`message/rfc822`), each inside the one before.
fn nested_messages(depth: usize) -> Vec<u8> {
    let mut raw = head("nested-message", "Fwd: Fwd: Fwd:", "message/rfc822") + "\r\n";
    for level in 1..depth {
        let _ = write!(
            raw,
            "From: hop{level}@vendor.example\r\nSubject: level {level}\r\nContent-Type: message/rfc822\r\n\r\n"
        );
    }
    raw.push_str("From: last@vendor.example\r\nSubject: innermost\r\nContent-Type: text/plain\r\n\r\ninnermost text\r\n");
    raw.into_bytes()
}

#[test]
fn a_thousand_nested_mime_levels_finish_on_a_small_stack() {
    for (name, raw) in [
        ("1000-nested-multiparts", nested_multiparts(1000)),
        ("1000-nested-messages", nested_messages(1000)),
    ] {
        let m = measure(name, &raw);
        assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"), "{name}");
        assert_ticket_bounded(name, &m);
        assert_memory_bounded(name, &m);
    }
    // In this process too (a test thread's stack is 2 MiB as well).
    let t = Triager::default().triage(&nested_messages(1000), "nested.eml", None);
    assert_eq!(t.kind, Kind::Unknown);
}

/// Nesting deeper than anything mail needs is refused before parsing: 100,000
/// forwarded messages in 9 MB would overflow the parser's stack (the process
/// aborts: no panic to catch, the whole Lambda batch is lost), 100,000 nested
/// multiparts would cost well over 100 MB.
/// `depth` nested forwarded messages, forwarded once more as a base64 part
/// (mail-parser decodes and parses it, and copies it level by level).
fn nested_messages_in_base64(depth: usize) -> Vec<u8> {
    let inner = base64::engine::general_purpose::STANDARD.encode(nested_messages(depth));
    let mut raw = head("encoded-nest", "Fwd", "multipart/mixed; boundary=\"e\"")
        + "\r\n--e\r\nContent-Type: text/plain\r\n\r\nForwarded.\r\n\
           --e\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    for line in inner.as_bytes().chunks(76) {
        raw.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        raw.push_str("\r\n");
    }
    raw.push_str("--e--\r\n");
    raw.into_bytes()
}

#[test]
fn nesting_deeper_than_the_limit_is_quarantined_unparsed() {
    for (name, raw) in [
        ("100000-nested-messages", nested_messages(100_000)),
        ("100000-nested-multiparts", nested_multiparts(100_000)),
        // 700 levels inside one base64 part overflowed the stack.
        (
            "1000-nested-messages-in-base64",
            nested_messages_in_base64(1000),
        ),
    ] {
        let m = measure(name, &raw);
        assert_eq!(
            (m.kind(), m.disposition()),
            ("mail.unparseable", "quarantine"),
            "{name}"
        );
        let reason = m.warnings().join(" ");
        assert!(
            reason.contains("nests more than"),
            "{name}: the reason says why: {reason}"
        );
        assert!(
            m.body().contains("Quarantined: not parseable"),
            "{}",
            m.body()
        );
        assert_ticket_bounded(name, &m);
        assert_memory_bounded(name, &m);
    }
}

// ------------------------------------------------------------------ attachments

fn ten_thousand_attachments() -> Vec<u8> {
    let mut raw = head(
        "many-attachments",
        "Evidence bundle",
        "multipart/mixed; boundary=\"att\"",
    ) + "\r\n--att\r\nContent-Type: text/plain\r\n\r\nTen thousand files attached.\r\n";
    for i in 0..10_000 {
        if i % 10 == 0 {
            let _ = write!(
                raw,
                "--att\r\nContent-Type: text/plain; name=\"note-{i:05}.txt\"\r\nContent-Disposition: attachment; filename=\"note-{i:05}.txt\"\r\n\r\nnote {i}\r\n"
            );
        } else {
            let _ = write!(
                raw,
                "--att\r\nContent-Type: application/octet-stream; name=\"file-{i:05}.bin\"\r\nContent-Disposition: attachment; filename=\"file-{i:05}.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n"
            );
        }
    }
    raw.push_str("--att--\r\n");
    raw.into_bytes()
}

#[test]
fn ten_thousand_attachments_are_listed_briefly() {
    let m = measure("10000-attachments", &ten_thousand_attachments());
    assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"));
    let listed = m
        .body()
        .lines()
        .filter(|l| l.starts_with("- note-") || l.starts_with("- file-"))
        .count();
    assert!(listed <= 50, "{listed} attachments listed");
    assert!(
        m.body().contains("(and 9950 more attachments"),
        "the rest are counted: {}",
        m.body()
    );
    let offered = m.triage["ticket"]["attachments"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(offered <= 50, "{offered} attachments offered for upload");
    assert_ticket_bounded("10000-attachments", &m);
    assert_memory_bounded("10000-attachments", &m);
}

/// Facts a sender writes at any length: ARNs of 45 KB in the text and of
/// 900 KB in forwarded messages (found by a review against SQS's limits: the
/// ticket body came out at 4 MB, over the most a queue message may hold, so
/// the mail was retried into the DLQ and never ticketed).
fn long_arns() -> Vec<u8> {
    let arn = |n: usize, len: usize| format!("arn:aws:s3:::bucket{n}/{}", "k".repeat(len));
    let mut raw = head("long-arns", "Resources", "multipart/mixed; boundary=b") + "\r\n--b\r\n";
    raw += "Content-Type: text/plain\r\n\r\n";
    for n in 0..10 {
        raw += &format!("Resource: {}\r\n", arn(n, 45_000));
    }
    for n in 10..14 {
        raw += &format!(
            "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\n{}\r\n",
            arn(n, 900_000)
        );
    }
    raw += "--b--\r\n";
    raw.into_bytes()
}

#[test]
fn facts_of_any_length_leave_a_bounded_ticket() {
    let m = measure("long-arns", &long_arns());
    assert_eq!(m.disposition(), "ticket");
    assert!(
        m.body().contains("arn:aws:s3:::bucket0/kkk"),
        "the ARN is shown, cut"
    );
    assert_ticket_bounded("long-arns", &m);
}

/// 40 MB in as many small base64 attachments as the part limit allows.
fn forty_mb_of_small_attachments() -> Vec<u8> {
    let mut rng = XorShift::new(11);
    let parts = rootmail_domain::mail::MAX_MIME_PARTS - 10;
    let mut raw = (head(
        "many-small",
        "Export in pieces",
        "multipart/mixed; boundary=\"s\"",
    ) + "\r\n--s\r\nContent-Type: text/plain\r\n\r\nAll the pieces.\r\n")
        .into_bytes();
    let per_part = (SES_MAX_BYTES - raw.len()) / parts - 200;
    for i in 0..parts - 1 {
        raw.extend_from_slice(
            format!(
                "--s\r\nContent-Type: application/octet-stream; name=\"piece-{i:05}.bin\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n"
            )
            .as_bytes(),
        );
        for _ in 0..per_part / 78 {
            raw.extend((0..76).map(|_| BASE64[(rng.next_u64() % 64) as usize]));
            raw.extend_from_slice(b"\r\n");
        }
    }
    raw.extend_from_slice(b"--s--\r\n");
    raw
}

/// 40 MB in forty textual attachments of 1 MB (each is searched for secrets).
fn forty_mb_of_text_attachments() -> Vec<u8> {
    let mut raw = (head(
        "text-attachments",
        "Logs",
        "multipart/mixed; boundary=\"t\"",
    ) + "\r\n--t\r\nContent-Type: text/plain\r\n\r\nForty logs.\r\n")
        .into_bytes();
    let line = "2026-05-04T10:00:00Z worker accepted job and finished it without trouble\r\n";
    for i in 0..39 {
        raw.extend_from_slice(
            format!(
                "--t\r\nContent-Type: text/plain; name=\"log-{i:02}.txt\"\r\n\
                 Content-Disposition: attachment; filename=\"log-{i:02}.txt\"\r\n\r\n"
            )
            .as_bytes(),
        );
        for _ in 0..(1024 * 1024 - 200) / line.len() {
            raw.extend_from_slice(line.as_bytes());
        }
    }
    raw.extend_from_slice(b"--t--\r\n");
    raw
}

/// Within every limit but as costly as they allow: a 40 MB message of as many
/// parts as allowed, and one of forty 1 MB text attachments.
#[test]
fn the_costliest_messages_within_the_limits_stay_within_memory() {
    for (name, raw) in [
        ("40mb-in-11000-parts", forty_mb_of_small_attachments()),
        ("40mb-of-text-attachments", forty_mb_of_text_attachments()),
    ] {
        let m = measure(name, &raw);
        assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"), "{name}");
        assert_ticket_bounded(name, &m);
        assert_memory_bounded(name, &m);
    }
}

// ------------------------------------------------------------------ zip bomb

/// Writes bits least significant first, as DEFLATE does (RFC 1951, 3.1.1).
struct Bits {
    out: Vec<u8>,
    acc: u64,
    count: u32,
}

impl Bits {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            acc: 0,
            count: 0,
        }
    }
    fn put(&mut self, value: u32, count: u32) {
        self.acc |= u64::from(value) << self.count;
        self.count += count;
        while self.count >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.count -= 8;
        }
    }
    /// A Huffman code goes most significant bit first.
    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        if self.count > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A DEFLATE stream of `size` zero bytes: one block with dynamic Huffman codes
/// in which "length 258, distance 1" costs two bits. A literal zero, then
/// copies of the 258 bytes before, then the odd bytes as literals: about
/// 1/1030 of the size (the most DEFLATE allows).
fn deflate_zeros(size: u64) -> Vec<u8> {
    let (copies, odd) = ((size - 1) / 258, (size - 1) % 258);
    let mut bits = Bits::new();
    bits.put(1, 1); // the final block
    bits.put(2, 2); // dynamic Huffman codes
    bits.put(286 - 257, 5); // literal/length codes 0..=285
    bits.put(2 - 1, 5); // distance codes 0 and 1
    // Code-length code lengths, in the order RFC 1951 sends them, up to the
    // last one used (symbol 1): 18 -> 1 bit, 1 and 2 -> 2 bits.
    const ORDER: [u32; 18] = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1];
    bits.put(ORDER.len() as u32 - 4, 4);
    for symbol in ORDER {
        bits.put(
            match symbol {
                18 => 1,
                1 | 2 => 2,
                _ => 0,
            },
            3,
        );
    }
    // Their canonical codes: 18 = 0, 1 = 10, 2 = 11.
    let (len1, len2) = ((0b10, 2), (0b11, 2));
    let zeros = |bits: &mut Bits, run: u32| {
        bits.code(0, 1);
        bits.put(run - 11, 7);
    };
    // Literal/length code lengths: 0 -> 2, 256 -> 2, 285 -> 1, the rest unused;
    // distance code lengths: 0 -> 1, 1 -> 1.
    bits.code(len2.0, len2.1); // literal 0
    zeros(&mut bits, 138); // literals 1..=138
    zeros(&mut bits, 117); // literals 139..=255
    bits.code(len2.0, len2.1); // end of block (256)
    zeros(&mut bits, 28); // lengths 257..=284
    bits.code(len1.0, len1.1); // length 258 (285)
    bits.code(len1.0, len1.1); // distance 1
    bits.code(len1.0, len1.1); // distance 2 (unused, completes the code)
    // The data. Canonical codes: 285 = 0, literal 0 = 10, end of block = 11;
    // distance 1 = 0.
    bits.code(0b10, 2);
    for _ in 0..copies {
        bits.code(0, 1);
        bits.code(0, 1);
    }
    for _ in 0..odd {
        bits.code(0b10, 2);
    }
    bits.code(0b11, 2);
    bits.finish()
}

/// CRC-32 (ISO-HDLC, as zip uses) of `n` zero bytes. Feeding a zero byte is a
/// linear map of the CRC register, so it is a 32x32 bit matrix; n bytes are
/// its n-th power, by squaring.
fn crc32_of_zeros(n: u64) -> u32 {
    fn zero_byte(mut reg: u32) -> u32 {
        for _ in 0..8 {
            reg = if reg & 1 == 1 {
                (reg >> 1) ^ 0xEDB8_8320
            } else {
                reg >> 1
            };
        }
        reg
    }
    fn apply(matrix: &[u32; 32], v: u32) -> u32 {
        (0..32)
            .filter(|i| (v >> i) & 1 == 1)
            .fold(0, |acc, i| acc ^ matrix[i])
    }
    let mut matrix: [u32; 32] = std::array::from_fn(|i| zero_byte(1 << i));
    let (mut reg, mut n) = (0xFFFF_FFFFu32, n);
    while n > 0 {
        if n & 1 == 1 {
            reg = apply(&matrix, reg);
        }
        matrix = std::array::from_fn(|i| apply(&matrix, matrix[i]));
        n >>= 1;
    }
    !reg
}

/// A zip archive (PKWARE APPNOTE 4.3) holding `name`: `size` zero bytes, deflated.
fn zip_of_zeros(name: &str, size: u32) -> Vec<u8> {
    let data = deflate_zeros(u64::from(size));
    let crc = crc32_of_zeros(u64::from(size));
    let (compressed, name_len) = (data.len() as u32, name.len() as u16);
    let mut zip = Vec::new();
    let entry = |zip: &mut Vec<u8>| {
        zip.extend(20u16.to_le_bytes()); // version needed: 2.0 (deflate)
        zip.extend(0u16.to_le_bytes()); // flags
        zip.extend(8u16.to_le_bytes()); // deflate
        zip.extend(0u16.to_le_bytes()); // 00:00:00
        zip.extend(0x0021u16.to_le_bytes()); // 1980-01-01
        zip.extend(crc.to_le_bytes());
        zip.extend(compressed.to_le_bytes());
        zip.extend(size.to_le_bytes());
        zip.extend(name_len.to_le_bytes());
        zip.extend(0u16.to_le_bytes()); // no extra field
    };
    zip.extend(0x0403_4b50u32.to_le_bytes());
    entry(&mut zip);
    zip.extend(name.as_bytes());
    zip.extend(&data);
    let directory = zip.len() as u32;
    zip.extend(0x0201_4b50u32.to_le_bytes());
    zip.extend(20u16.to_le_bytes()); // made by 2.0
    entry(&mut zip);
    zip.extend(0u16.to_le_bytes()); // no comment
    zip.extend(0u16.to_le_bytes()); // disk 0
    zip.extend(0u16.to_le_bytes()); // internal attributes
    zip.extend(0u32.to_le_bytes()); // external attributes
    zip.extend(0u32.to_le_bytes()); // the local header's offset
    zip.extend(name.as_bytes());
    let directory_len = zip.len() as u32 - directory;
    zip.extend(0x0605_4b50u32.to_le_bytes());
    zip.extend([0u8; 4]); // this disk, the directory's disk
    zip.extend(1u16.to_le_bytes());
    zip.extend(1u16.to_le_bytes());
    zip.extend(directory_len.to_le_bytes());
    zip.extend(directory.to_le_bytes());
    zip.extend(0u16.to_le_bytes()); // no comment
    zip
}

/// 1 GiB of zeros in a zip of about 1 MB.
const BOMB_SIZE: u32 = 1 << 30;

fn mail_with_zip(zip: &[u8]) -> Vec<u8> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(zip);
    let mut raw = head("zip-bomb", "Invoice", "multipart/mixed; boundary=\"z\"")
        + "\r\n--z\r\nContent-Type: text/plain\r\n\r\nPlease find the invoice attached.\r\n\
           --z\r\nContent-Type: application/zip; name=\"invoice.zip\"\r\n\
           Content-Disposition: attachment; filename=\"invoice.zip\"\r\nContent-Transfer-Encoding: base64\r\n\r\n";
    for line in encoded.as_bytes().chunks(76) {
        raw.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        raw.push_str("\r\n");
    }
    raw.push_str("--z--\r\n");
    raw.into_bytes()
}

#[test]
fn the_zip_bomb_is_honest() {
    // The CRC by matrix powers agrees with the plain bit-by-bit CRC.
    for n in [0u64, 1, 7, 258, 1000] {
        let plain = !(0..n).fold(0xFFFF_FFFFu32, |mut reg, _| {
            for _ in 0..8 {
                reg = if reg & 1 == 1 {
                    (reg >> 1) ^ 0xEDB8_8320
                } else {
                    reg >> 1
                };
            }
            reg
        });
        assert_eq!(crc32_of_zeros(n), plain, "{n} zeros");
    }
    // zlib.crc32 over 1 GiB of zeros says so too.
    assert_eq!(crc32_of_zeros(1 << 30), 0x5b64_c2b0);
    let zip = zip_of_zeros("zeros.bin", BOMB_SIZE);
    assert!(zip.len() < 1_100_000, "{} bytes", zip.len());
    assert!(u64::from(BOMB_SIZE) / zip.len() as u64 > 1000, "ratio");
}

#[test]
fn a_zip_bomb_is_listed_with_its_compressed_size_and_never_opened() {
    let zip = zip_of_zeros("zeros.bin", BOMB_SIZE);
    if let Some(dir) = std::env::var_os("INPUT_LIMITS_KEEP") {
        std::fs::write(std::path::Path::new(&dir).join("bomb.zip"), &zip).expect("kept");
    }
    let m = measure("zip-bomb", &mail_with_zip(&zip));
    assert_eq!((m.kind(), m.disposition()), ("unknown", "ticket"));
    let attachment = &m.triage["ticket"]["attachments"][0];
    assert_eq!(attachment["name"], "invoice.zip");
    assert_eq!(attachment["content_type"], "application/zip");
    assert_eq!(
        attachment["size"].as_u64(),
        Some(zip.len() as u64),
        "listed with its compressed size"
    );
    assert!(
        m.body().contains("invoice.zip (application/zip, 1016."),
        "{}",
        m.body()
    );
    assert_ticket_bounded("zip-bomb", &m);
    // Opening it would take a GiB; the whole run stays near the baseline.
    assert!(
        m.peak_rss < *BASELINE + 32 * MIB,
        "peak RSS {} MiB",
        m.peak_rss / MIB
    );
}

// ------------------------------------------------------------------ encoded-words

static TRIAGER: LazyLock<Triager> = LazyLock::new(Triager::default);

fn triage(raw: &str) -> Triage {
    TRIAGER.triage(raw.as_bytes(), "encoded-words.eml", None)
}

#[test]
fn malformed_encoded_words_are_shown_as_written_or_replaced() {
    let huge_word = format!(
        "=?utf-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode("Invoice ".repeat(100_000))
    );
    let many_words = "=?utf-8?Q?ok?= ".repeat(20_000);
    // (what is written, what the ticket may show of it)
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        (
            "invalid base64",
            "=?utf-8?B?!!!?=".into(),
            Some("=?utf-8?B?!!!?="),
        ),
        (
            "unterminated",
            "=?utf-8?Q?unterminated".into(),
            Some("=?utf-8?Q?unterminated"),
        ),
        (
            "unknown charset",
            "=?x-no-such-charset?Q?Invoice_12?=".into(),
            Some("Invoice 12"),
        ),
        (
            "unknown encoding",
            "=?utf-8?X?abc?=".into(),
            Some("=?utf-8?X?abc?="),
        ),
        (
            "bad quoted-printable",
            "=?utf-8?Q?a=ZZb?=".into(),
            Some("=?utf-8?Q?a=ZZb?="),
        ),
        (
            "invalid UTF-8 inside",
            "=?utf-8?B?/w==?= Invoice".into(),
            Some("Invoice"),
        ),
        (
            "cut multibyte character",
            "=?utf-8?Q?caf=C3?= Invoice".into(),
            Some("Invoice"),
        ),
        ("huge", huge_word, Some("Invoice Invoice")),
        ("twenty thousand words", many_words, Some("ok")),
    ];
    for (name, word, shown) in &cases {
        for header in ["Subject", "From"] {
            let raw = if header == "Subject" {
                head("ew", word, "text/plain") + "\r\nBody text.\r\n"
            } else {
                head("ew", "Encoded sender", "text/plain")
                    .replace("From: Vendor Reports <", &format!("From: {word} <"))
                    + "\r\nBody text.\r\n"
            };
            let t = triage(&raw);
            let what = format!("{name} in {header}");
            assert_eq!(
                (t.kind, t.disposition),
                (Kind::Unknown, Disposition::Ticket),
                "{what}"
            );
            let ticket = t.ticket.as_ref().expect("a ticket");
            assert!(ticket.subject.chars().count() <= 250, "{what}");
            assert!(
                ticket.body.len() < 20_000,
                "{what}: body is {} bytes",
                ticket.body.len()
            );
            let line = ticket
                .body
                .lines()
                .find(|l| l.starts_with(&format!("{header}: ")))
                .unwrap_or_else(|| panic!("{what}: no {header} line in {}", ticket.body));
            if let Some(shown) = shown {
                assert!(line.contains(shown), "{what}: {line:.300}");
            }
            assert!(
                !line.contains('\r') && line.chars().count() < 1_100,
                "{what}: {line:.300}"
            );
            eprintln!("{what:<40} -> {:.120}", line);
        }
    }
}
