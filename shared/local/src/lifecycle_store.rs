//! The credential lifecycle on this machine, so it can be tried without AWS:
//! - records under `<state>/lifecycle/` (rotations, an append-only audit file per
//!   account, accounts the lifecycle registered);
//! - a vault file per account, every value sealed with AES-256-GCM under the key
//!   in `ROOTMAIL_VAULT_KEY` (64 hex digits; `openssl rand -hex 32` makes one);
//! - a simulated AWS under `<state>/simulated-aws/`: the Account API's
//!   primary-email calls and the root user, which mails its codes the way AWS
//!   does, into `simulated-aws/mail/`, for the mail pipeline to read.

use crate::store::{LocalStore, StoreError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rootmail_domain::{Account, AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::notes::lifecycle_note;
use rootmail_lifecycle::{
    AccountApi, AccountRegistry, AuditEntry, AuditLog, EmailUpdateState, EmailUpdateStatus,
    LifecycleError, LifecyclePorts, LifecycleResult, MemberState, Notices, RootAccess,
    RootCredentialReport, RootSummary, Rotation, Rotations, Stage, TaskTokens, Vault, VaultItem,
};
use rootmail_pipeline::{PortError, apply_ticket_op};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use zeroize::Zeroizing;

/// The environment variable holding the local vault's key.
pub const VAULT_KEY_VARIABLE: &str = "ROOTMAIL_VAULT_KEY";

/// How long a simulated code stays valid: AWS's guide gives a member
/// account's root email change 24 hours to be completed with its code.
const SIMULATED_OTP_SECS: u64 = 24 * 60 * 60;

/// The key that seals the local vault.
pub struct VaultKey(Zeroizing<[u8; 32]>);

impl VaultKey {
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let mut key = Zeroizing::new([0u8; 32]);
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{VAULT_KEY_VARIABLE} must be 64 hex digits (32 bytes); make one with `openssl rand -hex 32`"
            ));
        }
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| format!("{VAULT_KEY_VARIABLE} is not hex"))?;
        }
        Ok(Self(key))
    }

    pub fn from_env() -> Result<Self, String> {
        match std::env::var(VAULT_KEY_VARIABLE) {
            Ok(text) => Self::from_hex(&text),
            Err(_) => Err(format!(
                "set {VAULT_KEY_VARIABLE} to the local vault's key (64 hex digits; `openssl rand -hex 32` makes one)"
            )),
        }
    }
}

/// A sealed value: a random 96-bit nonce and the AES-GCM ciphertext.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Sealed {
    nonce: String,
    data: String,
}

#[derive(Default, Serialize, Deserialize)]
struct VaultFile {
    /// `item/stage` -> sealed value.
    items: BTreeMap<String, Sealed>,
    #[serde(default)]
    deletion_scheduled_at: Option<u64>,
}

/// A member account as the simulated AWS knows it.
#[derive(Serialize, Deserialize)]
pub(crate) struct SimulatedAccount {
    pub(crate) primary_email: EmailAddress,
    #[serde(default)]
    pub(crate) pending: Option<PendingUpdate>,
    pub(crate) root: RootCredentialReport,
    /// The seed of an MFA device being assigned in the console (sealed).
    #[serde(default)]
    pub(crate) assigning_mfa: Option<Sealed>,
    /// The last root email change: accepted (or only pending), and when.
    #[serde(default)]
    pub(crate) last_update: Option<(bool, u64)>,
    /// When AWS Organizations was asked to close it.
    #[serde(default)]
    pub(crate) closure_asked_at: Option<u64>,
}

/// How long the simulated AWS Organizations shows a closing account
/// `PENDING_CLOSURE` before `CLOSED` (AWS: "wait a few minutes").
const SIMULATED_CLOSURE_SECS: u64 = 300;

#[derive(Serialize, Deserialize)]
pub(crate) struct PendingUpdate {
    email: EmailAddress,
    /// Sealed like the vault's values: codes do not sit in files in the clear.
    otp: Sealed,
    expires_at: u64,
}

/// The lifecycle's ports over a local state directory.
pub struct LocalLifecycle<'a> {
    store: &'a LocalStore,
    /// `None`: records can be read, the vault cannot.
    key: Option<VaultKey>,
}

fn port(e: StoreError) -> LifecycleError {
    LifecycleError::Port(PortError::permanent("lifecycle", e.to_string()))
}

fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> LifecycleError + '_ {
    move |e| {
        LifecycleError::Port(PortError::permanent(
            "lifecycle",
            format!("{}: {e}", path.display()),
        ))
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<'a> LocalLifecycle<'a> {
    pub fn new(store: &'a LocalStore, key: VaultKey) -> Self {
        Self {
            store,
            key: Some(key),
        }
    }

    /// For reading records and the audit trail, which hold no secret.
    pub fn without_vault(store: &'a LocalStore) -> Self {
        Self { store, key: None }
    }

    fn cipher(&self) -> LifecycleResult<Aes256Gcm> {
        let key = self.key.as_ref().ok_or_else(|| {
            LifecycleError::Refused(format!("set {VAULT_KEY_VARIABLE} to open the local vault"))
        })?;
        Aes256Gcm::new_from_slice(&key.0[..]).map_err(|_| sealing_error())
    }

    /// AES-256-GCM with `bound_to` as associated data: a sealed value opens
    /// only for what it was sealed for (an account's vault item), so one moved
    /// to another account or item is refused, not used.
    pub(crate) fn seal(&self, plain: &[u8], bound_to: &str) -> LifecycleResult<Sealed> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|e| {
            LifecycleError::Port(PortError::transient(
                "vault",
                format!("no randomness for a nonce: {e}"),
            ))
        })?;
        let cipher = self.cipher()?;
        let data = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| sealing_error())?;
        Ok(Sealed {
            nonce: STANDARD.encode(nonce),
            data: STANDARD.encode(data),
        })
    }

    pub(crate) fn open(&self, sealed: &Sealed, bound_to: &str) -> LifecycleResult<SecretValue> {
        let refused = || {
            LifecycleError::Refused(format!(
                "the local vault cannot be opened with this {VAULT_KEY_VARIABLE} (wrong key, or the file was changed or moved)"
            ))
        };
        let nonce = STANDARD.decode(&sealed.nonce).map_err(|_| refused())?;
        let data = STANDARD.decode(&sealed.data).map_err(|_| refused())?;
        if nonce.len() != 12 {
            return Err(refused());
        }
        let cipher = self.cipher()?;
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&nonce),
                    Payload {
                        msg: data.as_slice(),
                        aad: bound_to.as_bytes(),
                    },
                )
                .map_err(|_| refused())?,
        );
        let text = String::from_utf8(plain.to_vec()).map_err(|_| refused())?;
        Ok(SecretValue::new(text))
    }

    fn vault_path(&self, account: &AccountId) -> std::path::PathBuf {
        self.store
            .root()
            .join("lifecycle/vault")
            .join(format!("{account}.json"))
    }

    fn vault_file(&self, account: &AccountId) -> LifecycleResult<VaultFile> {
        Ok(self
            .store
            .read(&self.vault_path(account))
            .map_err(port)?
            .unwrap_or_default())
    }

    fn simulated_path(&self, account: &AccountId) -> std::path::PathBuf {
        self.store
            .root()
            .join("simulated-aws/accounts")
            .join(format!("{account}.json"))
    }

    /// The simulated member account, created on first use with an old password
    /// and one access key (what a customer's account typically has).
    pub(crate) fn simulated(&self, account: &AccountId) -> LifecycleResult<SimulatedAccount> {
        if let Some(found) = self
            .store
            .read(&self.simulated_path(account))
            .map_err(port)?
        {
            return Ok(found);
        }
        let primary_email = EmailAddress::parse(&format!("aws-{account}@customer.example"))
            .map_err(|e| LifecycleError::Refused(e.to_string()))?;
        Ok(SimulatedAccount {
            primary_email,
            pending: None,
            assigning_mfa: None,
            last_update: None,
            closure_asked_at: None,
            root: RootCredentialReport {
                password: true,
                access_keys: 1,
                signing_certificates: 0,
                mfa_devices: 0,
                mfa_enabled_at: Vec::new(),
            },
        })
    }

    pub(crate) fn save_simulated(
        &self,
        account: &AccountId,
        state: &SimulatedAccount,
    ) -> LifecycleResult<()> {
        self.store
            .write(&self.simulated_path(account), state)
            .map_err(port)
    }

    /// Plays the engineer's console steps on the simulated root user: a password
    /// set and a virtual MFA device registered.
    pub fn simulate_console_steps(&self, account: &AccountId, now: u64) -> LifecycleResult<()> {
        let mut state = self.simulated(account)?;
        state.root.password = true;
        state.root.mfa_devices += 1;
        state.root.mfa_enabled_at.push(now);
        self.save_simulated(account, &state)
    }

    /// The code mails the simulated AWS sent and nobody has read yet.
    pub fn simulated_mail_dir(&self) -> std::path::PathBuf {
        self.store.root().join("simulated-aws/mail")
    }

    /// Accounts the lifecycle registered (they extend the `--accounts` file).
    pub fn registered_accounts(&self) -> LifecycleResult<Vec<Account>> {
        self.store.read_all("lifecycle/accounts").map_err(port)
    }

    /// Every account's lifecycle record.
    pub fn all_rotations(&self) -> LifecycleResult<Vec<Rotation>> {
        self.store.read_all("lifecycle/rotations").map_err(port)
    }

    /// Every account's audit trail, in no particular order.
    pub fn all_audit_entries(&self) -> LifecycleResult<Vec<AuditEntry>> {
        let dir = self.store.root().join("lifecycle/audit");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let Some(account) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| AccountId::parse(s).ok())
            else {
                continue;
            };
            out.extend(self.audit_entries_of(&account)?);
        }
        Ok(out)
    }

    fn audit_entries_of(&self, account: &AccountId) -> LifecycleResult<Vec<AuditEntry>> {
        let path = self.audit_path(account);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path)(e)),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| {
                    LifecycleError::Port(PortError::permanent(
                        "audit",
                        format!("{}: {e}", path.display()),
                    ))
                })
            })
            .collect()
    }

    fn audit_path(&self, account: &AccountId) -> std::path::PathBuf {
        self.store
            .root()
            .join("lifecycle/audit")
            .join(format!("{account}.jsonl"))
    }
}

fn sealing_error() -> LifecycleError {
    LifecycleError::Port(PortError::permanent(
        "vault",
        "AES-GCM refused the key or nonce",
    ))
}

/// Six letters and digits, at least one of each (as AWS's codes look).
fn random_code() -> LifecycleResult<String> {
    loop {
        let code = random_chars()?;
        let digits = code.bytes().filter(u8::is_ascii_digit).count();
        if (1..6).contains(&digits) {
            return Ok(code);
        }
    }
}

fn random_chars() -> LifecycleResult<String> {
    const CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 6];
    getrandom::fill(&mut bytes)
        .map_err(|e| LifecycleError::Port(PortError::transient("simulated-aws", e.to_string())))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(CHARS[usize::from(b % 32)]))
        .collect())
}

/// The mail AWS sends to a new root address, with the headers SES adds on
/// receipt (verdicts and authentication that pass for AWS's sending domain).
pub fn root_email_code_mail(to: &EmailAddress, account: &AccountId, code: &str, at: u64) -> String {
    let text = format!(
        "Hello,\r\n\r\n\
         We received a request to change the email address of the root user of AWS\r\n\
         account {account} to this email address.\r\n\r\n\
         To verify this email address, enter the following verification code on the\r\n\
         AWS Management Console or pass it to the AcceptPrimaryEmailUpdate API:\r\n\r\n\
         \x20   Verification code: {code}\r\n\r\n\
         This code expires 24 hours after it was sent.\r\n\r\n\
         Sincerely,\r\nAmazon Web Services\r\n"
    );
    simulated_aws_mail(
        to,
        ("verify.signin.aws", "no-reply@verify.signin.aws"),
        "Verify your new AWS account root user email address",
        &text,
        at,
    )
}

/// A mail from AWS (`from`: its signing domain and address) with the headers
/// SES adds on receipt: verdicts and authentication that pass for AWS.
pub fn simulated_aws_mail(
    to: &EmailAddress,
    (domain, from): (&str, &str),
    subject: &str,
    text: &str,
    at: u64,
) -> String {
    let hash = rootmail_domain::ContentHash::of(format!("{to}{subject}{text}{at}").as_bytes());
    let id = &hash.as_str()[..32];
    format!(
        "Return-Path: <{id}@amazonses.com>\r\n\
         Received: from a8-31.smtp-out.amazonses.com (a8-31.smtp-out.amazonses.com [54.240.8.31])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id {id}\r\n for {to};\r\n {date}\r\n\
         X-SES-Spam-Verdict: PASS\r\n\
         X-SES-Virus-Verdict: PASS\r\n\
         Received-SPF: pass (spf=pass) client-ip=54.240.8.31; envelope-from={id}@amazonses.com;\r\n\
         Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=54.240.8.31; envelope-from={id}@amazonses.com;\r\n dkim=pass header.i=@{domain};\r\n dkim=pass header.i=@amazonses.com;\r\n dmarc=pass header.from={domain};\r\n\
         Date: {date}\r\n\
         From: Amazon Web Services <{from}>\r\n\
         To: {to}\r\n\
         Message-ID: <{id}@email.amazonses.com>\r\n\
         Subject: {subject}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8\r\n\r\n\
         {text}",
        date = rootmail_domain::dates::rfc2822(at),
    )
}

impl AccountApi for LocalLifecycle<'_> {
    async fn start_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
    ) -> LifecycleResult<()> {
        self.request_email_change(account, email, now_secs())
    }

    async fn accept_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        otp: &SecretValue,
    ) -> LifecycleResult<()> {
        self.accept_email_change(account, email, otp, now_secs())
    }

    async fn primary_email(&self, account: &AccountId) -> LifecycleResult<EmailAddress> {
        Ok(self.simulated(account)?.primary_email)
    }

    async fn email_update_status(
        &self,
        account: &AccountId,
    ) -> LifecycleResult<Option<EmailUpdateStatus>> {
        let last = self.simulated(account)?.last_update;
        Ok(last.map(|(accepted, at)| EmailUpdateStatus {
            state: match accepted {
                true => EmailUpdateState::Accepted,
                false => EmailUpdateState::Pending,
            },
            updated_at: Some(at),
        }))
    }

    /// Every account the simulated AWS knows is a member of its organization.
    async fn member_state(&self, account: &AccountId) -> LifecycleResult<Option<MemberState>> {
        let state = match self.simulated(account)?.closure_asked_at {
            None => MemberState::Active,
            Some(at) if now_secs() < at + SIMULATED_CLOSURE_SECS => MemberState::PendingClosure,
            Some(_) => MemberState::Closed,
        };
        Ok(Some(state))
    }

    async fn close_member(&self, account: &AccountId) -> LifecycleResult<()> {
        self.close_simulated(account, now_secs())
    }
}

/// The simulated AWS's root email change, the same whether the Account API or
/// a person in the console asks for it.
impl LocalLifecycle<'_> {
    /// The account closes (`CloseAccount`, or its root user in the console);
    /// once asked, asking again changes nothing.
    pub(crate) fn close_simulated(&self, account: &AccountId, now: u64) -> LifecycleResult<()> {
        let mut state = self.simulated(account)?;
        if state.closure_asked_at.is_none() {
            state.closure_asked_at = Some(now);
            self.save_simulated(account, &state)?;
        }
        Ok(())
    }

    /// AWS Support reopens a closed account: it is active again.
    pub(crate) fn reopen_simulated(&self, account: &AccountId) -> LifecycleResult<()> {
        let mut state = self.simulated(account)?;
        if state.closure_asked_at.take().is_none() {
            return Err(LifecycleError::Refused(format!(
                "the simulated AWS has not closed account {account}"
            )));
        }
        self.save_simulated(account, &state)
    }

    /// A change to `email` is pending; AWS mails its code there.
    pub(crate) fn request_email_change(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        now: u64,
    ) -> LifecycleResult<()> {
        let others: Vec<SimulatedAccount> = self
            .store
            .read_all("simulated-aws/accounts")
            .map_err(port)?;
        if others.iter().any(|a| a.primary_email == *email) {
            return Err(LifecycleError::Refused(format!(
                "AWS refused (ConflictException): {email} is already an account's root email"
            )));
        }
        let mut state = self.simulated(account)?;
        let code = random_code()?;
        state.pending = Some(PendingUpdate {
            email: email.clone(),
            otp: self.seal(code.as_bytes(), &simulated_otp_binding(account))?,
            expires_at: now + SIMULATED_OTP_SECS,
        });
        state.last_update = Some((false, now));
        self.save_simulated(account, &state)?;
        let mail = root_email_code_mail(email, account, &code, now);
        self.send_simulated_mail(account, "root-email-code", &mail, now)
    }

    /// Writes a mail the simulated AWS sends, for the pipeline to read.
    pub(crate) fn send_simulated_mail(
        &self,
        account: &AccountId,
        what: &str,
        mail: &str,
        now: u64,
    ) -> LifecycleResult<()> {
        let path = self
            .simulated_mail_dir()
            .join(format!("{now}-{account}-{what}.eml"));
        crate::store::write_atomically(&path, mail.as_bytes()).map_err(port)
    }

    /// The code for the pending change: right and in time, the root email changes.
    pub(crate) fn accept_email_change(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        otp: &SecretValue,
        now: u64,
    ) -> LifecycleResult<()> {
        let mut state = self.simulated(account)?;
        let Some(pending) = state.pending.take() else {
            return Err(LifecycleError::Refused(format!(
                "AWS refused: no root email change is pending for account {account}"
            )));
        };
        let expected = self.open(&pending.otp, &simulated_otp_binding(account))?;
        let matches = pending.email == *email && expected.expose() == otp.expose().trim();
        if !matches || now >= pending.expires_at {
            return Err(LifecycleError::Refused(format!(
                "AWS refused the code for account {account}: it is wrong or expired"
            )));
        }
        state.primary_email = email.clone();
        state.last_update = Some((true, now));
        self.save_simulated(account, &state)
    }
}

impl RootAccess for LocalLifecycle<'_> {
    async fn audit(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        Ok(self.simulated(account)?.root)
    }

    async fn delete_all(&self, account: &AccountId) -> LifecycleResult<RootCredentialReport> {
        let mut state = self.simulated(account)?;
        let deleted = std::mem::take(&mut state.root);
        self.save_simulated(account, &state)?;
        Ok(deleted)
    }

    /// The simulated root user has no password until the engineer sets one
    /// (`simulate console`); recovery needs nothing more here.
    async fn allow_password_recovery(&self, account: &AccountId) -> LifecycleResult<()> {
        self.simulated(account).map(|_| ())
    }

    /// The simulated AWS answers as a provider's audit role in every
    /// account would: what its root user has.
    async fn summary(&self, account: &AccountId) -> LifecycleResult<Option<RootSummary>> {
        let root = self.simulated(account)?.root;
        Ok(Some(RootSummary {
            mfa_enabled: root.mfa_devices > 0,
            access_keys_present: root.access_keys > 0,
            signing_certificates_present: root.signing_certificates > 0,
        }))
    }
}

/// What a vault value is sealed for: its account and item (not its stage, so
/// promoting a pending value moves it as it is).
fn vault_binding(account: &AccountId, item: VaultItem) -> String {
    format!("rootmail-local-vault/{account}/{}", item.as_str())
}

fn simulated_otp_binding(account: &AccountId) -> String {
    format!("rootmail-simulated-aws/{account}/root-email-code")
}

fn vault_slot(item: VaultItem, stage: Stage) -> String {
    let stage = match stage {
        Stage::Pending => "pending",
        Stage::Current => "current",
    };
    format!("{}/{stage}", item.as_str())
}

impl Vault for LocalLifecycle<'_> {
    async fn put(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
        value: &SecretValue,
    ) -> LifecycleResult<String> {
        let mut file = self.vault_file(account)?;
        let slot = vault_slot(item, stage);
        file.items.insert(
            slot.clone(),
            self.seal(value.expose().as_bytes(), &vault_binding(account, item))?,
        );
        self.store
            .write(&self.vault_path(account), &file)
            .map_err(port)?;
        Ok(format!("local-vault:{account}/{slot}"))
    }

    async fn get(
        &self,
        account: &AccountId,
        item: VaultItem,
        stage: Stage,
    ) -> LifecycleResult<Option<SecretValue>> {
        let file = self.vault_file(account)?;
        file.items
            .get(&vault_slot(item, stage))
            .map(|sealed| self.open(sealed, &vault_binding(account, item)))
            .transpose()
    }

    /// The local vault keeps one version a slot: `reference` names the
    /// slot, and one process writes it (no handover runs beside another).
    async fn get_version(
        &self,
        account: &AccountId,
        item: VaultItem,
        reference: &str,
    ) -> LifecycleResult<Option<SecretValue>> {
        let slot = reference.strip_prefix(&format!("local-vault:{account}/"));
        let stage = [Stage::Current, Stage::Pending]
            .into_iter()
            .find(|stage| slot == Some(vault_slot(item, *stage).as_str()))
            .ok_or_else(|| {
                LifecycleError::Refused(format!(
                    "{reference:?} names no slot of the vault's {} of account {account}",
                    item.as_str()
                ))
            })?;
        Vault::get(self, account, item, stage).await
    }

    async fn promote(&self, account: &AccountId, item: VaultItem) -> LifecycleResult<()> {
        let mut file = self.vault_file(account)?;
        let Some(pending) = file.items.remove(&vault_slot(item, Stage::Pending)) else {
            return Err(LifecycleError::Refused(format!(
                "no pending {} in the vault for account {account}",
                item.as_str()
            )));
        };
        file.items.insert(vault_slot(item, Stage::Current), pending);
        self.store
            .write(&self.vault_path(account), &file)
            .map_err(port)
    }

    /// As the AWS vault does it: an item never stored is skipped (AWS would
    /// deny deleting it, so the AWS vault describes each first); the rest
    /// are scheduled. Nothing stored, nothing scheduled.
    async fn schedule_deletion(
        &self,
        account: &AccountId,
        items: &[VaultItem],
    ) -> LifecycleResult<()> {
        let mut file = self.vault_file(account)?;
        let stored = |item: &VaultItem| {
            (file.items.keys()).any(|slot| slot.split('/').next() == Some(item.as_str()))
        };
        if !items.iter().any(stored) {
            return Ok(());
        }
        file.deletion_scheduled_at.get_or_insert(now_secs());
        self.store
            .write(&self.vault_path(account), &file)
            .map_err(port)
    }
}

impl Rotations for LocalLifecycle<'_> {
    async fn get(&self, account: &AccountId) -> LifecycleResult<Option<Rotation>> {
        let path = self
            .store
            .root()
            .join("lifecycle/rotations")
            .join(format!("{account}.json"));
        self.store.read(&path).map_err(port)
    }

    async fn put(&self, rotation: &Rotation, expected: Option<u64>) -> LifecycleResult<()> {
        let stored = Rotations::get(self, &rotation.account_id).await?;
        if stored.as_ref().map(|r| r.version) != expected {
            return Err(LifecycleError::changed_meanwhile(&rotation.account_id));
        }
        let path = self
            .store
            .root()
            .join("lifecycle/rotations")
            .join(format!("{}.json", rotation.account_id));
        self.store.write(&path, rotation).map_err(port)
    }
}

impl AuditLog for LocalLifecycle<'_> {
    async fn append(&self, entry: &AuditEntry) -> LifecycleResult<()> {
        let path = self.audit_path(&entry.account_id);
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| LifecycleError::Port(PortError::permanent("audit", e.to_string())))?;
        line.push(b'\n');
        // Opened for appending only: earlier records are never rewritten.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(&line).map_err(io(&path))?;
        file.sync_data().map_err(io(&path))
    }

    async fn entries(&self, account: &AccountId) -> LifecycleResult<Vec<AuditEntry>> {
        self.audit_entries_of(account)
    }
}

impl AccountRegistry for LocalLifecycle<'_> {
    async fn by_id(&self, account: &AccountId) -> LifecycleResult<Option<Account>> {
        let rows = self.registered_accounts()?;
        let of_account = rows.iter().filter(|a| a.account_id == *account);
        Ok(rootmail_domain::directory::current_row(of_account).cloned())
    }

    async fn by_email(&self, email: &EmailAddress) -> LifecycleResult<Option<Account>> {
        self.store
            .read(&self.store.keyed_path("lifecycle/accounts", email.as_str()))
            .map_err(port)
    }

    async fn save(&self, account: &Account) -> LifecycleResult<()> {
        self.store
            .write(
                &self
                    .store
                    .keyed_path("lifecycle/accounts", account.root_email.as_str()),
                account,
            )
            .map_err(port)
    }

    async fn forget(&self, email: &EmailAddress) -> LifecycleResult<()> {
        let path = self.store.keyed_path("lifecycle/accounts", email.as_str());
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

impl TaskTokens for LocalLifecycle<'_> {
    async fn succeed(&self, token: &str, _output: &serde_json::Value) -> LifecycleResult<()> {
        // In-process: the command that started the step continues by itself.
        tracing::debug!(token, "local task answered");
        Ok(())
    }
}

impl Notices for LocalLifecycle<'_> {
    async fn ticket_note(
        &self,
        account: &AccountId,
        customer: &str,
        text: &str,
    ) -> LifecycleResult<()> {
        let now = now_secs();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let op = lifecycle_note(account, customer, text, now_ms);
        let store = self.store;
        let ports = store.writer_ports(store);
        apply_ticket_op(ports, &op, now).await?;
        Ok(())
    }

    async fn email(&self, subject: &str, text: &str) -> LifecycleResult<()> {
        let now = now_secs();
        let hash = rootmail_domain::ContentHash::of(format!("{now}{subject}{text}").as_bytes());
        let id = &hash.as_str()[..12];
        let path = self
            .store
            .root()
            .join("lifecycle/notices")
            .join(format!("{now}-{id}.txt"));
        crate::store::write_atomically(&path, format!("Subject: {subject}\n\n{text}\n").as_bytes())
            .map_err(port)
    }
}

impl LifecyclePorts for LocalLifecycle<'_> {
    type Api = Self;
    type Root = Self;
    type Vault = Self;
    type Rotations = Self;
    type Audit = Self;
    type Registry = Self;
    type Tokens = Self;
    type Notices = Self;
    fn api(&self) -> &Self {
        self
    }
    fn root(&self) -> &Self {
        self
    }
    fn vault(&self) -> &Self {
        self
    }
    fn rotations(&self) -> &Self {
        self
    }
    fn audit(&self) -> &Self {
        self
    }
    fn registry(&self) -> &Self {
        self
    }
    fn tokens(&self) -> &Self {
        self
    }
    fn notices(&self) -> &Self {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed value copied to another account's vault, or to another item,
    /// does not open there (it is bound to its account and item).
    #[test]
    fn a_vault_value_opens_only_for_its_account_and_item() {
        pollster::block_on(vault_value_binding());
    }

    async fn vault_value_binding() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(dir.path()).unwrap();
        let vault = LocalLifecycle::new(&store, VaultKey::from_hex(&"ab".repeat(32)).unwrap());
        let (a, b) = (
            AccountId::parse("111122223333").unwrap(),
            AccountId::parse("444455556666").unwrap(),
        );
        let secret = SecretValue::new("hunter2-Password!".into());
        Vault::put(&vault, &a, VaultItem::Password, Stage::Current, &secret)
            .await
            .unwrap();
        let got = Vault::get(&vault, &a, VaultItem::Password, Stage::Current).await;
        assert_eq!(got.unwrap().unwrap().expose(), secret.expose());

        let sealed = vault
            .vault_file(&a)
            .unwrap()
            .items
            .remove("password/current")
            .unwrap();
        let mut moved = VaultFile::default();
        moved
            .items
            .insert("password/current".into(), sealed.clone());
        moved.items.insert("totp-seed/current".into(), sealed);
        store.write(&vault.vault_path(&b), &moved).unwrap();
        for item in [VaultItem::Password, VaultItem::TotpSeed] {
            let other = Vault::get(&vault, &b, item, Stage::Current).await;
            assert!(
                matches!(other, Err(LifecycleError::Refused(_))),
                "{other:?}"
            );
        }
        let copy = Vault::get(&vault, &a, VaultItem::TotpSeed, Stage::Current).await;
        assert!(copy.unwrap().is_none());
    }

    #[test]
    fn the_vault_key_must_be_32_hex_bytes() {
        assert!(VaultKey::from_hex(&"ab".repeat(32)).is_ok());
        let error = VaultKey::from_hex("short").err().unwrap();
        assert!(error.contains("openssl rand -hex 32"));
    }
}
