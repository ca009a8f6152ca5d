//! The pool's JSON-RPC server: HTTP and WebSocket on one loopback port (`[rpc] listen`), the
//! methods of `payout::api` over the live projection. Calls that append events need the bearer
//! token ([`auth`]); malformed requests get JSON-RPC errors from jsonrpsee (parse error, invalid
//! params, method not found). `GET /metrics` (Prometheus, no token) is answered before
//! jsonrpsee by [`crate::metrics::http::MetricsLayer`], and with `[rpc] metrics_listen` on a
//! listener of its own too.

pub mod auth;
pub mod context;
pub mod methods;
pub mod operator;

use crate::config::RpcSettings;
use crate::metrics::http::MetricsLayer;
use crate::metrics::Metrics;
use anyhow::Context;
pub use context::RpcContext;
use jsonrpsee::server::{Server, ServerHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A running RPC server.
pub struct RpcServer {
    handle: ServerHandle,
    pub local_addr: SocketAddr,
    /// `[rpc] metrics_listen`'s bound address, and its stop and task.
    pub metrics_addr: Option<SocketAddr>,
    metrics_task: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl RpcServer {
    /// Reads (or creates) the token file, binds `[rpc] listen` and starts serving.
    pub async fn start(
        settings: &RpcSettings,
        context: Arc<RpcContext>,
    ) -> anyhow::Result<RpcServer> {
        let token = auth::Token::load_or_create(&settings.token_file)?;
        let metrics = Arc::new(Metrics::new(Arc::clone(&context.live), context.started));
        let http = tower::ServiceBuilder::new()
            .layer(MetricsLayer {
                metrics: Arc::clone(&metrics),
            })
            .layer(auth::AuthLayer { token });
        let server = Server::builder()
            .set_http_middleware(http)
            .build(settings.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for RPC on {} ([rpc] listen)",
                    settings.listen
                )
            })?;
        let local_addr = server
            .local_addr()
            .context("the RPC listener has no local address")?;
        let (metrics_addr, metrics_task) = match settings.metrics_listen {
            Some(addr) => {
                let stop = CancellationToken::new();
                let (bound, task) =
                    crate::metrics::listen::spawn(addr, metrics, stop.clone()).await?;
                (Some(bound), Some((stop, task)))
            }
            None => (None, None),
        };
        let handle = server.start(methods::module(context)?);
        tracing::info!(listen = %local_addr, token_file = %settings.token_file.display(), "RPC serving (and /metrics)");
        Ok(RpcServer {
            handle,
            local_addr,
            metrics_addr,
            metrics_task,
        })
    }

    /// Stops accepting and waits for the calls in progress.
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        if let Some((stop, task)) = self.metrics_task {
            stop.cancel();
            let _ = task.await;
        }
        tracing::info!("RPC stopped");
    }
}
