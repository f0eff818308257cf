//! Triage throughput, each beside a baseline measured in the same run (compare
//! the two, not absolute numbers: timings on a shared machine are noisy).
//!
//! - `corpus`: every corpus message once per iteration, reported in messages/s
//!   and bytes/s; the baseline is mail-parser's parse alone. rootmail's own
//!   parse beside them shows how much of triage's time is parsing.
//! - `message_40mib`: the largest message SES delivers (an abuse report with a
//!   base64 attachment, just under 40 MiB); the baselines are mail-parser's
//!   parse alone and a plain scan of the same bytes (counting lines).
//!
//! Both run on mimalloc, the CLI's allocator.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use rootmail_tests::large_mail::{JUST_UNDER_LIMIT, SES_LIMIT, abuse_report_with_evidence};
use rootmail_tests::{Triager, corpus_dir, eml_files};
use std::hint::black_box;
use std::time::Duration;

/// The allocator of `rootmail triage` and `rootmail run`, where triage's speed
/// matters (the Lambdas keep the system's: a message there waits on S3).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn corpus() -> Vec<(String, Vec<u8>)> {
    eml_files(&corpus_dir())
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("fixture")))
        .collect()
}

fn parse_only(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    mail_parser::MessageParser::default().parse(raw)
}

/// The floor: read every byte once. Counted 255 bytes at a time into a `u8`,
/// which the compiler turns into vector instructions.
fn count_lines(raw: &[u8]) -> usize {
    raw.chunks(255)
        .map(|chunk| chunk.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')))
        .map(usize::from)
        .sum()
}

fn corpus_bench(c: &mut Criterion) {
    let mail = corpus();
    let bytes: u64 = mail.iter().map(|(_, raw)| raw.len() as u64).sum();
    let triager = Triager::default();

    let mut group = c.benchmark_group("corpus");
    group
        .measurement_time(Duration::from_secs(8))
        .sample_size(30)
        .throughput(Throughput::ElementsAndBytes {
            elements: mail.len() as u64,
            bytes,
        });
    group.bench_function("triage", |b| {
        b.iter(|| {
            for (origin, raw) in &mail {
                black_box(triager.triage(raw, origin, None));
            }
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            for (_, raw) in &mail {
                black_box(parse_only(raw));
            }
        })
    });
    // Where triage's time goes: rootmail's own parse is mail-parser's plus
    // what triage reads beside it (the shape check, unfolded headers, text
    // from HTML), before any classification.
    group.bench_function("rootmail_parse", |b| {
        b.iter(|| {
            for (_, raw) in &mail {
                black_box(rootmail_domain::mail::parse(raw)).ok();
            }
        })
    });
    group.finish();
}

fn large_message_bench(c: &mut Criterion) {
    let raw = abuse_report_with_evidence(JUST_UNDER_LIMIT, 1);
    let triager = Triager::default();
    let origin = "s3://bench/inbound/large";
    let triage = triager.triage(&raw, origin, None);
    println!(
        "message_40mib: {} bytes ({} under 40 MiB), triaged as {} / {}",
        raw.len(),
        SES_LIMIT - raw.len(),
        triage.kind.as_str(),
        triage.disposition.as_str()
    );

    let mut group = c.benchmark_group("message_40mib");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(raw.len() as u64));
    group.bench_function("triage", |b| {
        b.iter(|| black_box(triager.triage(&raw, origin, None)))
    });
    group.bench_function("parse_only", |b| b.iter(|| black_box(parse_only(&raw))));
    group.bench_function("line_scan", |b| b.iter(|| count_lines(black_box(&raw))));
    group.finish();
}

criterion_group!(benches, corpus_bench, large_message_bench);
criterion_main!(benches);
