//! A message as a comment on a Zendesk ticket, at most once: the marker that
//! ends every text rootmail writes, the search for it among a ticket's
//! comments, the comment and its internal note, and what a refusal says about
//! the ticket being full or closed.

use super::api::{
    CommentPage, MAX_PAGES, PAGE_SIZE, ZTicket, id_text, parse_priority, refused_with,
};
use super::{Boxed, MAX_COMMENT_BYTES, Zendesk, permanent};
use crate::ticket_text::{capped, original_location, text_with_listing};
use rootmail_domain::{ContentHash, Priority};
use rootmail_pipeline::{NewComment, PortError, PortResult, PostedComment, TicketAttachment};

/// What a ticket's comments say about one message.
#[derive(Debug, Default)]
struct Marked {
    /// The public comment for the message, if it is there.
    public: Option<String>,
    /// Whether its internal note (a private comment) is there.
    private: bool,
    /// Comments counted; all of them unless the search stopped at a match.
    total: usize,
}

/// Why a ticket takes no more comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Full {
    Comments,
    Closed,
}

/// What putting a public comment on a ticket came to.
enum Put {
    /// The comment is there, with this id; the ticket as the update left it,
    /// when the answer said.
    Added(String, Option<Box<ZTicket>>),
    /// The ticket refused it: it takes no more comments.
    Refused(Full),
}

impl Zendesk {
    /// Searches the ticket's comments for `message`'s marker, newest first where
    /// the server sorts so, all pages until what is wanted is found.
    async fn marked(
        &self,
        ticket: u64,
        message: &ContentHash,
        want_note: bool,
    ) -> PortResult<Marked> {
        let mut url = self.url(&format!("/api/v2/tickets/{ticket}/comments"));
        let mut first = true;
        let mut marked = Marked::default();
        for _ in 0..MAX_PAGES {
            let response = self
                .http
                .send("listing comments", |c| {
                    let request = self.auth(c.get(&url));
                    if first {
                        request.query(&[("page[size]", PAGE_SIZE), ("sort", "-created_at")])
                    } else {
                        request
                    }
                })
                .await?;
            let page: CommentPage = self.json("listing comments", response).await?;
            for comment in &page.comments {
                marked.total += 1;
                if !self.ends_with_marker(&comment.body, message) {
                    continue;
                }
                if comment.public {
                    marked.public.get_or_insert_with(|| id_text(&comment.id));
                } else {
                    marked.private = true;
                }
            }
            // Whatever the order of the pages, stop only when nothing is missing.
            if marked.public.is_some() && (marked.private || !want_note) {
                return Ok(marked);
            }
            match page.next() {
                Some(next) => {
                    url = self.same_site(next)?;
                    first = false;
                }
                None => return Ok(marked),
            }
        }
        Err(permanent(format!(
            "listing comments: ticket {ticket} has more than {MAX_PAGES} pages of comments"
        )))
    }

    /// The id of `message`'s public comment on the ticket, found by its marker
    /// (for an answer that did not carry it); `missing` says why its absence
    /// is an error.
    pub(super) async fn public_comment(
        &self,
        ticket: u64,
        message: &ContentHash,
        missing: impl FnOnce() -> String,
    ) -> PortResult<String> {
        self.marked(ticket, message, false)
            .await?
            .public
            .ok_or_else(|| permanent(missing()))
    }

    /// The internal note as a private comment, unless it is there already.
    /// `present`: known from a search just made; `None`: search first.
    /// `raise_to`: the ticket's priority, set in the same update.
    pub(super) async fn note(
        &self,
        ticket: u64,
        message: &ContentHash,
        note: &str,
        present: Option<bool>,
        raise_to: Option<Priority>,
    ) -> PortResult<()> {
        if note.trim().is_empty() {
            return Ok(());
        }
        let present = match present {
            Some(present) => present,
            None => self.marked(ticket, message, true).await?.private,
        };
        if present {
            return Ok(());
        }
        let text = self.comment_text("", note, &[], message, true, original_location(note));
        match self.put_comment(ticket, &text, false, &[], raise_to).await {
            Ok(_) => Ok(()),
            // The public comment went in as the last one this ticket takes; the
            // note has nowhere to go (it never goes to another ticket alone).
            // A closed ticket is confirmed by reading it, never by the 422's words.
            Err(e) => match self.why_full(ticket, &e).await? {
                Some(_) => {
                    tracing::warn!(ticket, error = %e, "internal note refused: the ticket takes no more comments");
                    Ok(())
                }
                None => Err(e),
            },
        }
    }

    /// [`TicketSink::comment`](rootmail_pipeline::TicketSink::comment) on a
    /// parsed ticket id; `followups` counts the follow-up tickets this message
    /// already went through.
    pub(super) fn comment_on<'a>(
        &'a self,
        ticket: u64,
        comment: &'a NewComment,
        followups: usize,
    ) -> Boxed<'a, PostedComment> {
        Box::pin(async move {
            let want_note = !comment.internal_note.trim().is_empty();
            let marked = self.marked_unless_first(ticket, comment, want_note).await?;
            if let Some(id) = marked.public {
                // Delivered again: the note (and the raise its update
                // carries) may be missing.
                if want_note && !marked.private {
                    let state = self.show(ticket).await?;
                    self.add_note(ticket, comment, &state).await?;
                }
                return Ok(PostedComment::on(ticket, id));
            }
            // The comment and its note stay together: both fit, or both move on.
            let needed = 1 + usize::from(want_note);
            if marked.total + needed > self.options.max_comments {
                return self
                    .follow_up(ticket, comment, Full::Comments, followups)
                    .await;
            }
            // A more urgent mail raises the ticket's priority (never lowers
            // it). With a note to add, the note's update raises it, once the
            // comment's answer has shown the ticket; without one, the comment's
            // own update, the ticket read first (a closed one takes no comment).
            let raise_to = match want_note {
                true => None,
                false => {
                    let state = self.show(ticket).await?;
                    if state.status.as_deref() == Some("closed") {
                        return self
                            .follow_up(ticket, comment, Full::Closed, followups)
                            .await;
                    }
                    raised_priority(&state, comment.priority)
                }
            };
            let (id, after) = match self.put_public(ticket, comment, raise_to).await? {
                Put::Added(id, after) => (id, after),
                // A closed ticket refuses the comment: its note never goes alone.
                Put::Refused(full) => {
                    return self.follow_up(ticket, comment, full, followups).await;
                }
            };
            if want_note && !marked.private {
                let state = match after {
                    Some(state) => *state,
                    None => self.show(ticket).await?,
                };
                self.add_note(ticket, comment, &state).await?;
            }
            Ok(PostedComment::on(ticket, id))
        })
    }

    /// What the ticket's comments say about the message: searched for,
    /// unless [`Self::room_without_counting`] says nothing can be there.
    async fn marked_unless_first(
        &self,
        ticket: u64,
        comment: &NewComment,
        want_note: bool,
    ) -> PortResult<Marked> {
        if self.room_without_counting(comment) {
            return Ok(Marked::default());
        }
        self.marked(ticket, &comment.message, want_note).await
    }

    /// Whether the search of the ticket's comments can be left out: nothing
    /// of this operation was sent before, so the comment is not there, and
    /// the thread's own comments (a comment and a note per message, at most)
    /// fill at most half of the ticket's limit, leaving the other half to
    /// agents. Otherwise the search also counts the comments, so that the
    /// comment and its note stay together on a ticket near its limit.
    fn room_without_counting(&self, comment: &NewComment) -> bool {
        comment.first_send.is_some_and(|first| {
            let ours = first.earlier_messages.saturating_add(1).saturating_mul(2);
            first.earlier_messages > 0 && ours <= (self.options.max_comments / 2) as u64
        })
    }

    /// The comment's internal note, raising the ticket (as `state` shows
    /// it) to the comment's priority in the same update when that is higher.
    async fn add_note(&self, ticket: u64, comment: &NewComment, state: &ZTicket) -> PortResult<()> {
        let raise_to = raised_priority(state, comment.priority);
        let (message, note) = (&comment.message, &comment.internal_note);
        self.note(ticket, message, note, Some(false), raise_to)
            .await
    }

    /// Uploads the comment's attachments and puts the comment on the ticket
    /// (raising its priority to `raise_to` in the same update); a refusal that
    /// says the ticket is full or closed is [`Put::Refused`].
    async fn put_public(
        &self,
        ticket: u64,
        comment: &NewComment,
        raise_to: Option<Priority>,
    ) -> PortResult<Put> {
        let (tokens, listed) = self.upload(&comment.attachments).await?;
        let original = original_location(&comment.internal_note);
        let text = self.comment_text("", &comment.body, &listed, &comment.message, true, original);
        let answered = match self
            .put_comment(ticket, &text, true, &tokens, raise_to)
            .await
        {
            Ok(answered) => answered,
            Err(e) => {
                return match self.why_full(ticket, &e).await? {
                    Some(full) => Ok(Put::Refused(full)),
                    None => Err(e),
                };
            }
        };
        let id = match answered.comment_id {
            Some(id) => id,
            // No readable audit in the answer: the comment is found by its marker.
            None => {
                self.public_comment(ticket, &comment.message, || {
                    format!(
                        "commenting on a ticket: Zendesk answered, but the comment is not on ticket {ticket}"
                    )
                })
                .await?
            }
        };
        Ok(Put::Added(id, answered.ticket.map(Box::new)))
    }

    /// Whether a refused comment was refused because the ticket takes no more.
    /// Zendesk documents the 422 but not its wording: a closed ticket is
    /// confirmed by reading it, the comment limit by the wording.
    async fn why_full(&self, ticket: u64, error: &PortError) -> PortResult<Option<Full>> {
        if !refused_with(error, 422) {
            return Ok(None);
        }
        if full_from_error(error) == Some(Full::Comments) {
            return Ok(Some(Full::Comments));
        }
        let state = self.show(ticket).await?;
        Ok((state.status.as_deref() == Some("closed")).then_some(Full::Closed))
    }

    /// The text of a comment: `intro` (rootmail's own words), the body and
    /// the list of attachments not uploaded (escaped for Markdown when its
    /// author is an agent, since Zendesk renders Markdown only for agents),
    /// capped at [`MAX_COMMENT_BYTES`], then the marker line, never escaped
    /// nor cut, so it reads back exactly.
    pub(super) fn comment_text(
        &self,
        intro: &str,
        body: &str,
        attachments: &[TicketAttachment],
        message: &ContentHash,
        markdown: bool,
        original: Option<&str>,
    ) -> String {
        let text = text_with_listing(body, attachments);
        let text = if markdown {
            super::literal(&text)
        } else {
            text
        };
        let tail = format!("\n\n{}", self.key.marker(message));
        capped(
            &format!("{intro}{text}{tail}"),
            &tail,
            MAX_COMMENT_BYTES,
            original,
        )
    }

    /// Whether `text`'s last line is `message`'s marker (rootmail always
    /// writes it last, and only rootmail can make one that verifies).
    fn ends_with_marker(&self, text: &str, message: &ContentHash) -> bool {
        last_line(text).is_some_and(|line| self.key.has_marker(line, message))
    }

    /// The message that created a ticket: the verified marker that ends its
    /// description. A ticket of the thread without one (its description edited
    /// or redacted by hand, or forged) counts as created by an unknown
    /// message, so every mail becomes a comment on it rather than a twin.
    pub(super) fn created_from(&self, ticket: &ZTicket) -> ContentHash {
        ticket
            .description
            .as_deref()
            .and_then(last_line)
            .and_then(|line| self.key.last_marked(line))
            .unwrap_or_else(|| ContentHash::of(format!("zendesk-ticket-{}", ticket.id).as_bytes()))
    }
}

/// The priority a comment of `wanted` priority sets on the ticket: its own
/// when the ticket's is lower or unknown, else none (never lowered).
fn raised_priority(ticket: &ZTicket, wanted: Priority) -> Option<Priority> {
    let current = ticket.priority.as_deref().and_then(parse_priority);
    current.is_none_or(|p| p < wanted).then_some(wanted)
}

/// What a 422 says about the ticket being full or closed. Zendesk documents the
/// status but not the wording, so this only reads it as a hint.
fn full_from_error(error: &PortError) -> Option<Full> {
    if !refused_with(error, 422) {
        return None;
    }
    let text = error.answer.as_deref()?.to_ascii_lowercase();
    if text.contains("closed") {
        Some(Full::Closed)
    } else if text.contains("comment")
        && ["limit", "maximum", "5000", "5,000", "too many"]
            .iter()
            .any(|w| text.contains(w))
    {
        Some(Full::Comments)
    } else {
        None
    }
}

fn last_line(text: &str) -> Option<&str> {
    text.trim_end().rsplit('\n').next()
}

#[cfg(test)]
mod tests {
    use super::super::{PORT, ZendeskOptions};
    use super::*;
    use crate::http::HttpClient;
    use crate::marker::MarkerKey;
    use serde_json::json;

    fn backend() -> Zendesk {
        let http = HttpClient::new(PORT, std::time::Duration::from_secs(1), Default::default())
            .expect("client");
        let credentials =
            serde_json::from_value(json!({"email": "a@b.example", "token": "t"})).expect("json");
        let key = MarkerKey::new(&[7u8; 32]).expect("key");
        Zendesk::new(
            http,
            ZendeskOptions::new("https://z.example"),
            credentials,
            key,
        )
    }

    #[test]
    fn the_marker_line_is_never_escaped_and_reads_back() {
        let zendesk = backend();
        let message = ContentHash::of(b"mail");
        let text = zendesk.comment_text("", "# *Hi*", &[], &message, true, None);
        assert!(text.starts_with("\\# \\*Hi\\*"), "{text}");
        assert!(zendesk.ends_with_marker(&text, &message));
        // Quoting a marker inside the text does not pass for the message.
        let quoted = format!("{}\nmore text", zendesk.key.marker(&message));
        assert!(!zendesk.ends_with_marker(&quoted, &message));
        // Plain text for an end user's comment: as written.
        let plain = zendesk.comment_text("", "# *Hi*", &[], &message, false, None);
        assert!(plain.starts_with("# *Hi*\n\nrootmail-message: "), "{plain}");
    }

    /// Issue 11: the body is cut to fit, in bytes, and the marker survives.
    #[test]
    fn a_long_comment_is_cut_before_its_marker() {
        let zendesk = backend();
        let message = ContentHash::of(b"long");
        let body = "*ü*".repeat(30_000);
        let text = zendesk.comment_text("", &body, &[], &message, true, Some("s3://m/1"));
        assert!(text.len() <= MAX_COMMENT_BYTES, "{}", text.len());
        assert!(zendesk.ends_with_marker(&text, &message));
        assert!(
            text.contains(" bytes cut; the original is at s3://m/1]"),
            "cut is said"
        );
    }

    #[test]
    fn the_creating_message_is_the_last_marker_of_the_description() {
        let zendesk = backend();
        let first = ContentHash::of(b"first");
        let quoted = ContentHash::of(b"quoted");
        let description = format!(
            "mail quoting {}\n\n{}",
            zendesk.key.marker(&quoted),
            zendesk.key.marker(&first)
        );
        let ticket = |description: Option<String>| ZTicket {
            id: 7,
            external_id: None,
            subject: None,
            description,
            status: None,
            priority: None,
            tags: Vec::new(),
            organization_id: None,
            requester_id: None,
        };
        assert_eq!(zendesk.created_from(&ticket(Some(description))), first);
        // Unmarked (edited by hand): an unknown message, never a real one.
        let unknown = zendesk.created_from(&ticket(Some("edited".into())));
        assert_ne!(unknown, first);
        assert_eq!(unknown, zendesk.created_from(&ticket(None)));
        // Forged (no MAC that verifies): the same unknown message.
        let forged = format!("text\nrootmail-message: {first} {}", "0".repeat(32));
        assert_eq!(zendesk.created_from(&ticket(Some(forged))), unknown);
    }

    #[test]
    fn refusals_are_read_from_the_status_and_zendesk_s_answer() {
        let refusal = |status: u16, answer: &str| {
            PortError::http(PORT, status, "commenting: HTTP 422 after 1 attempt(s)")
                .with_answer(answer)
        };
        let closed = refusal(
            422,
            r#"{"error":"RecordInvalid","details":{"status":[{"description":"Status: closed prevents ticket update"}]}}"#,
        );
        assert!(refused_with(&closed, 422));
        assert_eq!(full_from_error(&closed), Some(Full::Closed));
        let limit = refusal(422, "comment limit of 5000 reached");
        assert_eq!(full_from_error(&limit), Some(Full::Comments));
        let other = refusal(422, "subject too long");
        assert_eq!(full_from_error(&other), None);
        assert!(!refused_with(&other, 400));
        // The words count only in Zendesk's answer with that status, never in
        // rootmail's own description of the failure.
        let ours = PortError::http(PORT, 422, "the ticket is closed; comment limit reached");
        assert_eq!(full_from_error(&ours), None);
        let not_422 = refusal(400, "Status: closed prevents ticket update");
        assert_eq!(full_from_error(&not_422), None);
    }
}
