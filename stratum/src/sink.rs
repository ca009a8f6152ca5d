//! Where the Stratum server's events go: the ledger itself (`obtc-pool run`), or a replicated
//! stream that a core applies to the ledger (`obtc-pool edge`, the `stream` crate).
//!
//! The server only needs three things of it, and they are the whole contract:
//! - [`EventSink::submit`] takes events *now*, in call order (the order is fixed when it
//!   returns, as [`Ledger::submit`] fixes a record's place), and gives a future that resolves
//!   once they are durable: the ledger's commit, or the stream's publish acknowledgement from a
//!   quorum of its replicas. A miner's `true` is sent only after that future says `Ok`. The
//!   events of one call stay together and in order (one ledger append, one stream batch).
//! - [`EventSink::anchor`]: the ledger head a new job's coinbase commits to (`None` while the
//!   ledger is empty or unknown). An edge's view may trail the core's by a few seconds.
//! - [`SinkError`]: why events were not taken or not made durable, with whether the failure is
//!   an ongoing condition already logged once (a full disk, a stream that is unreachable), so
//!   the server logs it per share only at debug level.

use ledger::Ledger;
use pool_core::event::{Event, LedgerAnchor};
use std::future::Future;
use std::pin::Pin;

/// Resolves once the submitted events are durable (or never will be).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send>>;

/// Why events were not made durable.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    pub message: String,
    /// An ongoing condition that its owner logs once (not per share): a full disk, a stream
    /// that cannot be reached.
    pub quiet: bool,
}

impl SinkError {
    pub fn new(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            quiet: false,
        }
    }

    pub fn quiet(message: impl Into<String>) -> SinkError {
        SinkError {
            message: message.into(),
            quiet: true,
        }
    }
}

impl From<ledger::LedgerError> for SinkError {
    fn from(e: ledger::LedgerError) -> SinkError {
        SinkError {
            quiet: e.is_disk_full(),
            message: e.to_string(),
        }
    }
}

/// See the module docs.
pub trait EventSink: Send + Sync + 'static {
    /// Takes `events` (in this order, together) and returns when they will be durable.
    fn submit(&self, events: Vec<Event>) -> Result<Durable, SinkError>;

    /// The ledger head a new job's coinbase commits to.
    fn anchor(&self) -> Option<LedgerAnchor>;

    /// Whether a found block goes to the node as soon as its candidate is taken, without
    /// waiting for durability. The ledger says no (a commit takes a millisecond, and a block the
    /// ledger does not hold would be a reward the pool cannot account for after a crash); an
    /// edge's stream says yes (an election stalls acknowledgements for 4-9 s, and a block
    /// that waits may be orphaned; the candidate is queued ahead of its verdict and retried,
    /// so only an edge that dies before the stream stores it loses the record).
    fn submit_blocks_at_once(&self) -> bool {
        false
    }
}

impl EventSink for Ledger {
    fn submit(&self, events: Vec<Event>) -> Result<Durable, SinkError> {
        if events.len() == 1 {
            let event = events.into_iter().next().expect("one event");
            let durable = Ledger::submit(self, event)?;
            return Ok(Box::pin(async move {
                durable.await.map(|_| ()).map_err(SinkError::from)
            }));
        }
        let durable = Ledger::submit_batch(self, events)?;
        Ok(Box::pin(async move {
            durable.await.map(|_| ()).map_err(SinkError::from)
        }))
    }

    fn anchor(&self) -> Option<LedgerAnchor> {
        self.head().map(|h| LedgerAnchor {
            seq: h.seq,
            hash: h.hash,
        })
    }
}
