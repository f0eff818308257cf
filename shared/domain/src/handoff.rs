//! Whether the secret of a mail may go to the rotation that waits for it
//! (design.md, "Mail that may carry a secret: exact senders"). Everything must
//! hold: a kind whose rules name AWS's exact senders, authentication strong
//! enough (see [`Authentication::handoff_refusal`]), SES's envelope recipient
//! being exactly the rotation's address, a mail that names no other account or
//! address, and one secret of the kind the rotation takes, on AWS's own host.

use crate::auth::Authentication;
use crate::mail::ParsedMail;
use crate::secret_scan::link_host_within;
use crate::secret_value::{FoundSecret, SecretKind, SecretValue};
use crate::types::{AccountId, EmailAddress, Kind};
use regex::Regex;
use std::sync::LazyLock;

/// A rotation waiting for a secret: for which account, from which kind of
/// mail, delivered to which of our addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingRotation {
    pub account: AccountId,
    pub kind: Kind,
    pub address: EmailAddress,
}

/// AWS's own mail to a waiting rotation that passed every check a handoff
/// makes, but in which no one secret was read
/// ([`HandoffRefusal::SecretUnread`]): the rotation is told it came, and
/// when, and gets nothing of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadSecret {
    pub waiting: WaitingRotation,
    pub message_id: Option<String>,
    /// As [`Handoff::delivered_at`]: a code held is replaced only by a
    /// later mail's, read or not.
    pub delivered_at: Option<i64>,
}

/// Which rotations wait (a port: the lifecycle's store answers it).
pub trait WaitingRotations {
    /// The address a rotation of `account` waits for a `kind` mail at.
    fn waiting_at(&self, account: &AccountId, kind: Kind) -> Option<EmailAddress>;
}

/// No rotation ever waits (the `triage` command).
pub struct NoRotations;

impl WaitingRotations for NoRotations {
    fn waiting_at(&self, _: &AccountId, _: Kind) -> Option<EmailAddress> {
        None
    }
}

impl WaitingRotations for Vec<WaitingRotation> {
    fn waiting_at(&self, account: &AccountId, kind: Kind) -> Option<EmailAddress> {
        self.iter()
            .find(|w| w.account == *account && w.kind == kind)
            .map(|w| w.address.clone())
    }
}

/// What a rotation receives: the secret, the kind of mail it came in, the
/// address SES delivered it to (the rotation checks it is its own), and
/// when it reached our servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    pub kind: Kind,
    pub secret: SecretValue,
    pub recipient: EmailAddress,
    /// The receiving server's stamp ([`ParsedMail::delivered_at`]): a
    /// redelivered mail keeps it, so a late copy of an older reset link or
    /// code is known as older.
    pub delivered_at: Option<i64>,
    /// The mail's `Message-ID`: a redelivery is the same mail again.
    pub message_id: Option<String>,
}

/// The secret a rotation takes from a mail of `kind`, and the host such a link
/// must be on.
pub fn wanted_secret(kind: Kind) -> Option<(SecretKind, Option<&'static str>)> {
    match kind {
        Kind::RootEmailOtp | Kind::SigninOtp => Some((SecretKind::VerificationCode, None)),
        Kind::PasswordReset => Some((SecretKind::ResetLink, Some("signin.aws.amazon.com"))),
        Kind::MfaRecovery => Some((SecretKind::RecoveryLink, Some("signin.aws.amazon.com"))),
        _ => None,
    }
}

/// The one address AWS sends a kind's root secret from (design.md's exact
/// senders). A rotation takes a secret only from it, whatever `rules.toml`
/// lists for the kind: the rules classify (AWS's 2015 reset sender is still a
/// password reset), this list decides what may reach a credential.
pub fn secret_sender(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::RootEmailOtp => Some("no-reply@verify.signin.aws"),
        Kind::SigninOtp => Some("no-reply@signin.aws"),
        Kind::PasswordReset => Some("password-reset-no-reply@verify.signin.aws"),
        Kind::MfaRecovery => Some("recover-mfa-no-reply@verify.signin.aws"),
        _ => None,
    }
}

/// Whether a verified AWS mail of `kind`, delivered to a rotation's address
/// alone, is the evidence a rotation waiting for `awaited` needs: AWS's
/// notice of that change itself (a root email change, an MFA activation).
/// Any AWS mail to the new address would not do: anyone can make AWS write
/// to an address (an SES identity verification, an invitation), and the
/// address is chosen before the change. When AWS's notice is not recognised,
/// the engineer attests what the console shows. Kinds that carry a secret
/// are handed over, never taken as evidence. An MFA notice is evidence of an
/// activation only when its subject says a device was added or activated,
/// and nothing was removed: AWS's deactivation notices are the same kind.
pub fn is_evidence_of(awaited: Kind, kind: Kind, subject: Option<&str>) -> bool {
    let same = matches!(awaited, Kind::ContactChange | Kind::MfaChange) && kind == awaited;
    same && (awaited != Kind::MfaChange || subject.is_some_and(tells_of_an_mfa_device_added))
}

static MFA_ADDED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(added|activated|registered|enabled|assigned)\b").expect("static regex")
});
static MFA_REMOVED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(removed|deactivated|disabled|deleted|unassigned)\b").expect("static regex")
});

fn tells_of_an_mfa_device_added(subject: &str) -> bool {
    MFA_ADDED.is_match(subject) && !MFA_REMOVED.is_match(subject)
}

/// Everything the decision reads.
pub struct HandoffFacts<'a> {
    pub kind: Kind,
    pub mail: &'a ParsedMail,
    pub auth: &'a Authentication,
    /// SES's envelope recipients.
    pub envelope: &'a [EmailAddress],
    /// The account the rotation belongs to (the mail resolved to it).
    pub account: &'a AccountId,
    pub secrets: &'a [FoundSecret],
    /// The address the rotation waits at.
    pub target: &'a EmailAddress,
}

/// Why a mail's secret does not go to the rotation that waits for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandoffRefusal {
    /// Its sender, authentication, recipients or the accounts it names do
    /// not show it to be AWS's mail for this rotation.
    Untrusted(String),
    /// AWS's own mail of the kind, to the rotation's address alone, naming
    /// no other account, in which no one secret was read (none found, or
    /// more than one): the rotation may be told it came, never given
    /// anything from it.
    SecretUnread(String),
}

impl HandoffRefusal {
    pub fn reason(&self) -> &str {
        match self {
            Self::Untrusted(reason) | Self::SecretUnread(reason) => reason,
        }
    }
}

/// The handoff, or why the secret must not go to the rotation.
pub fn decide_handoff(facts: &HandoffFacts<'_>) -> Result<Handoff, HandoffRefusal> {
    check_trust(facts).map_err(HandoffRefusal::Untrusted)?;
    let secret = the_one_secret(facts).map_err(|refusal| match refusal {
        HandoffRefusal::SecretUnread(reason) => {
            HandoffRefusal::SecretUnread(with_typing_hint(reason, facts))
        }
        untrusted => untrusted,
    })?;
    Ok(Handoff {
        kind: facts.kind,
        secret: secret.value.clone(),
        recipient: facts.target.clone(),
        delivered_at: facts.mail.delivered_at(),
        message_id: facts.mail.message_id.clone(),
    })
}

/// Everything but the secret itself: AWS's exact sender, authentication
/// strong enough, the rotation's address alone, no other account named.
fn check_trust(facts: &HandoffFacts<'_>) -> Result<(), String> {
    if !facts.kind.policy().strict_sender {
        return Err(format!(
            "{} mail is not among the kinds whose senders are AWS's exact addresses",
            facts.kind
        ));
    }
    check_sender(facts)?;
    if let Some(reason) = facts.auth.handoff_refusal() {
        return Err(reason);
    }
    check_addresses(facts)?;
    names_only(facts.mail, facts.account)
}

/// Whether a mail names no other account than `account`, wherever it names
/// one: a full id in its HTML alternative as well as in its subject and
/// text (the plain text alone is what triage reads ids from), and an
/// account named by its last digits in any of them. A genuine AWS mail
/// about someone else's account (a root email change of their own, to our
/// address) must neither hand over a code nor count as evidence.
pub fn names_only(mail: &ParsedMail, account: &AccountId) -> Result<(), String> {
    let in_html = crate::directory::mentioned_account_ids(&mail.alternative_text);
    if let Some(other) = mail
        .mentioned_account_ids()
        .iter()
        .chain(&in_html)
        .find(|id| *id != account)
    {
        return Err(format!(
            "the mail also names account {other}, not only {account}"
        ));
    }
    check_account_endings(mail, account)
}

/// Genuine AWS code mail, to the rotation's own address, whose one code no
/// rule read (none found, or more than one): the person the ticket reaches
/// can read it in the original and type it, into rootmail for a member
/// take-over (AWS's API checks it), into the console for a console one
/// (which this mail moved on to wait for the change's confirmation).
fn with_typing_hint(reason: String, facts: &HandoffFacts<'_>) -> String {
    match facts.kind {
        Kind::RootEmailOtp => format!(
            "{reason}. Read AWS's code in the original mail (six letters and digits, after its code words). A member take-over goes on with it typed: `rootmail rotation complete --account {account} --otp-stdin`. A console take-over goes on with it entered in the console, then AWS's confirmation mail or `rootmail rotation attest --account {account} --statement ...`",
            account = facts.account
        ),
        _ => reason,
    }
}

/// An account named by its last digits ("the AWS account ending in 7777",
/// across a line break, masked "ending in ****7777", in parentheses)
/// is the rotation's. Anyone can make AWS send a genuine code mail to our
/// address (a root email change of their own account); where it names its
/// account so, it is refused like one naming a full id.
fn check_account_endings(mail: &ParsedMail, account: &AccountId) -> Result<(), String> {
    let subject = mail.subject.as_deref().unwrap_or_default();
    let texts = [subject, &mail.text, &mail.alternative_text];
    for text in texts {
        let endings = ACCOUNT_ENDING.captures_iter(text).take(MAX_ENDINGS);
        if let Some(other) = endings
            .filter_map(|c| c.get(1))
            .find(|digits| !account.as_str().ends_with(digits.as_str()))
        {
            return Err(format!(
                "the mail names an account ending in {}, not {account}",
                other.as_str(),
            ));
        }
    }
    Ok(())
}

static ACCOUNT_ENDING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\baccount(?:\s+(?:id|number))?,?\s*\(?\s*ending\s+(?:in|with)\s*:?\s*[*•xX]*\s*(\d{4})\b")
        .expect("static regex")
});

/// How many "ending in" mentions are compared (each is one regex match).
const MAX_ENDINGS: usize = 20;

/// The mail is from the address AWS sends this kind's secret from.
fn check_sender(facts: &HandoffFacts<'_>) -> Result<(), String> {
    let from = facts.mail.from.as_ref().and_then(|s| s.address.as_ref());
    match (secret_sender(facts.kind), from) {
        (Some(wanted), Some(from)) if from.as_str() == wanted => Ok(()),
        (Some(wanted), from) => Err(format!(
            "it is from {}, not {wanted}, the one address AWS sends {} mail from",
            from.map_or("no valid address", |a| a.as_str()),
            facts.kind
        )),
        (None, _) => Err(format!(
            "no rotation takes a secret from {} mail",
            facts.kind
        )),
    }
}

/// SES delivered it to the rotation's address alone, and the message is
/// addressed to that address and no other (a genuine mail replayed to us
/// keeps its original `To`, which AWS's signature covers; `Cc` it does not).
fn check_addresses(facts: &HandoffFacts<'_>) -> Result<(), String> {
    let target = facts.target;
    match facts.envelope {
        [only] if only == target => {}
        [] => return Err("SES recorded no envelope recipient".into()),
        [only] => {
            return Err(format!(
                "SES delivered it to {only}, not to the rotation's address {target}"
            ));
        }
        many => {
            return Err(format!(
                "SES delivered it to {} recipients, not to the rotation's address alone",
                many.len()
            ));
        }
    }
    if !facts.mail.to.contains(target) {
        return Err(format!("its To header does not name {target}"));
    }
    match facts
        .mail
        .to
        .iter()
        .chain(&facts.mail.cc)
        .find(|a| *a != target)
    {
        Some(other) => Err(format!("it is also addressed to {other}")),
        None => Ok(()),
    }
}

/// Exactly one secret of the kind the rotation takes, and for a link, exactly
/// one on AWS's host. AWS's reset and recovery mails may also link its help
/// pages (`docs.aws.amazon.com/.../id_credentials_mfa_lost-or-broken.html`),
/// which the secret rules take for links of the same kind: they are not the
/// link meant, and do not make the one on AWS's host ambiguous. None, or
/// more than one, is a secret unread; a link off AWS's host is untrusted.
fn the_one_secret<'a>(facts: &HandoffFacts<'a>) -> Result<&'a FoundSecret, HandoffRefusal> {
    let Some((wanted, host)) = wanted_secret(facts.kind) else {
        return Err(HandoffRefusal::Untrusted(format!(
            "no rotation takes a secret from {} mail",
            facts.kind
        )));
    };
    let of_kind = || facts.secrets.iter().filter(|s| s.kind == wanted);
    if of_kind().next().is_none() {
        let reason = format!("it holds no {}", wanted.as_str());
        return Err(HandoffRefusal::SecretUnread(reason));
    }
    let on_host = |s: &&FoundSecret| host.is_none_or(|h| link_host_within(s.value.expose(), h));
    let mut candidates = of_kind().filter(on_host);
    let Some(first) = candidates.next() else {
        return Err(HandoffRefusal::Untrusted(format!(
            "its {} is not an https link on {}",
            wanted.as_str(),
            host.unwrap_or_default()
        )));
    };
    if candidates.next().is_some() {
        return Err(HandoffRefusal::SecretUnread(format!(
            "it holds more than one {}: which one is meant is not clear",
            wanted.as_str()
        )));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind whose rules must name exact senders has the one address a
    /// rotation takes its secret from, and the built-in rules classify mail
    /// from it as that kind.
    #[test]
    fn each_secret_kind_has_its_sender_and_the_rules_name_it() {
        let rules = crate::Rules::built_in();
        for kind in Kind::ALL.iter().filter(|k| k.policy().strict_sender) {
            let sender = secret_sender(*kind).unwrap_or_else(|| panic!("{kind}"));
            assert!(
                rules
                    .rules()
                    .iter()
                    .any(|r| r.kind == *kind && r.from.iter().any(|f| f == sender)),
                "{kind}: {sender}"
            );
        }
        assert_eq!(secret_sender(Kind::ContactChange), None);
    }

    #[test]
    fn only_aws_s_notice_of_the_change_is_evidence_of_it() {
        let is_evidence_of = |awaited, kind| {
            is_evidence_of(
                awaited,
                kind,
                Some("A new MFA device was added to your AWS account"),
            )
        };
        assert!(is_evidence_of(Kind::ContactChange, Kind::ContactChange));
        assert!(is_evidence_of(Kind::MfaChange, Kind::MfaChange));
        // Mail anyone can make AWS send to an address.
        for other in [
            Kind::SesVerification,
            Kind::AwsUnclassified,
            Kind::AccountWelcome,
            Kind::MfaChange,
        ] {
            assert!(!is_evidence_of(Kind::ContactChange, other), "{other}");
        }
        assert!(!is_evidence_of(Kind::MfaChange, Kind::ContactChange));
        assert!(!is_evidence_of(Kind::PasswordReset, Kind::PasswordReset));
    }

    /// AWS's MFA notices are one kind for devices added and removed: only an
    /// addition confirms the engineer's MFA step (the corpus's subjects).
    #[test]
    fn a_notice_of_an_mfa_device_removed_is_no_evidence_of_one_added() {
        let evidence = |subject| is_evidence_of(Kind::MfaChange, Kind::MfaChange, subject);
        assert!(evidence(Some(
            "A new MFA device was added to your AWS account"
        )));
        assert!(evidence(Some(
            "Multi-Factor Authentication (MFA) Has Been Activated"
        )));
        for removed in [
            "Multi-Factor Authentication (MFA) Has Been Deactivated",
            "An MFA device was removed from your AWS account root user",
            "A security key was removed from your AWS account root user",
            "MFA device removed and a new one added",
        ] {
            assert!(!evidence(Some(removed)), "{removed}");
        }
        assert!(!evidence(None), "no subject: the engineer attests");
        assert!(is_evidence_of(
            Kind::ContactChange,
            Kind::ContactChange,
            None
        ));
    }
}
