//! A backend that reads its credentials again when the ticketing system
//! refuses them (HTTP 401 or 403). Functions read their secret at cold start
//! and may stay warm for hours: without this, an operator who rotates the
//! API token (the new one in the secret, the old one revoked) would see
//! every operation in between refused and dead-lettered, until each warm
//! function happened to start again.
//!
//! A refused operation whose credentials have changed in the secret since
//! is failed as transient, so the queue delivers it again to the backend
//! built from them. It is not repeated at once: a refusal may come after
//! part of it was applied (a Jira request, then its attachment refused),
//! and only a later delivery finds that part (Jira's search lags behind
//! its writes, and a new backend starts without the old one's memory of
//! what it sent). A refusal with credentials the secret still holds (a
//! wrong token, a missing permission) is the operation's, as before.

use rootmail_domain::ThreadKey;
use rootmail_pipeline::{
    ErrorKind, FoundTicket, NewComment, NewTicket, PortError, PortResult, PostedComment, TicketSink,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A backend and what it was built from (a digest of the secrets read), to
/// tell new credentials from the same ones read again.
pub struct Built<B> {
    pub backend: B,
    pub from: [u8; 32],
}

impl<B> Built<B> {
    /// `backend`, built from the credentials `secret` (none: a backend
    /// that needs none).
    pub fn from_secret(backend: B, secret: Option<&str>) -> Self {
        use sha2::Digest;
        let from = sha2::Sha256::digest(secret.unwrap_or_default().as_bytes()).into();
        Self { backend, from }
    }
}

/// How the backend is built from its secret, at cold start and again after
/// a refusal.
pub trait Reload: Send + Sync {
    type Backend: TicketSink + Send + Sync;
    fn reload(&self) -> impl Future<Output = PortResult<Built<Self::Backend>>> + Send;
}

/// The secret is read again at most this often: a refusal that new
/// credentials do not cure would otherwise read it on every operation.
/// Short, since Secrets Manager may still answer with the old value just
/// after it was changed, and refusals until the next read dead-letter.
pub const MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(10);

/// A [`TicketSink`] that rebuilds its backend from [`Reload`] when refused.
pub struct ReloadingSink<R: Reload> {
    current: Mutex<(Arc<R::Backend>, [u8; 32])>,
    reloader: R,
    /// When the secret was last read again; held while it is, so that
    /// threads refused at the same time read it once.
    last_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl<R: Reload> ReloadingSink<R> {
    /// `built`: the backend built at cold start.
    pub fn new(built: Built<R::Backend>, reloader: R) -> Self {
        Self {
            current: Mutex::new((Arc::new(built.backend), built.from)),
            reloader,
            last_reload: tokio::sync::Mutex::new(None),
        }
    }

    /// The backend in use now.
    pub fn backend(&self) -> Arc<R::Backend> {
        Arc::clone(&self.current().0)
    }

    fn current(&self) -> std::sync::MutexGuard<'_, (Arc<R::Backend>, [u8; 32])> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether credentials other than those `refused` was built from are
    /// in use now: another thread's new backend, or one built from the
    /// secret read now. Not read again within [`MIN_RELOAD_INTERVAL`] of
    /// the last read that answered; a transient failure to read it is
    /// returned, so the queue retries (and the next refusal reads again).
    async fn changed_since(&self, refused: &Arc<R::Backend>) -> PortResult<Reread> {
        let mut last = self.last_reload.lock().await;
        let (current, from) = {
            let current = self.current();
            (Arc::clone(&current.0), current.1)
        };
        if !Arc::ptr_eq(&current, refused) {
            return Ok(Reread::Changed);
        }
        if last.is_some_and(|at| at.elapsed() < MIN_RELOAD_INTERVAL) {
            return Ok(Reread::Same);
        }
        let reread = self.reloader.reload().await;
        if reread.as_ref().is_err_and(PortError::is_transient) {
            return reread.map(|_| Reread::Same);
        }
        *last = Some(Instant::now());
        match reread {
            Ok(built) if built.from == from => Ok(Reread::Same),
            Ok(built) => {
                tracing::info!(
                    backend = built.backend.name(),
                    "the ticketing system refused the credentials, and the secret holds new ones: using them"
                );
                *self.current() = (Arc::new(built.backend), built.from);
                Ok(Reread::Changed)
            }
            Err(e) => Ok(Reread::Failed(e)),
        }
    }

    /// `call` on the current backend; a refusal with credentials that have
    /// changed since is left to the queue (see the module's doc).
    async fn refreshed<T, Fut>(&self, call: impl FnOnce(Arc<R::Backend>) -> Fut) -> PortResult<T>
    where
        Fut: Future<Output = PortResult<T>>,
    {
        let backend = self.backend();
        let refused = match call(Arc::clone(&backend)).await {
            Err(e) if e.kind == ErrorKind::Refused => e,
            answered => return answered,
        };
        match self.changed_since(&backend).await? {
            Reread::Changed => Err(PortError::transient(
                backend.name(),
                format!(
                    "{refused}; the credentials have changed in the secret since, and the operation is delivered again to use them"
                ),
            )
            .with_retry_after(REDELIVER_AFTER)),
            Reread::Same => Err(refused),
            Reread::Failed(why) => {
                let message = format!("{}; reading the credentials again failed: {why}", refused.message);
                Err(refused.reworded(message))
            }
        }
    }
}

/// What reading the credentials again after a refusal came to.
enum Reread {
    /// Others than those refused are in use now.
    Changed,
    /// The same (or not read again so soon).
    Same,
    /// The secret could not be used (not there, not JSON): the refusal stands.
    Failed(PortError),
}

/// How long an operation refused with credentials since replaced waits
/// for its next delivery: long enough for a search that lags behind a
/// write (Jira's) to show what the refused attempt may have made.
pub const REDELIVER_AFTER: Duration = Duration::from_secs(60);

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
        self.refreshed(|backend| async move { backend.find(key).await })
            .await
    }

    async fn create(&self, ticket: &NewTicket) -> PortResult<String> {
        self.refreshed(|backend| async move { backend.create(ticket).await })
            .await
    }

    async fn comment(&self, ticket_id: &str, comment: &NewComment) -> PortResult<PostedComment> {
        self.refreshed(|backend| async move { backend.comment(ticket_id, comment).await })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rootmail_domain::{ContentHash, Kind, Priority};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A ticketing system that takes only the token "new".
    struct System {
        token: &'static str,
        calls: Arc<AtomicUsize>,
    }

    impl System {
        /// Answers after a yield, so that calls made together overlap.
        async fn check(&self) -> PortResult<()> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::task::yield_now().await;
            match self.token {
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
            self.check().await.map(|()| None)
        }
        async fn create(&self, _: &NewTicket) -> PortResult<String> {
            self.check().await.map(|()| "1".to_string())
        }
        async fn comment(&self, ticket: &str, _: &NewComment) -> PortResult<PostedComment> {
            self.check().await.map(|()| PostedComment::on(ticket, "c"))
        }
    }

    /// The secret: each read gives the next token, the last one for ever
    /// ("throttled": Secrets Manager refuses the read for now).
    struct Secret {
        tokens: Vec<&'static str>,
        reads: AtomicUsize,
        calls: Arc<AtomicUsize>,
    }

    fn built(token: &'static str, calls: &Arc<AtomicUsize>) -> Built<System> {
        let mut from = [0; 32];
        from[..token.len()].copy_from_slice(token.as_bytes());
        Built {
            backend: System {
                token,
                calls: Arc::clone(calls),
            },
            from,
        }
    }

    impl Reload for Secret {
        type Backend = System;
        async fn reload(&self) -> PortResult<Built<System>> {
            let read = self.reads.fetch_add(1, Ordering::SeqCst);
            match self.tokens[read.min(self.tokens.len() - 1)] {
                "throttled" => Err(PortError::http("secrets", 429, "HTTP 429: slow down")),
                token => Ok(built(token, &self.calls)),
            }
        }
    }

    fn sink(tokens: &[&'static str]) -> ReloadingSink<Secret> {
        let calls = Arc::new(AtomicUsize::new(0));
        let secret = Secret {
            tokens: tokens.to_vec(),
            reads: AtomicUsize::new(0),
            calls: Arc::clone(&calls),
        };
        ReloadingSink::new(built("old", &calls), secret)
    }

    fn comment() -> NewComment {
        NewComment {
            message: ContentHash::of(b"m"),
            body: "b".into(),
            priority: Priority::Normal,
            kind: Kind::Unknown,
            internal_note: String::new(),
            attachments: Vec::new(),
            first_send: None,
        }
    }

    fn reads(sink: &ReloadingSink<Secret>) -> usize {
        sink.reloader.reads.load(Ordering::SeqCst)
    }

    fn calls(sink: &ReloadingSink<Secret>) -> usize {
        sink.reloader.calls.load(Ordering::SeqCst)
    }

    /// The token was rotated in the secret after the function started: the
    /// refused comment is left to the queue (not repeated at once), and its
    /// next delivery goes through on the new token.
    #[tokio::test]
    async fn a_rotated_token_is_read_again_at_the_first_refusal() {
        let sink = sink(&["new"]);
        let refused = sink.comment("7", &comment()).await.unwrap_err();
        assert!(refused.is_transient(), "{refused:?}");
        assert_eq!(
            (reads(&sink), calls(&sink)),
            (1, 1),
            "read once, not repeated"
        );
        assert!(sink.comment("7", &comment()).await.is_ok());
        assert!(sink.find(&ThreadKey::message("t")).await.is_ok());
        assert_eq!(reads(&sink), 1, "nothing refused: the secret is not read");
    }

    /// A token revoked and not replaced: the refusal stands (the secret
    /// holds the same one), and the secret is read again at most once in
    /// [`MIN_RELOAD_INTERVAL`], not per operation.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_new_credentials_do_not_cure_stands() {
        let sink = sink(&["old", "old", "new"]);
        let refused = sink.comment("7", &comment()).await.unwrap_err();
        assert_eq!(
            (refused.kind, refused.status),
            (ErrorKind::Refused, Some(401))
        );
        assert_eq!(reads(&sink), 1);
        let refused = sink.find(&ThreadKey::message("t")).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Refused);
        assert_eq!(reads(&sink), 1, "read again too soon");
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(
            !sink
                .find(&ThreadKey::message("t"))
                .await
                .unwrap_err()
                .is_transient()
        );
        assert_eq!(reads(&sink), 2);
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(
            sink.find(&ThreadKey::message("t"))
                .await
                .unwrap_err()
                .is_transient()
        );
        assert_eq!(reads(&sink), 3);
        assert!(sink.find(&ThreadKey::message("t")).await.is_ok());
    }

    /// Secrets Manager cannot be read just now: the call fails as
    /// transient (the queue retries it), not with the refusal (which
    /// dead-letters).
    #[tokio::test(start_paused = true)]
    async fn a_secret_that_cannot_be_read_now_leaves_the_operation_to_the_queue() {
        let sink = sink(&["throttled", "new"]);
        let failed = sink.comment("7", &comment()).await.unwrap_err();
        assert!(failed.is_transient(), "{failed:?}");
        tokio::time::advance(MIN_RELOAD_INTERVAL).await;
        assert!(
            sink.comment("7", &comment())
                .await
                .unwrap_err()
                .is_transient()
        );
        assert!(sink.comment("7", &comment()).await.is_ok());
        assert_eq!(reads(&sink), 2);
    }

    /// A read that failed for now does not hold the next one back: a
    /// refusal right after reads the secret again (a rotated token is not
    /// dead-lettered for the interval).
    #[tokio::test(start_paused = true)]
    async fn a_failed_read_does_not_hold_back_the_next() {
        let sink = sink(&["throttled", "new"]);
        assert!(
            sink.comment("7", &comment())
                .await
                .unwrap_err()
                .is_transient()
        );
        let refused = sink.comment("7", &comment()).await.unwrap_err();
        assert!(refused.is_transient(), "{refused:?}");
        assert_eq!(refused.retry_after(), Some(REDELIVER_AFTER));
        assert_eq!(reads(&sink), 2);
        assert!(sink.comment("7", &comment()).await.is_ok());
    }

    /// Threads refused at once read the secret once; each is left to the
    /// queue, and the next deliveries use the new backend.
    #[tokio::test]
    async fn threads_refused_together_read_the_secret_once() {
        let sink = sink(&["new"]);
        let comment = comment();
        let (a, b) = tokio::join!(sink.comment("7", &comment), sink.comment("8", &comment));
        assert!(a.unwrap_err().is_transient());
        assert!(b.unwrap_err().is_transient());
        assert_eq!(reads(&sink), 1);
    }
}
