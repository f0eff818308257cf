//! The local pipeline end to end: ledger, threads and tickets in the embedded
//! store, with every message delivered more than once.

use pollster::block_on;
use rootmail_domain::{ContentHash, InMemoryDirectory, Kind, Priority, Rules, ThreadKey};
use rootmail_local::{LocalStore, StoreError};
use rootmail_pipeline::{
    DEFAULT_STALE_CLAIM_SECS, IngestPorts, Ingested, Knowledge, Ledger, NewTicket, Prepared,
    TicketOp, TicketSink, Written, ingest, ingest_prepared, write_ticket,
};
use rootmail_tests::{corpus_dir, directory, eml_files, relative};
use std::collections::{HashMap, HashSet};
use std::path::Path;

struct Env {
    _dir: tempfile::TempDir,
    store: LocalStore,
    directory: InMemoryDirectory,
    rules: Rules,
}

impl Env {
    fn new() -> Self {
        Self::open(tempfile::tempdir().expect("tempdir"))
    }

    /// A run on an existing state directory.
    fn open(dir: tempfile::TempDir) -> Self {
        let store = LocalStore::open(dir.path()).expect("store opens");
        Self {
            _dir: dir,
            store,
            directory: directory(),
            rules: Rules::built_in(),
        }
    }

    fn ingest_at(&self, raw: &[u8], source: &str, now: u64) -> Ingested {
        let knowledge = Knowledge::new(&self.rules, &rootmail_pipeline::NoHandoffs);
        let s = &self.store;
        let ports = IngestPorts {
            archive: s,
            ledger: s,
            threads: s,
            accounts: &self.directory,
        };
        block_on(ingest(ports, &knowledge, raw, source, now)).expect("ingest")
    }

    /// Ingest and apply the ticket operation, as the two Lambdas would in turn.
    fn deliver(&self, path: &Path) -> Option<Written> {
        let raw = std::fs::read(path).expect("fixture");
        self.apply(self.ingest_at(&raw, &relative(path), 1_000))
    }

    /// [`Env::deliver`] with the message prepared and triaged ahead, as
    /// `rootmail run` does on its other cores.
    fn deliver_triaged_ahead(&self, path: &Path) -> Option<Written> {
        let (raw, source) = (std::fs::read(path).expect("fixture"), relative(path));
        let origin = |hash: &ContentHash| self.store.archive_ref(hash);
        let prepared = Prepared::triaged_ahead(&raw, &source, origin, &self.directory, &self.rules);
        assert!(prepared.has_triage_ahead());
        let knowledge = Knowledge::new(&self.rules, &rootmail_pipeline::NoHandoffs);
        let s = &self.store;
        let ports = IngestPorts {
            archive: s,
            ledger: s,
            threads: s,
            accounts: &self.directory,
        };
        let ingested = block_on(ingest_prepared(
            ports, &knowledge, &raw, prepared, &source, 1_000,
        ));
        self.apply(ingested.expect("ingest"))
    }

    fn apply(&self, ingested: Ingested) -> Option<Written> {
        match ingested {
            Ingested::Triaged { op: Some(op), .. } => Some(self.write(&op)),
            _ => None,
        }
    }

    fn write(&self, op: &TicketOp) -> Written {
        let s = &self.store;
        let ports = s.writer_ports(s);
        block_on(write_ticket(ports, op, 1_000)).expect("write")
    }
}

#[test]
fn the_corpus_delivered_twice_lands_exactly_once() {
    let env = Env::new();
    let files = eml_files(&corpus_dir());
    let mut ticket_threads: HashMap<String, usize> = HashMap::new();
    for path in &files {
        if let Some(written) = env.deliver(path) {
            *ticket_threads
                .entry(written.ticket_id().to_string())
                .or_default() += 1;
        }
    }
    // Every message has one finished ledger row.
    let rows = env.store.ledger_rows().expect("ledger");
    assert_eq!(rows.len(), files.len());
    assert!(
        rows.iter()
            .all(|r| r.status == rootmail_pipeline::LedgerStatus::Done && r.disposition.is_some())
    );

    // Tickets are the distinct threads of the messages that needed one.
    let ticket_rows: Vec<_> = rows.iter().filter(|r| r.ticket_id.is_some()).collect();
    let threads: HashSet<_> = ticket_rows.iter().map(|r| r.thread_key.clone()).collect();
    let tickets = env.store.tickets().expect("tickets");
    assert_eq!(tickets.len(), threads.len());
    let comments: usize = tickets.iter().map(|t| t.comments.len()).sum();
    assert_eq!(comments, ticket_rows.len() - tickets.len());
    for t in &tickets {
        assert_eq!(
            t.comments.len() + 1,
            ticket_threads[&t.id],
            "ticket #{} ({})",
            t.id,
            t.thread_key
        );
    }
    // The corpus' known threads: one support case of three mails, two budget alerts, a reply.
    let case = tickets
        .iter()
        .find(|t| t.thread_key.as_str() == "case:111122223333:177821827800850")
        .expect("case ticket");
    assert_eq!(case.comments.len(), 2);
    assert_eq!(
        case.priority,
        Priority::High,
        "the urgent correspondence raised the ticket"
    );

    // Everything again, in reverse order: nothing new anywhere.
    for path in files.iter().rev() {
        let raw = std::fs::read(path).expect("fixture");
        assert!(
            matches!(
                env.ingest_at(&raw, &relative(path), 2_000),
                Ingested::Duplicate(_)
            ),
            "{}",
            relative(path)
        );
    }
    assert_eq!(env.store.tickets().expect("tickets"), tickets);
    assert_eq!(env.store.ledger_rows().expect("ledger").len(), files.len());
}

/// SES delivers at least once: a second delivery is an object of its own
/// whose block SES wrote anew. It is the first message again, not a second
/// comment on its ticket.
#[test]
fn a_second_ses_delivery_is_the_same_message() {
    let env = Env::new();
    let path = corpus_dir().join("security.exposed_key/01-plain.eml");
    let raw = std::fs::read(&path).expect("fixture");
    let first = env.deliver(&path).expect("a ticket");
    let again = rootmail_tests::another_ses_delivery(&raw, 2);
    match env.ingest_at(&again, "inbound/second-delivery", 2_000) {
        Ingested::Duplicate(row) => assert_eq!(row.source, relative(&path)),
        other => panic!("a second delivery was processed again: {other:?}"),
    }
    // A delivery to another of our addresses is a message of its own.
    let text = String::from_utf8(again).unwrap();
    let elsewhere = text.replacen(" for root+", " for other+root+", 1);
    assert_ne!(elsewhere, text);
    assert!(matches!(
        env.ingest_at(elsewhere.as_bytes(), "inbound/elsewhere", 2_000),
        Ingested::Triaged { .. }
    ));
    let tickets = env.store.tickets().expect("tickets");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].id, first.ticket_id());
    assert!(tickets[0].comments.is_empty(), "{:?}", tickets[0].comments);
    assert_eq!(env.store.ledger_rows().expect("ledger").len(), 2);
}

/// Mail the ledger has under the bytes' hash (claimed before SES's block was
/// left out of the key), delivered again or replayed from the bucket, stays
/// under that row: not ticketed again.
#[test]
fn mail_finished_under_the_bytes_hash_is_a_duplicate() {
    let env = Env::new();
    let path = corpus_dir().join("security.exposed_key/01-plain.eml");
    let raw = std::fs::read(&path).expect("fixture");
    let bytes_hash = ContentHash::of(&raw);
    assert_ne!(bytes_hash, Prepared::of(&raw).hash);
    let mut row = rootmail_pipeline::LedgerRow::claimed(&bytes_hash, "an older run", 100);
    row.status = rootmail_pipeline::LedgerStatus::Done;
    block_on(env.store.record(&row)).expect("record");
    match env.ingest_at(&raw, &relative(&path), 2_000) {
        Ingested::Duplicate(found) => assert_eq!(found.content_hash, bytes_hash),
        other => panic!("processed again: {other:?}"),
    }
    assert_eq!(env.store.ledger_rows().expect("ledger").len(), 1);

    // Queued then, not yet written: its operation again, under the hash the
    // writer knows it by (so its ticket gets no second comment).
    row.status = rootmail_pipeline::LedgerStatus::Queued;
    block_on(env.store.record(&row)).expect("record");
    match env.ingest_at(&raw, &relative(&path), 3_000) {
        Ingested::Triaged { op: Some(op), .. } => assert_eq!(op.message, bytes_hash),
        other => panic!("not queued again under its row: {other:?}"),
    }
    assert_eq!(env.store.ledger_rows().expect("ledger").len(), 1);
}

fn op(message: &str, thread: &str) -> TicketOp {
    TicketOp {
        message: ContentHash::of(message.as_bytes()),
        thread_key: ThreadKey::message(thread),
        kind: Kind::Unknown,
        priority: Priority::Normal,
        account_id: None,
        customer: None,
        subject: format!("subject of {message}"),
        body: format!("body of {message}"),
        internal_note: String::new(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    }
}

#[test]
fn redelivered_ticket_operations_have_no_second_effect() {
    let env = Env::new();
    let first = op("m1", "t@x");
    let created: Vec<Written> = (0..3).map(|_| env.write(&first)).collect();
    assert!(
        created
            .iter()
            .all(|w| matches!(w, Written::Created { ticket_id } if ticket_id == "1")),
        "{created:?}"
    );
    let second = op("m2", "t@x");
    let commented: Vec<Written> = (0..3).map(|_| env.write(&second)).collect();
    assert!(commented.iter().all(|w| w == &commented[0]));
    let tickets = env.store.tickets().expect("tickets");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].comments.len(), 1);
}

#[test]
fn a_crash_between_create_and_record_does_not_make_a_second_ticket() {
    let env = Env::new();
    let first = op("m1", "t@x");
    // The backend created the ticket, then the writer died before the thread map.
    let ticket = NewTicket {
        thread_key: first.thread_key.clone(),
        idempotency_key: rootmail_pipeline::idempotency_key(&first.thread_key),
        subject: first.subject.clone(),
        body: first.body.clone(),
        priority: first.priority,
        kind: first.kind,
        account_id: None,
        customer: None,
        message: first.message.clone(),
        internal_note: String::new(),
        attachments: Vec::new(),
        found_absent: false,
    };
    let id = block_on(env.store.create(&ticket)).expect("create");
    assert_eq!(
        env.write(&first),
        Written::Created {
            ticket_id: id.clone()
        }
    );
    // A later message of the same thread, also after a lost record, comments.
    let second = op("m2", "t@x");
    assert!(matches!(env.write(&second), Written::Commented { ticket_id, .. } if ticket_id == id));
    let tickets = env.store.tickets().expect("tickets");
    assert_eq!((tickets.len(), tickets[0].comments.len()), (1, 1));
}

/// A message whose ticket operation is still queued is triaged again when
/// it comes again (SES's second copy, a duplicate event, a retry), and the
/// stores may have changed meanwhile: its account imported, so its thread
/// key is another. Its operation keeps the thread it was queued under:
/// before, the second went to another FIFO group, ran beside the first, and
/// both made a ticket.
#[test]
fn a_queued_message_triaged_again_keeps_its_thread() {
    let mut env = Env::new();
    let raw = b"From: Someone <someone@example.net>\r\nTo: root+a7f3k9q2@root.example-msp.com\r\n\
        Subject: hello\r\nMessage-ID: <q1@example.net>\r\n\r\nA question.\r\n";
    env.directory = InMemoryDirectory::new([]).expect("an empty directory");
    let first = match env.ingest_at(raw, "first", 1_000) {
        Ingested::Triaged { op: Some(op), .. } => op,
        other => panic!("{other:?}"),
    };
    // The account is imported; the operation has not been written yet.
    env.directory = directory();
    let again = match env.ingest_at(raw, "again", 1_400) {
        Ingested::Triaged { op: Some(op), .. } => op,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        again.thread_key, first.thread_key,
        "one FIFO group for one message"
    );
    let (a, b) = (env.write(&first), env.write(&again));
    assert_eq!(a.ticket_id(), b.ticket_id(), "one ticket");
}

#[test]
fn a_fresh_claim_is_left_alone_and_a_stale_one_taken_over() {
    let env = Env::new();
    let raw = std::fs::read(corpus_dir().join("billing.budget_alert/01-monthly-prod.eml"))
        .expect("fixture");
    let hash = Prepared::of(&raw).hash;
    // A run claimed it at t=100 and crashed.
    block_on(
        env.store
            .claim(&hash, "crashed run", 100, DEFAULT_STALE_CLAIM_SECS),
    )
    .expect("claim");
    assert!(matches!(env.ingest_at(&raw, "retry", 160), Ingested::Busy));
    let later = 100 + DEFAULT_STALE_CLAIM_SECS + 1;
    assert!(matches!(
        env.ingest_at(&raw, "retry", later),
        Ingested::Triaged { op: Some(_), .. }
    ));
}

#[test]
fn a_claim_left_by_an_earlier_run_is_taken_over_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw = std::fs::read(corpus_dir().join("billing.budget_alert/01-monthly-prod.eml"))
        .expect("fixture");
    let hash = Prepared::of(&raw).hash;
    {
        // A run claimed the message and died before finishing it.
        let crashed = LocalStore::open(dir.path()).expect("store opens");
        block_on(crashed.claim(&hash, "crashed run", 100, DEFAULT_STALE_CLAIM_SECS))
            .expect("claim");
    }
    let env = Env::open(dir);
    assert!(matches!(
        env.ingest_at(&raw, "next run", 101),
        Ingested::Triaged { op: Some(_), .. }
    ));
}

#[test]
fn a_reply_that_arrives_before_its_original_still_shares_its_ticket() {
    let env = Env::new();
    let reply = env
        .deliver(&corpus_dir().join("unknown/02-colleague-reply.eml"))
        .expect("a ticket");
    let original = env
        .deliver(&corpus_dir().join("unknown/01-colleague.eml"))
        .expect("a ticket");
    assert!(matches!(reply, Written::Created { .. }));
    assert!(
        matches!(&original, Written::Commented { ticket_id, .. } if ticket_id == reply.ticket_id())
    );
}

/// A reply joins the thread of the mail it answers; a support case's thread
/// only when AWS sent the reply (authenticated, for the case's account): a
/// stranger's reply to a case mail gets its own ticket (issue 13, point 5).
#[test]
fn a_reply_joins_a_case_thread_only_when_aws_sent_it() {
    let env = Env::new();
    let case = env
        .deliver(&corpus_dir().join("support.case/01-case-created.eml"))
        .expect("ticket");
    let raw =
        std::fs::read(corpus_dir().join("support.case/01-case-created.eml")).expect("fixture");
    let case_message_id = rootmail_domain::mail::parse(&raw)
        .expect("parses")
        .message_id
        .expect("has an id");
    let reply = |from: &str, ses: &str, id: &str| reply_to(&case_message_id, from, ses, id);
    let stranger = reply("Dev <dev@acme.example>", "", "notes-1@acme.example");
    match env.ingest_at(stranger.as_bytes(), "reply.eml", 1_000) {
        Ingested::Triaged { op: Some(op), .. } => {
            assert_eq!(
                op.thread_key.as_str(),
                format!("msg:unverified:111122223333:{case_message_id}")
            );
            assert!(matches!(env.write(&op), Written::Created { .. }));
        }
        other => panic!("expected a ticket operation, got {other:?}"),
    }
    let from_aws = reply(AWS_SUPPORT, SES_PASSED, "notes-2@amazon.com");
    match env.ingest_at(from_aws.as_bytes(), "aws-reply.eml", 1_001) {
        Ingested::Triaged { op: Some(op), .. } => {
            assert_eq!(op.thread_key.as_str(), "case:111122223333:177821827800850");
            assert!(
                matches!(env.write(&op), Written::Commented { ticket_id, .. } if ticket_id == case.ticket_id())
            );
        }
        other => panic!("expected a ticket operation, got {other:?}"),
    }
}

/// A reply to the mail `case_message_id` whose only link to it is its
/// headers: its thread is the one the stores know for that mail.
fn reply_to(case_message_id: &str, from: &str, ses: &str, id: &str) -> String {
    format!(
        "{ses}From: {from}\r\nTo: root+a7f3k9q2@root.example-msp.com\r\nSubject: our notes\r\n\
         Message-ID: <{id}>\r\nIn-Reply-To: <{case_message_id}>\r\nReferences: <{case_message_id}>\r\n\r\nnotes\r\n"
    )
}

const AWS_SUPPORT: &str = "AWS Support <no-reply-aws@amazon.com>";

/// What SES adds to mail AWS sent: delivered, and every verdict passed.
const SES_PASSED: &str = "Return-Path: <b@amazonses.com>\r\nReceived: from a8-31.smtp-out.amazonses.com (a8-31.smtp-out.amazonses.com [54.240.8.31])\r\n \
    by inbound-smtp.us-east-1.amazonaws.com with SMTP id r1\r\n for root+a7f3k9q2@root.example-msp.com;\r\n \
    Mon, 12 Jan 2026 09:41:25 +0000\r\nX-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
    Authentication-Results: amazonses.com; spf=pass envelope-from=b@amazonses.com; \
    dkim=pass header.i=@amazon.com; dmarc=pass header.from=amazon.com;\r\n";

/// Triage made ahead on another core (`rootmail run`) is a guess that the
/// stores add nothing; ingest checks the guess and triages again where a
/// thread or rotation proves it wrong. The corpus (a case thread, replies, a
/// reply before its original) ends in the same ledger, tickets and comments.
#[test]
fn triage_made_ahead_ends_where_triage_in_order_ends() {
    let (in_order, ahead) = (Env::new(), Env::new());
    let files = eml_files(&corpus_dir());
    for path in &files {
        let written = in_order.deliver(path);
        assert_eq!(
            ahead.deliver_triaged_ahead(path),
            written,
            "{}",
            relative(path)
        );
    }
    // AWS's reply to a case mail names no case: only the thread the stores
    // know for the mail it answers puts it on the case's ticket.
    let case = corpus_dir().join("support.case/01-case-created.eml");
    let case_id = rootmail_domain::mail::parse(&std::fs::read(&case).expect("fixture"))
        .expect("parses")
        .message_id
        .expect("has an id");
    let dir = tempfile::tempdir().expect("tempdir");
    let reply = dir.path().join("aws-reply.eml");
    let text = reply_to(&case_id, AWS_SUPPORT, SES_PASSED, "notes-3@amazon.com");
    std::fs::write(&reply, text).expect("write");
    let written = in_order.deliver(&reply).expect("a ticket operation");
    assert!(matches!(written, Written::Commented { .. }), "{written:?}");
    assert_eq!(ahead.deliver_triaged_ahead(&reply), Some(written));
    // The records name each run's own archive, and a ticket's times are the
    // wall clock's: compare them without either.
    let records = |env: &Env| {
        let root = env.store.root().display().to_string();
        let rows = serde_json::to_string(&env.store.ledger_rows().expect("ledger"));
        let mut tickets = serde_json::to_value(env.store.tickets().expect("tickets"));
        let tickets = tickets.as_mut().expect("json");
        for ticket in tickets.as_array_mut().expect("a list") {
            without_times(ticket);
            for comment in ticket["comments"].as_array_mut().expect("comments") {
                without_times(comment);
            }
        }
        let text = format!("{}\n{tickets}", rows.expect("json"));
        text.replace(&root, "<state>")
    };
    assert_eq!(records(&ahead), records(&in_order));
    let replies = in_order.store.tickets().expect("tickets");
    assert!(
        replies.iter().any(|t| !t.comments.is_empty()),
        "the corpus has threads whose later mail the stores place"
    );
}

fn without_times(record: &mut serde_json::Value) {
    let fields = record.as_object_mut().expect("a record");
    assert!(
        fields.remove("created_at").is_some(),
        "a record without a time"
    );
    fields.remove("updated_at");
}

#[test]
fn one_run_at_a_time_holds_a_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _first = LocalStore::open(dir.path()).expect("first opens");
    assert!(matches!(
        LocalStore::open(dir.path()),
        Err(StoreError::Locked(_))
    ));
}
