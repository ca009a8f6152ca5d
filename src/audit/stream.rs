//! The stream check: the `StreamBatch` records of a scale-out core's ledger (docs/ledger.md,
//! "Stream batches").
//!
//! An `obtc-pool core` writes each batch an edge published as one `StreamBatch` record
//! followed, in the same append, by the batch's `events` records. Fed every record in order
//! ([`StreamCheck::apply`]), this check reports, per edge boot (`edge_id`, `boot_id`), its
//! batches, events and counters first..last, with any gap among the counters (a batch the edge
//! abandoned: its shares were never acknowledged to a miner, so a gap is information, not a
//! failure). Findings (failures) are:
//!
//! - a batch id applied twice (the same edge, boot and counter again; a counter that was
//!   missing and arrives after a higher one is *late*, reported as information: the core
//!   applies it);
//! - a `stream_seq` not above the previous batch's (the core applies in stream order);
//! - a `StreamBatch` whose `events` run past the ledger's end or over another `StreamBatch`;
//! - a batch event an edge never produces (only shares, `JobCreated`, `BlockCandidate`,
//!   `BlockFound` and `BlockRejected` are in a batch);
//! - a job or share in a batch whose `job_id` is not its edge's (`job_id >> 48 == edge_id`),
//!   and a share whose job (the latest `JobCreated` with its `job_id`, as the work check
//!   resolves it) came from another edge boot, or from outside the batches while the share is
//!   in one (or the other way round).
//!
//! A ledger without `StreamBatch` records (an all-in-one pool's) has nothing to report here.
//! Memory: one entry per distinct job id (its origin), one per edge boot, and each boot's gaps.

use super::Finding;
use pool_core::event::StreamBatch;
use pool_core::Event;
use serde::Serialize;
use std::collections::HashMap;

/// At most this many findings are kept; the rest are counted in
/// [`StreamReport::findings_omitted`].
pub const MAX_FINDINGS: usize = 1_000;

/// What the stream check saw.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// `StreamBatch` records.
    pub batches: u64,
    /// Records inside batches.
    pub events: u64,
    /// Every edge boot, by edge id, then in the order of their first batch in the ledger.
    pub boots: Vec<BootReport>,
    pub findings: Vec<Finding>,
    /// Findings past [`MAX_FINDINGS`], counted only.
    pub findings_omitted: u64,
}

/// One edge process's batches, as the core applied them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BootReport {
    pub edge_id: u16,
    pub boot_id: u64,
    /// The `StreamBatch` records of its first and last batch.
    pub first_seq: u64,
    pub last_seq: u64,
    pub batches: u64,
    pub events: u64,
    /// Shares (`ShareWithWork` or `ShareAccepted`) among its events.
    pub shares: u64,
    pub first_counter: u64,
    pub last_counter: u64,
    /// Counters never applied between 1 and `last_counter`: batches the edge abandoned (their
    /// submitters got an error, never `true`). A batch abandoned after the boot's last applied
    /// one leaves no trace.
    pub gaps: Vec<CounterGap>,
    /// How many counters the gaps hold.
    pub missing: u64,
    /// Batches applied after a higher counter of their boot (a missing one arriving after all:
    /// the core applies it), in ledger order.
    pub late: Vec<LateBatch>,
}

/// A batch applied after a higher counter of its boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LateBatch {
    pub counter: u64,
    /// Its `StreamBatch` record.
    pub seq: u64,
}

/// Counters `from..=to` of a boot that are not in the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CounterGap {
    pub from: u64,
    pub to: u64,
}

/// Where a record came from: the batch of an edge boot, or the core itself (`None`).
type Origin = Option<(u16, u64)>;

/// The batch whose events are being read.
struct OpenBatch {
    seq: u64,
    batch: StreamBatch,
    /// Its events not read yet.
    remaining: u32,
}

/// The running check.
#[derive(Default)]
pub struct StreamCheck {
    open: Option<OpenBatch>,
    /// The previous batch's stream sequence and record.
    last_stream_seq: Option<(u64, u64)>,
    boots: Vec<BootReport>,
    boot_index: HashMap<(u16, u64), usize>,
    /// The latest `JobCreated` of each job id: its record and origin.
    jobs: HashMap<u64, (u64, Origin)>,
    report: StreamReport,
}

/// The batch id as the edge sent it (`Nats-Msg-Id`, see `stream::message::BatchId`).
fn batch_id(b: &StreamBatch) -> String {
    format!("e{}-b{:016x}-c{}", b.edge_id, b.boot_id, b.counter)
}

fn describe(origin: Origin) -> String {
    match origin {
        Some((edge, boot)) => format!("a batch of edge {edge} boot {boot:016x}"),
        None => "no stream batch".to_owned(),
    }
}

/// Whether an edge can have published this event.
fn edge_event(event: &Event) -> bool {
    matches!(
        event,
        Event::ShareWithWork(_)
            | Event::ShareAccepted(_)
            | Event::JobCreated(_)
            | Event::BlockCandidate(_)
            | Event::BlockFound(_)
            | Event::BlockRejected(_)
    )
}

impl StreamCheck {
    /// Checks one record (call in sequence order).
    pub fn apply(&mut self, seq: u64, event: &Event) {
        if let Some(open) = &mut self.open {
            if open.remaining == 0 {
                self.open = None;
            } else {
                open.remaining -= 1;
            }
        }
        let inside = self.open.as_ref().map(|o| (o.seq, o.batch));
        match (event, inside) {
            (Event::StreamBatch(b), Some((at, over))) => {
                self.finding(
                    seq,
                    format!(
                        "StreamBatch {} inside the {} events of batch {} (record {at})",
                        batch_id(b),
                        over.events,
                        batch_id(&over)
                    ),
                );
                self.on_batch(seq, b);
            }
            (Event::StreamBatch(b), None) => self.on_batch(seq, b),
            (event, Some((at, batch))) => self.on_batch_event(seq, event, at, &batch),
            (event, None) => self.on_other(seq, event),
        }
    }

    pub fn finish(mut self) -> StreamReport {
        if let Some(open) = self.open.take() {
            if open.remaining > 0 {
                self.finding(
                    open.seq,
                    format!(
                        "batch {} says {} events follow, but the ledger ends {} records short",
                        batch_id(&open.batch),
                        open.batch.events,
                        open.remaining
                    ),
                );
            }
        }
        let mut boots = self.boots;
        // By edge, then in ledger order (stable sort: the boots were pushed in ledger order).
        boots.sort_by_key(|b| b.edge_id);
        for b in &mut boots {
            b.missing = b.gaps.iter().map(|g| g.to - g.from + 1).sum();
        }
        self.report.boots = boots;
        self.report
    }

    fn finding(&mut self, seq: u64, message: String) {
        if self.report.findings.len() < MAX_FINDINGS {
            self.report
                .findings
                .push(Finding::at("stream", seq, message));
        } else {
            self.report.findings_omitted += 1;
        }
    }

    fn on_batch(&mut self, seq: u64, b: &StreamBatch) {
        self.report.batches += 1;
        self.open = Some(OpenBatch {
            seq,
            batch: *b,
            remaining: b.events,
        });
        if let Some((last, at)) = self.last_stream_seq {
            if b.stream_seq <= last {
                self.finding(
                    seq,
                    format!(
                        "batch {} has stream_seq {}, not above the previous batch's {last} \
                         (record {at}): the core applies the stream in order",
                        batch_id(b),
                        b.stream_seq
                    ),
                );
            }
        }
        self.last_stream_seq = Some((b.stream_seq, seq));
        let key = (b.edge_id, b.boot_id);
        let Some(&i) = self.boot_index.get(&key) else {
            self.boot_index.insert(key, self.boots.len());
            let gaps = if b.counter > 1 {
                vec![CounterGap {
                    from: 1,
                    to: b.counter - 1,
                }]
            } else {
                Vec::new()
            };
            self.boots.push(BootReport {
                edge_id: b.edge_id,
                boot_id: b.boot_id,
                first_seq: seq,
                last_seq: seq,
                batches: 1,
                events: 0,
                shares: 0,
                first_counter: b.counter,
                last_counter: b.counter,
                gaps,
                missing: 0,
                late: Vec::new(),
            });
            return;
        };
        let boot = &mut self.boots[i];
        boot.batches += 1;
        let last = boot.last_counter;
        let last_seq = boot.last_seq;
        boot.last_seq = seq;
        if b.counter > last {
            if b.counter > last + 1 {
                boot.gaps.push(CounterGap {
                    from: last + 1,
                    to: b.counter - 1,
                });
            }
            boot.last_counter = b.counter;
            return;
        }
        // Not above the last counter: a batch that was missing arriving late (the core applies
        // it: information), or one applied already.
        let missing = boot
            .gaps
            .iter()
            .position(|g| (g.from..=g.to).contains(&b.counter));
        if let Some(g) = missing {
            let gap = boot.gaps.remove(g);
            let rest = [
                CounterGap {
                    from: gap.from,
                    to: b.counter.saturating_sub(1),
                },
                CounterGap {
                    from: b.counter + 1,
                    to: gap.to,
                },
            ];
            boot.gaps
                .splice(g..g, rest.into_iter().filter(|p| p.from <= p.to));
            boot.late.push(LateBatch {
                counter: b.counter,
                seq,
            });
            return;
        }
        let message = if b.counter == 0 {
            format!("batch {} has counter 0: an edge counts from 1", batch_id(b))
        } else {
            format!(
                "batch {} applied twice: its boot's counters {}..={last} (last at record \
                 {last_seq}) already include it",
                batch_id(b),
                boot.first_counter
            )
        };
        self.finding(seq, message);
    }

    fn on_batch_event(&mut self, seq: u64, event: &Event, at: u64, batch: &StreamBatch) {
        self.report.events += 1;
        if let Some(&i) = self.boot_index.get(&(batch.edge_id, batch.boot_id)) {
            self.boots[i].events += 1;
            if event.share().is_some() {
                self.boots[i].shares += 1;
            }
        }
        if !edge_event(event) {
            self.finding(
                seq,
                format!(
                    "a {} in batch {} (record {at}): an edge never publishes one",
                    event.kind(),
                    batch_id(batch)
                ),
            );
            return;
        }
        let origin = Some((batch.edge_id, batch.boot_id));
        match event {
            Event::JobCreated(job) => {
                if job.job_id >> 48 != u64::from(batch.edge_id) {
                    self.finding(
                        seq,
                        format!(
                            "job {} in batch {} of edge {}: its id is edge {}'s (job_id >> 48)",
                            job.job_id,
                            batch_id(batch),
                            batch.edge_id,
                            job.job_id >> 48
                        ),
                    );
                }
                self.jobs.insert(job.job_id, (seq, origin));
            }
            _ => {
                if let Some(share) = event.share() {
                    if share.job_id >> 48 != u64::from(batch.edge_id) {
                        self.finding(
                            seq,
                            format!(
                                "share on job {} in batch {} of edge {}: the job id is edge \
                                 {}'s (job_id >> 48)",
                                share.job_id,
                                batch_id(batch),
                                batch.edge_id,
                                share.job_id >> 48
                            ),
                        );
                    } else {
                        self.share_origin(seq, share.job_id, origin);
                    }
                }
            }
        }
    }

    fn on_other(&mut self, seq: u64, event: &Event) {
        match event {
            Event::JobCreated(job) => {
                self.jobs.insert(job.job_id, (seq, None));
            }
            _ => {
                if let Some(share) = event.share() {
                    self.share_origin(seq, share.job_id, None);
                }
            }
        }
    }

    /// A share's job must come from where the share came from. A share with no `JobCreated`
    /// before it is the work check's finding.
    fn share_origin(&mut self, seq: u64, job_id: u64, origin: Origin) {
        if let Some(&(job_seq, job_origin)) = self.jobs.get(&job_id) {
            if job_origin != origin {
                self.finding(
                    seq,
                    format!(
                        "share in {} on job {job_id}, whose latest JobCreated (record \
                         {job_seq}) is in {}",
                        describe(origin),
                        describe(job_origin)
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
