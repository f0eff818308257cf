//! The steps a person does in the AWS console, and how rootmail follows them.
//!
//! Payer (management) accounts of other organizations and standalone accounts
//! have no Account API and no `sts:AssumeRoot` for us: their root email,
//! password and MFA change only in the console, signed in as the root user
//! (design.md, "Payer accounts"). A console take-over (`Mode::Console`) runs:
//!
//! 1. [`open_email_change`]: the ticket tells the engineer (or the customer on
//!    a shared call) to change the root email to our new address. AWS mails a
//!    verification code there; the pipeline hands it to the waiting rotation
//!    under the trust rules of every handoff.
//! 2. [`read_code`]: the engineer reads it, audited, and enters it in the console.
//!    Where the mail passed those rules but no rule read one code in it,
//!    [`code_came_unread`](crate::code_mail::code_came_unread) moves the take-over on with nothing vaulted: the
//!    engineer reads the code in the original mail. Until the change is
//!    confirmed, a later code mail (the engineer asked AWS for a new code)
//!    replaces the code held, read or unread ([`crate::code_mail`]).
//! 3. The change is confirmed by evidence: a verified AWS mail delivered to the
//!    new address alone ([`witness`]), or failing that the engineer's
//!    [`attest_email_change`], audited as an attestation.
//! 4. [`prepare_vault`]: a generated password, pending in the vault; the
//!    engineer sets it (a reset link AWS mails to our address goes to the vault).
//! 5. [`enroll_mfa`] (every vaulted mode): AWS generates the virtual MFA seed;
//!    the engineer pastes it into rootmail, which vaults it and answers with the
//!    two consecutive codes the console asks for. AWS's "MFA activated" mail is
//!    recorded as evidence.
//! 6. `complete_engineer_task` (in `steps`) makes the pending secrets current.

use crate::credentials::{base32_decode, new_root_password, totp_code};
use crate::model::{Mode, Phase, Rotation, Stage, VaultItem};
use crate::ports::{LifecycleError, LifecyclePorts, LifecycleResult, Vault};
use crate::steps::{
    AccessRequest, OTP_WAIT_SECS, SYSTEM_ACTOR, StepOutput, advance, answer_saved_task,
    audit_secret_read, expect_phase, fail_expired, handed_over_secret, record, refused,
    renew_task_token, rotation_of, save_handover,
};
use rootmail_domain::{AccountId, EmailAddress, Kind, SecretValue};
use rootmail_pipeline::{Evidence, PortError};

fn expect_console(rotation: &Rotation, doing: &str) -> LifecycleResult<()> {
    if rotation.mode == Mode::Console {
        return Ok(());
    }
    refused(format!(
        "cannot {doing} for account {}: it is taken over {} through the Account API, not the console",
        rotation.account_id,
        rotation.mode.as_str()
    ))
}

/// Console take-over, step 2: the rotation waits for AWS's code mail at our
/// new address, and the ticket says what to do in the console. In AWS a
/// `waitForTaskToken` task; the token is answered when the change is confirmed.
pub async fn open_email_change<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    task_token: Option<&str>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let doing = "open the console email change";
    let mut rotation = rotation_of(p, account).await?;
    // Run again by the workflow once it saved: the change goes on, for the
    // new attempt's token (its task waits until the change is confirmed).
    let waiting = [Phase::AwaitingOtp, Phase::OtpReceived, Phase::EmailAccepted];
    if let (true, Some(token), Mode::Console) =
        (waiting.contains(&rotation.phase), task_token, rotation.mode)
    {
        return renew_task_token(p, &mut rotation, token, now).await;
    }
    expect_phase(&rotation, &[Phase::Registered], doing)?;
    expect_console(&rotation, doing)?;
    rotation.phase = Phase::AwaitingOtp;
    rotation.waiting_for = Some(Kind::RootEmailOtp);
    rotation.task_token = task_token.map(str::to_string);
    rotation.expires_at = Some(now + OTP_WAIT_SECS);
    let detail = format!(
        "waiting for the root email to be changed in the console. Whoever holds the root user today \
         (our engineer, or the customer on a shared call): sign in as the root user at \
         https://console.aws.amazon.com/, open Account, and next to Account details choose Actions, \
         Update email address and password (older consoles: Edit beside the account name, email \
         address and password), choose Edit on the email address, enter {target} and the current \
         password, and save. AWS mails a verification code to {target}: rootmail keeps it; read it \
         with `rootmail rotation code --account {account} --reason ... --ticket ...`, enter it in \
         the console and choose Confirm (if the code has expired or the console refuses it, ask \
         AWS there for a new one and read it again: the latest code mail replaces the one held \
         until the change is confirmed). If this is its organization's management account, AWS \
         Organizations then shows the new address as unverified (until it is verified, invitations \
         the organization sends cannot be accepted): resend the verification request in the AWS \
         Organizations console; it reaches {target} as an organizations.verification ticket with \
         its link redacted; open the original its internal note names and follow the link within \
         24 hours",
        target = rotation.target_email
    );
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "console email change opened", detail),
    )
    .await
}

/// What the engineer reads to type into the console. Never serialized.
#[derive(Debug)]
pub struct CodeGrant {
    pub root_email: EmailAddress,
    pub code: SecretValue,
}

/// Console take-over, step 3: the engineer reads the code AWS mailed to our
/// address, audited like break-glass access (who, why, which ticket). The
/// rotation then waits for evidence that the change took effect.
pub async fn read_code<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    now: u64,
) -> LifecycleResult<CodeGrant> {
    let account = &request.account_id;
    crate::steps::require_access_fields(request, "reading a verification code")?;
    let mut rotation = rotation_of(p, account).await?;
    expect_console(&rotation, "read the verification code")?;
    expect_code_arrived(account, &rotation)?;
    let detail = format!(
        "{} read AWS's verification code for the root email change to {}",
        request.who, rotation.target_email
    );
    audit_secret_read(p, request, "verification code read", detail, now).await?;
    let Some(code) = handed_over_secret(p, &rotation).await? else {
        return refused(format!(
            "the code for account {account} is not in the vault"
        ));
    };
    if rotation.phase == Phase::OtpReceived {
        wait_for_evidence(p, request, &mut rotation, now).await?;
    }
    Ok(CodeGrant {
        root_email: rotation.target_email.clone(),
        code,
    })
}

/// The code can be read once AWS's mail has brought it, and again until the
/// change is confirmed; a rotation still waiting for it says what to do first.
/// Refused before anything is audited or read where this rotation was handed
/// no code (its mail came unread): the vault may still hold an earlier
/// take-over's secret, which is not this change's code.
fn expect_code_arrived(account: &AccountId, rotation: &Rotation) -> LifecycleResult<()> {
    match rotation.phase {
        Phase::OtpReceived | Phase::EmailAccepted if rotation.handed_over.is_none() => {
            refused(format!(
                "no rule read AWS's code for account {account} in its mail, so none is in the vault: read it in the original mail (its ticket names it) and enter it in the console"
            ))
        }
        Phase::OtpReceived | Phase::EmailAccepted => Ok(()),
        Phase::AwaitingOtp => refused(format!(
            "AWS's code for account {account} has not arrived at {} yet: change the root email in the console first",
            rotation.target_email
        )),
        phase => refused(format!(
            "account {account} waits for no verification code ({})",
            phase.as_str()
        )),
    }
}

/// The code is in the engineer's hands: the rotation now waits for AWS's mail
/// to the new address as evidence that the change took effect.
async fn wait_for_evidence<P: LifecyclePorts>(
    p: &P,
    request: &AccessRequest,
    rotation: &mut Rotation,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let account = &request.account_id;
    await_change_confirmation(rotation, now);
    let detail = format!(
        "the code was given to {}; waiting for AWS's mail to {} as evidence that the change took effect \
         (or `rootmail rotation attest --account {account} --statement ...`)",
        request.who, rotation.target_email
    );
    advance(
        p,
        rotation,
        now,
        (&request.who, "waiting for evidence", detail),
    )
    .await
}

/// A verified AWS mail to a rotation's address that it waits for as evidence
/// (see [`rootmail_domain::handoff::is_evidence_of`]): a console email change
/// is confirmed; an MFA activation is recorded. `false`: nothing waited.
pub async fn witness<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    evidence: &Evidence,
    now: u64,
) -> LifecycleResult<bool> {
    let mut rotation = rotation_of(p, account).await?;
    if evidence.recipient != rotation.target_email {
        return Ok(false);
    }
    let message = evidence.message_id.as_deref().unwrap_or("(no Message-ID)");
    match (evidence.awaited, rotation.phase) {
        // Confirmed before, but the answer to the workflow failed: give it.
        (Kind::ContactChange, Phase::EmailAccepted)
            if rotation.mode == Mode::Console
                && rotation.email_evidence.is_some()
                && rotation.task_token.is_some() =>
        {
            answer_saved_task(p, &mut rotation, now).await?;
            Ok(true)
        }
        (Kind::ContactChange, Phase::EmailAccepted)
            if rotation.mode == Mode::Console && rotation.email_evidence.is_none() =>
        {
            rotation.email_evidence = Some(format!("AWS mail {message}"));
            let detail = format!(
                "root email is now {}: AWS's verified {} mail {message} was delivered to it",
                rotation.target_email, evidence.kind
            );
            confirm(
                p,
                &mut rotation,
                SYSTEM_ACTOR,
                "root email change confirmed by AWS mail",
                detail,
                now,
            )
            .await?;
            Ok(true)
        }
        (Kind::MfaChange, Phase::AwaitingEngineer | Phase::Secured | Phase::Active) => {
            if rotation.mfa_confirmed_at.is_some() {
                return Ok(false);
            }
            rotation.mfa_confirmed_at = Some(now);
            let detail = format!(
                "AWS's verified MFA notice {message} reached {}: an MFA device was activated for the root user",
                rotation.target_email
            );
            let entry = (SYSTEM_ACTOR, "MFA activation confirmed by AWS mail", detail);
            save_evidence(p, &mut rotation, now, entry).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The code is with the person at the console: the rotation waits for
/// evidence that the change took effect.
pub(crate) fn await_change_confirmation(rotation: &mut Rotation, now: u64) {
    rotation.phase = Phase::EmailAccepted;
    rotation.waiting_for = Some(Kind::ContactChange);
    // The workflow's wait began when the change was opened, not now.
    rotation.expires_at = rotation.expires_at.or(Some(now + OTP_WAIT_SECS));
}

/// The engineer's word, when no AWS mail has come: the console shows the new
/// root email. Recorded as an attestation, with who said it and why.
pub async fn attest_email_change<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    statement: &str,
    now: u64,
) -> LifecycleResult<StepOutput> {
    if statement.trim().is_empty() {
        return refused("an attestation needs a statement of what you saw".into());
    }
    let mut rotation = rotation_of(p, account).await?;
    expect_console(&rotation, "attest the root email change")?;
    expect_phase(
        &rotation,
        &[Phase::EmailAccepted],
        "attest the root email change (read the code and enter it in the console first)",
    )?;
    // The workflow stopped waiting then.
    if let Some(at) = rotation.expires_at.filter(|at| now >= *at) {
        let why = format!("account {account}'s wait for the root email change ended at {at}");
        return fail_expired(p, account, why, now).await;
    }
    if rotation.email_evidence.is_some() {
        // Confirmed, but the workflow may not have heard: tell it now.
        if rotation.task_token.is_some() {
            answer_saved_task(p, &mut rotation, now).await?;
            return Ok(StepOutput::from(&rotation));
        }
        return refused(format!(
            "account {account}'s root email change is already confirmed"
        ));
    }
    rotation.email_evidence = Some(format!("attested by {who}"));
    let detail = format!(
        "{who} attests that the console shows {} as the root email: {}",
        rotation.target_email,
        statement.trim()
    );
    confirm(
        p,
        &mut rotation,
        who,
        "root email change attested",
        detail,
        now,
    )
    .await?;
    Ok(StepOutput::from(&rotation))
}

/// Evidence recorded, and the waiting workflow (if any) resumes: its
/// `confirm_email_update` step makes the change final (the directory forgets
/// the previous address there). Written as a handover writes: the mail
/// pipeline may change no more of a record.
async fn confirm<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    who: &str,
    action: &str,
    detail: String,
    now: u64,
) -> LifecycleResult<()> {
    // The wait ends with the answer (`answer_saved_task`): until then a
    // redelivered evidence mail still reaches `witness`, which answers again.
    save_evidence(p, rotation, now, (who, action, detail)).await?;
    answer_saved_task(p, rotation, now).await
}

/// Saves what evidence changes (the handover's fields), then audits it.
pub(crate) async fn save_evidence<P: LifecyclePorts>(
    p: &P,
    rotation: &mut Rotation,
    now: u64,
    (who, action, detail): (&str, &str, String),
) -> LifecycleResult<()> {
    save_handover(p, rotation, now).await?;
    record(
        p,
        &rotation.account_id,
        &rotation.customer,
        now,
        (who, action, None, None, detail),
    )
    .await
}

/// Console take-over, step 4 (a `waitForTaskToken` task in AWS): a generated
/// password, pending in the vault, and the engineer's console steps on the
/// ticket. Nothing can delete what the previous owner left without
/// AssumeRoot: the engineer does it in the console, and says so on completion.
pub async fn prepare_vault<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    task_token: Option<&str>,
    now: u64,
) -> LifecycleResult<StepOutput> {
    let mut rotation = rotation_of(p, account).await?;
    if let (Phase::AwaitingEngineer, Some(token)) = (rotation.phase, task_token) {
        expect_console(&rotation, "prepare the console vault")?;
        // Run again once it saved: the password is pending already.
        return renew_task_token(p, &mut rotation, token, now).await;
    }
    expect_phase(&rotation, &[Phase::EmailConfirmed], "prepare the vault")?;
    expect_console(&rotation, "prepare the console vault")?;
    let password = new_root_password().map_err(random_failed)?;
    let password_ref = p
        .vault()
        .put(account, VaultItem::Password, Stage::Pending, &password)
        .await?;
    rotation.phase = Phase::AwaitingEngineer;
    rotation.task_token = task_token.map(str::to_string);
    rotation.waiting_for = Some(Kind::PasswordReset);
    rotation.expires_at = Some(now + crate::steps::ENGINEER_WAIT_SECS);
    rotation.engineer_since = Some(now);
    let detail = format!(
        "a new root password is pending ({password_ref}). An engineer now, signed in to the console \
         as the root user {email}: (1) reads the pending password with `rootmail creds get --account \
         {account} --reason ... --ticket ...` and sets it (Account > Actions > Update email \
         address and password > Password: AWS asks for the current password; without it, \
         \"Forgot password\" on the sign-in page: rootmail keeps the link AWS mails); (2) in \
         Security credentials, deletes every root access key and signing certificate and removes \
         the MFA devices rootmail did not enroll; (3) chooses Assign MFA device > Authenticator app > Show \
         secret key, pipes the key into `rootmail mfa enroll --account {account}` and types the two \
         codes it prints; (4) runs `rootmail rotation complete --account {account} --attest \"...\"`",
        email = rotation.target_email
    );
    advance(
        p,
        &mut rotation,
        now,
        (SYSTEM_ACTOR, "engineer task opened", detail),
    )
    .await
}

/// A failure of the system's randomness: worth a retry.
pub(crate) fn random_failed(e: crate::credentials::RandomError) -> LifecycleError {
    LifecycleError::Port(PortError::transient("random", e.to_string()))
}

/// The shortest and longest base32 seed taken: AWS's virtual MFA seeds are
/// far longer than 16 characters (80 bits); a shorter paste is a mistake.
const SEED_CHARS: std::ops::RangeInclusive<usize> = 16..=128;

/// A secret key as the console shows it, checked: base32 letters and digits
/// (spaces and `=` padding ignored, any case), of a plausible length.
pub fn parse_mfa_secret_key(text: &str) -> LifecycleResult<SecretValue> {
    let key: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if key.is_empty() {
        return refused("no MFA secret key on standard input".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return refused(
            "that is not an MFA secret key: the console's key is base32 (letters A-Z and digits 2-7); \
             choose \"Show secret key\", not the QR code"
                .into(),
        );
    }
    if !SEED_CHARS.contains(&key.len()) {
        return refused(format!(
            "that MFA secret key has {} characters; the console's key has between {} and {}",
            key.len(),
            SEED_CHARS.start(),
            SEED_CHARS.end()
        ));
    }
    if base32_decode(&key).is_none() {
        return refused("that MFA secret key does not decode as base32".into());
    }
    Ok(SecretValue::new(key))
}

/// The two consecutive codes the console asks for when assigning a device.
#[derive(Debug)]
pub struct EnrolledCodes {
    pub first: SecretValue,
    pub second: SecretValue,
}

/// Vaulted and console take-overs: the seed AWS generated for the root user's
/// virtual MFA device, pasted by the engineer, goes to the vault (pending until
/// the take-over completes). Answers the two consecutive codes the console
/// wants. Enrolling again replaces the pending seed (the console started
/// over), until AWS has confirmed a device activated: then only
/// [`replace_mfa`] does.
pub async fn enroll_mfa<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    secret_key: &str,
    now: u64,
) -> LifecycleResult<EnrolledCodes> {
    enroll(p, account, who, secret_key, false, now).await
}

/// [`enroll_mfa`] after AWS confirmed the device enrolled before: the
/// engineer removed it in the console and assigned another, whose seed
/// replaces it (its activation is awaited again).
pub async fn replace_mfa<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    secret_key: &str,
    now: u64,
) -> LifecycleResult<EnrolledCodes> {
    enroll(p, account, who, secret_key, true, now).await
}

async fn enroll<P: LifecyclePorts>(
    p: &P,
    account: &AccountId,
    who: &str,
    secret_key: &str,
    replace: bool,
    now: u64,
) -> LifecycleResult<EnrolledCodes> {
    let mut rotation = rotation_of(p, account).await?;
    if let (Some(_), false) = (rotation.mfa_confirmed_at, replace) {
        // A second key by mistake would replace the seed of the device AWS
        // has, and break-glass codes would stop matching it.
        return refused(format!(
            "AWS confirmed the MFA device enrolled for account {account} is active: a new \
             secret key would replace its seed in the vault. Add a second device in the \
             console if you need one (the first keeps working); if you removed that device, \
             enroll the new one with `rootmail mfa enroll --replace`"
        ));
    }
    if rotation.mode == Mode::Rootless {
        return refused(format!(
            "account {account} is taken over rootless: its root user gets no MFA device"
        ));
    }
    expect_phase(
        &rotation,
        &[Phase::AwaitingEngineer],
        "enroll an MFA device",
    )?;
    let seed = parse_mfa_secret_key(secret_key)?;
    let reference = p
        .vault()
        .put(account, VaultItem::TotpSeed, Stage::Pending, &seed)
        .await?;
    let (Some(first), Some(second)) = (totp_code(&seed, now), totp_code(&seed, now + 30)) else {
        return refused("that MFA secret key does not decode as base32".into());
    };
    rotation.mfa_enrolled_at = Some(now);
    let replaced = match rotation.mfa_confirmed_at.take() {
        Some(_) => ", replacing the device AWS had confirmed (its activation is awaited again)",
        None => "",
    };
    let detail = format!(
        "{who} enrolled the root user's virtual MFA device: the seed AWS generated is pending in the vault ({reference}){replaced}"
    );
    advance(p, &mut rotation, now, (who, "MFA device enrolled", detail)).await?;
    Ok(EnrolledCodes { first, second })
}

/// Console release, completed by the engineer's word: in the console our MFA
/// device is removed, the root email is the customer's (AWS mailed the code
/// to the customer, who entered it) and the password is one nobody keeps.
/// Returns the detail for the audit.
pub fn console_release_statement(rotation: &Rotation, who: &str, statement: &str) -> String {
    format!(
        "{who} attests that our MFA device is removed, the root password is one nobody keeps, \
         and the console shows the customer's {} as the root email: {}",
        rotation.target_email,
        statement.trim()
    )
}

/// The refusals of [`enroll_mfa`] and [`read_code`] change nothing: tested in
/// `tests/tests/it/lifecycle_local.rs`; here the key parsing alone.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_secret_key_is_checked_base32() {
        let key = "jbsw y3dp ehpk 3pxp jbsw y3dp ehpk 3pxp";
        assert_eq!(
            parse_mfa_secret_key(key).unwrap().expose(),
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
        );
        for bad in [
            "",
            "not-base32!",
            "JBSWY3DP",
            "JBSWY3DPEHPK3PX1",
            &"A".repeat(200),
        ] {
            assert!(
                matches!(parse_mfa_secret_key(bad), Err(LifecycleError::Refused(_))),
                "{bad:?}"
            );
        }
    }
}
