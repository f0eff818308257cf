//! Centralized root access: `sts:AssumeRoot` with a root task policy for a
//! session of at most 15 minutes, then IAM calls as that member account's root
//! user. Each call of a port method uses a session of its own.

use crate::error::{error_code, port_error};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sts::types::PolicyDescriptorType;
use rootmail_domain::AccountId;
use rootmail_lifecycle::{
    LifecycleError, LifecycleResult, RootAccess, RootCredentialReport, RootSummary,
};
use rootmail_pipeline::{ErrorKind, PortError};

const STS: &str = "sts";
const IAM: &str = "iam";
/// The longest root session AWS grants.
pub const ROOT_SESSION_SECS: i32 = 900;
/// Reads what the root user has.
pub const AUDIT_TASK_POLICY: &str = "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials";
/// Reads and deletes the root user's credentials.
pub const DELETE_TASK_POLICY: &str =
    "arn:aws:iam::aws:policy/root-task/IAMDeleteRootUserCredentials";
/// Lets the root user recover a password (a login profile without one).
pub const CREATE_PASSWORD_TASK_POLICY: &str =
    "arn:aws:iam::aws:policy/root-task/IAMCreateRootUserPassword";

#[derive(Clone)]
pub struct RootSessions {
    sts: aws_sdk_sts::Client,
    /// Settings for root-session clients; its credentials are never used.
    iam: aws_sdk_iam::Client,
    /// The role rootmail assumes in a payer or standalone account to read
    /// IAM's account summary (none: the engineer's statement alone).
    payer_audit_role_name: Option<String>,
}

impl RootSessions {
    pub fn new(
        sts: aws_sdk_sts::Client,
        iam: aws_sdk_iam::Client,
        payer_audit_role_name: Option<String>,
    ) -> Self {
        Self {
            sts,
            iam,
            payer_audit_role_name,
        }
    }

    /// An IAM client acting as the provider's audit role in `account`.
    async fn audit_role(
        &self,
        account: &AccountId,
        role_name: &str,
    ) -> LifecycleResult<aws_sdk_iam::Client> {
        let region = self.sts.config().region().map_or("", |r| r.as_ref());
        let role = format!(
            "arn:{}:iam::{account}:role/{role_name}",
            partition_of(region)
        );
        let answer = match self
            .sts
            .assume_role()
            .role_arn(&role)
            .role_session_name("rootmail-console-check")
            .send()
            .await
        {
            Ok(answer) => answer,
            Err(e) if error_code(&e) == Some("AccessDenied") => {
                return Err(LifecycleError::Refused(format!(
                    "rootmail may not assume {role} to check account {account}'s root user: \
                     create the role there (docs/lifecycle.md), or leave PayerAuditRoleName \
                     empty to complete console take-overs on the engineer's statement alone"
                )));
            }
            Err(e) => return Err(LifecycleError::Port(port_error(STS, e))),
        };
        self.iam_as(account, answer.credentials(), "sts-assume-role")
    }

    /// An IAM client with a session's credentials.
    fn iam_as(
        &self,
        account: &AccountId,
        credentials: Option<&aws_sdk_sts::types::Credentials>,
        source: &'static str,
    ) -> LifecycleResult<aws_sdk_iam::Client> {
        let Some(credentials) = credentials else {
            return Err(LifecycleError::Port(PortError::permanent(
                STS,
                format!("STS returned no credentials for account {account}"),
            )));
        };
        let session = aws_sdk_iam::config::Credentials::new(
            credentials.access_key_id(),
            credentials.secret_access_key(),
            Some(credentials.session_token().to_string()),
            None,
            source,
        );
        let config = self
            .iam
            .config()
            .to_builder()
            .credentials_provider(session)
            .build();
        Ok(aws_sdk_iam::Client::from_conf(config))
    }

    /// An IAM client acting as `account`'s root user under `task_policy`.
    async fn session(
        &self,
        account: &AccountId,
        task_policy: &str,
    ) -> LifecycleResult<aws_sdk_iam::Client> {
        let answer = self
            .sts
            .assume_root()
            .target_principal(account.as_str())
            .task_policy_arn(PolicyDescriptorType::builder().arn(task_policy).build())
            .duration_seconds(ROOT_SESSION_SECS)
            .send()
            .await
            .map_err(|e| LifecycleError::Port(port_error(STS, e)))?;
        self.iam_as(account, answer.credentials(), "sts-assume-root")
    }
}

/// The AWS partition of a region, for an ARN (by the region prefixes of
/// the SDK's partition table).
fn partition_of(region: &str) -> &'static str {
    const PARTITIONS: [(&str, &str); 7] = [
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-iso-", "aws-iso"),
        ("us-isob-", "aws-iso-b"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
        ("eusc-", "aws-eusc"),
    ];
    PARTITIONS
        .iter()
        .find(|(prefix, _)| region.starts_with(prefix))
        .map_or("aws", |(_, partition)| partition)
}

/// IAM codes its API reference says to retry after a wait: an expired
/// session (the retry assumes a new one), and the 409s of an entity another
/// change holds (`EntityTemporarilyUnmodifiable` on DeleteLoginProfile and
/// DeactivateMFADevice, `ConcurrentModification`: "wait a few minutes and
/// submit your request again"). A 409 is otherwise permanent, so these
/// failed the take-over after the root email had moved.
const RETRIED_IAM_CODES: [&str; 4] = [
    "ExpiredToken",
    "ExpiredTokenException",
    "EntityTemporarilyUnmodifiable",
    "ConcurrentModification",
];

/// An IAM failure in a root session, retried when IAM says a wait helps.
fn iam_error<E>(
    account: &AccountId,
    doing: &str,
    error: SdkError<E, crate::error::HttpResponse>,
) -> LifecycleError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retried = error_code(&error).is_some_and(|code| RETRIED_IAM_CODES.contains(&code));
    let mut error = port_error(IAM, error);
    error.message = format!(
        "{doing} of account {account}'s root user: {}",
        error.message
    );
    if retried {
        error.kind = ErrorKind::Transient;
    }
    LifecycleError::Port(error)
}

fn no_such_entity<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    error_code(error) == Some("NoSuchEntity")
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What the root user has: password, access keys, signing certificates, MFA
/// devices (their ids, for deleting).
struct Held {
    password: bool,
    access_keys: Vec<String>,
    certificates: Vec<String>,
    mfa_devices: Vec<String>,
    /// When each device was enabled (seconds since the epoch).
    mfa_enabled_at: Vec<u64>,
}

impl Held {
    fn report(&self) -> RootCredentialReport {
        RootCredentialReport {
            password: self.password,
            access_keys: count(self.access_keys.len()),
            signing_certificates: count(self.certificates.len()),
            mfa_devices: count(self.mfa_devices.len()),
            mfa_enabled_at: self.mfa_enabled_at.clone(),
        }
    }
}

async fn held(iam: &aws_sdk_iam::Client, account: &AccountId) -> LifecycleResult<Held> {
    let password = match iam.get_login_profile().send().await {
        Ok(_) => true,
        Err(e) if no_such_entity(&e) => false,
        Err(e) => return Err(iam_error(account, "reading the password", e)),
    };
    let access_keys = iam
        .list_access_keys()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| iam_error(account, "listing the access keys", e))?
        .into_iter()
        .filter_map(|k| k.access_key_id().map(str::to_string))
        .collect();
    let certificates = iam
        .list_signing_certificates()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| iam_error(account, "listing the signing certificates", e))?
        .into_iter()
        .map(|c| c.certificate_id().to_string())
        .collect();
    let devices = iam
        .list_mfa_devices()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| iam_error(account, "listing the MFA devices", e))?;
    let mfa_devices = devices
        .iter()
        .map(|d| d.serial_number().to_string())
        .collect();
    let mfa_enabled_at = devices
        .iter()
        .map(|d| u64::try_from(d.enable_date().secs()).unwrap_or(0))
        .collect();
    Ok(Held {
        password,
        access_keys,
        certificates,
        mfa_devices,
        mfa_enabled_at,
    })
}

impl RootAccess for RootSessions {
    async fn audit(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        let iam = self.session(account, AUDIT_TASK_POLICY).await?;
        Ok(held(&iam, account).await?.report())
    }

    /// Deletes what the root user has; something already gone (a retry, or
    /// someone faster) is not an error and not counted.
    async fn delete_all(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        let iam = self.session(account, DELETE_TASK_POLICY).await?;
        let found = held(&iam, account).await?;
        let mut deleted = RootCredentialReport::default();
        if found.password {
            match iam.delete_login_profile().send().await {
                Ok(_) => deleted.password = true,
                Err(e) if no_such_entity(&e) => {}
                Err(e) => return Err(iam_error(account, "deleting the password", e)),
            }
        }
        for id in &found.access_keys {
            match iam.delete_access_key().access_key_id(id).send().await {
                Ok(_) => deleted.access_keys += 1,
                Err(e) if no_such_entity(&e) => {}
                Err(e) => return Err(iam_error(account, "deleting an access key", e)),
            }
        }
        for id in &found.certificates {
            match iam
                .delete_signing_certificate()
                .certificate_id(id)
                .send()
                .await
            {
                Ok(_) => deleted.signing_certificates += 1,
                Err(e) if no_such_entity(&e) => {}
                Err(e) => return Err(iam_error(account, "deleting a signing certificate", e)),
            }
        }
        for serial in &found.mfa_devices {
            match iam
                .deactivate_mfa_device()
                .serial_number(serial)
                .send()
                .await
            {
                Ok(_) => deleted.mfa_devices += 1,
                Err(e) if no_such_entity(&e) => {}
                Err(e) => return Err(iam_error(account, "deactivating an MFA device", e)),
            }
        }
        Ok(deleted)
    }

    /// IAM's account summary, through the provider's role in the account.
    async fn summary(&self, account: &AccountId) -> LifecycleResult<Option<RootSummary>> {
        use aws_sdk_iam::types::SummaryKeyType as Key;
        let Some(role_name) = &self.payer_audit_role_name else {
            return Ok(None);
        };
        let iam = self.audit_role(account, role_name).await?;
        let answer = iam
            .get_account_summary()
            .send()
            .await
            .map_err(|e| iam_error(account, "reading the account summary", e))?;
        let map = answer.summary_map();
        let on = |key: Key| map.and_then(|m| m.get(&key)).is_some_and(|n| *n > 0);
        Ok(Some(RootSummary {
            mfa_enabled: on(Key::AccountMfaEnabled),
            access_keys_present: on(Key::AccountAccessKeysPresent),
            signing_certificates_present: on(Key::AccountSigningCertificatesPresent),
        }))
    }

    /// A login profile with no password: "Forgot password" works again. One
    /// that exists already is fine (a retry, or recovery was never off).
    async fn allow_password_recovery(&self, account: &AccountId) -> LifecycleResult<()> {
        let iam = self.session(account, CREATE_PASSWORD_TASK_POLICY).await?;
        match iam.create_login_profile().send().await {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("EntityAlreadyExists") => Ok(()),
            Err(e) => Err(iam_error(account, "allowing password recovery", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::delete_login_profile::DeleteLoginProfileError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn failed(status: u16, code: &str) -> LifecycleError {
        let meta = ErrorMetadata::builder().code(code).message("no").build();
        let response = crate::error::HttpResponse::new(
            StatusCode::try_from(status).unwrap(),
            SdkBody::empty(),
        );
        let error = SdkError::service_error(DeleteLoginProfileError::generic(meta), response);
        iam_error(
            &AccountId::parse("111122223333").unwrap(),
            "deleting",
            error,
        )
    }

    fn retried(error: &LifecycleError) -> bool {
        matches!(error, LifecycleError::Port(e) if e.is_transient())
    }

    #[test]
    fn role_arns_name_the_region_s_partition() {
        for (region, partition) in [
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(partition_of(region), partition, "{region}");
        }
    }

    #[test]
    fn conflicts_iam_says_to_wait_out_are_retried_and_others_are_not() {
        for code in ["EntityTemporarilyUnmodifiable", "ConcurrentModification"] {
            assert!(retried(&failed(409, code)), "{code}");
        }
        assert!(retried(&failed(403, "ExpiredToken")));
        assert!(!retried(&failed(409, "DeleteConflict")));
        assert!(!retried(&failed(403, "AccessDenied")));
    }
}
