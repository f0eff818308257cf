//! Whose words a support case's mail carries.
//!
//! AWS Support mails a case's correspondence to every address the case
//! copies, and a case opened in any AWS account may copy any address. The
//! mail is genuine AWS mail, but its case subject and text are whoever wrote
//! them: an attacker's case can copy every root address with "your account
//! has been suspended". So such mail's kind and priority come from AWS
//! Support's own parts (the subject's case form, the severity field), never
//! from the case's words. The one exception is a case AWS opened itself (a
//! compromised account), whose first line AWS writes: there the text is
//! AWS's notice.

use regex::Regex;
use std::sync::LazyLock;

/// AWS's opening line of a case it opened on the account's behalf, at the
/// very start of the text (an attacker's words come only after AWS's own
/// opening, in the case's details).
static OPENED_BY_AWS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)^\s*(?:amazon web services|aws)(?: support| trust (?:&|and) safety)? (?:has )?opened (?:a |this )?case(?: \d{10,16})? on your behalf",
    )
    .expect("static regex")
});

/// Whether the mail relays a support case's words: its subject is in AWS
/// Support's case form (`thread::case_id`) and its text does not open with
/// AWS's "has opened case N on your behalf". `text` is the mail's text as
/// the rules read it (each run of whitespace one space).
pub(crate) fn relays_case_words(subject: &str, text: &str) -> bool {
    crate::thread::case_id(subject).is_some() && !OPENED_BY_AWS.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_s_correspondence_relays_words_unless_aws_opened_the_case() {
        let relayed = [
            (
                "[CASE 176655012300941] Your AWS account has been suspended",
                "Hello, your account is suspended.",
            ),
            (
                "RE: [Case 1718205593] Payment failed",
                "Thank you for contacting AWS Billing.",
            ),
            (
                "Amazon Web Services: New Support case: 4838201957",
                "You have opened a new case. Amazon Web Services has opened case 4838201957 on your behalf.",
            ),
            (
                "Amazon Web Services: New Support case: 4838201957",
                "Case ID: 4838201957 AWS has opened a case on your behalf",
            ),
        ];
        for (subject, text) in relayed {
            assert!(relays_case_words(subject, text), "{subject} / {text}");
        }
        let not_relayed = [
            // AWS opened it: the first line is AWS's.
            (
                "Amazon Web Services: New Support case: 4838201957",
                "Amazon Web Services has opened case 4838201957 on your behalf. The details of the case are as follows:",
            ),
            (
                "[CASE 4838201957] Your AWS account is compromised",
                " AWS has opened a case on your behalf.",
            ),
            // No case form in the subject: AWS's own notice.
            (
                "Your AWS account has been suspended",
                "Case ID: 176655012300941",
            ),
            (
                "Budget alert: Case 176655012300941",
                "Your budget has exceeded its threshold.",
            ),
        ];
        for (subject, text) in not_relayed {
            assert!(!relays_case_words(subject, text), "{subject} / {text}");
        }
    }
}
