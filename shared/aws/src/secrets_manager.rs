//! Reading a secret's text from Secrets Manager, for the vault and the
//! ticket credentials alike, without the SDK's client ([`crate::aws_json`]).

use crate::aws_json::{JsonClient, SECRETS_MANAGER};
use rootmail_pipeline::PortResult;
use serde::Deserialize;
use zeroize::Zeroizing;

/// A client for the SDK configuration's Secrets Manager; `port` names it in
/// errors.
pub fn client(aws: &aws_config::SdkConfig, port: &'static str) -> JsonClient {
    JsonClient::new(aws, SECRETS_MANAGER, port)
}

/// What `GetSecretValue` answers that is read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Read {
    secret_string: Option<String>,
}

/// The text of the version of `secret_id` that holds `stage` (none when the
/// secret holds binary data instead); zeroed when dropped, as the answer it
/// was read from is.
pub async fn secret_text(
    client: &JsonClient,
    secret_id: &str,
    stage: &str,
) -> PortResult<Option<Zeroizing<String>>> {
    let input = serde_json::json!({"SecretId": secret_id, "VersionStage": stage});
    let read: Read = client.call_for("GetSecretValue", &input).await?;
    Ok(read.secret_string.map(Zeroizing::new))
}

/// The text of the version `version_id` of `secret_id`, whichever stages it
/// holds now (as [`secret_text`]): the vault's read of a handover.
#[cfg(feature = "handoffs")]
pub async fn secret_version_text(
    client: &JsonClient,
    secret_id: &str,
    version_id: &str,
) -> PortResult<Option<Zeroizing<String>>> {
    let input = serde_json::json!({"SecretId": secret_id, "VersionId": version_id});
    let read: Read = client.call_for("GetSecretValue", &input).await?;
    Ok(read.secret_string.map(Zeroizing::new))
}
