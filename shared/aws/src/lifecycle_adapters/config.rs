//! The lifecycle's settings, read once at cold start.

use crate::config::{ConfigError, Env};

/// What the lifecycle adapters need to know. Every function that runs lifecycle
/// steps (the `lifecycle` function, `mail-ingest` when rotations are on) reads
/// the same variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// `ROTATIONS_TABLE`: one record per account (key `account_id`).
    pub rotations_table: String,
    /// `AUDIT_TABLE`: append-only (key `account_id`, sort key `at`).
    pub audit_table: String,
    /// `ACCOUNTS_TABLE`: the account directory the pipeline reads.
    pub accounts_table: String,
    /// `TICKET_OPS_QUEUE_URL`: where lifecycle notes go as ticket operations.
    pub ticket_ops_queue_url: String,
    /// `VAULT_KMS_KEY_ID`: the customer-managed key Secrets Manager encrypts
    /// vault entries with.
    pub vault_kms_key_id: String,
    /// `TOKEN_KMS_KEY_ID`: the key that seals task tokens in the rotations
    /// table (may be the vault's key).
    pub token_kms_key_id: String,
    /// `NOTICE_FROM`: the SES identity break-glass notices are sent from.
    pub notice_from: String,
    /// `NOTICE_TO`: who hears of break-glass access.
    pub notice_to: String,
    /// `ROOT_MAIL_DOMAIN`: our domain for root addresses.
    pub root_mail_domain: String,
    /// `PAYER_AUDIT_ROLE_NAME` (optional): the role the provider keeps in
    /// each payer and standalone account, which rootmail assumes to read
    /// IAM's account summary before a console take-over completes.
    pub payer_audit_role_name: Option<String>,
}

impl LifecycleConfig {
    /// Every variable [`LifecycleConfig::from_env`] reads.
    pub const VARIABLES: &[&str] = &[
        "ROTATIONS_TABLE",
        "AUDIT_TABLE",
        "ACCOUNTS_TABLE",
        "TICKET_OPS_QUEUE_URL",
        "VAULT_KMS_KEY_ID",
        "TOKEN_KMS_KEY_ID",
        "NOTICE_FROM",
        "NOTICE_TO",
        "ROOT_MAIL_DOMAIN",
        "PAYER_AUDIT_ROLE_NAME",
    ];

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let env = &env.declaring(Self::VARIABLES);
        Ok(Self {
            rotations_table: env.required("ROTATIONS_TABLE")?,
            audit_table: env.required("AUDIT_TABLE")?,
            accounts_table: env.required("ACCOUNTS_TABLE")?,
            ticket_ops_queue_url: env.url("TICKET_OPS_QUEUE_URL")?,
            vault_kms_key_id: env.required("VAULT_KMS_KEY_ID")?,
            token_kms_key_id: env.required("TOKEN_KMS_KEY_ID")?,
            notice_from: address(env, "NOTICE_FROM")?,
            notice_to: address(env, "NOTICE_TO")?,
            root_mail_domain: domain(env, "ROOT_MAIL_DOMAIN")?,
            payer_audit_role_name: role_name(env, "PAYER_AUDIT_ROLE_NAME")?,
        })
    }
}

/// An IAM role name, with its path if it has one (`rootmail/audit`); unset
/// or empty: none.
fn role_name<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<Option<String>, ConfigError> {
    let Some(value) = env.optional(name).map(|v| v.trim().to_string()) else {
        return Ok(None);
    };
    let valid = value.len() <= 512
        && !value.starts_with('/')
        && !value.ends_with('/')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b));
    match (value.is_empty(), valid) {
        (true, _) => Ok(None),
        (false, true) => Ok(Some(value)),
        (false, false) => Err(invalid(
            name,
            value,
            "expected an IAM role name such as RootmailPayerAudit",
        )),
    }
}

fn invalid(name: &'static str, value: String, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name,
        value,
        reason: reason.to_string(),
    }
}

fn address<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<String, ConfigError> {
    let value = env.required(name)?.trim().to_string();
    match rootmail_domain::EmailAddress::parse(&value) {
        Ok(_) => Ok(value),
        Err(e) => Err(invalid(name, value, &e.to_string())),
    }
}

fn domain<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
) -> Result<String, ConfigError> {
    let value = env.required(name)?.trim().to_string();
    let bare = value.trim_start_matches('@');
    let valid = bare.contains('.')
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if let (true, Some(problem)) = (
        valid,
        rootmail_lifecycle::credentials::root_domain_problem(bare),
    ) {
        return Err(invalid(name, value.clone(), &problem));
    }
    if valid {
        Ok(bare.to_ascii_lowercase())
    } else {
        Err(invalid(
            name,
            value,
            "expected a domain such as root.example-msp.com",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{name_set, names_read};

    const BASE: &[(&str, &str)] = &[
        ("ROTATIONS_TABLE", "rotations"),
        ("AUDIT_TABLE", "audit"),
        ("ACCOUNTS_TABLE", "accounts"),
        (
            "TICKET_OPS_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/ticket-ops.fifo",
        ),
        ("VAULT_KMS_KEY_ID", "alias/rootmail-vault"),
        ("TOKEN_KMS_KEY_ID", "alias/rootmail-vault"),
        ("NOTICE_FROM", "rootmail@example-msp.com"),
        ("NOTICE_TO", "security@example-msp.com"),
        ("ROOT_MAIL_DOMAIN", "root.example-msp.com"),
    ];

    fn config(extra: &[(&str, &str)], without: &str) -> Result<LifecycleConfig, ConfigError> {
        let pairs = BASE
            .iter()
            .filter(|(k, _)| *k != without)
            .chain(extra)
            .copied();
        LifecycleConfig::from_env(&Env::from_pairs(pairs))
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[("ROOT_MAIL_DOMAIN", "@Root.Example-MSP.com")], "").unwrap();
        assert_eq!(c.rotations_table, "rotations");
        assert_eq!(c.audit_table, "audit");
        assert_eq!(c.accounts_table, "accounts");
        assert_eq!(c.vault_kms_key_id, "alias/rootmail-vault");
        assert_eq!(c.token_kms_key_id, "alias/rootmail-vault");
        assert_eq!(c.notice_from, "rootmail@example-msp.com");
        assert_eq!(c.notice_to, "security@example-msp.com");
        assert_eq!(c.root_mail_domain, "root.example-msp.com");
    }

    #[test]
    fn variables_are_what_from_env_reads() {
        let read = names_read(BASE, |env| {
            LifecycleConfig::from_env(env).unwrap();
        });
        assert_eq!(read, name_set(LifecycleConfig::VARIABLES));
    }

    #[test]
    fn a_missing_variable_is_named() {
        for (name, _) in BASE {
            let error = config(&[], name).unwrap_err().to_string();
            assert_eq!(error, format!("environment variable {name} is not set"));
        }
    }

    #[test]
    fn bad_values_are_named_with_the_reason() {
        let error = config(&[("NOTICE_TO", "security team")], "")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("NOTICE_TO") && error.contains("security team"),
            "{error}"
        );
        let error = config(&[("ROOT_MAIL_DOMAIN", "not a domain")], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("ROOT_MAIL_DOMAIN"), "{error}");
        assert!(error.contains("root.example-msp.com"), "{error}");
        // StartPrimaryEmailUpdate takes at most 64 characters.
        let long = format!("{}.example-msp.com", "r".repeat(30));
        let error = config(&[("ROOT_MAIL_DOMAIN", &long)], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("at most 38"), "{error}");
        let error = config(&[("TICKET_OPS_QUEUE_URL", "ticket-ops.fifo")], "")
            .unwrap_err()
            .to_string();
        assert!(error.contains("TICKET_OPS_QUEUE_URL"), "{error}");
    }
}
