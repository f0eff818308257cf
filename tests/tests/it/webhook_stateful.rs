//! The webhook backend against a receiver that keeps the documented contract
//! (functions/README.md, "The webhook contract"): the same `Idempotency-Key`
//! answers the same ticket, a thread's tickets are listed by `thread_key`, a
//! deleted ticket's comments answer 404.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use rootmail_domain::{ContentHash, Kind, Priority, ThreadKey};
use rootmail_fake_http::{FakeHttp, Received, Reply};
use rootmail_local::LocalStore;
use rootmail_pipeline::{TicketOp, Written, apply_ticket_op};
use rootmail_tickets::{HttpClient, RetryPolicy, Webhook, WebhookCredentials};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NOW: u64 = 1_700_000_000;

/// One ticket the receiver made.
struct Ticket {
    thread_key: String,
    created_from: String,
    deleted: bool,
}

#[derive(Default)]
struct Receiver {
    /// Each key's answer, kept for good (the contract sets no expiry).
    keys: HashMap<String, String>,
    tickets: Vec<Ticket>,
}

type Shared = Arc<Mutex<Receiver>>;

fn key_of(request: &Received) -> String {
    let key = request.header("Idempotency-Key");
    key.expect("every POST has a key").to_string()
}

async fn create(State(r): State<Shared>, request: Received) -> Reply {
    let mut r = r.lock().unwrap();
    let key = key_of(&request);
    if let Some(id) = r.keys.get(&key) {
        return Reply::json(201, json!({"id": id}));
    }
    let body = request.json();
    r.tickets.push(Ticket {
        thread_key: body["thread_key"].as_str().unwrap().to_string(),
        created_from: body["message"].as_str().unwrap().to_string(),
        deleted: false,
    });
    let id = format!("T{}", r.tickets.len());
    r.keys.insert(key, id.clone());
    Reply::json(201, json!({"id": id}))
}

async fn comment(State(r): State<Shared>, Path(id): Path<String>, request: Received) -> Reply {
    let mut r = r.lock().unwrap();
    let index: usize = id.trim_start_matches('T').parse().unwrap();
    if r.tickets[index - 1].deleted {
        return Reply::status(404);
    }
    let comment = format!("{id}-C{}", r.keys.len());
    let answer = r.keys.entry(key_of(&request)).or_insert(comment).clone();
    Reply::json(201, json!({"id": answer}))
}

async fn list(State(r): State<Shared>, request: Received) -> Reply {
    let r = r.lock().unwrap();
    let thread = request.query_param("thread_key");
    let listed: Vec<Value> = (r.tickets.iter().enumerate())
        .filter(|(_, t)| !t.deleted && Some(&t.thread_key) == thread.as_ref())
        .map(|(i, t)| json!({"id": format!("T{}", i + 1), "created_from": t.created_from}))
        .collect();
    Reply::json(200, json!({"tickets": listed}))
}

fn op(thread: &str, n: u32) -> TicketOp {
    TicketOp {
        message: ContentHash::of(format!("{thread} mail {n}").as_bytes()),
        thread_key: ThreadKey::message(thread),
        kind: Kind::BudgetAlert,
        priority: Priority::Normal,
        account_id: Some("123456789012".into()),
        customer: Some("Example Corp".into()),
        subject: format!("AWS Budgets: alert {n}"),
        body: format!("Budget alert number {n}."),
        internal_note: String::new(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    }
}

/// An agent deletes the thread's ticket: the thread's next mail starts a
/// new one. With a create key of the thread's alone, the receiver answered
/// that create with the deleted ticket (the same key, the same id), and every
/// later mail of the thread was retried until it reached the dead-letter
/// queue.
#[tokio::test]
async fn a_deleted_webhook_ticket_is_replaced_by_the_thread_s_next_mail() {
    let receiver = Shared::default();
    let router = Router::new()
        .route("/hook/tickets", post(create).get(list))
        .route("/hook/tickets/{id}/comments", post(comment))
        .with_state(receiver.clone());
    let server = FakeHttp::start(router);
    let http = HttpClient::new("webhook", Duration::from_secs(5), RetryPolicy::default());
    let credentials: WebhookCredentials = serde_json::from_value(json!({"token": "t"})).unwrap();
    let sink = Webhook::new(
        http.unwrap(),
        &format!("{}/hook", server.url()),
        credentials,
    );
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let apply = |op| {
        let ports = store.writer_ports(&sink);
        async move { apply_ticket_op(ports, &op, NOW).await.unwrap().written }
    };

    let first = apply(op("gone@example.com", 1)).await;
    assert_eq!(
        first,
        Written::Created {
            ticket_id: "T1".into()
        }
    );
    receiver.lock().unwrap().tickets[0].deleted = true;
    let second = apply(op("gone@example.com", 2)).await;
    assert_eq!(
        second,
        Written::Created {
            ticket_id: "T2".into()
        }
    );
    // Its redelivery, and the thread's next mail, go to the new ticket.
    let again = apply(op("gone@example.com", 2)).await;
    assert_eq!(
        again,
        Written::Created {
            ticket_id: "T2".into()
        }
    );
    let third = apply(op("gone@example.com", 3)).await;
    assert!(
        matches!(&third, Written::Commented { ticket_id, .. } if ticket_id == "T2"),
        "{third:?}"
    );
    assert_eq!(receiver.lock().unwrap().tickets.len(), 2);
}
