//! The simulated AWS console: what a person signed in as the root user does,
//! and the mail AWS sends when they do it. Codes and notices go to
//! `simulated-aws/mail/`, for the real mail pipeline to read.

use crate::lifecycle_store::{LocalLifecycle, simulated_aws_mail};
use rootmail_domain::{AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::credentials::{new_totp_seed, totp_code};
use rootmail_lifecycle::{LifecycleError, LifecycleResult};
use rootmail_pipeline::PortError;

/// One thing a person does in the console.
#[derive(Debug)]
pub enum ConsoleStep {
    /// Account > Edit > email address: AWS mails a code to the new address.
    ChangeEmail { to: EmailAddress },
    /// The code typed in: the root email changes, and AWS writes to it.
    EnterCode { to: EmailAddress, code: SecretValue },
    /// A root password set (Account > Actions > Update email address and
    /// password > Password, or "Forgot password").
    SetPassword,
    /// Security credentials: every root access key and signing certificate deleted.
    DeleteAccessKeys,
    /// Assign MFA device > Authenticator app: AWS generates a seed and shows it.
    AssignMfa,
    /// The two consecutive codes typed in: the device is active, AWS says so.
    ActivateMfa {
        first: SecretValue,
        second: SecretValue,
    },
    /// Security credentials: every MFA device removed.
    RemoveMfa,
    /// Account > Close account: AWS closes it (AWS Organizations shows it
    /// `PENDING_CLOSURE`, then `CLOSED`).
    CloseAccount,
    /// Not the console: AWS Support reopens the closed account (at its root
    /// user's request, within 90 days); AWS shows it `ACTIVE` again.
    SupportReopens,
}

/// What the console shows back.
#[derive(Debug)]
pub enum ConsoleShows {
    Done(String),
    /// The secret key of the device being assigned ("Show secret key").
    SecretKey(SecretValue),
}

fn simulated_mfa_binding(account: &AccountId) -> String {
    format!("simulated-aws/{account}/assigning-mfa")
}

fn randomness(e: rootmail_lifecycle::credentials::RandomError) -> LifecycleError {
    LifecycleError::Port(PortError::transient("simulated-aws", e.to_string()))
}

const AWS_SIGNIN: (&str, &str) = ("signin.aws", "no-reply@signin.aws");

impl LocalLifecycle<'_> {
    /// Performs `step` on the simulated account as the console would.
    pub fn console(
        &self,
        account: &AccountId,
        step: ConsoleStep,
        now: u64,
    ) -> LifecycleResult<ConsoleShows> {
        let done = |what: &str| Ok(ConsoleShows::Done(what.to_string()));
        match step {
            ConsoleStep::ChangeEmail { to } => {
                self.request_email_change(account, &to, now)?;
                done("AWS mailed a verification code to the new address")
            }
            ConsoleStep::EnterCode { to, code } => {
                self.enter_code(account, &to, &code, now)?;
                done("the root email is changed; AWS wrote to the new address")
            }
            ConsoleStep::SetPassword => {
                let mut state = self.simulated(account)?;
                state.root.password = true;
                self.save_simulated(account, &state)?;
                done("the root password is set")
            }
            ConsoleStep::DeleteAccessKeys => {
                let mut state = self.simulated(account)?;
                state.root.access_keys = 0;
                state.root.signing_certificates = 0;
                self.save_simulated(account, &state)?;
                done("the root access keys and signing certificates are deleted")
            }
            ConsoleStep::AssignMfa => Ok(ConsoleShows::SecretKey(self.assign_mfa(account)?)),
            ConsoleStep::ActivateMfa { first, second } => {
                self.activate_mfa(account, (&first, &second), now)?;
                done("the MFA device is assigned; AWS mailed the root address")
            }
            ConsoleStep::RemoveMfa => {
                let mut state = self.simulated(account)?;
                state.root.mfa_devices = 0;
                state.root.mfa_enabled_at.clear();
                self.save_simulated(account, &state)?;
                done("the root user's MFA devices are removed")
            }
            ConsoleStep::CloseAccount => {
                self.close_simulated(account, now)?;
                done("the account is closing (AWS keeps it 90 days)")
            }
            ConsoleStep::SupportReopens => {
                self.reopen_simulated(account)?;
                done("AWS Support reopened the account: AWS shows it ACTIVE")
            }
        }
    }

    /// The verification code typed in: the root email changes, and AWS writes
    /// to the new address that it did.
    fn enter_code(
        &self,
        account: &AccountId,
        to: &EmailAddress,
        code: &SecretValue,
        now: u64,
    ) -> LifecycleResult<()> {
        self.accept_email_change(account, to, code, now)?;
        let text = format!(
            "Hello,\r\n\r\nThe email address of the root user of AWS account {account} has been\r\n\
             updated. This is now the email address of the root user.\r\n\r\n\
             If you did not make this change, contact AWS Support.\r\n\r\n\
             Sincerely,\r\nAmazon Web Services\r\n"
        );
        let mail = simulated_aws_mail(
            to,
            AWS_SIGNIN,
            "Your AWS account root user email address has been updated",
            &text,
            now,
        );
        self.send_simulated_mail(account, "email-updated", &mail, now)
    }

    /// A new MFA seed, kept sealed until the device is activated, and shown
    /// once as the console shows its secret key.
    fn assign_mfa(&self, account: &AccountId) -> LifecycleResult<SecretValue> {
        let mut state = self.simulated(account)?;
        let seed = new_totp_seed().map_err(randomness)?;
        state.assigning_mfa =
            Some(self.seal(seed.expose().as_bytes(), &simulated_mfa_binding(account))?);
        self.save_simulated(account, &state)?;
        Ok(seed)
    }

    /// As the console checks them: two consecutive codes of the seed it showed,
    /// the second the current one or the one before (clocks drift).
    fn activate_mfa(
        &self,
        account: &AccountId,
        (first, second): (&SecretValue, &SecretValue),
        now: u64,
    ) -> LifecycleResult<()> {
        let mut state = self.simulated(account)?;
        let Some(sealed) = state.assigning_mfa.take() else {
            return Err(LifecycleError::Refused(
                "the console assigns no MFA device: choose Assign MFA device first".into(),
            ));
        };
        let seed = self.open(&sealed, &simulated_mfa_binding(account))?;
        let code_at = |t: u64| totp_code(&seed, t).map(|c| c.expose().to_string());
        let consecutive = [now + 30, now, now.saturating_sub(30)].iter().any(|t| {
            code_at(t.saturating_sub(30)).as_deref() == Some(first.expose().trim())
                && code_at(*t).as_deref() == Some(second.expose().trim())
        });
        if !consecutive {
            return Err(LifecycleError::Refused(
                "the console refused the MFA codes: they are not two consecutive codes of the secret key it showed".into(),
            ));
        }
        state.root.mfa_devices += 1;
        state.root.mfa_enabled_at.push(now);
        let to = state.primary_email.clone();
        self.save_simulated(account, &state)?;
        let text = format!(
            "Hello,\r\n\r\nA multi-factor authentication (MFA) device was activated for the root user\r\n\
             of AWS account {account}.\r\n\r\n\
             If you did not make this change, contact AWS Support.\r\n\r\n\
             Sincerely,\r\nAmazon Web Services\r\n"
        );
        let mail = simulated_aws_mail(
            &to,
            AWS_SIGNIN,
            "Multi-factor authentication (MFA) activated for your AWS account root user",
            &text,
            now,
        );
        self.send_simulated_mail(account, "mfa-activated", &mail, now)
    }
}
