//! The Zendesk backend against a stateful fake Zendesk (`tests/src/zendesk_fake.rs`):
//! what a person would check in Zendesk after crashes, lost answers, limits and
//! attachments: how many tickets, how many comments, public or private, linked how.

use rootmail_domain::{AttachmentRef, ContentHash, Kind, Priority, ThreadKey};
use rootmail_local::LocalStore;
use rootmail_pipeline::{
    MailArchive, NewTicket, PortError, ThreadMap, TicketOp, TicketSink, Written, apply_ticket_op,
};
use rootmail_tests::zendesk_fake::{self as fake, Call, FakeZendesk};
use rootmail_tickets::Zendesk;
use std::time::Duration;

fn has_marker(text: &str, message: &ContentHash) -> bool {
    fake::marker_key().has_marker(text, message)
}

fn message_marker(message: &ContentHash) -> String {
    fake::marker_key().marker(message)
}

const NOW: u64 = 1_790_000_000;

fn store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path()).expect("store");
    (dir, store)
}

/// A budget alert, mail `n` of `thread` (also the webhook tests' mail).
pub(crate) fn op(thread: &str, n: u32, note: &str) -> TicketOp {
    TicketOp {
        message: ContentHash::of(format!("{thread} mail {n}").as_bytes()),
        thread_key: ThreadKey::message(thread),
        kind: Kind::BudgetAlert,
        priority: Priority::Normal,
        account_id: Some("123456789012".into()),
        customer: Some("Example Corp".into()),
        subject: format!("AWS Budgets: alert {n}"),
        body: format!("Budget alert number {n}."),
        internal_note: note.to_string(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    }
}

/// The ticket the writer would create for `op`, without attachments.
fn new_ticket(op: &TicketOp) -> NewTicket {
    rootmail_pipeline::new_ticket(op, Vec::new(), false)
}

async fn apply(store: &LocalStore, sink: &Zendesk, op: &TicketOp) -> Result<Written, PortError> {
    let ports = store.writer_ports(sink);
    apply_ticket_op(ports, op, NOW)
        .await
        .map(|applied| applied.written)
}

/// The ticket `op` creates (it must be the thread's first message).
async fn created(store: &LocalStore, sink: &Zendesk, op: &TicketOp) -> String {
    match apply(store, sink, op).await.expect("create") {
        Written::Created { ticket_id } => ticket_id,
        other => panic!("the thread's first message should create a ticket, not {other:?}"),
    }
}

/// The comments of a ticket that carry `op`'s marker, as (public, private) counts.
fn marked(ticket: &fake::Ticket, op: &TicketOp) -> (usize, usize) {
    let ours = |c: &&fake::Comment| has_marker(&c.body, &op.message);
    (
        ticket
            .public_comments()
            .into_iter()
            .filter(|c| ours(c))
            .count(),
        ticket
            .private_comments()
            .into_iter()
            .filter(|c| ours(c))
            .count(),
    )
}

#[tokio::test]
async fn a_crash_between_create_and_the_thread_map_still_leaves_one_ticket() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op(
        "crash@example.com",
        1,
        "Authentication: DKIM pass. Original: s3://mail/1",
    );

    // The writer created the ticket, then died before recording it.
    let created = sink.create(&new_ticket(&first)).await.expect("create");
    // Redelivered hours later, when Zendesk has forgotten the idempotency key.
    zendesk.advance(Duration::from_secs(3 * 3600));
    let written = apply(&store, &sink, &first).await.expect("redelivery");

    assert_eq!(
        written,
        Written::Created {
            ticket_id: created.clone()
        }
    );
    assert_eq!(zendesk.tickets().len(), 1, "no second ticket");
    let ticket = zendesk.ticket(&created);
    assert_eq!(
        marked(&ticket, &first),
        (1, 1),
        "one description, one internal note"
    );
    let record = store
        .ticket_of(&first.thread_key)
        .await
        .expect("thread map")
        .expect("recorded now");
    assert_eq!(record.ticket_id, created);
    assert_eq!(record.created_from, first.message);

    // The same create once more (a pipeline that repeats it): still one ticket,
    // one note.
    let again = sink
        .create(&new_ticket(&first))
        .await
        .expect("create again");
    assert_eq!(again, created);
    assert_eq!(zendesk.tickets().len(), 1);
    assert_eq!(marked(&zendesk.ticket(&created), &first), (1, 1));
    assert_eq!(
        zendesk.calls(Call::Create).len(),
        1,
        "only the first create posted"
    );
}

#[tokio::test]
async fn a_lost_create_answer_is_replayed_by_its_idempotency_key() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let first = op("lost-create@example.com", 1, "internal: DKIM pass");
    zendesk.lose_answers(Call::Create, 1);

    let id = sink.create(&new_ticket(&first)).await.expect("create");

    let posts = zendesk.calls(Call::Create);
    assert_eq!(posts.len(), 2, "the 500 was retried");
    assert_eq!(posts[0].idempotency_key, posts[1].idempotency_key);
    assert_eq!(posts[0].json, posts[1].json, "the same body, so a replay");
    assert_eq!(posts[1].status, 201);
    assert_eq!(zendesk.tickets().len(), 1);
    assert_eq!(marked(&zendesk.ticket(&id), &first), (1, 1));
}

#[tokio::test]
async fn a_lost_comment_answer_ends_in_exactly_one_comment_after_redelivery() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op("lost-comment@example.com", 1, "note 1");
    let second = op("lost-comment@example.com", 2, "note 2");
    let ticket_id = created(&store, &sink, &first).await;

    // Zendesk adds the comment, and the answer is lost.
    zendesk.lose_answers(Call::Update, 1);
    let error = apply(&store, &sink, &second)
        .await
        .expect_err("the writer cannot know");
    assert!(error.is_transient(), "{error}");
    assert_eq!(
        zendesk
            .calls(Call::Update)
            .iter()
            .filter(|r| r.status == 500)
            .count(),
        1,
        "the comment was not sent again in the same call"
    );
    assert_eq!(marked(&zendesk.ticket(&ticket_id), &second), (1, 0));

    // The queue redelivers: the comment is found, only the note is added.
    let written = apply(&store, &sink, &second).await.expect("redelivery");
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(marked(&ticket, &second), (1, 1), "one comment, one note");
    let comment = ticket
        .public_comments()
        .into_iter()
        .find(|c| has_marker(&c.body, &second.message))
        .expect("the comment")
        .id;
    assert_eq!(
        written,
        Written::Commented {
            ticket_id: ticket_id.clone(),
            comment_id: comment.to_string()
        }
    );
    assert_eq!(ticket.comments.len(), 4, "description, note, comment, note");
    assert_eq!(zendesk.tickets().len(), 1);
}

#[tokio::test]
async fn internal_notes_are_private_and_never_in_public_comments() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let secret_note = "Authentication: SPF pass, DKIM pass. Original: s3://mail/inbound/abc";
    let first = op("notes@example.com", 1, secret_note);
    let second = op("notes@example.com", 2, secret_note);
    let ticket_id = created(&store, &sink, &first).await;
    apply(&store, &sink, &second).await.expect("comment");

    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.private_comments().len(), 2);
    assert!(
        ticket
            .private_comments()
            .iter()
            .all(|c| c.body.contains("s3://mail/inbound/abc"))
    );
    assert!(
        ticket
            .public_comments()
            .iter()
            .all(|c| !c.body.contains("s3://mail/inbound/abc") && !c.body.contains("DKIM")),
        "the internal note stays internal"
    );
    assert!(!ticket.description.contains("DKIM"));
}

/// A mail with a small text attachment and a binary one larger than the limit.
fn mail_with_attachments(big: &[u8]) -> Vec<u8> {
    format!(
        "From: no-reply@aws.example\r\nTo: root+1@root.example-msp.com\r\nSubject: Invoice\r\n\
Message-ID: <inv-2@aws.example>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
--b1\r\nContent-Type: text/plain\r\n\r\nYour invoice.\r\n\
--b1\r\nContent-Type: text/csv; name=\"usage.csv\"\r\n\
Content-Disposition: attachment; filename=\"usage.csv\"\r\n\r\nservice,cost\r\nEC2,42\r\n\
--b1\r\nContent-Type: application/octet-stream; name=\"big.bin\"\r\n\
Content-Disposition: attachment; filename=\"big.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b1--\r\n",
        fake::base64(big)
    )
    .into_bytes()
}

#[tokio::test]
async fn attachments_are_uploaded_right_before_their_comment_and_an_oversized_one_is_listed() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| o.max_attachment_bytes = 1024);
    let (_dir, store) = store();
    let first = op("invoice@example.com", 1, "");
    apply(&store, &sink, &first).await.expect("create");

    let raw = mail_with_attachments(&[7u8; 2048]);
    let hash = ContentHash::of(&raw);
    let archive_ref = store.put(&hash, &raw).await.expect("archive");
    let mut second = op("invoice@example.com", 2, "");
    second.message = hash;
    second.archive_ref = Some(archive_ref);
    second.attachments = vec![
        AttachmentRef {
            index: 0,
            name: "usage.csv".into(),
            content_type: "text/csv".into(),
            size: 20,
            withheld: None,
        },
        AttachmentRef {
            index: 1,
            name: "big.bin".into(),
            content_type: "application/octet-stream".into(),
            size: 2048,
            withheld: None,
        },
    ];
    let requests_before = zendesk.requests().len();
    let Written::Commented {
        ticket_id,
        comment_id,
    } = apply(&store, &sink, &second).await.expect("comment")
    else {
        panic!("a comment");
    };

    let ticket = zendesk.ticket(&ticket_id);
    let comment = ticket
        .comments
        .iter()
        .find(|c| c.id.to_string() == comment_id)
        .expect("the comment");
    assert!(comment.public);
    assert_eq!(
        comment.attachments,
        vec![fake::Attachment {
            file_name: "usage.csv".into(),
            content_type: "text/csv".into(),
            bytes: b"service,cost\r\nEC2,42".to_vec(),
        }]
    );
    assert!(
        comment.body.contains("big.bin (application/octet-stream, 2048 bytes): not attached: larger than the 1 KiB limit"),
        "{}",
        comment.body
    );
    let calls: Vec<Call> = zendesk.requests()[requests_before..]
        .iter()
        .map(|r| r.call)
        .collect();
    assert_eq!(
        calls,
        vec![
            Call::ListComments,
            Call::ShowTicket,
            Call::Upload,
            Call::Update
        ],
        "one upload, right before the comment that uses it"
    );
    let upload = zendesk.calls(Call::Upload).pop().expect("upload");
    assert_eq!(upload.query, "filename=usage.csv");
    assert_eq!(upload.content_type.as_deref(), Some("text/csv"));
    let update = zendesk.calls(Call::Update).pop().expect("update");
    assert_eq!(
        update.json.expect("json")["ticket"]["comment"]["uploads"],
        serde_json::json!(["upload-token-1"])
    );
}

#[tokio::test]
async fn a_comment_retried_later_uploads_again_instead_of_reusing_an_old_token() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op("retry-upload@example.com", 1, "");
    let ticket_id = created(&store, &sink, &first).await;
    let comment = rootmail_pipeline::NewComment {
        message: ContentHash::of(b"with attachment"),
        body: "See the attachment.".into(),
        priority: Priority::Normal,
        kind: Kind::BudgetAlert,
        internal_note: String::new(),
        attachments: vec![rootmail_pipeline::TicketAttachment {
            name: "report.pdf".into(),
            content_type: "application/pdf".into(),
            size: 4,
            content: rootmail_pipeline::AttachmentContent::Upload(b"%PDF".to_vec()),
        }],
        first_send: None,
    };
    // Zendesk refuses the update; the queue retries more than an hour later.
    zendesk.fail(Call::Update, 1, 503);
    let error = sink.comment(&ticket_id, &comment).await.expect_err("503");
    assert!(error.is_transient(), "{error}");
    zendesk.advance(Duration::from_secs(61 * 60));
    sink.comment(&ticket_id, &comment).await.expect("retried");

    let uploads = zendesk.calls(Call::Upload);
    assert_eq!(uploads.len(), 2, "a fresh upload for the new attempt");
    let updates = zendesk.calls(Call::Update);
    let tokens: Vec<_> = updates
        .iter()
        .map(|u| u.json.as_ref().expect("json")["ticket"]["comment"]["uploads"].clone())
        .collect();
    assert_eq!(
        tokens,
        vec![
            serde_json::json!(["upload-token-1"]),
            serde_json::json!(["upload-token-2"])
        ]
    );
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.comments.len(), 2);
    assert_eq!(ticket.comments[1].attachments.len(), 1);
}

#[tokio::test]
async fn the_per_ticket_update_limit_leaves_the_operation_to_the_queue() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "limit@example.com";
    let ticket_id = created(&store, &sink, &op(thread, 0, "")).await;
    for n in 1..=30 {
        apply(&store, &sink, &op(thread, n, ""))
            .await
            .unwrap_or_else(|e| panic!("comment {n}: {e}"));
    }

    // The 31st update within 10 minutes: 429 with a Retry-After of minutes,
    // longer than the writer waits, so the queue redelivers it later.
    let late = op(thread, 31, "");
    let error = apply(&store, &sink, &late).await.expect_err("limited");
    assert!(error.is_transient(), "{error}");
    assert!(error.to_string().contains("429"), "{error}");
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.updates.len(), 30);
    assert_eq!(ticket.comments.len(), 31, "description and 30 comments");
    assert_eq!(marked(&ticket, &late), (0, 0));
    let refused = zendesk
        .calls(Call::Update)
        .iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 1, "no retry of a 429 beyond the writer's wait");

    zendesk.advance(Duration::from_secs(10 * 60));
    apply(&store, &sink, &late).await.expect("after the window");
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(marked(&ticket, &late), (1, 0));
    assert_eq!(ticket.comments.len(), 32);
}

#[tokio::test]
async fn a_short_throttle_is_waited_for_and_the_comment_made_once() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op("throttle@example.com", 1, "");
    let second = op("throttle@example.com", 2, "");
    let ticket_id = created(&store, &sink, &first).await;
    zendesk.throttle(Call::Update, 1, "1");

    apply(&store, &sink, &second)
        .await
        .expect("after one second");

    let statuses: Vec<u16> = zendesk
        .calls(Call::Update)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![429, 200]);
    assert_eq!(marked(&zendesk.ticket(&ticket_id), &second), (1, 0));
}

#[tokio::test]
async fn a_throttled_create_waits_for_a_short_retry_after_and_leaves_a_long_one_to_the_queue() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let short = op("throttled-create@example.com", 1, "");
    zendesk.throttle(Call::Create, 1, "0");
    sink.create(&new_ticket(&short))
        .await
        .expect("after Retry-After: 0");
    assert_eq!(zendesk.calls(Call::Create).len(), 2);
    assert_eq!(zendesk.tickets().len(), 1);

    let long = op("throttled-create-2@example.com", 1, "");
    zendesk.throttle(Call::Create, 1, "120");
    let error = sink.create(&new_ticket(&long)).await.expect_err("120 s");
    assert!(error.is_transient(), "{error}");
    assert_eq!(zendesk.calls(Call::Create).len(), 3, "not retried");
    assert_eq!(zendesk.tickets().len(), 1);
}

#[tokio::test]
async fn a_full_ticket_continues_on_one_linked_follow_up() {
    let zendesk = FakeZendesk::start();
    // This Zendesk refuses a fifth comment; rootmail believes the documented 5,000,
    // so it learns it from the 422.
    zendesk.set_comment_limit(4);
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "full@example.com";
    let ops: Vec<TicketOp> = (1..=4)
        .map(|n| op(thread, n, &format!("note {n}")))
        .collect();
    let Written::Created { ticket_id: old } = apply(&store, &sink, &ops[0]).await.expect("create")
    else {
        panic!("created");
    };
    apply(&store, &sink, &ops[1])
        .await
        .expect("fills the ticket");
    assert_eq!(zendesk.ticket(&old).comments.len(), 4);

    let Written::Commented {
        ticket_id,
        comment_id,
    } = apply(&store, &sink, &ops[2]).await.expect("follow-up")
    else {
        panic!("a comment");
    };
    let tickets = zendesk.tickets();
    assert_eq!(tickets.len(), 2);
    let next = tickets
        .iter()
        .find(|t| t.id.to_string() != old)
        .expect("new");
    assert_eq!(next.via_followup_source_id, Some(old.parse().expect("id")));
    assert_eq!(
        next.external_id.as_deref(),
        Some(ops[2].thread_key.as_str())
    );
    assert!(
        next.description
            .starts_with(&format!("This ticket continues ticket #{old} ("))
    );
    assert!(next.description.ends_with(&message_marker(&ops[2].message)));
    assert!(next.tags.iter().any(|t| t == "rootmail_followup"));
    assert!(next.tags.iter().any(|t| t.starts_with("rootmail-thread-")));
    assert_eq!(comment_id, next.comments[0].id.to_string());
    assert_eq!(
        ticket_id,
        next.id.to_string(),
        "the comment is on the follow-up"
    );
    let record = store
        .ticket_of(&ops[2].thread_key)
        .await
        .expect("thread map")
        .expect("recorded");
    assert_eq!(
        record.ticket_id, ticket_id,
        "later mail goes to the follow-up"
    );
    assert_eq!(marked(next, &ops[2]), (1, 1), "the comment and its note");
    assert_eq!(
        zendesk.ticket(&old).comments.len(),
        4,
        "nothing more on the old one"
    );

    // The redelivered operation finds its comment; the next message finds the
    // follow-up: still two tickets.
    let again = apply(&store, &sink, &ops[2]).await.expect("redelivery");
    assert_eq!(
        again,
        Written::Commented {
            ticket_id: ticket_id.clone(),
            comment_id: comment_id.clone()
        }
    );
    let requests_before = zendesk.requests();
    apply(&store, &sink, &ops[3]).await.expect("next message");
    assert!(
        !zendesk.requests()[requests_before.len()..]
            .iter()
            .any(|r| r.path.starts_with(&format!("/api/v2/tickets/{old}"))),
        "the old, full ticket is not read again"
    );
    assert_eq!(zendesk.tickets().len(), 2);
    let next = zendesk.ticket(&next.id.to_string());
    assert_eq!(marked(&next, &ops[3]), (1, 1));
    assert_eq!(marked(&next, &ops[2]), (1, 1));

    // A lost thread map finds the newest ticket of the thread.
    let found = sink
        .find(&ops[0].thread_key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, next.id.to_string());
    assert_eq!(found.created_from, ops[2].message);
}

#[tokio::test]
async fn a_ticket_known_to_be_full_is_not_sent_another_comment() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| o.max_comments = 3);
    let (_dir, store) = store();
    let thread = "known-full@example.com";
    let Written::Created { ticket_id: old } = apply(&store, &sink, &op(thread, 1, ""))
        .await
        .expect("create")
    else {
        panic!("created");
    };
    apply(&store, &sink, &op(thread, 2, "")).await.expect("2");
    apply(&store, &sink, &op(thread, 3, "")).await.expect("3");
    let updates_before = zendesk.calls(Call::Update).len();

    apply(&store, &sink, &op(thread, 4, "")).await.expect("4");

    assert_eq!(
        zendesk.calls(Call::Update).len(),
        updates_before,
        "no refused PUT: the count of comments decided"
    );
    assert_eq!(zendesk.ticket(&old).comments.len(), 3);
    assert_eq!(zendesk.tickets().len(), 2);
}

#[tokio::test]
async fn a_closed_ticket_continues_on_a_follow_up() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "closed@example.com";
    let Written::Created { ticket_id: old } = apply(&store, &sink, &op(thread, 1, ""))
        .await
        .expect("create")
    else {
        panic!("created");
    };
    zendesk.close(&old);
    let later = op(thread, 2, "");

    apply(&store, &sink, &later).await.expect("follow-up");

    assert!(
        zendesk.calls(Call::Update).is_empty(),
        "the ticket was read as closed: no refused update"
    );
    let tickets = zendesk.tickets();
    assert_eq!(tickets.len(), 2);
    let next = tickets
        .iter()
        .find(|t| t.id.to_string() != old)
        .expect("new");
    assert_eq!(next.via_followup_source_id, Some(old.parse().expect("id")));
    assert!(
        next.description.contains("which is closed"),
        "{}",
        next.description
    );
    assert_eq!(marked(next, &later), (1, 0));
    assert_eq!(zendesk.ticket(&old).comments.len(), 1);
}

/// A follow-up an agent deletes soon after it was made: the thread's next
/// mail makes another. Its create key was the closed ticket's alone, so
/// Zendesk refused the next mail's create (another body under a key it
/// keeps two hours) and every mail of the thread went to the dead-letter
/// queue.
#[tokio::test]
async fn a_follow_up_deleted_soon_after_it_was_made_is_made_again() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "closed-then-deleted@example.com";
    let old = created(&store, &sink, &op(thread, 1, "")).await;
    zendesk.close(&old);
    apply(&store, &sink, &op(thread, 2, ""))
        .await
        .expect("follow-up");
    let others = |except: &[&str]| -> Vec<String> {
        let ids = zendesk.tickets().into_iter().map(|t| t.id.to_string());
        ids.filter(|id| !except.contains(&id.as_str())).collect()
    };
    let [follow_up] = &others(&[&old])[..] else {
        panic!("one follow-up: {:?}", others(&[]));
    };
    zendesk.delete(follow_up);
    zendesk.advance(Duration::from_secs(10 * 60));

    let third = op(thread, 3, "");
    apply(&store, &sink, &third)
        .await
        .expect("another follow-up");
    let [made] = &others(&[&old, follow_up])[..] else {
        panic!("one more follow-up: {:?}", others(&[]));
    };
    assert_eq!(marked(&zendesk.ticket(made), &third), (1, 0));
}

#[tokio::test]
async fn an_unmarked_ticket_of_the_thread_gets_comments_not_a_twin() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let mail = op("by-hand@example.com", 1, "");
    let by_hand = zendesk.insert_ticket(mail.thread_key.as_str(), "Typed by an agent");

    let found = sink
        .find(&mail.thread_key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.id, by_hand);
    assert_ne!(found.created_from, mail.message);

    let written = apply(&store, &sink, &mail).await.expect("apply");
    assert!(matches!(written, Written::Commented { ref ticket_id, .. } if *ticket_id == by_hand));
    assert_eq!(zendesk.tickets().len(), 1);
    assert_eq!(marked(&zendesk.ticket(&by_hand), &mail), (1, 0));
}

#[tokio::test]
async fn the_fake_keeps_idempotency_keys_for_two_hours() {
    let zendesk = FakeZendesk::start();
    rootmail_tickets::http::install_crypto_provider();
    let client = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        client
            .post(format!("{}/api/v2/tickets", zendesk.base_url))
            .basic_auth(format!("{}/token", fake::EMAIL), Some(fake::TOKEN))
            .header("Idempotency-Key", "key-1")
            .json(&body)
    };
    let a = serde_json::json!({"ticket": {"subject": "a", "comment": {"body": "a"}}});
    let b = serde_json::json!({"ticket": {"subject": "b", "comment": {"body": "b"}}});

    let first = post(a.clone()).send().await.expect("first");
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["x-idempotency-lookup"], "miss");
    let replay = post(a.clone()).send().await.expect("replay");
    assert_eq!(replay.headers()["x-idempotency-lookup"], "hit");
    let other = post(b.clone()).send().await.expect("other body");
    assert_eq!(other.status(), 400);
    let text = other.text().await.expect("text");
    assert!(text.contains("IdempotentRequestError"), "{text}");
    assert_eq!(zendesk.tickets().len(), 1);

    zendesk.advance(Duration::from_secs(2 * 3600 + 1));
    let expired = post(b).send().await.expect("after 2 hours");
    assert_eq!(expired.status(), 201);
    assert_eq!(expired.headers()["x-idempotency-lookup"], "miss");
    assert_eq!(zendesk.tickets().len(), 2);

    let unauthorized = client
        .get(format!("{}/api/v2/tickets", zendesk.base_url))
        .send()
        .await
        .expect("no auth");
    assert_eq!(unauthorized.status(), 401);
}

#[tokio::test]
async fn a_more_urgent_mail_raises_the_priority_and_a_calmer_one_never_lowers_it() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "priority@example.com";
    let ticket_id = created(&store, &sink, &op(thread, 1, "")).await;
    let priority = || zendesk.ticket(&ticket_id).priority;
    assert_eq!(priority().as_deref(), Some("normal"));

    // Without a note: the ticket is read, and the comment's update raises it.
    let mut high = op(thread, 2, "");
    high.priority = Priority::High;
    apply(&store, &sink, &high).await.expect("high");
    assert_eq!(priority().as_deref(), Some("high"));

    // With one: the raise goes in the note's update, and the ticket is never
    // read first (its comments, the comment, the note: three requests).
    let before = zendesk.requests().len();
    let mut urgent = op(thread, 3, "Authentication: pass");
    urgent.priority = Priority::Urgent;
    apply(&store, &sink, &urgent).await.expect("urgent");
    assert_eq!(priority().as_deref(), Some("urgent"));
    let calls: Vec<Call> = zendesk.requests()[before..]
        .iter()
        .map(|r| r.call)
        .collect();
    assert_eq!(calls, [Call::ListComments, Call::Update, Call::Update]);

    let mut low = op(thread, 4, "");
    low.priority = Priority::Low;
    apply(&store, &sink, &low).await.expect("low");
    assert_eq!(priority().as_deref(), Some("urgent"));
    let sent: Vec<(bool, Option<String>)> = zendesk
        .calls(Call::Update)
        .iter()
        .map(|r| {
            let fields = &r.json.as_ref().expect("json")["ticket"];
            let priority = fields["priority"].as_str().map(str::to_string);
            (fields.get("comment").is_some(), priority)
        })
        .collect();
    let raised = |p: &str| Some(p.to_string());
    let expected = [
        (true, raised("high")),   // mail 2's comment, with the raise
        (true, None),             // mail 3's comment
        (true, raised("urgent")), // its note, with the raise
        (true, None),             // mail 4's comment: never lowered
    ];
    assert_eq!(sent, expected);
}

/// The raise rides in the note's update: a comment whose answer was lost
/// (applied, then a 500) leaves both undone, and the redelivery that finds
/// the comment reads the ticket and adds them, once.
#[tokio::test]
async fn a_redelivered_comment_adds_its_missing_note_with_the_raise() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "redelivered@example.com";
    let ticket_id = created(&store, &sink, &op(thread, 1, "")).await;
    let mut urgent = op(thread, 2, "Authentication: pass");
    urgent.priority = Priority::Urgent;
    zendesk.lose_answers(Call::Update, 1);
    let error = apply(&store, &sink, &urgent)
        .await
        .expect_err("the answer was lost");
    assert!(error.is_transient(), "{error}");
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.priority.as_deref(), Some("normal"), "not yet raised");

    apply(&store, &sink, &urgent).await.expect("redelivered");
    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.priority.as_deref(), Some("urgent"));
    let marked: Vec<bool> = ticket
        .comments
        .iter()
        .filter(|c| c.body.contains("number 2.") || c.body.contains("Authentication: pass"))
        .map(|c| c.public)
        .collect();
    assert_eq!(marked, [true, false], "one comment, one note");
}

/// Issue 11. Zendesk keeps 64 KB of a comment and drops the rest without an
/// error (as the first-contact issue reports; the fake does the same); the marker is the last line, so a long mail
/// used to lose it and each redelivery added the comment again. Now the body
/// is cut to fit, the cut is said, and the marker survives.
#[tokio::test]
async fn a_long_mail_keeps_its_marker_and_is_commented_once() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "long@example.com";
    let mut first = op(thread, 1, "Original message: s3://mail/inbound/1");
    first.body = "x".repeat(80_000);
    let ticket_id = created(&store, &sink, &first).await;
    let found = sink
        .find(&first.thread_key)
        .await
        .expect("find")
        .expect("found");
    assert_eq!(
        found.created_from, first.message,
        "the description's marker"
    );

    let mut second = op(thread, 2, "Original message: s3://mail/inbound/2");
    second.body = "y".repeat(80_000);
    zendesk.lose_answers(Call::Update, 1);
    let error = apply(&store, &sink, &second).await.expect_err("lost");
    assert!(error.is_transient(), "{error}");
    apply(&store, &sink, &second).await.expect("redelivery");

    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(marked(&ticket, &second), (1, 1), "one comment, one note");
    let comment = ticket
        .public_comments()
        .into_iter()
        .find(|c| has_marker(&c.body, &second.message))
        .expect("the comment");
    assert!(comment.body.len() <= fake::MAX_BODY_BYTES);
    assert!(
        comment
            .body
            .contains(" bytes cut; the original is at s3://mail/inbound/2]"),
        "the cut is said"
    );
    assert!(comment.body.ends_with(&message_marker(&second.message)));
}

/// Issue 12. Zendesk files a ticket under an organization only when its
/// requester belongs to it (the rule as the first-contact issue gives it; the
/// field is `organization_id` of the Tickets API,
/// https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/, and
/// the user is made a member with `POST /api/v2/users/create_or_update`,
/// https://developer.zendesk.com/api-reference/ticketing/users/users/). The
/// fake refuses anything else, with a 422 in its own words.
#[tokio::test]
async fn the_ticket_is_filed_under_the_customers_organization() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| {
        o.requester_domain = Some("tickets.example-msp.com".into());
        o.organizations = vec![("Example Corp".into(), 77)];
    });
    let (_dir, store) = store();

    let first = op("org-1@example.com", 1, "");
    let second = op("org-2@example.com", 1, "");
    let ticket_id = created(&store, &sink, &first).await;
    apply(&store, &sink, &second).await.expect("second thread");

    let ticket = zendesk.ticket(&ticket_id);
    assert_eq!(ticket.organization_id, Some(77));
    let users = zendesk.users();
    assert_eq!(users.len(), 1, "one requester per account: {users:?}");
    assert_eq!(users[0].email, "aws-123456789012@tickets.example-msp.com");
    assert_eq!(users[0].organization_id, Some(77));
    assert_eq!(ticket.requester_id, Some(users[0].id));
    assert_eq!(zendesk.tickets().len(), 2);
}

/// Zendesk answers 409 when two requests write the same record at once: two
/// writers creating one account's new requester, or a ticket whose key's
/// first request still runs. Neither applied anything, so both are left to
/// the queue (transient), not dead-lettered, and the redelivery makes one
/// ticket and one requester.
#[tokio::test]
async fn a_conflict_while_creating_is_left_to_the_queue() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| {
        o.requester_domain = Some("tickets.example-msp.com".into());
        o.organizations = vec![("Example Corp".into(), 77)];
    });
    let raced = op("conflict@example.com", 1, "");
    for call in [Call::CreateOrUpdateUser, Call::Create] {
        zendesk.fail(call, 1, 409);
        let error = sink.create(&new_ticket(&raced)).await.expect_err("409");
        assert!(error.is_transient(), "{call:?}: {error}");
        assert_eq!(error.status, Some(409), "{error}");
        assert!(error.to_string().contains("left to the queue"), "{error}");
        assert!(zendesk.tickets().is_empty(), "{call:?}");
    }
    let id = sink.create(&new_ticket(&raced)).await.expect("redelivered");
    assert_eq!(zendesk.tickets().len(), 1);
    assert_eq!(zendesk.users().len(), 1);
    assert_eq!(marked(&zendesk.ticket(&id), &raced).0, 1, "one comment");
}

/// Issue 13. The comment search reads newest first (`sort=-created_at`, the
/// cursor pagination's sort), so a redelivery finds a recent comment on the
/// first page of a long ticket.
#[tokio::test]
async fn a_redelivery_finds_its_comment_on_the_first_page_of_a_long_ticket() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "long-ticket@example.com";
    let ticket_id = created(&store, &sink, &op(thread, 1, "")).await;
    zendesk.add_comments(&ticket_id, 250);
    let late = op(thread, 2, "");
    zendesk.lose_answers(Call::Update, 1);
    apply(&store, &sink, &late).await.expect_err("lost");
    let before = zendesk.calls(Call::ListComments).len();

    apply(&store, &sink, &late).await.expect("redelivery");

    assert_eq!(
        zendesk.calls(Call::ListComments).len() - before,
        1,
        "found on the first page"
    );
    assert_eq!(marked(&zendesk.ticket(&ticket_id), &late), (1, 0));
}

/// Issue 16, point 6: the pipeline's lookup of a new thread (`find`) is not
/// repeated by the create that follows it in the same attempt. A new thread
/// costs one external_id lookup, one create and one note: no second lookup.
#[tokio::test]
async fn a_new_threads_ticket_costs_one_lookup_not_two() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op("budget@example.com", 1, "Original: s3://mail/7");
    let written = apply(&store, &sink, &first).await.expect("written");
    assert!(matches!(written, Written::Created { .. }), "{written:?}");
    let lookups = zendesk.calls(Call::ListTickets);
    assert_eq!(lookups.len(), 1, "{lookups:#?}");
    assert_eq!(zendesk.calls(Call::Create).len(), 1);
    let all: Vec<(Call, String)> = zendesk
        .requests()
        .into_iter()
        .map(|r| (r.call, r.path))
        .collect();
    assert!(all.len() <= 3, "lookup, create, note: {all:#?}");
}

#[tokio::test]
async fn a_first_mail_retried_after_its_thread_moved_on_still_gets_its_note() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let first = op(
        "later@example.com",
        1,
        "Authentication: DKIM pass. Original: s3://mail/1",
    );
    let second = op(
        "later@example.com",
        2,
        "Authentication: DKIM pass. Original: s3://mail/2",
    );

    // The first mail's ticket went in, then its operation failed before the
    // note; the thread's second mail was written meanwhile and recorded the
    // thread as created by the first.
    let mut without_note = new_ticket(&first);
    without_note.internal_note.clear();
    let created = sink.create(&without_note).await.expect("create");
    apply(&store, &sink, &second).await.expect("second mail");
    let record = store.ticket_of(&first.thread_key).await.unwrap().unwrap();
    assert_eq!(record.created_from, first.message);
    assert_eq!(marked(&zendesk.ticket(&created), &first), (1, 0));

    // The first mail's retry finishes its ticket: the note goes in, once.
    let written = apply(&store, &sink, &first).await.expect("retry");
    assert_eq!(
        written,
        Written::Created {
            ticket_id: created.clone()
        }
    );
    assert_eq!(zendesk.tickets().len(), 1, "no second ticket");
    assert_eq!(marked(&zendesk.ticket(&created), &first), (1, 1));
    assert_eq!(marked(&zendesk.ticket(&created), &second), (1, 1));
}

/// Issue 16, goal 6: a first send skips the search of the ticket's comments
/// only while the thread's own comments (two a message, at most) fill at
/// most half of the ticket's limit; nearer the limit it searches, since the
/// search is what counts the comments and keeps a comment with its note.
#[tokio::test]
async fn a_first_send_counts_the_comments_only_near_the_limit() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| o.max_comments = 12);
    let (_dir, store) = store();
    let ticket_id = created(&store, &sink, &op("near-limit@example.com", 1, "n")).await;
    let mut searched = Vec::new();
    for (n, earlier) in [(2, 0), (3, 1), (4, 2), (5, 3)] {
        let mut comment = new_ticket(&op("near-limit@example.com", n, "n")).as_comment();
        comment.first_send = Some(rootmail_pipeline::FirstSend {
            earlier_messages: earlier,
        });
        let before = zendesk.requests().len();
        sink.comment(&ticket_id, &comment).await.expect("comment");
        let calls: Vec<Call> = zendesk.requests()[before..]
            .iter()
            .map(|r| r.call)
            .collect();
        searched.push(calls.contains(&Call::ListComments));
    }
    // 0: not known; 1 and 2: 4 and 6 comments of 12; 3: 8, over half.
    assert_eq!(searched, [true, false, false, true]);
    assert_eq!(zendesk.ticket(&ticket_id).comments.len(), 10);
}

/// The stack moves from one Zendesk to another (a sandbox to production, a
/// new subdomain), keeping its thread map: both number tickets from the same
/// start, so the map's ticket id names a stranger's ticket in the new one.
/// The thread's next mail must start a ticket there, never comment on it.
#[tokio::test]
async fn a_thread_recorded_in_another_zendesk_starts_a_ticket_in_this_one() {
    let sandbox = FakeZendesk::start();
    let production = FakeZendesk::start();
    let (_dir, store) = store();
    let thread = "moved@example.com";
    let first = created(&store, &sandbox.backend(), &op(thread, 1, "")).await;
    let stranger = production.insert_ticket("another customer's thread", "Someone else");
    assert_eq!(first, stranger, "both number tickets alike");

    let second = op(thread, 2, "");
    let written = apply(&store, &production.backend(), &second)
        .await
        .expect("apply");
    let Written::Created { ticket_id } = written else {
        panic!("a new ticket in the new Zendesk, not {written:?}");
    };
    assert_ne!(ticket_id, stranger);
    assert_eq!(marked(&production.ticket(&stranger), &second), (0, 0));
    assert_eq!(production.tickets().len(), 2);
    let record = store
        .ticket_of(&second.thread_key)
        .await
        .expect("thread map")
        .expect("recorded");
    assert_eq!(record.ticket_id, ticket_id, "the thread now lives here");
    // And the thread's third mail comments on that new ticket.
    let third = op(thread, 3, "");
    let written = apply(&store, &production.backend(), &third)
        .await
        .expect("apply");
    assert!(
        matches!(written, Written::Commented { ref ticket_id, .. } if *ticket_id == record.ticket_id)
    );
}

/// An agent deletes the thread's ticket (or marks it as spam): the thread's
/// next mail starts a new ticket, instead of failing on the old id for ever
/// and going to the dead-letter queue with every later mail of the thread.
#[tokio::test]
async fn a_deleted_ticket_is_replaced_by_the_thread_s_next_mail() {
    deleted_ticket_replaced_after(Duration::from_secs(3 * 3600)).await;
}

/// The same within Zendesk's two hours of keeping an idempotency key: the
/// create's key was the thread's alone, so the next mail's create, another
/// body under the first one's key, was refused (400 IdempotentRequestError)
/// for good and dead-lettered. The key is the thread's and the message's.
#[tokio::test]
async fn a_ticket_deleted_soon_after_it_was_made_is_replaced_too() {
    deleted_ticket_replaced_after(Duration::from_secs(10 * 60)).await;
}

/// A thread's ticket deleted, and its next mail `after` that.
async fn deleted_ticket_replaced_after(after: Duration) {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "deleted@example.com";
    let gone = created(&store, &sink, &op(thread, 1, "")).await;
    zendesk.delete(&gone);
    zendesk.advance(after);

    let second = op(thread, 2, "Original: s3://mail/2");
    let written = apply(&store, &sink, &second).await.expect("apply");
    let Written::Created { ticket_id } = written else {
        panic!("a new ticket, not {written:?}");
    };
    assert_ne!(ticket_id, gone);
    assert_eq!(zendesk.tickets().len(), 1);
    assert_eq!(marked(&zendesk.ticket(&ticket_id), &second), (1, 1));
    let record = store
        .ticket_of(&second.thread_key)
        .await
        .expect("thread map")
        .expect("recorded");
    assert_eq!(record.ticket_id, ticket_id);

    // Its redelivery changes nothing; the thread's next mail is a comment there.
    assert_eq!(
        apply(&store, &sink, &second).await.expect("redelivery"),
        Written::Created {
            ticket_id: ticket_id.clone()
        }
    );
    let third = op(thread, 3, "");
    let written = apply(&store, &sink, &third).await.expect("apply");
    assert!(
        matches!(written, Written::Commented { ref ticket_id, .. } if *ticket_id == record.ticket_id)
    );
    assert_eq!(zendesk.tickets().len(), 1);
}

/// A 422 on the internal note whose words mention "closed" while the ticket
/// is open is an error to retry, not a closed ticket: the note (the
/// original's location) is never dropped on Zendesk's wording alone.
#[tokio::test]
async fn a_refused_note_is_dropped_only_when_the_ticket_is_really_closed() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let (_dir, store) = store();
    let thread = "note@example.com";
    let ticket = created(&store, &sink, &op(thread, 1, "")).await;
    let second = op(thread, 2, "Original: s3://mail/2");
    // The comment's update goes through; the note's is refused.
    zendesk.fail_saying(
        Call::Update,
        1,
        422,
        "Comment: the closed captions field is invalid",
    );
    let refused = apply(&store, &sink, &second).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(marked(&zendesk.ticket(&ticket), &second), (1, 0));
    // Redelivered: the note is added, the comment not repeated.
    apply(&store, &sink, &second).await.expect("redelivery");
    assert_eq!(marked(&zendesk.ticket(&ticket), &second), (1, 1));
}

/// A follow-up's first comment is the API user's, an agent's, whoever the
/// requester is (Zendesk's Tickets API: "By default, the first comment author
/// is the authenticated user making the API request"), and Zendesk renders an
/// agent's Markdown: a sender's link or image (a pixel that fires when a CRE
/// opens the ticket) must stay text there too.
#[tokio::test]
async fn a_follow_up_shows_the_mail_s_markdown_as_text() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend_with(|o| {
        o.requester_domain = Some("tickets.example-msp.com".into());
    });
    let (_dir, store) = store();
    let thread = "pixel@example.com";
    let old = created(&store, &sink, &op(thread, 1, "")).await;
    zendesk.close(&old);
    let mut later = op(thread, 2, "");
    later.body = "[Verify root MFA](https://evil.example) ![](https://evil.example/p.gif)".into();

    apply(&store, &sink, &later).await.expect("follow-up");

    let next = zendesk
        .tickets()
        .into_iter()
        .find(|t| t.id.to_string() != old)
        .expect("the follow-up");
    assert!(
        next.description.contains("\\[Verify root MFA\\]") && next.description.contains("!\\["),
        "{}",
        next.description
    );
}

/// Message-IDs are case-sensitive; Zendesk documents external ids as not
/// (on users, and the fake lists tickets so): two threads whose ids differ in
/// case alone keep two tickets, each found again as its own.
#[tokio::test]
async fn thread_keys_differing_in_case_alone_keep_their_own_tickets() {
    let zendesk = FakeZendesk::start();
    let sink = zendesk.backend();
    let upper = op("Case.Sensitive@example.com", 1, "note");
    let lower = op("case.sensitive@example.com", 1, "note");
    let first = sink.create(&new_ticket(&upper)).await.expect("create");
    let found = sink.find(&lower.thread_key).await.expect("find");
    assert_eq!(
        found.map(|f| f.id),
        None,
        "the other case is another thread"
    );
    let second = sink.create(&new_ticket(&lower)).await.expect("create");
    assert_ne!(first, second);
    let again = sink
        .find(&upper.thread_key)
        .await
        .expect("find")
        .map(|f| f.id);
    assert_eq!(again, Some(first));
}
