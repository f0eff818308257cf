//! Serde values as DynamoDB items through `serde_dynamo`, so rows stay plain
//! structs and readable attributes in the console (no opaque JSON blobs).

use aws_sdk_dynamodb::types::AttributeValue;
use rootmail_pipeline::PortError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// A struct as an item. `None` fields are left out rather than stored as
/// NULL (serde_dynamo writes NULL), at every depth, as rows have always been
/// stored: the ledger's conditions ask `attribute_not_exists`, which a NULL
/// attribute does not satisfy.
pub fn to_item<T: Serialize>(port: &'static str, value: &T) -> Result<Item, PortError> {
    match serde_dynamo::to_item::<_, Item>(value) {
        Ok(item) => Ok(without_nulls(item)),
        Err(e) => {
            Err(PortError::permanent(port, format!("cannot serialize the row: {e}")).with_source(e))
        }
    }
}

/// An item as a struct; a row this code cannot read is a permanent error.
/// NULL reads as `None`, like an absent attribute.
pub fn from_item<T: DeserializeOwned>(port: &'static str, item: Item) -> Result<T, PortError> {
    // serde_dynamo 4.3 meets an attribute type newer than this SDK
    // (`AttributeValue::Unknown`) with `unreachable!` when it skips an
    // attribute the row does not name: refuse such a row instead.
    if let Some(name) = item.iter().find(|(_, v)| has_unknown(v)).map(|(k, _)| k) {
        return Err(PortError::permanent(
            port,
            format!(
                "stored row is not readable: attribute {name:?} has a type this SDK does not know"
            ),
        ));
    }
    serde_dynamo::from_item(item).map_err(|e| {
        PortError::permanent(port, format!("stored row is not readable: {e}")).with_source(e)
    })
}

fn without_nulls(item: Item) -> Item {
    item.into_iter()
        .filter(|(_, value)| !value.is_null())
        .map(|(key, value)| (key, nulls_left_out(value)))
        .collect()
}

/// A map's NULL attributes left out, at any depth (a list keeps its items).
fn nulls_left_out(value: AttributeValue) -> AttributeValue {
    match value {
        AttributeValue::M(map) => AttributeValue::M(without_nulls(map)),
        AttributeValue::L(items) => {
            AttributeValue::L(items.into_iter().map(nulls_left_out).collect())
        }
        other => other,
    }
}

fn has_unknown(value: &AttributeValue) -> bool {
    match value {
        AttributeValue::M(map) => map.values().any(has_unknown),
        AttributeValue::L(items) => items.iter().any(has_unknown),
        other => other.is_unknown(),
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

    /// Where serde_dynamo and the stored format differ: on its own it stores
    /// `None` as NULL, at any depth; `to_item` leaves it out.
    #[test]
    fn none_is_left_out_where_serde_dynamo_writes_null() {
        let row = Row {
            id: "a".into(),
            count: 1,
            when: None,
            tags: vec![],
            nested: Some(Nested { ok: true }),
        };
        let raw: Item = serde_dynamo::to_item(&row).unwrap();
        assert_eq!(raw["when"], AttributeValue::Null(true));
        assert!(!to_item("test", &row).unwrap().contains_key("when"));
        let deep = HashMap::from([("row", HashMap::from([("when", None::<u64>)]))]);
        let raw: Item = serde_dynamo::to_item(&deep).unwrap();
        assert_eq!(
            raw["row"],
            AttributeValue::M(Item::from([("when".into(), AttributeValue::Null(true))]))
        );
        assert_eq!(
            to_item("test", &deep).unwrap()["row"],
            AttributeValue::M(Item::new())
        );
    }

    /// DynamoDB answering with an attribute type newer than this SDK: the
    /// SDK reads it as `AttributeValue::Unknown` (which only the SDK can
    /// make), and reading the row is a permanent error, not a panic.
    #[tokio::test]
    async fn an_attribute_type_the_sdk_does_not_know_is_refused() {
        use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
        use aws_smithy_runtime_api::client::http::{
            HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
        };
        use aws_smithy_runtime_api::client::orchestrator::HttpRequest;

        /// Answers every request with one GetItem response.
        #[derive(Debug)]
        struct Answer;
        impl HttpConnector for Answer {
            fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
                let body = r#"{"Item": {"id": {"S": "a"}, "count": {"N": "1"},
                    "tags": {"L": []}, "added_later": {"VECTOR": [1, 2]}}}"#;
                let response = aws_smithy_runtime_api::http::Response::new(
                    200.try_into().unwrap(),
                    aws_smithy_types::body::SdkBody::from(body),
                );
                HttpConnectorFuture::ready(Ok(response))
            }
        }
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("AKID", "secret", None, None, "test"))
            .http_client(http_client_fn(|_, _| SharedHttpConnector::new(Answer)))
            .build();
        let item = aws_sdk_dynamodb::Client::from_conf(config)
            .get_item()
            .table_name("rows")
            .key("id", s("a"))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        assert!(item["added_later"].is_unknown());
        let error = from_item::<Row>("test", item).unwrap_err();
        assert!(!error.is_transient());
        assert!(error.to_string().contains("added_later"), "{error}");
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
                    ("sending", s("unknown")),
                    ("sealed", AttributeValue::Bool(false)),
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
                sealed: true,
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
                    ("sending", s("unknown")),
                    ("sealed", AttributeValue::Bool(true)),
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
                reset_link_delivered_at: None,
                code_delivered_at: None,
                code_message_id: None,
                expires_at: Some(1_700_000_900),
                failure: Some(Failure {
                    phase: Phase::AwaitingOtp,
                    reason: "no code within 15 minutes".into(),
                }),
                engineer_since: None,
                mfa_enrolled_at: None,
                email_evidence: None,
                mfa_confirmed_at: Some(0),
                email_change_requested_at: None,
                credentials_deleted_at: None,
                closed_from: None,
                earlier_credentials: None,
                earlier_seed_gone: false,
                closure_requested_at: None,
                reopened_at: None,
                closure_claimed_at: None,
                execution: None,
                asked_by: None,
                release_starting_since: None,
                release_starting_for: None,
                before_release: None,
                release_completing_since: None,
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
