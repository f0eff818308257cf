//! Reading typed configuration from the environment, once, at cold start.

use std::str::FromStr;

/// A missing or malformed setting, named so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value {value:?}: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// A source of settings: the process environment, or a map in tests.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self {
            lookup: |name| std::env::var(name).ok(),
        }
    }

    /// Fixed settings (tests, tools that build a function's environment).
    pub fn from_pairs<K: ToString, V: ToString>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env<impl Fn(&str) -> Option<String>> {
        let map: std::collections::HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_fn(move |name| map.get(name).cloned())
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(lookup: F) -> Self {
        Self { lookup }
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    pub fn optional(&self, name: &'static str) -> Option<String> {
        self.get(name)
    }

    /// A parsed value, or `default` when the variable is unset.
    pub fn parsed_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|e: T::Err| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                    value,
                }),
        }
    }

    /// A URL setting: must be http(s).
    pub fn url(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.required(name)?;
        if value.starts_with("https://") || value.starts_with("http://") {
            Ok(value)
        } else {
            Err(ConfigError::Invalid {
                name,
                value,
                reason: "expected an http:// or https:// URL".to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_missing_variable_is_named() {
        let error = env(&[]).required("LEDGER_TABLE").unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable LEDGER_TABLE is not set"
        );
        assert!(
            env(&[("LEDGER_TABLE", "  ")])
                .required("LEDGER_TABLE")
                .is_err()
        );
    }

    #[test]
    fn a_bad_number_names_the_variable_and_value() {
        let error = env(&[("MAX_MESSAGE_BYTES", "40MB")])
            .parsed_or("MAX_MESSAGE_BYTES", 1u64)
            .unwrap_err()
            .to_string();
        assert!(error.contains("MAX_MESSAGE_BYTES"), "{error}");
        assert!(error.contains("\"40MB\""), "{error}");
        assert_eq!(env(&[]).parsed_or("MAX_MESSAGE_BYTES", 7u64).unwrap(), 7);
    }

    #[test]
    fn urls_must_be_http() {
        assert!(env(&[("U", "ftp://x")]).url("U").is_err());
        assert_eq!(env(&[("U", "https://x")]).url("U").unwrap(), "https://x");
    }
}
