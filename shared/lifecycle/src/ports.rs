//! The capabilities the lifecycle needs, one narrow trait each: AWS (or local
//! stand-ins) implement them; the steps never know which.

use crate::model::{AuditEntry, RootCredentialReport, RootSummary, Rotation, Stage, VaultItem};
use rootmail_domain::{Account, AccountId, EmailAddress, SecretValue};
use rootmail_pipeline::{ErrorKind, PortError};
use std::future::Future;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Not possible in the account's state, or the input is wrong. Nothing
    /// changed; retrying the same request fails the same way.
    #[error("{0}")]
    Refused(String),
    /// Not done yet (AWS has not confirmed); the same step succeeds later.
    #[error("not yet: {0}")]
    NotYet(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl LifecycleError {
    /// A write of `account`'s record that lost the race to another writer. A
    /// conflict, so retried (`Transient` to the state machine): the step runs
    /// again on the record as it is now, and its phase check refuses it if
    /// the other writer moved the record on.
    pub fn changed_meanwhile(account: &AccountId) -> Self {
        Self::Port(PortError::new(
            ErrorKind::Conflict,
            "rotations",
            format!("account {account}'s lifecycle record changed meanwhile; look at it again"),
        ))
    }

    /// A failure worth trying again (`Transient` to the state machine).
    pub fn transient(port: &'static str, message: impl Into<String>) -> Self {
        Self::Port(PortError::transient(port, message))
    }

    /// Whether this is a lost race ([`Self::changed_meanwhile`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Port(e) if e.kind == ErrorKind::Conflict)
    }

    /// The name a Step Functions `Retry`/`Catch` matches on.
    pub fn error_name(&self) -> &'static str {
        match self {
            Self::Refused(_) => "Refused",
            Self::NotYet(_) => "NotYet",
            Self::Port(e) if e.is_transient() => "Transient",
            Self::Port(_) => "Permanent",
        }
    }
}

pub type LifecycleResult<T> = Result<T, LifecycleError>;

/// The state of an account's most recent root email change
/// (`GetPrimaryEmailUpdateStatus`), and when it last changed (epoch seconds).
/// It answers at once, where the root email itself may take hours to show a
/// change (AWS: up to four hours to propagate everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmailUpdateStatus {
    pub state: EmailUpdateState,
    pub updated_at: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailUpdateState {
    /// Started, its code not yet accepted.
    Pending,
    /// The code was accepted.
    Accepted,
    Completed,
    Failed,
}

impl EmailUpdateState {
    /// AWS took the code: the change is made or being made.
    pub fn accepted(self) -> bool {
        matches!(self, Self::Accepted | Self::Completed)
    }
}

/// Where AWS Organizations has a member account in its life
/// (`DescribeAccount`'s `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    PendingActivation,
    Active,
    /// Suspended by AWS (unpaid bills, abuse): not closed.
    Suspended,
    /// `CloseAccount` asked, AWS closing it (asynchronous).
    PendingClosure,
    /// Closed: AWS keeps it 90 days, then removes it from the organization.
    Closed,
}

impl MemberState {
    /// Closed or being closed: nothing more to ask of AWS.
    pub fn closing(self) -> bool {
        matches!(self, Self::PendingClosure | Self::Closed)
    }

    /// AWS's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PendingActivation => "PENDING_ACTIVATION",
            Self::Active => "ACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::PendingClosure => "PENDING_CLOSURE",
            Self::Closed => "CLOSED",
        }
    }
}

impl std::fmt::Display for MemberState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Account API's primary-email calls, and the two calls of AWS
/// Organizations on a member account that closing it needs.
pub trait AccountApi {
    fn start_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    /// `Refused` for a wrong or expired code.
    fn accept_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        otp: &SecretValue,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    fn primary_email(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<EmailAddress>> + Send;
    /// The most recent root email change's status; none when the account
    /// never had one.
    fn email_update_status(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Option<EmailUpdateStatus>>> + Send;
    /// What AWS Organizations says of the account (`DescribeAccount`);
    /// `None` when it is not a member of this organization.
    fn member_state(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Option<MemberState>>> + Send;
    /// Closes a member account (`CloseAccount`). AWS closes it in the
    /// background: [`MemberState::PendingClosure`] first. An account already
    /// closed is no error; `Refused` where AWS will not (its closure quota,
    /// the management account).
    fn close_member(&self, account: &AccountId)
    -> impl Future<Output = LifecycleResult<()>> + Send;
}

/// Centralized root access (`sts:AssumeRoot` with a task policy).
pub trait RootAccess {
    /// What the root user has (`IAMAuditRootUserCredentials`).
    fn audit(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<RootCredentialReport>> + Send;
    /// Deletes password, access keys, signing certificates and MFA devices
    /// (`IAMDeleteRootUserCredentials`); returns what was deleted.
    fn delete_all(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<RootCredentialReport>> + Send;
    /// Lets the root user recover a password again after [`Self::delete_all`]
    /// (`IAMCreateRootUserPassword`: a login profile without a password, so
    /// "Forgot password" mails a reset link to the root address).
    fn allow_password_recovery(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    /// What IAM's account summary says of the root user of a payer or
    /// standalone account, which no root session reaches: read through the
    /// role the provider keeps there (`PayerAuditRoleName`), or `None` when
    /// none is configured. Reads no credential.
    fn summary(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Option<RootSummary>>> + Send;
}

/// Encrypted secret storage (Secrets Manager under a customer-managed KMS key
/// in AWS, an encrypted file locally). References are safe to log.
pub trait Vault {
    /// Stores `value`; returns a reference (never the value).
    fn put(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
        value: &SecretValue,
    ) -> impl Future<Output = LifecycleResult<String>> + Send;
    fn get(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
    ) -> impl Future<Output = LifecycleResult<Option<SecretValue>>> + Send;
    /// The version `reference` names (what `put` returned), whichever stage
    /// is on it now: a record names the secret it was handed, where a
    /// handover running at the same time may have put another version in
    /// the stage since.
    fn get_version(
        &self,
        account: &AccountId,
        item: VaultItem,
        reference: &str,
    ) -> impl Future<Output = LifecycleResult<Option<SecretValue>>> + Send;
    /// Makes the pending version current.
    fn promote(
        &self,
        account: &AccountId,
        item: VaultItem,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    /// Schedules `items` of the account for deletion (with a recovery window).
    /// Name only items that were stored: AWS answers `AccessDeniedException`,
    /// not "not found", for a secret that never existed.
    fn schedule_deletion(
        &self,
        account: &AccountId,
        items: &[VaultItem],
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
}

/// The rotations table: one record per account, written with optimistic locking.
pub trait Rotations {
    fn get(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Option<Rotation>>> + Send;
    /// Writes `rotation` if the stored version is `expected` (`None`: no record
    /// yet). A lost race is [`LifecycleError::changed_meanwhile`].
    fn put(
        &self,
        rotation: &Rotation,
        expected: Option<u64>,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    /// Writes only what a handover changes ([`HANDOVER_FIELDS`]; a task token
    /// only ever removed) if the stored version is `expected`: the mail
    /// pipeline may write no more of a record than that.
    fn save_handover(
        &self,
        rotation: &Rotation,
        expected: u64,
    ) -> impl Future<Output = LifecycleResult<()>> + Send {
        self.put(rotation, Some(expected))
    }
}

/// The record's fields a handover writes (beside its key, `account_id`).
pub const HANDOVER_FIELDS: &[&str] = &[
    "phase",
    "handed_over",
    "reset_link_delivered_at",
    "code_delivered_at",
    "code_message_id",
    "waiting_for",
    "expires_at",
    "task_token",
    "mfa_confirmed_at",
    "email_evidence",
    "version",
    "updated_at",
];

/// The append-only audit table.
pub trait AuditLog {
    fn append(&self, entry: &AuditEntry) -> impl Future<Output = LifecycleResult<()>> + Send;
    fn entries(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Vec<AuditEntry>>> + Send;
}

/// The account directory, written by the lifecycle.
pub trait AccountRegistry {
    fn by_id(
        &self,
        account: &AccountId,
    ) -> impl Future<Output = LifecycleResult<Option<Account>>> + Send;
    fn by_email(
        &self,
        email: &EmailAddress,
    ) -> impl Future<Output = LifecycleResult<Option<Account>>> + Send;
    fn save(&self, account: &Account) -> impl Future<Output = LifecycleResult<()>> + Send;
    /// Removes the record for an address the account no longer uses.
    fn forget(&self, email: &EmailAddress) -> impl Future<Output = LifecycleResult<()>> + Send;
}

/// Answers a waiting Step Functions task (in-process steps locally).
pub trait TaskTokens {
    fn succeed(
        &self,
        token: &str,
        output: &serde_json::Value,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
}

/// How people hear of a state change: a comment on the account's lifecycle
/// ticket, and (for break-glass access) an email.
pub trait Notices {
    fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> impl Future<Output = LifecycleResult<()>> + Send;
    fn email(&self, subject: &str, text: &str) -> impl Future<Output = LifecycleResult<()>> + Send;
}

/// Everything the steps use, as one bundle (one struct in AWS, one locally).
pub trait LifecyclePorts: Sync {
    type Api: AccountApi + Sync;
    type Root: RootAccess + Sync;
    type Vault: Vault + Sync;
    type Rotations: Rotations + Sync;
    type Audit: AuditLog + Sync;
    type Registry: AccountRegistry + Sync;
    type Tokens: TaskTokens + Sync;
    type Notices: Notices + Sync;
    fn api(&self) -> &Self::Api;
    fn root(&self) -> &Self::Root;
    fn vault(&self) -> &Self::Vault;
    fn rotations(&self) -> &Self::Rotations;
    fn audit(&self) -> &Self::Audit;
    fn registry(&self) -> &Self::Registry;
    fn tokens(&self) -> &Self::Tokens;
    fn notices(&self) -> &Self::Notices;
}
