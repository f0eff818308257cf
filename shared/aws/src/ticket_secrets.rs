//! The ticketing system's credentials and the marker key, read from Secrets
//! Manager at cold start (feature `ticket-secrets`), without the SDK's
//! client ([`crate::aws_json`]).

use crate::aws_json::JsonClient;
use rootmail_pipeline::PortError;
use rootmail_tickets::MarkerKey;
use zeroize::Zeroizing;

/// A client for the SDK configuration's Secrets Manager.
pub fn secrets_client(aws: &aws_config::SdkConfig) -> JsonClient {
    crate::secrets_manager::client(aws, "ticket secrets")
}

/// The secret's text (JSON credentials). Read at cold start, and by
/// ticket-writer again when the ticketing system refuses the credentials
/// (`rootmail_tickets::ReloadingSink`).
pub async fn secret_string(client: &JsonClient, secret_id: &str) -> Result<String, PortError> {
    let text = secret_text(
        client,
        secret_id,
        "ticket credentials",
        "the credentials as JSON text",
    )
    .await?;
    Ok(text.to_string())
}

/// The marker key from its own secret (`MARKER_KEY_SECRET_ARN`; the template
/// generates it): the secret string's bytes, at least 32 of them.
pub async fn marker_key(client: &JsonClient, secret_id: &str) -> Result<MarkerKey, PortError> {
    let text = secret_text(client, secret_id, "marker key", "a generated string").await?;
    MarkerKey::new(text.as_bytes())
        .map_err(|e| PortError::permanent("marker key", format!("secret {secret_id}: {e}")))
}

async fn secret_text(
    client: &JsonClient,
    secret_id: &str,
    port: &'static str,
    expected: &str,
) -> Result<Zeroizing<String>, PortError> {
    crate::secrets_manager::secret_text(client, secret_id, "AWSCURRENT")
        .await
        .map_err(|e| e.of_port(port))?
        .ok_or_else(|| {
            PortError::permanent(
                port,
                format!("secret {secret_id} has no text value (store {expected})"),
            )
        })
}
