//! What the RPC methods read and act on: the live projection, the Stratum server's ban store,
//! and the pool's settings the operator methods report.

use crate::config::Config;
use crate::live::Live;
use std::sync::Arc;
use std::time::Instant;
use stratum::ban::BanStore;
use stratum::server::registry::Registry;

/// The RPC server's context (jsonrpsee hands it to every method).
pub struct RpcContext {
    pub live: Arc<Live>,
    /// The Stratum server's bans (the admin calls list, add and lift them).
    pub bans: Arc<BanStore>,
    /// The pool's configuration as loaded (for `pool_info`).
    pub config: Arc<Config>,
    /// When the pool process started (for `pool_stats`' uptime).
    pub started: Instant,
    /// The Stratum server's live connections and share counters (`pool_stats`,
    /// `miner_workers`; `ban_add` closes the banned target's connections through it).
    pub registry: Arc<Registry>,
    /// `ledger_verify`'s one-at-a-time verification and its last result.
    pub verifier: super::operator::verify::Verifier,
}
