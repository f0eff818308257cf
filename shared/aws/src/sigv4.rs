//! SigV4 headers for a request sent without an SDK client (the Lambdas' S3
//! calls, the command line's call to the operator function URL), and
//! presigned URLs (the operator's caller proof), computed by AWS's own signer.

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningInstructions, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

pub use aws_sigv4::http_request::{SignatureLocation, SigningSettings};

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
    let instructions = instructions(method, url, headers, body, scope, settings)?;
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

/// `url` with a SigV4 signature in its query, valid for `expires_in` from
/// now: a request whoever holds the URL can send, as the signer, until then,
/// with the same `headers` (the signature covers them). The body is empty.
pub fn presigned_url(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    scope: &Scope<'_>,
    expires_in: Duration,
) -> Result<String, SignError> {
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let instructions = instructions(method, url, headers, &[], scope, settings)?;
    let mut signed = reqwest::Url::parse(url).map_err(|e| refusal(method, url, e))?;
    signed.query_pairs_mut().extend_pairs(
        instructions
            .params()
            .iter()
            .map(|(name, value)| (*name, value.as_ref())),
    );
    Ok(signed.into())
}

/// SigV4's time of signing (`20261203T101500Z`, UTC) as a time.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, m, d) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hh, mm, ss) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let days = rootmail_domain::dates::days_from_civil(
        i32::try_from(y).ok()?,
        u32::try_from(m).ok()?,
        u32::try_from(d).ok()?,
    )?;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// What AWS's signer says to add to the request, signed now.
fn instructions(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    scope: &Scope<'_>,
    settings: SigningSettings,
) -> Result<SigningInstructions, SignError> {
    let refused = |e: &dyn std::fmt::Display| refusal(method, url, e);
    let params = SigningParams::builder()
        .identity(scope.identity)
        .region(scope.region)
        .name(scope.service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| refused(&e))?
        .into();
    let request = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| refused(&e))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| refused(&e))?
        .into_parts();
    Ok(instructions)
}

fn refusal(method: &str, url: &str, reason: impl std::fmt::Display) -> SignError {
    SignError {
        method: method.to_string(),
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_of_signing_is_read_or_refused() {
        assert_eq!(
            parse_amz_date("20261203T101500Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_292_900))
        );
        for odd in [
            "20261203T101500",
            "20261203 101500Z",
            "20260230T101500Z",
            "20261303T101500Z",
            "20261203T241500Z",
            "2026+203T101500Z",
            "20261203T10150éZ",
            "",
        ] {
            assert_eq!(parse_amz_date(odd), None, "{odd}");
        }
    }
}
