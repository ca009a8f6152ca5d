//! The pool's JSON-RPC server: HTTP and WebSocket on one loopback port (`[rpc] listen`), the
//! methods of `payout::api` over the live projection. Calls that append events need the bearer
//! token ([`auth`]); malformed requests get JSON-RPC errors from jsonrpsee (parse error, invalid
//! params, method not found).

pub mod auth;
pub mod context;
pub mod methods;
pub mod operator;

use crate::config::RpcSettings;
use anyhow::Context;
pub use context::RpcContext;
use jsonrpsee::server::{Server, ServerHandle};
use std::net::SocketAddr;
use std::sync::Arc;

/// A running RPC server.
pub struct RpcServer {
    handle: ServerHandle,
    pub local_addr: SocketAddr,
}

impl RpcServer {
    /// Reads (or creates) the token file, binds `[rpc] listen` and starts serving.
    pub async fn start(
        settings: &RpcSettings,
        context: Arc<RpcContext>,
    ) -> anyhow::Result<RpcServer> {
        let token = auth::Token::load_or_create(&settings.token_file)?;
        let http = tower::ServiceBuilder::new().layer(auth::AuthLayer { token });
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
        let handle = server.start(methods::module(context)?);
        tracing::info!(listen = %local_addr, token_file = %settings.token_file.display(), "RPC serving");
        Ok(RpcServer { handle, local_addr })
    }

    /// Stops accepting and waits for the calls in progress.
    pub async fn stop(self) {
        let _ = self.handle.stop();
        self.handle.stopped().await;
        tracing::info!("RPC stopped");
    }
}
