//! The vault: Secrets Manager, one secret per account and item
//! (`rootmail/<account>/<item>`), encrypted with a customer-managed KMS key.
//! Versions carry the staging labels: a generated value waits as `AWSPENDING`
//! until it is in use, then becomes `AWSCURRENT`. References name a secret
//! version (`<ARN>#<version id>`), never a value.
//!
//! Called without the SDK's client ([`crate::aws_json`]): the request that
//! stores a value borrows it and is zeroed once sent, the answer that reads
//! one is zeroed once read.

use crate::aws_json::JsonClient;
use rootmail_domain::{AccountId, SecretValue};
use rootmail_lifecycle::{LifecycleError, LifecycleResult, Stage, Vault, VaultItem};
use rootmail_pipeline::{PortError, PortResult};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use zeroize::Zeroizing;

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

/// What `DescribeSecret` answers that the vault reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Described {
    kms_key_id: Option<String>,
    /// When a release scheduled the deletion (seconds since the epoch).
    deleted_date: Option<f64>,
    #[serde(default)]
    version_ids_to_stages: HashMap<String, Vec<String>>,
}

impl Described {
    /// The version that holds `stage`, if one does.
    fn holding(&self, stage: &str) -> Option<&str> {
        self.version_ids_to_stages
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }
}

/// `PutSecretValue`'s input: the value borrowed, never copied.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutValue<'a> {
    secret_id: &'a str,
    secret_string: &'a str,
    version_stages: [&'a str; 1],
    /// The new version's id. AWS's SDKs make one; a raw request "must"
    /// (PutSecretValue's reference), and it makes a retried request
    /// (the same body, [`crate::aws_json`]) store one version, not two.
    client_request_token: String,
}

/// A random version id in UUID form (AWS recommends one; 32 to 64 characters).
fn version_token() -> PortResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| {
        PortError::permanent(
            PORT,
            format!("the operating system's random source failed: {e}"),
        )
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stored {
    #[serde(rename = "ARN")]
    arn: Option<String>,
    version_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Policy {
    resource_policy: Option<String>,
}

/// The error's code, when AWS answered one.
fn code(error: &PortError) -> Option<&str> {
    error.code.as_deref()
}

#[derive(Clone)]
pub struct SecretsVault {
    client: JsonClient,
    kms_key_id: String,
}

impl SecretsVault {
    pub fn new(client: JsonClient, kms_key_id: impl Into<String>) -> Self {
        Self {
            client,
            kms_key_id: kms_key_id.into(),
        }
    }

    /// A client for the SDK configuration's Secrets Manager.
    pub fn client(aws: &aws_config::SdkConfig) -> JsonClient {
        crate::secrets_manager::client(aws, PORT)
    }

    /// The secret's metadata.
    async fn describe(&self, name: &str) -> PortResult<Described> {
        self.client
            .call_for("DescribeSecret", &json!({"SecretId": name}))
            .await
    }

    /// Makes sure the secret exists and is ours, before a value goes into it.
    /// Described first: a name a release scheduled for deletion answers
    /// `CreateSecret` with `InvalidRequestException`, not "exists", so it is
    /// restored instead. One that exists must be encrypted with the vault key
    /// and have no resource policy: a secret someone else created (their key,
    /// their policy) would hand them the root password, so it is refused
    /// loudly instead (the step fails, the take-over's ticket says why, and
    /// the `VaultTampering` metric raises an alarm).
    async fn ensure_secret(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        match self.describe(&name).await {
            Ok(described) => self.adopt(&name, item, &described).await,
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                self.create(account, item).await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn create(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        let input = json!({
            "Name": name,
            "KmsKeyId": self.kms_key_id,
            "Description": format!(
                "rootmail: the root user's {} of AWS account {account}",
                item.as_str()
            ),
        });
        match self.client.call("CreateSecret", &input).await {
            Ok(_) => Ok(()),
            // Created meanwhile (another try, or someone else): check it.
            Err(e) if code(&e) == Some("ResourceExistsException") => {
                let described = self.describe(&name).await?;
                self.adopt(&name, item, &described).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes over an existing secret when it is ours (restoring it when a
    /// release scheduled its deletion); refuses it otherwise.
    async fn adopt(
        &self,
        name: &str,
        item: VaultItem,
        described: &Described,
    ) -> LifecycleResult<()> {
        let key = described
            .kms_key_id
            .as_deref()
            .unwrap_or("the AWS managed key");
        if !same_key(key, &self.kms_key_id) {
            return Err(tampered(
                name,
                item,
                &format!("it is encrypted with {key}, not the vault key"),
            ));
        }
        let policy: Policy = self
            .client
            .call_for("GetResourcePolicy", &json!({"SecretId": name}))
            .await?;
        if policy.resource_policy.is_some_and(|p| !p.trim().is_empty()) {
            return Err(tampered(name, item, "it has a resource policy"));
        }
        if described.deleted_date.is_some() {
            self.client
                .call("RestoreSecret", &json!({"SecretId": name}))
                .await?;
        }
        Ok(())
    }

    /// Moves `stage` to `version`, off `from` when another version holds it.
    /// Refused by AWS, it is done all the same when the secret shows the
    /// stage where it was to go: the client sends a request again when its
    /// answer is lost, and once the first try has moved the stage, `from`
    /// no longer holds it and the retry is refused.
    async fn move_stage(
        &self,
        name: &str,
        stage: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> PortResult<()> {
        let mut input = json!({"SecretId": name, "VersionStage": stage});
        if let Some(to) = to {
            input["MoveToVersionId"] = json!(to);
        }
        if let Some(from) = from {
            input["RemoveFromVersionId"] = json!(from);
        }
        match self.client.call("UpdateSecretVersionStage", &input).await {
            Ok(_) => Ok(()),
            Err(refused) if refused.code.is_some() => {
                let described = self.describe(name).await?;
                match described.holding(stage) == to {
                    true => Ok(()),
                    false => Err(refused),
                }
            }
            Err(e) => Err(e),
        }
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

/// A read's answer as the vault gives it: the text moved, not copied, into
/// the value that zeroes it; a missing secret or version is none.
fn opened(
    read: PortResult<Option<Zeroizing<String>>>,
    account: &AccountId,
    item: VaultItem,
) -> LifecycleResult<Option<SecretValue>> {
    match read {
        Ok(found) => Ok(found.map(|mut text| SecretValue::new(std::mem::take(&mut *text)))),
        Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
        Err(e) if code(&e) == Some("InvalidRequestException") => {
            Err(LifecycleError::Refused(format!(
                "the vault's {} of account {account} cannot be read: it is scheduled for deletion",
                item.as_str()
            )))
        }
        Err(e) => Err(e.into()),
    }
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
        let name = secret_name(account, item);
        let input = PutValue {
            secret_id: &name,
            secret_string: value.expose(),
            version_stages: [label(stage)],
            client_request_token: version_token()?,
        };
        let stored: Stored = self.client.call_for("PutSecretValue", &input).await?;
        match (stored.arn, stored.version_id) {
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
        let name = secret_name(account, item);
        let read = crate::secrets_manager::secret_text(&self.client, &name, label(stage)).await;
        opened(read, account, item)
    }

    /// The version is the one `put` named (`ARN#version-id`), read from this
    /// account's item alone: a reference to another secret's version is
    /// not found there.
    async fn get_version(
        &self,
        account: &AccountId,
        item: VaultItem,
        reference: &str,
    ) -> LifecycleResult<Option<SecretValue>> {
        let Some((_, version)) = reference.rsplit_once('#') else {
            return Err(LifecycleError::Refused(format!(
                "{reference:?} names no version of the vault's {} of account {account}",
                item.as_str()
            )));
        };
        let name = secret_name(account, item);
        let client = &self.client;
        let read = crate::secrets_manager::secret_version_text(client, &name, version).await;
        opened(read, account, item)
    }

    async fn promote(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let name = secret_name(account, item);
        let no_pending = || {
            LifecycleError::Refused(format!(
                "no pending {} in the vault for account {account}",
                item.as_str()
            ))
        };
        let described = match self.describe(&name).await {
            Ok(described) => described,
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {
                return Err(no_pending());
            }
            Err(e) => return Err(e.into()),
        };
        let Some(pending) = described.holding(PENDING) else {
            return Err(no_pending());
        };
        let current = described.holding(CURRENT);
        if current != Some(pending) {
            self.move_stage(&name, CURRENT, Some(pending), current)
                .await?;
        }
        self.move_stage(&name, PENDING, None, Some(pending)).await?;
        Ok(())
    }

    async fn schedule_deletion(
        &self,
        account: &AccountId,
        items: &[VaultItem],
    ) -> LifecycleResult<()> {
        for &item in items {
            let name = secret_name(account, item);
            // Described first: AWS denies DeleteSecret on a secret that was
            // never created (AccessDenied, not ResourceNotFound), and a
            // mode's item may never have been stored (a console take-over
            // whose code mail came unread stored no handover).
            match self.describe(&name).await {
                Err(e) if code(&e) == Some("ResourceNotFoundException") => continue,
                Err(e) => return Err(e.into()),
                Ok(described) if described.deleted_date.is_some() => continue,
                Ok(_) => {}
            }
            let input = json!({"SecretId": name, "RecoveryWindowInDays": RECOVERY_WINDOW_DAYS});
            match self.client.call("DeleteSecret", &input).await {
                Ok(_) => {}
                // Gone already (moto says so; AWS answers AccessDenied, which
                // the caller avoids by naming only what its mode stored).
                Err(e) if code(&e) == Some("ResourceNotFoundException") => {}
                // Scheduled already (an earlier try)? Then this one is done too.
                Err(e) if code(&e) == Some("InvalidRequestException") => {
                    if self.describe(&name).await?.deleted_date.is_none() {
                        return Err(e.into());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::{config_for, patient_server};
    use std::time::Duration;

    fn answer(status: &str, body: &str) -> &'static str {
        let text = format!(
            "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Box::leak(text.into_boxed_str())
    }

    fn described(stages: &str) -> &'static str {
        answer(
            "200 OK",
            &format!(
                r#"{{"Name":"rootmail/111122223333/password","VersionIdsToStages":{stages}}}"#
            ),
        )
    }

    async fn promoted(answers: Vec<Option<&'static str>>) -> LifecycleResult<()> {
        let (url, served) = patient_server(answers, Duration::from_secs(2)).await;
        let vault = SecretsVault::new(SecretsVault::client(&config_for(&url)), "key");
        let account = AccountId::parse("111122223333").unwrap();
        let promoted = vault.promote(&account, VaultItem::Password).await;
        served.abort();
        promoted
    }

    /// The move of AWSCURRENT worked but its answer was lost (a 503): the
    /// client's second try is refused, as the old version no longer holds
    /// the label. The secret shows the move made, so the promotion goes on;
    /// before, it failed and the take-over with it.
    #[tokio::test]
    async fn a_stage_moved_by_a_try_whose_answer_was_lost_is_moved() {
        let before = described(r#"{"old":["AWSCURRENT"],"new":["AWSPENDING"]}"#);
        let unavailable = answer("503 Service Unavailable", "");
        let refused = answer(
            "400 Bad Request",
            r#"{"__type":"InvalidParameterException","message":"AWSCURRENT is not attached to version old"}"#,
        );
        let moved = described(r#"{"old":["AWSPREVIOUS"],"new":["AWSCURRENT","AWSPENDING"]}"#);
        let ok = answer("200 OK", "{}");
        let answers = vec![
            Some(before),
            Some(unavailable),
            Some(refused),
            Some(moved),
            Some(ok),
        ];
        let result = promoted(answers).await;
        assert!(result.is_ok(), "{result:?}");

        // Refused while the stage is still where it was: the error stands.
        let answers = vec![Some(before), Some(refused), Some(before)];
        let result = promoted(answers).await;
        assert!(
            matches!(&result, Err(e) if e.to_string().contains("InvalidParameter")),
            "{result:?}"
        );
    }

    /// A release names every item its mode may store; one never created is
    /// described (ResourceNotFound) and skipped, never sent to DeleteSecret,
    /// which AWS answers with AccessDenied for a secret that does not exist.
    #[tokio::test]
    async fn a_secret_never_created_is_not_deleted() {
        let not_found = answer(
            "400 Bad Request",
            r#"{"__type":"ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}"#,
        );
        let answers = vec![
            Some(not_found),
            Some(described(r#"{"v1":["AWSCURRENT"]}"#)),
            Some(answer(
                "200 OK",
                r#"{"Name":"rootmail/111122223333/password"}"#,
            )),
        ];
        let (url, served) = patient_server(answers, Duration::from_secs(2)).await;
        let vault = SecretsVault::new(SecretsVault::client(&config_for(&url)), "key");
        let account = AccountId::parse("111122223333").unwrap();
        let items = [VaultItem::Handover, VaultItem::Password];
        let scheduled = vault.schedule_deletion(&account, &items).await;
        assert!(scheduled.is_ok(), "{scheduled:?}");
        assert_eq!(
            served.await.unwrap(),
            usize::MAX,
            "described both, deleted the password alone"
        );
    }

    /// Every stored value names its version: PutSecretValue's reference
    /// says a raw request must, and a retried request with it stores the
    /// value once. (moto makes one when none is sent, so only this shows it.)
    #[test]
    fn each_value_is_sent_with_its_own_version_token() {
        let tokens: Vec<String> = (0..3).map(|_| version_token().unwrap()).collect();
        for token in &tokens {
            assert_eq!(token.len(), 36, "{token}");
            let groups: Vec<usize> = token.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{token}");
            assert_eq!(&token[14..15], "4", "a version 4 UUID: {token}");
        }
        assert!(tokens[0] != tokens[1] && tokens[1] != tokens[2]);
        let put = PutValue {
            secret_id: "rootmail/111122223333/password",
            secret_string: "s",
            version_stages: [PENDING],
            client_request_token: tokens[0].clone(),
        };
        let sent = serde_json::to_value(&put).unwrap();
        assert_eq!(sent["ClientRequestToken"], tokens[0].as_str());
    }
}
