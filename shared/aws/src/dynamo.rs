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
}
