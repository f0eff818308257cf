//! How people hear of lifecycle changes: a comment on the account's lifecycle
//! ticket (a ticket operation on the FIFO queue the ticket writer reads, in the
//! account's lifecycle thread), and for break-glass access an email through SES
//! (its v2 `SendEmail`, without the SDK's client: [`crate::aws_json`]).

use crate::aws_json::{JsonClient, SES_V2};
use crate::queue::SqsTicketQueue;
use rootmail_domain::AccountId;
use rootmail_lifecycle::notes::lifecycle_note;
use rootmail_lifecycle::{LifecycleResult, Notices};
use rootmail_pipeline::TicketQueue;

const SES: &str = "ses";

#[derive(Clone)]
pub struct LifecycleNotices {
    queue: SqsTicketQueue,
    ses: JsonClient,
    from: String,
    to: String,
}

impl LifecycleNotices {
    pub fn new(
        sqs: aws_sdk_sqs::Client,
        ticket_ops_queue_url: &str,
        ses: JsonClient,
        (from, to): (&str, &str),
    ) -> Self {
        Self {
            queue: SqsTicketQueue::new(sqs, ticket_ops_queue_url),
            ses,
            from: from.to_string(),
            to: to.to_string(),
        }
    }

    /// A client for the SDK configuration's SES.
    pub fn ses_client(aws: &aws_config::SdkConfig) -> JsonClient {
        JsonClient::new(aws, SES_V2, SES)
    }
}

/// SES's `Content`: text and its charset.
fn text(data: &str) -> serde_json::Value {
    serde_json::json!({"Data": data, "Charset": "UTF-8"})
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
        let email = serde_json::json!({
            "FromEmailAddress": self.from,
            "Destination": {"ToAddresses": [self.to]},
            "Content": {"Simple": {"Subject": text(subject), "Body": {"Text": text(body)}}},
        });
        let _sent: serde_json::Value = self
            .ses
            .post_for("SendEmail", "v2/email/outbound-emails", &email)
            .await?;
        Ok(())
    }
}
