//! Ports that fail once where a test asks, as a throttled store does, and
//! then answer as the store they wrap.

use rootmail_domain::ThreadKey;
use rootmail_pipeline::{PortError, PortResult, ThreadMap, ThreadRecord};
use std::sync::atomic::{AtomicBool, Ordering};

/// Which call of a [`ThreadMap`] fails the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadCall {
    ThreadOfMessage,
    RememberMessage,
}

/// A thread map whose `call` fails once (transient, as a throttle), then
/// answers as `inner`.
pub struct FailsOnce<T> {
    inner: T,
    call: ThreadCall,
    failed: AtomicBool,
}

impl<T> FailsOnce<T> {
    pub fn new(inner: T, call: ThreadCall) -> Self {
        Self {
            inner,
            call,
            failed: AtomicBool::new(false),
        }
    }

    fn fails(&self, call: ThreadCall) -> PortResult<()> {
        if call == self.call && !self.failed.swap(true, Ordering::SeqCst) {
            return Err(PortError::transient(
                "threads",
                "ProvisionedThroughputExceededException",
            ));
        }
        Ok(())
    }
}

impl<T: ThreadMap + Sync> ThreadMap for FailsOnce<T> {
    async fn ticket_of(&self, key: &ThreadKey) -> PortResult<Option<ThreadRecord>> {
        self.inner.ticket_of(key).await
    }

    async fn save(&self, record: &ThreadRecord) -> PortResult<()> {
        self.inner.save(record).await
    }

    async fn thread_of_message(&self, id: &str) -> PortResult<Option<ThreadKey>> {
        self.fails(ThreadCall::ThreadOfMessage)?;
        self.inner.thread_of_message(id).await
    }

    async fn remember_message(&self, id: &str, key: &ThreadKey) -> PortResult<()> {
        self.fails(ThreadCall::RememberMessage)?;
        self.inner.remember_message(id, key).await
    }
}
