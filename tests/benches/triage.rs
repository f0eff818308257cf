//! Triage throughput over the whole corpus, with mail-parser's parse alone as the
//! baseline measured in the same run (compare the two, not absolute numbers).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rootmail_tests::{Triager, corpus_dir, eml_files};
use std::hint::black_box;
use std::time::Duration;

fn corpus() -> Vec<(String, Vec<u8>)> {
    eml_files(&corpus_dir())
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).expect("fixture")))
        .collect()
}

fn bench(c: &mut Criterion) {
    let mail = corpus();
    let bytes: u64 = mail.iter().map(|(_, raw)| raw.len() as u64).sum();
    let triager = Triager::default();
    let run_triage = || {
        for (origin, raw) in &mail {
            black_box(triager.triage(raw, origin, None));
        }
    };
    let run_parse = || {
        for (_, raw) in &mail {
            black_box(mail_parser::MessageParser::default().parse(raw.as_slice()));
        }
    };

    let mut group = c.benchmark_group("corpus");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(30);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("triage_bytes", |b| b.iter(run_triage));
    group.bench_function("parse_only_bytes", |b| b.iter(run_parse));
    group.throughput(Throughput::Elements(mail.len() as u64));
    group.bench_function("triage_messages", |b| b.iter(run_triage));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
