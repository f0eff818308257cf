//! Hostile and broken input: every case gets a clear outcome and nothing panics.

use rootmail_domain::{Disposition, Kind, Triage};
use rootmail_tests::{Triager, XorShift};
use std::sync::LazyLock;

static TRIAGER: LazyLock<Triager> = LazyLock::new(Triager::default);

fn run(raw: &[u8]) -> Triage {
    TRIAGER.triage(raw, "generated.eml", Some("generated.eml"))
}

const ROOT: &str = "root+a7f3k9q2@root.example-msp.com";

#[test]
fn a_30_mb_message_is_triaged_with_its_text_truncated_and_attachment_listed() {
    let mut rng = XorShift::new(30);
    let mut raw = format!(
        "From: Big Sender <big@vendor.example>\r\nTo: {ROOT}\r\nSubject: Quarterly export\r\nMessage-ID: <big-1@vendor.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    let line = "All work and no play makes a very long report line indeed.\r\n";
    while raw.len() < 2 * 1024 * 1024 {
        raw.extend_from_slice(line.as_bytes());
    }
    raw.extend_from_slice(b"\r\n--b1\r\nContent-Type: application/octet-stream; name=\"export.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    while raw.len() < 30 * 1024 * 1024 {
        let chunk: Vec<u8> = rng
            .bytes(76)
            .into_iter()
            .map(|b| ALPHABET[(b % 64) as usize])
            .collect();
        raw.extend_from_slice(&chunk);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"--b1--\r\n");

    let t = run(&raw);
    assert_eq!(t.kind, Kind::Unknown);
    assert_eq!(t.disposition, Disposition::Ticket);
    assert_eq!(
        t.account_id.as_ref().map(|a| a.as_str()),
        Some("111122223333")
    );
    let ticket = t.ticket.expect("a ticket");
    assert!(ticket.body.contains("[truncated: "), "the 2 MB text is cut");
    assert!(
        ticket.body.len() < 40_000,
        "ticket body is {} bytes",
        ticket.body.len()
    );
    assert!(
        ticket
            .body
            .contains("export.bin (application/octet-stream, 2"),
        "attachment listed with its size"
    );
}

#[test]
fn five_thousand_recipients_resolve_and_stay_out_of_the_ticket() {
    let mut to: Vec<String> = (0..4999)
        .map(|i| format!("person{i}@bulk.example"))
        .collect();
    to.push(ROOT.to_string());
    let raw = format!(
        "From: Mass Mailer <news@bulk.example>\r\nTo: {}\r\nSubject: Hello everyone\r\nMessage-ID: <mass@bulk.example>\r\n\r\nHi all.\r\n",
        to.join(",\r\n ")
    );
    let t = run(raw.as_bytes());
    assert_eq!(
        t.account_id.as_ref().map(|a| a.as_str()),
        Some("111122223333")
    );
    let body = t.ticket.expect("a ticket").body;
    assert!(body.contains("(and 4995 more)"), "{body}");
    assert!(body.len() < 5_000, "ticket body is {} bytes", body.len());
}

#[test]
fn random_and_mangled_bytes_never_panic() {
    let mut rng = XorShift::new(7);
    let fixtures: Vec<Vec<u8>> = rootmail_tests::eml_files(&rootmail_tests::corpus_dir())
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .filter(|raw| !raw.is_empty())
        .collect();
    let mut rounds = 0;
    for fixture in &fixtures {
        let len = (rng.next_u64() % 4096) as usize;
        let mut flipped = fixture.clone();
        for _ in 0..20 {
            let i = (rng.next_u64() as usize) % flipped.len();
            flipped[i] = rng.next_u64() as u8;
        }
        let cut = fixture[..(rng.next_u64() as usize) % fixture.len()].to_vec();
        // Random bytes, bytes flipped at random places, a message cut anywhere.
        for raw in [rng.bytes(len), flipped, cut] {
            let t = run(&raw);
            assert!(
                t.ticket.is_some() || t.disposition != Disposition::Ticket,
                "round {rounds}: a ticket disposition has a ticket"
            );
            rounds += 1;
        }
    }
    assert!(rounds >= 200, "{rounds} rounds");
}

#[test]
fn deeply_nested_multiparts_and_huge_headers_finish() {
    let mut raw = format!("From: x@nest.example\r\nTo: {ROOT}\r\nSubject: nested\r\n");
    for depth in 0..200 {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"n{depth}\"\r\n\r\n--n{depth}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    let t = run(raw.as_bytes());
    assert_eq!(t.kind, Kind::Unknown);

    let long_header = format!(
        "From: x@h.example\r\nTo: {ROOT}\r\nX-Long: {}\r\nSubject: long\r\n\r\nbody",
        "a".repeat(1_000_000)
    );
    let t = run(long_header.as_bytes());
    assert_eq!(t.disposition, Disposition::Ticket);
}

/// Found by `make fuzz`: MIME nesting that reaches a `debug_assert!` inside
/// mail-parser 0.11 ("Invalid part ID, could not find multipart"). Its release
/// build steps over it; the workspace's debug builds now do the same
/// (`[profile.dev.package.mail-parser]`), so hostile mail is triaged, not a
/// panic, in every build.
#[test]
fn mime_nesting_that_trips_mail_parsers_debug_assert_is_triaged() {
    let raw = std::fs::read(
        rootmail_tests::workspace_root().join("tests/hostile/mail-parser-debug-assert.eml"),
    )
    .unwrap();
    let triage = run(&raw);
    assert!(
        matches!(
            triage.disposition,
            Disposition::Ticket | Disposition::Quarantine | Disposition::Archive
        ),
        "{:?}",
        triage.disposition
    );
}
