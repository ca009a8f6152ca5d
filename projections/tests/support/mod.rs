//! Event builders and invariant checks shared by the projection tests.
#![allow(dead_code)]

use pool_core::event::*;
use pool_core::{BlockId, Event, Sats, Target, Work};
use projections::{BlockStatus, Projection, ProjectionConfig};
use ruint::aliases::U256;
use std::collections::BTreeMap;

pub fn addr(name: &str) -> PayoutAddress {
    PayoutAddress(name.to_string())
}

pub fn block_id(n: u64) -> BlockId {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_le_bytes());
    BlockId(b)
}

/// A network target whose work is exactly `2^k`.
pub fn target_with_work_pow2(k: u32) -> Target {
    if k == 0 {
        return Target::MAX;
    }
    Target::from_u256((U256::from(1u8) << (256 - k as usize)) - U256::from(1u8))
}

pub fn share(address: &str, worker: &str, weight: u64, time_ms: u64) -> Event {
    Event::ShareAccepted(ShareAccepted {
        address: addr(address),
        worker: WorkerName(worker.to_string()),
        share_target: Target::MAX,
        weight: Work::from_u256(U256::from(weight)),
        job_id: 1,
        height: 100,
        network_target: Target::MAX,
        time_ms,
    })
}

/// Block `n` as its candidate records it (with a block body).
fn block_candidate(n: u64, reward: u64, finder: &str, network_target: Target) -> BlockCandidate {
    BlockCandidate {
        height: 100 + n,
        block_id: block_id(n),
        reward: Sats(reward),
        network_target,
        finder: addr(finder),
        worker: WorkerName("rig".into()),
        time_ms: 1_000 * n,
        block: vec![0xb0; 81],
    }
}

pub fn found(n: u64, reward: u64, finder: &str, network_target: Target) -> Event {
    Event::BlockFound(block_candidate(n, reward, finder, network_target).found(1_000 * n))
}

/// The candidate of block `n` (as [`found`] would record it).
pub fn candidate(n: u64, reward: u64, finder: &str, network_target: Target) -> Event {
    Event::BlockCandidate(block_candidate(n, reward, finder, network_target))
}

/// The node's refusal of block `n`.
pub fn rejected(n: u64, reason: &str, finder: &str) -> Event {
    let c = block_candidate(n, 0, finder, Target::MAX);
    Event::BlockRejected(c.rejected(reason.into(), 1_000 * n))
}

pub fn orphaned(n: u64) -> Event {
    Event::BlockOrphaned(BlockOrphaned {
        block_id: block_id(n),
        height: 100 + n,
    })
}

pub fn reinstated(n: u64) -> Event {
    Event::BlockReinstated(BlockReinstated {
        block_id: block_id(n),
        height: 100 + n,
    })
}

pub fn matured(n: u64) -> Event {
    Event::BlockMatured(BlockMatured {
        block_id: block_id(n),
        height: 100 + n,
    })
}

pub fn rule(scheme: PayoutScheme, fee_bps: u16, payer: NetworkFeePayer) -> Event {
    Event::PayoutRuleSet(PayoutRule {
        scheme,
        fee_bps,
        fee_address: addr("pool-fee"),
        network_fee_payer: payer,
    })
}

pub fn pplns(numerator: u32, denominator: u32) -> PayoutScheme {
    PayoutScheme::Pplns {
        window_numerator: numerator,
        window_denominator: denominator,
    }
}

pub fn prepared(id: u64, outputs: &[(&str, u64)]) -> Event {
    Event::PaymentPrepared(PaymentPrepared {
        payment_id: id,
        outputs: outputs
            .iter()
            .map(|(a, s)| PaymentOutput {
                address: addr(a),
                amount: Sats(*s),
            })
            .collect(),
    })
}

/// The txid the builders give payment `id`'s transaction.
pub fn txid(id: u64) -> Txid {
    block_id(1_000_000 + id)
}

/// Payment `id` signed: its transaction ([`txid`]) pays `fee`.
pub fn signed(id: u64, fee: u64) -> Event {
    Event::PaymentSigned(PaymentSigned {
        payment_id: id,
        txid: txid(id),
        raw_tx: vec![0x02, 0x00, 0x00, 0x00, id as u8],
        network_fee: Sats(fee),
    })
}

pub fn failed_because(id: u64, reason: &str) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: id,
        reason: reason.into(),
    })
}

pub fn sent(id: u64, fee: u64) -> Event {
    Event::PaymentSent(PaymentSent {
        payment_id: id,
        txid: block_id(1_000_000 + id),
        network_fee: Sats(fee),
    })
}

pub fn confirmed(id: u64) -> Event {
    Event::PaymentConfirmed(PaymentConfirmed {
        payment_id: id,
        txid: block_id(1_000_000 + id),
        height: 500,
    })
}

pub fn failed(id: u64) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: id,
        reason: "dropped".into(),
    })
}

/// Block `n`'s credits by address name.
pub fn credits(p: &Projection, n: u64) -> BTreeMap<String, u64> {
    p.block(&block_id(n))
        .unwrap()
        .credits
        .into_iter()
        .map(|(a, s)| (a.0, s.0))
        .collect()
}

pub fn map(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(a, s)| (a.to_string(), *s)).collect()
}

pub fn replay(events: &[Event]) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for (seq, e) in events.iter().enumerate() {
        p.apply(seq as u64, e).unwrap();
    }
    p
}

/// Folding `events` gives the same state bytes after every event as the whole-ledger walk of
/// PROP rounds the fold replaced ([`Projection::with_full_round_walk`]).
pub fn assert_same_as_full_round_walk(events: &[Event]) {
    let mut fold = Projection::new(ProjectionConfig::default());
    let mut oracle = Projection::with_full_round_walk(ProjectionConfig::default());
    for (seq, e) in events.iter().enumerate() {
        fold.apply(seq as u64, e).unwrap();
        oracle.apply(seq as u64, e).unwrap();
        assert_eq!(fold.blocks(), oracle.blocks(), "after {seq} {e:?}");
        let same = fold.state_bytes().unwrap() == oracle.state_bytes().unwrap();
        assert!(same, "state bytes differ after {seq} {e:?}");
    }
}

/// Credits of each block sum to reward - fee, and over all addresses the balances (debts
/// included, network fees booked) sum to the rewards of the blocks that are not orphaned.
pub fn assert_conserved(p: &Projection) {
    let mut rewards: i128 = 0;
    for b in p.blocks() {
        let credited: u64 = b.credits.values().map(|s| s.0).sum();
        assert_eq!(credited + b.fee.0, b.reward.0, "block {}", b.block_id);
        if b.status != BlockStatus::Orphaned {
            rewards += i128::from(b.reward.0);
        }
    }
    let held: i128 = p.balances().values().map(|b| b.total_credited()).sum();
    assert_eq!(held, rewards);
    let totals = p.pool_totals();
    assert_eq!(i128::from(totals.rewards.0), rewards);
    for b in p.balances().values() {
        assert!(b.payable.0 == 0 || b.debt.0 == 0);
    }
}
