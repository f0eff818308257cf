//! Raw bytes through `rootmail_domain::triage`, as `mail-ingest` triages a
//! stored message: with the corpus' account directory, the built-in rules and a
//! rotation waiting for one account (so the handoff path runs too). Whatever the
//! bytes, triage decides, and never panics. Triage quarantines a message
//! whose triage panicked (`catch_unwind`), but libfuzzer-sys's panic hook
//! aborts first, so a panic still counts as a crash here.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rootmail_domain::{
    Account, AccountId, AccountStatus, Context, EmailAddress, InMemoryDirectory, Kind, MailInput,
    NoKnownThreads, Rules, WaitingRotations, triage,
};
use std::sync::LazyLock;

/// The directory the corpus' expectations were computed against.
static DIRECTORY: LazyLock<InMemoryDirectory> = LazyLock::new(|| {
    let csv = include_str!("../../tests/corpus/accounts.csv");
    let accounts = csv.lines().skip(1).filter(|l| !l.is_empty()).map(|line| {
        let fields: Vec<&str> = line.split(',').collect();
        let [email, id, customer, status] = fields[..] else {
            panic!("accounts.csv: four fields per line, not {line:?}");
        };
        Account {
            root_email: EmailAddress::parse(email).expect("accounts.csv email"),
            account_id: AccountId::parse(id).expect("accounts.csv account id"),
            customer: customer.to_string(),
            status: AccountStatus::parse(status).expect("accounts.csv status"),
            payer: None,
        }
    });
    InMemoryDirectory::new(accounts).expect("accounts.csv has each address once")
});

static RULES: LazyLock<Rules> = LazyLock::new(Rules::built_in);

/// Acme Corp (111122223333) waits for a secret of any kind.
struct AcmeWaits;

impl WaitingRotations for AcmeWaits {
    fn waiting_at(&self, account: &AccountId, _: Kind) -> Option<EmailAddress> {
        (account.as_str() == "111122223333")
            .then(|| EmailAddress::parse("root+a7f3k9q2@root.example-msp.com").expect("address"))
    }
}

fuzz_target!(|raw: &[u8]| {
    let ctx = Context {
        directory: &*DIRECTORY,
        rules: &RULES,
        known_threads: &NoKnownThreads,
        rotations: &AcmeWaits,
    };
    let input = MailInput {
        raw,
        origin: "s3://mail/inbound/fuzz",
        object_name: Some("fuzz"),
    };
    let decision = triage(&input, &ctx);
    // What the ledger and the ticket queue are given.
    serde_json::to_string(&decision).expect("a triage decision serializes");
});
