//! The ticket operation of one lifecycle note: one ticket per account (its
//! lifecycle thread), one comment per note. What happened goes in the internal
//! note; the public text says only that something was recorded, so a customer
//! who can read the ticket learns nothing an engineer should read first.

use rootmail_domain::{AccountId, ContentHash, Kind, Priority, ThreadKey};
use rootmail_pipeline::TicketOp;

pub fn lifecycle_note(account: &AccountId, customer: &str, text: &str, now_ms: u64) -> TicketOp {
    let message = ContentHash::of(format!("{account}\n{now_ms}\n{text}").as_bytes());
    TicketOp {
        message,
        thread_key: ThreadKey::lifecycle(account),
        kind: Kind::Unknown,
        priority: Priority::Normal,
        account_id: Some(account.to_string()),
        customer: Some(customer.to_string()),
        subject: format!("[{customer} / {account}] Root credential lifecycle"),
        body: format!(
            "A change to the root user of AWS account {account} was recorded; the details are in the internal note."
        ),
        internal_note: text.to_string(),
        attachments: Vec::new(),
        archive_ref: None,
        quarantined: false,
        received_at_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_a_private_comment_in_the_accounts_lifecycle_thread() {
        let account = AccountId::parse("444455556666").unwrap();
        let a = lifecycle_note(&account, "Initech", "break-glass access by alice", 1_000);
        let b = lifecycle_note(&account, "Initech", "root email changed: ...", 1_000);
        assert_eq!(a.thread_key, ThreadKey::lifecycle(&account));
        assert_eq!(a.thread_key, b.thread_key);
        assert_ne!(a.message, b.message, "each note is its own comment");
        assert_eq!(
            a.subject,
            "[Initech / 444455556666] Root credential lifecycle"
        );
        assert_eq!(a.internal_note, "break-glass access by alice");
        assert!(!a.body.contains("alice"), "the public text holds no detail");
        assert!(!a.quarantined);
    }
}
