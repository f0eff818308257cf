//! Secrets found in mail: a value that cannot be printed and is wiped on drop.

use serde::{Serialize, Serializer};
use std::fmt;
use zeroize::Zeroizing;

/// What a secret is; `[redacted <kind>]` replaces it everywhere it would be shown.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(test, derive(strum::VariantArray))]
pub enum SecretKind {
    VerificationCode,
    ResetLink,
    RecoveryLink,
    ApprovalLink,
    ConfirmationLink,
    VerificationLink,
    Password,
    /// An IAM secret access key (its 40 characters).
    AccessKeySecret,
    /// A virtual MFA device's secret key, or the `otpauth://` link holding it.
    MfaSeed,
}

impl SecretKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The text shown in place of a secret of this kind.
    pub fn placeholder(self) -> String {
        format!("[redacted {}]", self.as_str())
    }
}

/// A secret value. `Debug` and `Display` never show it; it is zeroized on drop;
/// `expose` is the one way out, for the one place that hands it to a rotation.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A secret found in a message. Serializes as `{"kind": ...}` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundSecret {
    pub kind: SecretKind,
    pub value: SecretValue,
}

impl Serialize for FoundSecret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("FoundSecret", 1)?;
        s.serialize_field("kind", &self.kind)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_or_serializes_its_value() {
        let found = FoundSecret {
            kind: SecretKind::VerificationCode,
            value: SecretValue::new("Q7K2M9".into()),
        };
        let shown = format!(
            "{found:?} {} {}",
            found.value,
            serde_json::to_string(&found).unwrap()
        );
        assert!(!shown.contains("Q7K2M9"), "{shown}");
        assert_eq!(
            serde_json::to_string(&found).unwrap(),
            r#"{"kind":"verification_code"}"#
        );
        assert_eq!(found.value.expose(), "Q7K2M9");
    }

    /// The placeholder names the kind by its serde name, which design.md gives.
    #[test]
    fn kinds_are_named_as_serde_names_them() {
        use strum::VariantArray;
        for &kind in SecretKind::VARIANTS {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(
            SecretKind::VARIANTS
                .iter()
                .map(|kind| kind.placeholder())
                .collect::<Vec<_>>(),
            [
                "[redacted verification_code]",
                "[redacted reset_link]",
                "[redacted recovery_link]",
                "[redacted approval_link]",
                "[redacted confirmation_link]",
                "[redacted verification_link]",
                "[redacted password]",
                "[redacted access_key_secret]",
                "[redacted mfa_seed]",
            ]
        );
    }
}
