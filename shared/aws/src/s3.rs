//! S3 without the SDK: the two calls the Lambdas make on the mail bucket,
//! GetObject and PutObjectTagging, as REST requests signed by AWS's own SigV4
//! signer and sent by the HTTP client the ticket backends use (retries
//! included). aws-sdk-s3 put 1.3 MB into each bootstrap for these two calls
//! (its checksum tables alone 0.7 MB: issue 16, bootstraps under 8 MB).
//!
//! Addressing as S3 documents it: virtual-hosted
//! `https://BUCKET.s3.REGION.amazonaws.com/KEY` (`s3-fips`, `dualstack` as
//! the SDK configuration says; `amazonaws.com.cn` in China), path-style
//! `https://s3.REGION.amazonaws.com/BUCKET/KEY` for a bucket name that is not
//! one lower-case DNS label (dots: the certificate covers one label; legacy
//! capitals or `_`), and path-style under an endpoint override
//! (`AWS_ENDPOINT_URL`: moto, a local stand-in).
//!
//! The command-line tool keeps the SDK for everything else it does with S3.

use crate::credentials::CachedCredentials;
use crate::error::answer_kind;
use crate::sigv4::{Scope, SigningSettings, signed_headers};
use aws_sigv4::http_request::{PayloadChecksumKind, PercentEncodingMode, UriPathNormalizationMode};
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;
use reqwest::Response;
use rootmail_pipeline::{PortError, PortResult};
use rootmail_tickets::http::{HttpClient, RetryPolicy, install_crypto_provider};
use std::sync::Arc;
use std::time::Duration;

const PORT: &str = "s3";

/// A download of the largest mail SES stores takes about a second in region;
/// this bounds a stalled one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// GetObject and PutObjectTagging on one region's S3.
#[derive(Clone)]
pub struct S3Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    credentials: CachedCredentials,
    region: Option<String>,
    endpoint: Endpoint,
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// An override (`AWS_ENDPOINT_URL`): path-style under this base.
    Override(String),
    /// S3's own regional host, e.g. `s3.eu-west-1.amazonaws.com`.
    Regional(String),
    /// No region and no override: every call says so.
    NoRegion,
}

/// An object read whole.
#[derive(Debug)]
pub enum Got {
    Object(Vec<u8>),
    /// No such key or bucket (deleted before it was read?).
    Missing,
    /// Larger than the caller's limit, by its `Content-Length` or its bytes.
    TooLarge(u64),
}

impl S3Client {
    /// A client for the SDK configuration's region, credentials, endpoint
    /// override and FIPS / dual-stack choice.
    pub fn new(config: &aws_config::SdkConfig) -> PortResult<Self> {
        install_crypto_provider();
        let region = config.region().map(|r| r.to_string());
        let endpoint = match (config.endpoint_url(), &region) {
            (Some(url), _) => Endpoint::Override(url.trim_end_matches('/').to_string()),
            (None, Some(region)) => Endpoint::Regional(regional_host(
                region,
                config.use_fips().unwrap_or(false),
                config.use_dual_stack().unwrap_or(false),
            )),
            (None, None) => Endpoint::NoRegion,
        };
        let http = HttpClient::new(PORT, REQUEST_TIMEOUT, RetryPolicy::default())?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                credentials: CachedCredentials::new(config),
                region,
                endpoint,
            }),
        })
    }

    /// The whole object, refused before download when its `Content-Length`
    /// says it is larger than `max`, and while downloading when its bytes do.
    pub async fn get_object(&self, bucket: &str, key: &str, max: u64) -> PortResult<Got> {
        let url = self.inner.object_url(bucket, key, "")?;
        let identity = self.inner.credentials.identity(PORT).await?;
        let what = format!("GetObject s3://{bucket}/{key}");
        let signed = self.inner.signed("GET", &url, b"", &[], &identity)?;
        let (mut response, attempts) = self
            .inner
            .http
            .send_answered(&what, |client| {
                let mut request = client.get(&url);
                for (name, value) in &signed {
                    request = request.header(name, value);
                }
                request
            })
            .await?;
        if !response.status().is_success() {
            let refused = refusal(&what, response, attempts).await;
            return match refused.code.as_deref() {
                Some("NoSuchKey" | "NoSuchBucket") => Ok(Got::Missing),
                _ => Err(refused),
            };
        }
        let size = response.content_length().unwrap_or(0);
        if size > max {
            return Ok(Got::TooLarge(size));
        }
        let mut raw = Vec::with_capacity(size as usize);
        while let Some(chunk) = response.chunk().await.map_err(|e| {
            PortError::transient(PORT, format!("{what}: reading the body: {e}")).with_source(e)
        })? {
            let read = (raw.len() + chunk.len()) as u64;
            if read > max {
                return Ok(Got::TooLarge(read));
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(Got::Object(raw))
    }

    /// Replaces the object's tags with `tags` (PutObjectTagging). S3 requires
    /// a checksum of the body: `Content-MD5`, the one its API reference has
    /// always asked for on this call, and `x-amz-checksum-sha256` (S3 checks
    /// both).
    pub async fn put_object_tagging(
        &self,
        bucket: &str,
        key: &str,
        tags: &[(&str, &str)],
    ) -> PortResult<()> {
        let url = self.inner.object_url(bucket, key, "?tagging")?;
        let identity = self.inner.credentials.identity(PORT).await?;
        let body = tagging_document(tags);
        let base64 = |digest: &[u8]| base64::engine::general_purpose::STANDARD.encode(digest);
        let headers = [
            ("content-type", "application/xml".to_string()),
            ("content-md5", base64(&md5(body.as_bytes()))),
            ("x-amz-checksum-sha256", base64(&sha256(body.as_bytes()))),
        ];
        let what = format!("PutObjectTagging s3://{bucket}/{key}");
        let signed = self
            .inner
            .signed("PUT", &url, body.as_bytes(), &headers, &identity)?;
        let (response, attempts) = self
            .inner
            .http
            .send_answered(&what, |client| {
                let mut request = client.put(&url).body(body.clone());
                for (name, value) in &headers {
                    request = request.header(*name, value);
                }
                for (name, value) in &signed {
                    request = request.header(name, value);
                }
                request
            })
            .await?;
        if response.status().is_success() {
            return Ok(());
        }
        Err(refusal(&what, response, attempts).await)
    }
}

impl Inner {
    fn object_url(&self, bucket: &str, key: &str, query: &str) -> PortResult<String> {
        let path = key_path(key)?;
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(PortError::permanent(
                PORT,
                format!("{bucket:?} is not an S3 bucket name"),
            ));
        }
        Ok(match &self.endpoint {
            Endpoint::Override(base) => format!("{base}/{bucket}/{path}{query}"),
            Endpoint::NoRegion => {
                return Err(PortError::permanent(
                    PORT,
                    "no AWS region is configured (AWS_REGION), so there is no S3 endpoint",
                ));
            }
            // A name that is not one lower-case DNS label (dots; legacy names
            // with capitals or `_`) is addressed path-style.
            Endpoint::Regional(host)
                if !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                format!("https://{host}/{bucket}/{path}{query}")
            }
            Endpoint::Regional(host) => format!("https://{bucket}.{host}/{path}{query}"),
        })
    }

    /// The SigV4 headers for one request, S3's way: the path as sent (encoded
    /// once, not normalized) and the payload's SHA-256 in
    /// `x-amz-content-sha256`. A signature holds 15 minutes, longer than a
    /// request's retries.
    fn signed(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
        headers: &[(&'static str, String)],
        identity: &Identity,
    ) -> PortResult<Vec<(String, String)>> {
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let scope = Scope {
            identity,
            region: self.region.as_deref().unwrap_or_default(),
            service: "s3",
        };
        signed_headers(method, url, &headers, body, &scope, settings)
            .map_err(|e| PortError::permanent(PORT, e.to_string()))
    }
}

/// `s3[-fips][.dualstack].REGION.amazonaws.com[.cn]`.
fn regional_host(region: &str, fips: bool, dual_stack: bool) -> String {
    let service = if fips { "s3-fips" } else { "s3" };
    let dual = if dual_stack { ".dualstack" } else { "" };
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("{service}{dual}.{region}.{domain}")
}

/// The key as a URL path, every byte but the unreserved ones and `/`
/// percent-encoded once (S3's canonical form). Keys with `.` or `..`
/// segments are refused: URL parsing would resolve them to another path than
/// the one signed.
fn key_path(key: &str) -> PortResult<String> {
    if key.is_empty()
        || key
            .split('/')
            .any(|segment| segment == "." || segment == "..")
    {
        return Err(PortError::permanent(
            PORT,
            format!("the key {key:?} cannot be addressed (empty, or a . or .. segment)"),
        ));
    }
    Ok(percent_encoding::utf8_percent_encode(key, KEY_PATH).to_string())
}

/// What a key's path leaves as it is: RFC 3986's unreserved bytes and `/`.
const KEY_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The PutObjectTagging body.
fn tagging_document(tags: &[(&str, &str)]) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet>"#,
    );
    for (key, value) in tags {
        xml.push_str(&format!(
            "<Tag><Key>{}</Key><Value>{}</Value></Tag>",
            xml_text(key),
            xml_text(value)
        ));
    }
    xml.push_str("</TagSet></Tagging>");
    xml
}

fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn md5(bytes: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(bytes).into()
}

/// An S3 error answer as a port error: its kind from the status and S3's
/// `<Code>` (`SlowDown` is a throttle), the code kept for the caller, and the
/// request id for AWS support.
async fn refusal(what: &str, response: Response, attempts: u32) -> PortError {
    let status = response.status().as_u16();
    let request_id = response
        .headers()
        .get("x-amz-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = crate::error::error_answer(response).await;
    let code = element(&body, "Code").map(str::to_string);
    let kind = answer_kind(status, code.as_deref());
    let message = format!(
        "{what}: HTTP {status} {} after {attempts} attempt(s){}",
        code.as_deref().unwrap_or("(no error code)"),
        request_id.map_or(String::new(), |id| format!(" (request id {id})"))
    );
    PortError::new(kind, PORT, message)
        .with_status(status)
        .with_code(code)
}

/// The text of the first `<name>` element.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find("</")? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(endpoint: Endpoint) -> Inner {
        Inner {
            http: HttpClient::new(PORT, REQUEST_TIMEOUT, RetryPolicy::default()).unwrap(),
            credentials: CachedCredentials::of(None),
            region: Some("eu-west-1".into()),
            endpoint,
        }
    }

    #[test]
    fn objects_are_addressed_as_s3_documents_it() {
        install_crypto_provider();
        let regional = inner(Endpoint::Regional(regional_host("eu-west-1", false, false)));
        assert_eq!(
            regional
                .object_url("mail-bucket", "inbound/abc 1+2", "")
                .unwrap(),
            "https://mail-bucket.s3.eu-west-1.amazonaws.com/inbound/abc%201%2B2"
        );
        assert_eq!(
            regional
                .object_url("mail.example", "k", "?tagging")
                .unwrap(),
            "https://s3.eu-west-1.amazonaws.com/mail.example/k?tagging",
            "a bucket with dots is addressed path-style"
        );
        let local = inner(Endpoint::Override("http://127.0.0.1:5000".into()));
        assert_eq!(
            local.object_url("b", "inbound/é", "").unwrap(),
            "http://127.0.0.1:5000/b/inbound/%C3%A9"
        );
        for bad in ["", "a/../b", "./x"] {
            assert!(local.object_url("b", bad, "").is_err(), "{bad:?}");
        }
        assert_eq!(
            regional.object_url("Legacy_Bucket", "k", "").unwrap(),
            "https://s3.eu-west-1.amazonaws.com/Legacy_Bucket/k",
            "a legacy name that is no DNS label is addressed path-style"
        );
        assert!(local.object_url("b/c", "k", "").is_err());
        assert_eq!(
            regional_host("us-gov-west-1", true, true),
            "s3-fips.dualstack.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(
            regional_host("cn-north-1", false, false),
            "s3.cn-north-1.amazonaws.com.cn"
        );
    }

    #[test]
    fn the_tagging_document_escapes_its_text_and_errors_give_their_code() {
        assert_eq!(
            tagging_document(&[("a&b", "<v>")]),
            r#"<?xml version="1.0" encoding="UTF-8"?><Tagging xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><TagSet><Tag><Key>a&amp;b</Key><Value>&lt;v&gt;</Value></Tag></TagSet></Tagging>"#
        );
        let error =
            "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone</Message></Error>";
        assert_eq!(element(error, "Code"), Some("NoSuchKey"));
        assert_eq!(element("<Error></Error>", "Code"), None);
    }

    #[test]
    fn body_checksums_are_the_standard_digests_in_base64() {
        // RFC 1321's and FIPS 180-2's test vectors, as S3's headers carry them.
        let base64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
        assert_eq!(base64(&md5(b"abc")), "kAFQmDzST7DWlj99KOF/cg==");
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
    }
}
