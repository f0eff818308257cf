//! State directories written before the SQLite store kept the pipeline's
//! records as one JSON file each (`ledger/`, `threads/`, `messages/`,
//! `tickets/`). A new database imports them once, in one transaction that
//! also marks the import done, so an upgraded run neither forgets what it did
//! nor tickets the same mail again, and an import that failed (a corrupt
//! file) is tried again by the next run; the old folders are left as they were.

use crate::store::{LocalStore, LocalTicket, StoreError};
use rootmail_domain::ThreadKey;
use rootmail_pipeline::{LedgerRow, ThreadRecord};
use serde::Deserialize;

#[derive(Deserialize)]
struct MessageThread {
    message_id: String,
    thread_key: ThreadKey,
}

/// Imports the old record files under `store`'s directory, if there are any.
pub(crate) fn import(store: &LocalStore) -> Result<(), StoreError> {
    let old = |dir: &str| store.root().join(dir).is_dir();
    if !["ledger", "threads", "messages", "tickets"]
        .iter()
        .any(|dir| old(dir))
    {
        return store.mark_legacy_imported();
    }
    let read = |dir: &str| -> Result<Vec<serde_json::Value>, StoreError> {
        if old(dir) {
            store.read_all(dir)
        } else {
            Ok(Vec::new())
        }
    };
    let (ledger, threads) = (read("ledger")?, read("threads")?);
    let (messages, tickets) = (read("messages")?, read("tickets")?);
    store.begin_batch()?;
    for row in ledger {
        store.put_ledger_row(&parse::<LedgerRow>(row)?)?;
    }
    for record in threads {
        store.put_thread(&parse::<ThreadRecord>(record)?)?;
    }
    for message in messages {
        let message = parse::<MessageThread>(message)?;
        store.put_message_thread(&message.message_id, &message.thread_key)?;
    }
    for ticket in tickets {
        let ticket = parse::<LocalTicket>(ticket)?;
        store.put_ticket(&ticket)?;
        for (n, comment) in ticket.comments.iter().enumerate() {
            store.put_comment(&ticket.id, n + 1, comment)?;
        }
    }
    store.mark_legacy_imported()?;
    store.commit_batch()?;
    tracing::info!(state = %store.root().display(), "imported the record files of an older state directory");
    Ok(())
}

fn parse<T: for<'de> Deserialize<'de>>(value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|source| StoreError::Corrupt {
        path: "a record file of the older layout".into(),
        source,
    })
}
