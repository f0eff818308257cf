//! A ticket API's credential: never printed, zeroized on drop.

use rootmail_domain::SecretValue;
use serde::Deserialize;

/// A credential from the backend's secret: never printed, zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential(SecretValue);

impl Credential {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretValue::new(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Credential {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let c: Credential = serde_json::from_str("\"s3cr3t-token\"").unwrap();
        assert_eq!(c.expose(), "s3cr3t-token");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
