//! Why triage decided what it did, for `rootmail triage --explain`: the
//! signals that fired with their weights (and the runner-up), how the account
//! and the thread were chosen. So an engineer can fix a rule in minutes.

use crate::directory::{MatchedBy, Resolution};
use crate::evidence::{Classification, KindScore};
use crate::triage::Triage;
use crate::types::ThreadKey;
use serde::Serialize;

/// Scores shown beside the winner.
const SHOWN_SCORES: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// How the kind was reached, in a sentence.
    pub kind: String,
    /// The best-scoring kinds (winner first), with the rules that fired.
    pub scores: Vec<KindScore>,
    /// The score a kind needs.
    pub threshold: i32,
    pub account: String,
    pub thread: String,
}

impl Explanation {
    pub fn new(kind_reason: String, classification: &Classification) -> Self {
        Self {
            kind: kind_reason,
            scores: classification
                .scores
                .iter()
                .take(SHOWN_SCORES)
                .cloned()
                .collect(),
            threshold: classification.threshold,
            account: String::new(),
            thread: String::new(),
        }
    }
}

/// How the kind was reached.
pub fn kind_reason(classification: &Classification, fixed: Option<&str>) -> String {
    if let Some(fixed) = fixed {
        return fixed.to_string();
    }
    match (classification.winner(), classification.runner_up()) {
        (Some(w), Some(r)) => format!(
            "{} scored {} (needs {}); the runner-up {} scored {}",
            w.kind, w.score, classification.threshold, r.kind, r.score
        ),
        (Some(w), None) => format!(
            "{} scored {} (needs {}); no other kind scored",
            w.kind, w.score, classification.threshold
        ),
        (None, Some(best)) => format!(
            "no kind reached {}: the closest, {}, scored {}",
            classification.threshold, best.kind, best.score
        ),
        (None, None) => "no rule matched".to_string(),
    }
}

/// How the account was chosen.
pub fn account_reason(resolution: &Resolution) -> String {
    match (&resolution.account, resolution.matched_by) {
        (Some(a), Some(MatchedBy::EnvelopeRecipient)) => format!(
            "SES's envelope recipient {} is the root address of account {}",
            a.root_email, a.account_id
        ),
        (Some(a), Some(MatchedBy::HeaderRecipient)) => format!(
            "the To/Cc address {} is the root address of account {} (SES named no known recipient)",
            a.root_email, a.account_id
        ),
        (Some(a), Some(MatchedBy::AccountIdInMail)) => format!(
            "the authenticated AWS mail names account {} in its text (no recipient is known)",
            a.account_id
        ),
        _ => "no recipient is in the account directory, and no id in the text may decide".into(),
    }
}

/// How the thread was chosen, read from the key and the decision.
pub fn thread_reason(triage: &Triage) -> String {
    let key: &ThreadKey = &triage.thread_key;
    let text = key.as_str();
    if key.is_case() {
        return format!(
            "support case {}: one thread per case and account",
            text.rsplit(':').next().unwrap_or(text)
        );
    }
    if let Some(rest) = text.strip_prefix("alert:") {
        return format!(
            "a repeating {} alert: the same account and normalized subject ({rest})",
            triage.kind
        );
    }
    if text.starts_with("lifecycle:") {
        return "the account's lifecycle ticket".into();
    }
    if text.starts_with("msg:sha256:") {
        return "no usable Message-ID: its own thread, named by its content".into();
    }
    let (apart, named) = match text.strip_prefix("msg:unverified:") {
        Some(rest) => (
            " (not authenticated AWS mail: apart from AWS's own and other accounts')",
            rest.split_once(':').map(|(_, id)| id),
        ),
        None => ("", text.strip_prefix("msg:")),
    };
    match (&triage.message_id, named) {
        (Some(own), Some(id)) if own == id => {
            format!("its own Message-ID: a new conversation{apart}")
        }
        (_, Some(id)) => format!("it replies to <{id}>, so it joins that conversation{apart}"),
        _ => format!("the thread of a message it replies to ({text})"),
    }
}
