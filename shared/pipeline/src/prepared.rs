//! What ingest can work out from a message's bytes alone, before it looks at
//! any store: made on every core by a caller with many messages (`rootmail
//! run`), then ingested in order.

use rootmail_domain::directory::{Candidates, candidates};
use rootmail_domain::mail::{ParseError, ParsedMail, parse};
use rootmail_domain::ses::{delivery_key, envelope};
use rootmail_domain::{
    Account, AccountDirectory, ContentHash, Context, InMemoryDirectory, MailInput, Rules, Triage,
    rethread, triage_parsed,
};

/// A message's ledger key ([`delivery_key`]: two deliveries of one message
/// share it) and parse, the accounts it may be about, and
/// perhaps its triage made ahead.
#[derive(Debug)]
pub struct Prepared {
    pub hash: ContentHash,
    pub parsed: Result<ParsedMail, ParseError>,
    /// The addresses and account ids ingest looks up: found once, with a
    /// pass over the whole text, on whichever core prepares the message.
    pub(crate) candidates: Candidates,
    ahead: Option<Ahead>,
}

/// A triage made before ingest, on the guess that the stores add nothing:
/// no thread knows the messages this one refers to and no rotation waits
/// among its accounts. Ingest uses it only when what it gathered from the
/// stores proves the guess; otherwise it triages again, as without it.
#[derive(Debug)]
struct Ahead {
    origin: String,
    accounts: InMemoryDirectory,
    triage: Triage,
}

impl Prepared {
    pub fn of(raw: &[u8]) -> Self {
        let parsed = parse(raw);
        let (hash, candidates) = match &parsed {
            Ok(mail) => {
                let envelope = envelope(mail);
                let hash = delivery_key(raw, mail, envelope);
                (hash, candidates(mail, &envelope.recipients))
            }
            Err(_) => (ContentHash::of(raw), Candidates::default()),
        };
        Self {
            hash,
            parsed,
            candidates,
            ahead: None,
        }
    }

    /// [`Prepared::of`], with its triage made ahead against `directory` (the
    /// whole account directory, as ingest's own lookups see it), for a
    /// message named `source` whose original the archive keeps at
    /// `origin(hash)`. Pure: safe on any core.
    pub fn triaged_ahead(
        raw: &[u8],
        source: &str,
        origin: impl FnOnce(&ContentHash) -> String,
        directory: &impl AccountDirectory,
        rules: &Rules,
    ) -> Self {
        let mut prepared = Self::of(raw);
        let origin = origin(&prepared.hash);
        let accounts = match &prepared.parsed {
            Ok(_) => {
                let found = crate::ingest::candidate_accounts(directory, &prepared.candidates);
                match InMemoryDirectory::new(found) {
                    Ok(accounts) => accounts,
                    // Ingest reports this itself; nothing to guess.
                    Err(_) => return prepared,
                }
            }
            Err(_) => InMemoryDirectory::default(),
        };
        let ctx = Context::without_stores(&accounts, rules);
        let input = MailInput {
            raw,
            origin: &origin,
            object_name: crate::ingest::object_name(source),
        };
        let triage = triage_parsed(&prepared.parsed, &prepared.hash, &input, &ctx);
        prepared.ahead = Some(Ahead {
            origin,
            accounts,
            triage,
        });
        prepared
    }

    /// The triage made ahead, taken (not copied: ingest uses it once), if
    /// ingest found what it guessed: the same original's place, the same
    /// accounts, no rotation. Where the stores know the thread of a message
    /// this one refers to, the thread is named again ([`rethread`]: the
    /// known threads decide nothing else).
    pub(crate) fn triage_ahead(
        &mut self,
        origin: &str,
        gathered: &crate::ingest::Gathered,
    ) -> Option<Triage> {
        let ahead = self.ahead.take()?;
        let holds = ahead.origin == origin
            && gathered.waiting.is_empty()
            && ahead.accounts == gathered.directory;
        if !holds {
            return None;
        }
        let mut triage = ahead.triage;
        if !gathered.known.is_empty() {
            rethread(&mut triage, self.parsed.as_ref().ok()?, &gathered.known);
        }
        Some(triage)
    }

    /// Whether a triage was made ahead (for a run's statistics and tests).
    pub fn has_triage_ahead(&self) -> bool {
        self.ahead.is_some()
    }
}

/// The accounts a mail may be about, as [`InMemoryDirectory::new`] takes
/// them: each root address once, in a stable order.
pub(crate) fn dedup_accounts(mut found: Vec<Account>) -> Vec<Account> {
    found.sort_by(|a, b| a.root_email.cmp(&b.root_email));
    found.dedup_by(|a, b| a.root_email == b.root_email);
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Gathered;
    use rootmail_domain::ThreadKey;

    const REPLY: &[u8] = b"From: AWS Billing <no-reply-aws@amazon.com>\r\n\
        To: root+a1@example-msp.com\r\nSubject: Re: your invoice\r\n\
        Message-ID: <b@amazon.com>\r\nIn-Reply-To: <a@amazon.com>\r\n\r\nSee the invoice.\r\n";

    fn ahead(rules: &Rules) -> Prepared {
        let origin = |hash: &ContentHash| format!("archive/{hash}.eml");
        let directory = InMemoryDirectory::default();
        Prepared::triaged_ahead(REPLY, "in/reply.eml", origin, &directory, rules)
    }

    #[test]
    fn a_guess_the_stores_prove_is_used_and_one_they_disprove_is_not() {
        let rules = Rules::built_in();
        let mut prepared = ahead(&rules);
        let origin = format!("archive/{}.eml", prepared.hash);
        let nothing_known = Gathered::default();
        let used = prepared.triage_ahead(&origin, &nothing_known);
        assert!(used.is_some());
        // Taken, not copied: there is none the second time.
        assert!(prepared.triage_ahead(&origin, &nothing_known).is_none());

        // The same triage ingest would make itself with what it gathered.
        let input = MailInput {
            raw: REPLY,
            origin: &origin,
            object_name: Some("reply.eml"),
        };
        let ctx = Context {
            directory: &nothing_known.directory,
            rules: &rules,
            known_threads: &nothing_known.known,
            rotations: &nothing_known.waiting,
        };
        let own = triage_parsed(&prepared.parsed, &prepared.hash, &input, &ctx);
        let json = |t: &Triage| serde_json::to_string(t).expect("serializes");
        assert_eq!(used.as_ref().map(json), Some(json(&own)));

        // The message it answers has a thread of its own: the guess named the
        // wrong thread, and only the thread is named again. (The reply is
        // not authenticated AWS mail, for no account: it joins such threads.)
        let mut known_thread = Gathered::default();
        let key = ThreadKey::unverified(None, "first@amazon.com");
        known_thread
            .known
            .insert("a@amazon.com".to_string(), key.clone());
        let rethreaded = ahead(&rules).triage_ahead(&origin, &known_thread);
        let ctx = Context {
            known_threads: &known_thread.known,
            ..ctx
        };
        let own = triage_parsed(&prepared.parsed, &prepared.hash, &input, &ctx);
        assert_eq!(own.thread_key, key);
        assert_ne!(used.as_ref().map(|t| &t.thread_key), Some(&key));
        assert_eq!(rethreaded.as_ref().map(json), Some(json(&own)));
        // Kept elsewhere than guessed: the ticket would name the wrong place.
        assert!(
            ahead(&rules)
                .triage_ahead("s3://other", &nothing_known)
                .is_none()
        );
        // Nothing made ahead: nothing to use.
        assert!(
            Prepared::of(REPLY)
                .triage_ahead(&origin, &nothing_known)
                .is_none()
        );
    }
}
