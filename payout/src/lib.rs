//! The payout side of obtc-pool: the chain watcher that turns the node's view of found blocks into
//! `BlockOrphaned` / `BlockReinstated` / `BlockMatured` events, and the payment process that pays
//! mature balances through the node's wallet RPC with exactly-once bookkeeping.
//!
//! It runs apart from accounting, so a broken payment path never stops share accounting.

pub mod api;
pub mod payer;
pub mod watcher;
