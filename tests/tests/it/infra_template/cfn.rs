//! A CloudFormation template as its parsed structure: read with `saphyr`,
//! which keeps the short-form intrinsic functions (`!Ref`, `!GetAtt`, `!Sub`,
//! `!If`, `!Join`...) as tagged nodes, and spans, so a check can still read a
//! statement's comments. The helpers below name what the checks look for:
//! resources, parameters, IAM statements with their actions and resources,
//! and intrinsic functions.

use saphyr::{LoadableYamlNode, MarkedYamlOwned, ScalarOwned, YamlDataOwned};
use std::collections::BTreeSet;

pub type Node = MarkedYamlOwned;

/// A parsed template and the text it came from.
pub struct Template {
    source: String,
    pub root: Node,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut documents = Node::load_from_str(source).map_err(|e| e.to_string())?;
        if documents.len() != 1 {
            return Err(format!("{} YAML documents, not one", documents.len()));
        }
        Ok(Self {
            source: source.to_string(),
            root: documents.remove(0),
        })
    }

    /// Every entry of the `Resources` section: its logical id and body.
    pub fn resources(&self) -> Vec<(&str, &Node)> {
        entries(get(&self.root, "Resources"))
    }

    /// The resource `name`; a test that asks for one that is missing fails.
    pub fn resource(&self, name: &str) -> &Node {
        path(&self.root, &["Resources", name]).unwrap_or_else(|| panic!("no resource {name}"))
    }

    /// The parameter `name`.
    pub fn parameter(&self, name: &str) -> &Node {
        path(&self.root, &["Parameters", name]).unwrap_or_else(|| panic!("no parameter {name}"))
    }

    /// The source lines `node` spans, comments included.
    pub fn text_of(&self, node: &Node) -> String {
        let first = node.span.start.line();
        let last = node.span.end.line().max(first + 1);
        self.source
            .lines()
            .skip(first.saturating_sub(1))
            .take(last - first)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// `node[key]`, when `node` is a mapping that has it.
pub fn get<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    node.data.as_mapping_get(key)
}

/// `node[keys[0]][keys[1]]...`.
pub fn path<'a>(node: &'a Node, keys: &[&str]) -> Option<&'a Node> {
    keys.iter().try_fold(node, |node, key| get(node, key))
}

/// A plain string scalar (not a number, a boolean or an intrinsic function).
pub fn string(node: &Node) -> Option<&str> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::String(text)) => Some(text),
        _ => None,
    }
}

/// An integer scalar.
pub fn integer(node: &Node) -> Option<i64> {
    match &node.data {
        YamlDataOwned::Value(ScalarOwned::Integer(n)) => Some(*n),
        _ => None,
    }
}

/// `!Name argument` as `("Name", argument)`.
pub fn intrinsic(node: &Node) -> Option<(&str, &Node)> {
    match &node.data {
        YamlDataOwned::Tagged(tag, argument) if tag.handle == "!" => {
            Some((tag.suffix.as_str(), argument))
        }
        _ => None,
    }
}

/// `!Ref target`.
pub fn is_ref(node: &Node, target: &str) -> bool {
    matches!(intrinsic(node), Some(("Ref", name)) if string(name) == Some(target))
}

/// `!GetAtt Resource.Attribute`, in either of its forms.
pub fn get_att(node: &Node) -> Option<String> {
    match intrinsic(node)? {
        ("GetAtt", argument) => match string(argument) {
            Some(dotted) => Some(dotted.to_string()),
            None => {
                let parts: Vec<&str> = items(argument).into_iter().filter_map(string).collect();
                (parts.len() == 2).then(|| parts.join("."))
            }
        },
        _ => None,
    }
}

/// The entries of a mapping with string keys, in document order.
pub fn entries(node: Option<&Node>) -> Vec<(&str, &Node)> {
    match node.map(|n| &n.data) {
        Some(YamlDataOwned::Mapping(mapping)) => mapping
            .iter()
            .filter_map(|(key, value)| Some((string(key)?, value)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The keys of a mapping (none for anything else, an empty value included).
pub fn keys(node: Option<&Node>) -> BTreeSet<String> {
    entries(node)
        .into_iter()
        .map(|(key, _)| key.to_string())
        .collect()
}

/// A list's items, or a single value as a list of one: IAM's Action,
/// Resource and Principal take either.
pub fn items(node: &Node) -> Vec<&Node> {
    match &node.data {
        YamlDataOwned::Sequence(list) => list.iter().collect(),
        _ => vec![node],
    }
}

/// The plain strings among `node`'s items.
pub fn strings(node: Option<&Node>) -> Vec<&str> {
    node.map(items)
        .unwrap_or_default()
        .into_iter()
        .filter_map(string)
        .collect()
}

/// Every node of the tree under `node` (itself included), depth first in
/// document order, tagged arguments included.
pub fn walk(node: &Node) -> Vec<&Node> {
    let mut found = Vec::new();
    let mut pending = vec![node];
    while let Some(node) = pending.pop() {
        found.push(node);
        let at = pending.len();
        match &node.data {
            YamlDataOwned::Sequence(list) => pending.extend(list.iter()),
            YamlDataOwned::Mapping(mapping) => pending.extend(mapping.values()),
            YamlDataOwned::Tagged(_, argument) => pending.push(argument),
            _ => {}
        }
        pending[at..].reverse();
    }
    found
}

/// Every IAM policy statement under `node` (a mapping with an `Effect`): in
/// roles, managed and inline policies, bucket, queue and key policies alike.
pub fn statements(node: &Node) -> Vec<&Node> {
    walk(node)
        .into_iter()
        .filter(|n| get(n, "Effect").is_some_and(|e| string(e).is_some()))
        .collect()
}

/// A statement's `Sid`.
pub fn sid(statement: &Node) -> &str {
    get(statement, "Sid").and_then(string).unwrap_or("(no Sid)")
}

/// A statement's actions.
pub fn actions(statement: &Node) -> Vec<&str> {
    strings(get(statement, "Action"))
}

/// Whether `statement` allows or denies `action` (named as written).
pub fn has_action(statement: &Node, action: &str) -> bool {
    actions(statement).contains(&action)
}

/// The value of the condition key `key` under any operator of the
/// statement's `Condition`, with the operator.
pub fn condition<'a>(statement: &'a Node, key: &str) -> Vec<(&'a str, &'a Node)> {
    entries(get(statement, "Condition"))
        .into_iter()
        .filter_map(|(operator, keys)| Some((operator, get(keys, key)?)))
        .collect()
}
