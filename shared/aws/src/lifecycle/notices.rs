//! How people hear of lifecycle changes: a comment on the account's lifecycle
//! ticket (a ticket operation on the FIFO queue the ticket writer reads, in the
//! account's lifecycle thread), and for break-glass access an email through SES.

use crate::queue::SqsTicketQueue;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use rootmail_domain::{AccountId, ContentHash, Kind, Priority, ThreadKey};
use rootmail_lifecycle::{LifecycleResult, Notices};
use rootmail_pipeline::{TicketOp, TicketQueue};

const SES: &str = "ses";

#[derive(Clone)]
pub struct LifecycleNotices {
    queue: SqsTicketQueue,
    ses: aws_sdk_sesv2::Client,
    from: String,
    to: String,
}

impl LifecycleNotices {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        ticket_ops_queue_url: &str,
        ses: aws_sdk_sesv2::Client,
        (from, to): (&str, &str),
    ) -> Self {
        Self {
            queue: SqsTicketQueue::new(sqs, ticket_ops_queue_url),
            ses,
            from: from.to_string(),
            to: to.to_string(),
        }
    }
}

/// The ticket operation of one lifecycle note: a ticket per account (its
/// lifecycle thread), one comment per note.
pub fn lifecycle_note(account: &AccountId, customer: &str, text: &str, now_ms: u64) -> TicketOp {
    let message = ContentHash::of(format!("{account}\n{now_ms}\n{text}").as_bytes());
    TicketOp {
        message,
        thread_key: ThreadKey::lifecycle(account),
        kind: Kind::Unknown,
        priority: Priority::Normal,
        account_id: Some(account.to_string()),
        customer: Some(customer.to_string()),
        subject: format!("[{customer} / {account}] Root credential lifecycle"),
        body: text.to_string(),
        internal_note: String::new(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    }
}

fn text(data: &str) -> LifecycleResult<Content> {
    Content::builder()
        .data(data)
        .charset("UTF-8")
        .build()
        .map_err(|e| super::permanent(SES, e.to_string()))
}

impl Notices for LifecycleNotices {
    async fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> LifecycleResult<()> {
        let op = lifecycle_note(account, customer, text, crate::metrics::now_millis());
        self.queue.enqueue(&op).await?;
        Ok(())
    }

    async fn email(&self, subject: &str, body: &str) -> LifecycleResult<()> {
        let message = Message::builder()
            .subject(text(subject)?)
            .body(Body::builder().text(text(body)?).build())
            .build();
        self.ses
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&self.to).build())
            .content(EmailContent::builder().simple(message).build())
            .send()
            .await
            .map_err(|e| super::sdk(SES, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_a_comment_in_the_accounts_lifecycle_thread() {
        let account = AccountId::parse("444455556666").unwrap();
        let a = lifecycle_note(&account, "Initech", "take-over started: ...", 1_000);
        let b = lifecycle_note(&account, "Initech", "root email changed: ...", 1_000);
        assert_eq!(a.thread_key, ThreadKey::lifecycle(&account));
        assert_eq!(a.thread_key, b.thread_key);
        assert_ne!(a.message, b.message, "each note is its own comment");
        assert_eq!(
            a.subject,
            "[Initech / 444455556666] Root credential lifecycle"
        );
        assert_eq!(a.body, "take-over started: ...");
        assert!(!a.quarantined);
    }
}
