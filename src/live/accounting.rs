//! The chain watcher's view of the live projection: consistent reads of the blocks to compare
//! (everything durable applied first), lifecycle appends that return once applied, and the
//! watcher's status for `pool_status`.

use super::Live;
use payout::api::ChainStatus;
use payout::watcher::{watched_blocks, Accounting, WatchedBlock};
use pool_core::Event;

impl Accounting for Live {
    async fn watched_blocks(&self, matured_from_height: u64) -> Vec<WatchedBlock> {
        self.read_durable(|p| watched_blocks(p, matured_from_height))
            .await
    }

    async fn append(&self, events: Vec<Event>) -> Result<(), String> {
        self.append_events(events).await
    }

    fn set_chain_status(&self, status: ChainStatus) {
        Live::set_chain_status(self, status)
    }
}
