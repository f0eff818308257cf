//! The account directory as the lifecycle writes it: the pipeline's accounts
//! table (key `root_email`, index on `account_id`).

use crate::accounts::DynamoAccounts;
use crate::dynamo::s;
use aws_sdk_dynamodb::Client;
use rootmail_domain::{Account, AccountId, EmailAddress};
use rootmail_lifecycle::{AccountRegistry, LifecycleResult};
use rootmail_pipeline::AccountLookup;

const PORT: &str = "accounts";

#[derive(Clone)]
pub struct LifecycleRegistry {
    accounts: DynamoAccounts,
    client: Client,
    table: String,
}

impl LifecycleRegistry {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let table = table.into();
        Self {
            accounts: DynamoAccounts::new(client.clone(), &table),
            client,
            table,
        }
    }
}

impl AccountRegistry for LifecycleRegistry {
    async fn by_id(&self, account: &AccountId) -> LifecycleResult<Option<Account>> {
        Ok(self.accounts.by_id(account).await?)
    }

    async fn by_email(&self, email: &EmailAddress) -> LifecycleResult<Option<Account>> {
        Ok(self.accounts.by_email(email).await?)
    }

    async fn save(&self, account: &Account) -> LifecycleResult<()> {
        self.accounts.upsert(account).await?;
        Ok(())
    }

    async fn forget(&self, email: &EmailAddress) -> LifecycleResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("root_email", s(email.as_str()))
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        Ok(())
    }
}
