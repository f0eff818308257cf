//! What a new ticket carries besides its first comment: tags, the configured
//! custom fields, and its requester and organization.

use super::Zendesk;
use crate::ticket_text::thread_token;
use rootmail_pipeline::{NewTicket, PortResult};
use serde_json::{Value, json};

impl Zendesk {
    pub(super) fn add_custom_fields(&self, fields: &mut Value) {
        if !self.options.custom_fields.is_empty() {
            fields["custom_fields"] = self
                .options
                .custom_fields
                .iter()
                .map(|(id, value)| json!({"id": id, "value": value}))
                .collect();
        }
    }

    pub(super) fn tags(ticket: &NewTicket) -> Vec<String> {
        let mut tags = vec![
            "rootmail".to_string(),
            ticket.kind.as_str().replace('.', "_"),
        ];
        if let Some(account) = &ticket.account_id {
            tags.push(format!("account_{account}"));
        }
        tags.push(thread_token(&ticket.thread_key));
        tags
    }

    fn organization(&self, ticket: &NewTicket) -> Option<u64> {
        let customer = ticket.customer.as_ref()?;
        self.options
            .organizations
            .iter()
            .find(|(name, _)| name == customer)
            .map(|(_, id)| *id)
    }

    /// Sets the ticket's requester (and organization) in `fields`; whether
    /// the requester is an end user (`aws-<account>@<domain>`) rather than
    /// the API user. Zendesk files a ticket under an organization only when
    /// its requester belongs to it, and a requester made on the fly belongs
    /// to none: with an organization, the user is created or updated in it
    /// first and the ticket names it by id.
    pub(super) async fn set_requester(
        &self,
        ticket: &NewTicket,
        fields: &mut Value,
    ) -> PortResult<bool> {
        let organization = self.organization(ticket);
        let (Some(domain), Some(account)) = (&self.options.requester_domain, &ticket.account_id)
        else {
            if organization.is_some() {
                tracing::warn!(
                    "zendesk organization left out: the API user is the requester (set a requester domain)"
                );
            }
            return Ok(false);
        };
        let name = format!("AWS account {account}");
        let email = format!("aws-{account}@{domain}");
        match organization {
            None => fields["requester"] = json!({"name": name, "email": email}),
            Some(organization) => {
                let user = self.user_in(&name, &email, organization).await?;
                fields["requester_id"] = json!(user);
                fields["organization_id"] = json!(organization);
            }
        }
        Ok(true)
    }
}
