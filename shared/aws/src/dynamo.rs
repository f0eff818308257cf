//! Serde values as DynamoDB items, so rows stay plain structs and readable
//! attributes in the console (no opaque JSON blobs).

use aws_sdk_dynamodb::types::AttributeValue;
use rootmail_pipeline::PortError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// A struct as an item. `None` fields are left out rather than stored as NULL.
pub fn to_item<T: Serialize>(port: &'static str, value: &T) -> Result<Item, PortError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, to_attribute(v)))
            .collect()),
        Ok(other) => Err(PortError::permanent(
            port,
            format!("expected a struct to store, got {other}"),
        )),
        Err(e) => Err(PortError::permanent(
            port,
            format!("cannot serialize the row: {e}"),
        )),
    }
}

/// An item as a struct; a row this code cannot read is a permanent error.
pub fn from_item<T: DeserializeOwned>(port: &'static str, item: Item) -> Result<T, PortError> {
    let map: Map<String, Value> = item
        .into_iter()
        .map(|(k, v)| (k, from_attribute(v)))
        .collect();
    serde_json::from_value(Value::Object(map))
        .map_err(|e| PortError::permanent(port, format!("stored row is not readable: {e}")))
}

fn to_attribute(value: Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s),
        Value::Array(items) => AttributeValue::L(items.into_iter().map(to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, to_attribute(v)))
                .collect(),
        ),
    }
}

fn from_attribute(value: AttributeValue) -> Value {
    match value {
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::N(n) => number(&n),
        AttributeValue::S(s) => Value::String(s),
        AttributeValue::L(items) => Value::Array(items.into_iter().map(from_attribute).collect()),
        AttributeValue::M(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, from_attribute(v)))
                .collect(),
        ),
        AttributeValue::Ss(items) => Value::Array(items.into_iter().map(Value::String).collect()),
        _ => Value::Null,
    }
}

fn number(text: &str) -> Value {
    if let Ok(n) = text.parse::<u64>() {
        Value::Number(n.into())
    } else if let Ok(n) = text.parse::<i64>() {
        Value::Number(n.into())
    } else {
        text.parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map_or(Value::Null, Value::Number)
    }
}

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Every item of `table` (a paginated Scan), with only `projection`'s
/// attributes when given and only items where `filter` holds (an expression
/// whose values are `values`). An operator's report, not a request path.
pub async fn scan_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    projection: Option<&str>,
    filter: Option<(&str, Item)>,
) -> Result<Vec<Item>, PortError> {
    let mut scan = client.scan().table_name(table);
    if let Some(projection) = projection {
        scan = scan.projection_expression(projection);
    }
    if let Some((expression, values)) = filter {
        scan = scan
            .filter_expression(expression)
            .set_expression_attribute_values(Some(values));
    }
    let mut pages = scan.into_paginator().send();
    let mut items = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| crate::error::port_error("dynamodb", e))?;
        items.extend(page.items.unwrap_or_default());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Row {
        id: String,
        count: u64,
        when: Option<String>,
        tags: Vec<String>,
        nested: Option<Nested>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Nested {
        ok: bool,
    }

    #[test]
    fn rows_round_trip_and_none_is_not_stored() {
        let row = Row {
            id: "a".into(),
            count: 12_345_678_901,
            when: None,
            tags: vec!["x".into(), String::new()],
            nested: Some(Nested { ok: true }),
        };
        let item = to_item("test", &row).unwrap();
        assert!(!item.contains_key("when"));
        assert_eq!(item["count"], AttributeValue::N("12345678901".into()));
        assert_eq!(from_item::<Row>("test", item).unwrap(), row);
    }

    #[test]
    fn an_unreadable_row_is_a_permanent_error() {
        let item = Item::from([("id".to_string(), AttributeValue::N("1".into()))]);
        assert!(!from_item::<Row>("test", item).unwrap_err().is_transient());
    }

    /// The stored format, attribute by attribute. Tables written since the
    /// first release hold rows in exactly this form, so reading them back
    /// depends on it: a `None` is absent (never NULL: the ledger's
    /// `attribute_not_exists` conditions read absence), numbers are `N`,
    /// enums their serde names, nested structs `M`, lists `L`.
    mod stored_format {
        use super::*;
        use rootmail_domain::{
            AccountId, ContentHash, Disposition, EmailAddress, Kind, Priority, ThreadKey,
        };
        use rootmail_lifecycle::{AuditEntry, Failure, Mode, Phase, Rotation};
        use rootmail_pipeline::{LedgerRow, LedgerStatus, ThreadRecord};

        fn s(text: &str) -> AttributeValue {
            AttributeValue::S(text.to_string())
        }

        fn n(text: &str) -> AttributeValue {
            AttributeValue::N(text.to_string())
        }

        fn item<const N: usize>(pairs: [(&str, AttributeValue); N]) -> Item {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        }

        /// Stores `row`, compares the item with `expected` and reads it back.
        fn round_trip<T>(row: &T, expected: Item)
        where
            T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
        {
            let stored = to_item("test", row).unwrap();
            assert_eq!(stored, expected);
            assert_eq!(&from_item::<T>("test", stored).unwrap(), row);
        }

        fn hash() -> ContentHash {
            ContentHash::of(b"a message")
        }

        #[test]
        fn a_claimed_ledger_row() {
            let row = LedgerRow::claimed(&hash(), "s3://mail/inbound/a", 1_700_000_000);
            round_trip(
                &row,
                item([
                    ("content_hash", s(hash().as_str())),
                    ("source", s("s3://mail/inbound/a")),
                    ("status", s("claimed")),
                    ("claimed_at", n("1700000000")),
                    ("warnings", AttributeValue::L(vec![])),
                    ("from_aws", AttributeValue::Bool(false)),
                ]),
            );
        }

        #[test]
        fn a_finished_ledger_row() {
            let row = LedgerRow {
                status: LedgerStatus::Done,
                archive_ref: Some("s3://mail/inbound/a".into()),
                kind: Some(Kind::RootEmailOtp),
                disposition: Some(Disposition::Handoff),
                priority: Some(Priority::Urgent),
                thread_key: Some(ThreadKey::message("a@example.com")),
                account_id: Some("111122223333".into()),
                message_id: Some("a@example.com".into()),
                ses_message_id: Some(String::new()),
                ticket_id: Some("42".into()),
                comment_id: Some("9007199254740993".into()),
                warnings: vec!["spf: softfail".into(), String::new()],
                failure: None,
                from_aws: true,
                ..LedgerRow::claimed(&hash(), "s3://mail/inbound/a", u64::MAX)
            };
            round_trip(
                &row,
                item([
                    ("content_hash", s(hash().as_str())),
                    ("source", s("s3://mail/inbound/a")),
                    ("status", s("done")),
                    ("claimed_at", n("18446744073709551615")),
                    ("archive_ref", s("s3://mail/inbound/a")),
                    ("kind", s("security.root_email_otp")),
                    ("disposition", s("handoff")),
                    ("priority", s("urgent")),
                    ("thread_key", s("msg:a@example.com")),
                    ("account_id", s("111122223333")),
                    ("message_id", s("a@example.com")),
                    ("ses_message_id", s("")),
                    ("ticket_id", s("42")),
                    ("comment_id", s("9007199254740993")),
                    (
                        "warnings",
                        AttributeValue::L(vec![s("spf: softfail"), s("")]),
                    ),
                    ("from_aws", AttributeValue::Bool(true)),
                ]),
            );
        }

        #[test]
        fn a_thread_record() {
            let record = ThreadRecord {
                thread_key: ThreadKey::message("a@example.com"),
                ticket_id: "42".into(),
                backend: "zendesk".into(),
                created_from: hash(),
                messages: 3,
                last_activity: 1_700_000_123,
            };
            round_trip(
                &record,
                item([
                    ("thread_key", s("msg:a@example.com")),
                    ("ticket_id", s("42")),
                    ("backend", s("zendesk")),
                    ("created_from", s(hash().as_str())),
                    ("messages", n("3")),
                    ("last_activity", n("1700000123")),
                ]),
            );
        }

        #[test]
        fn a_failed_rotation_nests_its_failure() {
            let rotation = Rotation {
                account_id: AccountId::parse("111122223333").unwrap(),
                customer: "Acme".into(),
                mode: Mode::Vaulted,
                phase: Phase::Failed,
                target_email: EmailAddress::parse("root-1@root.example.com").unwrap(),
                previous_email: None,
                waiting_for: Some(Kind::RootEmailOtp),
                task_token: None,
                handed_over: None,
                expires_at: Some(1_700_000_900),
                failure: Some(Failure {
                    phase: Phase::AwaitingOtp,
                    reason: "no code within 15 minutes".into(),
                }),
                engineer_since: None,
                mfa_enrolled_at: None,
                email_evidence: None,
                mfa_confirmed_at: Some(0),
                started_at: 1_700_000_000,
                updated_at: 1_700_000_950,
                version: 7,
            };
            round_trip(
                &rotation,
                item([
                    ("account_id", s("111122223333")),
                    ("customer", s("Acme")),
                    ("mode", s("vaulted")),
                    ("phase", s("failed")),
                    ("target_email", s("root-1@root.example.com")),
                    ("waiting_for", s("security.root_email_otp")),
                    ("expires_at", n("1700000900")),
                    (
                        "failure",
                        AttributeValue::M(item([
                            ("phase", s("awaiting_otp")),
                            ("reason", s("no code within 15 minutes")),
                        ])),
                    ),
                    ("mfa_confirmed_at", n("0")),
                    ("started_at", n("1700000000")),
                    ("updated_at", n("1700000950")),
                    ("version", n("7")),
                ]),
            );
        }

        #[test]
        fn an_audit_entry() {
            let entry = AuditEntry {
                account_id: AccountId::parse("111122223333").unwrap(),
                at: 1_700_000_000_123,
                actor: "rootmail".into(),
                action: "take_over".into(),
                reason: None,
                ticket: Some("42".into()),
                detail: String::new(),
            };
            round_trip(
                &entry,
                item([
                    ("account_id", s("111122223333")),
                    ("at", n("1700000000123")),
                    ("actor", s("rootmail")),
                    ("action", s("take_over")),
                    ("ticket", s("42")),
                    ("detail", s("")),
                ]),
            );
        }

        /// Written by hand or by another tool: NULL for an absent value, a
        /// string set for a list. Both read as the row they mean.
        #[test]
        fn nulls_and_string_sets_read_back() {
            let mut stored = to_item("test", &LedgerRow::claimed(&hash(), "x", 5)).unwrap();
            stored.insert("ticket_id".into(), AttributeValue::Null(true));
            stored.insert(
                "warnings".into(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            );
            let row: LedgerRow = from_item("test", stored).unwrap();
            assert_eq!(row.ticket_id, None);
            assert_eq!(row.warnings, ["a", "b"]);
        }
    }
}
