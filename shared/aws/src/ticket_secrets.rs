//! The ticketing system's credentials and the marker key, read from Secrets
//! Manager once at cold start (feature `ticket-secrets`).

use crate::error::port_error;
use rootmail_pipeline::PortError;
use rootmail_tickets::MarkerKey;

/// The secret's text (JSON credentials). Read once at cold start; a rotated
/// secret takes effect with the next cold start.
pub async fn secret_string(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<String, PortError> {
    secret_text(
        client,
        secret_id,
        "ticket credentials",
        "the credentials as JSON text",
    )
    .await
}

/// The marker key from its own secret (`MARKER_KEY_SECRET_ARN`; the template
/// generates it): the secret string's bytes, at least 32 of them.
pub async fn marker_key(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<MarkerKey, PortError> {
    let text = zeroize::Zeroizing::new(
        secret_text(client, secret_id, "marker key", "a generated string").await?,
    );
    MarkerKey::new(text.as_bytes())
        .map_err(|e| PortError::permanent("marker key", format!("secret {secret_id}: {e}")))
}

async fn secret_text(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
    port: &'static str,
    expected: &str,
) -> Result<String, PortError> {
    let answer = client
        .get_secret_value()
        .secret_id(secret_id)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .map_err(|e| port_error(port, e))?;
    answer.secret_string.ok_or_else(|| {
        PortError::permanent(
            port,
            format!("secret {secret_id} has no text value (store {expected})"),
        )
    })
}
