//! Interim accounting for the chain watcher in `obtc-pool run`: a projection of its own, caught up
//! from the ledger's new records before each check. The live projection (`src/live/`) replaces
//! it: it implements [`Accounting`] the same way, and `run` then passes it instead.

use ledger::Ledger;
use payout::api::ChainStatus;
use payout::watcher::{watched_blocks, Accounting, WatchedBlock};
use pool_core::Event;
use projections::{Projection, ProjectionConfig};
use std::sync::Mutex;

pub struct LedgerAccounting {
    ledger: Ledger,
    config: ProjectionConfig,
    /// `None` only while a catch-up holds it on the blocking pool.
    projection: tokio::sync::Mutex<Option<Projection>>,
    status: Mutex<ChainStatus>,
}

impl LedgerAccounting {
    pub fn new(ledger: Ledger, config: ProjectionConfig) -> LedgerAccounting {
        LedgerAccounting {
            ledger,
            projection: tokio::sync::Mutex::new(Some(Projection::new(config.clone()))),
            config,
            status: Mutex::new(ChainStatus::default()),
        }
    }

    /// Applies the records appended since the last call (all of them the first time), off the
    /// async workers; the watched blocks then, or the reason it could not read the ledger.
    async fn caught_up(&self, matured_from_height: u64) -> Result<Vec<WatchedBlock>, String> {
        let mut slot = self.projection.lock().await;
        let projection = slot
            .take()
            .unwrap_or_else(|| Projection::new(self.config.clone()));
        let ledger = self.ledger.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut p = projection;
            let read =
                ledger
                    .read_from(p.next_seq())
                    .try_for_each(|record| -> Result<(), String> {
                        let record = record.map_err(|e| e.to_string())?;
                        p.apply(record.seq, &record.event)
                            .map_err(|e| e.to_string())
                    });
            (p, read)
        })
        .await;
        match joined {
            Ok((p, read)) => {
                let blocks = watched_blocks(&p, matured_from_height);
                *slot = Some(p);
                read.map(|()| blocks)
            }
            // The projection is lost with the task: the next call replays from the start.
            Err(e) => Err(format!("ledger catch-up task failed: {e}")),
        }
    }

    /// The watcher's last status (for the operator's RPC once it exists).
    pub fn chain_status(&self) -> ChainStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Accounting for LedgerAccounting {
    async fn watched_blocks(&self, matured_from_height: u64) -> Vec<WatchedBlock> {
        match self.caught_up(matured_from_height).await {
            Ok(blocks) => blocks,
            Err(e) => {
                // Nothing to compare is safe: no event is planned from a stale view.
                tracing::warn!("chain watcher: cannot read the ledger ({e}); skipping this check");
                Vec::new()
            }
        }
    }

    async fn append(&self, events: Vec<Event>) -> Result<(), String> {
        self.ledger
            .append_batch(events)
            .await
            .map_err(|e| e.to_string())?;
        self.caught_up(u64::MAX).await.map(|_| ())
    }

    fn set_chain_status(&self, status: ChainStatus) {
        if let Ok(mut s) = self.status.lock() {
            *s = status;
        }
    }
}
