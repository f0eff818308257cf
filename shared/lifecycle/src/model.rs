//! What the lifecycle stores: one rotation per account (where its workflow is),
//! and an append-only audit trail.

use rootmail_domain::{AccountId, EmailAddress, Kind};
use serde::{Deserialize, Serialize};

/// How the root user is held after a take-over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A generated password and TOTP seed in the vault (a human finishes the
    /// console steps, since no API sets them).
    Vaulted,
    /// No root credentials at all (what AWS recommends with centralized root access).
    Rootless,
    /// A payer (management) account of another organization, or a standalone
    /// account: no Account API and no AssumeRoot reach it, so an engineer does
    /// each change in the console and rootmail follows with evidence; the
    /// password and MFA seed are vaulted as in `Vaulted`.
    Console,
}

impl Mode {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "vaulted" => Some(Self::Vaulted),
            "rootless" => Some(Self::Rootless),
            "console" => Some(Self::Console),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vaulted => "vaulted",
            Self::Rootless => "rootless",
            Self::Console => "console",
        }
    }

    /// What a take-over in this mode may put in the vault (a release
    /// schedules the deletion of these and no other; the vault skips one
    /// never stored: AWS denies deleting a secret that does not exist rather
    /// than saying it is not found).
    pub fn vault_items(self) -> &'static [VaultItem] {
        match self {
            Self::Rootless => &[VaultItem::Handover],
            Self::Vaulted | Self::Console => &[
                VaultItem::Password,
                VaultItem::TotpSeed,
                VaultItem::Handover,
            ],
        }
    }

    /// Holds a root password and MFA seed in the vault.
    pub fn holds_credentials(self) -> bool {
        matches!(self, Self::Vaulted | Self::Console)
    }
}

/// Where an account's workflow is. Each step moves it forward from one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Registered as onboarding with our new address.
    Registered,
    /// The root email update is started (by the API, or in the console); its
    /// one-time code is awaited by mail.
    AwaitingOtp,
    /// The code arrived and sits in the vault.
    OtpReceived,
    /// AWS accepted the code (console: the engineer read it to enter, or AWS's
    /// code mail came and no rule read its code); the change is being confirmed.
    EmailAccepted,
    /// The root email is ours.
    EmailConfirmed,
    /// Vaulted and console: the password is pending and an engineer does the
    /// console steps (`rootmail mfa enroll`, `rootmail rotation complete`).
    AwaitingEngineer,
    /// Root credentials are as the mode wants them, and audited.
    Secured,
    Active,
    /// Release: the email update to the customer's address is started; the
    /// customer's code comes back through `rootmail rotation complete` (console:
    /// the engineer attests the console steps instead).
    AwaitingCustomerOtp,
    Released,
    Closed,
    /// A take-over stopped for good (a step failed, or a wait timed out): the
    /// record keeps why and where; a new take-over may start.
    Failed,
}

impl Phase {
    pub const ALL: [Phase; 12] = [
        Self::Registered,
        Self::AwaitingOtp,
        Self::OtpReceived,
        Self::EmailAccepted,
        Self::EmailConfirmed,
        Self::AwaitingEngineer,
        Self::Secured,
        Self::Active,
        Self::AwaitingCustomerOtp,
        Self::Released,
        Self::Closed,
        Self::Failed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::AwaitingOtp => "awaiting_otp",
            Self::OtpReceived => "otp_received",
            Self::EmailAccepted => "email_accepted",
            Self::EmailConfirmed => "email_confirmed",
            Self::AwaitingEngineer => "awaiting_engineer",
            Self::Secured => "secured",
            Self::Active => "active",
            Self::AwaitingCustomerOtp => "awaiting_customer_otp",
            Self::Released => "released",
            Self::Closed => "closed",
            Self::Failed => "failed",
        }
    }

    /// A workflow is running (another take-over must not start).
    pub fn in_progress(self) -> bool {
        !matches!(
            self,
            Self::Active | Self::Released | Self::Closed | Self::Failed
        )
    }

    /// A take-over's phases before it vaults credentials of its own: what
    /// the vault holds then is a take-over's it started over, if any.
    pub fn before_vault(self) -> bool {
        matches!(
            self,
            Self::Registered
                | Self::AwaitingOtp
                | Self::OtpReceived
                | Self::EmailAccepted
                | Self::EmailConfirmed
        )
    }

    /// Before the code went to AWS: a failure here left the root email as it
    /// was. From `OtpReceived` on it may not have in `mode` Vaulted or
    /// Rootless: the accept step gives AWS the code there, and AWS may have
    /// taken it with the answer lost. A console take-over leaves
    /// `OtpReceived` when the engineer reads the code to type it.
    pub fn before_email_change(self, mode: Mode) -> bool {
        match self {
            Self::Registered | Self::AwaitingOtp => true,
            Self::OtpReceived => mode == Mode::Console,
            _ => false,
        }
    }
}

/// One account's lifecycle record (the rotations table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub account_id: AccountId,
    pub customer: String,
    pub mode: Mode,
    pub phase: Phase,
    /// The root address the account is moving to (ours on take-over, the
    /// customer's on release).
    pub target_email: EmailAddress,
    /// The root address before the change.
    pub previous_email: Option<EmailAddress>,
    /// When a release's completion began giving AWS the customer's code (it
    /// ends released, or is cleared when AWS refuses the code): a
    /// cancellation meanwhile is refused.
    #[serde(default)]
    pub release_completing_since: Option<u64>,
    /// When a release claimed the record, before it mailed `NoticeTo` or
    /// asked AWS for the email change: a closure waits meanwhile. Cleared
    /// by the release's save, or by its failure before AWS may have acted;
    /// otherwise disregarded after [`crate::closure::CLAIM_HELD_SECS`].
    #[serde(default)]
    pub release_starting_since: Option<u64>,
    /// The request holding that claim (who, the ticket, the address): run
    /// again (the release state machine's retry after a lost answer) it
    /// goes on; another release waits.
    #[serde(default)]
    pub release_starting_for: Option<String>,
    /// While a release waits for the customer: the root address the account
    /// had before our take-over (`previous_email` is ours then). A cancelled
    /// release puts it back.
    #[serde(default)]
    pub before_release: Option<EmailAddress>,
    /// The mail whose secret this rotation waits for, if any.
    #[serde(default)]
    pub waiting_for: Option<Kind>,
    /// The Step Functions task token to answer when it arrives. Stored sealed
    /// (KMS in AWS); a reference, never a secret itself.
    #[serde(default)]
    pub task_token: Option<String>,
    /// Where the handed-over secret (a code or link) sits in the vault.
    #[serde(default)]
    pub handed_over: Option<String>,
    /// When the mail of the reset link held reached our servers (seconds
    /// since the epoch): a reset link delivered earlier does not replace it.
    #[serde(default)]
    pub reset_link_delivered_at: Option<i64>,
    /// When the mail of the code held reached our servers (a console
    /// take-over's code mail, read or unread): only a later code mail
    /// replaces it.
    #[serde(default)]
    pub code_delivered_at: Option<i64>,
    /// That mail's `Message-ID`: the same mail again is a redelivery.
    #[serde(default)]
    pub code_message_id: Option<String>,
    /// When the wait ends (seconds since the epoch).
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Why a take-over failed, and in which phase (phase `failed` only).
    #[serde(default)]
    pub failure: Option<Failure>,
    /// When the engineer's console task began: the root user's MFA device
    /// must be enabled after it.
    #[serde(default)]
    pub engineer_since: Option<u64>,
    /// When the engineer enrolled the MFA seed AWS generated (`mfa enroll`).
    #[serde(default)]
    pub mfa_enrolled_at: Option<u64>,
    /// Console take-over: what showed the root email change took effect (AWS's
    /// verified mail to the new address, or an engineer's attestation).
    #[serde(default)]
    pub email_evidence: Option<String>,
    /// When AWS's verified MFA notice reached the root address.
    #[serde(default)]
    pub mfa_confirmed_at: Option<u64>,
    /// When AWS accepted the request to change the root email, the
    /// take-over's (a run of the step again does not ask a second time: the
    /// code on its way would be stale) or, once a release starts, the
    /// release's (a change's status stamped before it is an older change's).
    #[serde(default)]
    pub email_change_requested_at: Option<u64>,
    /// When a release deleted our root credentials. A completion run again
    /// after it deletes nothing more: by then the root email is the
    /// customer's, and what the root user has may be theirs.
    #[serde(default)]
    pub credentials_deleted_at: Option<u64>,
    /// The phase `close` found: an account closed while taken over keeps
    /// the root credentials it had, which AWS lets sign in for 90 days
    /// after closure (to reopen it, or read its bills).
    #[serde(default)]
    pub closed_from: Option<Phase>,
    /// A take-over started over a failed one that left root credentials in
    /// the vault: whether they are its pending ones (`true`) or current
    /// ones. AWS may hold them: a console take-over signs in with them until
    /// it vaults its own.
    #[serde(default)]
    pub earlier_credentials: Option<bool>,
    /// Those earlier credentials' MFA seed is of a device AWS deleted (a
    /// member's take-over deleted every device and enrolled none after).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub earlier_seed_gone: bool,
    /// When AWS Organizations accepted `close`'s request to close the member
    /// account: AWS closes it in the background, and meanwhile the closure
    /// is not asked for again, nor a release or a new take-over started, nor
    /// a release cancelled. Cleared if AWS does not show it closing within a
    /// day.
    #[serde(default)]
    pub closure_requested_at: Option<u64>,
    /// The Step Functions execution running this take-over (its ARN; none
    /// locally, or for a record from before it was kept): only its own
    /// failure step fails the take-over. An older execution a closure
    /// interrupted may still be waiting when the account is reopened and
    /// taken over again, and its timeout would fail the new take-over.
    #[serde(default)]
    pub execution: Option<String>,
    /// When `close` claimed the record to ask AWS Organizations to close the
    /// member: until AWS answers (its acceptance noted above, or its refusal
    /// audited), no release or take-over starts, and no other closure asks.
    /// Held [`crate::closure::CLAIM_HELD_SECS`] at most, should the run stop
    /// before AWS answers.
    #[serde(default)]
    pub closure_claimed_at: Option<u64>,
    /// Who asked for the record's closure or reopening, and why: a run again
    /// after its audit row was lost writes the row in their name, not the
    /// name of whoever ran it again.
    #[serde(default)]
    pub asked_by: Option<AskedBy>,
    /// When `reopen` recorded the account open again (AWS Support reopened
    /// it): a run of `reopen` again finds its audit row by it.
    #[serde(default)]
    pub reopened_at: Option<u64>,
    pub started_at: u64,
    pub updated_at: u64,
    /// Bumped by every write; a write must name the version it read.
    pub version: u64,
}

impl Rotation {
    /// A console take-over AWS's code mail has reached (its code handed
    /// over, or come unread), its change not yet confirmed and its wait not
    /// over. It still hears AWS's code mail: the engineer may ask AWS for a
    /// new code (the console's resend, or the change started again), and
    /// the one held is then stale (`code_mail::later_code`).
    pub fn hears_a_later_code(&self, now: u64) -> bool {
        self.mode == Mode::Console
            && matches!(self.phase, Phase::OtpReceived | Phase::EmailAccepted)
            && self.email_evidence.is_none()
            && self.expires_at.is_none_or(|at| now < at)
    }

    /// A console take-over that AWS's code mail moved on with no code read
    /// (`code_mail::code_came_unread`), its change not yet confirmed.
    pub fn moved_on_by_an_unread_code(&self) -> bool {
        self.mode == Mode::Console
            && self.phase == Phase::EmailAccepted
            && self.handed_over.is_none()
            && self.email_evidence.is_none()
    }

    /// Waiting for `kind` right now (not expired).
    pub fn is_waiting_for(&self, kind: Kind, now: u64) -> bool {
        self.waiting_for == Some(kind) && self.expires_at.is_none_or(|at| now < at)
    }

    /// Nothing waits any more: no mail, no workflow task, no deadline.
    pub fn end_wait(&mut self) {
        self.waiting_for = None;
        self.task_token = None;
        self.expires_at = None;
    }
}

/// A person's request that changed the record: who, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedBy {
    pub who: String,
    pub reason: String,
}

/// Why and where a take-over stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The phase the take-over was in.
    pub phase: Phase,
    pub reason: String,
}

/// One audit record. Appended, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub account_id: AccountId,
    /// Milliseconds since the epoch; with the account, the record's key.
    pub at: u64,
    /// Who: an engineer, or `rootmail` for automatic steps.
    pub actor: String,
    pub action: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub ticket: Option<String>,
    /// What happened, in a sentence; never a secret.
    pub detail: String,
}

/// What a root user has (from the audit task policy's view).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootCredentialReport {
    pub password: bool,
    pub access_keys: u32,
    pub signing_certificates: u32,
    pub mfa_devices: u32,
    /// When each MFA device was enabled (seconds since the epoch), where known.
    #[serde(default)]
    pub mfa_enabled_at: Vec<u64>,
}

impl RootCredentialReport {
    pub fn is_empty(&self) -> bool {
        !self.password
            && self.access_keys == 0
            && self.signing_certificates == 0
            && self.mfa_devices == 0
    }

    pub fn describe(&self) -> String {
        format!(
            "password {}, {} access key(s), {} signing certificate(s), {} MFA device(s)",
            if self.password { "set" } else { "none" },
            self.access_keys,
            self.signing_certificates,
            self.mfa_devices
        )
    }
}

/// What IAM's account summary says of an account's root user
/// (`GetAccountSummary`: `AccountMFAEnabled`, `AccountAccessKeysPresent`,
/// `AccountSigningCertificatesPresent`), read without a root session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSummary {
    pub mfa_enabled: bool,
    pub access_keys_present: bool,
    pub signing_certificates_present: bool,
}

impl RootSummary {
    /// What a console take-over must not leave, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        match (
            self.mfa_enabled,
            self.access_keys_present,
            self.signing_certificates_present,
        ) {
            (false, _, _) => Some("the root user has no MFA device enabled"),
            (_, true, _) => Some("the root user still has an access key"),
            (_, _, true) => Some("the root user still has a signing certificate"),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        format!(
            "MFA enabled {}, access keys {}, signing certificates {}",
            yes_no(self.mfa_enabled),
            yes_no(self.access_keys_present),
            yes_no(self.signing_certificates_present)
        )
    }
}

/// What the vault keeps per account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaultItem {
    Password,
    TotpSeed,
    /// A one-time code or link handed over from a mail; short-lived.
    Handover,
}

impl VaultItem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::TotpSeed => "totp-seed",
            Self::Handover => "handover",
        }
    }
}

/// Which version of a vault item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Generated, not yet in use (`AWSPENDING`).
    Pending,
    /// In use (`AWSCURRENT`).
    Current,
}
