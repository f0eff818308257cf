//! The ports a handoffs-only build (mail-ingest) does not link: handing a
//! secret to a rotation never calls the Account API or a root session, and a
//! call that ever did would fail here, permanently and saying why, instead of
//! linking three SDK clients into every mail-ingest cold start.

use rootmail_domain::{AccountId, EmailAddress, SecretValue};
use rootmail_lifecycle::{
    AccountApi, EmailUpdateStatus, LifecycleError, LifecycleResult, MemberState, RootAccess,
    RootCredentialReport, RootSummary,
};
use rootmail_pipeline::PortError;

/// Answers every call with a permanent error naming what is missing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotLinked;

fn not_linked<T>(port: &'static str) -> LifecycleResult<T> {
    Err(LifecycleError::Port(PortError::permanent(
        port,
        format!(
            "this function is built without the {port} client (rootmail-aws feature `lifecycle`)"
        ),
    )))
}

impl AccountApi for NotLinked {
    async fn start_email_update(&self, _: &AccountId, _: &EmailAddress) -> LifecycleResult<()> {
        not_linked("account")
    }

    async fn accept_email_update(
        &self,
        _: &AccountId,
        _: &EmailAddress,
        _: &SecretValue,
    ) -> LifecycleResult<()> {
        not_linked("account")
    }

    async fn primary_email(&self, _: &AccountId) -> LifecycleResult<EmailAddress> {
        not_linked("account")
    }

    async fn email_update_status(
        &self,
        _: &AccountId,
    ) -> LifecycleResult<Option<EmailUpdateStatus>> {
        not_linked("account")
    }

    async fn member_state(&self, _: &AccountId) -> LifecycleResult<Option<MemberState>> {
        not_linked("organizations")
    }

    async fn close_member(&self, _: &AccountId) -> LifecycleResult<()> {
        not_linked("organizations")
    }
}

impl RootAccess for NotLinked {
    async fn audit(&self, _: &AccountId) -> LifecycleResult<RootCredentialReport> {
        not_linked("root session")
    }

    async fn delete_all(&self, _: &AccountId) -> LifecycleResult<RootCredentialReport> {
        not_linked("root session")
    }

    async fn allow_password_recovery(&self, _: &AccountId) -> LifecycleResult<()> {
        not_linked("root session")
    }

    async fn summary(&self, _: &AccountId) -> LifecycleResult<Option<RootSummary>> {
        not_linked("root session")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_call_is_refused_with_the_reason() {
        let account = AccountId::parse("123456789012").unwrap();
        let error = NotLinked.primary_email(&account).await.unwrap_err();
        assert!(
            error.to_string().contains("without the account client"),
            "{error}"
        );
        let error = NotLinked.delete_all(&account).await.unwrap_err();
        assert!(error.to_string().contains("root session"), "{error}");
    }
}
