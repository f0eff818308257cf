//! How people hear of lifecycle changes: a comment on the account's lifecycle
//! ticket (a ticket operation on the FIFO queue the ticket writer reads, in the
//! account's lifecycle thread), and for break-glass access an email through SES.

use crate::queue::SqsTicketQueue;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use rootmail_domain::AccountId;
use rootmail_lifecycle::notes::lifecycle_note;
use rootmail_lifecycle::{LifecycleResult, Notices};
use rootmail_pipeline::TicketQueue;

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
