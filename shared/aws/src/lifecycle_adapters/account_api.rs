//! The Account Management API's primary-email calls (from the management
//! account, or the delegated administrator for Account Management).

use super::organizations;
use crate::aws_json::JsonClient;
use crate::error::{error_code, port_error};
use aws_sdk_account::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use rootmail_domain::{AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::{
    AccountApi, EmailUpdateState, EmailUpdateStatus, LifecycleError, LifecycleResult, MemberState,
};
use rootmail_pipeline::{ErrorKind, PortError};

const PORT: &str = "account";

#[derive(Clone)]
pub struct PrimaryEmailApi {
    client: Client,
    organizations: JsonClient,
}

impl PrimaryEmailApi {
    pub fn new(client: Client, organizations: JsonClient) -> Self {
        Self {
            client,
            organizations,
        }
    }
}

/// Why the Account API refuses a payer: said wherever it may be the reason.
const MEMBERS_ONLY: &str = "the Account API serves only member accounts of this organization, \
     not its management account: take a payer (management) or standalone account over with \
     --mode console";

/// Which call failed, for the sentence that explains it.
#[derive(Clone, Copy)]
enum Call<'a> {
    Start(&'a EmailAddress),
    Accept,
    Get,
    Status,
}

/// AWS's answer as a lifecycle error. Refusals (nothing changed; the same
/// request fails the same way) become sentences a person can act on. AWS's own
/// message is never repeated: a validation message may quote the input, and
/// the input of `AcceptPrimaryEmailUpdate` is the code.
fn account_error<E>(
    account: &AccountId,
    call: Call<'_>,
    error: SdkError<E, crate::error::HttpResponse>,
) -> LifecycleError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = error_code(&error).map(str::to_string);
    let expired = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::message)
        .is_some_and(|m| m.to_ascii_lowercase().contains("expired"));
    if let Some(sentence) = refusal(account, call, code.as_deref(), expired) {
        return LifecycleError::Refused(format!("{sentence} ({})", code.as_deref().unwrap_or("")));
    }
    match (code.as_deref(), call) {
        (Some(code @ ("TooManyRequestsException" | "InternalServerException")), _) => {
            // Throttled: AWS answered and did nothing (a release's claim on
            // the record need not be kept for an email change AWS may
            // have made).
            let kind = match code {
                "TooManyRequestsException" => ErrorKind::Throttled,
                _ => ErrorKind::Transient,
            };
            LifecycleError::Port(PortError::new(
                kind,
                PORT,
                format!("the Account API is busy or failing for account {account} ({code})"),
            ))
        }
        (_, Call::Accept) => {
            // Classified like any SDK error, but described without AWS's text.
            let what = match &code {
                Some(code) => format!("AWS answered {code}"),
                None => "no answer from AWS (network or timeout)".to_string(),
            };
            let message = format!("accepting the root email change of account {account}: {what}");
            LifecycleError::Port(port_error(PORT, error).reworded(message))
        }
        _ => LifecycleError::Port(port_error(PORT, error)),
    }
}

/// The sentence for an error `code` that means AWS refused the `call` (the
/// same request fails the same way), or `None` when it is not a refusal.
fn refusal(
    account: &AccountId,
    call: Call<'_>,
    code: Option<&str>,
    expired: bool,
) -> Option<String> {
    let sentence = match (code?, call) {
        ("ConflictException", Call::Start(email)) => format!(
            "AWS refused to change account {account}'s root email to {email}: the address is \
             in use by another AWS account, or another change is in progress"
        ),
        ("ConflictException", _) => format!(
            "AWS refused the root email change of account {account}: the address is now in use \
             by another AWS account, or the change conflicts with another one"
        ),
        ("ValidationException", Call::Accept) if expired => format!(
            "AWS refused the code for account {account}: it has expired; start the root email \
             change again"
        ),
        ("ValidationException", Call::Accept) => format!(
            "AWS refused the code for account {account}: it is wrong, or it is not for this \
             address"
        ),
        ("ValidationException", Call::Start(email)) => format!(
            "AWS refused {email} as account {account}'s root email: not a valid request \
             ({MEMBERS_ONLY})"
        ),
        ("AccessDeniedException", Call::Start(_)) => format!(
            "AWS refused to change account {account}'s root email through the Account API: \
             this role may not, or the account is not a member of this organization \
             ({MEMBERS_ONLY})"
        ),
        ("ValidationException", Call::Get | Call::Status) => format!(
            "AWS refused to read account {account}'s root email: not a valid request (the \
             Account API serves only member accounts of this organization, not its \
             management account)"
        ),
        ("AccessDeniedException", Call::Get | Call::Status) => format!(
            "AWS refused to read account {account}'s root email through the Account API: this \
             role may not, or the account is not a member of this organization"
        ),
        ("ResourceNotFoundException", Call::Accept) => format!(
            "AWS has no pending root email change for account {account} (or the account is \
             not a member of the organization): start it again"
        ),
        ("ResourceNotFoundException", Call::Start(_)) => format!(
            "account {account} is not a member account of the organization ({MEMBERS_ONLY})"
        ),
        ("ResourceNotFoundException", _) => {
            format!("account {account} is not a member account of the organization")
        }
        _ => return None,
    };
    Some(sentence)
}

impl AccountApi for PrimaryEmailApi {
    async fn start_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
    ) -> LifecycleResult<()> {
        self.client
            .start_primary_email_update()
            .account_id(account.as_str())
            .primary_email(email.as_str())
            .send()
            .await
            .map_err(|e| account_error(account, Call::Start(email), e))?;
        Ok(())
    }

    async fn accept_email_update(
        &self,
        account: &AccountId,
        email: &EmailAddress,
        otp: &SecretValue,
    ) -> LifecycleResult<()> {
        self.client
            .accept_primary_email_update()
            .account_id(account.as_str())
            .primary_email(email.as_str())
            .otp(otp.expose().trim())
            .send()
            .await
            .map_err(|e| account_error(account, Call::Accept, e))?;
        Ok(())
    }

    async fn email_update_status(
        &self,
        account: &AccountId,
    ) -> LifecycleResult<Option<EmailUpdateStatus>> {
        use aws_sdk_account::types::PrimaryEmailUpdateStatus as Status;
        let answer = match self
            .client
            .get_primary_email_update_status()
            .account_id(account.as_str())
            .send()
            .await
        {
            Ok(answer) => answer,
            // No update was ever made (the account's membership is checked
            // by the calls that change something).
            Err(e) if error_code(&e) == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(account_error(account, Call::Status, e)),
        };
        let state = match answer.status() {
            Status::Pending => EmailUpdateState::Pending,
            Status::Accepted => EmailUpdateState::Accepted,
            Status::Completed => EmailUpdateState::Completed,
            Status::Failed => EmailUpdateState::Failed,
            other => {
                return Err(LifecycleError::Port(PortError::permanent(
                    PORT,
                    format!(
                        "AWS gave account {account}'s root email change a status rootmail does not know: {other}"
                    ),
                )));
            }
        };
        let updated_at = answer
            .updated_at()
            .and_then(|t| u64::try_from(t.secs()).ok());
        Ok(Some(EmailUpdateStatus { state, updated_at }))
    }

    async fn primary_email(&self, account: &AccountId) -> LifecycleResult<EmailAddress> {
        let answer = self
            .client
            .get_primary_email()
            .account_id(account.as_str())
            .send()
            .await
            .map_err(|e| account_error(account, Call::Get, e))?;
        let email = answer.primary_email().unwrap_or_default();
        EmailAddress::parse(email).map_err(|e| {
            LifecycleError::Port(PortError::permanent(
                PORT,
                format!("AWS gave account {account} a root email rootmail cannot read: {e}"),
            ))
        })
    }

    async fn member_state(&self, account: &AccountId) -> LifecycleResult<Option<MemberState>> {
        organizations::member_state(&self.organizations, account).await
    }

    async fn close_member(&self, account: &AccountId) -> LifecycleResult<()> {
        organizations::close_member(&self.organizations, account).await
    }
}
