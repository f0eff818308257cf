//! The audit table: append-only, key (`account_id`, `at` in milliseconds). A
//! write never replaces a record (`attribute_not_exists`), so the role that
//! appends needs `PutItem` and `Query` only; it can neither update nor delete.

use crate::dynamo::{from_item, n, s, to_item};
use crate::error::condition_failed;
use aws_sdk_dynamodb::Client;
use rootmail_domain::AccountId;
use rootmail_lifecycle::{AuditEntry, AuditLog, LifecycleResult};
use rootmail_pipeline::PortError;

const PORT: &str = "audit";
/// Collisions in a row before giving up (each moves past the newest record).
const MAX_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct DynamoAudit {
    client: Client,
    table: String,
}

impl DynamoAudit {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// The newest record's time at or after `from`, if any.
    async fn newest_since(&self, account: &AccountId, from: u64) -> LifecycleResult<Option<u64>> {
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("account_id = :id AND #at >= :from")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":id", s(account.as_str()))
            .expression_attribute_values(":from", n(from))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        Ok(found
            .items()
            .first()
            .and_then(|item| item.get("at"))
            .and_then(|at| at.as_n().ok())
            .and_then(|at| at.parse().ok()))
    }
}

impl AuditLog for DynamoAudit {
    /// Two records in the same millisecond (steps in quick succession) keep
    /// their order: the later one moves one past the newest.
    async fn append(&self, entry: &AuditEntry) -> LifecycleResult<()> {
        let mut entry = entry.clone();
        for _ in 0..MAX_ATTEMPTS {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_item(PORT, &entry)?))
                .condition_expression("attribute_not_exists(account_id)")
                .send()
                .await;
            match put {
                Ok(_) => return Ok(()),
                // Another record at the key, or this one: the SDK sending
                // again a write whose answer was lost meets its own. Both
                // are written on, one millisecond later: an access recorded
                // twice is better than one not recorded (two reads alike in
                // the same second share a key, so "the same record" cannot
                // tell a retry from a second read).
                Err(e) if condition_failed(&e) => {
                    let newest = self.newest_since(&entry.account_id, entry.at).await?;
                    entry.at = newest.unwrap_or(entry.at).max(entry.at) + 1;
                }
                Err(e) => return Err(super::sdk(PORT, e)),
            }
        }
        Err(PortError::transient(PORT, format!(
                "account {}'s audit record collided {MAX_ATTEMPTS} times with records written at the same time",
                entry.account_id
            ))
        .into())
    }

    async fn entries(&self, account: &AccountId) -> LifecycleResult<Vec<AuditEntry>> {
        let mut pages = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("account_id = :id")
            .expression_attribute_values(":id", s(account.as_str()))
            .scan_index_forward(true)
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut entries = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| super::sdk(PORT, e))?;
            for item in page.items.unwrap_or_default() {
                entries.push(from_item(PORT, item)?);
            }
        }
        Ok(entries)
    }
}
