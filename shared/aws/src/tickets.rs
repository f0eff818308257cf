//! The ticket backend's settings from the environment, and its credentials from
//! Secrets Manager (in AWS) or a file or variable (locally). One reader serves the
//! Lambda and the CLI, so both accept the same names.

use crate::config::{ConfigError, Env};
use rootmail_tickets::backend::{check_api_url, parse_custom_fields, parse_organizations};
use rootmail_tickets::{BackendKind, BackendSettings, RetryPolicy};
use std::num::NonZeroU32;
use std::time::Duration;

#[cfg(feature = "ticket-secrets")]
pub use crate::ticket_secrets::{marker_key, secret_string, secrets_client};

/// Every variable [`backend_settings`] reads.
pub const VARIABLES: &[&str] = &[
    "TICKET_BACKEND",
    "TICKET_API_URL",
    "ZENDESK_CUSTOM_FIELDS",
    "ZENDESK_ORGANIZATIONS",
    "ZENDESK_REQUESTER_DOMAIN",
    "TICKET_API_REQUESTS_PER_MINUTE",
    "HTTP_TIMEOUT_SECS",
    "HTTP_MAX_ATTEMPTS",
    "HTTP_RETRY_BASE_MS",
    "JIRA_SERVICE_DESK_ID",
    "JIRA_REQUEST_TYPE_ID",
    "JIRA_SET_PRIORITY",
    "RT_QUEUE",
    "RT_THREAD_FIELD",
];

/// `TICKET_BACKEND` (default `default`), `TICKET_API_URL`, the HTTP limits
/// (`TICKET_API_REQUESTS_PER_MINUTE`: this instance's share of the API's rate
/// limit; unset, no limit) and each backend's own options: [`VARIABLES`].
pub fn backend_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    default: BackendKind,
) -> Result<BackendSettings, ConfigError> {
    let env = &env.declaring(VARIABLES);
    let kind = match env.optional("TICKET_BACKEND") {
        None => default,
        Some(name) => BackendKind::parse(&name).ok_or_else(|| ConfigError::Invalid {
            name: "TICKET_BACKEND",
            value: name.clone(),
            reason: format!("supported backends: {}", BackendKind::NAMES),
        })?,
    };
    let zendesk_custom_fields = match env.optional("ZENDESK_CUSTOM_FIELDS") {
        None => Vec::new(),
        Some(json) => parse_custom_fields(&json).map_err(|reason| ConfigError::Invalid {
            name: "ZENDESK_CUSTOM_FIELDS",
            value: json.clone(),
            reason,
        })?,
    };
    let zendesk_organizations = match env.optional("ZENDESK_ORGANIZATIONS") {
        None => Vec::new(),
        Some(json) => parse_organizations(&json).map_err(|reason| ConfigError::Invalid {
            name: "ZENDESK_ORGANIZATIONS",
            value: json.clone(),
            reason,
        })?,
    };
    let requests_per_minute = match env.optional("TICKET_API_REQUESTS_PER_MINUTE") {
        None => None,
        Some(value) => Some(value.trim().parse::<NonZeroU32>().map_err(|_| {
            ConfigError::Invalid {
                name: "TICKET_API_REQUESTS_PER_MINUTE",
                value: value.clone(),
                reason: "expected a whole number of at least 1 (leave it unset for no limit)"
                    .to_string(),
            }
        })?),
    };
    Ok(BackendSettings {
        timeout: Duration::from_secs(env.parsed_or("HTTP_TIMEOUT_SECS", 10)?),
        retry: RetryPolicy {
            max_attempts: env.parsed_or("HTTP_MAX_ATTEMPTS", 4)?,
            base_delay: Duration::from_millis(env.parsed_or("HTTP_RETRY_BASE_MS", 200)?),
            ..RetryPolicy::default()
        },
        requests_per_minute,
        zendesk_custom_fields,
        zendesk_organizations,
        zendesk_requester_domain: env.optional("ZENDESK_REQUESTER_DOMAIN"),
        jira_service_desk_id: env.optional("JIRA_SERVICE_DESK_ID"),
        jira_request_type_id: env.optional("JIRA_REQUEST_TYPE_ID"),
        jira_set_priority: env.parsed_or("JIRA_SET_PRIORITY", false)?,
        rt_queue: env.optional("RT_QUEUE"),
        rt_thread_field: env.optional("RT_THREAD_FIELD"),
        ..BackendSettings::new(kind, &api_url(env)?)
    })
}

/// `TICKET_API_URL`: https (the credentials go with every request), or plain
/// http to a loopback host (tests, local fakes).
fn api_url<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<String, ConfigError> {
    let url = env.required("TICKET_API_URL")?;
    match check_api_url(url.trim()) {
        Ok(()) => Ok(url.trim().to_string()),
        Err(reason) => Err(ConfigError::Invalid {
            name: "TICKET_API_URL",
            value: url,
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{name_set, names_read};

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn unset_backend_is_the_default_and_unknown_ones_are_named() {
        let settings = backend_settings(
            &env(&[("TICKET_API_URL", "https://acme.zendesk.com")]),
            BackendKind::Zendesk,
        )
        .unwrap();
        assert_eq!(settings.kind, BackendKind::Zendesk);
        let error = backend_settings(
            &env(&[
                ("TICKET_API_URL", "https://x.example"),
                ("TICKET_BACKEND", "servicenow"),
            ]),
            BackendKind::Zendesk,
        )
        .unwrap_err();
        assert!(error.to_string().contains("servicenow"), "{error}");
        assert!(
            error.to_string().contains("zendesk, jira, rt, webhook"),
            "{error}"
        );
    }

    /// Issue D: plain http is refused, except to loopback, naming the variable.
    #[test]
    fn the_api_url_must_be_https_except_to_loopback() {
        let error = backend_settings(
            &env(&[("TICKET_API_URL", "http://acme.zendesk.com")]),
            BackendKind::Zendesk,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("TICKET_API_URL") && error.contains("https://"),
            "{error}"
        );
        for loopback in [
            "http://127.0.0.1:8080",
            "http://[::1]:9",
            "http://localhost:3",
        ] {
            let settings =
                backend_settings(&env(&[("TICKET_API_URL", loopback)]), BackendKind::Rt).unwrap();
            assert_eq!(settings.api_url, loopback);
        }
    }

    #[test]
    fn the_request_rate_is_unlimited_unless_set_and_never_zero() {
        let base = ("TICKET_API_URL", "https://x.example");
        let unset = backend_settings(&env(&[base]), BackendKind::Zendesk).unwrap();
        assert_eq!(unset.requests_per_minute, None);
        let empty = backend_settings(
            &env(&[base, ("TICKET_API_REQUESTS_PER_MINUTE", "")]),
            BackendKind::Zendesk,
        )
        .unwrap();
        assert_eq!(empty.requests_per_minute, None);
        let set = backend_settings(
            &env(&[base, ("TICKET_API_REQUESTS_PER_MINUTE", " 350 ")]),
            BackendKind::Zendesk,
        )
        .unwrap();
        assert_eq!(set.requests_per_minute, NonZeroU32::new(350));
        for bad in ["0", "-5", "lots", "1.5"] {
            let error = backend_settings(
                &env(&[base, ("TICKET_API_REQUESTS_PER_MINUTE", bad)]),
                BackendKind::Zendesk,
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("TICKET_API_REQUESTS_PER_MINUTE") && error.contains("at least 1"),
                "{error}"
            );
        }
    }

    #[test]
    fn empty_options_are_unset_and_custom_fields_are_checked() {
        let settings = backend_settings(
            &env(&[
                ("TICKET_API_URL", "https://x.example"),
                ("TICKET_BACKEND", "rt"),
                ("RT_QUEUE", ""),
                ("ZENDESK_CUSTOM_FIELDS", r#"{"12": "aws"}"#),
            ]),
            BackendKind::Zendesk,
        )
        .unwrap();
        assert_eq!(settings.rt_queue, None);
        assert_eq!(
            settings.zendesk_custom_fields,
            vec![(12, serde_json::json!("aws"))]
        );
        let error = backend_settings(
            &env(&[
                ("TICKET_API_URL", "https://x.example"),
                ("ZENDESK_CUSTOM_FIELDS", "[1]"),
            ]),
            BackendKind::Zendesk,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("ZENDESK_CUSTOM_FIELDS"),
            "{error}"
        );
    }

    #[test]
    fn variables_are_what_backend_settings_reads() {
        let read = names_read(&[("TICKET_API_URL", "https://x.example")], |env| {
            backend_settings(env, BackendKind::Zendesk).unwrap();
        });
        assert_eq!(read, name_set(VARIABLES));
    }
}
