//! One message in, one decision out: the whole pure pipeline.

use crate::auth::{
    Authentication, authenticate, foreign_reply_path, lookalike_warning, spoofing_reason,
};
use crate::directory::{Account, AccountDirectory, resolve};
use crate::mail::{ParseError, ParsedMail, is_textual, parse};
use crate::render::{AttachmentRef, RenderInput, TicketDraft, render};
use crate::rules::{RuleInput, Rules};
use crate::secret::FoundSecret;
use crate::secrets::{Redactor, find_secrets};
use crate::ses::{SETUP_NOTIFICATION_OBJECT, envelope};
use crate::thread::{KnownThreads, ThreadFacts, case_id, thread_key};
use crate::types::{AccountId, CaseId, ContentHash, Disposition, Kind, Priority, ThreadKey};
use serde::Serialize;

/// Whether a credential rotation waits for a secret of this kind for this account.
pub trait WaitingRotations {
    fn is_waiting(&self, account: &AccountId, kind: Kind) -> bool;
}

/// No rotation ever waits (the `triage` command, and until the lifecycle exists).
pub struct NoRotations;

impl WaitingRotations for NoRotations {
    fn is_waiting(&self, _: &AccountId, _: Kind) -> bool {
        false
    }
}

/// The ports triage reads; all synchronous and side-effect free.
pub struct Context<'a> {
    pub directory: &'a dyn AccountDirectory,
    pub rules: &'a Rules,
    pub known_threads: &'a dyn KnownThreads,
    pub rotations: &'a dyn WaitingRotations,
}

/// One raw message and where its original is kept.
pub struct MailInput<'a> {
    pub raw: &'a [u8],
    /// Shown in tickets so an engineer can open the original (path, `s3://` URL).
    pub origin: &'a str,
    /// The stored object's own name (SES names its setup notification).
    pub object_name: Option<&'a str>,
}

/// The decision about one message. Secrets keep their values for a handoff but
/// never serialize them.
#[derive(Debug, Clone, Serialize)]
pub struct Triage {
    pub kind: Kind,
    pub disposition: Disposition,
    pub account_id: Option<AccountId>,
    pub customer: Option<String>,
    pub priority: Option<Priority>,
    pub thread_key: ThreadKey,
    pub ticket: Option<TicketDraft>,
    pub secrets: Vec<FoundSecret>,
    pub authentication: Authentication,
    pub warnings: Vec<String>,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub case_id: Option<CaseId>,
    pub content_hash: ContentHash,
    #[serde(skip)]
    pub ses_message_id: Option<String>,
}

pub fn triage(input: &MailInput<'_>, ctx: &Context<'_>) -> Triage {
    triage_parsed(&parse(input.raw), &ContentHash::of(input.raw), input, ctx)
}

/// Triage of a message already parsed and hashed (a caller that must claim the
/// message and look up the threads of `ParsedMail::referenced_ids` before triage
/// parses and hashes it only once).
pub fn triage_parsed(
    parsed: &Result<ParsedMail, ParseError>,
    hash: &ContentHash,
    input: &MailInput<'_>,
    ctx: &Context<'_>,
) -> Triage {
    let hash = hash.clone();
    match parsed {
        Ok(mail) => triage_mail(mail, input, ctx, hash),
        Err(error) => unparseable(input, hash, &error.to_string()),
    }
}

fn triage_mail(
    mail: &ParsedMail,
    input: &MailInput<'_>,
    ctx: &Context<'_>,
    hash: ContentHash,
) -> Triage {
    let auth = authenticate(mail);
    let env = envelope(mail);
    let mut warnings = mail.warnings.clone();
    warnings.extend(lookalike_warning(mail, &auth));
    let resolution = resolve(mail, &env.recipients, ctx.directory);
    warnings.extend(resolution.warnings.iter().cloned());
    let account = resolution.account;

    let raw_subject = mail.subject.clone().unwrap_or_default();
    let detection_text = format!("{raw_subject}\n{}\n{}", mail.text, mail.alternative_text);
    let secrets = find_secrets(&detection_text, ctx.rules);
    let redactor = Redactor::new(&secrets);

    let (kind, rule_priority, quarantine_reason) = classify(mail, input, &auth, ctx.rules);
    if let Some(reason) = &quarantine_reason {
        warnings.push(reason.clone());
    } else if auth.aws_sender && auth.verified {
        warnings.extend(foreign_reply_path(mail).map(|r| format!("{r}: do not reply to it")));
    }
    let (disposition, priority) = decide(
        kind,
        rule_priority,
        account.as_ref(),
        auth.verified && !secrets.is_empty(),
        ctx.rotations,
        &mut warnings,
    );

    let case = case_id(&raw_subject);
    let thread = thread_key(
        &ThreadFacts {
            kind,
            account: account.as_ref().map(|a| &a.account_id),
            subject: &raw_subject,
            case: case.as_ref(),
            message_id: mail.message_id.as_deref(),
            references: &mail.references,
            in_reply_to: &mail.in_reply_to,
            content_hash: &hash,
        },
        ctx.known_threads,
    );

    // Secret-bearing mail whose secret was not found may hold it in a form the
    // rules do not know: show none of its text rather than risk showing the secret.
    let withheld_reason = quarantine_reason.clone().or_else(|| {
        (kind.policy().carries_secret && secrets.is_empty()).then(|| {
            let reason = format!(
                "a {kind} mail normally holds a code or link, and none was found: its text is withheld, open the original"
            );
            warnings.push(reason.clone());
            reason
        })
    });
    let subject = mail.subject.as_deref().map(|s| redactor.redact(s));
    let warnings: Vec<String> = warnings.iter().map(|w| redactor.redact(w)).collect();
    let attachments = attachment_refs(mail, ctx.rules);
    let ticket = match (disposition, priority) {
        (Disposition::Ticket | Disposition::Quarantine, Some(priority)) => {
            let redacted_text = redactor.redact(&mail.text);
            let draft = render(&RenderInput {
                kind,
                priority,
                account: account.as_ref(),
                subject: subject.as_deref(),
                mail: Some(mail),
                envelope: &env.recipients,
                auth: &auth,
                case: case.as_ref(),
                secrets: &secrets,
                redacted_text: &redacted_text,
                origin: input.origin,
                attachments: &attachments,
                withheld_reason: withheld_reason.as_deref(),
                warnings: &warnings,
            });
            // Every field was redacted on the way in; one pass over the result also
            // covers what came from headers (sender names, addresses).
            Some(TicketDraft {
                subject: redactor.redact(&draft.subject),
                body: redactor.redact(&draft.body),
                internal_note: redactor.redact(&draft.internal_note),
                attachments: draft.attachments,
            })
        }
        _ => None,
    };

    Triage {
        kind,
        disposition,
        account_id: account.as_ref().map(|a| a.account_id.clone()),
        customer: account.as_ref().map(|a| a.customer.clone()),
        priority,
        thread_key: thread,
        ticket,
        secrets,
        authentication: auth,
        warnings,
        message_id: mail.message_id.clone(),
        subject: subject.filter(|_| withheld_reason.is_none()),
        case_id: case,
        content_hash: hash,
        ses_message_id: env.ses_message_id,
    }
}

/// The taxonomy's disposition and priority for the kind, then: a verified secret
/// goes to a rotation that waits for it; a retired account's mail is archived.
fn decide(
    kind: Kind,
    rule_priority: Option<Priority>,
    account: Option<&Account>,
    verified_secret: bool,
    rotations: &dyn WaitingRotations,
    warnings: &mut Vec<String>,
) -> (Disposition, Option<Priority>) {
    let policy = kind.policy();
    let mut disposition = policy.disposition;
    if let Some(account) = account {
        if policy.feeds_rotation
            && verified_secret
            && rotations.is_waiting(&account.account_id, kind)
        {
            disposition = Disposition::Handoff;
        }
        if account.status.is_retired()
            && matches!(disposition, Disposition::Ticket | Disposition::Handoff)
        {
            warnings.push(format!(
                "account {} is {}: archived, no ticket",
                account.account_id,
                account.status.as_str()
            ));
            disposition = Disposition::Archive;
        }
    }
    let priority = match disposition {
        Disposition::Archive | Disposition::Handoff => None,
        Disposition::Ticket | Disposition::Quarantine => rule_priority.or(policy.priority),
    };
    (disposition, priority)
}

/// The kind, a rule's priority override, and why the mail is quarantined if it is.
fn classify(
    mail: &ParsedMail,
    input: &MailInput<'_>,
    auth: &Authentication,
    rules: &Rules,
) -> (Kind, Option<Priority>, Option<String>) {
    if input.object_name.is_some_and(is_setup_notification) {
        return (Kind::SesSetup, None, None);
    }
    if auth.spam_or_virus_failed() {
        let which = match (auth.spam.as_deref(), auth.virus.as_deref()) {
            (_, Some("FAIL")) => "SES virus scan failed",
            _ => "SES spam verdict is FAIL",
        };
        return (Kind::MailRejected, None, Some(which.to_string()));
    }
    if let Some(reason) = spoofing_reason(mail, auth) {
        return (
            Kind::PhishingSuspected,
            None,
            Some(format!("suspected phishing: {reason}")),
        );
    }
    if !(auth.aws_sender && auth.verified) {
        return (Kind::Unknown, None, None);
    }
    let from = mail
        .from
        .as_ref()
        .and_then(|f| f.address.as_ref())
        .map_or("", |a| a.as_str());
    let has_header = |name: &str| mail.header(name).is_some();
    let rule_input = RuleInput {
        from,
        subject: mail.subject.as_deref().unwrap_or_default(),
        body: &mail.text,
        has_header: &has_header,
    };
    match rules.classify(&rule_input) {
        // A secret from AWS goes nowhere but AWS's own reply path.
        Some(rule) if rule.kind.policy().carries_secret => match foreign_reply_path(mail) {
            Some(reason) => (
                Kind::PhishingSuspected,
                None,
                Some(format!(
                    "suspected phishing: a {} mail that authenticates as AWS, but {reason} (a replayed or altered AWS mail?)",
                    rule.kind
                )),
            ),
            None => (rule.kind, rule.priority, None),
        },
        Some(rule) => (rule.kind, rule.priority, None),
        None => (Kind::Unknown, None, None),
    }
}

fn is_setup_notification(name: &str) -> bool {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.strip_suffix(".eml").unwrap_or(file) == SETUP_NOTIFICATION_OBJECT
}

/// The attachments a ticket may carry. A textual one is withheld when it holds a
/// secret, or when it is too long to have been searched whole.
fn attachment_refs(mail: &ParsedMail, rules: &Rules) -> Vec<AttachmentRef> {
    mail.attachments
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let withheld = match &a.text {
                Some(text) => {
                    let found = find_secrets(text, rules);
                    (!found.is_empty())
                        .then(|| format!("it holds {}", describe_secret_kinds(&found)))
                }
                None if is_textual(&a.content_type) => {
                    Some("text too long to search for secrets".to_string())
                }
                None => None,
            };
            AttachmentRef {
                index,
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: a.size,
                withheld,
            }
        })
        .collect()
}

fn describe_secret_kinds(found: &[FoundSecret]) -> String {
    let mut kinds: Vec<&str> = found.iter().map(|s| s.kind.as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    format!("a secret ({})", kinds.join(", "))
}

fn unparseable(input: &MailInput<'_>, hash: ContentHash, error: &str) -> Triage {
    let auth = Authentication::default();
    let priority = Kind::MailUnparseable
        .policy()
        .priority
        .unwrap_or(Priority::Normal);
    let reason = format!(
        "not parseable as a message: {error} ({} bytes)",
        input.raw.len()
    );
    let warnings = vec![reason.clone()];
    let ticket = render(&RenderInput {
        kind: Kind::MailUnparseable,
        priority,
        account: None,
        subject: None,
        mail: None,
        envelope: &[],
        auth: &auth,
        case: None,
        secrets: &[],
        redacted_text: "",
        origin: input.origin,
        attachments: &[],
        withheld_reason: Some(&reason),
        warnings: &[],
    });
    Triage {
        kind: Kind::MailUnparseable,
        disposition: Disposition::Quarantine,
        account_id: None,
        customer: None,
        priority: Some(priority),
        thread_key: ThreadKey::content(&hash),
        ticket: Some(ticket),
        secrets: Vec::new(),
        authentication: auth,
        warnings,
        message_id: None,
        subject: None,
        case_id: None,
        content_hash: hash,
        ses_message_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::InMemoryDirectory;
    use crate::thread::NoKnownThreads;
    use crate::types::{AccountStatus, EmailAddress};

    const PASS: &str = "Authentication-Results: amazonses.com;\r\n spf=pass envelope-from=x@amazonses.com;\r\n \
        dkim=pass header.i=@verify.signin.aws;\r\n dmarc=pass header.from=verify.signin.aws;\r\n";

    fn directory(status: AccountStatus) -> InMemoryDirectory {
        InMemoryDirectory::new([Account {
            root_email: EmailAddress::parse("root+x@msp.example").unwrap(),
            account_id: AccountId::parse("111122223333").unwrap(),
            customer: "Acme".into(),
            status,
        }])
        .unwrap()
    }

    fn reset_mail(auth: &str) -> String {
        format!(
            "{auth}From: password-reset-no-reply@verify.signin.aws\r\nTo: root+x@msp.example\r\n\
             Subject: Amazon Web Services Password Assistance\r\nMessage-ID: <r1@aws>\r\n\
             Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             Use the button in this mail to reset your password.\r\n--b\r\nContent-Type: text/html\r\n\r\n\
             <a href=\"https://signin.aws.amazon.com/resetpassword?token=Zq9Xk2&amp;type=RESET\">Reset</a>\r\n--b--\r\n"
        )
    }

    struct Waiting;
    impl WaitingRotations for Waiting {
        fn is_waiting(&self, account: &AccountId, kind: Kind) -> bool {
            account.as_str() == "111122223333" && kind == Kind::PasswordReset
        }
    }

    fn run(raw: &str, dir: &InMemoryDirectory, rotations: &dyn WaitingRotations) -> Triage {
        let rules = Rules::built_in();
        let ctx = Context {
            directory: dir,
            rules: &rules,
            known_threads: &NoKnownThreads,
            rotations,
        };
        triage(
            &MailInput {
                raw: raw.as_bytes(),
                origin: "t.eml",
                object_name: None,
            },
            &ctx,
        )
    }

    #[test]
    fn a_secret_only_in_the_html_alternative_is_found_and_never_shown() {
        let t = run(
            &reset_mail(PASS),
            &directory(AccountStatus::Active),
            &NoRotations,
        );
        assert_eq!(t.kind, Kind::PasswordReset);
        assert_eq!(t.secrets.len(), 1);
        assert_eq!(t.secrets[0].kind, crate::SecretKind::ResetLink);
        assert!(
            t.secrets[0]
                .value
                .expose()
                .ends_with("token=Zq9Xk2&type=RESET")
        );
        let shown = serde_json::to_string(&t).unwrap();
        assert!(!shown.contains("Zq9Xk2"), "{shown}");
        assert_eq!(t.disposition, Disposition::Ticket);
    }

    #[test]
    fn a_waiting_rotation_gets_the_secret_only_from_authenticated_mail() {
        let dir = directory(AccountStatus::Onboarding);
        let t = run(&reset_mail(PASS), &dir, &Waiting);
        assert_eq!(
            (t.disposition, t.priority, t.ticket.is_some()),
            (Disposition::Handoff, None, false)
        );

        let forged = run(&reset_mail(""), &dir, &Waiting);
        assert_eq!(forged.kind, Kind::PhishingSuspected);
        assert_eq!(forged.disposition, Disposition::Quarantine);
    }

    #[test]
    fn a_secret_bearing_mail_whose_secret_is_not_found_shows_none_of_its_text() {
        let raw = format!(
            "{}From: no-reply@signin.aws\r\nTo: root+x@msp.example\r\nSubject: Verify your identity\r\n\r\n\
             Enter these digits to finish signing in: 4 8 3 - 9 2 0\r\n",
            PASS.replace("verify.signin.aws", "signin.aws")
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        assert_eq!(
            (t.kind, t.disposition),
            (Kind::SigninOtp, Disposition::Ticket)
        );
        assert!(t.secrets.is_empty());
        let ticket = t.ticket.expect("still a ticket: someone is signing in");
        assert!(!ticket.body.contains("4 8 3"), "{}", ticket.body);
        assert!(
            ticket
                .body
                .contains("Text withheld: a security.signin_otp mail normally holds")
        );
        assert_eq!(
            ticket.subject,
            "[Acme / 111122223333] security.signin_otp mail (text withheld)"
        );
        assert_eq!(t.subject, None);
    }

    #[test]
    fn mail_for_a_released_account_is_archived() {
        let t = run(
            &reset_mail(PASS),
            &directory(AccountStatus::Released),
            &NoRotations,
        );
        assert_eq!(
            (t.disposition, t.priority, t.ticket.is_none()),
            (Disposition::Archive, None, true)
        );
        assert!(
            t.warnings.iter().any(|w| w.contains("is released")),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn the_ses_setup_notification_is_known_by_its_object_name() {
        let raw =
            "From: no-reply-aws@amazon.com\r\nSubject: Amazon SES Setup Notification\r\n\r\nhello";
        let dir = directory(AccountStatus::Active);
        let rules = Rules::built_in();
        let ctx = Context {
            directory: &dir,
            rules: &rules,
            known_threads: &NoKnownThreads,
            rotations: &NoRotations,
        };
        let named = MailInput {
            raw: raw.as_bytes(),
            origin: "s3://b/inbound/x",
            object_name: Some("AMAZON_SES_SETUP_NOTIFICATION"),
        };
        assert_eq!(triage(&named, &ctx).kind, Kind::SesSetup);
        let other = MailInput {
            raw: raw.as_bytes(),
            origin: "x",
            object_name: Some("abc123"),
        };
        assert_eq!(
            triage(&other, &ctx).kind,
            Kind::PhishingSuspected,
            "the same bytes under another name are not trusted"
        );
    }

    fn mail_with_attachments(evidence: &str) -> String {
        format!(
            "{PASS}From: trustandsafety@support.aws.com\r\nTo: root+x@msp.example\r\n\
             Subject: AWS Abuse Report\r\nMessage-ID: <a1@aws>\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             Evidence attached.\r\n--b\r\nContent-Type: text/plain; name=evidence.txt\r\n\
             Content-Disposition: attachment; filename=evidence.txt\r\n\r\n{evidence}\r\n\
             --b\r\nContent-Type: application/pdf; name=report.pdf\r\n\
             Content-Disposition: attachment; filename=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n\
             JVBERi0xLjQK\r\n--b--\r\n"
        )
        .replace("verify.signin.aws", "support.aws.com")
    }

    #[test]
    fn attachments_are_offered_unless_their_text_holds_a_secret() {
        let dir = directory(AccountStatus::Active);
        let plain = run(
            &mail_with_attachments("203.0.113.19 hosted it"),
            &dir,
            &NoRotations,
        );
        let ticket = plain.ticket.expect("a ticket");
        let names: Vec<(&str, bool)> = ticket
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.withheld.is_none()))
            .collect();
        assert_eq!(names, [("evidence.txt", true), ("report.pdf", true)]);

        let leaky = run(
            &mail_with_attachments("Your verification code is 493817"),
            &dir,
            &NoRotations,
        );
        let ticket = leaky.ticket.expect("a ticket");
        let evidence = &ticket.attachments[0];
        assert!(
            evidence
                .withheld
                .as_deref()
                .is_some_and(|w| w.contains("secret")),
            "{evidence:?}"
        );
        assert!(
            ticket.attachments[1].withheld.is_none(),
            "the PDF is opaque"
        );
        assert!(ticket.body.contains("evidence.txt"));
        assert!(ticket.body.contains("[not attached: it holds a secret"));
        assert!(!ticket.body.contains("493817"));
    }

    #[test]
    fn the_internal_note_holds_authentication_and_the_original() {
        let dir = directory(AccountStatus::Active);
        let ticket = run(&mail_with_attachments("x"), &dir, &NoRotations)
            .ticket
            .expect("a ticket");
        assert!(ticket.internal_note.contains("Authentication: spf=pass"));
        assert!(ticket.internal_note.contains("Original message: t.eml"));
        assert!(!ticket.body.contains("Authentication:"));
        assert!(!ticket.body.contains("t.eml"));
    }

    #[test]
    fn attachment_bytes_are_the_decoded_part() {
        let raw = mail_with_attachments("evidence text");
        let pdf = crate::mail::attachment_bytes(raw.as_bytes(), 1).expect("second attachment");
        assert_eq!(pdf, b"%PDF-1.4\n");
        assert_eq!(crate::mail::attachment_bytes(raw.as_bytes(), 2), None);
    }
}
