//! The local pipeline end to end with a real Request Tracker 5 as the ticketing
//! system (`scripts/with-rt` starts it; `make test` does). The whole corpus goes
//! through ingest and the RT backend, then RT is read back over REST 2.0 the way
//! a person would check it: one ticket per thread, a correspondence for every
//! later mail, each mail's internal note as a comment, the attachments, no
//! secret anywhere; and running it all again creates nothing new, with the
//! local state kept or lost.
//!
//! Each test writes to a queue of its own, so tests and repeated runs do not see
//! each other's tickets.

use rootmail_domain::{ContentHash, Kind, Priority, Rules, ThreadKey};
use rootmail_local::LocalStore;
use rootmail_pipeline::{
    AttachmentContent, IngestPorts, Ingested, Knowledge, NewComment, NewTicket, NoHandoffs,
    Prepared, TicketAttachment, TicketOp, TicketSink, Written, apply_ticket_op, idempotency_key,
    ingest,
};
use rootmail_tests::rt::{RtAttachment, RtServer, RtTransaction};
use rootmail_tests::{
    corpus_dir, design_corpus, directory, known_secrets, relative, workspace_bin,
};
use rootmail_tickets::rt::priority_number;
use rootmail_tickets::ticket_text::body_with_listing;
use rootmail_tickets::{HttpClient, RetryPolicy, Rt, RtOptions};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NOW: u64 = 1_790_000_000;

fn message_marker(message: &ContentHash) -> String {
    rootmail_tests::rt::marker_key().marker(message)
}

/// What the corpus' golden files say: messages, ticket operations, threads.
struct Expected {
    messages: usize,
    operations: usize,
    threads: BTreeSet<String>,
}

fn expected(files: &[PathBuf]) -> Expected {
    let mut e = Expected {
        messages: files.len(),
        operations: 0,
        threads: BTreeSet::new(),
    };
    for file in files {
        let golden: Value = serde_json::from_slice(
            &std::fs::read(file.with_extension("json")).expect("golden file"),
        )
        .expect("golden json");
        if !golden["ticket"].is_null() {
            e.operations += 1;
            e.threads
                .insert(golden["thread_key"].as_str().expect("thread").to_string());
        }
    }
    e
}

/// One pass of the corpus through ingest and the RT backend, as `rootmail run`
/// does; the operations made and what writing each did.
async fn run_corpus(store: &LocalStore, rt: &Rt, files: &[PathBuf]) -> Vec<(TicketOp, Written)> {
    let directory = directory();
    let rules = Rules::built_in();
    let knowledge = Knowledge::new(&rules, &NoHandoffs);
    let ingest_ports = IngestPorts {
        archive: store,
        ledger: store,
        threads: store,
        accounts: &directory,
    };
    let writer_ports = store.writer_ports(rt);
    let mut written = Vec::new();
    for path in files {
        let raw = std::fs::read(path).expect("fixture");
        let source = relative(path);
        let ingested = ingest(ingest_ports, &knowledge, &raw, &source, NOW)
            .await
            .unwrap_or_else(|e| panic!("ingesting {source}: {e}"));
        if let Ingested::Triaged { op: Some(op), .. } = ingested {
            let applied = apply_ticket_op(writer_ports, &op, NOW)
                .await
                .unwrap_or_else(|e| panic!("writing the ticket of {source}: {e}"));
            written.push((*op, applied.written));
        }
    }
    written
}

fn assert_no_secret_in(what: &str, text: &str) {
    for (file, secret) in known_secrets() {
        assert!(
            !text.contains(&secret),
            "a secret of {file} reached RT's {what}"
        );
    }
}

/// Everything in the queue, as (ticket id, subject, priority, transactions).
async fn snapshot(rt: &RtServer, queue: &str) -> Vec<(String, String, i64, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for ticket in rt.tickets(queue).await {
        let history = rt.history(&ticket.id).await;
        out.push((
            ticket.id,
            ticket.subject,
            ticket.priority,
            history.into_iter().map(|t| (t.id, t.kind)).collect(),
        ));
    }
    out
}

/// The text part of `transaction` (its first attachment with text content).
fn text_of<'a>(attachments: &'a [RtAttachment], transaction: &str) -> Option<&'a str> {
    attachments
        .iter()
        .find(|a| {
            a.transaction_id == transaction
                && a.content_type == "text/plain"
                && a.filename.is_empty()
        })
        .map(|a| a.content.as_str())
}

fn of_kind<'a>(history: &'a [RtTransaction], kind: &str) -> Vec<&'a RtTransaction> {
    history.iter().filter(|t| t.kind == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_corpus_lands_in_rt_once_per_thread_with_notes_and_attachments() {
    let server = RtServer::from_env();
    let queue = server.create_queue("corpus").await;
    let rt = server.sink(&queue);
    let files = design_corpus(&corpus_dir());
    let want = expected(&files);
    let originals: HashMap<ContentHash, Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("fixture"))
        .map(|raw| (Prepared::of(&raw).hash, raw))
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("store");

    let started = Instant::now();
    let written = run_corpus(&store, &rt, &files).await;
    let elapsed = started.elapsed();
    eprintln!(
        "{} messages, {} ticket operations into RT in {:.2} s",
        want.messages,
        written.len(),
        elapsed.as_secs_f64()
    );

    assert_eq!(
        written.len(),
        want.operations,
        "one operation per ticketed mail"
    );
    let mut by_thread: BTreeMap<String, Vec<(TicketOp, Written)>> = BTreeMap::new();
    for (op, w) in &written {
        by_thread
            .entry(op.thread_key.as_str().to_string())
            .or_default()
            .push((op.clone(), w.clone()));
    }
    assert_eq!(
        by_thread.keys().cloned().collect::<BTreeSet<_>>(),
        want.threads,
        "the golden threads"
    );

    let tickets = server.tickets(&queue).await;
    assert_eq!(
        tickets.len(),
        want.threads.len(),
        "one RT ticket per thread"
    );
    let keys: BTreeSet<String> = tickets
        .iter()
        .filter_map(|t| t.thread_key.clone())
        .collect();
    assert_eq!(keys, want.threads, "each ticket carries its thread key");

    let mut correspondences = 0;
    let mut uploads = 0;
    for ticket in &tickets {
        let key = ticket.thread_key.clone().expect("thread key");
        let ops = &by_thread[&key];
        let history = server.history(&ticket.id).await;
        let attachments = server.attachments(&ticket.id).await;
        let context = format!("ticket {} ({key})", ticket.id);

        // Created once, by the thread's first mail, with its subject and the
        // highest priority of the thread's mails.
        let (first, _) = &ops[0];
        assert!(
            ops.iter().all(|(_, w)| w.ticket_id() == ticket.id),
            "{context}: every mail of the thread went to it"
        );
        assert_eq!(ticket.subject, first.subject, "{context}");
        let highest = ops.iter().map(|(op, _)| op.priority).max().expect("ops");
        assert_eq!(
            ticket.priority,
            i64::from(priority_number(highest)),
            "{context}"
        );
        let creates = of_kind(&history, "Create");
        assert_eq!(creates.len(), 1, "{context}");
        let created = text_of(&attachments, &creates[0].id).expect("create text");
        assert!(
            created.starts_with(first.body.trim_end()),
            "{context}: the body is the ticket's description"
        );
        assert!(
            created.ends_with(&message_marker(&first.message)),
            "{context}"
        );

        // A correspondence for every later mail; the ids rootmail recorded are
        // RT's transactions.
        let replies = of_kind(&history, "Correspond");
        assert_eq!(replies.len(), ops.len() - 1, "{context}");
        correspondences += replies.len();
        for (op, w) in &ops[1..] {
            let Written::Commented { comment_id, .. } = w else {
                panic!("{context}: a later mail was not a comment: {w:?}");
            };
            let reply = replies
                .iter()
                .find(|t| &t.id == comment_id)
                .unwrap_or_else(|| panic!("{context}: no correspondence {comment_id}"));
            let text = text_of(&attachments, &reply.id).expect("reply text");
            assert!(text.starts_with(op.body.trim_end()), "{context}");
            assert!(text.ends_with(&message_marker(&op.message)), "{context}");
        }

        // Every mail's internal note, once, as a comment (internal in RT).
        let notes: Vec<&str> = of_kind(&history, "Comment")
            .iter()
            .filter_map(|t| text_of(&attachments, &t.id))
            .collect();
        let with_notes: Vec<&TicketOp> = ops
            .iter()
            .map(|(op, _)| op)
            .filter(|op| !op.internal_note.trim().is_empty())
            .collect();
        assert_eq!(notes.len(), with_notes.len(), "{context}");
        for op in with_notes {
            let note = format!(
                "{}\n\n{}",
                op.internal_note.trim_end(),
                message_marker(&op.message)
            );
            assert!(
                notes.contains(&note.as_str()),
                "{context}: note of {}",
                op.message
            );
        }

        // The attachments rootmail could upload are on the transaction of
        // their mail, byte for byte.
        for (op, _) in ops {
            let raw = &originals[&op.message];
            let transaction = history
                .iter()
                .find(|t| {
                    text_of(&attachments, &t.id)
                        .is_some_and(|text| text.ends_with(&message_marker(&op.message)))
                        && t.kind != "Comment"
                })
                .expect("the mail's transaction");
            for a in op.attachments.iter().filter(|a| a.withheld.is_none()) {
                let uploaded = attachments
                    .iter()
                    .find(|x| x.transaction_id == transaction.id && x.filename == a.name)
                    .unwrap_or_else(|| panic!("{context}: {} is not in RT", a.name));
                assert_eq!(uploaded.content_type, a.content_type, "{context}");
                let bytes = server.attachment_bytes(&uploaded.id).await;
                assert_eq!(
                    Some(bytes),
                    rootmail_domain::mail::attachments_bytes(raw, &[a.index]).remove(0),
                    "{context}: {} byte for byte",
                    a.name
                );
                uploads += 1;
            }
        }

        // No secret anywhere RT shows: subject, transactions, attachments.
        assert_no_secret_in("ticket subject", &ticket.subject);
        for t in &history {
            assert_no_secret_in("transactions", &t.raw.to_string());
        }
        for a in &attachments {
            assert_no_secret_in("attachments", &a.raw.to_string());
        }
    }
    assert_eq!(
        correspondences,
        want.operations - want.threads.len(),
        "a correspondence for every other ticketed mail"
    );
    assert!(
        uploads > 0,
        "the corpus has mail with attachments to upload"
    );

    // The same mail again with the same state: the ledger makes it a no-op.
    let before = snapshot(&server, &queue).await;
    assert!(run_corpus(&store, &rt, &files).await.is_empty());
    assert_eq!(snapshot(&server, &queue).await, before);

    // Again with the local state lost: RT itself is asked, finds every ticket
    // by its thread field and every correspondence and note by its marker.
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let fresh = LocalStore::open(fresh_dir.path()).expect("store");
    let again = run_corpus(&fresh, &rt, &files).await;
    assert_eq!(
        again.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>(),
        written.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>(),
        "the same tickets and correspondences, found again"
    );
    assert_eq!(snapshot(&server, &queue).await, before, "nothing new in RT");
}

fn ticket_for(key: ThreadKey, message: &[u8]) -> NewTicket {
    NewTicket {
        idempotency_key: idempotency_key(&key),
        thread_key: key,
        subject: "A thread".into(),
        body: "The first mail.".into(),
        priority: Priority::Normal,
        kind: Kind::Unknown,
        account_id: None,
        customer: None,
        message: ContentHash::of(message),
        internal_note: "Original message: first.eml".into(),
        attachments: Vec::new(),
        found_absent: false,
    }
}

fn comment_for(message: &[u8]) -> NewComment {
    NewComment {
        message: ContentHash::of(message),
        body: "A later mail.".into(),
        priority: Priority::Urgent,
        kind: Kind::Unknown,
        internal_note: "Original message: later.eml".into(),
        attachments: Vec::new(),
        first_send: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thread_keys_with_quotes_backslashes_and_long_message_ids_are_found_again() {
    let server = RtServer::from_env();
    let queue = server.create_queue("keys").await;
    let rt = server.sink(&queue);
    let keys = [
        ThreadKey::message(r#"o'brien\"x"@example.com"#),
        ThreadKey::message(&format!("{}@example.com", "long-id.".repeat(40))),
        ThreadKey::message("Case.Sensitive@example.com"),
    ];
    let mut ids = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let ticket = ticket_for(key.clone(), format!("mail {i}").as_bytes());
        let id = rt.create(&ticket).await.expect("create");
        let found = rt.find(key).await.expect("find").expect("found again");
        assert_eq!(found.id, id, "{key}");
        assert_eq!(found.created_from, ticket.message, "{key}");
        // Creating again is idempotent per thread key.
        assert_eq!(rt.create(&ticket).await.expect("create again"), id);
        ids.push(id);
    }
    assert_eq!(
        rt.find(&ThreadKey::message("case.sensitive@example.com"))
            .await
            .expect("find"),
        None,
        "RT compares without case; Message-IDs do not"
    );
    let tickets = server.tickets(&queue).await;
    assert_eq!(
        tickets.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        ids
    );
    for ticket in &tickets {
        let notes = of_kind(&server.history(&ticket.id).await, "Comment").len();
        assert_eq!(notes, 1, "one note per ticket, however often created");
    }
}

/// RT on SQLite or PostgreSQL stores a text with a non-ASCII byte
/// quoted-printable (its lines cut at 76 characters) and one over 100,000
/// bytes base64, and searches the stored form: a marker written in such a
/// text was not found again, so a redelivered mail was written twice. A
/// thread key over 255 bytes of non-ASCII is stored the same way.
#[tokio::test(flavor = "multi_thread")]
async fn non_ascii_and_long_texts_are_found_again() {
    let server = RtServer::from_env();
    let queue = server.create_queue("encoded").await;
    let rt = server.sink(&queue);
    let key = ThreadKey::message(&format!("{}@example.com", "é".repeat(130)));
    let mut ticket = ticket_for(key.clone(), b"first");
    ticket.body = format!("Billing © 2026 — “past due” {}", "x".repeat(120_000));
    let id = rt.create(&ticket).await.expect("create");
    let found = rt.find(&key).await.expect("find").expect("found again");
    assert_eq!(
        (found.id.as_str(), &found.created_from),
        (id.as_str(), &ticket.message)
    );
    assert_eq!(rt.create(&ticket).await.expect("create again"), id);
    for body in [
        "A later mail, naïve café ©.".to_string(),
        "ü".repeat(60_000),
    ] {
        let mut comment = comment_for(body.as_bytes());
        comment.body = body;
        let first = rt.comment(&id, &comment).await.expect("comment");
        let again = rt.comment(&id, &comment).await.expect("comment again");
        assert_eq!(first.comment_id, again.comment_id);
    }
    assert_eq!(server.tickets(&queue).await.len(), 1);
    let history = server.history(&id).await;
    assert_eq!(of_kind(&history, "Correspond").len(), 2, "each mail once");
}

/// A create for a thread whose ticket another message made (the mapped
/// ticket was deleted and a twin, or one an operator marked, carries the
/// thread) writes this message there. Before, RT's backend returned that
/// ticket's id without writing anything: the message was recorded as
/// written and never shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_on_a_thread_another_message_opened_comments_there() {
    let server = RtServer::from_env();
    let queue = server.create_queue("other").await;
    let rt = server.sink(&queue);
    let key = ThreadKey::message("other-creator@example.com");
    let id = rt
        .create(&ticket_for(key.clone(), b"first"))
        .await
        .expect("create");
    let mut second = ticket_for(key, b"second");
    second.body = "The second mail.".into();
    assert_eq!(rt.create(&second).await.expect("create"), id);
    assert_eq!(rt.create(&second).await.expect("create again"), id);
    let history = server.history(&id).await;
    let attachments = server.attachments(&id).await;
    let replies: Vec<&str> = of_kind(&history, "Correspond")
        .iter()
        .filter_map(|t| text_of(&attachments, &t.id))
        .collect();
    assert_eq!(replies.len(), 1, "written once, however often: {replies:?}");
    assert!(replies[0].contains("The second mail."), "{replies:?}");
    assert_eq!(server.tickets(&queue).await.len(), 1);
}

/// RT's REST2 refuses an upload whose `FileName` or `FileType` Perl reads
/// as false, and `"0"` is false there, like `""`: a mail with an attachment
/// named `0` never became a ticket (a 400, a permanent error, the operation
/// dead-lettered), so any sender could keep their mail out of RT.
#[tokio::test(flavor = "multi_thread")]
async fn an_attachment_named_0_is_uploaded() {
    let server = RtServer::from_env();
    let queue = server.create_queue("zero").await;
    let rt = server.sink(&queue);
    let zero = TicketAttachment {
        name: "0".into(),
        content_type: "0".into(),
        size: 5,
        content: AttachmentContent::Upload(b"hello".to_vec()),
    };
    let mut ticket = ticket_for(ThreadKey::message("zero@example.com"), b"zero");
    ticket.attachments = vec![zero.clone()];
    let id = rt.create(&ticket).await.expect("create");
    let mut comment = comment_for(b"zero again");
    comment.attachments = vec![zero];
    rt.comment(&id, &comment).await.expect("comment");
    let uploaded: Vec<(String, String)> = server
        .attachments(&id)
        .await
        .into_iter()
        .filter(|a| a.content == "hello")
        .map(|a| (a.filename, a.content_type))
        .collect();
    assert_eq!(
        uploaded.len(),
        2,
        "the file on the create and the comment: {uploaded:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_after_a_crash_between_correspondence_and_note_adds_only_the_note() {
    let server = RtServer::from_env();
    let queue = server.create_queue("crash").await;
    let rt = server.sink(&queue);
    let id = rt
        .create(&ticket_for(
            ThreadKey::message("crash@example.com"),
            b"first",
        ))
        .await
        .expect("create");
    let comment = comment_for(b"second");
    // The writer died after RT took the correspondence, before the note.
    server
        .correspond(
            &id,
            &format!("A later mail.\n\n{}", message_marker(&comment.message)),
        )
        .await;
    let staged = of_kind(&server.history(&id).await, "Correspond")[0]
        .id
        .clone();

    let first = rt.comment(&id, &comment).await.expect("comment");
    let second = rt.comment(&id, &comment).await.expect("comment again");

    assert_eq!(first.comment_id, staged, "the correspondence already there");
    assert_eq!(second.comment_id, staged);
    let history = server.history(&id).await;
    assert_eq!(of_kind(&history, "Correspond").len(), 1);
    assert_eq!(
        of_kind(&history, "Comment").len(),
        2,
        "the ticket's and this mail's notes"
    );
    let ticket = &server.tickets(&queue).await[0];
    assert_eq!(ticket.priority, 100, "the urgent mail raised the ticket");
}

/// An agent deletes the thread's ticket in RT. RT still takes
/// correspondence on a deleted ticket (201), where no queue shows it, so the
/// thread's next mail vanished from view. Now the writer finds it gone and
/// starts the thread's ticket again; the deleted ticket gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_mail_of_a_thread_whose_ticket_was_deleted_starts_a_new_ticket() {
    let server = RtServer::from_env();
    let queue = server.create_queue("deleted").await;
    let rt = server.sink(&queue);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("store");
    let ports = store.writer_ports(&rt);
    let op = |n: u32| TicketOp {
        message: ContentHash::of(format!("deleted thread mail {n}").as_bytes()),
        thread_key: ThreadKey::message("deleted-thread@example.com"),
        kind: Kind::BudgetAlert,
        priority: Priority::Normal,
        account_id: None,
        customer: None,
        subject: format!("AWS Budgets: alert {n}"),
        body: format!("Budget alert number {n}."),
        internal_note: format!("Original message: {n}.eml"),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    };
    let first = apply_ticket_op(ports, &op(1), NOW).await.expect("first");
    let Written::Created { ticket_id: gone } = first.written else {
        panic!("the thread's first mail creates: {:?}", first.written);
    };
    server.delete_ticket(&gone).await;
    let before = server.history(&gone).await.len();

    let second = apply_ticket_op(ports, &op(2), NOW + 60)
        .await
        .expect("second");
    let Written::Created { ticket_id } = second.written else {
        panic!("a new ticket, not {:?}", second.written);
    };
    assert_ne!(ticket_id, gone);
    assert_eq!(
        server.history(&gone).await.len(),
        before,
        "nothing more on the deleted ticket"
    );
    let third = apply_ticket_op(ports, &op(3), NOW + 120)
        .await
        .expect("third");
    assert!(
        matches!(&third.written, Written::Commented { ticket_id: t, .. } if *t == ticket_id),
        "{:?}",
        third.written
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_one_request_and_a_clear_permanent_error() {
    let server = RtServer::from_env();
    let mut options = RtOptions::new(&server.url);
    options.queue = "General".into();
    let http =
        HttpClient::new("rt", Duration::from_secs(10), RetryPolicy::default()).expect("client");
    let credentials = serde_json::from_value(
        serde_json::json!({"user": server.user, "password": "not-the-password"}),
    )
    .expect("credentials");
    let rt = Rt::new(http, options, credentials, rootmail_tests::rt::marker_key());

    let error = rt
        .find(&ThreadKey::message("x@example.com"))
        .await
        .expect_err("refused");

    assert!(!error.is_transient(), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("rt rejected rootmail's credentials"),
        "{text}"
    );
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_that_stopped_before_its_note_is_finished_by_the_writer() {
    let server = RtServer::from_env();
    let queue = server.create_queue("half-created").await;
    let rt = server.sink(&queue);
    let op = TicketOp {
        message: ContentHash::of(b"the creating mail"),
        thread_key: ThreadKey::message("half@example.com"),
        kind: Kind::Unknown,
        priority: Priority::Normal,
        account_id: None,
        customer: None,
        subject: "Half created".into(),
        body: "The first mail.".into(),
        internal_note: "Original message: half.eml".into(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    };
    // RT took the ticket; the writer died before the note and before it
    // recorded the thread.
    let id = server
        .create_ticket(
            &queue,
            &op.subject,
            &body_with_listing(&op.body, &[], &message_marker(&op.message)),
            op.thread_key.as_str(),
        )
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("store");

    let ports = store.writer_ports(&rt);
    let applied = apply_ticket_op(ports, &op, NOW).await.expect("redelivered");

    assert_eq!(
        applied.written,
        Written::Created {
            ticket_id: id.clone()
        }
    );
    assert_eq!(server.tickets(&queue).await.len(), 1, "no second ticket");
    let history = server.history(&id).await;
    let notes = of_kind(&history, "Comment");
    assert_eq!(notes.len(), 1, "the note the crash cut off");
    let attachments = server.attachments(&id).await;
    assert_eq!(
        text_of(&attachments, &notes[0].id),
        Some(format!("{}\n\n{}", op.internal_note, message_marker(&op.message)).as_str())
    );
}

/// `rootmail run --backend rt`, configured from the environment as documented.
fn rootmail_run(server: &RtServer, queue: &str, state: &std::path::Path) -> (bool, String) {
    let output = std::process::Command::new(workspace_bin("rootmail"))
        .args(["run", "--backend", "rt", "--state"])
        .arg(state)
        .arg("--accounts")
        .arg(corpus_dir().join("accounts.csv"))
        .args(design_corpus(&corpus_dir()))
        .env("TICKET_API_URL", &server.url)
        .env("TICKET_CREDENTIALS", server.credentials_json())
        .env("RT_QUEUE", queue)
        .env("RT_THREAD_FIELD", &server.thread_field)
        .env_remove("TICKET_CREDENTIALS_FILE")
        .env_remove("TICKET_BACKEND")
        .output()
        .expect("rootmail runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn rootmail_run_with_the_rt_backend_files_the_corpus_once() {
    let server = RtServer::from_env();
    let queue = server.create_queue("cli").await;
    let files = design_corpus(&corpus_dir());
    let want = expected(&files);
    let state = tempfile::tempdir().expect("tempdir");

    let (ok, output) = rootmail_run(&server, &queue, state.path());

    assert!(ok, "{output}");
    let comments = want.operations - want.threads.len();
    assert!(
        output.contains(&format!(
            "{} tickets created, {comments} comments",
            want.threads.len()
        )),
        "{output}"
    );
    assert_no_secret_in("CLI output", &output);
    let tickets = server.tickets(&queue).await;
    assert_eq!(tickets.len(), want.threads.len());
    let mut correspondences = 0;
    for ticket in &tickets {
        correspondences += of_kind(&server.history(&ticket.id).await, "Correspond").len();
    }
    assert_eq!(correspondences, comments);

    let before = snapshot(&server, &queue).await;
    let (ok, output) = rootmail_run(&server, &queue, state.path());
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!(
            "0 tickets created, 0 comments, 0 archived, 0 quarantined, 0 handed off, {} seen before",
            want.messages
        )),
        "{output}"
    );
    assert_eq!(snapshot(&server, &queue).await, before, "nothing new in RT");
}
