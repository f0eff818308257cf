//! The credential lifecycle's ports in AWS, one adapter per port:
//!
//! | port | adapter | service |
//! |---|---|---|
//! | `AccountApi` | [`PrimaryEmailApi`] | Account Management (primary email); Organizations (a member's state, its closure) |
//! | `RootAccess` | [`RootSessions`] | STS `AssumeRoot`, then IAM as the root session |
//! | `Vault` | [`SecretsVault`] | Secrets Manager under a customer-managed KMS key |
//! | `Rotations` | [`DynamoRotations`] | DynamoDB, the task token sealed with KMS |
//! | `AuditLog` | [`DynamoAudit`] | DynamoDB, append-only |
//! | `AccountRegistry` | [`LifecycleRegistry`] | the accounts table |
//! | `TaskTokens` | [`StepFunctionsTokens`] | Step Functions `SendTaskSuccess` |
//! | `Notices` | [`LifecycleNotices`] | the ticket-ops FIFO queue, SES |
//!
//! [`AwsLifecycle`] bundles them for the steps, and is the mail pipeline's
//! `Handoffs`: the one way a secret from a mail reaches a waiting rotation.
//! Built with `handoffs` but without `lifecycle` (mail-ingest), it links no
//! Account API, STS or IAM client: those two ports are [`NotLinked`], which
//! no handoff calls and which refuses any call plainly.

#[cfg(feature = "lifecycle")]
mod account_api;
mod audit;
mod config;
mod not_linked;
mod notices;
#[cfg(feature = "lifecycle")]
mod organizations;
mod registry;
#[cfg(feature = "lifecycle")]
mod root_access;
mod rotations;
mod tokens;
mod vault;

#[cfg(feature = "lifecycle")]
pub use account_api::PrimaryEmailApi;
pub use audit::DynamoAudit;
pub use config::LifecycleConfig;
pub use not_linked::NotLinked;
pub use notices::LifecycleNotices;
pub use registry::LifecycleRegistry;
#[cfg(feature = "lifecycle")]
pub use root_access::RootSessions;
pub use rotations::DynamoRotations;
pub use tokens::StepFunctionsTokens;
pub use vault::{SecretsVault, secret_name};

use crate::error::port_error;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use rootmail_lifecycle::{LifecycleError, LifecyclePorts};
use rootmail_pipeline::PortError;

/// The Account API port of this build.
#[cfg(feature = "lifecycle")]
pub type Api = PrimaryEmailApi;
#[cfg(not(feature = "lifecycle"))]
pub type Api = NotLinked;
/// The root-session port of this build.
#[cfg(feature = "lifecycle")]
pub type Root = RootSessions;
#[cfg(not(feature = "lifecycle"))]
pub type Root = NotLinked;

/// The clients the lifecycle talks to. Production builds them all from one
/// `SdkConfig` ([`AwsClients::from_config`]); tests may aim some elsewhere (the
/// Account API and root sessions at a stand-in).
#[derive(Clone)]
pub struct AwsClients {
    #[cfg(feature = "lifecycle")]
    pub account: aws_sdk_account::Client,
    /// Organizations without the SDK's client ([`crate::aws_json`]).
    #[cfg(feature = "lifecycle")]
    pub organizations: crate::aws_json::JsonClient,
    #[cfg(feature = "lifecycle")]
    pub sts: aws_sdk_sts::Client,
    /// Its settings (endpoint, region, retries) are reused for each root
    /// session, with the session's credentials instead of these.
    #[cfg(feature = "lifecycle")]
    pub iam: aws_sdk_iam::Client,
    /// Secrets Manager without the SDK's client ([`crate::aws_json`]).
    pub secrets: crate::aws_json::JsonClient,
    /// KMS without the SDK's client ([`crate::aws_json`]).
    pub kms: crate::aws_json::JsonClient,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Step Functions without the SDK's client ([`crate::aws_json`]).
    pub sfn: crate::aws_json::JsonClient,
    pub sqs: aws_sdk_sqs::Client,
    /// SES without the SDK's client ([`crate::aws_json`]).
    pub ses: crate::aws_json::JsonClient,
}

impl AwsClients {
    pub fn from_config(aws: &aws_config::SdkConfig) -> Self {
        Self {
            #[cfg(feature = "lifecycle")]
            account: aws_sdk_account::Client::new(aws),
            #[cfg(feature = "lifecycle")]
            organizations: crate::aws_json::JsonClient::global(
                aws,
                crate::aws_json::ORGANIZATIONS,
                "organizations",
            ),
            #[cfg(feature = "lifecycle")]
            sts: aws_sdk_sts::Client::new(aws),
            #[cfg(feature = "lifecycle")]
            iam: aws_sdk_iam::Client::new(aws),
            secrets: SecretsVault::client(aws),
            kms: DynamoRotations::kms_client(aws),
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            sfn: StepFunctionsTokens::client(aws),
            sqs: aws_sdk_sqs::Client::new(aws),
            ses: LifecycleNotices::ses_client(aws),
        }
    }
}

/// Every lifecycle port over AWS.
pub struct AwsLifecycle {
    pub api: Api,
    pub root: Root,
    pub vault: SecretsVault,
    pub rotations: DynamoRotations,
    pub audit: DynamoAudit,
    pub registry: LifecycleRegistry,
    pub tokens: StepFunctionsTokens,
    pub notices: LifecycleNotices,
}

impl AwsLifecycle {
    pub fn new(clients: AwsClients, config: &LifecycleConfig) -> Self {
        Self {
            #[cfg(feature = "lifecycle")]
            api: PrimaryEmailApi::new(clients.account, clients.organizations),
            #[cfg(feature = "lifecycle")]
            root: RootSessions::new(
                clients.sts,
                clients.iam,
                config.payer_audit_role_name.clone(),
            ),
            #[cfg(not(feature = "lifecycle"))]
            api: NotLinked,
            #[cfg(not(feature = "lifecycle"))]
            root: NotLinked,
            vault: SecretsVault::new(clients.secrets, &config.vault_kms_key_id),
            rotations: DynamoRotations::new(
                clients.dynamodb.clone(),
                &config.rotations_table,
                clients.kms,
                &config.token_kms_key_id,
            ),
            audit: DynamoAudit::new(clients.dynamodb.clone(), &config.audit_table),
            registry: LifecycleRegistry::new(clients.dynamodb, &config.accounts_table),
            tokens: StepFunctionsTokens::new(clients.sfn),
            notices: LifecycleNotices::new(
                clients.sqs,
                &config.ticket_ops_queue_url,
                clients.ses,
                (&config.notice_from, &config.notice_to),
            ),
        }
    }

    /// Every client from one SDK configuration (what the functions do).
    pub fn on_aws(aws: &aws_config::SdkConfig, config: &LifecycleConfig) -> Self {
        Self::new(AwsClients::from_config(aws), config)
    }
}

impl LifecyclePorts for AwsLifecycle {
    type Api = Api;
    type Root = Root;
    type Vault = SecretsVault;
    type Rotations = DynamoRotations;
    type Audit = DynamoAudit;
    type Registry = LifecycleRegistry;
    type Tokens = StepFunctionsTokens;
    type Notices = LifecycleNotices;
    fn api(&self) -> &Api {
        &self.api
    }
    fn root(&self) -> &Root {
        &self.root
    }
    fn vault(&self) -> &SecretsVault {
        &self.vault
    }
    fn rotations(&self) -> &DynamoRotations {
        &self.rotations
    }
    fn audit(&self) -> &DynamoAudit {
        &self.audit
    }
    fn registry(&self) -> &LifecycleRegistry {
        &self.registry
    }
    fn tokens(&self) -> &StepFunctionsTokens {
        &self.tokens
    }
    fn notices(&self) -> &LifecycleNotices {
        &self.notices
    }
}

/// An SDK failure as a lifecycle error (transient or permanent by its kind).
fn sdk<E>(port: &'static str, error: SdkError<E, crate::error::HttpResponse>) -> LifecycleError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    LifecycleError::Port(port_error(port, error))
}

fn permanent(port: &'static str, message: impl Into<String>) -> LifecycleError {
    LifecycleError::Port(PortError::permanent(port, message.into()))
}
