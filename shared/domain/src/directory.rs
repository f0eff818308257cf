//! The account directory and resolving a message to the account it is about.

use crate::mail::ParsedMail;
use crate::types::{AccountId, AccountStatus, EmailAddress};
use regex::Regex;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::LazyLock;

/// One customer account whose root address we own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Account {
    pub root_email: EmailAddress,
    pub account_id: AccountId,
    pub customer: String,
    pub status: AccountStatus,
    /// The payer (management) account of the customer's organization this
    /// account belongs to, when imported from it (`accounts import
    /// --organization --role-arn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<AccountId>,
}

/// Read access to the account directory. Lookups are synchronous: adapters over a
/// remote table fetch the candidates (`ParsedMail` addresses and ids) first.
pub trait AccountDirectory {
    fn by_email(&self, email: &EmailAddress) -> Option<Account>;
    fn by_id(&self, id: &AccountId) -> Option<Account>;
}

/// A directory held in memory (the CSV in local mode; a prefetched view in AWS).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InMemoryDirectory {
    by_email: HashMap<EmailAddress, Account>,
    by_id: HashMap<AccountId, Account>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    #[error("root address {0} is listed twice")]
    DuplicateEmail(EmailAddress),
}

/// Of the rows an account id has (several root addresses over time), the
/// one for its current address: the highest `AccountStatus::currency`, of
/// equals the last.
pub fn current_row<'a>(rows: impl IntoIterator<Item = &'a Account>) -> Option<&'a Account> {
    rows.into_iter().max_by_key(|a| a.status.currency())
}

impl InMemoryDirectory {
    /// No account at all (every message would be for an unknown account).
    pub fn is_empty(&self) -> bool {
        self.by_email.is_empty()
    }

    pub fn new(accounts: impl IntoIterator<Item = Account>) -> Result<Self, DirectoryError> {
        let mut dir = Self::default();
        for account in accounts {
            if dir.by_email.contains_key(&account.root_email) {
                return Err(DirectoryError::DuplicateEmail(account.root_email));
            }
            // An account id may have had several root addresses over time; the
            // current one ranks highest (`AccountStatus::currency`), of equals
            // the last listed.
            let replace = dir
                .by_id
                .get(&account.account_id)
                .is_none_or(|existing| account.status.currency() >= existing.status.currency());
            if replace {
                dir.by_id
                    .insert(account.account_id.clone(), account.clone());
            }
            dir.by_email.insert(account.root_email.clone(), account);
        }
        Ok(dir)
    }
}

impl AccountDirectory for InMemoryDirectory {
    fn by_email(&self, email: &EmailAddress) -> Option<Account> {
        self.by_email.get(email).cloned()
    }

    fn by_id(&self, id: &AccountId) -> Option<Account> {
        self.by_id.get(id).cloned()
    }
}

/// How the account was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    EnvelopeRecipient,
    HeaderRecipient,
    AccountIdInMail,
}

#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub account: Option<Account>,
    pub matched_by: Option<MatchedBy>,
    /// Account ids the subject and body mention, in order of appearance.
    pub mentioned: Vec<AccountId>,
    /// Authenticated AWS mail to a known root address about an account not
    /// related to that address's account (not itself, its payer, an account
    /// it pays for, one of the same payer's, nor its customer's): that
    /// account. Anyone can make a root address their own account's alternate
    /// contact (billing, operations, security), unverified, and AWS then
    /// mails it that account's notices. The account AWS labels first decides
    /// ([`Mentions::labelled`]), not any id: the text AWS quotes (an abuse
    /// report's log, a leaked file's name) is that account owner's to fill
    /// with the recipient's id. Without a label, every id must be unrelated;
    /// without any id, the last four digits of a masked one must be neither
    /// the recipient's nor its payer's.
    pub about_another_account: Option<String>,
    pub warnings: Vec<String>,
}

static ACCOUNT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&crate::evidence::ascii_word_boundaries(concat!(
        // 1: a label, then a space, colon or `#` (an IAM user may be named
        // account111122223333), then the id.
        r"(?i)(?:\baccount(?:\s+(?:id|number|no\.?))?|\baws\s+id|\baccount\s*:)(?:\s+[:#：]?|[:#：])",
        r"\s*[\[(（]?\s*(\d{12}|\d{4}-\d{4}-\d{4})\b",
        // 2: an ARN's account; 3: a bare dashed id.
        r"|\barn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):",
        r"|\b(\d{4}-\d{4}-\d{4})\b",
        // 4: the labels of AWS's other languages, whose notices a stranger
        // gets by choosing one for their own account. Only beside "AWS" and
        // on the id's line: alone, their words also name bank accounts (收款
        // 账户, a la cuenta) in payment instructions. CJK's may touch the id.
        r"|(?:\b(?:id\s+(?:de\s+)?)?(?:cuenta(?:\s+de)?|conta(?:\s+da)?|compte|account|akun|konto)\s+aws(?:\s+anda)?",
        r"|\baws[-\s]?konto(?:-?id|nummer)?|\bkonto-id|\baws\s+hesab\w*)(?:[\t \u{a0}]+[:#：]?|[:#：])",
        r"[\t \u{a0}]*[\[(（]?[\t \u{a0}]*(\d{12}|\d{4}-\d{4}-\d{4})\b",
        r"|\baws[\t \u{a0}]*(?:アカウント|계정|账户|账号|帳戶|帳號)(?:[\t \u{a0}]*(?:id|番号|번호))?",
        r"[\t \u{a0}]*[:#：]?[\t \u{a0}]*[\[(（]?[\t \u{a0}]*(\d{12}|\d{4}-\d{4}-\d{4})\b",
        // 6: an id masked but for its last four digits (AWS's 2014 notices).
        r"|\*{4}-\*{4}-(\d{4})\b",
    )))
    .expect("static regex")
});

/// The 12-digit account ids a text mentions, in every form design.md lists.
pub fn mentioned_account_ids(text: &str) -> Vec<AccountId> {
    mentions(text).ids
}

/// What a text says of accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// Every id, once each, in order of appearance; at most [`MAX_MENTIONED_IDS`].
    pub ids: Vec<AccountId>,
    /// The first id written after a label ("AWS Account 1111...", "[AWS ID
    /// 1111...]", "Account ID: 1111...") and not inside a link: the account
    /// AWS says its mail is about. Not a bare `NNNN-NNNN-NNNN` or an ARN,
    /// which an IAM user's or a repository's name written before it (by that
    /// account's owner) can be.
    pub labelled: Option<AccountId>,
    /// The last four digits of the first id written masked (`****-****-6006`).
    pub masked_tail: Option<String>,
}

/// [`Mentions`] of `text`, in one pass.
pub fn mentions(text: &str) -> Mentions {
    let mut mentions = Mentions::default();
    let mut link = InLink::default();
    for caps in ACCOUNT_ID.captures_iter(text) {
        let full = mentions.ids.len() == MAX_MENTIONED_IDS;
        if full && mentions.labelled.is_some() && mentions.masked_tail.is_some() {
            break;
        }
        if let Some(tail) = caps.get(6) {
            mentions
                .masked_tail
                .get_or_insert_with(|| tail.as_str().to_string());
            continue;
        }
        let Some(raw) = caps.iter().skip(1).flatten().next() else {
            continue;
        };
        if in_a_longer_number(text, &raw) {
            continue;
        }
        let Ok(id) = AccountId::parse(raw.as_str()) else {
            continue;
        };
        let labelled = [1, 4, 5].iter().any(|&group| caps.get(group).is_some())
            && !link.holds(text, raw.start());
        if labelled && mentions.labelled.is_none() {
            mentions.labelled = Some(id.clone());
        }
        if !full && !mentions.ids.contains(&id) {
            mentions.ids.push(id);
        }
    }
    mentions
}

/// Whether a dashed id is three groups of a longer number (a UUID's middle,
/// a card number, a name's date `ops.2025-0114-0930`), not an account id.
fn in_a_longer_number(text: &str, id: &regex::Match) -> bool {
    if !id.as_str().contains('-') {
        return false;
    }
    let bytes = text.as_bytes();
    let at = |i: Option<usize>| i.and_then(|i| bytes.get(i)).copied();
    let joined = |joiner: Option<u8>, beyond: Option<u8>| match joiner {
        Some(b'-' | b'/') => true,
        Some(b'.') => beyond.is_some_and(|b| b.is_ascii_alphanumeric()),
        _ => false,
    };
    let start = id.start();
    joined(at(start.checked_sub(1)), at(start.checked_sub(2)))
        || joined(at(Some(id.end())), at(Some(id.end() + 1)))
}

/// Whether a position is inside a link (a run of text without whitespace
/// that has a `/` before it), asked in increasing positions: linear in the
/// text however many ids it holds.
#[derive(Default)]
struct InLink {
    scanned: usize,
    slash: bool,
}

impl InLink {
    fn holds(&mut self, text: &str, at: usize) -> bool {
        // Any whitespace ends a link, as `\s` does in the id's pattern (a
        // no-break space between a label and its id too).
        for c in text[self.scanned.min(at)..at].chars() {
            if c.is_whitespace() {
                self.slash = false;
            } else if c == '/' {
                self.slash = true;
            }
        }
        self.scanned = self.scanned.max(at);
        self.slash
    }
}

/// What [`resolve`] may look up, so a directory behind a network call can fetch
/// these first and resolve from an in-memory view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    pub emails: Vec<EmailAddress>,
    pub ids: Vec<AccountId>,
}

/// How many To/Cc addresses and mentioned ids are looked up, so the work a
/// message costs is bounded (the envelope recipient is always looked up first).
pub const MAX_HEADER_RECIPIENTS: usize = 10_000;
pub const MAX_MENTIONED_IDS: usize = 20;

fn header_recipients(mail: &ParsedMail) -> impl Iterator<Item = &EmailAddress> {
    mail.to.iter().chain(&mail.cc).take(MAX_HEADER_RECIPIENTS)
}

/// Every address and account id `resolve(mail, envelope, _)` can ask the directory about.
pub fn candidates(mail: &ParsedMail, envelope: &[EmailAddress]) -> Candidates {
    let mut emails: Vec<EmailAddress> = Vec::new();
    // A set, not a scan of the list per address: the sender chooses up to
    // MAX_HEADER_RECIPIENTS of them.
    let mut seen = std::collections::HashSet::new();
    for address in envelope.iter().chain(header_recipients(mail)) {
        if seen.insert(address) {
            emails.push(address.clone());
        }
    }
    Candidates {
        emails,
        ids: mail.mentioned_account_ids().to_vec(),
    }
}

/// Envelope recipient first (authoritative), then To/Cc, then an id in the
/// mail, the last only when `trust_ids_in_text` (authenticated AWS mail: anyone
/// else can write any account id into a mail) and the mail names no other
/// account. AWS's own mail carries text its sender chose (a budget's name, a
/// topic's, an invitation's note), and AWS names that sender's account
/// beside it (`AWS Account N`, a topic's ARN, the inviting account): a
/// victim's id written into such text must not pick the victim's account.
pub fn resolve(
    mail: &ParsedMail,
    envelope: &[EmailAddress],
    directory: &dyn AccountDirectory,
    trust_ids_in_text: bool,
) -> Resolution {
    let mentioned = mail.mentioned_account_ids().to_vec();
    let ids = match (trust_ids_in_text, mentioned.as_slice()) {
        (true, [only]) => std::slice::from_ref(only),
        _ => &[],
    };
    let (account, matched_by) = match find_account(mail, envelope, directory, ids) {
        Some((account, how)) => (Some(account), Some(how)),
        None => (None, None),
    };
    let to = envelope.first().or(mail.to.first());
    let mut about_another_account = None;
    let warnings = match (&account, matched_by) {
        (Some(account), Some(MatchedBy::EnvelopeRecipient | MatchedBy::HeaderRecipient)) => {
            let unrelated = |id: &AccountId| !related(account, id, directory);
            let labelled = mail.labelled_account_id();
            about_another_account = match (labelled, mentioned.first(), mail.masked_account_tail())
            {
                (Some(about), _, _) => unrelated(about).then(|| about.to_string()),
                (None, Some(first), _) => {
                    mentioned.iter().all(unrelated).then(|| first.to_string())
                }
                (None, None, Some(tail)) => {
                    unrelated_tail(account, tail).then(|| format!("****-****-{tail}"))
                }
                (None, None, None) => None,
            }
            .filter(|_| trust_ids_in_text);
            other_accounts_mentioned(account, &mentioned)
        }
        (Some(account), Some(MatchedBy::AccountIdInMail)) => vec![found_by_id(account, to)],
        _ => no_account_found(to, &mentioned, trust_ids_in_text),
    };
    Resolution {
        account,
        matched_by,
        mentioned,
        about_another_account,
        warnings,
    }
}

/// Whether account `id` is `account` itself, its payer, an account it pays
/// for, one of the same payer's, or another of its customer's (as the
/// directory knows them: an organization's import names each account's
/// customer after the account, so the payer is what ties them).
fn related(account: &Account, id: &AccountId, directory: &dyn AccountDirectory) -> bool {
    *id == account.account_id
        || account.payer.as_ref() == Some(id)
        || directory.by_id(id).is_some_and(|other| {
            let same_payer = other.payer.is_some() && other.payer == account.payer;
            other.payer.as_ref() == Some(&account.account_id)
                || same_payer
                || other.customer == account.customer
        })
}

/// Whether an id AWS masked but for its last four digits cannot be
/// `account`'s or its payer's (members are not looked up by a tail).
fn unrelated_tail(account: &Account, tail: &str) -> bool {
    let ends = |id: &AccountId| id.as_str().ends_with(tail);
    !ends(&account.account_id) && !account.payer.as_ref().is_some_and(ends)
}

/// The first account the directory knows, looked up in order of authority:
/// envelope recipient, To/Cc, then the trusted ids (empty when the text's ids
/// may not decide).
fn find_account(
    mail: &ParsedMail,
    envelope: &[EmailAddress],
    directory: &dyn AccountDirectory,
    trusted_ids: &[AccountId],
) -> Option<(Account, MatchedBy)> {
    if let Some(a) = envelope.iter().find_map(|a| directory.by_email(a)) {
        return Some((a, MatchedBy::EnvelopeRecipient));
    }
    if let Some(a) = header_recipients(mail).find_map(|a| directory.by_email(a)) {
        return Some((a, MatchedBy::HeaderRecipient));
    }
    trusted_ids
        .iter()
        .find_map(|id| directory.by_id(id))
        .map(|a| (a, MatchedBy::AccountIdInMail))
}

/// A recipient decided the account, yet the mail names other accounts: a
/// person should see that the mail may be about one of them.
fn other_accounts_mentioned(account: &Account, mentioned: &[AccountId]) -> Vec<String> {
    mentioned
        .iter()
        .filter(|id| **id != account.account_id)
        .map(|other| {
            format!(
                "mail mentions account {other}, but its recipient {} belongs to account {}",
                account.root_email, account.account_id
            )
        })
        .collect()
}

/// Only the id in the text decided the account: the recipient is not listed.
fn found_by_id(account: &Account, to: Option<&EmailAddress>) -> String {
    match to {
        Some(to) => format!(
            "recipient {to} is not in the account directory; account {} found by the id in the mail",
            account.account_id
        ),
        None => format!(
            "no recipient; account {} found by the id in the mail",
            account.account_id
        ),
    }
}

/// No account: say which recipient is unknown, and that an id in an
/// unauthenticated mail's text was not believed.
fn no_account_found(
    to: Option<&EmailAddress>,
    mentioned: &[AccountId],
    trust_ids_in_text: bool,
) -> Vec<String> {
    let mut warnings = vec![match to {
        Some(to) => format!("no account in the directory for recipient {to}"),
        None => "no recipient and no known account id in the mail".to_string(),
    }];
    if !trust_ids_in_text && let Some(id) = mentioned.first() {
        warnings.push(format!(
            "the mail mentions account {id}, but it is not from an authenticated AWS sender: an id in its text does not decide the account"
        ));
    } else if trust_ids_in_text && mentioned.len() > 1 {
        let ids: Vec<&str> = mentioned.iter().map(AccountId::as_str).collect();
        warnings.push(format!(
            "the mail mentions several accounts ({}): an id in its text decides the account only when it names no other",
            ids.join(", ")
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_account_id_is_found() {
        let text = "Billing Statement Available [Account: 111122223333]\nAWS ID: 222233334444\n\
                    AWS Account 333344445555 and arn:aws:sns:us-east-1:444455556666:alerts \
                    cert for 5555-6666-7777 and account [888899990000]; invoice 123456789012345 \
                    request 1a2b3c4d-9876-5432-1098-4e5f6a7b8c9d card 4000-1234-5678-9010 \
                    account number: 4000-1234-5678-9010 user ops.2025-0114-0930 account123412341234";
        let ids: Vec<String> = mentioned_account_ids(text)
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            ids,
            [
                "111122223333",
                "222233334444",
                "333344445555",
                "444455556666",
                "555566667777",
                "888899990000"
            ]
        );
    }

    /// The account a text labels first, outside links: AWS's words, not a
    /// name its sender chose written before them.
    #[test]
    fn the_first_labelled_id_outside_a_link_is_the_one_aws_means() {
        let labelled = |text: &str| mentions(text).labelled.map(|id| id.to_string());
        let theirs = Some("999900001111".to_string());
        for text in [
            "IAM user 1111-2222-3333 of your AWS account 999900001111",
            "found at https://github.com/x/account:111122223333 for AWS Account: 999900001111",
            "arn:aws:iam::111122223333:user/x in [AWS ID 999900001111]",
            "Your Account ID: 999900001111, then account 111122223333",
            "la cuenta de AWS 999900001111 ha sido suspendida",
            "Ihr AWS-Konto 999900001111 wurde gesperrt",
            "AWS-Kontonummer: 999900001111",
            "AWS アカウント（999900001111）は停止されました",
            "AWS アカウント番号 999900001111",
            "AWS 계정 999900001111 이 일시 중지",
            "AWS 계정 번호: 999900001111",
            "您的 AWS 账户：999900001111 已被暂停",
            "Votre compte AWS 999900001111 a été suspendu",
            "ID de compte AWS : 999900001111",
            "ID account AWS: 999900001111",
            "Akun AWS Anda 999900001111 ditangguhkan",
            "ID akun AWS: 999900001111",
            "AWS hesabınız 999900001111 askıya alındı",
            "Su cuenta AWS 999900001111 ha sido suspendida",
            "Konto-ID: 999900001111",
        ] {
            assert_eq!(labelled(text), theirs, "{text}");
        }
        assert_eq!(labelled("user 1111-2222-3333 only"), None);
        // A bank account in a payment instruction, or a label whose id is
        // on the next line: no label.
        for text in [
            "收款账户：999900001111",
            "a la cuenta: 999900001111",
            "AWS アカウント\n999900001111",
        ] {
            assert_eq!(labelled(text), None, "{text}");
        }
    }

    /// The ids the pipeline fetches accounts for are the ids triage resolves
    /// with: the subject's first, then the text's, each once.
    #[test]
    fn candidates_and_resolution_see_the_ids_of_subject_and_text() {
        let raw = "From: no-reply@aws.amazon.com\r\nTo: root@x.com\r\n\
                   Subject: Billing Statement [Account: 111122223333]\r\n\r\n\
                   For AWS account 222233334444 and again 111122223333.\r\n";
        let mail = crate::mail::parse(raw.as_bytes()).unwrap();
        let wanted: Vec<AccountId> = ["111122223333", "222233334444"]
            .iter()
            .map(|id| AccountId::parse(id).unwrap())
            .collect();
        assert_eq!(mail.mentioned_account_ids(), wanted);
        assert_eq!(candidates(&mail, &[]).ids, wanted);
        let directory = InMemoryDirectory::default();
        assert_eq!(resolve(&mail, &[], &directory, true).mentioned, wanted);
    }

    fn account(email: &str, id: &str, status: AccountStatus) -> Account {
        Account {
            root_email: EmailAddress::parse(email).unwrap(),
            account_id: AccountId::parse(id).unwrap(),
            customer: "C".into(),
            status,
            payer: None,
        }
    }

    /// Genuine AWS mail to an address not in the directory, whose sender
    /// wrote a customer's id into text AWS mails on (a budget's name): AWS
    /// names the sender's own account too, and neither id decides.
    #[test]
    fn an_id_in_aws_mail_decides_the_account_only_when_it_is_the_only_one() {
        let dir = InMemoryDirectory::new([account(
            "root+v@x.com",
            "222233334444",
            AccountStatus::Active,
        )])
        .unwrap();
        let mail_naming = |ids: &str| {
            let raw = format!(
                "From: budgets@costalerts.amazonaws.com\r\nTo: root+zz@x.com\r\n\
                 Subject: AWS Budgets: Account 222233334444 will be suspended\r\n\r\n{ids}\r\n"
            );
            crate::mail::parse(raw.as_bytes()).unwrap()
        };
        let envelope = [EmailAddress::parse("root+zz@x.com").unwrap()];

        let alone = resolve(
            &mail_naming("AWS Account 222233334444"),
            &envelope,
            &dir,
            true,
        );
        assert_eq!(alone.matched_by, Some(MatchedBy::AccountIdInMail));

        let beside_another = resolve(
            &mail_naming("AWS Account 999988887777"),
            &envelope,
            &dir,
            true,
        );
        assert_eq!(beside_another.account, None);
        assert!(
            beside_another
                .warnings
                .iter()
                .any(|w| w.contains("several accounts (222233334444, 999988887777)")),
            "{:?}",
            beside_another.warnings
        );
    }

    #[test]
    fn a_retired_address_does_not_shadow_the_current_one() {
        let dir = InMemoryDirectory::new([
            account("new@x.com", "111122223333", AccountStatus::Active),
            account("old@x.com", "111122223333", AccountStatus::Released),
        ])
        .unwrap();
        let id = AccountId::parse("111122223333").unwrap();
        assert_eq!(dir.by_id(&id).unwrap().root_email.as_str(), "new@x.com");
        // A take-over in progress: the customer's address is still the
        // account's, whichever row comes last.
        for rows in [
            [
                account("ours@root.x.com", "111122223333", AccountStatus::Onboarding),
                account("customer@x.com", "111122223333", AccountStatus::Active),
            ],
            [
                account("customer@x.com", "111122223333", AccountStatus::Active),
                account("ours@root.x.com", "111122223333", AccountStatus::Onboarding),
            ],
        ] {
            let dir = InMemoryDirectory::new(rows).unwrap();
            assert_eq!(
                dir.by_id(&id).unwrap().root_email.as_str(),
                "customer@x.com"
            );
        }
        assert!(
            InMemoryDirectory::new([
                account("a@x.com", "111122223333", AccountStatus::Active),
                account("A@x.com", "222233334444", AccountStatus::Active),
            ])
            .is_err()
        );
    }
}
