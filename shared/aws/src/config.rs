//! Reading typed configuration from the environment, once, at cold start.
//!
//! Each configuration declares the variables it reads in a `VARIABLES`
//! constant beside its `from_env`, and reads through
//! [`Env::declaring`] that list: a name read but not declared is a failed
//! debug assertion, and each crate's tests check, with [`names_read`], that
//! every declared name is read. `tests/tests/it/infra_template.rs` compares
//! the constants with each function's environment in `infra/template.yaml`.

use std::cell::RefCell;
use std::collections::BTreeSet;
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
    /// The names a configuration said it reads ([`Env::declaring`]).
    declared: Option<&'static [&'static str]>,
}

impl Env<fn(&str) -> Option<String>> {
    /// The process environment.
    pub fn process() -> Self {
        Self::from_fn(|name| std::env::var(name).ok())
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
        Self {
            lookup,
            declared: None,
        }
    }

    /// The same settings, read by a configuration that declared `names`
    /// (its `VARIABLES`): reading any other name is a programming error, a
    /// failed debug assertion in tests and debug builds. A release build
    /// reads it all the same.
    pub fn declaring(&self, names: &'static [&'static str]) -> Env<&F> {
        Env {
            lookup: &self.lookup,
            declared: Some(names),
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        debug_assert!(
            self.declared.is_none_or(|names| names.contains(&name)),
            "{name} is read but not in the VARIABLES of the configuration reading it"
        );
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

/// Several configurations' `VARIABLES` as one list, for the `VARIABLES` of a
/// configuration that reads others' (`concat_names::<N>(&[OWN, OTHER])`, `N`
/// the total length, checked when the constant is evaluated).
pub const fn concat_names<const N: usize>(parts: &[&[&'static str]]) -> [&'static str; N] {
    let mut names = [""; N];
    let mut at = 0;
    let mut part = 0;
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            assert!(at < N, "N is shorter than the parts");
            names[at] = parts[part][i];
            at += 1;
            i += 1;
        }
        part += 1;
    }
    assert!(at == N, "N is longer than the parts");
    names
}

/// The names `read` asks of an environment holding `pairs`: in a test, a
/// configuration's `VARIABLES` should be exactly what its `from_env` reads
/// from a complete environment.
pub fn names_read(
    pairs: &[(&str, &str)],
    read: impl FnOnce(&Env<&dyn Fn(&str) -> Option<String>>),
) -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let lookup = |name: &str| {
        asked.borrow_mut().insert(name.to_string());
        pairs
            .iter()
            .rev()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    };
    read(&Env::from_fn(&lookup as &dyn Fn(&str) -> Option<String>));
    asked.into_inner()
}

/// `names` as a set, to compare with [`names_read`].
pub fn name_set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(ToString::to_string).collect()
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

    const OWN: &[&str] = &["A", "B"];
    const JOINED: &[&str] = &concat_names::<3>(&[OWN, &["C"]]);

    #[test]
    fn names_join_in_order() {
        assert_eq!(JOINED, ["A", "B", "C"]);
        let read = names_read(&[("A", "1")], |env| {
            let env = env.declaring(JOINED);
            assert_eq!(env.optional("A").as_deref(), Some("1"));
            assert_eq!(env.optional("C"), None);
        });
        assert_eq!(read, name_set(&["A", "C"]));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "UNDECLARED is read but not in the VARIABLES")]
    fn reading_an_undeclared_name_fails_a_debug_assertion() {
        env(&[]).declaring(OWN).optional("UNDECLARED");
    }
}
