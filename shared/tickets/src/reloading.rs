//! A backend that reads its credentials again when the ticketing system
//! refuses them (HTTP 401 or 403). Functions read their secret at cold start
//! and may stay warm for hours: without this, an operator who rotates the
//! API token (the new one in the secret, the old one revoked) would see
//! every operation in between refused and dead-lettered, until each warm
//! function happened to start again.
//!
//! A refused call is made once more on the backend built from the secret as
//! it is now. The repeat looks before it writes, as a redelivery would: the
//! refusal may have come after part of the call was applied (a comment, then
//! its note). A refusal that survives new credentials (a missing permission,
//! a token revoked and not replaced) is the operation's, as before.

use rootmail_domain::ThreadKey;
use rootmail_pipeline::{
    ErrorKind, FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment, TicketSink,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How the backend is built from its secret, at cold start and again after
/// a refusal.
pub trait Reload: Send + Sync {
    type Backend: TicketSink + Send + Sync;
    fn reload(&self) -> impl Future<Output = PortResult<Self::Backend>> + Send;
}

/// The secret is read again at most this often: a refusal that new
/// credentials do not cure would otherwise read it on every operation.
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// A [`TicketSink`] that rebuilds its backend from [`Reload`] when refused.
pub struct ReloadingSink<R: Reload> {
    current: Mutex<Arc<R::Backend>>,
    reloader: R,
    /// When the secret was last read again; held while it is, so that
    /// threads refused at the same time read it once.
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl<R: Reload> ReloadingSink<R> {
    /// `backend`: the one built at cold start.
    pub fn new(backend: R::Backend, reloader: R) -> Self {
        Self {
            current: Mutex::new(Arc::new(backend)),
            reloader,
            last_reload: tokio::sync::Mutex::new(None),
        }
    }

    /// The backend in use now.
    pub fn backend(&self) -> Arc<R::Backend> {
        Arc::clone(&self.current.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A backend to try again with after `refused` was refused: another
    /// thread's new one, or one built now. `None`: none newer (the secret
    /// was read less than [`MIN_RELOAD_INTERVAL`] ago, or cannot be used).
    /// A transient failure to read it is returned, so the queue retries.
    async fn after_refusal(
        &self,
        refused: &Arc<R::Backend>,
    ) -> PortResult<Option<Arc<R::Backend>>> {
        let mut last = self.last_reload.lock().await;
        let current = self.backend();
        if !Arc::ptr_eq(&current, refused) {
            return Ok(Some(current));
        }
        if last.is_some_and(|at| at.elapsed() < MIN_RELOAD_INTERVAL) {
            return Ok(None);
        }
        *last = Some(Instant::now());
        match self.reloader.reload().await {
            Ok(fresh) => {
                tracing::info!(
                    backend = fresh.name(),
                    "the ticketing system refused the credentials: read them again"
                );
                let fresh = Arc::new(fresh);
                *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
                Ok(Some(fresh))
            }
            Err(e) if e.is_transient() => Err(e),
            Err(e) => {
                tracing::error!(error = %e, "the ticketing system refused the credentials, and reading them again failed");
                Ok(None)
            }
        }
    }

    /// `call` on the current backend, and once more on a newer one if refused.
    async fn refreshed<T, F, Fut>(&self, call: F) -> PortResult<T>
    where
        F: Fn(Arc<R::Backend>, bool) -> Fut,
        Fut: Future<Output = PortResult<T>>,
    {
        let backend = self.backend();
        match call(Arc::clone(&backend), false).await {
            Err(e) if refused(&e) => match self.after_refusal(&backend).await? {
                Some(fresh) => call(fresh, true).await,
                None => Err(e),
            },
            answered => answered,
        }
    }
}

fn refused(e: &PortError) -> bool {
    e.kind == ErrorKind::Refused
}

impl<R: Reload> TicketSink for ReloadingSink<R> {
    fn name(&self) -> &'static str {
        self.backend().name()
    }

    fn instance(&self) -> String {
        self.backend().instance()
    }

    fn max_attachment_bytes(&self) -> usize {
        self.backend().max_attachment_bytes()
    }

    async fn find(&self, key: &ThreadKey) -> PortResult<Option<FoundTicket>> {
        self.refreshed(|backend, _| async move { backend.find(key).await })
            .await
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        self.refreshed(|backend, again| async move {
            match again {
                // Look again before creating: the refused call may have made it.
                true => {
                    let ticket = NewTicket {
                        found_absent: false,
                        ..ticket.clone()
                    };
                    backend.create(&ticket).await
                }
                false => backend.create(ticket).await,
            }
        })
        .await
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        self.refreshed(|backend, again| async move {
            match again {
                // Search for the comment before adding it: the refusal may
                // have come after it was added (its note refused).
                true => {
                    let comment = NewComment {
                        first_send: None,
                        ..comment.clone()
                    };
                    backend.comment(ticket_id, &comment).await
                }
                false => backend.comment(ticket_id, comment).await,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_domain::{ContentHash, Kind, Priority};
    use rootmail_pipeline::FirstSend;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A ticketing system that takes only the token "new".
    struct System {
        token: String,
        /// Each comment call's `first_send`, in order.
        seen: Arc<Mutex<Vec<Option<FirstSend>>>>,
    }

    impl System {
        fn check(&self) -> PortResult<()> {
            match self.token.as_str() {
                "new" => Ok(()),
                _ => Err(PortError::http("fake", 401, "HTTP 401: invalid token")),
            }
        }
    }

    impl TicketSink for System {
        fn name(&self) -> &'static str {
            "fake"
        }
        async fn find(&self, _: &ThreadKey) -> PortResult<Option<FoundTicket>> {
            self.check().map(|()| None)
        }
        async fn create(&self, _: &NewTicket) -> PortResult<String> {
            self.check().map(|()| "1".to_string())
        }
        async fn comment(&self, ticket: &str, comment: &NewComment) -> PortResult<PostedComment> {
            self.seen.lock().unwrap().push(comment.first_send);
            self.check().map(|()| PostedComment::on(ticket, "c"))
        }
    }

    /// The secret: each read gives the next token, the last one for ever
    /// ("throttled": Secrets Manager refuses the read for now).
    struct Secret {
        tokens: Vec<&'static str>,
        reads: AtomicUsize,
        seen: Arc<Mutex<Vec<Option<FirstSend>>>>,
    }

    impl Reload for Secret {
        type Backend = System;
        async fn reload(&self) -> PortResult<System> {
            let read = self.reads.fetch_add(1, Ordering::SeqCst);
            let token = self.tokens[read.min(self.tokens.len() - 1)];
            if token == "throttled" {
                return Err(PortError::http("secrets", 429, "HTTP 429: slow down"));
            }
            Ok(System {
                token: token.into(),
                seen: Arc::clone(&self.seen),
            })
        }
    }

    fn sink(tokens: &[&'static str]) -> ReloadingSink<Secret> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let secret = Secret {
            tokens: tokens.to_vec(),
            reads: AtomicUsize::new(0),
            seen: Arc::clone(&seen),
        };
        let started = System {
            token: "old".into(),
            seen,
        };
        ReloadingSink::new(started, secret)
    }

    fn comment() -> NewComment {
        NewComment {
            message: ContentHash::of(b"m"),
            body: "b".into(),
            priority: Priority::Normal,
            kind: Kind::Unknown,
            internal_note: String::new(),
            attachments: Vec::new(),
            first_send: Some(FirstSend {
                earlier_messages: 1,
            }),
        }
    }

    fn reads(sink: &ReloadingSink<Secret>) -> usize {
        sink.reloader.reads.load(Ordering::SeqCst)
    }

    /// The token was rotated in the secret after the function started: the
    /// refused comment goes through on the new one, which searched first.
    #[tokio::test]
    async fn a_rotated_token_is_read_again_at_the_first_refusal() {
        let sink = sink(&["new"]);
        let posted = sink.comment("7", &comment()).await;
        assert!(posted.is_ok(), "{posted:?}");
        assert_eq!(reads(&sink), 1);
        let seen = sink.reloader.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                Some(FirstSend {
                    earlier_messages: 1
                }),
                None
            ]
        );
        assert!(sink.find(&ThreadKey::message("t")).await.is_ok());
        assert_eq!(reads(&sink), 1, "nothing refused: the secret is not read");
    }

    /// A token revoked and not replaced: the refusal stands, and the
    /// secret is read again at most once a minute, not per operation.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_new_credentials_do_not_cure_stands() {
        let sink = sink(&["old", "old", "new"]);
        let refused = sink.comment("7", &comment()).await.unwrap_err();
        assert_eq!(
            (refused.kind, refused.status),
            (ErrorKind::Refused, Some(401))
        );
        assert_eq!(reads(&sink), 1);
        assert!(sink.find(&ThreadKey::message("t")).await.is_err());
        assert_eq!(reads(&sink), 1, "read again within a minute");
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(sink.find(&ThreadKey::message("t")).await.is_err());
        assert_eq!(reads(&sink), 2);
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(sink.find(&ThreadKey::message("t")).await.is_ok());
        assert_eq!(reads(&sink), 3);
    }

    /// Secrets Manager cannot be read just now: the call fails as
    /// transient (the queue retries it), not with the refusal (which
    /// dead-letters), and the next refusal reads the secret again.
    #[tokio::test(start_paused = true)]
    async fn a_secret_that_cannot_be_read_now_leaves_the_operation_to_the_queue() {
        let sink = sink(&["throttled", "new"]);
        let failed = sink.comment("7", &comment()).await.unwrap_err();
        assert!(failed.is_transient(), "{failed:?}");
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(sink.comment("7", &comment()).await.is_ok());
        assert_eq!(reads(&sink), 2);
    }
}
