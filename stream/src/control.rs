//! What travels outside the ledger, on plain NATS subjects (not in the stream: a lost message
//! is replaced by the next one, every [`crate::StreamSettings::control_interval`]):
//! - [`AnchorMessage`] on `{p}.anchor`, core → edges: the core's ledger head, for the coinbase
//!   anchor of an edge's next job (an anchor a few seconds behind the core is fine: it is a
//!   record of the ledger all the same);
//! - [`BanList`] on `{p}.bans`, core → edges: the operator's bans (`ban_add`), the whole list
//!   each time, so a ban missing from it was lifted;
//! - [`EdgeStats`] on `{p}.stats.{edge_id}`, edge → core: the edge's live connections and share
//!   counters, merged into the core's `pool_stats` and `miner_workers`.
//!
//! All three are JSON, so an operator can watch them with `nats sub 'obtc.>'`.

use pool_core::event::LedgerAnchor;
use serde::{Deserialize, Serialize};

/// The core's ledger head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorMessage {
    pub anchor: LedgerAnchor,
}

/// One ban as the core's ban store holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanEntry {
    /// `ip:ADDR`, `range:CIDR`, `address:ADDR` or `worker:ADDR.NAME`, as `ban_add` takes it.
    pub target: String,
    /// Unix ms when it ends.
    pub until_ms: u64,
}

/// Every operator ban in force at the core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanList {
    pub bans: Vec<BanEntry>,
}

/// One live connection on an edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeConnection {
    pub peer: String,
    /// Authorized usernames (`address.worker`), in order.
    pub usernames: Vec<String>,
    /// The difficulty vardiff assigns now, in the chain's unit (`None` before authorize).
    pub difficulty: Option<f64>,
    pub since_ms: u64,
}

/// An edge's live state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeStats {
    pub edge_id: u16,
    pub boot_id: u64,
    /// Unix ms when the edge took this snapshot (the core forgets an edge whose last snapshot
    /// is older than three intervals).
    pub at_ms: u64,
    /// Shares acknowledged and rejected since the edge started.
    pub accepted: u64,
    pub rejected: u64,
    pub connections: Vec<EdgeConnection>,
}
