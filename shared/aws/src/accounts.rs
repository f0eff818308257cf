//! The account directory as a DynamoDB table keyed by `root_email` (lower-case),
//! with a global secondary index on `account_id`.

use crate::dynamo::s;
use crate::error::port_error;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use rootmail_domain::{Account, AccountId, AccountStatus, EmailAddress};
use rootmail_pipeline::{AccountLookup, PortError, PortResult};
use std::collections::HashMap;

const PORT: &str = "accounts";
/// The index the template defines on `account_id`.
pub const ACCOUNT_ID_INDEX: &str = "by-account-id";

#[derive(Clone)]
pub struct DynamoAccounts {
    client: Client,
    table: String,
}

/// What importing one account did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Added,
    Updated,
    Unchanged,
}

impl DynamoAccounts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Writes the account unless the stored row already says the same.
    pub async fn upsert(&self, account: &Account) -> PortResult<Upsert> {
        let existing = self.by_email(&account.root_email).await?;
        if existing.as_ref() == Some(account) {
            return Ok(Upsert::Unchanged);
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("root_email", s(account.root_email.as_str()))
            .item("account_id", s(account.account_id.as_str()))
            .item("customer", s(account.customer.as_str()))
            .item("status", s(account.status.as_str()));
        if let Some(payer) = &account.payer {
            put = put.item("payer", s(payer.as_str()));
        }
        put.send().await.map_err(|e| port_error(PORT, e))?;
        Ok(if existing.is_some() {
            Upsert::Updated
        } else {
            Upsert::Added
        })
    }
}

impl DynamoAccounts {
    /// Every row of the table (a paginated Scan: `accounts list --aws`).
    pub async fn all(&self) -> PortResult<Vec<Account>> {
        crate::dynamo::scan_items(&self.client, &self.table, None, None)
            .await?
            .iter()
            .map(account_from_item)
            .collect()
    }
}

/// Lookups read strongly consistent: DynamoDB's default is eventually
/// consistent, and the account a take-over has just registered decides
/// whether AWS's code mail, seconds later, is handed over or ticketed.
impl AccountLookup for DynamoAccounts {
    async fn by_email(&self, email: &EmailAddress) -> PortResult<Option<Account>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("root_email", s(email.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        found.item.as_ref().map(account_from_item).transpose()
    }

    /// BatchGetItem, 100 keys a request: a mail with thousands of recipients
    /// costs tens of requests, not thousands.
    async fn by_emails(&self, emails: &[EmailAddress]) -> PortResult<Vec<Account>> {
        let mut found = Vec::new();
        for chunk in emails.chunks(100) {
            let keys: Vec<HashMap<String, AttributeValue>> = chunk
                .iter()
                .map(|e| HashMap::from([("root_email".to_string(), s(e.as_str()))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| bad_row(e.to_string()))?,
            );
            let mut attempt = 0u32;
            while let Some(keys) = request.take() {
                attempt += 1;
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| port_error(PORT, e))?;
                let items = answer
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in &items {
                    found.push(account_from_item(item)?);
                }
                // Keys DynamoDB did not get to (throttling): ask again, briefly.
                request = answer
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if request.is_some() {
                    if attempt >= 5 {
                        return Err(PortError::transient(
                            PORT,
                            "account lookups left unprocessed after 5 attempts",
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
            }
        }
        Ok(found)
    }

    async fn by_id(&self, id: &AccountId) -> PortResult<Option<Account>> {
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(ACCOUNT_ID_INDEX)
            .key_condition_expression("account_id = :id")
            .expression_attribute_values(":id", s(id.as_str()))
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        let accounts = found
            .items
            .unwrap_or_default()
            .iter()
            .map(account_from_item)
            .collect::<PortResult<Vec<_>>>()?;
        // The same rule as the in-memory directory: the current address
        // ranks highest (an index returns rows of one id in no documented
        // order, so the rank decides, not the order: during a take-over the
        // customer's active row, not our onboarding one, else a retried
        // registration took our own address for the customer's).
        Ok(rootmail_domain::directory::current_row(&accounts).cloned())
    }
}

fn account_from_item(item: &HashMap<String, AttributeValue>) -> PortResult<Account> {
    let text = |name: &str| -> PortResult<&str> {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            .ok_or_else(|| bad_row(format!("account row without {name}")))
    };
    Ok(Account {
        root_email: EmailAddress::parse(text("root_email")?).map_err(|e| bad_row(e.to_string()))?,
        account_id: AccountId::parse(text("account_id")?).map_err(|e| bad_row(e.to_string()))?,
        customer: text("customer")?.to_string(),
        status: AccountStatus::parse(text("status")?).map_err(|e| bad_row(e.to_string()))?,
        payer: match item.get("payer").and_then(|v| v.as_s().ok()) {
            Some(id) => Some(AccountId::parse(id).map_err(|e| bad_row(e.to_string()))?),
            None => None,
        },
    })
}

fn bad_row(message: String) -> PortError {
    PortError::permanent(PORT, message)
}

/// Which AWS Organizations accounts to import.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    /// Only accounts whose email matches this regular expression.
    pub email_pattern: Option<regex::Regex>,
    /// Only accounts carrying this tag (key, and value if given).
    pub tag: Option<(String, Option<String>)>,
    /// The tag whose value names the customer; else the account name.
    pub customer_tag: Option<String>,
    /// The organization's management (payer) account, recorded on each.
    pub payer: Option<AccountId>,
}

/// The member accounts of the organization that pass `filter`, as directory
/// entries (status `active`, or `closed` when AWS is closing the account).
#[cfg(feature = "organizations")]
pub async fn organization_accounts(
    client: &aws_sdk_organizations::Client,
    filter: &OrgFilter,
) -> PortResult<Vec<Account>> {
    const ORG: &str = "organizations";
    let mut pages = client.list_accounts().into_paginator().send();
    let mut accounts = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| port_error(ORG, e))?;
        for listed in page.accounts.unwrap_or_default() {
            let (Some(id), Some(email)) = (listed.id(), listed.email()) else {
                continue;
            };
            if filter
                .email_pattern
                .as_ref()
                .is_some_and(|p| !p.is_match(email))
            {
                continue;
            }
            let tags = if filter.tag.is_some() || filter.customer_tag.is_some() {
                account_tags(client, id).await?
            } else {
                HashMap::new()
            };
            if let Some((key, value)) = &filter.tag {
                let matches = tags
                    .get(key)
                    .is_some_and(|v| value.as_ref().is_none_or(|want| want == v));
                if !matches {
                    continue;
                }
            }
            let customer = filter
                .customer_tag
                .as_ref()
                .and_then(|t| tags.get(t).cloned())
                .or_else(|| listed.name().map(str::to_string))
                .unwrap_or_default();
            let closing =
                matches!(
                    listed.state().map(|s| s.as_str()),
                    Some("PENDING_CLOSURE" | "CLOSED")
                ) || matches!(listed.status().map(|s| s.as_str()), Some("PENDING_CLOSURE"));
            accounts.push(Account {
                root_email: EmailAddress::parse(email).map_err(|e| bad_row(e.to_string()))?,
                account_id: AccountId::parse(id).map_err(|e| bad_row(e.to_string()))?,
                customer,
                status: if closing {
                    AccountStatus::Closed
                } else {
                    AccountStatus::Active
                },
                payer: filter.payer.clone(),
            });
        }
    }
    Ok(accounts)
}

#[cfg(feature = "organizations")]
async fn account_tags(
    client: &aws_sdk_organizations::Client,
    account_id: &str,
) -> PortResult<HashMap<String, String>> {
    let mut pages = client
        .list_tags_for_resource()
        .resource_id(account_id)
        .into_paginator()
        .send();
    let mut tags = HashMap::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| port_error("organizations", e))?;
        for tag in page.tags.unwrap_or_default() {
            tags.insert(tag.key, tag.value);
        }
    }
    Ok(tags)
}

/// The payer account a role lives in: `arn:<partition>:iam::<account>:role/...`.
pub fn role_account(role_arn: &str) -> Result<AccountId, String> {
    let mut parts = role_arn.split(':');
    let (Some("arn"), Some(_), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(format!("{role_arn:?} is not an IAM role ARN"));
    };
    if !resource.starts_with("role/") {
        return Err(format!("{role_arn:?} is not an IAM role ARN"));
    }
    AccountId::parse(account).map_err(|e| format!("{role_arn:?}: {e}"))
}

/// An Organizations client acting as `role_arn` (assumed with the caller's
/// credentials): how a provider reads each customer's organization from
/// its payer account.
#[cfg(feature = "organizations")]
pub async fn organizations_as(
    aws: &aws_config::SdkConfig,
    role_arn: &str,
) -> PortResult<aws_sdk_organizations::Client> {
    const STS: &str = "sts";
    let answer = aws_sdk_sts::Client::new(aws)
        .assume_role()
        .role_arn(role_arn)
        .role_session_name("rootmail-accounts-import")
        .send()
        .await
        .map_err(|e| port_error(STS, e))?;
    let Some(credentials) = answer.credentials() else {
        return Err(PortError::permanent(
            STS,
            format!("AssumeRole {role_arn} returned no credentials"),
        ));
    };
    let session = aws_sdk_organizations::config::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        None,
        "sts-assume-role",
    );
    let config = aws_sdk_organizations::config::Builder::from(aws)
        .credentials_provider(session)
        .build();
    Ok(aws_sdk_organizations::Client::from_conf(config))
}

#[cfg(test)]
mod role_tests {
    use super::role_account;

    #[test]
    fn the_payer_is_the_account_the_role_lives_in() {
        assert_eq!(
            role_account("arn:aws:iam::123456789012:role/rootmail-import")
                .unwrap()
                .as_str(),
            "123456789012"
        );
        for bad in [
            "arn:aws:iam::123456789012:user/bob",
            "arn:aws:s3:::bucket",
            "123456789012",
            "arn:aws:iam::12345:role/x",
        ] {
            assert!(role_account(bad).is_err(), "{bad}");
        }
    }
}
