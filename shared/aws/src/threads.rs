//! The thread map as one DynamoDB table with a string key `pk`:
//! `thread#<thread key>` rows hold the ticket, `message#<Message-ID>` rows hold
//! the thread a message belongs to (so a reply finds its ticket).

use crate::dynamo::{from_item, s, to_item};
use crate::error::{condition_failed, port_error};
use aws_sdk_dynamodb::Client;
use rootmail_domain::{ContentHash, ThreadKey};
use rootmail_pipeline::{PortResult, ThreadMap, ThreadRecord};

const PORT: &str = "threads";

#[derive(Clone)]
pub struct DynamoThreadMap {
    client: Client,
    table: String,
}

impl DynamoThreadMap {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, pk: String) -> PortResult<Option<crate::dynamo::Item>> {
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        Ok(found.item)
    }
}

/// DynamoDB keys hold at most 2048 bytes; longer ones are stored by their hash.
const MAX_KEY_BYTES: usize = 1024;

fn bounded_pk(prefix: &str, text: &str) -> String {
    if text.len() <= MAX_KEY_BYTES {
        format!("{prefix}#{text}")
    } else {
        format!("{prefix}#sha256:{}", ContentHash::of(text.as_bytes()))
    }
}

fn thread_pk(key: &ThreadKey) -> String {
    bounded_pk("thread", key.as_str())
}

fn message_pk(message_id: &str) -> String {
    bounded_pk("message", message_id)
}

impl ThreadMap for DynamoThreadMap {
    async fn ticket_of(&self, key: &ThreadKey) -> PortResult<Option<ThreadRecord>> {
        self.get(thread_pk(key))
            .await?
            .map(|item| from_item(PORT, item))
            .transpose()
    }

    async fn save(&self, record: &ThreadRecord) -> PortResult<()> {
        let mut item = to_item(PORT, record)?;
        item.insert("pk".to_string(), s(thread_pk(&record.thread_key)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| port_error(PORT, e))?;
        Ok(())
    }

    async fn thread_of_message(&self, message_id: &str) -> PortResult<Option<ThreadKey>> {
        #[derive(serde::Deserialize)]
        struct Row {
            thread_key: ThreadKey,
        }
        let row: Option<Row> = self
            .get(message_pk(message_id))
            .await?
            .map(|item| from_item(PORT, item))
            .transpose()?;
        Ok(row.map(|r| r.thread_key))
    }

    async fn remember_message(&self, message_id: &str, key: &ThreadKey) -> PortResult<()> {
        // The first thread a Message-ID was seen in wins; a resent copy keeps it.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(message_pk(message_id)))
            .item("thread_key", s(key.as_str()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(port_error(PORT, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_are_hashed_to_fit_dynamodb() {
        assert_eq!(message_pk("a@b"), "message#a@b");
        let long = "é".repeat(900);
        let pk = message_pk(&long);
        assert!(pk.len() < 100 && pk.starts_with("message#sha256:"));
        assert_eq!(pk, message_pk(&long));
    }
}
