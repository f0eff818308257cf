//! Whose words a support case's mail carries.
//!
//! AWS Support mails a case's correspondence to every address the case
//! copies, and a case opened in any AWS account may copy any address. The
//! mail is genuine AWS mail, but its case subject and text are whoever wrote
//! them: an attacker's case can copy every root address with "your account
//! has been suspended". So such mail's kind and priority come from AWS
//! Support's own parts (the subject's case form, the severity field), never
//! from the case's words. The one exception is the first mail of a case AWS
//! opened itself (a compromised account): its subject and its first line
//! are AWS's, and its text is AWS's notice. Later mail of that case is
//! correspondence like any other: anyone can write AWS's words in theirs.

use regex::Regex;
use std::sync::LazyLock;

/// The subject of the first mail of a case AWS opened itself ("Amazon Web
/// Services: New Support case: N"). A case someone opens is announced
/// otherwise ("You have opened a new Support case"), and its later mail is
/// `[CASE N]`, whose text starts with whatever its writer wrote, AWS's
/// words too.
static OPENED_BY_AWS_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*amazon web services: new support case: (\d{10,16})\s*$")
        .expect("static regex")
});

/// That mail's first line, as AWS writes it, after any image's alternative
/// text an HTML mail puts first (AWS's logo, and its link when linked).
static OPENED_BY_AWS_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:\[image:[^\]]{0,80}\](?:\s*\(https?://[^\s)]{1,300}\))?\s*)*amazon web services has opened case (\d{10,16}) on your behalf")
        .expect("static regex")
});

/// Whether the mail relays a support case's words: its subject is in AWS
/// Support's case form (`thread::case_id`), and it is not the first mail of
/// a case AWS opened (that subject, and a text that opens with AWS's "has
/// opened case N on your behalf", N the subject's case). `text` is the
/// mail's text as the rules read it (each run of whitespace one space).
pub(crate) fn relays_case_words(subject: &str, text: &str) -> bool {
    crate::thread::case_id(subject).is_some() && !opened_by_aws(subject, text)
}

fn opened_by_aws(subject: &str, text: &str) -> bool {
    let case = |re: &Regex, text: &str| {
        re.captures(text)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string())
    };
    let named = case(&OPENED_BY_AWS_SUBJECT, subject);
    named.is_some() && named == case(&OPENED_BY_AWS_LINE, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_s_correspondence_relays_words_unless_aws_opened_the_case() {
        let new_case = "Amazon Web Services: New Support case: 4838201957";
        let aws_line = "Amazon Web Services has opened case 4838201957 on your behalf.";
        let relayed = [
            (
                "[CASE 176655012300941] Your AWS account has been suspended",
                "Hello, your account is suspended.",
            ),
            (
                "RE: [Case 1718205593] Payment failed",
                "Thank you for contacting AWS Billing.",
            ),
            // AWS's line written by a case's correspondent: not AWS's first mail.
            (
                "RE:[CASE 4838201957] Your AWS account is compromised",
                aws_line,
            ),
            (
                "[CASE 4838201957] Your AWS account is compromised",
                aws_line,
            ),
            (
                "Amazon Web Services: You have opened a new Support case: 4838201957",
                aws_line,
            ),
            // The line, but not first, or of another case, or loosely worded.
            (
                new_case,
                "You have opened a new case. Amazon Web Services has opened case 4838201957 on your behalf.",
            ),
            (
                new_case,
                "Amazon Web Services has opened case 5244329601 on your behalf.",
            ),
            (new_case, "AWS has opened a case on your behalf"),
            (
                new_case,
                "amazon web services opened case 4838201957 on your behalf",
            ),
        ];
        for (subject, text) in relayed {
            assert!(relays_case_words(subject, text), "{subject} / {text}");
        }
        let not_relayed = [
            // AWS opened it: its subject and its first line, plain or HTML.
            (
                new_case,
                format!("{aws_line} The details of the case are as follows:"),
            ),
            (
                new_case,
                format!(" [image: Amazon Web Services] {aws_line}"),
            ),
            (
                new_case,
                format!("[image: AWS] (https://aws.amazon.com/) {aws_line}"),
            ),
            // No case form in the subject: AWS's own notice.
            (
                "Your AWS account has been suspended",
                "Case ID: 176655012300941".to_string(),
            ),
            (
                "Budget alert: Case 176655012300941",
                "Your budget has exceeded its threshold.".to_string(),
            ),
        ];
        for (subject, text) in not_relayed {
            assert!(!relays_case_words(subject, &text), "{subject} / {text}");
        }
    }
}
