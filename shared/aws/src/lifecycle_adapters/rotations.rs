//! The rotations table: one record per account (key `account_id`) as native
//! attributes, written with optimistic locking on `version`. The Step Functions
//! task token is sealed with KMS (bound to the account by the encryption
//! context) and stored base64, so a table read alone cannot answer a workflow.
//! KMS is called without the SDK's client ([`crate::aws_json`]).

use crate::aws_json::{JsonClient, KMS as KMS_API};
use crate::dynamo::{from_item, n, s, to_item};
use crate::error::condition_failed;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rootmail_domain::AccountId;
use rootmail_lifecycle::{HANDOVER_FIELDS, LifecycleError, LifecycleResult, Rotation, Rotations};
use zeroize::Zeroizing;

const PORT: &str = "rotations";
const KMS: &str = "kms";
/// What a sealed token is for, in its encryption context.
const PURPOSE: &str = "rootmail-task-token";

#[derive(Clone)]
pub struct DynamoRotations {
    client: Client,
    table: String,
    kms: JsonClient,
    key_id: String,
}

impl DynamoRotations {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        kms: JsonClient,
        key_id: impl Into<String>,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            kms,
            key_id: key_id.into(),
        }
    }

    /// A client for the SDK configuration's KMS.
    pub fn kms_client(aws: &aws_config::SdkConfig) -> JsonClient {
        JsonClient::new(aws, KMS_API, KMS)
    }

    async fn seal(&self, account: &AccountId, token: &str) -> LifecycleResult<String> {
        let plaintext = Zeroizing::new(STANDARD.encode(token.as_bytes()));
        let input = Seal {
            key_id: &self.key_id,
            plaintext: &plaintext,
            encryption_context: serde_json::json!({"account_id": account.as_str(), "purpose": PURPOSE}),
        };
        let sealed: serde_json::Value = self.kms.call_for("Encrypt", &input).await?;
        // Stored as KMS answers it: the ciphertext, base64.
        sealed["CiphertextBlob"]
            .as_str()
            .filter(|blob| STANDARD.decode(blob).is_ok_and(|b| !b.is_empty()))
            .map(str::to_string)
            .ok_or_else(|| super::permanent(KMS, "Encrypt answered without a ciphertext"))
    }

    async fn open(&self, account: &AccountId, sealed: &str) -> LifecycleResult<String> {
        let unreadable = || {
            super::permanent(
                PORT,
                format!("account {account}'s sealed task token is not readable"),
            )
        };
        // Sent as stored once it is known to be base64 (KMS would refuse
        // anything else with a less helpful error).
        STANDARD.decode(sealed).map_err(|_| unreadable())?;
        let input = serde_json::json!({
            "KeyId": self.key_id,
            "CiphertextBlob": sealed,
            "EncryptionContext": {"account_id": account.as_str(), "purpose": PURPOSE},
        });
        let opened: Decrypted = self.kms.call_for("Decrypt", &input).await?;
        let opened = Zeroizing::new(opened.plaintext);
        let plain = Zeroizing::new(
            STANDARD
                .decode(opened.as_bytes())
                .map_err(|_| unreadable())?,
        );
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }
}

/// KMS's `Encrypt` input, the token borrowed (the client zeroes the
/// request it serializes; a JSON value would keep a copy it does not).
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Seal<'a> {
    key_id: &'a str,
    plaintext: &'a str,
    encryption_context: serde_json::Value,
}

/// What KMS's `Decrypt` answers that is read: the plaintext, base64.
#[derive(serde::Deserialize)]
struct Decrypted {
    #[serde(rename = "Plaintext")]
    plaintext: String,
}

/// A name the serde form of `value` (a phase, a kind) is written as.
fn serde_name<T: serde::Serialize>(value: &T) -> LifecycleResult<String> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(super::permanent(PORT, "a lifecycle name is not a string")),
    }
}

impl Rotations for DynamoRotations {
    async fn get(&self, account: &AccountId) -> LifecycleResult<Option<Rotation>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("account_id", s(account.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| super::sdk(PORT, e))?;
        let Some(item) = found.item else {
            return Ok(None);
        };
        let mut rotation: Rotation = from_item(PORT, item)?;
        if let Some(sealed) = rotation.task_token.take() {
            rotation.task_token = Some(self.open(account, &sealed).await?);
        }
        Ok(Some(rotation))
    }

    async fn put(&self, rotation: &Rotation, expected: Option<u64>) -> LifecycleResult<()> {
        let account = &rotation.account_id;
        let mut stored = rotation.clone();
        if let Some(token) = &rotation.task_token {
            stored.task_token = Some(self.seal(account, token).await?);
        }
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(PORT, &stored)?));
        put = match expected {
            None => put.condition_expression("attribute_not_exists(account_id)"),
            Some(version) => put
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(version)),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => self.written_by_this_call(rotation).await,
            Err(e) => Err(super::sdk(PORT, e)),
        }
    }

    /// An update of the handover's fields alone (`HANDOVER_FIELDS`): the
    /// mail-ingest role may update nothing else of a record (its policy's
    /// `dynamodb:Attributes` condition), and never seals a token.
    async fn save_handover(&self, rotation: &Rotation, expected: u64) -> LifecycleResult<()> {
        let account = &rotation.account_id;
        let fields = HandoverUpdate::of(rotation)?;
        let expression = fields.expression();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("account_id", s(account.as_str()))
            .condition_expression("#version = :expected")
            .expression_attribute_values(":expected", n(expected));
        for (placeholder, value) in fields.values {
            update = update.expression_attribute_values(placeholder, value);
        }
        // Only the names the expression uses (DynamoDB refuses unused ones).
        for name in HANDOVER_FIELDS
            .iter()
            .filter(|name| expression.contains(&format!("#{name}")))
        {
            update = update.expression_attribute_names(format!("#{name}"), *name);
        }
        match update.update_expression(expression).send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => self.written_by_this_call(rotation).await,
            Err(e) => Err(super::sdk(PORT, e)),
        }
    }
}

impl DynamoRotations {
    /// A write whose condition failed: a lost race, unless the record stored is
    /// the one this call wrote. The SDK retries a write whose answer was lost
    /// (a 500, a timeout) and the retry then meets its own write; taken as
    /// someone else's, a step that succeeded would fail its take-over.
    async fn written_by_this_call(&self, rotation: &Rotation) -> LifecycleResult<()> {
        let account = &rotation.account_id;
        if self.get(account).await?.as_ref() == Some(rotation) {
            return Ok(());
        }
        Err(LifecycleError::changed_meanwhile(account))
    }
}

/// The handover fields of a record as an update: what it sets (with the
/// values), and what it removes because the record no longer has it.
struct HandoverUpdate {
    set: Vec<String>,
    remove: Vec<String>,
    values: Vec<(String, AttributeValue)>,
}

impl HandoverUpdate {
    fn of(rotation: &Rotation) -> LifecycleResult<Self> {
        let mut fields = Self {
            set: Vec::new(),
            remove: Vec::new(),
            values: Vec::new(),
        };
        fields.set("phase", s(&serde_name(&rotation.phase)?));
        fields.set("version", n(rotation.version));
        fields.set("updated_at", n(rotation.updated_at));
        let handed_over = rotation.handed_over.as_deref().map(s);
        fields.set_or_remove("handed_over", handed_over);
        let delivered_at = rotation
            .reset_link_delivered_at
            .map(|at| AttributeValue::N(at.to_string()));
        fields.set_or_remove("reset_link_delivered_at", delivered_at);
        let code_at = rotation
            .code_delivered_at
            .map(|at| AttributeValue::N(at.to_string()));
        fields.set_or_remove("code_delivered_at", code_at);
        let code_message = rotation.code_message_id.as_deref().map(s);
        fields.set_or_remove("code_message_id", code_message);
        let waiting_for = rotation.waiting_for.map(|kind| s(kind.as_str()));
        fields.set_or_remove("waiting_for", waiting_for);
        fields.set_or_remove("expires_at", rotation.expires_at.map(n));
        // A handover only ever removes a task token; it never seals one.
        if rotation.task_token.is_none() {
            fields.remove("task_token");
        }
        if let Some(evidence) = &rotation.email_evidence {
            fields.set("email_evidence", s(evidence));
        }
        if let Some(at) = rotation.mfa_confirmed_at {
            fields.set("mfa_confirmed_at", n(at));
        }
        Ok(fields)
    }

    /// Sets `name` to `value`, or removes it when the record has none.
    fn set_or_remove(&mut self, name: &str, value: Option<AttributeValue>) {
        match value {
            Some(value) => self.set(name, value),
            None => self.remove(name),
        }
    }

    /// `#name = :name`, with `value` as `:name`.
    fn set(&mut self, name: &str, value: AttributeValue) {
        self.set.push(format!("#{name} = :{name}"));
        self.values.push((format!(":{name}"), value));
    }

    fn remove(&mut self, name: &str) {
        self.remove.push(format!("#{name}"));
    }

    /// The update expression; the attribute names are bound by the caller.
    fn expression(&self) -> String {
        let mut expression = format!("SET {}", self.set.join(", "));
        if !self.remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", self.remove.join(", ")));
        }
        expression
    }
}
