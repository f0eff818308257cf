//! One message in, one decision out: the whole pure pipeline.

use crate::auth::{
    Authentication, authenticate, foreign_reply_path, lookalike_warning, spoofing_reason,
};
use crate::directory::{Account, AccountDirectory, Resolution, resolve};
use crate::evidence::{Classification, KindScore, RuleInput};
use crate::explain::{Explanation, account_reason, kind_reason, thread_reason};
use crate::facts::{Facts, facts};
use crate::handoff::{
    Handoff, HandoffFacts, HandoffRefusal, NoRotations, UnreadSecret, WaitingRotation,
    WaitingRotations, decide_handoff,
};
use crate::mail::{Attachment, ParseError, ParsedMail, parse};
use crate::render::{AttachmentRef, RenderInput, TicketDraft, render};
use crate::rules::Rules;
use crate::secret_scan::{
    FoundSecrets, MAX_REDACTED_BYTES, MAX_SECRETS, Redactor, find_secrets_bounded,
    find_secrets_from,
};
use crate::secret_value::FoundSecret;
use crate::ses::{Envelope, SETUP_NOTIFICATION_OBJECT, envelope};
use crate::thread::{KnownThreads, NoKnownThreads, ThreadFacts, case_id, thread_key};
use crate::types::{
    AccountId, AccountStatus, CaseId, ContentHash, Disposition, Kind, Priority, ThreadKey,
};
use serde::Serialize;
use std::panic::AssertUnwindSafe;

/// The ports triage reads; all synchronous and side-effect free.
pub struct Context<'a> {
    pub directory: &'a dyn AccountDirectory,
    pub rules: &'a Rules,
    pub known_threads: &'a dyn KnownThreads,
    pub rotations: &'a dyn WaitingRotations,
}

impl<'a> Context<'a> {
    /// Only a directory and the rules: no stored thread is known and no
    /// rotation waits (the command line's triage, the warm-up, a triage made
    /// ahead of ingest's lookups).
    pub fn without_stores(directory: &'a dyn AccountDirectory, rules: &'a Rules) -> Self {
        Self {
            directory,
            rules,
            known_threads: &NoKnownThreads,
            rotations: &NoRotations,
        }
    }
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
    /// What the mail names: account, case and key ids, amounts, dates.
    pub facts: Facts,
    pub content_hash: ContentHash,
    #[serde(skip)]
    pub ses_message_id: Option<String>,
    /// What a waiting rotation receives, when the disposition is `handoff`.
    #[serde(skip)]
    pub handoff: Option<Handoff>,
    /// The rotation this mail's secret was meant for, when it is AWS's own
    /// mail to that rotation alone but no one secret was read in it (none
    /// found, or more than one): the rotation is told it came, and gets
    /// nothing of it (see `HandoffRefusal::SecretUnread`).
    #[serde(skip)]
    pub secret_unread_for: Option<UnreadSecret>,
    /// The original holds a secret (in its text, an attachment or an
    /// attachment's name) or may hold one (its text is withheld, or a text
    /// file of mail not from AWS went unsearched): it is sealed from the
    /// ticket writer, and nothing of it is attached.
    #[serde(default)]
    pub sealed: bool,
    /// Why: the evidence, the account and the thread (`triage --explain`).
    #[serde(skip)]
    pub explanation: Explanation,
}

pub fn triage(input: &MailInput<'_>, ctx: &Context<'_>) -> Triage {
    let parsed = parse(input.raw);
    let hash = match &parsed {
        Ok(mail) => crate::ses::delivery_key(input.raw, mail, crate::ses::envelope(mail)),
        Err(_) => ContentHash::of(input.raw),
    };
    triage_parsed(&parsed, &hash, input, ctx)
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
    match parsed {
        // A panic is a bug that this message reached: it is quarantined with
        // its original kept, as an unreadable one is, and the rest of a
        // batch goes on (the panic's place is in the log).
        Ok(mail) => std::panic::catch_unwind(AssertUnwindSafe(|| {
            triage_mail(mail, input, ctx, hash.clone())
        }))
        .unwrap_or_else(|_| unparseable(input, hash.clone(), TRIAGE_FAILED)),
        Err(error) => {
            let reason = format!("not parseable as a message: {error}");
            unparseable(input, hash.clone(), &reason)
        }
    }
}

/// Why a message whose triage panicked is quarantined.
const TRIAGE_FAILED: &str =
    "rootmail failed while deciding what it is (an internal error; the log says where)";

fn triage_mail(
    mail: &ParsedMail,
    input: &MailInput<'_>,
    ctx: &Context<'_>,
    hash: ContentHash,
) -> Triage {
    let mut warnings = mail.warnings.clone();
    let seen = Addressed::read(mail, ctx.directory, &mut warnings);
    let decided = classify(mail, input, &seen.auth, ctx.rules);
    note_classification(&decided, mail, seen.from_aws, &mut warnings);
    let Secrets {
        found,
        redaction,
        unshowable,
        in_attachments,
    } = Secrets::of(mail, ctx.rules, search_scope(&seen, &decided));
    let secrets = found.secrets;
    let handoff_input = HandoffInput {
        kind: decided.kind,
        mail,
        auth: &seen.auth,
        env: &seen.env,
        resolution: &seen.resolution,
        secrets: &secrets,
        read_loosely: unshowable.read_loosely,
    };
    let outcome = decide_outcome(&handoff_input, &decided, ctx.rotations, &mut warnings);

    let kept = directory_strings(seen.account());
    let content = Content::redacted(mail, (&redaction, &kept), &seen, decided.kind);
    let thread = seen.thread(mail, decided.kind, content.case.as_ref(), &hash, ctx);
    let withheld_reason = decided
        .quarantine
        .clone()
        .or_else(|| withheld_text(decided.kind, &secrets, unshowable, &mut warnings));
    let redactor = &redaction.redactor;
    let warnings = redacted_all(&warnings, redactor, &kept);
    let decision = Decision {
        mail,
        in_attachments,
        unshowable,
        warnings,
        kept,
        seen,
        decided,
        outcome,
        secrets,
        content,
        thread,
        withheld_reason,
    };
    let ticket = decision.ticket(input, redactor);
    decision.into_triage(ticket, hash)
}

/// What of the secret search's finds count for this mail.
struct SearchScope {
    /// Tokens near a code's words are a person's secret, or AWS's invoice
    /// and request numbers: redacted unless AWS wrote them in ordinary mail
    /// (not one that quotes a person's words).
    near_too: bool,
    /// What only the code rules found is a name: in AWS's alerts (health,
    /// budgets, cost anomalies, the free tier), which name resources so
    /// ("the function code listed below: ORDERS26") and never carry a code
    /// (AWS's root email codes may hold letters, so no shape tells them
    /// from names).
    codes_are_names: bool,
    /// The mail is authenticated AWS mail: the rules its sender's address
    /// names read it too (`rules.toml`'s `from`; a forged sender's mail is
    /// read by the rules for all mail alone).
    from_aws: bool,
}

fn search_scope(seen: &Addressed, decided: &Decided) -> SearchScope {
    let kind = decided.kind;
    let policy = kind.policy();
    let near_too = !seen.from_aws || policy.carries_secret || kind.relays_others_words();
    SearchScope {
        near_too,
        codes_are_names: !near_too && policy.repeating_alert,
        from_aws: seen.from_aws,
    }
}

/// What secrets a message holds, and the redactor of all of them.
struct Secrets {
    /// The message's own (only these are ever handed over).
    found: FoundSecrets,
    /// How the message's text and its attachments' are shown.
    redaction: Redaction,
    /// What of its secrets keeps the message's text from being shown.
    unshowable: Unshowable,
    /// Why each attachment that holds a secret is withheld.
    in_attachments: Vec<Option<String>>,
}

impl Secrets {
    /// The tokens near a code's or password's words are redacted where
    /// `scope` says (`FoundSecrets::nearby`), and what only the code rules
    /// found is among them where it says codes are names
    /// (`FoundSecrets::codes_as_nearby`).
    fn of(mail: &ParsedMail, rules: &Rules, scope: SearchScope) -> Self {
        let near_too = scope.near_too;
        let text = detection_text(mail);
        let sender = mail.from.as_ref().and_then(|s| s.address.as_ref());
        let sender = sender.filter(|_| scope.from_aws).map(|a| a.as_str());
        let mut found = find_secrets_from(&text, rules, sender);
        let (mut escaped, unredactable) = behind_escapes(&text, rules, sender);
        found.read_loosely |= escaped.read_loosely;
        let mut attached = attachment_secrets(mail, rules);
        // Searched on its own and redacted first, so neither bound on the
        // text's secrets leaves it unsearched; never handed over.
        let mut in_headers = find_secrets_from(&shown_headers(mail), rules, None);
        if scope.codes_are_names {
            let each = [&mut in_headers, &mut found, &mut escaped].into_iter();
            each.chain(&mut attached)
                .for_each(FoundSecrets::codes_as_nearby);
        }
        let all = [&in_headers, &found, &escaped].into_iter().chain(&attached);
        let (redactor, fits) = Redactor::within(
            all.flat_map(|f| {
                let near = if near_too { f.nearby.as_slice() } else { &[] };
                f.secrets.iter().chain(&f.spellings).chain(near)
            }),
            MAX_REDACTED_BYTES,
        );
        Self {
            unshowable: Unshowable {
                overflowed: found.overflowed || in_headers.overflowed,
                in_headers: !in_headers.secrets.is_empty(),
                too_long: !fits,
                escaped: unredactable,
                read_loosely: found.read_loosely,
            },
            in_attachments: attached.iter().map(describe_attachment_secrets).collect(),
            redaction: Redaction {
                redactor,
                unread_attachments: attached.iter().map(|f| f.overflowed).collect(),
            },
            found,
        }
    }
}

/// The secrets only JSON's escapes hide (`\\n615274`, `https:\\/\\/...`),
/// found in `text` read as JSON would be ([`escapes_read`]): redacted where
/// the text writes them as found, and never handed over. True when one of
/// them is not written so in `text` (an escape stands inside it): it could
/// not be redacted there, so the text must not be shown.
fn behind_escapes(text: &str, rules: &Rules, sender: Option<&str>) -> (FoundSecrets, bool) {
    let std::borrow::Cow::Owned(read) = escapes_read(text) else {
        return (FoundSecrets::default(), false);
    };
    let found = find_secrets_from(&read, rules, sender);
    let redactable = found
        .secrets
        .iter()
        .chain(&found.spellings)
        .all(|s| text.contains(s.value.expose()));
    let unredactable = found.overflowed || !redactable;
    (found, unredactable)
}

/// The header text warnings and the ticket quote: the senders' names and
/// addresses as written, and every From, Sender, Reply-To, Return-Path, To
/// and Cc field (a warning may quote the first of several From fields, or
/// any Sender or Reply-To; the ticket's To line is the last To field's).
/// No more than the mail's header block: linear.
fn shown_headers(mail: &ParsedMail) -> String {
    const SHOWN: [&str; 6] = ["From", "Sender", "Reply-To", "Return-Path", "To", "Cc"];
    let mut text = String::new();
    let senders = mail.from.iter().chain(&mail.more_from);
    let parsed = senders.flat_map(|s| [s.name.as_deref(), s.written.as_deref()]);
    let fields = SHOWN.iter().flat_map(|name| mail.headers_named(name));
    for part in parsed.flatten().chain(fields) {
        text.push_str(part);
        text.push('\n');
    }
    text
}

/// The text secrets are searched in: the subject, the text shown, the HTML
/// alternative (a secret only the alternative holds must still be found),
/// the senders' names and the attachments' names (listed in the ticket).
fn detection_text(mail: &ParsedMail) -> String {
    let raw_subject = mail.subject.as_deref().unwrap_or_default();
    let mut text = format!("{raw_subject}\n{}\n{}", mail.text, mail.alternative_text);
    // The sender's name and address are shown too, as written.
    let senders = mail.from.iter().chain(&mail.more_from);
    let shown = senders.flat_map(|s| [s.name.as_deref(), s.written.as_deref()]);
    let names = mail.attachments.iter().map(|a| Some(a.name.as_str()));
    for part in shown.chain(names).flatten() {
        text.push('\n');
        text.push_str(part);
    }
    text
}

/// Who sent the mail, as far as it authenticates, and the account it is for.
struct Addressed {
    auth: Authentication,
    env: Envelope,
    resolution: Resolution,
    /// Authenticated AWS mail: only it may name its account by an id in its
    /// text (anyone can write an account id into a mail).
    from_aws: bool,
}

impl Addressed {
    /// Authenticates the sender and resolves the account, adding the
    /// look-alike sender's and the account lookup's warnings.
    fn read(
        mail: &ParsedMail,
        directory: &dyn AccountDirectory,
        warnings: &mut Vec<String>,
    ) -> Self {
        let auth = authenticate(mail);
        let env = envelope(mail).clone();
        warnings.extend(lookalike_warning(mail, &auth));
        let from_aws = auth.aws_sender && auth.verified;
        let resolution = resolve(mail, &env.recipients, directory, from_aws);
        warnings.extend(resolution.warnings.iter().cloned());
        Self {
            auth,
            env,
            resolution,
            from_aws,
        }
    }

    fn account(&self) -> Option<&Account> {
        self.resolution.account.as_ref()
    }

    /// The conversation this mail belongs to (see [`thread_key`]).
    fn thread(
        &self,
        mail: &ParsedMail,
        kind: Kind,
        case: Option<&CaseId>,
        hash: &ContentHash,
        ctx: &Context<'_>,
    ) -> ThreadKey {
        let account = self.account().map(|a| &a.account_id);
        let facts = ThreadFacts::of(mail, kind, account, case, self.from_aws, hash);
        thread_key(&facts, ctx.known_threads)
    }
}

/// Names again the thread of a mail triaged before the stores said which
/// threads the messages it refers to belong to (a triage made ahead, on the
/// guess that none is known). The known threads decide nothing in triage but
/// the thread key, and the explanation of it: the rest stands, so a reply
/// need not be triaged twice.
pub fn rethread(triage: &mut Triage, mail: &ParsedMail, known: &dyn KnownThreads) {
    let from_aws = triage.authentication.aws_sender && triage.authentication.verified;
    let facts = ThreadFacts::of(
        mail,
        triage.kind,
        triage.account_id.as_ref(),
        triage.case_id.as_ref(),
        from_aws,
        &triage.content_hash,
    );
    triage.thread_key = thread_key(&facts, known);
    triage.explanation.thread = thread_reason(triage);
}

/// The warnings classification adds: why the mail is quarantined, or for
/// authenticated AWS mail a reply path outside AWS (not to be replied to),
/// then what the rules noticed.
fn note_classification(
    decided: &Decided,
    mail: &ParsedMail,
    from_aws: bool,
    warnings: &mut Vec<String>,
) {
    if let Some(reason) = &decided.quarantine {
        warnings.push(reason.clone());
    } else if from_aws {
        warnings.extend(foreign_reply_path(mail).map(|r| format!("{r}: do not reply to it")));
    }
    warnings.extend(decided.warnings.iter().cloned());
}

/// What becomes of the mail: its disposition, its ticket's priority, and the
/// handoff to a waiting rotation when it goes to one.
struct Outcome {
    disposition: Disposition,
    priority: Option<Priority>,
    handoff: Option<Handoff>,
    secret_unread_for: Option<UnreadSecret>,
}

/// The handoff a waiting rotation may take, then the disposition and priority
/// ([`decide`]); the handoff is kept only when the mail is handed off.
fn decide_outcome(
    input: &HandoffInput<'_>,
    decided: &Decided,
    rotations: &dyn WaitingRotations,
    warnings: &mut Vec<String>,
) -> Outcome {
    let (handoff, secret_unread_for) = match waiting_handoff(input, rotations, warnings) {
        ForRotation::Nothing => (None, None),
        ForRotation::Handoff(handoff) => (Some(handoff), None),
        ForRotation::SecretUnread(waiting) => (None, Some(waiting)),
    };
    let account = input.resolution.account.as_ref();
    let rule_priority = raised_for_unclaimed_secret(input, decided.priority, warnings);
    let read_as = kind_that_matters_after_closure(decided, account).unwrap_or(input.kind);
    let (disposition, priority) = decide(
        (input.kind, read_as),
        rule_priority,
        account,
        handoff.is_some(),
        warnings,
    );
    let priority = at_most_high_for_another_account(priority, input.resolution, warnings);
    Outcome {
        disposition,
        priority,
        handoff: handoff.filter(|_| disposition == Disposition::Handoff),
        // Archived mail (a retired account's) tells no rotation either.
        secret_unread_for: secret_unread_for.filter(|_| disposition != Disposition::Archive),
    }
}

/// AWS's mail about an account unrelated to its recipient's
/// (`Resolution::about_another_account`) may be another account's notice to
/// its alternate contact: it pages no one.
fn at_most_high_for_another_account(
    priority: Option<Priority>,
    resolution: &Resolution,
    warnings: &mut Vec<String>,
) -> Option<Priority> {
    let (Some(Priority::Urgent), Some(about)) = (priority, &resolution.about_another_account)
    else {
        return priority;
    };
    // First: a ticket shows 20 warnings, and one per other id comes before.
    let warning = format!(
        "AWS's mail is about account {about}, not this root address's account, its payer's or its customer's: anyone can make this address their own account's alternate contact (billing, operations, security), and AWS then mails it that account's notices; high, not urgent: check whose account it is before acting"
    );
    warnings.insert(0, warning);
    Some(Priority::High)
}

/// A closed account's support case whose words read like a kind that is
/// ticketed (a security, account or payment kind reaching the threshold,
/// though the case's own words scored more) still matters, as AWS's own
/// mail of that kind would. Not a released account's: anyone may copy its
/// old address on a case, and the warning would blame the release.
fn kind_that_matters_after_closure(decided: &Decided, account: Option<&Account>) -> Option<Kind> {
    let closed = account.is_some_and(|a| a.status == AccountStatus::Closed);
    let classification = &decided.classification;
    let ticketed = |s: &&KindScore| {
        s.kind != Kind::SupportCase
            && s.score >= classification.threshold
            && s.kind.policy().disposition == Disposition::Ticket
    };
    let best = classification.scores.iter().find(ticketed);
    best.filter(|_| closed && decided.kind == Kind::SupportCase)
        .map(|s| s.kind)
}

/// Mail from AWS's sign-in and sign-up senders that no kind claims,
/// carrying a code or a link (an account sign-up's email verification, a
/// flow the rules do not know): unless someone here asked for it, someone
/// else is using the address, and an unexpected code is itself a security
/// signal. Other AWS mail's finds (a promotional code, a presigned link)
/// say nothing of the root user.
fn raised_for_unclaimed_secret(
    input: &HandoffInput<'_>,
    priority: Option<Priority>,
    warnings: &mut Vec<String>,
) -> Option<Priority> {
    // The domain as written, as authentication reads it (`signup.aws.` is
    // no valid address, yet DMARC passed for it).
    let identity_sender = (input.mail.from.as_ref())
        .and_then(|f| f.domain())
        .is_some_and(is_identity_domain);
    if input.kind != Kind::AwsUnclassified || input.secrets.is_empty() || !identity_sender {
        return priority;
    }
    warnings.push(
        "AWS's mail that no kind claims carries a code or link for the root user: unless someone here asked for it, someone else is using this address (raised to high)"
            .to_string(),
    );
    Some(priority.map_or(Priority::High, |p| p.max(Priority::High)))
}

/// AWS's sign-in and sign-up domains (`signin.aws`, `verify.signin.aws`,
/// `signup.aws`), whose mail is about the root user's identity.
fn is_identity_domain(domain: &str) -> bool {
    // Read as DNS reads it, as `is_aws_domain` does (`signup.aws.`, fullwidth).
    crate::auth::canonical_domain(domain).is_some_and(|domain| {
        ["signin.aws", "signup.aws"]
            .iter()
            .any(|own| crate::auth::is_within(&domain, own))
    })
}

/// What a ticket may show of the mail, its secrets redacted, and what it names.
struct Content {
    subject: Option<String>,
    text: String,
    facts: Facts,
    case: Option<CaseId>,
}

/// How a message's text is shown.
struct Redaction {
    /// The message's secrets and its attachments': an attachment's are
    /// redacted wherever its text goes too (a forwarded message's text
    /// feeds facts).
    redactor: Redactor,
    /// Attachments with more secrets than were collected: withheld like any
    /// that holds one, and their text feeds nothing (the redactor does not
    /// know it all), while the message's own text is still shown.
    unread_attachments: Vec<bool>,
}

impl Content {
    /// The redacted subject and text (the directory's strings kept whole:
    /// [`directory_strings`]), the facts they (and forwarded messages)
    /// name, and the case: the subject's case id; a support case's may
    /// stand in its text only.
    fn redacted(
        mail: &ParsedMail,
        (redaction, kept): (&Redaction, &[String]),
        seen: &Addressed,
        kind: Kind,
    ) -> Self {
        let mentioned = &seen.resolution.mentioned;
        let redactor = &redaction.redactor;
        let subject = mail
            .subject
            .as_deref()
            .map(|s| redactor.redact_keeping(s, kept));
        let text = redactor.redact_keeping(&mail.text, kept);
        let facts = facts(
            subject.as_deref().unwrap_or_default(),
            &with_forwarded_text(&text, mail, redaction),
            mentioned,
        );
        let raw_subject = mail.subject.as_deref().unwrap_or_default();
        // A case counts in AWS Support's own mail only: another AWS sender's
        // subject or text may be words its sender chose (an SNS message's
        // subject, a budget's or an alarm's name).
        let from_support = mail
            .from
            .as_ref()
            .and_then(|f| f.address.as_ref())
            .is_some_and(|a| a.as_str() == AWS_SUPPORT_SENDER);
        let case = from_support
            .then(|| case_id(raw_subject))
            .flatten()
            .or_else(|| {
                (kind == Kind::SupportCase && from_support)
                    .then(|| facts.case_ids.first().and_then(|id| CaseId::parse(id).ok()))
                    .flatten()
            });
        Self {
            subject,
            text,
            facts,
            case,
        }
    }
}

/// The address AWS Support writes about cases from.
const AWS_SUPPORT_SENDER: &str = "no-reply-aws@amazon.com";

/// The account's id, customer and root address as warnings and the ticket
/// show them (also made inert, as the ticket's text is): redaction keeps
/// them whole ([`Redactor::redact_keeping`]).
fn directory_strings(account: Option<&Account>) -> Vec<String> {
    let Some(account) = account else {
        return Vec::new();
    };
    [
        account.account_id.as_str(),
        account.customer.as_str(),
        account.root_email.as_str(),
    ]
    .into_iter()
    .flat_map(|s| [s.to_string(), crate::render::defang(s)])
    .collect()
}

/// Everything triage found and decided about a parsed mail, before the
/// ticket is drafted and the [`Triage`] built from it.
struct Decision<'a> {
    mail: &'a ParsedMail,
    seen: Addressed,
    decided: Decided,
    outcome: Outcome,
    secrets: Vec<FoundSecret>,
    content: Content,
    thread: ThreadKey,
    /// Redacted.
    warnings: Vec<String>,
    /// Why none of the mail's text may be shown, if so.
    withheld_reason: Option<String>,
    /// What secret each attachment's text holds, if any.
    in_attachments: Vec<Option<String>>,
    /// More secrets than are collected, or longer than are redacted: some
    /// are not redacted.
    unshowable: Unshowable,
    /// The directory's strings redaction keeps whole ([`directory_strings`]).
    kept: Vec<String>,
}

impl Decision<'_> {
    /// A secret is in the text (names included) or an attachment: nothing
    /// of the mail is attached.
    fn holds_secret(&self) -> bool {
        !self.secrets.is_empty() || self.in_attachments.iter().any(Option::is_some)
    }

    /// See [`Triage::sealed`].
    fn sealed(&self) -> bool {
        self.holds_secret()
            || self.unshowable.in_headers
            || self.withheld_reason.is_some()
            || self.unsearched_file_may_hide()
    }

    /// A textual attachment went unsearched (too long, or past what one
    /// mail's attachments are searched for) in mail anyone could have
    /// written: it may hold a secret. AWS's own large files (invoices) do not.
    fn unsearched_file_may_hide(&self) -> bool {
        !self.seen.from_aws && self.mail.attachments.iter().any(Attachment::unsearched)
    }

    /// The ticket, when the disposition makes one. Every field was redacted
    /// on the way in; one pass over the result also covers what came from
    /// headers (sender names, addresses).
    fn ticket(&self, input: &MailInput<'_>, redactor: &Redactor) -> Option<TicketDraft> {
        let priority = match (self.outcome.disposition, self.outcome.priority) {
            (Disposition::Ticket | Disposition::Quarantine, Some(priority)) => priority,
            _ => return None,
        };
        let policy = AttachmentPolicy {
            holds_secret: self.holds_secret(),
            from_aws: self.seen.from_aws,
            names_withheld: self.unshowable.unredacted(),
        };
        let attachments = attachment_refs(self.mail, &self.in_attachments, &policy);
        let draft = render(&RenderInput {
            kind: self.decided.kind,
            priority,
            account: self.seen.account(),
            subject: self.content.subject.as_deref(),
            mail: Some(self.mail),
            envelope: &self.seen.env.recipients,
            auth: &self.seen.auth,
            case: self.content.case.as_ref(),
            secrets: &self.secrets,
            redacted_text: &self.content.text,
            facts: &self.content.facts,
            origin: input.origin,
            attachments: &attachments,
            withheld_reason: self.withheld_reason.as_deref(),
            warnings: &self.warnings,
            sealed: self.sealed(),
            sender_name_withheld: self.unshowable.unredacted(),
        });
        let attachments = draft
            .attachments
            .into_iter()
            .map(|a| AttachmentRef {
                name: crate::render::defang(&redactor.redact(&a.name)),
                ..a
            })
            .collect();
        let kept = &self.kept;
        Some(TicketDraft {
            subject: redactor.redact_keeping(&draft.subject, kept),
            body: redactor.redact_keeping(&draft.body, kept),
            internal_note: redactor.redact_keeping(&draft.internal_note, kept),
            attachments,
        })
    }

    /// The decision as triage reports it, with its explanation. A mail whose
    /// text is withheld shows neither its subject nor the facts read from it.
    fn into_triage(self, ticket: Option<TicketDraft>, hash: ContentHash) -> Triage {
        let account = self.seen.resolution.account.as_ref();
        let shown = self.withheld_reason.is_none();
        let sealed = self.sealed();
        let mut triaged = Triage {
            kind: self.decided.kind,
            disposition: self.outcome.disposition,
            account_id: account.map(|a| a.account_id.clone()),
            customer: account.map(|a| a.customer.clone()),
            priority: self.outcome.priority,
            thread_key: self.thread,
            ticket,
            secrets: self.secrets,
            authentication: self.seen.auth,
            warnings: self.warnings,
            message_id: self.mail.message_id.clone(),
            subject: self.content.subject.filter(|_| shown),
            case_id: self.content.case,
            facts: if shown {
                self.content.facts
            } else {
                Facts::default()
            },
            content_hash: hash,
            ses_message_id: self.seen.env.ses_message_id,
            handoff: self.outcome.handoff,
            secret_unread_for: self.outcome.secret_unread_for,
            sealed,
            explanation: Explanation::default(),
        };
        triaged.explanation = explanation(&self.decided, &self.seen.resolution, &triaged);
        triaged
    }
}

/// Why the mail is of its kind (the evidence, or the fixed outcome that
/// decided it), which account it is for, and which thread.
fn explanation(decided: &Decided, resolution: &Resolution, triaged: &Triage) -> Explanation {
    let case_words = decided.case_words.as_ref().map(|words| {
        format!(
            "a support case's correspondence (AWS Support's case subject): its words read like {} (score {}), but anyone opening a case may write them, so they do not decide the kind",
            words.kind, words.score
        )
    });
    let fixed = decided.quarantine.as_deref().or(match decided.kind {
        Kind::SesSetup => Some("SES's setup notification, known by its object name"),
        Kind::Unknown => Some("not from an authenticated AWS sender: rules are not asked"),
        _ => case_words.as_deref(),
    });
    let mut explanation = Explanation::new(
        kind_reason(&decided.classification, fixed),
        &decided.classification,
    );
    explanation.account = account_reason(resolution);
    explanation.thread = thread_reason(triaged);
    explanation
}

/// What of a message's secrets keeps its text (or its names, or its
/// original) from being shown.
#[derive(Clone, Copy)]
struct Unshowable {
    /// More than were collected in the message.
    overflowed: bool,
    /// Longer in all than a redaction searches for ([`MAX_REDACTED_BYTES`]).
    too_long: bool,
    /// One is written with an escape inside it (`Hunter2\\/Secret`), so it
    /// cannot be redacted where it stands.
    escaped: bool,
    /// One found in a looser shape than the rules for all mail take
    /// (`FoundSecrets::read_loosely`).
    read_loosely: bool,
    /// Header text the ticket quotes holds one (redacted there): the
    /// original is sealed.
    in_headers: bool,
}

impl Unshowable {
    /// Past either bound some secrets are not redacted: names are withheld
    /// as well as the text.
    fn unredacted(&self) -> bool {
        self.overflowed || self.too_long
    }
}

/// Each of `texts` redacted, the directory's strings kept whole.
fn redacted_all(texts: &[String], redactor: &Redactor, kept: &[String]) -> Vec<String> {
    texts
        .iter()
        .map(|t| redactor.redact_keeping(t, kept))
        .collect()
}

/// Why none of a message's text may be shown, if so: a secret-bearing mail
/// whose secret was not found may hold it in a form the rules do not know, and
/// a mail with more secrets than are collected holds some that are not redacted.
fn withheld_text(
    kind: Kind,
    secrets: &[FoundSecret],
    unshowable: Unshowable,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let Unshowable {
        overflowed,
        too_long,
        escaped,
        read_loosely,
        in_headers: _,
    } = unshowable;
    let reason = if overflowed {
        format!(
            "the mail holds more than {MAX_SECRETS} codes and links that look secret: its text is withheld, open the original"
        )
    } else if too_long {
        format!(
            "the mail's codes and links that look secret are longer in all than rootmail redacts ({} KiB): its text is withheld, open the original",
            MAX_REDACTED_BYTES >> 10
        )
    } else if escaped {
        "the mail writes a code or link with an escape inside it (as JSON writes `\\/` or `\\n`), which cannot be redacted where it stands: its text is withheld, open the original".to_string()
    } else if kind.policy().carries_secret && secrets.is_empty() {
        format!(
            "a {kind} mail normally holds a code or link, and none was found: its text is withheld, open the original"
        )
    } else if read_loosely {
        "the mail's code was found only in a looser shape (lower case, or no digit), and the mail may write it elsewhere too: its text is withheld, open the original".to_string()
    } else {
        return None;
    };
    warnings.push(reason.clone());
    Some(reason)
}

/// What [`waiting_handoff`] reads.
struct HandoffInput<'a> {
    kind: Kind,
    mail: &'a ParsedMail,
    auth: &'a crate::auth::Authentication,
    env: &'a Envelope,
    resolution: &'a Resolution,
    secrets: &'a [FoundSecret],
    /// The secret was found in a looser shape (`FoundSecrets::read_loosely`).
    read_loosely: bool,
}

/// What the rotation that waits for this mail, if one does, gets of it.
enum ForRotation {
    Nothing,
    Handoff(Handoff),
    /// Told that AWS's mail came, in which no one secret was read.
    SecretUnread(UnreadSecret),
}

/// The handoff to the rotation that waits for this mail, if one waits and the
/// mail may feed it; when one waits and it may not, a warning says why.
fn waiting_handoff(
    input: &HandoffInput<'_>,
    rotations: &dyn WaitingRotations,
    warnings: &mut Vec<String>,
) -> ForRotation {
    let Some(account) = input.resolution.account.as_ref() else {
        return ForRotation::Nothing;
    };
    if !input.kind.policy().feeds_rotation {
        return ForRotation::Nothing;
    }
    let Some(target) = rotations.waiting_at(&account.account_id, input.kind) else {
        return ForRotation::Nothing;
    };
    let decided = decide_handoff(&HandoffFacts {
        kind: input.kind,
        mail: input.mail,
        auth: input.auth,
        envelope: &input.env.recipients,
        account: &account.account_id,
        secrets: input.secrets,
        target: &target,
    });
    match decided {
        Ok(handoff) => {
            if input.read_loosely {
                warnings.push(
                    "the code handed over was read in a looser shape (lower case, or no digit): if AWS refuses it, read the code in the original mail".to_string(),
                );
            }
            ForRotation::Handoff(handoff)
        }
        Err(refusal) => {
            warnings.push(format!(
                "a rotation of account {} waits for a {} mail, but this one is not handed to it: {}",
                account.account_id,
                input.kind,
                refusal.reason()
            ));
            match refusal {
                HandoffRefusal::Untrusted(_) => ForRotation::Nothing,
                HandoffRefusal::SecretUnread(_) => ForRotation::SecretUnread(UnreadSecret {
                    waiting: WaitingRotation {
                        account: account.account_id.clone(),
                        kind: input.kind,
                        address: target,
                    },
                    message_id: input.mail.message_id.clone(),
                    delivered_at: input.mail.delivered_at(),
                }),
            }
        }
    }
}

/// The taxonomy's disposition and priority for the kind, then: a secret the
/// waiting rotation may take goes to it; a retired account's mail is
/// archived, except a closed account's security, account and billing mail
/// (as `read_as` reads: a support case's words' kind).
fn decide(
    (kind, read_as): (Kind, Kind),
    rule_priority: Option<Priority>,
    account: Option<&Account>,
    handoff: bool,
    warnings: &mut Vec<String>,
) -> (Disposition, Option<Priority>) {
    let policy = kind.policy();
    let mut disposition = policy.disposition;
    if let Some(account) = account {
        if handoff {
            disposition = Disposition::Handoff;
        }
        let open = matches!(disposition, Disposition::Ticket | Disposition::Handoff);
        if open && account.status.is_retired() {
            match why_retired_still_matters(account.status, read_as) {
                Some(why) => {
                    warnings.push(format!("account {} {why}: ticketed", account.account_id));
                    disposition = Disposition::Ticket;
                }
                None => {
                    warnings.push(format!(
                        "account {} is {}: archived, no ticket",
                        account.account_id,
                        account.status.as_str()
                    ));
                    disposition = Disposition::Archive;
                }
            }
        }
    }
    let priority = match disposition {
        Disposition::Archive | Disposition::Handoff => None,
        Disposition::Ticket | Disposition::Quarantine => rule_priority.or(policy.priority),
    };
    (disposition, priority)
}

/// Why a retired account's mail of `kind` still needs a person, if it does:
/// its security, account and payment mail.
fn why_retired_still_matters(status: AccountStatus, kind: Kind) -> Option<&'static str> {
    if !kind.matters_after_closure() {
        return None;
    }
    match status {
        // For 90 days AWS keeps a closed account: it can be signed in to and
        // reopened, and it is billed once more; the root is still ours, so
        // who signs in or pays matters.
        AccountStatus::Closed => Some(
            "is closed, but AWS keeps a closed account 90 days (it can be signed in to and reopened)",
        ),
        // AWS's notice that the root email moved away is the release itself.
        AccountStatus::Released if kind == Kind::ContactChange => None,
        // Once released, AWS writes the root's mail to the customer's
        // address: its sign-ins, resets and payments still reaching ours say
        // the release did not take (a console release is the engineer's
        // word), or that ours is still a contact.
        AccountStatus::Released => Some(
            "is released, yet AWS still writes it here: check its root email in AWS (the release may not have taken)",
        ),
        _ => None,
    }
}

/// What classification decided, and the evidence behind it.
struct Decided {
    kind: Kind,
    /// A rule's priority override.
    priority: Option<Priority>,
    /// Why the mail is quarantined, if it is.
    quarantine: Option<String>,
    /// Every kind's score (empty when rules were not asked: not AWS's mail).
    classification: Classification,
    /// A support case's correspondence: the kind its words read like, which
    /// did not decide its kind (`case_relay`).
    case_words: Option<KindScore>,
    warnings: Vec<String>,
}

impl Decided {
    fn plain(kind: Kind, quarantine: Option<String>) -> Self {
        Self {
            kind,
            priority: None,
            quarantine,
            classification: Classification::default(),
            case_words: None,
            warnings: Vec::new(),
        }
    }
}

/// The kind: fixed outcomes first (SES's setup notice, a failed scan,
/// phishing, a stranger's mail), then the rules' evidence for AWS's mail.
fn classify(
    mail: &ParsedMail,
    input: &MailInput<'_>,
    auth: &Authentication,
    rules: &Rules,
) -> Decided {
    if input.object_name.is_some_and(is_setup_notification) {
        return Decided::plain(Kind::SesSetup, None);
    }
    if auth.spam_or_virus_failed() {
        let which = match (auth.spam.as_deref(), auth.virus.as_deref()) {
            (_, Some("FAIL")) => "SES virus scan failed",
            _ => "SES spam verdict is FAIL",
        };
        return Decided::plain(Kind::MailRejected, Some(which.to_string()));
    }
    if let Some(reason) = spoofing_reason(mail, auth) {
        let reason = format!("suspected phishing: {reason}");
        return Decided::plain(Kind::PhishingSuspected, Some(reason));
    }
    if !(auth.aws_sender && auth.verified) {
        return Decided::plain(Kind::Unknown, None);
    }
    let decided = classify_aws_mail(mail, rules);
    // A secret from AWS goes nowhere but AWS's own reply path.
    match foreign_reply_path(mail).filter(|_| decided.kind.policy().carries_secret) {
        Some(reason) => Decided {
            kind: Kind::PhishingSuspected,
            priority: None,
            quarantine: Some(format!(
                "suspected phishing: a {} mail that authenticates as AWS, but {reason} (a replayed or altered AWS mail?)",
                decided.kind
            )),
            ..decided
        },
        None => decided,
    }
}

/// Authenticated AWS mail: the best-scoring kind, or `aws.unclassified`.
fn classify_aws_mail(mail: &ParsedMail, rules: &Rules) -> Decided {
    let from = mail
        .from
        .as_ref()
        .and_then(|f| f.address.as_ref())
        .map_or("", |a| a.as_str());
    let has_header = |name: &str| mail.header(name).is_some();
    let subject = mail.subject.as_deref().unwrap_or_default();
    // Plain-text mail is wrapped at any word: rules see every run of
    // whitespace as one space, so a phrase matches across line breaks.
    let body = one_line(&[&mail.text, &mail.alternative_text]);
    let classification = rules.classify(&RuleInput {
        from,
        subject,
        body: &body,
        has_header: &has_header,
    });
    let mut warnings = Vec::new();
    if let Some((other, score)) = classification.near_tie {
        let best = classification.winner().map_or(0, |w| w.score);
        warnings.push(format!(
            "the mail also reads like {other} (score {score} against {best}): check the rules if the kind is wrong"
        ));
    }
    if crate::case_relay::relays_case_words(subject, &body) {
        return case_correspondence(classification, warnings);
    }
    let Some(winner) = classification.winner() else {
        let raised = rules.evidence().raises_priority(subject, &body);
        warnings.push(unclassified_warning(&classification));
        return Decided {
            kind: Kind::AwsUnclassified,
            priority: raised.then_some(Priority::High),
            quarantine: None,
            classification,
            case_words: None,
            warnings,
        };
    };
    Decided {
        kind: winner.kind,
        priority: winner.priority,
        quarantine: None,
        warnings,
        case_words: None,
        classification,
    }
}

/// A support case's correspondence (`case_relay`): a support case whatever
/// its words read like. Its priority is what AWS Support's parts ask for
/// (the severity field), or what the words' kind would have, but never
/// urgent: AWS's own follow-ups in a case it opened (a compromised account)
/// stay high, and a stranger's case copying this address pages no one.
fn case_correspondence(classification: Classification, mut warnings: Vec<String>) -> Decided {
    let of_the_case = |score: &&KindScore| score.kind == Kind::SupportCase;
    let severity = classification.scores.iter().find(of_the_case);
    let mut priority = severity.and_then(|s| s.priority);
    let words = classification
        .winner()
        .filter(|w| w.kind != Kind::SupportCase);
    if let Some(words) = words {
        let words_ask = words.priority.or(words.kind.policy().priority);
        priority = priority.max(words_ask);
        warnings.push(format!(
            "the case's words read like {} (score {}), but anyone can open a case and copy this address: filed as a support case, at most high",
            words.kind, words.score
        ));
    }
    Decided {
        kind: Kind::SupportCase,
        priority: priority.map(|p| p.min(Priority::High)),
        quarantine: None,
        case_words: words.cloned(),
        classification,
        warnings,
    }
}

/// The text, and the text of messages attached to it (a person forwarding
/// AWS's notice as an attachment): facts there matter too.
fn with_forwarded_text<'a>(
    text: &'a str,
    mail: &ParsedMail,
    redaction: &Redaction,
) -> std::borrow::Cow<'a, str> {
    let redactor = &redaction.redactor;
    let forwarded: Vec<&str> = mail
        .attachments
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            a.content_type.starts_with("message/")
                && !redaction
                    .unread_attachments
                    .get(*i)
                    .copied()
                    .unwrap_or(true)
        })
        .filter_map(|(_, a)| a.text.as_deref())
        .collect();
    if forwarded.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut all = text.to_string();
    for part in forwarded {
        all.push('\n');
        all.push_str(&redactor.redact(part));
    }
    std::borrow::Cow::Owned(all)
}

/// The texts joined, each run of whitespace one space (one pass, one copy:
/// a word at a time, not a char at a time).
fn one_line(texts: &[&str]) -> String {
    let mut out = String::with_capacity(texts.iter().map(|t| t.len() + 1).sum());
    for word in texts.iter().flat_map(|t| t.split_whitespace()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

fn unclassified_warning(classification: &Classification) -> String {
    let best = match classification.scores.first() {
        Some(best) => format!(
            "; the closest kind is {} (score {} of the {} needed)",
            best.kind, best.score, classification.threshold
        ),
        None => String::new(),
    };
    format!(
        "AWS sent this mail, but no rule recognises it{best}: extend rules.toml (rootmail triage --explain shows the evidence)"
    )
}

fn is_setup_notification(name: &str) -> bool {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.strip_suffix(".eml").unwrap_or(file) == SETUP_NOTIFICATION_OBJECT
}

/// The secrets each attachment's text holds (in attachment order; none in
/// one that is not text).
fn attachment_secrets(mail: &ParsedMail, rules: &Rules) -> Vec<FoundSecrets> {
    mail.attachments
        .iter()
        .map(|a| {
            a.text
                .as_deref()
                .map_or_else(FoundSecrets::default, |text| match as_read(text) {
                    std::borrow::Cow::Borrowed(_) => find_secrets_bounded(text, rules),
                    // Both readings, as the message's text is searched: read
                    // alone, a secret an escape stands inside was lost.
                    std::borrow::Cow::Owned(read) => {
                        find_secrets_bounded(&format!("{text}\n{read}"), rules)
                    }
                })
        })
        .collect()
}

/// A file's text as the program that reads it would, so its links and codes
/// are searched whole: JSON's escapes read ([`escapes_read`]), and an
/// iCalendar or vCard file's folded lines joined (RFC 5545 3.1: a line
/// break then a space or tab goes). Found there, the file is withheld whole.
fn as_read(text: &str) -> std::borrow::Cow<'_, str> {
    let text = escapes_read(text);
    let folded = ["BEGIN:VCALENDAR", "BEGIN:VCARD"]
        .iter()
        .any(|b| text.contains(b));
    match folded {
        true => std::borrow::Cow::Owned(
            text.replace("\r\n ", "")
                .replace("\r\n\t", "")
                .replace("\n ", "")
                .replace("\n\t", ""),
        ),
        false => text,
    }
}

/// `text` with the escapes JSON writes read: of `/` and `&` (`https:\/\/...`,
/// as an exported event or a saved API answer writes a link), and `\n`,
/// `\r` and `\t` as a space (a code after one had no word boundary: its
/// `n` stood against the digits).
fn escapes_read(text: &str) -> std::borrow::Cow<'_, str> {
    const ESCAPES: [(&str, &str); 5] = [
        ("\\/", "/"),
        ("\\u0026", "&"),
        ("\\n", " "),
        ("\\r", " "),
        ("\\t", " "),
    ];
    if !text.contains('\\') || !ESCAPES.iter().any(|(escape, _)| text.contains(escape)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let read = ESCAPES.iter().fold(text.to_string(), |t, (escape, read)| {
        t.replace(escape, read)
    });
    std::borrow::Cow::Owned(read)
}

/// Why an attachment that holds a secret is withheld, if it holds one.
fn describe_attachment_secrets(found: &FoundSecrets) -> Option<String> {
    (!found.secrets.is_empty())
        .then(|| format!("it holds {}", describe_secret_kinds(&found.secrets)))
}

/// Why an attachment without a secret of its own is not attached either.
const KEPT_APART: &str = "the message holds a secret, so its original is kept apart and nothing of it is copied into tickets";

/// Why a file that is not text is not attached from mail that is not AWS's.
const NOT_SEARCHED: &str = "not text, so it could not be searched for secrets, and the mail is not authenticated AWS mail: open the original";

/// What decides which attachments a ticket carries.
struct AttachmentPolicy {
    /// A secret is in the text or an attachment: none is attached.
    holds_secret: bool,
    /// Authenticated AWS mail: its files that are not text (invoices) are
    /// attached; anyone else's could hold a secret no search sees (a
    /// forwarded .msg, a .gz of an AWS mail, a screenshot of one).
    from_aws: bool,
    /// More secrets than were collected: what the redactor does not know
    /// may be in a name, so names are not shown.
    names_withheld: bool,
}

/// Why a textual attachment was not searched for secrets.
fn unsearched_reason(size: usize) -> String {
    match size > crate::mail::MAX_SCANNED_ATTACHMENT_BYTES {
        true => "text too long to search for secrets".into(),
        false => format!(
            "not searched for secrets: past the {} MiB of a mail's attachments searched, or \
             messages nested too deep",
            crate::mail::MAX_SCANNED_BYTES_PER_MAIL >> 20
        ),
    }
}

/// The attachments a ticket may carry. A textual one is withheld when it holds a
/// secret, or when it is too long to have been searched whole; one that is not
/// text unless the mail is AWS's; all are when the message holds a secret
/// anywhere (its original is kept from the ticket writer).
fn attachment_refs(
    mail: &ParsedMail,
    in_attachments: &[Option<String>],
    policy: &AttachmentPolicy,
) -> Vec<AttachmentRef> {
    mail.attachments
        .iter()
        .zip(in_attachments)
        .enumerate()
        .map(|(index, (a, own))| {
            let unsearched = a.unsearched();
            let opaque = !a.textual && !policy.from_aws;
            let withheld = own
                .clone()
                .or_else(|| policy.holds_secret.then(|| KEPT_APART.to_string()))
                .or_else(|| unsearched.then(|| unsearched_reason(a.size)))
                .or_else(|| opaque.then(|| NOT_SEARCHED.to_string()));
            let name = match policy.names_withheld {
                true => format!("(attachment {}: name withheld with the text)", index + 1),
                false => a.name.clone(),
            };
            AttachmentRef {
                index,
                name,
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

/// A message quarantined before it could be decided on, for `why`.
fn unparseable(input: &MailInput<'_>, hash: ContentHash, why: &str) -> Triage {
    let auth = Authentication::default();
    let priority = Kind::MailUnparseable
        .policy()
        .priority
        .unwrap_or(Priority::Normal);
    let reason = format!("{why} ({} bytes)", input.raw.len());
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
        facts: &Facts::default(),
        origin: input.origin,
        attachments: &[],
        withheld_reason: Some(&reason),
        warnings: &[],
        sealed: true,
        sender_name_withheld: true,
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
        facts: Facts::default(),
        content_hash: hash,
        ses_message_id: None,
        handoff: None,
        secret_unread_for: None,
        // Nothing of it could be searched: kept apart like a secret's mail.
        sealed: true,
        explanation: Explanation {
            kind: "not parseable as a message".into(),
            ..Explanation::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::InMemoryDirectory;
    use crate::handoff::NoRotations;
    use crate::thread::NoKnownThreads;
    use crate::types::EmailAddress;

    #[test]
    fn rules_see_the_texts_as_one_line_of_single_spaces() {
        assert_eq!(
            one_line(&[
                "  Your account\r\n  will be\u{a0}\tsuspended ",
                "\nwithin 7 days\n\n"
            ]),
            "Your account will be suspended within 7 days"
        );
        assert_eq!(one_line(&["", " \n "]), "");
        assert_eq!(one_line(&["a", "b"]), "a b");
    }

    /// SES's block as a receipt rule stores it, for mail AWS sent to our address.
    const PASS: &str = "Return-Path: <0100@amazonses.com>\r\n\
        Received: from a8-31.smtp-out.amazonses.com (a8-31.smtp-out.amazonses.com [54.240.8.31])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n \
        for root+x@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000\r\n\
        X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
        Authentication-Results: amazonses.com;\r\n spf=pass envelope-from=x@amazonses.com;\r\n \
        dkim=pass header.i=@verify.signin.aws;\r\n dmarc=pass header.from=verify.signin.aws;\r\n";

    fn directory(status: AccountStatus) -> InMemoryDirectory {
        InMemoryDirectory::new([Account {
            root_email: EmailAddress::parse("root+x@msp.example").unwrap(),
            account_id: AccountId::parse("111122223333").unwrap(),
            customer: "Acme".into(),
            status,
            payer: None,
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

    /// A code no kind claims is raised to high, with a warning, in mail
    /// from AWS's sign-up and sign-in senders (someone signing up with the
    /// root address); the same words from another AWS sender (a promotion's
    /// code) are not.
    #[test]
    fn an_unclaimed_code_raises_mail_from_aws_s_identity_senders_only() {
        let mail = |from: &str, domain: &str| {
            let auth = PASS.replace("verify.signin.aws", domain);
            format!(
                "{auth}From: {from}\r\nTo: root+x@msp.example\r\nSubject: Welcome aboard\r\n\
                 Message-ID: <c1@aws>\r\nContent-Type: text/plain\r\n\r\n\
                 Thanks for starting. Your verification code is 493817.\r\n"
            )
        };
        let dir = directory(AccountStatus::Active);
        let signup = run(
            &mail("no-reply@signup.aws", "signup.aws"),
            &dir,
            &NoRotations,
        );
        assert_eq!(signup.kind, Kind::AwsUnclassified);
        assert!(!signup.secrets.is_empty(), "{signup:?}");
        assert_eq!(signup.priority, Some(Priority::High));
        assert!(
            signup.warnings.iter().any(|w| w.contains("someone else")),
            "{:?}",
            signup.warnings
        );
        // Written as DNS reads it the same (a trailing dot): the same sender.
        let dotted = run(
            &mail("no-reply@signup.aws.", "signup.aws."),
            &dir,
            &NoRotations,
        );
        assert_eq!(dotted.priority, Some(Priority::High), "{dotted:?}");
        let promotion = run(
            &mail("no-reply-aws@amazon.com", "amazon.com"),
            &dir,
            &NoRotations,
        );
        assert_eq!(promotion.kind, Kind::AwsUnclassified);
        assert!(!promotion.secrets.is_empty(), "{promotion:?}");
        assert_eq!(promotion.priority, Some(Priority::Normal));
    }

    /// A stranger's case may copy a root address (AWS mails the case's
    /// words to every address copied): words that read like a suspension and
    /// carry a code make a support case at high, hand nothing to a rotation
    /// waiting at that address, and say why. The first mail of a case AWS
    /// opened itself (its subject and first line) is read by its words; that
    /// line written first in a stranger's reply is not AWS's.
    #[test]
    fn a_case_s_words_never_decide_its_kind_unless_aws_opened_it() {
        struct WaitingForAnything;
        impl WaitingRotations for WaitingForAnything {
            fn waiting_at(&self, _: &AccountId, _: Kind) -> Option<EmailAddress> {
                EmailAddress::parse("root+x@msp.example").ok()
            }
        }
        let mail = |subject: &str, first_line: &str| {
            let auth = PASS.replace("verify.signin.aws", "amazon.com");
            format!(
                "{auth}From: no-reply-aws@amazon.com\r\nTo: root+x@msp.example\r\nSubject: {subject}\r\n\
                 Message-ID: <k1@aws>\r\nContent-Type: text/plain\r\n\r\n{first_line}\r\n\r\n\
                 Your AWS account 111122223333 has been suspended due to irregular activity.\r\n\
                 To restore it, enter your root email verification code: 493817\r\n"
            )
        };
        let dir = directory(AccountStatus::Active);
        let stranger = run(
            &mail(
                "[CASE 176655012300941] Your AWS account has been suspended",
                "Hello,",
            ),
            &dir,
            &WaitingForAnything,
        );
        assert_eq!(stranger.kind, Kind::SupportCase, "{stranger:?}");
        assert_eq!(stranger.priority, Some(Priority::High));
        let why = &stranger.explanation.kind;
        assert!(why.contains("words read like account.suspended"), "{why}");
        // A closed account's case about a suspension still needs a person,
        // as AWS's own suspension notice would (one about a welcome does not).
        let closed = directory(AccountStatus::Closed);
        let case = mail("[CASE 176655012300941] Suspended", "Hello,");
        let on_closed = run(&case, &closed, &NoRotations);
        assert_eq!(
            (on_closed.disposition, on_closed.priority),
            (Disposition::Ticket, Some(Priority::High)),
            "{:?}",
            on_closed.warnings
        );
        // Also where the case's own words score more (a real reply's), but
        // not for a released account (anyone may copy its old address), nor
        // for words of a kind AWS's own mail of which is archived.
        let reply = |subject: &str, words: &str| {
            let auth = PASS.replace("verify.signin.aws", "amazon.com");
            format!(
                "{auth}From: no-reply-aws@amazon.com\r\nTo: root+x@msp.example\r\n\
                 Subject: RE: [CASE 176655012300941] {subject}\r\nMessage-ID: <k2@aws>\r\n\
                 Content-Type: text/plain\r\n\r\nThank you for contacting AWS Support.\r\n\
                 Case ID: 176655012300941\r\n{words}\r\nTo contact us again about this case, \
                 visit the Support Center.\r\n"
            )
        };
        let unpaid = reply(
            "Question",
            "Your payment failed and your account will be suspended.",
        );
        let disposition =
            |raw: &str, status| run(raw, &directory(status), &NoRotations).disposition;
        assert_eq!(
            disposition(&unpaid, AccountStatus::Closed),
            Disposition::Ticket
        );
        assert_eq!(
            disposition(&unpaid, AccountStatus::Released),
            Disposition::Archive
        );
        let welcome = reply(
            "Your AWS account is ready",
            "Welcome to Amazon Web Services.",
        );
        assert_eq!(
            disposition(&welcome, AccountStatus::Closed),
            Disposition::Archive
        );
        assert!(stranger.handoff.is_none(), "{stranger:?}");
        assert!(
            stranger
                .warnings
                .iter()
                .any(|w| w.contains("anyone can open a case")),
            "{:?}",
            stranger.warnings
        );
        let by_aws = run(
            &mail(
                "Amazon Web Services: New Support case: 4838201957",
                "Amazon Web Services has opened case 4838201957 on your behalf.",
            ),
            &dir,
            &NoRotations,
        );
        assert_eq!(by_aws.kind, Kind::AccountSuspended, "{by_aws:?}");
        assert_eq!(by_aws.priority, Some(Priority::Urgent));
        // AWS's line written first in a stranger's correspondence.
        let posing = run(
            &mail(
                "RE: [CASE 4838201957] Your AWS account has been suspended",
                "Amazon Web Services has opened case 4838201957 on your behalf.",
            ),
            &dir,
            &NoRotations,
        );
        assert_eq!(
            (posing.kind, posing.priority),
            (Kind::SupportCase, Some(Priority::High))
        );
    }

    /// Anyone can make a root address their own account's alternate
    /// contact, and AWS then mails it that account's notices: AWS's urgent
    /// mail about an account unrelated to the recipient's (the first it
    /// names) is high, with a warning, even when the text it quotes names
    /// the recipient's. About the recipient's own account, or one the
    /// directory says it pays for, it stays urgent.
    #[test]
    fn aws_mail_about_an_unrelated_account_pages_no_one() {
        let mail = |id: &str| {
            let auth = PASS.replace("verify.signin.aws", "amazon.com");
            format!(
                "{auth}From: no-reply-aws@amazon.com\r\nTo: root+x@msp.example\r\n\
                 Subject: Your AWS account has been suspended\r\nMessage-ID: <s1@aws>\r\n\
                 Content-Type: text/plain\r\n\r\nYour AWS account {id} has been suspended.\r\n"
            )
        };
        let dir = directory(AccountStatus::Active);
        let other = run(&mail("999900001111"), &dir, &NoRotations);
        assert_eq!(
            (other.kind, other.priority),
            (Kind::AccountSuspended, Some(Priority::High))
        );
        assert!(
            other.warnings[0].contains("alternate contact"),
            "{:?}",
            other.warnings
        );
        let own = run(&mail("111122223333"), &dir, &NoRotations);
        assert_eq!(own.priority, Some(Priority::Urgent), "{:?}", own.warnings);
        // The stranger's own report quoted below AWS's words, naming ours.
        let quoting_ours = "999900001111.\r\n\r\n--- Original report ---\r\n\
                            Account ID: 111122223333 scanned our hosts";
        let quoted = run(&mail(quoting_ours), &dir, &NoRotations);
        assert_eq!(
            quoted.priority,
            Some(Priority::High),
            "{:?}",
            quoted.warnings
        );
        assert!(
            quoted.warnings[0].contains("about account 999900001111"),
            "{:?}",
            quoted.warnings
        );
        // What the stranger names (an IAM user, a leaked file's link) comes
        // before AWS's label in their own notice: the label decides.
        let body = |before: &str, id: &str| {
            mail("X").replace(
                "Your AWS account X has",
                &format!("The key of IAM user {before} of your AWS account {id} has"),
            )
        };
        for before in [
            "1111-2222-3333",
            "ci.1111-2222-3333",
            "https://github.com/x/y/blob/main/arn:aws:iam::111122223333:root",
            "https://github.com/x/account:111122223333",
            "account111122223333",
        ] {
            let theirs = run(&body(before, "999900001111"), &dir, &NoRotations);
            assert_eq!(
                theirs.priority,
                Some(Priority::High),
                "{before}: {:?}",
                theirs.warnings
            );
        }
        // Their notice in the language they chose for their account.
        let spanish = mail("X").replace(
            "Your AWS account X has been suspended.",
            "Su cuenta de AWS 999900001111 ha sido suspendida.",
        );
        let spanish = run(&spanish, &dir, &NoRotations);
        assert_eq!(
            spanish.priority,
            Some(Priority::High),
            "{:?}",
            spanish.warnings
        );
        // AWS's 2014 form masks all but the last four digits.
        let masked = |tail: &str| {
            let body =
                format!("The AWS Access Keys of your account (****-****-{tail}) are exposed.");
            run(
                &mail("X").replace("Your AWS account X has been suspended.", &body),
                &dir,
                &NoRotations,
            )
        };
        assert_eq!(masked("0000").priority, Some(Priority::High));
        assert_eq!(masked("3333").priority, Some(Priority::Urgent));
        // Our own notice, a dated name before our id: ours.
        let dated = run(
            &body("ops.2025-0114-0930", "111122223333"),
            &dir,
            &NoRotations,
        );
        assert_eq!(
            dated.priority,
            Some(Priority::Urgent),
            "{:?}",
            dated.warnings
        );
        // Ours first, a stranger's quoted: ours.
        let ours_first = "111122223333.\r\n\r\n--- Original report ---\r\n\
                          Account ID: 999900001111 scanned our hosts";
        let ours_first = run(&mail(ours_first), &dir, &NoRotations);
        assert_eq!(
            ours_first.priority,
            Some(Priority::Urgent),
            "{:?}",
            ours_first.warnings
        );
        let member = Account {
            root_email: EmailAddress::parse("root+m@msp.example").unwrap(),
            account_id: AccountId::parse("999900001111").unwrap(),
            customer: "Other".into(),
            status: AccountStatus::Active,
            payer: Some(AccountId::parse("111122223333").unwrap()),
        };
        let payer = directory(AccountStatus::Active)
            .by_email(&EmailAddress::parse("root+x@msp.example").unwrap());
        let with_member = InMemoryDirectory::new([payer.unwrap(), member]).unwrap();
        let paid_for = run(&mail("999900001111"), &with_member, &NoRotations);
        assert_eq!(
            paid_for.priority,
            Some(Priority::Urgent),
            "{:?}",
            paid_for.warnings
        );
        // Two members of one organization, imported under their own names.
        let payer_id = AccountId::parse("444455556666").ok();
        let members = [
            ("root+x@msp.example", "111122223333"),
            ("root+m@msp.example", "999900001111"),
        ]
        .map(|(email, id)| Account {
            root_email: EmailAddress::parse(email).unwrap(),
            account_id: AccountId::parse(id).unwrap(),
            customer: id.into(),
            status: AccountStatus::Active,
            payer: payer_id.clone(),
        });
        let siblings = InMemoryDirectory::new(members).unwrap();
        let sibling = run(&mail("999900001111"), &siblings, &NoRotations);
        assert_eq!(
            sibling.priority,
            Some(Priority::Urgent),
            "{:?}",
            sibling.warnings
        );
    }

    struct Waiting;
    impl WaitingRotations for Waiting {
        fn waiting_at(&self, account: &AccountId, kind: Kind) -> Option<EmailAddress> {
            (account.as_str() == "111122223333" && kind == Kind::PasswordReset)
                .then(|| EmailAddress::parse("root+x@msp.example").unwrap())
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

    /// A sender who declares the account's id a password (an invitation's
    /// note, a budget's name) blanks it in the mail's text, not in what
    /// rootmail writes from the directory: the headline, the account line.
    #[test]
    fn a_secret_declared_in_the_text_leaves_the_directory_s_strings_whole() {
        let raw = format!(
            "{PASS}From: no-reply@signin.aws\r\nTo: root+x@msp.example\r\n\
             Subject: Notice\r\nMessage-ID: <n1@aws>\r\n\r\n\
             The note reads: password: 111122223333 and Acme.\r\n"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        assert!(!t.secrets.is_empty(), "the password is found");
        let ticket = t.ticket.expect("a ticket");
        assert!(
            ticket.subject.starts_with("[Acme / 111122223333]"),
            "{}",
            ticket.subject
        );
        assert!(
            ticket.body.contains("Account: 111122223333 (Acme, active)"),
            "{}",
            ticket.body
        );
    }

    /// Secret links made mostly of `&` (each also searched as `&amp;`): past
    /// what a redaction searches for, the text is withheld, where the
    /// redaction's automaton took 2 GB for a megabyte of such links.
    #[test]
    fn secrets_too_long_to_redact_withhold_the_text() {
        let links: String = (0..40)
            .map(|i| format!("https://x.example/?token={i}{}\r\n", "&".repeat(8_000)))
            .collect();
        let raw = format!(
            "From: someone@example.com\r\nTo: root+x@msp.example\r\nSubject: links\r\n\r\n{links}"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        let reason = "longer in all than rootmail redacts (256 KiB)";
        assert!(
            t.warnings.iter().any(|w| w.contains(reason)),
            "{:?}",
            t.warnings
        );
        let ticket = t.ticket.expect("a ticket");
        assert!(!ticket.body.contains("token="), "{}", ticket.body);
        assert!(t.sealed);
    }

    /// Seventy links that carry a token, one a line: more secrets than the
    /// search collects, so the text's secrets overflow.
    fn more_token_links_than_collected() -> String {
        (0..70)
            .map(|i| format!("https://x.example/?token=t{i:04}x\r\n"))
            .collect()
    }

    /// Past the count of secrets collected, the sender's name (searched
    /// after the text, so never searched here) is not shown.
    #[test]
    fn a_sender_name_is_withheld_when_secrets_overflow() {
        let links = more_token_links_than_collected();
        let raw = format!(
            "From: \"pw: Hunter2Secret9\" <a@x.example>\r\nTo: root+x@msp.example\r\n\
             Subject: links\r\n\r\n{links}"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        let ticket = t.ticket.expect("a ticket");
        assert!(!ticket.body.contains("Hunter2Secret9"), "{}", ticket.body);
        assert!(
            ticket.body.contains("From: a@x.example\n"),
            "{}",
            ticket.body
        );
    }

    /// Header text that warnings and the ticket quote is searched on its
    /// own: past the bound on the text's secrets (70 links) a code in the
    /// sender's name and address, which a look-alike warning quotes, and in
    /// the first of two From fields, which another warning quotes, is
    /// redacted wherever it is shown.
    #[test]
    fn secrets_in_quoted_header_fields_are_redacted_past_the_text_s_bounds() {
        let links = more_token_links_than_collected();
        let many = |field: &str| field.repeat(16);
        let mails = [
            format!(
                "From: \"AWS code: 615274\" <code-615274@vendor.example>\r\n\
                 To: root+x@msp.example\r\nSubject: links\r\n\r\n{links}"
            ),
            "From: \"code: 615274\" <a@x.example>\r\nFrom: b@y.example\r\n\
             To: root+x@msp.example\r\nSubject: two\r\n\r\nhello\r\n"
                .to_string(),
            // The ticket's To line is the last To field's; a warning names
            // a Sender past many others.
            format!(
                "From: a@x.example\r\n{}To: \"code: 615274\" <c@z.example>\r\n\
                 {}Sender: \"code: 615274\" <no-reply@signin.aws>\r\n\
                 Subject: many\r\n\r\nhello\r\n",
                many("To: root+x@msp.example\r\n"),
                many("Sender: a@x.example\r\n"),
            ),
            // Only a header holds it.
            "From: a@x.example\r\nTo: root+x@msp.example\r\n\
             Cc: \"code: 615274\" <c@z.example>\r\nSubject: cc\r\n\r\nhello\r\n"
                .to_string(),
            // The first of two From fields, its name in an encoded word.
            "From: =?utf-8?q?code:_615274?= <a@x.example>\r\nFrom: b@y.example\r\n\
             To: root+x@msp.example\r\nSubject: two\r\n\r\nhello\r\n"
                .to_string(),
        ];
        for raw in mails {
            let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
            let shown = serde_json::to_string(&t).unwrap();
            assert!(!shown.contains("615274"), "{shown}");
            // Where only a header holds it, the original is sealed all the same.
            assert!(t.sealed, "{shown}");
        }
    }

    /// A directory with a bug: every lookup panics.
    struct Broken;
    impl AccountDirectory for Broken {
        fn by_email(&self, _: &EmailAddress) -> Option<Account> {
            panic!("a bug in a directory")
        }
        fn by_id(&self, _: &AccountId) -> Option<Account> {
            panic!("a bug in a directory")
        }
    }

    #[test]
    fn a_panic_in_triage_quarantines_the_message_and_the_next_is_triaged() {
        let rules = Rules::built_in();
        let raw = reset_mail(PASS);
        let input = MailInput {
            raw: raw.as_bytes(),
            origin: "t.eml",
            object_name: None,
        };
        let broken = Context {
            directory: &Broken,
            rules: &rules,
            known_threads: &NoKnownThreads,
            rotations: &NoRotations,
        };
        let t = triage(&input, &broken);
        assert_eq!(t.kind, Kind::MailUnparseable);
        assert_eq!(t.disposition, Disposition::Quarantine);
        assert!(t.warnings[0].contains(TRIAGE_FAILED), "{:?}", t.warnings);
        let ticket = t.ticket.expect("a quarantine ticket");
        assert!(
            ticket.internal_note.contains("Original message: t.eml"),
            "{}",
            ticket.internal_note
        );
        // Nothing the panic left behind (the rules' search caches) spoils the next.
        let dir = directory(AccountStatus::Active);
        let working = Context {
            directory: &dir,
            ..broken
        };
        assert_eq!(triage(&input, &working).kind, Kind::PasswordReset);
    }

    /// AWS's support case mail quotes what people wrote in the case: every
    /// token in reach of a code's words is redacted there, as in a person's
    /// mail (only the first was, and the code after it was shown).
    #[test]
    fn tokens_near_code_words_in_a_support_case_are_redacted() {
        let auth = PASS.replace("verify.signin.aws", "amazon.com");
        let raw = format!(
            "{auth}From: Amazon Web Services <no-reply-aws@amazon.com>\r\nTo: root+x@msp.example\r\n\
             Subject: [Case 17446245301] Re: cannot sign in\r\nMessage-ID: <c1@aws>\r\n\
             Content-Type: text/plain\r\n\r\nHello,\r\n\r\nYou wrote: the one-time passcode \
             for ticket T1234567 is 615274.\r\n\r\nAWS Support Center: case 17446245301\r\n"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        assert_eq!(t.kind, Kind::SupportCase);
        let shown = serde_json::to_string(&t.ticket).unwrap();
        assert!(!shown.contains("615274"), "{shown}");
    }

    /// A subject, a sender's name or an attachment's name is cut before it
    /// is searched: a cut through a code left its first digits, which no
    /// rule reads as a code, in the ticket. A cut now ends at a whole word.
    #[test]
    fn a_code_cut_in_two_by_a_header_s_limit_is_not_shown_in_part() {
        use crate::mail::{MAX_NAME_CHARS, MAX_SUBJECT_CHARS};
        let auth = PASS.replace("verify.signin.aws", "amazon.com");
        let tail = " your verification code: 615274 and more words";
        // Cut after the code's fourth digit.
        let cut_in_code = |max: usize| {
            let lead = max - 4 - tail.find("615274").unwrap();
            format!("{}{tail}", "y".repeat(lead))
        };
        let (subject, name) = (cut_in_code(MAX_SUBJECT_CHARS), cut_in_code(MAX_NAME_CHARS));
        let raw = format!(
            "{auth}From: \"{name}\" <no-reply-aws@amazon.com>\r\nTo: root+x@msp.example\r\n\
             Subject: {subject}\r\nMessage-ID: <c2@aws>\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nHello.\r\n--b\r\n\
             Content-Type: text/plain; name=\"{name}\"\r\n\r\nnotes\r\n--b--\r\n"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        let shown = serde_json::to_string(&t.ticket).unwrap();
        assert!(shown.contains("verification code"), "the words before stay");
        assert!(!shown.contains("6152"), "{shown}");
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

    /// An AWS password-reset link however its HTML writes the `&` (or, for
    /// `&colon;&sol;&sol;` and `&quest;`, names the old 17-entry table did not
    /// know, its `://` and `?`): one reset link, and no ticket field shows it.
    #[test]
    fn a_reset_link_written_with_any_character_reference_is_redacted() {
        let link = "https://signin.aws.amazon.com/resetpassword?token=Zq9Xk2&type=RESET";
        let spellings = [
            link.replace('&', "&amp;"),
            link.replace('&', "&#38;"),
            link.replace('&', "&#x26;"),
            link.replace('&', "&AMP;"),
            link.replace('&', "&#0038;"),
            "https&colon;&sol;&sol;signin.aws.amazon.com&sol;resetpassword&quest;token=Zq9Xk2&amp;type&equals;RESET"
                .to_string(),
        ];
        for written in &spellings {
            let html = format!(
                "{PASS}From: no-reply@signin.aws\r\nTo: root+x@msp.example\r\nSubject: Notice\r\n\
                 Message-ID: <n1@aws>\r\nContent-Type: text/html\r\n\r\n\
                 <p>If this was you, follow {written} now.</p><a href=\"{written}\">Reset</a>\r\n"
            );
            let plain = format!(
                "{PASS}From: no-reply@signin.aws\r\nTo: root+x@msp.example\r\nSubject: Notice\r\n\
                 Message-ID: <n2@aws>\r\nContent-Type: text/plain\r\n\r\nIf this was you, follow {written} now.\r\n"
            );
            for raw in [html, plain] {
                // The named-reference spelling is HTML only: text/plain shows it as written.
                if raw.contains("text/plain") && written.contains("&colon;") {
                    continue;
                }
                let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
                let values: Vec<&str> = t.secrets.iter().map(|s| s.value.expose()).collect();
                assert_eq!(values, [link], "{written}");
                let ticket = t.ticket.as_ref().expect("a ticket");
                for field in [&ticket.subject, &ticket.body, &ticket.internal_note] {
                    assert!(!field.contains("Zq9Xk2"), "{written}: {field}");
                }
                assert!(
                    ticket.body.contains("[redacted reset_link]"),
                    "{written}: {}",
                    ticket.body
                );
                let shown = serde_json::to_string(&t).unwrap();
                assert!(!shown.contains("Zq9Xk2"), "{written}: {shown}");
            }
        }
    }

    /// A person pastes AWS's code into a mail of their own, in the language
    /// AWS wrote it in: the ticket is made, the code is not in it.
    #[test]
    fn a_localized_code_pasted_by_a_person_is_redacted() {
        for pasted in ["Ihr Bestätigungscode lautet: 615274", "確認コード：615274"] {
            let raw = format!(
                "{PASS}From: colleague@customer.example\r\nTo: root+x@msp.example\r\n\
                 Subject: =?UTF-8?B?RldE?=\r\nMessage-ID: <p1@customer>\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\nSiehe unten.\r\n\r\n{pasted}\r\n"
            );
            let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
            let ticket = t.ticket.as_ref().expect("a ticket");
            assert!(ticket.body.contains("Siehe unten"), "{}", ticket.body);
            assert!(
                !serde_json::to_string(&t).unwrap().contains("615274"),
                "{pasted}"
            );
        }
    }

    /// A code split by a character that shows nothing (a zero-width space,
    /// a soft hyphen, HTML's `&shy;`) or by a no-break space still reads as
    /// the code to whoever sees the ticket: it is found and redacted, and
    /// the invisible characters are gone from the text.
    #[test]
    fn a_code_split_by_invisible_characters_is_redacted() {
        for (ctype, pasted) in [
            ("text/plain", "verification code: 482\u{200B}913"),
            ("text/plain", "verification code: 482\u{00AD}913"),
            ("text/plain", "verification code: 482\u{00A0}913"),
            ("text/html", "<p>verification code: 482&shy;913</p>"),
            ("text/html", "<p>verification code: 4&zwj;8&zwj;2913</p>"),
        ] {
            let raw = format!(
                "{PASS}From: colleague@customer.example\r\nTo: root+x@msp.example\r\n\
                 Subject: fyi\r\nMessage-ID: <p2@customer>\r\n\
                 Content-Type: {ctype}; charset=utf-8\r\n\r\n{pasted}\r\n"
            );
            let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
            let shown = serde_json::to_string(&t.ticket).unwrap();
            assert!(
                !shown.contains("482") && !shown.contains("913"),
                "{pasted}: {shown}"
            );
            assert!(shown.contains("[redacted verification_code]"), "{pasted}");
        }
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

    /// The refusal warning of a mail that a waiting rotation must not take.
    fn refused_because(raw: &str) -> String {
        let t = run(raw, &directory(AccountStatus::Onboarding), &Waiting);
        assert_eq!(t.disposition, Disposition::Ticket, "{:?}", t.warnings);
        assert!(t.handoff.is_none());
        t.warnings
            .iter()
            .find(|w| w.contains("is not handed to it"))
            .cloned()
            .unwrap_or_else(|| panic!("no refusal warning in {:?}", t.warnings))
    }

    #[test]
    fn misdirected_mail_never_feeds_a_rotation() {
        let genuine = reset_mail(PASS);
        let t = run(&genuine, &directory(AccountStatus::Onboarding), &Waiting);
        let handoff = t.handoff.expect("the genuine mail is handed over");
        assert_eq!(handoff.recipient.as_str(), "root+x@msp.example");

        // SES delivered it to another address (the account was found by To).
        let elsewhere = genuine.replace("for root+x@msp.example;", "for other@msp.example;");
        assert!(refused_because(&elsewhere).contains("SES delivered it to other@msp.example"));
        // A Cc (which AWS's signature does not cover) names someone else too.
        let cc = genuine.replace(
            "To: root+x@msp.example\r\n",
            "To: root+x@msp.example\r\nCc: evil@example.com\r\n",
        );
        assert!(refused_because(&cc).contains("also addressed to evil@example.com"));
        // The text names another account.
        let other = genuine.replace(
            "Use the button",
            "For AWS account 999988887777: use the button",
        );
        assert!(refused_because(&other).contains("also names account 999988887777"));
        // Or names another account by its last digits (as AWS's mail for a
        // root email change anyone starts on their own account may).
        let ending = genuine.replace(
            "Use the button",
            "For the AWS account ending in 7777: use the button",
        );
        assert!(refused_because(&ending).contains("names an account ending in 7777"));
        for written in ["account\r\nending in ****7777", "account (ending in: 7777)"] {
            let ending = genuine.replace(
                "Use the button",
                &format!("For the AWS {written}: use the button"),
            );
            assert!(
                refused_because(&ending).contains("ending in 7777"),
                "{written}"
            );
        }
        let ours = genuine.replace(
            "Use the button",
            "For the AWS account ending in 3333: use the button",
        );
        let t = run(&ours, &directory(AccountStatus::Onboarding), &Waiting);
        assert!(t.handoff.is_some(), "its own last digits: {:?}", t.warnings);
    }

    /// A take-over waits for account 111122223333's root email code.
    struct WaitingTakeOver;
    impl WaitingRotations for WaitingTakeOver {
        fn waiting_at(&self, account: &AccountId, kind: Kind) -> Option<EmailAddress> {
            (account.as_str() == "111122223333" && kind == Kind::RootEmailOtp)
                .then(|| EmailAddress::parse("root+x@msp.example").unwrap())
        }
    }

    fn root_email_code_mail(from: &str, code_line: &str) -> String {
        format!(
            "{PASS}From: {from}\r\nTo: root+x@msp.example\r\n\
             Subject: Verify your new AWS account root user email address\r\nMessage-ID: <o1@aws>\r\n\r\n\
             Hello,\r\n\r\nWe received a request to change the root user email address of your\r\n\
             AWS account to this address.\r\n\r\n{code_line}\r\n\r\nThanks\r\n\r\nAmazon Web Services\r\n"
        )
    }

    /// The code a waiting take-over is handed from AWS's root email code
    /// mail with `code_lines`, or why it refuses the mail.
    fn handed_over(code_lines: &str) -> Result<String, String> {
        let raw = root_email_code_mail("no-reply@verify.signin.aws", code_lines);
        let t = run(
            &raw,
            &directory(AccountStatus::Onboarding),
            &WaitingTakeOver,
        );
        assert_eq!(t.kind, Kind::RootEmailOtp, "{code_lines}");
        match t.handoff {
            Some(handoff) => Ok(handoff.secret.expose().to_string()),
            None => {
                // AWS's own mail whose code no rule read: the rotation is
                // told it came (a console take-over goes on from there).
                let unread = t
                    .secret_unread_for
                    .expect("the rotation is told the mail came");
                assert_eq!(unread.delivered_at, Some(1_772_532_902));
                let waiting = unread.waiting;
                assert_eq!(waiting.account.as_str(), "111122223333");
                assert_eq!(waiting.kind, Kind::RootEmailOtp);
                assert_eq!(waiting.address.as_str(), "root+x@msp.example");
                Err(t.warnings.join("; "))
            }
        }
    }

    /// The same code mail whose code no rule reads tells the waiting
    /// rotation nothing where any check a handoff makes fails: SPF failing
    /// (DKIM and DMARC still passing, as for a genuine mail replayed
    /// through another server), delivered or addressed to another address too, or
    /// naming another account. Each stays AWS's root email code mail (the
    /// kind a rotation waits for), so the trust checks are what refuse it.
    #[test]
    fn only_aws_s_own_code_mail_is_told_to_its_rotation_when_no_rule_read_its_code() {
        let missed = "kq3VzP is your AWS verification code.";
        let genuine = root_email_code_mail("no-reply@verify.signin.aws", missed);
        let untrusted = [
            genuine.replace("spf=pass", "spf=fail"),
            genuine.replace("for root+x@msp.example;", "for ops@msp.example;"),
            genuine.replace(
                "To: root+x@msp.example",
                "To: root+x@msp.example\r\nCc: ops@msp.example",
            ),
            genuine.replace(
                "AWS account to this address.",
                "AWS account 999988887777 to this address.",
            ),
        ];
        for raw in &untrusted {
            assert_ne!(raw, &genuine);
            let t = run(raw, &directory(AccountStatus::Onboarding), &WaitingTakeOver);
            assert_eq!(t.kind, Kind::RootEmailOtp, "{raw}");
            assert_eq!(t.handoff, None);
            assert_eq!(t.secret_unread_for, None, "{raw}");
            assert!(
                t.warnings.iter().any(|w| w.contains("is not handed to it")),
                "a waiting rotation saw it: {:?}",
                t.warnings
            );
        }
        let t = run(
            &genuine,
            &directory(AccountStatus::Onboarding),
            &WaitingTakeOver,
        );
        assert!(t.secret_unread_for.is_some());
        // No rotation waits: nothing is told.
        let t = run(
            &genuine,
            &directory(AccountStatus::Onboarding),
            &NoRotations,
        );
        assert_eq!(t.secret_unread_for, None);
    }

    /// The ticket's text when no take-over waits.
    fn ticket_text(raw: &str) -> String {
        let t = run(raw, &directory(AccountStatus::Onboarding), &NoRotations);
        t.ticket.expect("a ticket without a take-over").body
    }

    /// AWS's root email code in the shapes the Account API takes
    /// (`[a-zA-Z0-9]{6}`: lower case, no digit) reaches the waiting take-over
    /// and never a ticket; the rules for all mail take capitals with a digit
    /// only, and a forged sender's mail is read by them alone.
    #[test]
    fn a_root_email_code_in_the_api_s_shape_is_handed_over() {
        let written = [
            ("Verification code: kq3VzP", "kq3VzP"),
            (
                "Your verification code is KQZMPD. It expires in 30 minutes.",
                "KQZMPD",
            ),
            (
                "Enter the verification code below:\r\n\r\n    x7kq2m",
                "x7kq2m",
            ),
            ("Ihr Bestätigungscode:\r\n\r\n  **WbHqZt**", "WbHqZt"),
            ("Código de verificación: kq3VzP", "kq3VzP"),
            ("確認コード: kq3VzP", "kq3VzP"),
            ("Verification code (case-sensitive):   kq3VzP", "kq3VzP"),
            (
                "Enter this code in the AWS Management Console: kq3VzP",
                "kq3VzP",
            ),
            // No piece of a link is a code, on its line or wrapped onto the next.
            (
                "Verification code: kq3VzP\r\nOr open https://signin.aws.amazon.com/confirm?region=us-east-1&code=3f9a2c",
                "kq3VzP",
            ),
            (
                "Verification code: kq3VzP\r\nOr open this link:\r\n\
                 https://signin.aws.amazon.com/confirmemail?locale=en_US&token=YjFkZTU0NzEtOGM2Ni00YjBk\r\nc2lgNv",
                "kq3VzP",
            ),
        ];
        let raw = root_email_code_mail("no-reply@verify.signin.aws", written[0].0);
        let t = run(
            &raw,
            &directory(AccountStatus::Onboarding),
            &WaitingTakeOver,
        );
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("read in a looser shape"))
        );
        for (code_lines, code) in written {
            // "Thanks", alone on its line below the words, is no second code.
            assert_eq!(handed_over(code_lines).as_deref(), Ok(code), "{code_lines}");
            // The mail may write the code elsewhere too: its text is withheld.
            let body = ticket_text(&root_email_code_mail(
                "no-reply@verify.signin.aws",
                code_lines,
            ));
            assert!(!body.contains(code), "{body}");
            assert!(body.contains("found only in a looser shape"), "{body}");
        }

        for forged in [
            root_email_code_mail("no-reply@signin.aws", "Verification code: kq3VzP"),
            root_email_code_mail("no-reply@verify.signin.aws", "Verification code: kq3VzP")
                .replacen(PASS, "", 1),
        ] {
            let t = run(&forged, &directory(AccountStatus::Onboarding), &NoRotations);
            let values: Vec<&str> = t.secrets.iter().map(|s| s.value.expose()).collect();
            assert!(!values.contains(&"kq3VzP"), "{values:?}");
            assert!(!t.ticket.expect("a ticket").body.contains("kq3VzP"));
        }
    }

    /// The looser root email code rules read AWS's mail only when the rules
    /// for all mail found no code in it (a first review found each of these
    /// a second code beside Q7K2M9, and the take-over refusing the mail),
    /// and only where AWS puts its code (a second review found a name, an
    /// id, a placeholder or a capitalised warning handed over in place of a
    /// code they missed, and the code shown in the ticket).
    #[test]
    fn a_looser_code_never_joins_or_stands_for_the_code() {
        let beside = [
            "aws account accept-primary-email-update --otp XXXXXX",
            "Do not share this code.\r\nAMAZON",
            "Reference:\r\n3f9a2c",
        ];
        for other in beside {
            let lines = format!("Verification code: Q7K2M9\r\n\r\n{other}");
            assert_eq!(handed_over(&lines).as_deref(), Ok("Q7K2M9"), "{other}");
        }

        let written = [
            (
                "Your verification code for account MyCorp is: kq3VzP",
                "kq3VzP",
            ),
            (
                "Verification code for AWS account 111122223333 (prod01): kq3VzP",
                "kq3VzP",
            ),
        ];
        for (lines, code) in written {
            assert_eq!(handed_over(lines).as_deref(), Ok(code), "{lines}");
        }
        // A code before its words, cut in two, written as a word, or with
        // words after it on its line is read by no rule: nothing else on the
        // lines stands for it (a sentence's colon, a word after a colon).
        for missed in [
            "kq3VzP is your AWS verification code.\r\nDo not share this code. AMAZON",
            "Verification code: kq3-VzP\r\nDo not share this code. AMAZON",
            "Verification code: kqzmpd\r\nDo not share this code. AMAZON",
            "Verification code (ref. 3f9a2c): kq3VzP",
            "    kq3VzP    (valid for 10 minutes)\r\n\
             This code was requested from: London, United Kingdom",
        ] {
            let refused = handed_over(missed).expect_err("no code");
            assert!(refused.contains("no verification_code"), "{refused}");
            // The engineer may read it in the original and type it.
            assert!(refused.contains("--otp-stdin"), "{refused}");
            let body = ticket_text(&root_email_code_mail("no-reply@verify.signin.aws", missed));
            assert!(!body.contains("kq3") && !body.contains("kqz"), "{body}");
        }

        // Every token a looser rule reads is a code: two make it unclear.
        for two in [
            "Verification code: kq3VzP\r\n\r\nOr enter the code: AbC123",
            "Verification code for account\r\nMYCORP\r\nkq3vzp",
        ] {
            let refused = handed_over(two).expect_err("two codes");
            assert!(
                refused.contains("more than one verification_code"),
                "{refused}"
            );
            assert!(refused.contains("--otp-stdin"), "{refused}");
        }
    }

    /// Capitals and digits after "code" in AWS's alerts are a name (a review
    /// found a health notice's function hidden so, far below the word and
    /// near it); the same words from a person hide it as a code.
    #[test]
    fn a_name_after_code_stays_in_aws_s_alerts() {
        let far = "The runtime of the function code listed below reaches end of support \
            on 2027-03-01; update it before then or the function can no longer be \
            created or updated. Affected resources in us-east-1:";
        assert!(far.len() > 120);
        let near = "The function code listed below reaches end of support on 2027-03-01:";
        for words in [far, near] {
            let body = format!("{words}\r\n\r\n  ORDERS26\r\n\r\nAWS Health\r\n");
            let health = format!(
                "{}From: AWS Health <health@aws.com>\r\nTo: root+x@msp.example\r\n\
                 Subject: AWS Health Event - end of support\r\n\r\n{body}",
                PASS.replace("verify.signin.aws", "aws.com")
            );
            let t = run(&health, &directory(AccountStatus::Active), &NoRotations);
            assert_eq!(t.kind, Kind::HealthEvent, "{:?}", t.warnings);
            assert!(t.secrets.is_empty(), "{words}: {:?}", t.secrets);
            let ticket = t.ticket.expect("a health ticket");
            assert!(ticket.body.contains("ORDERS26"), "{}", ticket.body);

            let person = format!(
                "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: fyi\r\n\r\n{body}"
            );
            let t = run(&person, &directory(AccountStatus::Active), &NoRotations);
            assert_eq!(t.secrets.len(), 1);
            let shown = serde_json::to_string(&t).unwrap();
            assert!(!shown.contains("ORDERS26"), "{shown}");
        }
    }

    /// AWS's code mail read as another kind keeps its code a secret: only
    /// AWS's alerts take what follows "code" for a name, and neither
    /// suspicious activity nor a quarantined mail from AWS's address is one
    /// (a review found such codes shown or dropped from `secrets`). AWS's
    /// root email codes may hold letters (`AcceptPrimaryEmailUpdate`'s `Otp`
    /// is `[a-zA-Z0-9]{6}`).
    #[test]
    fn a_code_below_its_words_stays_a_code_in_aws_mail_read_as_another_kind() {
        let body = "We noticed unusual activity in a recent sign-in attempt to your AWS account\r\n\
            from a different device. If this was you, use the code below. To keep your \
            account secure, we need to confirm that it is you before this sign-in can \
            continue. Enter it on the sign-in page where you started.\r\n\r\n    W6KD3P\r\n\r\nIf this wasn't you, change your password now.\r\n";
        let unusual = format!(
            "{}From: Amazon Web Services <no-reply@signin.aws>\r\nTo: root+x@msp.example\r\n\r\n{body}",
            PASS.replace("verify.signin.aws", "signin.aws")
        );
        let t = run(&unusual, &directory(AccountStatus::Active), &NoRotations);
        assert_eq!(t.kind, Kind::SuspiciousActivity, "{:?}", t.warnings);
        assert_eq!(t.secrets.len(), 1, "{:?}", t.secrets);
        let shown = serde_json::to_string(&t).unwrap();
        assert!(!shown.contains("W6KD3P"), "{shown}");

        let quarantined = unusual
            .replace(
                "To: root+x@msp.example\r\n",
                "To: root+x@msp.example\r\nReply-To: helpdesk@customer-it.example\r\n\
                 Subject: Verify your identity\r\n",
            )
            .replace("W6KD3P", "482913");
        let t = run(
            &quarantined,
            &directory(AccountStatus::Active),
            &NoRotations,
        );
        assert_eq!(t.kind, Kind::PhishingSuspected, "{:?}", t.warnings);
        assert_eq!(t.secrets.len(), 1, "{:?}", t.secrets);
    }

    /// AWS's help pages linked beside the reset link are taken for reset
    /// links too (redacted, being on amazon.com), but are not the one meant:
    /// the take-over still gets its link. Two on AWS's host stay ambiguous.
    #[test]
    fn a_help_page_beside_the_reset_link_leaves_the_rotation_its_link() {
        let help = "See https://docs.aws.amazon.com/IAM/latest/UserGuide/reset-root-password.html for help.";
        let raw = reset_mail(PASS).replace(
            "Use the button in this mail to reset your password.",
            &format!("Use the button in this mail to reset your password. {help}"),
        );
        let t = run(&raw, &directory(AccountStatus::Onboarding), &Waiting);
        let kinds: Vec<_> = t.secrets.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [crate::SecretKind::ResetLink; 2]);
        let handoff = t.handoff.unwrap_or_else(|| panic!("{:?}", t.warnings));
        assert!(
            handoff
                .secret
                .expose()
                .starts_with("https://signin.aws.amazon.com/resetpassword?token=Zq9Xk2"),
            "{}",
            handoff.secret.expose()
        );

        let second = "https://signin.aws.amazon.com/resetpassword?token=Other7&type=RESET";
        let two = reset_mail(PASS).replace(
            "Use the button in this mail",
            &format!("Or open {second} or use the button in this mail"),
        );
        assert!(refused_because(&two).contains("more than one reset_link"));
    }

    #[test]
    fn a_rotation_needs_spf_for_an_aws_envelope_and_aligned_dkim() {
        let genuine = reset_mail(PASS);
        // DKIM alone (the replay of a genuine mail from someone else's server).
        let dkim_only = genuine.replace(
            "spf=pass envelope-from=x@amazonses.com",
            "spf=fail envelope-from=x@evil.example",
        );
        assert!(refused_because(&dkim_only).contains("SPF is fail"));
        let foreign_envelope = genuine.replace("x@amazonses.com", "bounce@evil.example");
        assert!(refused_because(&foreign_envelope).contains("neither AWS's nor SES's"));
        let no_verdict = genuine.replace("X-SES-Virus-Verdict: PASS\r\n", "");
        assert!(refused_because(&no_verdict).contains("virus verdict is missing"));
    }

    /// The whole forgery a quoted envelope sender made possible: the
    /// attacker's own server and domain (its SPF and DKIM pass), an envelope
    /// sender whose quoted local part reads as SES's clauses, AWS's reset
    /// sender in From, a link of the attacker's choosing. No rotation takes it.
    #[test]
    fn a_forged_reset_whose_envelope_sender_writes_clauses_feeds_no_rotation() {
        let forged_results = "Return-Path: <\"x@amazonses.com;dkim=pass;header.i=@signin.aws;dmarc=pass\"@evil.example>\r\n\
            Received: from mail.evil.example (mail.evil.example [203.0.113.9])\r\n by inbound-smtp.us-east-1.amazonaws.com with SMTP id abc\r\n \
            for root+x@msp.example;\r\n Tue, 03 Mar 2026 10:15:02 +0000\r\n\
            X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
            Authentication-Results: amazonses.com;\r\n spf=pass (spf=pass) client-ip=203.0.113.9; \
            envelope-from=\"x@amazonses.com;dkim=pass;header.i=@signin.aws;dmarc=pass\"@evil.example; \
            helo=mail.evil.example;\r\n dkim=pass header.i=@evil.example;\r\n \
            dmarc=fail header.from=verify.signin.aws;\r\n";
        let t = run(
            &reset_mail(forged_results),
            &directory(AccountStatus::Onboarding),
            &Waiting,
        );
        assert!(t.handoff.is_none());
        assert_ne!(t.disposition, Disposition::Handoff);
        assert!(!t.authentication.verified);
        assert_eq!(t.kind, Kind::PhishingSuspected, "{:?}", t.warnings);
    }

    /// AWS's 2015 reset sender is still a password reset (a ticket, its link
    /// redacted), but only the four senders design.md names feed a rotation,
    /// whatever `rules.toml` lists for the kind.
    #[test]
    fn only_the_sender_design_names_for_the_kind_feeds_a_rotation() {
        let raw = reset_mail(&PASS.replace("verify.signin.aws", "amazon.com")).replace(
            "password-reset-no-reply@verify.signin.aws",
            "password-reset-no-reply@amazon.com",
        );
        let t = run(&raw, &directory(AccountStatus::Onboarding), &Waiting);
        assert_eq!(t.kind, Kind::PasswordReset);
        assert!(t.authentication.verified, "{:?}", t.warnings);
        assert!(t.handoff.is_none());
        assert_eq!(t.disposition, Disposition::Ticket);
        assert!(
            t.warnings
                .iter()
                .any(|w| w.contains("password-reset-no-reply@verify.signin.aws")),
            "{:?}",
            t.warnings
        );
        assert!(!serde_json::to_string(&t).unwrap().contains("Zq9Xk2"));
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

    /// A released account's mail other than its security, account and
    /// payment mail (`a_retired_account_s_security_mail_is_still_a_ticket`)
    /// is archived, and so is AWS's notice that the root email moved away.
    #[test]
    fn a_released_account_s_other_mail_is_archived() {
        let dir = directory(AccountStatus::Released);
        let note = "From: colleague@customer.example\r\nTo: root+x@msp.example\r\n\
                    Subject: lunch\r\nMessage-ID: <l1@customer.example>\r\n\r\nNoon?\r\n";
        let other = run(note, &dir, &NoRotations);
        assert_eq!(
            (other.disposition, other.priority, other.ticket.is_none()),
            (Disposition::Archive, None, true),
            "{:?}",
            other.warnings
        );
        assert!(
            other
                .warnings
                .iter()
                .any(|w| w.contains("is released: archived"))
        );
        // AWS's notice that the root email moved away is the release itself.
        let moved = include_str!(
            "../../../tests/corpus/account.contact_change/21-root-email-changed-away.eml"
        )
        .replace("root+a7f3k9q2@root.example-msp.com", "root+x@msp.example");
        let notice = run(&moved, &dir, &NoRotations);
        assert_eq!(
            (notice.kind, notice.disposition),
            (Kind::ContactChange, Disposition::Archive),
            "{:?}",
            notice.warnings
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

    /// A sealed original in AWS is read by mail-ingest and the roles in
    /// SealedMailReaderArns alone (the bucket policy): the internal note
    /// says so where it names the original, so nobody is sent to a file
    /// they cannot open without knowing why.
    #[test]
    fn a_sealed_originals_note_says_who_may_read_it() {
        let dir = directory(AccountStatus::Active);
        let rules = Rules::built_in();
        let ctx = Context {
            directory: &dir,
            rules: &rules,
            known_threads: &NoKnownThreads,
            rotations: &NoRotations,
        };
        let at = |raw: &str| {
            let input = MailInput {
                raw: raw.as_bytes(),
                origin: "s3://mail/inbound/abc",
                object_name: None,
            };
            triage(&input, &ctx).ticket.expect("a ticket").internal_note
        };
        assert!(at(&reset_mail(PASS)).contains("SealedMailReaderArns"));
        let plain = mail_with_attachments("203.0.113.19 hosted it");
        assert!(!at(&plain).contains("sealed"));
    }

    /// AWS keeps a closed account for 90 days: it can be signed in to and
    /// reopened, and it is billed once more. Its password reset is still a
    /// ticket (before: archived, so a stranger resetting the root password
    /// of a closed account raised nothing). A released account's root mail
    /// goes to the customer: a reset still reaching our address says the
    /// release did not take, and is a ticket too (before: archived unseen,
    /// with our vault scheduled for deletion).
    #[test]
    fn a_retired_account_s_security_mail_is_still_a_ticket() {
        for (status, warning) in [
            (AccountStatus::Closed, "is closed"),
            (AccountStatus::Released, "is released, yet"),
        ] {
            let reset = run(&reset_mail(PASS), &directory(status), &NoRotations);
            assert_eq!(
                (reset.kind, reset.disposition),
                (Kind::PasswordReset, Disposition::Ticket)
            );
            assert!(
                reset.warnings.iter().any(|w| w.contains(warning)),
                "{:?}",
                reset.warnings
            );
        }
        assert!(Kind::PaymentIssue.matters_after_closure());
        assert!(!Kind::BillingStatement.matters_after_closure());
        assert!(!Kind::HealthEvent.matters_after_closure());
        assert!(!Kind::BudgetAlert.matters_after_closure());
    }

    /// A mail with one attachment of `content_type` and `body` (in
    /// `encoding`), from
    /// AWS (SES's block and AWS's sender) or from a customer.
    fn mail_with_file(
        from_aws: bool,
        (name, content_type, encoding, body): (&str, &str, &str, &str),
    ) -> String {
        let head = match from_aws {
            true => format!("{PASS}From: trustandsafety@support.aws.com\r\n")
                .replace("verify.signin.aws", "support.aws.com"),
            false => "From: Customer <ops@customer.example>\r\n".to_string(),
        };
        format!(
            "{head}To: root+x@msp.example\r\nSubject: Forwarded\r\nMessage-ID: <f1@x>\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
             See the file.\r\n--b\r\nContent-Type: {content_type}; name=\"{name}\"\r\n\
             Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n\
             {body}\r\n--b--\r\n"
        )
    }

    /// A file that is not text cannot be searched for a code or a link (a
    /// forwarded Outlook .msg, a .gz of an AWS mail, a screenshot of one):
    /// before, it was uploaded to the ticket whatever it held. It is now
    /// attached only from authenticated AWS mail (AWS's own invoices).
    #[test]
    fn a_file_that_cannot_be_searched_is_attached_only_from_aws() {
        let dir = directory(AccountStatus::Active);
        // A gzip header: NUL bytes at once, so no text to search.
        let gzip = (
            "aws-reset.eml.gz",
            "application/gzip",
            "base64",
            "H4sIAAAAAAAAA+3BAQ0AAADCoPdPbQ8HFAAAAAAAAAAA",
        );
        let forwarded = run(&mail_with_file(false, gzip), &dir, &NoRotations);
        let ticket = forwarded.ticket.expect("a ticket");
        let withheld = ticket.attachments[0]
            .withheld
            .as_deref()
            .unwrap_or_default();
        assert!(
            withheld.contains("could not be searched"),
            "{:?}",
            ticket.attachments
        );
        let from_aws = run(&mail_with_file(true, gzip), &dir, &NoRotations);
        let ticket = from_aws.ticket.expect("a ticket");
        assert_eq!(
            ticket.attachments[0].withheld, None,
            "{:?}",
            ticket.attachments
        );
    }

    /// An HTML file is searched as the body is, its character references
    /// read: a reset link written `https&colon;&sol;&sol;...` in an attached
    /// page was not found, and the file was uploaded with it.
    #[test]
    fn an_html_attachment_is_searched_as_html() {
        let dir = directory(AccountStatus::Active);
        let page = "<a href=\"https&colon;&sol;&sol;signin.aws.amazon.com&sol;resetpassword&quest;token=Zq9Xk2Lm8Pw4&amp;type=RESET\">Reset</a>";
        let t = run(
            &mail_with_file(false, ("aws.html", "text/html", "7bit", page)),
            &dir,
            &NoRotations,
        );
        let ticket = t.ticket.expect("a ticket");
        let withheld = ticket.attachments[0]
            .withheld
            .as_deref()
            .unwrap_or_default();
        assert!(withheld.contains("secret"), "{:?}", ticket.attachments);
        assert!(t.sealed);
        // A page sent under another type is a page all the same.
        let file = ("aws.html", "application/octet-stream", "7bit", page);
        let t = run(&mail_with_file(false, file), &dir, &NoRotations);
        assert!(t.sealed, "{:?}", t.ticket.map(|t| t.attachments));
    }

    /// Past the cap on secrets collected, what the redactor does not know
    /// may still be in an attachment's name: names are not listed then.
    #[test]
    fn past_the_secret_cap_attachment_names_are_not_shown() {
        let dir = directory(AccountStatus::Active);
        let codes: String = (0..80)
            .map(|n| format!("Verification code: {}\r\n", 100_000 + n * 7))
            .collect();
        let raw = mail_with_file(
            false,
            ("verification code 777888.txt", "text/plain", "7bit", "x"),
        )
        .replace("See the file.", &codes);
        let t = run(&raw, &dir, &NoRotations);
        let ticket = t.ticket.expect("a ticket");
        assert!(!ticket.body.contains("777888"), "{}", ticket.body);
        assert!(
            ticket
                .attachments
                .iter()
                .all(|a| !a.name.contains("777888"))
        );
    }

    /// A code alone on the last line of an attached file, which ends with
    /// no line break, is found: the file is withheld (a review found it
    /// attached, the code in it).
    #[test]
    fn a_code_alone_on_an_attachments_last_line_is_found() {
        let instructions = "Give it to whoever asked for it: they enter it in the console of \
            the management account or send it with the Account Management API, and \
            nothing changes until then.";
        let evidence = format!("Here is the code you asked for. {instructions}\r\n\r\n   615274");
        let t = run(
            &mail_with_attachments(&evidence),
            &directory(AccountStatus::Active),
            &NoRotations,
        );
        let ticket = t.ticket.expect("a ticket");
        let file = &ticket.attachments[0];
        assert!(
            file.withheld
                .as_deref()
                .is_some_and(|w| w.contains("secret")),
            "{file:?}"
        );
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
        // The original holds the code, so it is sealed from the ticket
        // writer: the PDF, opaque as it is, cannot be read from it either.
        assert!(leaky.sealed);
        assert!(
            ticket.attachments[1]
                .withheld
                .as_deref()
                .is_some_and(|w| w.contains("kept apart")),
            "{:?}",
            ticket.attachments[1]
        );
        assert!(ticket.body.contains("evidence.txt"));
        assert!(ticket.body.contains("[not attached: it holds a secret"));
        assert!(!ticket.body.contains("493817"));
        assert!(!plain.sealed);
    }

    /// A code in an attachment's name is a secret like one in the text: the
    /// name is listed redacted, nothing of the mail is attached, and the
    /// original is sealed.
    #[test]
    fn a_code_in_an_attachment_name_is_redacted_and_seals_the_original() {
        let dir = directory(AccountStatus::Active);
        for (text, name) in [
            ("Verification code: 493817", "code-493817.txt"),
            ("See attached.", "verification code 493817.png"),
        ] {
            let raw = mail_with_attachments("203.0.113.19 hosted it")
                .replace("Evidence attached.", text)
                .replace("evidence.txt", name);
            let t = run(&raw, &dir, &NoRotations);
            let shown = serde_json::to_string(&t).unwrap();
            assert!(!shown.contains("493817"), "{name}: {shown}");
            assert!(t.sealed, "{name}");
            let ticket = t.ticket.expect("a ticket");
            assert!(ticket.attachments.iter().all(|a| a.withheld.is_some()));
        }
    }

    /// Files of a person's mail past what one mail's attachments are
    /// searched for are withheld, and the original is sealed: four 1 MiB
    /// files of junk first made a small file's code go unsearched, with the
    /// original readable by the ticket writer. A file's invisible characters
    /// split no code either.
    #[test]
    fn files_past_the_search_budget_seal_the_original() {
        let junk = format!(
            "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=junk.txt\r\n\r\n{}\r\n",
            "x".repeat(crate::mail::MAX_SCANNED_ATTACHMENT_BYTES)
        );
        let notes = "--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=notes.txt\r\n\r\n\
                     verification code: 493817\r\n";
        let mail = |files: &str| {
            format!(
                "{PASS}From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: files\r\n\
                 Message-ID: <f3@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n{files}--b--\r\n"
            )
        };
        let past = run(
            &mail(&format!("{}{notes}", junk.repeat(4))),
            &directory(AccountStatus::Active),
            &NoRotations,
        );
        let ticket = past.ticket.as_ref().expect("a ticket");
        let last = ticket.attachments.last().unwrap();
        assert_eq!(last.name, "notes.txt");
        assert!(
            last.withheld
                .as_deref()
                .is_some_and(|w| w.contains("not searched")),
            "{last:?}"
        );
        assert!(
            past.sealed,
            "an unsearched file of a person's mail seals it"
        );
        // Within the budget, the file is searched: its code (split by a
        // zero-width space) is found, and the original sealed for it.
        let split = notes.replace("493817", "493\u{200B}817");
        let within = run(
            &mail(&split),
            &directory(AccountStatus::Active),
            &NoRotations,
        );
        assert!(within.sealed);
        let attached = &within.ticket.as_ref().unwrap().attachments[0];
        assert!(
            attached
                .withheld
                .as_deref()
                .is_some_and(|w| w.contains("verification_code")),
            "{attached:?}"
        );
    }

    /// Someone forwards AWS's mail as an attachment; AWS writes its secret
    /// mail in base64 or quoted-printable, which a search of the forwarded
    /// message's bytes does not read. The decoded bodies are searched too.
    #[test]
    fn a_forwarded_message_is_searched_decoded() {
        let forwarded = |inner: &str| {
            format!(
                "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: Fwd: AWS\r\n\
                 Message-ID: <f1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
                 --b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=aws.eml\r\n\r\n\
                 From: no-reply@signin.aws\r\nSubject: AWS notice\r\n{inner}\r\n--b--\r\n"
            )
        };
        let base64_code = forwarded(
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nWW91ciBBV1MgdmVyaWZpY2F0aW9uIGNvZGUgaXMgNDkzODE3LiBJdCBleHBpcmVzIGluIDEwIG1pbnV0ZXMu",
        );
        let qp_link = forwarded(
            "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>Reset your password:</p><a href=3D\"https://signin.aws.amazon.com/resetpassword?token=3DZq9Xk2&amp;type=3DRESET\">Reset</a>",
        );
        for (raw, secret) in [(base64_code, "493817"), (qp_link, "Zq9Xk2")] {
            let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
            let ticket = t.ticket.expect("a ticket");
            let attached = &ticket.attachments[0];
            assert_eq!(attached.name, "aws.eml");
            assert!(
                attached
                    .withheld
                    .as_deref()
                    .is_some_and(|w| w.contains("holds")),
                "{attached:?}"
            );
            let shown = serde_json::to_string(&ticket).unwrap();
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    /// A secret only a forwarded message holds is redacted from what its
    /// text feeds (the ticket's facts), as the body's secrets are: a password
    /// that reads like an instance id was listed as one.
    #[test]
    fn a_secret_only_a_forwarded_message_holds_feeds_no_fact() {
        let raw = "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: Fwd: access\r\n\
                   Message-ID: <f2@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nSee attached; instance i-0fedcba9 is ours.\r\n\
                   --b\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=fwd.eml\r\n\r\n\
                   From: admin@customer.example\r\nSubject: access\r\nContent-Type: text/plain\r\n\r\n\
                   Your new password: i-0123abcd\r\n--b--\r\n";
        let t = run(raw, &directory(AccountStatus::Active), &NoRotations);
        let shown = serde_json::to_string(&t).unwrap();
        assert!(!shown.contains("i-0123abcd"), "{shown}");
        // Facts the forwarded message does not hide are still read.
        assert!(shown.contains("i-0fedcba9"), "{shown}");
    }

    /// Tokens near a code's words other than the code are redacted from a
    /// person's mail (a code may follow a request number), but not from
    /// AWS's ordinary mail, where they are invoice and request numbers.
    #[test]
    fn tokens_near_a_code_are_redacted_unless_aws_wrote_ordinary_mail() {
        let mail = |from: &str, subject: &str, text: &str| {
            format!(
                "From: {from}\r\nTo: root+x@msp.example\r\nSubject: {subject}\r\n\
                 Message-ID: <n1@x>\r\n\r\n{text}\r\n"
            )
        };
        let billing = format!(
            "{}{}",
            PASS.replace("verify.signin.aws", "amazon.com"),
            mail(
                "AWS Billing <aws-billing@amazon.com>",
                "Payment failed",
                "We were unable to charge your payment method. Decline code: ABC123 \
                 for request AB12CD34, invoice EUINGB24."
            )
        );
        let dir = directory(AccountStatus::Active);
        let from_aws = run(&billing, &dir, &NoRotations);
        assert_eq!(from_aws.kind, Kind::PaymentIssue);
        let shown = from_aws.ticket.expect("a ticket").body;
        assert!(
            shown.contains("AB12CD34") && shown.contains("EUINGB24"),
            "{shown}"
        );
        // A person's mail, and AWS's that is not known (it may quote
        // anyone): redacted.
        let text = "Error code: ABC123 occurred for request AB12CD34, invoice EUINGB24.";
        let person = mail("colleague@customer.example", "Notice", text);
        let unknown = format!(
            "{PASS}{}",
            mail("notices@verify.signin.aws", "Notice", text)
        );
        for raw in [person, unknown] {
            let t = run(&raw, &dir, &NoRotations);
            let shown = t.ticket.expect("a ticket").body;
            assert!(
                !shown.contains("AB12CD34") && !shown.contains("EUINGB24"),
                "{:?}: {shown}",
                t.kind
            );
        }
    }

    /// An attachment with more secrets than are collected is withheld, and
    /// feeds nothing, but the message's own text is still shown (before,
    /// one such file withheld the whole message).
    #[test]
    fn an_attachment_with_too_many_secrets_withholds_itself_alone() {
        let csv: String = (0..80)
            .map(|i| format!("Promo code,CR{i:05}X\r\n"))
            .collect();
        let raw = format!(
            "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: codes\r\n\
             Message-ID: <c1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nThe list is attached.\r\n\
             --b\r\nContent-Type: text/csv; name=codes.csv\r\n\r\n{csv}--b--\r\n"
        );
        let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
        let ticket = t.ticket.expect("a ticket");
        assert!(
            ticket.body.contains("The list is attached."),
            "{}",
            ticket.body
        );
        assert!(ticket.attachments[0].withheld.is_some());
        assert!(!serde_json::to_string(&ticket).unwrap().contains("CR00001X"));
    }

    /// The sender's display name is shown in the ticket: a secret there is
    /// found and redacted like one in the text.
    #[test]
    fn a_secret_in_the_sender_s_name_is_redacted() {
        let raw = "From: \"code 615274\" <colleague@customer.example>\r\nTo: root+x@msp.example\r\n\
                   Subject: hello\r\nMessage-ID: <d1@customer.example>\r\n\r\nSee my name.\r\n";
        let t = run(raw, &directory(AccountStatus::Active), &NoRotations);
        let shown = serde_json::to_string(&t).unwrap();
        assert!(!shown.contains("615274"), "{shown}");
        assert!(shown.contains("[redacted verification_code]"), "{shown}");
    }

    /// A JSON file writes a link's slashes escaped: it is searched as a
    /// link all the same, and the file withheld.
    #[test]
    fn a_json_file_s_escaped_link_is_found() {
        let raw = "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: event\r\n\
                   Message-ID: <j1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
                   --b\r\nContent-Type: application/json; name=event.json\r\n\r\n\
                   {\"link\":\"https:\\/\\/signin.aws.amazon.com\\/resetpassword?type=RootUser\\u0026token=Zq9Xk2PlmN\"}\r\n--b--\r\n";
        let t = run(raw, &directory(AccountStatus::Active), &NoRotations);
        let ticket = t.ticket.expect("a ticket");
        assert!(
            ticket.attachments[0]
                .withheld
                .as_deref()
                .is_some_and(|w| w.contains("reset_link")),
            "{:?}",
            ticket.attachments
        );
    }

    /// A code after JSON's `\n`, in a person's text or a file, and in a
    /// calendar file's folded line: each reached the ticket or its files.
    #[test]
    fn codes_behind_escapes_and_folded_lines_are_found() {
        let raw = "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: event\r\n\
                   Message-ID: <j2@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                   --b\r\nContent-Type: text/plain\r\n\r\n{\"text\":\"the code is:\\n615274\"}\r\n\
                   --b\r\nContent-Type: application/json; name=n.json\r\n\r\n\
                   {\"text\":\"your code is:\\n902417\"}\r\n\
                   --b\r\nContent-Type: application/json; name=p.json\r\n\r\n\
                   {\"note\":\"root password: Xy7\\nQ9#m and more\"}\r\n\
                   --b\r\nContent-Type: text/calendar; name=invite.ics\r\n\r\n\
                   BEGIN:VCALENDAR\r\nDESCRIPTION:the verification code will be 73\r\n 1842\r\nEND:VCALENDAR\r\n--b--\r\n";
        let t = run(raw, &directory(AccountStatus::Active), &NoRotations);
        let ticket = t.ticket.expect("a ticket");
        assert!(!ticket.body.contains("615274"), "{}", ticket.body);
        assert!(ticket.body.contains("the code is:"), "{}", ticket.body);
        // An escape inside the secret: it cannot be redacted where it
        // stands, so the text is withheld (a reading with the escapes read
        // alone showed these in clear).
        for written in [
            r"Your new root password: Hunter2\/Secret",
            r"Your new root password: Xy7\nQ9#m and done",
            r"verification code: 615\t274",
            r"https:\/\/signin.aws.amazon.com\/resetpassword?token=Zq9Xk2PlmN",
        ] {
            let raw = format!(
                "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: event\r\n\
                 Message-ID: <j3@customer.example>\r\n\r\n{{\"msg\":\"{written}\"}}\r\n"
            );
            let t = run(&raw, &directory(AccountStatus::Active), &NoRotations);
            let shown = serde_json::to_string(&t.ticket).unwrap();
            for piece in ["Hunter2", "Q9#m", "615", "Zq9Xk2"] {
                assert!(!shown.contains(piece), "{written}: {shown}");
            }
        }
        for file in &ticket.attachments {
            let kind = match file.name.as_str() {
                "p.json" => "password",
                _ => "verification_code",
            };
            assert!(
                file.withheld.as_deref().is_some_and(|w| w.contains(kind)),
                "{:?}",
                ticket.attachments
            );
        }
    }

    /// Many mail clients send a `.txt` or a saved `.eml` as
    /// `application/octet-stream`, and a part may carry no type at all: the
    /// declared type is the sender's word, so what reads as text is searched
    /// (a saved message decoded), and binary stays opaque and offered.
    #[test]
    fn an_attachment_declared_opaque_that_reads_as_text_is_searched() {
        let with_file = |header: &str, body: &str| {
            format!(
                "From: staff@customer.example\r\nTo: root+x@msp.example\r\nSubject: FYI\r\n\
                 Message-ID: <o1@customer.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n\
                 --b\r\n{header}\r\n\r\n{body}\r\n--b--\r\n"
            )
        };
        // base64 of a saved message whose own body is base64 ("Your AWS
        // verification code is 493817..."), of "Código de verificación:
        // 493817" in Latin-1, and of a PNG header followed by that text.
        let saved_eml = "RnJvbTogbm8tcmVwbHlAc2lnbmluLmF3cw0KU3ViamVjdDogQVdTIG5vdGljZQ0KQ29udGVudC1UeXBlOiB0ZXh0L3BsYWluDQpDb250ZW50LVRyYW5zZmVyLUVuY29kaW5nOiBiYXNlNjQNCg0KV1c5MWNpQkJWMU1nZG1WeWFXWnBZMkYwYVc5dUlHTnZaR1VnYVhNZ05Ea3pPREUzTGlCSmRDQmxlSEJwY21WeklHbHVJREV3SUcxcGJuVjBaWE11";
        let latin1 = "Q/NkaWdvIGRlIHZlcmlmaWNhY2nzbjogNDkzODE3";
        let png = "iVBORw0KGgoAAAANSUhEUiB2ZXJpZmljYXRpb24gY29kZSA0OTM4MTc=";
        // UTF-16LE with its byte-order mark (Notepad's "Unicode").
        let utf16 = "//5ZAG8AdQByACAAdgBlAHIAaQBmAGkAYwBhAHQAaQBvAG4AIABjAG8AZABlACAAaQBzACAANAA5ADMAOAAxADcA";
        let cases = [
            (
                "Content-Type: application/octet-stream; name=code.txt\r\n\
                 Content-Disposition: attachment; filename=code.txt",
                "Your verification code is 493817".to_string(),
            ),
            (
                "Content-Type: application/octet-stream; name=aws.eml\r\n\
                 Content-Disposition: attachment; filename=aws.eml\r\n\
                 Content-Transfer-Encoding: base64",
                saved_eml.to_string(),
            ),
            (
                "Content-Disposition: attachment; filename=notes",
                "Your verification code is 493817".to_string(),
            ),
            (
                "Content-Type: image/png; name=shot.png\r\n\
                 Content-Disposition: attachment; filename=shot.png\r\n\
                 Content-Transfer-Encoding: base64",
                latin1.to_string(),
            ),
            (
                "Content-Type: application/octet-stream; name=code.txt\r\n\
                 Content-Transfer-Encoding: base64",
                utf16.to_string(),
            ),
            // Two bytes that look like a UTF-16 mark before 8-bit text.
            (
                "Content-Type: application/octet-stream; name=code.txt\r\n\
                 Content-Transfer-Encoding: base64",
                "//5Zb3VyIHZlcmlmaWNhdGlvbiBjb2RlIGlzIDQ5MzgxNw==".to_string(),
            ),
            // A forwarded message whose own file holds the code, in base64.
            (
                "Content-Type: message/rfc822\r\n\
                 Content-Disposition: attachment; filename=fwd.eml",
                "From: a@b.example\r\nSubject: code\r\n\
                 Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\
                 Content-Type: text/plain\r\n\r\nsee file\r\n--i\r\n\
                 Content-Type: application/octet-stream; name=code.txt\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n\
                 WW91ciB2ZXJpZmljYXRpb24gY29kZSBpcyA0OTM4MTc=\r\n--i--"
                    .to_string(),
            ),
            // The same saved message sent as text, inside a forwarded one.
            (
                "Content-Type: message/rfc822\r\n\
                 Content-Disposition: attachment; filename=fwd.eml",
                format!(
                    "From: a@b.example\r\nSubject: fwd\r\n\
                     Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\
                     Content-Type: text/plain\r\n\r\nsee file\r\n--i\r\n\
                     Content-Type: text/plain; name=aws.eml\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n{saved_eml}\r\n--i--"
                ),
            ),
            // A saved message whose name is too long to list whole.
            (
                &format!(
                    "Content-Type: application/octet-stream; name=\"{}.eml\"\r\n\
                     Content-Transfer-Encoding: base64",
                    "n".repeat(300)
                ),
                saved_eml.to_string(),
            ),
            // A forwarded message with a saved message among its files,
            // whose own body is base64.
            (
                "Content-Type: message/rfc822\r\n\
                 Content-Disposition: attachment; filename=fwd.eml",
                format!(
                    "From: a@b.example\r\nSubject: fwd\r\n\
                     Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\
                     Content-Type: text/plain\r\n\r\nsee file\r\n--i\r\n\
                     Content-Type: application/octet-stream; name=aws.eml\r\n\
                     Content-Transfer-Encoding: base64\r\n\r\n{saved_eml}\r\n--i--"
                ),
            ),
        ];
        let dir = directory(AccountStatus::Active);
        for (header, body) in cases {
            let t = run(&with_file(header, &body), &dir, &NoRotations);
            let shown = serde_json::to_string(&t).unwrap();
            assert!(!shown.contains("493817"), "{header}: {shown}");
            assert!(t.sealed, "{header}");
            let ticket = t.ticket.expect("a ticket");
            let file = &ticket.attachments[0];
            assert!(
                file.withheld
                    .as_deref()
                    .is_some_and(|w| w.contains("holds")),
                "{header}: {file:?}"
            );
        }

        // Binary bytes (a NUL early, as in every image and archive) stay
        // opaque: searched for nothing, so not attached from mail that is
        // not AWS's (this one holds the code after its PNG header).
        let t = run(
            &with_file(
                "Content-Type: application/octet-stream; name=shot.png\r\n\
                 Content-Transfer-Encoding: base64",
                png,
            ),
            &dir,
            &NoRotations,
        );
        assert!(!t.sealed);
        assert_eq!(
            t.ticket.expect("a ticket").attachments[0]
                .withheld
                .as_deref(),
            Some(NOT_SEARCHED)
        );
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
        let found = crate::mail::attachments_bytes(raw.as_bytes(), &[1, 2, 1]);
        let pdf = b"%PDF-1.4\n".to_vec();
        assert_eq!(found, [Some(pdf.clone()), None, Some(pdf)]);
        let unparsed = crate::mail::attachments_bytes(b"\x00", &[0, 1]);
        assert_eq!(unparsed, [None, None]);
    }
}
