//! Reading a stored message from S3: one copy in memory, sized up front, and a
//! clear answer for the two permanent failures (gone, too large).
//!
//! Locations and keys as S3 events spell them live in `rootmail-events` (pure,
//! fuzzed); they are re-exported here.

use crate::s3::{Got, S3Client};
use rootmail_pipeline::{ErrorKind, MailSource, PortError, PortResult};

pub use rootmail_events::{MailLocation, created_event, decode_key, encode_key};

/// SES stores messages up to 40 MB with the S3 action; anything larger is not mail
/// SES delivered and is quarantined unread.
pub const SES_MAX_MESSAGE_BYTES: u64 = 40 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Deleted (or never written) before it was read. Permanent.
    #[error("{0} does not exist (deleted before it was read?)")]
    Missing(MailLocation),
    /// Larger than SES ever stores. Permanent.
    #[error("{location} is {size} bytes, more than the {max}-byte limit")]
    TooLarge {
        location: MailLocation,
        size: u64,
        max: u64,
    },
    /// Anything else (throttling, network, permissions): retry the record.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl ReadError {
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Missing(_) | Self::TooLarge { .. } => true,
            Self::Port(e) => !e.is_transient(),
        }
    }
}

#[derive(Clone)]
pub struct S3Mail {
    client: S3Client,
}

impl S3Mail {
    pub fn new(client: S3Client) -> Self {
        Self { client }
    }

    /// Tags an original that holds a secret (`rootmail-sealed=true`): the
    /// ticket writer's role may not read objects with that tag (its policy's
    /// `s3:ExistingObjectTag` condition), so codes and reset links stay with
    /// mail-ingest. The object is not moved: a redelivered event still finds it.
    pub async fn seal(&self, location: &MailLocation) -> PortResult<()> {
        self.client
            .put_object_tagging(&location.bucket, &location.key, &[(SEALED_TAG, "true")])
            .await
    }

    /// The whole object, refused before download when it is larger than `max`.
    pub async fn read(&self, location: &MailLocation, max: u64) -> Result<Vec<u8>, ReadError> {
        match self
            .client
            .get_object(&location.bucket, &location.key, max)
            .await
        {
            Ok(Got::Object(raw)) => Ok(raw),
            Ok(Got::Missing) => Err(ReadError::Missing(location.clone())),
            Ok(Got::TooLarge(size)) => Err(ReadError::TooLarge {
                location: location.clone(),
                size,
                max,
            }),
            // Permissions are a deployment problem, not the message's: retry so
            // the message survives until the policy is fixed.
            Err(e) => Err(transient(e)),
        }
    }
}

fn transient(mut error: PortError) -> ReadError {
    if !error.is_transient() {
        error.kind = ErrorKind::Transient;
    }
    ReadError::Port(error)
}

/// The writer's view of the mail bucket: originals read back for their
/// attachments, only from the bucket it was configured with.
#[derive(Clone)]
pub struct S3MailSource {
    mail: S3Mail,
    bucket: String,
}

impl S3MailSource {
    pub fn new(client: S3Client, bucket: &str) -> Self {
        Self {
            mail: S3Mail::new(client),
            bucket: bucket.to_string(),
        }
    }
}

impl MailSource for S3MailSource {
    async fn raw(&self, archive_ref: &str) -> PortResult<Option<Vec<u8>>> {
        let location = match MailLocation::parse(archive_ref) {
            Some(location) if location.bucket == self.bucket => location,
            // An operation naming another bucket is not ours to read.
            _ => {
                tracing::warn!(
                    archive_ref,
                    "original is not in the mail bucket; attachments listed only"
                );
                return Ok(None);
            }
        };
        match self.mail.read(&location, SES_MAX_MESSAGE_BYTES).await {
            Ok(raw) => Ok(Some(raw)),
            Err(ReadError::Missing(_) | ReadError::TooLarge { .. }) => Ok(None),
            Err(ReadError::Port(e)) => Err(e),
        }
    }
}

/// The tag that keeps an original from the ticket writer (see [`S3Mail::seal`]).
pub const SEALED_TAG: &str = "rootmail-sealed";
