//! SigV4 headers for a request sent without an SDK client (the Lambdas' S3
//! calls, the command line's call to the operator function URL), computed by
//! AWS's own signer.

use aws_sigv4::http_request::{SignableBody, SignableRequest, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

pub use aws_sigv4::http_request::SigningSettings;

/// Who signs, where and for which service.
pub struct Scope<'a> {
    pub identity: &'a Identity,
    pub region: &'a str,
    pub service: &'a str,
}

/// Why a request could not be signed (a URL or header the signer refuses).
#[derive(Debug, thiserror::Error)]
#[error("cannot sign {method} {url}: {reason}")]
pub struct SignError {
    method: String,
    url: String,
    reason: String,
}

/// The headers to add to the request (`authorization`, `x-amz-date`, and
/// whatever `settings` and the identity call for), signed now. `headers` are
/// the request's own that the signature covers.
pub fn signed_headers(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    scope: &Scope<'_>,
    settings: SigningSettings,
) -> Result<Vec<(String, String)>, SignError> {
    let refused = |reason: String| SignError {
        method: method.to_string(),
        url: url.to_string(),
        reason,
    };
    let params = SigningParams::builder()
        .identity(scope.identity)
        .region(scope.region)
        .name(scope.service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| refused(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| refused(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| refused(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}
