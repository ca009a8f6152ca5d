//! The pool process's live projection: the ledger folded as it grows, for the JSON-RPC server,
//! the chain watcher and the payment lane.
//!
//! One follower task ([`follower`]) applies every durable record in sequence; nothing else
//! writes the projection. It reads and decodes records off the async workers and applies them
//! in chunks, so the lock is held for a fraction of a millisecond at a time and Stratum, which
//! appends to the ledger directly, never waits for it. Readers take the same lock briefly and
//! see the projection together with the ledger head it reflects.
//!
//! Start-up loads the last snapshot ([`snapshot`]) when it matches the ledger and applies the
//! tail; the follower writes a new snapshot as the ledger grows and at a clean stop.
//!
//! Payment events go through the serialized lane ([`lane`]): checked against a projection that
//! has applied everything durable, appended, and applied before the next one is checked.
//!
//! Sealed archives ([`archive`]): the ledger's old records sealed into archive files (with the
//! projection snapshot at the cut) and dropped from the ledger, never past the projection's
//! horizon nor past the live snapshot; a ledger whose prefix was dropped starts from its
//! snapshot (or, if that is lost, from the base snapshot kept at the drop).

mod accounting;
pub mod archive;
pub mod events;
pub mod follower;
pub mod lane;
pub mod pause;
pub mod reads;
pub mod snapshot;
pub mod views;

pub use lane::LaneError;

use anyhow::Context;
use ledger::{Head, Ledger, Record};
use payout::api::{ChainStatus, PayoutReport};
use pool_core::chain::ChainParams;
use pool_core::event::BlockCandidate;
use pool_core::Event;
use projections::{Projection, ProjectionConfig, ProjectionError};
use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;
use tokio::sync::watch;

/// How long a caller waits for the projection to reach a record before it is told the pool is
/// unavailable (the follower is retrying a failed read, or far behind).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// When the follower writes a snapshot.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotPolicy {
    /// After this many records applied since the last snapshot...
    pub every_records: u64,
    /// ...or this long since it, if anything was applied...
    pub every: Duration,
    /// ...but never sooner than this after the last one (nor sooner than 20 times the last
    /// write took, so writing snapshots costs at most ~5 % of a core however large they grow).
    pub min_gap: Duration,
}

/// The defaults bound the tail a start replays to ~2 M records (~1.5 s at the replay rate of a
/// 10 M-share ledger, BENCHMARKS.md) at any share rate, with at most one snapshot a minute. The
/// live projection forgets old shares (`Projection::forgetting`), so a snapshot no longer grows
/// with the shares ever accepted: at most ~1 M shares of 36 bytes, plus the addresses, workers,
/// blocks and payments.
impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            every_records: 2_000_000,
            every: Duration::from_secs(300),
            min_gap: Duration::from_secs(60),
        }
    }
}

/// The projection with what it reflects, behind one lock.
pub struct Applied {
    pub projection: Projection,
    /// The last record applied (`None`: nothing yet).
    pub head: Option<Head>,
    /// Record time (Unix ms) of each payment's `PaymentPrepared`, by payment id.
    pub prepared_times: BTreeMap<u64, u64>,
}

/// The environment variable that sets the live projection's share mark interval (tests only:
/// the archive tests need a horizon that moves within a few hundred records; the default is
/// `projections`' 65,536 shares).
pub const TEST_MARK_EVERY_ENV: &str = "OBTC_TEST_MARK_EVERY";

/// An empty projection of the kind the pool keeps live: one that forgets old shares.
pub(crate) fn live_projection(config: ProjectionConfig) -> Projection {
    match std::env::var(TEST_MARK_EVERY_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(every) => Projection::forgetting_with(config, every, projections::DEFAULT_MAX_SHARES),
        None => Projection::forgetting(config),
    }
}

impl Applied {
    /// The header of this projection's snapshot file: the record it reflects and the payments'
    /// prepare times (`None` before any record).
    pub(crate) fn snapshot_header(&self) -> Option<snapshot::SnapshotHeader> {
        self.head.map(|head| snapshot::SnapshotHeader {
            seq: head.seq,
            hash: head.hash,
            prepared_times: self.prepared_times.clone(),
        })
    }

    /// An empty projection.
    pub fn new(config: ProjectionConfig) -> Applied {
        Applied {
            projection: live_projection(config),
            head: None,
            prepared_times: BTreeMap::new(),
        }
    }

    /// Applies one record. A block event whose PPLNS window reaches shares the forgetting
    /// projection dropped is applied once those shares are read back from `ledger` (a mark
    /// interval at a time; see `projections`' engine/forget.rs): rare, and the only time the
    /// follower reads records it already applied. Without a ledger such an event is an error.
    pub(crate) fn apply(&mut self, ledger: Option<&Ledger>, record: &Record) -> anyhow::Result<()> {
        let mut refilled = 0u64;
        loop {
            match self.projection.apply(record.seq, &record.event) {
                Ok(()) => break,
                Err(ProjectionError::SharesForgotten { .. }) if ledger.is_some() => {
                    let ledger = ledger.expect("checked");
                    let Some((from, to)) = self.projection.refill_range(&record.event) else {
                        anyhow::bail!("ledger record {}: no refill range", record.seq);
                    };
                    let records = ledger
                        .read_range(from, to)
                        .collect::<Result<Vec<Record>, _>>()
                        .with_context(|| {
                            format!("reading ledger records {from}..{to} back for a PPLNS window")
                        })?;
                    let shares = records.iter().filter_map(|r| r.event.share());
                    self.projection
                        .refill(shares)
                        .with_context(|| format!("refilling ledger records {from}..{to}"))?;
                    refilled += to - from;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("applying ledger record {}", record.seq))
                }
            }
        }
        if refilled > 0 {
            tracing::info!(
                seq = record.seq,
                records = refilled,
                "live projection: read forgotten shares back for a block's PPLNS window"
            );
        }
        if let Event::PaymentPrepared(p) = &record.event {
            self.prepared_times
                .entry(p.payment_id)
                .or_insert(record.time_ms);
        }
        self.head = Some(Head {
            seq: record.seq,
            hash: record.hash,
        });
        Ok(())
    }
}

/// The live projection and what the pool process shares around it; held as `Arc<Live>`.
pub struct Live {
    ledger: Ledger,
    chain: &'static ChainParams,
    state: RwLock<Applied>,
    /// The last applied seq, for [`Live::wait_applied`].
    applied: watch::Sender<Option<u64>>,
    /// The payment lane: one payment event at a time, from check to applied.
    lane: tokio::sync::Mutex<()>,
    chain_status: Mutex<ChainStatus>,
    payout_report: Mutex<Option<PayoutReport>>,
    /// The follower's bookkeeping (held by whoever applies records: one at a time).
    follow: Mutex<follower::FollowState>,
    /// One archive at a time ([`Live::archive`]).
    archiving: tokio::sync::Mutex<()>,
    /// The follower's notifications for the WebSocket subscriptions ([`events`]).
    events: events::Events,
    /// The operator's pause of payouts ([`pause`]).
    pause: pause::Pause,
    /// The payout process's last report of state `error` (kept after later successes).
    payout_error: Mutex<Option<PayoutReport>>,
}

impl Live {
    /// Builds the projection for `ledger` (from its snapshot when that matches, else from 0) and
    /// applies every durable record. Blocking (reads the whole tail): run it off the async
    /// workers.
    pub fn open(
        ledger: Ledger,
        chain: &'static ChainParams,
        policy: SnapshotPolicy,
    ) -> anyhow::Result<Live> {
        let config = ProjectionConfig {
            coinbase_maturity: u64::from(chain.coinbase_maturity),
        };
        let pause = pause::Pause::load(ledger.dir())?;
        let (applied, follow) = follower::start_up(&ledger, config, policy)?;
        let last = applied.head.map(|h| h.seq);
        Ok(Live {
            ledger,
            chain,
            state: RwLock::new(applied),
            applied: watch::Sender::new(last),
            lane: tokio::sync::Mutex::new(()),
            chain_status: Mutex::new(ChainStatus::default()),
            payout_report: Mutex::new(None),
            follow: Mutex::new(follow),
            archiving: tokio::sync::Mutex::new(()),
            events: events::Events::default(),
            pause,
            payout_error: Mutex::new(None),
        })
    }

    /// The follower's notifications (blocks, block status changes, payments) from now on.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<events::LiveEvent> {
        self.events.subscribe()
    }

    /// The operator's pause of payouts.
    pub fn pause(&self) -> &pause::Pause {
        &self.pause
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn chain(&self) -> &'static ChainParams {
        self.chain
    }

    /// The projection as applied so far, with its head; hold it briefly (the follower waits).
    pub fn read(&self) -> RwLockReadGuard<'_, Applied> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The last applied record's seq (`None`: nothing applied).
    pub fn applied_seq(&self) -> Option<u64> {
        *self.applied.borrow()
    }

    /// Waits until the record `seq` is applied (at most [`APPLY_TIMEOUT`]).
    pub async fn wait_applied(&self, seq: u64) -> Result<(), LaneError> {
        let mut rx = self.applied.subscribe();
        let reached = rx.wait_for(|a| a.is_some_and(|a| a >= seq));
        let waited = tokio::time::timeout(APPLY_TIMEOUT, reached)
            .await
            .map(|r| r.is_ok());
        match waited {
            Ok(true) => Ok(()),
            Ok(false) => Err(LaneError::Unavailable("the pool is stopping".into())),
            Err(_) => Err(LaneError::Unavailable(format!(
                "the live projection did not reach ledger record {seq} within {} s",
                APPLY_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Waits until everything durable now is applied.
    pub async fn wait_durable_applied(&self) -> Result<(), LaneError> {
        match self.ledger.head() {
            Some(head) => self.wait_applied(head.seq).await,
            None => Ok(()),
        }
    }

    /// Runs `f` on a projection that has applied everything durable when called: the chain
    /// watcher's consistent read. Waits as long as it takes (logging while the follower is
    /// behind): a stale read could make the watcher record an event twice.
    pub async fn read_durable<R>(&self, f: impl FnOnce(&Projection) -> R) -> R {
        while let Err(e) = self.wait_durable_applied().await {
            tracing::warn!("chain watcher waiting for the live projection: {e}");
        }
        f(&self.read().projection)
    }

    /// Appends events durably as one batch (in order) and returns once they are applied: the
    /// chain watcher's lifecycle events.
    pub async fn append_events(&self, events: Vec<Event>) -> Result<(), String> {
        if events.is_empty() {
            return Ok(());
        }
        let appended = self
            .ledger
            .append_batch(events)
            .await
            .map_err(|e| format!("cannot append to the ledger: {e}"))?;
        match appended.last() {
            Some(last) => self.wait_applied(last.seq).await.map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }

    pub fn set_chain_status(&self, status: ChainStatus) {
        *self.chain_status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub fn chain_status(&self) -> ChainStatus {
        self.chain_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_payout_report(&self, report: PayoutReport) {
        if report.state == payout::api::PayoutProcessState::Error {
            *self.payout_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(report.clone());
        }
        *self.payout_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// The payout process's last report of state `error` since the pool started.
    pub fn payout_error(&self) -> Option<PayoutReport> {
        self.payout_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn payout_report(&self) -> Option<PayoutReport> {
        self.payout_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads one record (blocking: sled).
    pub fn read_record(&self, seq: u64) -> anyhow::Result<Record> {
        read_record(&self.ledger, seq)
    }

    /// Block candidates without a verdict, in ledger order, each read back from its record for
    /// the block's bytes (blocking).
    pub fn open_candidates(&self) -> anyhow::Result<Vec<BlockCandidate>> {
        let open = self.read().projection.open_candidates();
        open.into_iter()
            .map(|(id, _, seq)| match self.read_record(seq)?.event {
                Event::BlockCandidate(c) if c.block_id == id => Ok(c),
                other => anyhow::bail!(
                    "ledger record {seq} should be the candidate of block {id}, is a {}",
                    other.kind()
                ),
            })
            .collect()
    }
}

/// Reads one record of `ledger` (blocking: sled).
fn read_record(ledger: &Ledger, seq: u64) -> anyhow::Result<Record> {
    ledger
        .read_range(seq, seq + 1)
        .next()
        .with_context(|| format!("ledger record {seq} is not there"))?
        .with_context(|| format!("reading ledger record {seq}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::event::{BlockFound, PayoutAddress, ShareAccepted, WorkerName};
    use pool_core::{BlockId, Sats, Target};

    fn share(n: u64) -> Event {
        Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(format!("addr{}", n % 5)),
            worker: WorkerName("w".into()),
            share_target: Target::MAX,
            weight: Target::MAX.work(),
            job_id: 1,
            height: 100,
            network_target: Target::MAX,
            time_ms: 1_000 * n,
        })
    }

    /// A forgetting projection fed from a real ledger reads the shares a block's window needs
    /// back from it, and credits what a projection that keeps every share credits.
    #[test]
    fn a_block_reads_forgotten_shares_back_from_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut events: Vec<Event> = (0..5_000).map(share).collect();
        // Target 2^246 (work 1,023), window 2 x 1,023 shares, far more than the 40 kept.
        let target = Target::from_compact(0x1f40_0000).unwrap();
        events.push(Event::BlockFound(BlockFound {
            height: 101,
            block_id: BlockId([7; 32]),
            reward: Sats(5_000_000_000),
            network_target: target,
            finder: PayoutAddress("addr1".into()),
            worker: WorkerName("w".into()),
            time_ms: 6_000_000,
        }));
        events.extend((5_000..5_100).map(share));
        ledger.append_batch_blocking(events).unwrap();
        let mut applied = Applied {
            projection: Projection::forgetting_with(ProjectionConfig::default(), 8, 32),
            head: None,
            prepared_times: Default::default(),
        };
        let mut keeper = Projection::new(ProjectionConfig::default());
        for record in ledger.read_from(0) {
            let record = record.unwrap();
            applied.apply(Some(&ledger), &record).unwrap();
            keeper.apply(record.seq, &record.event).unwrap();
        }
        let p = &applied.projection;
        assert!(p.retained_shares() <= 40, "{}", p.retained_shares());
        assert_eq!(p.blocks(), keeper.blocks());
        assert_eq!(p.blocks()[0].credits.len(), 5);
        assert_eq!(p.balances(), keeper.balances());
        assert_eq!(applied.head.map(|h| h.seq), Some(5_100));
        // Without the ledger the block cannot be applied.
        let mut alone = Applied {
            projection: Projection::forgetting_with(ProjectionConfig::default(), 8, 32),
            head: None,
            prepared_times: Default::default(),
        };
        let records: Vec<Record> = ledger.read_range(0, 5_001).map(|r| r.unwrap()).collect();
        for r in &records[..5_000] {
            alone.apply(None, r).unwrap();
        }
        assert!(alone.apply(None, &records[5_000]).is_err());
        ledger.close_blocking();
    }
}
