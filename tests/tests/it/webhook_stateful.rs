//! The webhook backend against the stateful receiver that keeps the
//! documented contract (functions/README.md, "The webhook contract"): the
//! same `Idempotency-Key` answers the same ticket, a thread's tickets are
//! listed by `thread_key`, a deleted ticket's comments answer 404.

use super::zendesk_stateful::op;
use rootmail_local::LocalStore;
use rootmail_pipeline::{Written, apply_ticket_op};
use rootmail_tests::webhook_server::WebhookServer;
use rootmail_tickets::{HttpClient, RetryPolicy, Webhook, WebhookCredentials};
use serde_json::json;
use std::time::Duration;

const NOW: u64 = 1_700_000_000;

/// An agent deletes the thread's ticket: the thread's next mail starts a
/// new one. With a create key of the thread's alone, the receiver answered
/// that create with the deleted ticket (the same key, the same id), and every
/// later mail of the thread was retried until it reached the dead-letter
/// queue.
#[tokio::test]
async fn a_deleted_webhook_ticket_is_replaced_by_the_thread_s_next_mail() {
    let receiver = WebhookServer::start();
    let http = HttpClient::new("webhook", Duration::from_secs(5), RetryPolicy::default());
    let key = rootmail_tests::aws::WEBHOOK_HMAC_KEY;
    let credentials: WebhookCredentials = serde_json::from_value(json!({"hmac_key": key})).unwrap();
    let sink = Webhook::new(http.unwrap(), &receiver.url, credentials);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).unwrap();
    let apply = |n| {
        let ports = store.writer_ports(&sink);
        let op = op("gone@example.com", n, "");
        async move { apply_ticket_op(ports, &op, NOW).await.unwrap().written }
    };
    let created = |written: Written| match written {
        Written::Created { ticket_id } => ticket_id,
        other => panic!("a new ticket, not {other:?}"),
    };

    let gone = created(apply(1).await);
    receiver.delete(&gone);
    let second = created(apply(2).await);
    assert_ne!(second, gone);
    // Its redelivery, and the thread's next mail, go to the new ticket.
    assert_eq!(created(apply(2).await), second);
    let third = apply(3).await;
    assert!(
        matches!(&third, Written::Commented { ticket_id, .. } if *ticket_id == second),
        "{third:?}"
    );
    assert_eq!(receiver.tickets().len(), 1);
}
