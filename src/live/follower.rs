//! The one writer of the live projection: start-up (snapshot or replay, then the tail), the
//! follower task that applies each new durable record, snapshots, and the final catch-up at a
//! clean stop.
//!
//! Records are read and decoded on tokio's blocking pool (sled reads block) and applied in
//! chunks of [`CHUNK`] under the write lock. Catch-ups are paced ([`PACE`]): the ledger commits
//! thousands of times a second under load, and one catch-up per few milliseconds folds them all.

use super::events;
use super::snapshot::{self, SnapshotHeader};
use super::{Applied, Live, SnapshotPolicy};
use anyhow::Context;
use ledger::{Ledger, Record};
use projections::{Projection, ProjectionConfig};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Records applied per hold of the write lock (~0.5 ms of folding).
pub const CHUNK: usize = 4096;
/// At most one catch-up per this long.
pub const PACE: Duration = Duration::from_millis(5);
/// Longest wait between retries after a failed read.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The follower's bookkeeping for snapshots.
pub struct FollowState {
    policy: SnapshotPolicy,
    /// Records applied since the last snapshot (or since start, when none was loaded).
    since_snapshot: u64,
    last_snapshot: Instant,
    /// How long the last snapshot took to write.
    last_write: Duration,
    /// Records the running follower applied, and the time it spent reading and applying them
    /// (its cost beside Stratum; logged at the stop).
    followed: u64,
    busy: Duration,
}

impl FollowState {
    fn due(&self) -> bool {
        if self.since_snapshot == 0 {
            return false;
        }
        let elapsed = self.last_snapshot.elapsed();
        let gap = self.policy.min_gap.max(self.last_write * 20);
        elapsed >= gap
            && (self.since_snapshot >= self.policy.every_records || elapsed >= self.policy.every)
    }
}

/// Builds the projection at start: the snapshot if it matches the ledger, else an empty one;
/// then every durable record after it. Logs where it started from and how long it took.
pub(super) fn start_up(
    ledger: &Ledger,
    config: ProjectionConfig,
    policy: SnapshotPolicy,
) -> anyhow::Result<(Applied, FollowState)> {
    let started = Instant::now();
    let loaded = load_snapshot(ledger, &config, &snapshot::path_in(ledger.dir())).or_else(|why| {
        // A ledger whose prefix was archived cannot be replayed from 0: its base snapshot (the
        // projection at the base, written before the drop) is the way back.
        match ledger.base() {
            Ok(Some(base)) => {
                let path = super::archive::base_snapshot_path(ledger.dir(), base.seq);
                tracing::warn!(
                    "live projection: {why}; starting from the base snapshot {}",
                    path.display()
                );
                load_snapshot(ledger, &config, &path)
            }
            _ => Err(why),
        }
    });
    let (mut applied, from_snapshot) = match loaded {
        Ok(applied) => {
            let seq = applied.head.map_or(0, |h| h.seq);
            tracing::info!(
                seq,
                ms = started.elapsed().as_millis() as u64,
                "live projection: snapshot loaded"
            );
            (applied, true)
        }
        Err(why) => {
            tracing::info!("live projection: replaying the ledger from 0 ({why})");
            let applied = Applied {
                // The live projection forgets what no block can credit any more.
                projection: super::live_projection(config),
                head: None,
                prepared_times: Default::default(),
            };
            (applied, false)
        }
    };
    let from = applied.projection.next_seq();
    let mut tail = 0u64;
    if let Some(head) = ledger.head() {
        for record in ledger.read_range(from, head.seq + 1) {
            applied.apply(
                Some(ledger),
                &record.context("reading the ledger at start")?,
            )?;
            tail += 1;
        }
    }
    let ms = started.elapsed().as_millis() as u64;
    let seq = applied.head.map(|h| h.seq);
    if from_snapshot {
        tracing::info!(
            ?seq,
            snapshot_seq = from - 1,
            tail,
            ms,
            "live projection ready from the snapshot"
        );
    } else {
        tracing::info!(
            ?seq,
            records = tail,
            ms,
            "live projection ready by a full replay"
        );
    }
    let follow = FollowState {
        policy,
        since_snapshot: tail,
        last_snapshot: Instant::now(),
        last_write: Duration::ZERO,
        followed: 0,
        busy: Duration::ZERO,
    };
    Ok((applied, follow))
}

/// The snapshot, if it exists, is intact, and reflects a record of this very ledger.
pub(crate) fn load_snapshot(
    ledger: &Ledger,
    config: &ProjectionConfig,
    path: &std::path::Path,
) -> Result<Applied, String> {
    let started = Instant::now();
    let file = snapshot::read_at(path).map_err(|e| e.to_string())?;
    let read = started.elapsed();
    let projection = Projection::from_snapshot(file.projection())
        .map_err(|e| format!("the snapshot's projection cannot be used: {e}"))?;
    tracing::debug!(
        bytes = file.projection().len(),
        read_and_checksum_ms = read.as_millis() as u64,
        decode_ms = (started.elapsed() - read).as_millis() as u64,
        "live projection: snapshot read"
    );
    let SnapshotHeader {
        seq,
        hash,
        prepared_times,
    } = file.header;
    if projection.config() != config || !projection.is_forgetting() {
        return Err("the snapshot was taken with other projection settings".into());
    }
    if projection.next_seq() != seq + 1 {
        return Err(format!(
            "the snapshot's projection is at seq {}, its header says {seq}",
            projection.next_seq()
        ));
    }
    match ledger.head() {
        None => {
            return Err(format!(
                "the ledger is empty; the snapshot reflects record {seq}"
            ))
        }
        Some(head) if head.seq < seq => {
            return Err(format!(
                "the ledger ends at record {}, before the snapshot's record {seq}",
                head.seq
            ))
        }
        Some(_) => {}
    }
    let base = ledger.base().map_err(|e| e.to_string())?;
    if let Some(base) = base.filter(|b| seq < b.seq) {
        // The record it reflects was archived: it must be the one the base continues.
        if seq + 1 != base.seq || hash != base.prev_hash {
            return Err(format!(
                "the snapshot reflects record {seq}, archived away: the ledger starts at {} \
                 onto another record",
                base.seq
            ));
        }
        return Ok(Applied {
            projection,
            head: Some(ledger::Head { seq, hash }),
            prepared_times,
        });
    }
    let record = match ledger.read_range(seq, seq + 1).next() {
        Some(Ok(r)) => r,
        Some(Err(e)) => return Err(format!("cannot read the ledger's record {seq}: {e}")),
        None => return Err(format!("the ledger has no record {seq}")),
    };
    if record.hash != hash {
        return Err(format!(
            "the ledger's record {seq} is not the one the snapshot reflects (another ledger, or \
             one restored from an older copy)"
        ));
    }
    Ok(Applied {
        projection,
        head: Some(ledger::Head { seq, hash }),
        prepared_times,
    })
}

impl Live {
    /// Applies every record durable now, in chunks; returns how many. Blocking.
    pub fn catch_up(&self) -> anyhow::Result<u64> {
        let mut follow = self.follow.lock().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut follow)
    }

    fn catch_up_locked(&self, follow: &mut FollowState) -> anyhow::Result<u64> {
        let Some(head) = self.ledger.head() else {
            return Ok(0);
        };
        let from = self.read().projection.next_seq();
        if from > head.seq {
            return Ok(0);
        }
        let started = Instant::now();
        let mut records = self.ledger.read_range(from, head.seq + 1);
        let mut applied = 0u64;
        loop {
            let chunk = records
                .by_ref()
                .take(CHUNK)
                .collect::<Result<Vec<Record>, _>>()
                .context("reading the ledger's tail")?;
            let Some(last) = chunk.last().map(|r| r.seq) else {
                break;
            };
            let mut notes = Vec::new();
            {
                let wanted = self.events.wanted();
                let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
                for record in &chunk {
                    let before = wanted.then(|| events::before(&state, record));
                    if let Err(e) = state.apply(Some(&self.ledger), record) {
                        drop(state);
                        // What was applied before the failure is told all the same.
                        self.events.send_all(notes);
                        return Err(e);
                    }
                    if let Some(before) = before {
                        events::after(&state, record, before, &mut notes);
                    }
                }
            }
            self.applied.send_replace(Some(last));
            // Once the chunk is readable: a subscriber that reads on a notification sees it.
            self.events.send_all(notes);
            applied += chunk.len() as u64;
            follow.since_snapshot += chunk.len() as u64;
        }
        follow.followed += applied;
        follow.busy += started.elapsed();
        Ok(applied)
    }

    /// One round of the follower: catch up, then write a snapshot if one is due. Blocking.
    fn follow_round(&self) -> anyhow::Result<()> {
        let mut follow = self.follow.lock().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut follow)?;
        if follow.due() {
            self.write_snapshot(&mut follow)?;
        }
        Ok(())
    }

    /// Catches up and writes a snapshot now, whatever the policy says (before a prefix drop:
    /// the restart after it must not need a dropped record). Blocking. Returns its seq.
    pub fn snapshot_now(&self) -> anyhow::Result<Option<u64>> {
        let mut follow = self.follow.lock().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut follow)?;
        self.write_snapshot(&mut follow)?;
        Ok(self.read().head.map(|h| h.seq))
    }

    fn write_snapshot(&self, follow: &mut FollowState) -> anyhow::Result<()> {
        let started = Instant::now();
        let (header, bytes) = {
            let state = self.read();
            let Some(header) = state.snapshot_header() else {
                return Ok(());
            };
            (header, state.projection.snapshot()?)
        };
        snapshot::write(self.ledger.dir(), &header, &bytes).with_context(|| {
            format!(
                "cannot write the projection snapshot in {}",
                self.ledger.dir().display()
            )
        })?;
        follow.since_snapshot = 0;
        follow.last_snapshot = Instant::now();
        follow.last_write = started.elapsed();
        tracing::info!(
            seq = header.seq,
            bytes = bytes.len(),
            ms = follow.last_write.as_millis() as u64,
            "live projection snapshot written"
        );
        Ok(())
    }

    /// At a clean stop, once nothing appends any more: applies the tail and writes a snapshot
    /// if anything changed since the last one. Blocking.
    pub fn finish(&self) -> anyhow::Result<()> {
        let mut follow = self.follow.lock().unwrap_or_else(|p| p.into_inner());
        self.catch_up_locked(&mut follow)?;
        tracing::info!(
            records = follow.followed,
            busy_ms = follow.busy.as_millis() as u64,
            "live projection: records the follower applied while the pool ran"
        );
        if follow.since_snapshot > 0 {
            self.write_snapshot(&mut follow)?;
        }
        Ok(())
    }
}

/// Starts the follower task: it applies each new durable record until `shutdown` (or until the
/// ledger's writer is gone), retrying failed reads with a backoff.
pub fn spawn(live: Arc<Live>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut heads = live.ledger.subscribe();
        let every = live
            .follow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .policy
            .every;
        let mut backoff = Duration::from_millis(100);
        // On a full disk the error is logged once (the ledger logs it too), not every retry.
        let mut disk_full = false;
        loop {
            let started = tokio::time::Instant::now();
            heads.borrow_and_update();
            let round = {
                let live = live.clone();
                tokio::task::spawn_blocking(move || live.follow_round()).await
            };
            match round {
                Ok(Ok(())) => {
                    backoff = Duration::from_millis(100);
                    if std::mem::take(&mut disk_full) {
                        tracing::info!("live projection: disk space is back, following again");
                    }
                }
                Ok(Err(e)) => {
                    if is_disk_full(&e) {
                        if !std::mem::replace(&mut disk_full, true) {
                            tracing::error!(
                                "live projection: {e:#}; the disk is full: retried quietly until \
                                 it has room"
                            );
                        } else {
                            tracing::debug!("live projection: {e:#}");
                        }
                    } else {
                        tracing::error!(
                            "live projection: {e:#}; retrying in {} ms (shares are still recorded)",
                            backoff.as_millis()
                        );
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(e) => {
                    tracing::error!("live projection: the follower stopped: {e}");
                    break;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(started + PACE) => {}
                _ = shutdown.cancelled() => break,
            }
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    })
}

/// Whether `e` comes from a full disk (the snapshot's write, or the ledger's store reopening).
fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        }) || cause
            .downcast_ref::<ledger::LedgerError>()
            .is_some_and(ledger::LedgerError::is_disk_full)
    })
}
