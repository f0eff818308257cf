//! The vault: Secrets Manager, one secret per account and item
//! (`rootmail/<account>/<item>`), encrypted with a customer-managed KMS key.
//! Versions carry the staging labels: a generated value waits as `AWSPENDING`
//! until it is in use, then becomes `AWSCURRENT`. References name a secret
//! version (`<ARN>#<version id>`), never a value.

use crate::error::{error_code, port_error};
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use rootmail_domain::{AccountId, SecretValue};
use rootmail_lifecycle::{LifecycleError, LifecycleResult, Stage, Vault, VaultItem};

const PORT: &str = "vault";
const PENDING: &str = "AWSPENDING";
const CURRENT: &str = "AWSCURRENT";
/// How long a released account's entries can still be restored.
pub const RECOVERY_WINDOW_DAYS: i64 = 30;

/// The secret holding `item` of `account`.
pub fn secret_name(account: &AccountId, item: VaultItem) -> String {
    format!("rootmail/{account}/{}", item.as_str())
}

fn label(stage: Stage) -> &'static str {
    match stage {
        Stage::Pending => PENDING,
        Stage::Current => CURRENT,
    }
}

#[derive(Clone)]
pub struct SecretsVault {
    client: Client,
    kms_key_id: String,
}

impl SecretsVault {
    pub fn new(client: Client, kms_key_id: impl Into<String>) -> Self {
        Self {
            client,
            kms_key_id: kms_key_id.into(),
        }
    }

    /// Makes sure the secret exists and is ours, before a value goes into it.
    /// Described first: a name a release scheduled for deletion answers
    /// `CreateSecret` with `InvalidRequestException`, not "exists", so it is
    /// restored instead. One that exists must be encrypted with the vault key
    /// and have no resource policy: a secret someone else created (their key,
    /// their policy) would hand them the root password, so it is refused
    /// loudly instead (the step fails, the take-over's ticket says why, and
    /// the `VaultTampering` metric raises an alarm).
    /// The secret's metadata, when it must be there.
    async fn describe(&self, name: &str) -> LifecycleResult<DescribeSecretOutput> {
        self.client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))
    }

    async fn ensure_secret(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        match self.client.describe_secret().secret_id(&name).send().await {
            Ok(described) => self.adopt(&name, item, &described).await,
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {
                self.create(account, item).await
            }
            Err(e) => Err(super::sdk(PORT, e)),
        }
    }

    async fn create(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        let created = self
            .client
            .create_secret()
            .name(&name)
            .kms_key_id(&self.kms_key_id)
            .description(format!(
                "rootmail: the root user's {} of AWS account {account}",
                item.as_str()
            ))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Created meanwhile (another try, or someone else): check it.
            Err(e) if error_code(&e) == Some("ResourceExistsException") => {
                let described = self.describe(&name).await?;
                self.adopt(&name, item, &described).await
            }
            Err(e) => Err(super::sdk(PORT, e)),
        }
    }

    /// Takes over an existing secret when it is ours (restoring it when a
    /// release scheduled its deletion); refuses it otherwise.
    async fn adopt(
        &self,
        name: &str,
        item: VaultItem,
        described: &DescribeSecretOutput,
    ) -> LifecycleResult<()> {
        let key = described.kms_key_id().unwrap_or("the AWS managed key");
        if !same_key(key, &self.kms_key_id) {
            return Err(tampered(
                name,
                item,
                &format!("it is encrypted with {key}, not the vault key"),
            ));
        }
        let policy = self
            .client
            .get_resource_policy()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        if policy
            .resource_policy()
            .is_some_and(|p| !p.trim().is_empty())
        {
            return Err(tampered(name, item, "it has a resource policy"));
        }
        if described.deleted_date().is_some() {
            self.client
                .restore_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| super::sdk(PORT, e))?;
        }
        Ok(())
    }
}

/// Whether a secret's key (as DescribeSecret names it: an ARN, an id or an
/// alias) is the configured vault key.
fn same_key(found: &str, vault_key: &str) -> bool {
    let id = |k: &str| k.rsplit(['/', ':']).next().unwrap_or(k).to_string();
    found == vault_key || (found.contains("key/") && id(found) == id(vault_key))
}

/// A vault secret that is not ours: refused, with an alarm.
fn tampered(name: &str, item: VaultItem, why: &str) -> LifecycleError {
    tracing::error!(
        secret = name,
        item = item.as_str(),
        why,
        "vault secret exists but is not rootmail's"
    );
    crate::metrics::Metrics::stdout().count("VaultTampering", &[]);
    LifecycleError::Refused(format!(
        "the vault secret {name} exists but is not rootmail's: {why}. Nothing was stored in it. \
         Someone created or changed it: find who in CloudTrail (CreateSecret, PutResourcePolicy, \
         UpdateSecret on {name}), delete it, then start the take-over again"
    ))
}

impl Vault for SecretsVault {
    async fn put(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
        value: &SecretValue,
    ) -> LifecycleResult<String> {
        self.ensure_secret(account, item).await?;
        let stored = self
            .client
            .put_secret_value()
            .secret_id(secret_name(account, item))
            .secret_string(value.expose())
            .version_stages(label(stage))
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        match (stored.arn(), stored.version_id()) {
            (Some(arn), Some(version)) => Ok(format!("{arn}#{version}")),
            _ => Err(super::permanent(
                PORT,
                "PutSecretValue answered without the version's ARN and id",
            )),
        }
    }

    /// Always names the stage: without one, a read may see a version the label
    /// has just left.
    async fn get(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
    ) -> LifecycleResult<Option<SecretValue>> {
        let read = self
            .client
            .get_secret_value()
            .secret_id(secret_name(account, item))
            .version_stage(label(stage))
            .send()
            .await;
        match read {
            Ok(found) => Ok(found
                .secret_string()
                .map(|s| SecretValue::new(s.to_string()))),
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) if error_code(&e) == Some("InvalidRequestException") => {
                Err(LifecycleError::Refused(format!(
                    "the vault's {} of account {account} cannot be read: it is scheduled for deletion",
                    item.as_str()
                )))
            }
            Err(e) => Err(super::sdk(PORT, e)),
        }
    }

    async fn promote(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        let no_pending = || {
            LifecycleError::Refused(format!(
                "no pending {} in the vault for account {account}",
                item.as_str()
            ))
        };
        let described = match self.client.describe_secret().secret_id(&name).send().await {
            Ok(described) => described,
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {
                return Err(no_pending());
            }
            Err(e) => return Err(super::sdk(PORT, e)),
        };
        let versions = described
            .version_ids_to_stages()
            .cloned()
            .unwrap_or_default();
        let holding = |wanted: &str| {
            versions
                .iter()
                .find(|(_, stages)| stages.iter().any(|s| s == wanted))
                .map(|(id, _)| id.clone())
        };
        let Some(pending) = holding(PENDING) else {
            return Err(no_pending());
        };
        let current = holding(CURRENT);
        if current.as_deref() != Some(pending.as_str()) {
            let mut moving = self
                .client
                .update_secret_version_stage()
                .secret_id(&name)
                .version_stage(CURRENT)
                .move_to_version_id(&pending);
            if let Some(current) = &current {
                moving = moving.remove_from_version_id(current);
            }
            moving.send().await.map_err(|e| super::sdk(PORT, e))?;
        }
        self.client
            .update_secret_version_stage()
            .secret_id(&name)
            .version_stage(PENDING)
            .remove_from_version_id(&pending)
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        Ok(())
    }

    async fn schedule_deletion(
        &self,
        account: &AccountId,
        items: &[VaultItem],
    ) -> LifecycleResult<()> {
        for &item in items {
            let name = secret_name(account, item);
            let deleted = self
                .client
                .delete_secret()
                .secret_id(&name)
                .recovery_window_in_days(RECOVERY_WINDOW_DAYS)
                .send()
                .await;
            match deleted {
                Ok(_) => {}
                // Gone already (moto says so; AWS answers AccessDenied, which
                // the caller avoids by naming only what its mode stored).
                Err(e) if error_code(&e) == Some("ResourceNotFoundException") => {}
                // Scheduled already (an earlier try)? Then this one is done too.
                Err(e) if error_code(&e) == Some("InvalidRequestException") => {
                    let described = self.describe(&name).await?;
                    if described.deleted_date().is_none() {
                        return Err(LifecycleError::Port(port_error(PORT, e)));
                    }
                }
                Err(e) => return Err(LifecycleError::Port(port_error(PORT, e))),
            }
        }
        Ok(())
    }
}
