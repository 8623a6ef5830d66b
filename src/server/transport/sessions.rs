//! A cap on MCP sessions over HTTP, around rmcp's in-memory session manager.
//!
//! Each session holds a server instance and its channels (about 60 KiB; 3,000 idle ones cost
//! 184 MB, and the allocator does not hand that memory back to the system). So:
//! - a session with no request for `idle` expires (rmcp's keep-alive ends its worker, which
//!   removes it);
//! - at most `max` sessions exist. A new session beyond the cap evicts the least recently used
//!   *idle* session (no request or stream open); its client gets `404 Session not found` on its
//!   next request and, as the MCP specification says, starts a new session. When every
//!   session is busy, the new one is refused (HTTP 503 with a JSON-RPC error saying so).
//!
//! The endpoint has a single bearer token, so the cap is per token and per endpoint alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError, SessionConfig,
};

#[derive(Debug)]
struct Entry {
    last_used: Instant,
    open: usize,
}

/// Bookkeeping shared by the session manager and the HTTP middleware.
#[derive(Debug)]
pub struct Registry {
    max: usize,
    entries: Mutex<HashMap<SessionId, Entry>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, Entry>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sessions currently held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Whether a new session would be refused: the cap is reached and none is idle.
    pub fn full_and_busy(&self) -> bool {
        let e = self.lock();
        e.len() >= self.max && e.values().all(|x| x.open > 0)
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    fn touch(&self, id: &SessionId, open_delta: isize) {
        if let Some(e) = self.lock().get_mut(id) {
            e.last_used = Instant::now();
            e.open = e.open.saturating_add_signed(open_delta);
        }
    }

    /// The least recently used idle session to make room, if the cap is reached.
    fn victim(&self) -> Result<Option<SessionId>, ()> {
        let e = self.lock();
        if e.len() < self.max {
            return Ok(None);
        }
        e.iter()
            .filter(|(_, x)| x.open == 0)
            .min_by_key(|(_, x)| x.last_used)
            .map(|(id, _)| Some(id.clone()))
            .ok_or(())
    }
}

/// Errors of the capped manager.
#[derive(Debug, thiserror::Error)]
pub enum CappedError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error(
        "too many MCP sessions: all {0} are in use; close unused sessions (HTTP DELETE /mcp with \
         their Mcp-Session-Id), wait for one to finish, or raise --max-sessions"
    )]
    Full(usize),
}

/// rmcp's [`LocalSessionManager`] with a session cap and least-recently-used eviction.
pub struct CappedSessionManager {
    inner: LocalSessionManager,
    registry: Arc<Registry>,
}

impl CappedSessionManager {
    /// At most `max` sessions, each expiring after `idle` without a request.
    pub fn new(max: usize, idle: Duration) -> Self {
        let mut inner = LocalSessionManager::default();
        let mut config = SessionConfig::default();
        config.keep_alive = Some(idle);
        inner.session_config = config;
        Self {
            inner,
            registry: Arc::new(Registry {
                max: max.max(1),
                entries: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The bookkeeping, for the middleware that refuses early with a clear answer.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }
}

/// Counts a request or stream as open on its session until the stream is dropped.
struct Tracked<S> {
    inner: S,
    registry: Arc<Registry>,
    id: SessionId,
}

impl<S> Drop for Tracked<S> {
    fn drop(&mut self) {
        self.registry.touch(&self.id, -1);
    }
}

impl<S: Stream + Unpin> Stream for Tracked<S> {
    type Item = S::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl CappedSessionManager {
    fn track<S>(&self, id: &SessionId, s: S) -> Tracked<std::pin::Pin<Box<S>>> {
        self.registry.touch(id, 1);
        Tracked {
            inner: Box::pin(s),
            registry: self.registry.clone(),
            id: id.clone(),
        }
    }
}

impl SessionManager for CappedSessionManager {
    type Error = CappedError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        loop {
            match self.registry.victim() {
                Ok(None) => break,
                Ok(Some(old)) => {
                    tracing::info!(
                        cap = self.registry.max,
                        "MCP session cap reached: closing the least recently used idle session"
                    );
                    self.registry.lock().remove(&old);
                    self.inner.close_session(&old).await?;
                }
                Err(()) => return Err(CappedError::Full(self.registry.max)),
            }
        }
        let (id, transport) = self.inner.create_session().await?;
        self.registry.lock().insert(
            id.clone(),
            Entry {
                last_used: Instant::now(),
                open: 0,
            },
        );
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.registry.touch(id, 0);
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.registry.lock().remove(id);
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let s = self.inner.create_stream(id, message).await?;
        Ok(self.track(id, s))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.registry.touch(id, 0);
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let s = self.inner.create_standalone_stream(id).await?;
        Ok(self.track(id, s))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let s = self.inner.resume(id, last_event_id).await?;
        Ok(self.track(id, s))
    }
}
