//! The ledger as a DynamoDB table keyed by `content_hash`.

use crate::dynamo::{from_item, n, s, to_item};
use crate::error::{condition_failed, port_error};
use aws_sdk_dynamodb::Client;
use rootmail_domain::ContentHash;
use rootmail_pipeline::{Claim, Ledger, LedgerRow, LedgerStatus, PortResult, Sending};

const PORT: &str = "ledger";

/// A claim's random id. The SDK retries a put whose answer it lost; the
/// retry then meets the row the first attempt wrote, and must know it as
/// its own: another invocation's claim would keep the message waiting for
/// the whole stale window.
fn claim_id() -> PortResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        rootmail_pipeline::PortError::permanent(
            PORT,
            format!("the operating system's random source failed: {e}"),
        )
    })?;
    Ok(hex::encode(bytes))
}

/// What a claim refused by its condition found: our own claim (a retried
/// put), a finished row, or someone else's claim in progress.
fn claim_outcome(existing: Option<LedgerRow>, ours: &LedgerRow) -> Claim {
    match existing {
        Some(row) if row.status == LedgerStatus::Claimed => {
            if row.claim_id.is_some() && row.claim_id == ours.claim_id {
                Claim::Owned(row)
            } else {
                Claim::Busy
            }
        }
        Some(row) => Claim::Seen(row),
        // Released or deleted between the put and the read.
        None => Claim::Busy,
    }
}

#[derive(Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Every row claimed at or after `since` (seconds). A full scan: this is for
    /// operators' reports, not for the message path.
    pub async fn rows_since(&self, since: u64) -> PortResult<Vec<LedgerRow>> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            // A claim released after a failed ingest (claimed_at 0) is
            // unfinished whenever it was made.
            .filter_expression(
                "claimed_at >= :since OR (#status = :claimed AND claimed_at = :released)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":since", n(since))
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":released", n(0))
            .into_paginator()
            .send();
        let mut rows = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| port_error(PORT, e))?;
            for item in page.items.unwrap_or_default() {
                rows.push(from_item(PORT, item)?);
            }
        }
        Ok(rows)
    }
}

impl Ledger for DynamoLedger {
    async fn claim(
        &self,
        hash: &ContentHash,
        source: &str,
        now_secs: u64,
        stale_after_secs: u64,
    ) -> PortResult<Claim> {
        let mut row = LedgerRow::claimed(hash, source, now_secs);
        row.claim_id = Some(claim_id()?);
        // New, or a claim so old that its run must have died: take it.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(PORT, &row)?))
            .condition_expression(
                "attribute_not_exists(content_hash) OR (#status = :claimed AND claimed_at < :stale)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":claimed", s("claimed"))
            .expression_attribute_values(":stale", n(now_secs.saturating_sub(stale_after_secs)))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Owned(row)),
            Err(e) if condition_failed(&e) => Ok(claim_outcome(self.get(hash).await?, &row)),
            Err(e) => Err(port_error(PORT, e)),
        }
    }

    /// A finished row stays finished: a redelivered copy that is triaged again
    /// while its operation is being written must not turn `done` back into
    /// `queued` (FIFO deduplication then drops the repeated operation, and the
    /// row would stay `queued` for ever). Nor does such a copy erase a
    /// writer's [`Sending::Started`] mark: the writer would then trust that
    /// nothing was sent. Such a write changes nothing.
    async fn record(&self, row: &LedgerRow) -> PortResult<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(PORT, row)?));
        if row.status != LedgerStatus::Done {
            let mut condition =
                "attribute_not_exists(content_hash) OR (#status <> :done".to_string();
            put = put
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":done", s("done"));
            // A write that carries the mark (the writer noting a failure) may stand.
            if row.sending != Sending::Started {
                condition.push_str(" AND (attribute_not_exists(#sending) OR #sending <> :started)");
                put = put
                    .expression_attribute_names("#sending", "sending")
                    .expression_attribute_values(":started", s("started"));
            }
            condition.push(')');
            put = put.condition_expression(condition);
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => {
                tracing::info!(content_hash = %row.content_hash, "already done or being sent; left as it is");
                Ok(())
            }
            Err(e) => Err(port_error(PORT, e)),
        }
    }

    async fn get(&self, hash: &ContentHash) -> PortResult<Option<LedgerRow>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("content_hash", s(hash.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        found.item.map(|item| from_item(PORT, item)).transpose()
    }

    /// One conditional update: only a queued row that no writer took yet.
    async fn start_sending(&self, hash: &ContentHash) -> PortResult<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("content_hash", s(hash.as_str()))
            .update_expression("SET #sending = :started")
            .condition_expression("#status = :queued AND #sending = :not_yet")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#sending", "sending")
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":not_yet", s("not_yet"))
            .expression_attribute_values(":started", s("started"))
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(port_error(PORT, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: Option<&str>, status: LedgerStatus) -> LedgerRow {
        let hash = ContentHash::of(b"mail");
        let mut row = LedgerRow::claimed(&hash, "inbound/a", 100);
        row.claim_id = id.map(str::to_string);
        row.status = status;
        row
    }

    /// The SDK retried a claim whose first answer was lost: the row there
    /// is our own, not another invocation's (it was Busy for the whole stale
    /// window).
    #[test]
    fn a_retried_claim_knows_its_own_row() {
        let ours = claim(Some("a1"), LedgerStatus::Claimed);
        let outcome = |existing| claim_outcome(existing, &ours);
        assert!(matches!(
            outcome(Some(ours.clone())),
            Claim::Owned(row) if row.claim_id.as_deref() == Some("a1")
        ));
        assert!(matches!(
            outcome(Some(claim(Some("b2"), LedgerStatus::Claimed))),
            Claim::Busy
        ));
        assert!(matches!(
            outcome(Some(claim(None, LedgerStatus::Claimed))),
            Claim::Busy
        ));
        assert!(matches!(outcome(None), Claim::Busy));
        assert!(matches!(
            outcome(Some(claim(Some("a1"), LedgerStatus::Done))),
            Claim::Seen(_)
        ));
        assert_ne!(claim_id().unwrap(), claim_id().unwrap());
    }
}
