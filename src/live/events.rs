//! What the follower tells the WebSocket subscriptions: new found blocks, block status changes
//! and payment events, each as a [`Notification`] of the record it comes from.
//!
//! The follower builds them while it applies a chunk (under the write lock, from the state right
//! after each record, only when someone subscribes), and sends them once the chunk is applied and
//! the lock released: a subscriber that reads the pool after a notification sees what it told.
//! Events that changed nothing (anomalies: a second verdict, a maturity of an unknown block)
//! are not sent. The channel is a `tokio::sync::broadcast` of [`CAPACITY`]: it never blocks the
//! follower; a subscriber that falls that far behind is dropped (its subscription ends with a
//! log line).

use super::reads::{block_summary, payment_info};
use super::views::ledger_head;
use super::Applied;
use ledger::Record;
use payout::api::operator::{
    BlockState, BlockStatusChange, BlockSummary, Notification, PaymentInfo,
};
use payout::api::LedgerHead;
use pool_core::{BlockId, Event};
use projections::BlockLife;
use tokio::sync::broadcast;

/// Notifications a subscriber may fall behind before it is dropped.
pub const CAPACITY: usize = 1024;

/// One notification of the follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveEvent {
    /// A block found (its `BlockFound` verdict, or a `BlockFound` without a candidate).
    Block(Notification<BlockSummary>),
    BlockStatus(Notification<BlockStatusChange>),
    Payment(Notification<PaymentInfo>),
}

/// The follower's sender (subscribers call [`Events::subscribe`]).
pub struct Events {
    sender: broadcast::Sender<LiveEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            sender: broadcast::Sender::new(CAPACITY),
        }
    }
}

impl Events {
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.sender.subscribe()
    }

    /// Whether anyone listens (the follower builds nothing otherwise).
    pub fn wanted(&self) -> bool {
        self.sender.receiver_count() > 0
    }

    /// Sends what a chunk produced (dropped silently when nobody listens any more).
    pub fn send_all(&self, events: Vec<LiveEvent>) {
        for e in events {
            let _ = self.sender.send(e);
        }
    }
}

/// What the follower notes of a record before applying it: the block's life before (to tell a
/// status change from an event that changed nothing).
pub fn before(state: &Applied, record: &Record) -> Option<BlockLife> {
    let id = block_of(&record.event)?;
    state.projection.block_entry(&id).map(|e| e.life)
}

/// The notifications of `record`, just applied to `state` (`life_before` from [`before`]).
pub fn after(
    state: &Applied,
    record: &Record,
    life_before: Option<BlockLife>,
    out: &mut Vec<LiveEvent>,
) {
    let here = || LedgerHead {
        seq: record.seq,
        hash: hex::encode(record.hash),
    };
    debug_assert_eq!(ledger_head(state.head), Some(here()));
    match &record.event {
        Event::PaymentPrepared(_)
        | Event::PaymentSigned(_)
        | Event::PaymentSent(_)
        | Event::PaymentConfirmed(_)
        | Event::PaymentFailed(_) => {
            let Some(id) = payment_of(&record.event) else {
                return;
            };
            match state.projection.payment_detail(id) {
                Some(d) if d.last_seq == record.seq => out.push(LiveEvent::Payment(Notification {
                    ledger: here(),
                    item: payment_info(state, d),
                })),
                _ => {}
            }
        }
        event => {
            let Some(id) = block_of(event) else {
                return;
            };
            let Some(entry) = state.projection.block_entry(&id) else {
                return;
            };
            let what = match event {
                Event::BlockFound(_) if entry.verdict_seq == Some(record.seq) => "found",
                Event::BlockRejected(_) if entry.verdict_seq == Some(record.seq) => "rejected",
                Event::BlockOrphaned(_) if life_before != Some(entry.life) => "orphaned",
                Event::BlockReinstated(_) if life_before != Some(entry.life) => "reinstated",
                Event::BlockMatured(_) if life_before != Some(entry.life) => "matured",
                _ => return,
            };
            let summary = block_summary(entry);
            out.push(LiveEvent::BlockStatus(Notification {
                ledger: here(),
                item: BlockStatusChange {
                    block_id: summary.block_id,
                    height: summary.height,
                    status: summary.status,
                    event: what.to_owned(),
                },
            }));
            if what == "found" {
                debug_assert_eq!(summary.status, BlockState::Immature);
                out.push(LiveEvent::Block(Notification {
                    ledger: here(),
                    item: summary,
                }));
            }
        }
    }
}

fn block_of(event: &Event) -> Option<BlockId> {
    Some(match event {
        Event::BlockFound(b) => b.block_id,
        Event::BlockRejected(b) => b.block_id,
        Event::BlockOrphaned(b) => b.block_id,
        Event::BlockReinstated(b) => b.block_id,
        Event::BlockMatured(b) => b.block_id,
        _ => return None,
    })
}

fn payment_of(event: &Event) -> Option<u64> {
    Some(match event {
        Event::PaymentPrepared(p) => p.payment_id,
        Event::PaymentSigned(p) => p.payment_id,
        Event::PaymentSent(p) => p.payment_id,
        Event::PaymentConfirmed(p) => p.payment_id,
        Event::PaymentFailed(p) => p.payment_id,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::event::{
        BlockCandidate, BlockFound, BlockMatured, BlockOrphaned, BlockReinstated, BlockRejected,
        PaymentOutput, PaymentPrepared, PaymentSent, PayoutAddress, WorkerName,
    };
    use pool_core::{Sats, Target};
    use projections::{PaymentStatus, Projection, ProjectionConfig};

    fn record(seq: u64, event: Event) -> Record {
        Record {
            seq,
            version: 1,
            time_ms: seq,
            event,
            hash: [seq as u8; 32],
        }
    }

    fn found(id: u8) -> Event {
        Event::BlockFound(BlockFound {
            height: 101,
            block_id: BlockId([id; 32]),
            reward: Sats(600),
            network_target: Target::MAX,
            finder: PayoutAddress("a".into()),
            worker: WorkerName("w".into()),
            time_ms: 3_000,
        })
    }

    /// Applies the records as the follower does and returns every notification.
    fn notifications(events: Vec<Event>) -> Vec<LiveEvent> {
        let mut state = Applied {
            projection: Projection::new(ProjectionConfig::default()),
            head: None,
            prepared_times: Default::default(),
        };
        let mut out = Vec::new();
        for (seq, e) in events.into_iter().enumerate() {
            let r = record(seq as u64, e);
            let life = before(&state, &r);
            state.apply(None, &r).unwrap();
            after(&state, &r, life, &mut out);
        }
        out
    }

    fn described(events: &[LiveEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                LiveEvent::Block(n) => format!("block {} at {}", n.item.height, n.ledger.seq),
                LiveEvent::BlockStatus(n) => {
                    format!("{} {:?} at {}", n.item.event, n.item.status, n.ledger.seq)
                }
                LiveEvent::Payment(n) => {
                    format!("payment {} {}", n.item.payment_id, n.item.status)
                }
            })
            .collect()
    }

    #[test]
    fn the_follower_notifies_what_changed_and_nothing_else() {
        let events = vec![
            Event::BlockCandidate(BlockCandidate {
                height: 101,
                block_id: BlockId([1; 32]),
                reward: Sats(600),
                network_target: Target::MAX,
                finder: PayoutAddress("a".into()),
                worker: WorkerName("w".into()),
                time_ms: 2_000,
                block: vec![],
            }),
            found(1),
            found(1), // a second verdict: an anomaly, no notification
            Event::BlockMatured(BlockMatured {
                block_id: BlockId([1; 32]),
                height: 101,
            }),
            Event::BlockMatured(BlockMatured {
                block_id: BlockId([1; 32]),
                height: 101,
            }), // already matured
            Event::PaymentPrepared(PaymentPrepared {
                payment_id: 0,
                outputs: vec![PaymentOutput {
                    address: PayoutAddress("a".into()),
                    amount: Sats(100),
                }],
            }),
            Event::PaymentSent(PaymentSent {
                payment_id: 0,
                txid: BlockId([9; 32]),
                network_fee: Sats(1),
            }),
            Event::PaymentSent(PaymentSent {
                payment_id: 0,
                txid: BlockId([9; 32]),
                network_fee: Sats(1),
            }), // out of order
        ];
        let out = notifications(events);
        assert_eq!(
            described(&out),
            vec![
                "found Immature at 1",
                "block 101 at 1",
                "matured Matured at 3",
                "payment 0 prepared",
                "payment 0 sent",
            ]
        );
        let LiveEvent::Payment(sent) = &out[4] else {
            panic!()
        };
        assert_eq!(sent.item.status, PaymentStatus::Sent);
        assert_eq!(sent.ledger.seq, 6);
        assert_eq!(sent.ledger.hash, hex::encode([6u8; 32]));
        assert_eq!(sent.item.prepared_ms, Some(5));
    }

    #[test]
    fn orphans_reinstatements_and_refusals_are_told() {
        let candidate = |id: u8| {
            Event::BlockCandidate(BlockCandidate {
                height: 100 + u64::from(id),
                block_id: BlockId([id; 32]),
                reward: Sats(600),
                network_target: Target::MAX,
                finder: PayoutAddress("a".into()),
                worker: WorkerName("w".into()),
                time_ms: 2_000,
                block: vec![],
            })
        };
        let events = vec![
            found(1), // no candidate: found where it stands
            Event::BlockOrphaned(BlockOrphaned {
                block_id: BlockId([1; 32]),
                height: 101,
            }),
            Event::BlockOrphaned(BlockOrphaned {
                block_id: BlockId([1; 32]),
                height: 101,
            }), // already orphaned
            Event::BlockReinstated(BlockReinstated {
                block_id: BlockId([1; 32]),
                height: 101,
            }),
            candidate(2),
            Event::BlockRejected(BlockRejected {
                height: 102,
                block_id: BlockId([2; 32]),
                reason: "bad-txns".into(),
                finder: PayoutAddress("a".into()),
                worker: WorkerName("w".into()),
                time_ms: 2_500,
            }),
            Event::BlockMatured(BlockMatured {
                block_id: BlockId([2; 32]),
                height: 102,
            }), // a refused candidate never matures
        ];
        assert_eq!(
            described(&notifications(events)),
            vec![
                "found Immature at 0",
                "block 101 at 0",
                "orphaned Orphaned at 1",
                "reinstated Immature at 3",
                "rejected Rejected at 5",
            ]
        );
    }
}
