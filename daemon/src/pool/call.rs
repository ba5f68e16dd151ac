//! `isolation = "call"`: a fresh server (container or process) for each request that names an
//! item, removed as soon as that request ends however it ends (answer, error, timeout, the
//! client's cancel, the client gone). Lists come from the profile's listing server and the list
//! cache, as for `isolation = "session"`.
//!
//! Each call's server lives in a task of its own, which starts it, hands it to the caller, and
//! removes it once the caller drops its [`CallServer`] (or never took it, having given up during
//! the start). So no path through the caller, including a future dropped mid-start, can leave a
//! server behind; at shutdown the pool's cancellation ends these tasks too.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{Pool, PoolError, Slot};
use crate::config::ServerDef;
use crate::upstream::Upstream;

/// The server of one call; dropping it removes the server.
pub struct CallServer {
    pub upstream: Arc<Upstream>,
    _done: oneshot::Sender<()>,
}

impl Pool {
    /// Starts a server for one call of `server` on behalf of `session` (whose client gets the
    /// server's notifications).
    pub async fn get_for_call(
        self: &Arc<Self>,
        profile: &str,
        server: &str,
        session: Option<u64>,
        def: &ServerDef,
    ) -> Result<CallServer, PoolError> {
        if self.closing.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let (def, run) = self.resolve(profile, server, def);
        let def = def.into_owned();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        let pool = Arc::clone(self);
        let (profile, server) = (profile.to_owned(), server.to_owned());
        self.calls.spawn(async move {
            let slot = Arc::new(Slot::new(&server));
            slot.lock().last_used = Some(Instant::now());
            let started = pool
                .start(&slot, (&profile, &server, session), &def, run)
                .await;
            let running = match started {
                Ok(running) => running,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            if ready_tx.send(Ok(Arc::clone(&running.upstream))).is_ok() {
                tokio::select! {
                    _ = done_rx => {}
                    () = pool.closing.cancelled() => {}
                }
            }
            tracing::info!(
                profile,
                server,
                "removing the call's server {}",
                running.container
            );
            pool.stop(&slot, running).await;
        });
        let upstream = ready_rx.await.map_err(|_| PoolError::ShuttingDown)??;
        Ok(CallServer {
            upstream,
            _done: done_tx,
        })
    }
}
