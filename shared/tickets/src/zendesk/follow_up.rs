//! The ticket that continues a full or closed one: a follow-up with the same
//! `external_id` and `via_followup_source_id` = the old ticket, whose first
//! comment is the message; found again, never opened twice.

use super::api::{Posted, ZTicket, comment_json, parse_priority, priority_name};
use super::comments::Full;
use super::{MAX_COMMENTS_PER_TICKET, Zendesk, permanent};
use crate::ticket_text::original_location;
use rootmail_domain::Priority;
use rootmail_pipeline::{NewComment, PortResult, PostedComment, TicketAttachment};
use serde_json::{Value, json};

/// Follow-up tickets opened for one message before giving up (a loop guard).
const MAX_FOLLOWUPS: usize = 3;

impl Zendesk {
    /// Puts the comment on the ticket that continues `old`: the follow-up opened
    /// before (a ticket with the same external id and a higher id), else a new
    /// one whose first comment is this message.
    pub(super) async fn follow_up(
        &self,
        old: u64,
        comment: &NewComment,
        why: Full,
        followups: usize,
    ) -> PortResult<PostedComment> {
        if followups >= MAX_FOLLOWUPS {
            return Err(permanent(format!(
                "ticket {old} takes no more comments ({why:?}) and {MAX_FOLLOWUPS} follow-ups did not either"
            )));
        }
        let previous = self.show(old).await?;
        let external_id = previous
            .external_id
            .clone()
            .unwrap_or_else(|| format!("rootmail-followup-of:{old}"));
        if let Some(next) = self.newest_ticket(&external_id).await?
            && next.id > old
        {
            return self.comment_on(next.id, comment, followups + 1).await;
        }
        let posted = self
            .open_follow_up(old, &previous, &external_id, comment, why)
            .await?;
        tracing::warn!(
            old_ticket = old,
            new_ticket = posted.id,
            reason = ?why,
            "zendesk ticket takes no more comments; the thread continues on a follow-up ticket"
        );
        let present = if posted.fresh { Some(false) } else { None };
        self.note(
            posted.id,
            &comment.message,
            &comment.internal_note,
            present,
            None,
        )
        .await?;
        let id = match posted.comment_id {
            Some(id) => id,
            None => {
                self.public_comment(posted.id, &comment.message, || {
                    format!(
                        "follow-up ticket {} does not carry its first comment",
                        posted.id
                    )
                })
                .await?
            }
        };
        Ok(PostedComment::on(posted.id, id))
    }

    /// Posts the ticket that continues `old` (read as `previous`): its
    /// subject, tags, requester and organization, a priority no lower than
    /// either, and the message as its first comment.
    async fn open_follow_up(
        &self,
        old: u64,
        previous: &ZTicket,
        external_id: &str,
        comment: &NewComment,
        why: Full,
    ) -> PortResult<Posted> {
        let (tokens, listed) = self.upload(&comment.attachments).await?;
        let text = self.follow_up_text(old, comment, why, &listed);
        let priority = previous
            .priority
            .as_deref()
            .and_then(parse_priority)
            .map_or(comment.priority, |p| p.max(comment.priority));
        let first = comment_json(&text, true, &tokens);
        let fields = self.follow_up_fields(old, previous, external_id, priority, first);
        // The message's too, as a thread's create key is: a follow-up an
        // agent deleted within Zendesk's two hours is made again by the next
        // mail, where the same key with another body was refused.
        let key = format!(
            "rootmail-followup-{old}-{}",
            &comment.message.as_str()[..16]
        );
        self.post_ticket(
            &key,
            &json!({"ticket": fields}),
            external_id,
            &comment.message,
        )
        .await
    }

    /// The follow-up's first comment: why it continues `old`, then the message.
    fn follow_up_text(
        &self,
        old: u64,
        comment: &NewComment,
        why: Full,
        listed: &[TicketAttachment],
    ) -> String {
        let reason = match why {
            Full::Comments => {
                format!("which reached Zendesk's limit of {MAX_COMMENTS_PER_TICKET} comments")
            }
            Full::Closed => "which is closed".to_string(),
        };
        let intro = format!(
            "This ticket continues ticket #{old} ({}/agent/tickets/{old}), {reason}.\n\n",
            self.options.base_url
        );
        // A follow-up's first comment is the API user's whoever the requester
        // is (Zendesk's Tickets API, "Creating a follow-up ticket"): an
        // agent's, whose Markdown Zendesk renders, so it is always escaped.
        let original = original_location(&comment.internal_note);
        self.comment_text(
            &intro,
            &comment.body,
            listed,
            &comment.message,
            true,
            original,
        )
    }

    /// The follow-up ticket's fields, `first` its first comment.
    fn follow_up_fields(
        &self,
        old: u64,
        previous: &ZTicket,
        external_id: &str,
        priority: Priority,
        first: Value,
    ) -> Value {
        let mut tags = previous.tags.clone();
        tags.push("rootmail_followup".to_string());
        let mut fields = json!({
            "subject": previous.subject.clone().unwrap_or_default(),
            "external_id": external_id,
            "via_followup_source_id": old,
            "priority": priority_name(priority),
            "tags": tags,
            "comment": first,
        });
        self.add_custom_fields(&mut fields);
        if let Some(organization) = previous.organization_id {
            fields["organization_id"] = json!(organization);
        }
        if let Some(requester) = previous.requester_id {
            fields["requester_id"] = json!(requester);
        }
        fields
    }
}
