//! The credentials the clients without an SDK (S3, the JSON-protocol
//! services) sign with, read from the SDK configuration's provider and kept
//! while they are fresh (Lambda's never expire within an instance).

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_smithy_runtime_api::client::identity::Identity;
use rootmail_pipeline::{PortError, PortResult};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Credentials are read again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

pub(crate) struct CachedCredentials {
    provider: Option<SharedCredentialsProvider>,
    /// The last credentials read, kept until shortly before they expire.
    cached: Mutex<Option<Credentials>>,
}

impl CachedCredentials {
    pub(crate) fn new(config: &aws_config::SdkConfig) -> Self {
        Self::of(config.credentials_provider())
    }

    pub(crate) fn of(provider: Option<SharedCredentialsProvider>) -> Self {
        Self {
            provider,
            cached: Mutex::new(None),
        }
    }

    /// The credentials as an identity to sign with: the cached ones while
    /// they are fresh. `port` names the caller in an error.
    pub(crate) async fn identity(&self, port: &'static str) -> PortResult<Identity> {
        let fresh = |c: &Credentials| {
            c.expiry().is_none_or(|at| {
                at.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > REFRESH_BEFORE_EXPIRY)
            })
        };
        let cached = self
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let credentials = match cached.filter(fresh) {
            Some(credentials) => credentials,
            None => {
                let provider = self.provider.as_ref().ok_or_else(|| {
                    PortError::permanent(port, "no AWS credentials provider is configured")
                })?;
                let credentials = provider.provide_credentials().await.map_err(|e| {
                    PortError::transient(port, format!("reading the AWS credentials: {e}"))
                })?;
                *self.cached.lock().unwrap_or_else(|e| e.into_inner()) = Some(credentials.clone());
                credentials
            }
        };
        Ok(credentials.into())
    }
}
