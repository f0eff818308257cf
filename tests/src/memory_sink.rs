//! The in-memory `TicketSink` test double: creates are idempotent per
//! idempotency key, comments per message, like the real backends promise.

use rootmail_domain::ThreadKey;
use rootmail_pipeline::{FoundTicket, NewComment, NewTicket, PortResult, TicketSink};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryTicket {
    pub id: String,
    pub ticket: NewTicket,
    pub comments: Vec<(String, NewComment)>,
}

#[derive(Default)]
pub struct MemorySink {
    tickets: Mutex<Vec<MemoryTicket>>,
}

impl MemorySink {
    pub fn tickets(&self) -> Vec<MemoryTicket> {
        self.tickets.lock().expect("tickets").clone()
    }
}

impl TicketSink for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        let tickets = self.tickets.lock().expect("tickets");
        Ok(tickets
            .iter()
            .find(|t| t.ticket.thread_key == *key)
            .map(|t| FoundTicket {
                id: t.id.clone(),
                created_from: t.ticket.message.clone(),
            }))
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        let mut tickets = self.tickets.lock().expect("tickets");
        if let Some(existing) = tickets
            .iter()
            .find(|t| t.ticket.idempotency_key == ticket.idempotency_key)
        {
            return Ok(existing.id.clone());
        }
        let id = (tickets.len() + 1).to_string();
        tickets.push(MemoryTicket {
            id: id.clone(),
            ticket: ticket.clone(),
            comments: Vec::new(),
        });
        Ok(id)
    }

    async fn comment(
        &self,
        ticket_id: &str,
        comment: &NewComment,
    ) -> PortResult<rootmail_pipeline::PostedComment> {
        let mut tickets = self.tickets.lock().expect("tickets");
        let Some(ticket) = tickets.iter_mut().find(|t| t.id == ticket_id) else {
            return Err(rootmail_pipeline::PortError::permanent(
                "memory",
                format!("no ticket {ticket_id}"),
            ));
        };
        if let Some((id, _)) = ticket
            .comments
            .iter()
            .find(|(_, c)| c.message == comment.message)
        {
            return Ok(rootmail_pipeline::PostedComment::on(ticket_id, id));
        }
        let id = format!("{ticket_id}-{}", ticket.comments.len() + 1);
        ticket.comments.push((id.clone(), comment.clone()));
        Ok(rootmail_pipeline::PostedComment::on(ticket_id, id))
    }
}
