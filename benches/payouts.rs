//! Payout benchmarks: preparing one payment for 10,000 addresses from a projection of 1,000,000
//! shares, beside the plain fold of the same events, measured in the same run.
//!
//! The ledger: a PROP rule (1 % fee, miners pay network fees), 1,000,000 shares of 10,000
//! scattered addresses, a found block every 100,000 shares and its maturity 200,000 shares later
//! (the last ones at the end), and half way an earlier payout round: half of every payable
//! balance in payments of 500 addresses each (18 of them), signed, sent and confirmed through the
//! lane's check. At the end every address has a payable balance.
//!
//! Measured: (a) folding those events into a new projection; (b) preparing one payment for all
//! 10,000 miner addresses: `payable_balances()`, building the `PaymentPrepared`, `check_payment`
//! and `apply`; (c) `check_payment` alone for 1,000 and 10,000 outputs, to show its cost grows
//! with the outputs (`O(k log n)`), not with addresses × payments.
//!
//! Run: `cargo bench --bench payouts` (release). Targets: the prepare well under a second and
//! small beside the fold.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pool_core::event::{
    BlockFound, BlockMatured, NetworkFeePayer, PaymentConfirmed, PaymentOutput, PaymentPrepared,
    PaymentSent, PaymentSigned, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};
use projections::{PaymentCheck, Projection, ProjectionConfig};
use std::time::{Duration, Instant};

const ADDRESSES: u64 = 10_000;
const SHARES: u64 = 1_000_000;
const SHARES_PER_BLOCK: u64 = 100_000;

fn address(i: u64) -> PayoutAddress {
    PayoutAddress(format!("bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx", i))
}

fn fee_address() -> PayoutAddress {
    PayoutAddress("bcrt1qpoolfeexxxxxxxxxxxxxxxxxxxxxxxxxxxxxx".into())
}

/// Share targets of difficulty 1.000 to 1.999 and their works.
fn share_targets() -> Vec<(Target, Work)> {
    (0..1_000)
        .map(|k| {
            let t = Target::from_difficulty(1.0 + f64::from(k) / 1_000.0).unwrap();
            (t, t.work())
        })
        .collect()
}

fn share(i: u64, targets: &[(Target, Work)]) -> Event {
    // A cheap deterministic mix, so consecutive shares come from scattered miners.
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let (share_target, weight) = targets[((mixed >> 14) % targets.len() as u64) as usize];
    Event::ShareAccepted(ShareAccepted {
        address: address(mixed % ADDRESSES),
        worker: WorkerName(format!("rig{}", mixed % 3)),
        share_target,
        weight,
        job_id: i / 1_000,
        height: 1_000,
        network_target: Target::DIFF1,
        time_ms: 1_700_000_000_000 + i * 5,
    })
}

fn block_id(n: u64) -> BlockId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_le_bytes());
    BlockId(id)
}

fn found(n: u64) -> Event {
    Event::BlockFound(BlockFound {
        height: 1_000 + n,
        block_id: block_id(n),
        reward: Sats(312_500_000),
        network_target: Target::DIFF1,
        finder: address(n % ADDRESSES),
        worker: WorkerName("rig0".into()),
        time_ms: 1_700_000_000_000 + n,
    })
}

fn matured(n: u64) -> Event {
    Event::BlockMatured(BlockMatured {
        block_id: block_id(n),
        height: 1_000 + n,
    })
}

/// One payment for `payable` (address, amount) pairs, with id `payment_id`.
fn prepare(payment_id: u64, payable: &[(PayoutAddress, Sats)]) -> Event {
    Event::PaymentPrepared(PaymentPrepared {
        payment_id,
        outputs: payable
            .iter()
            .map(|(address, amount)| PaymentOutput {
                address: address.clone(),
                amount: *amount,
            })
            .collect(),
    })
}

/// Payable balances of the miners (the fee address is the operator's).
fn miners_payable(p: &Projection) -> Vec<(PayoutAddress, Sats)> {
    let fee = fee_address();
    p.payable_balances()
        .into_iter()
        .filter(|(a, _)| *a != fee)
        .collect()
}

/// Appends `e` to both the event list and the projection; payment events through the check.
fn push(events: &mut Vec<Event>, p: &mut Projection, e: Event) {
    if matches!(
        e,
        Event::PaymentPrepared(_)
            | Event::PaymentSigned(_)
            | Event::PaymentSent(_)
            | Event::PaymentConfirmed(_)
    ) {
        assert_eq!(p.check_payment(&e), Ok(PaymentCheck::Valid));
    }
    p.apply(events.len() as u64, &e).unwrap();
    events.push(e);
}

/// The ledger's events and the projection they fold into.
fn ledger() -> (Vec<Event>, Projection) {
    let targets = share_targets();
    let mut events = Vec::with_capacity(SHARES as usize + 200);
    let mut p = Projection::new(ProjectionConfig::default());
    push(
        &mut events,
        &mut p,
        Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Prop,
            fee_bps: 100,
            fee_address: fee_address(),
            network_fee_payer: NetworkFeePayer::Miners,
        }),
    );
    let blocks = SHARES / SHARES_PER_BLOCK;
    for i in 0..SHARES {
        push(&mut events, &mut p, share(i, &targets));
        if (i + 1) % SHARES_PER_BLOCK == 0 {
            let n = (i + 1) / SHARES_PER_BLOCK;
            push(&mut events, &mut p, found(n));
            if n > 2 {
                push(&mut events, &mut p, matured(n - 2));
            }
        }
        if i + 1 == SHARES / 2 {
            payout_round(&mut events, &mut p);
        }
    }
    for n in blocks - 1..=blocks {
        push(&mut events, &mut p, matured(n));
    }
    (events, p)
}

/// Half of every payable balance, in payments of 500 addresses, all confirmed.
fn payout_round(events: &mut Vec<Event>, p: &mut Projection) {
    let payable: Vec<(PayoutAddress, Sats)> = miners_payable(p)
        .into_iter()
        .map(|(a, s)| (a, Sats(s.0 / 2)))
        .filter(|(_, s)| s.0 > 0)
        .collect();
    for (k, chunk) in payable.chunks(500).enumerate() {
        let id = p.next_payment_id();
        let txid = block_id(1_000_000 + k as u64);
        let fee = Sats(50 * chunk.len() as u64);
        push(events, p, prepare(id, chunk));
        let signed = PaymentSigned {
            payment_id: id,
            txid,
            raw_tx: vec![0x02; 34 * chunk.len() + 200],
            network_fee: fee,
        };
        push(events, p, Event::PaymentSigned(signed));
        let sent = PaymentSent {
            payment_id: id,
            txid,
            network_fee: fee,
        };
        push(events, p, Event::PaymentSent(sent));
        let confirmed = PaymentConfirmed {
            payment_id: id,
            txid,
            height: 1_500,
        };
        push(events, p, Event::PaymentConfirmed(confirmed));
    }
}

/// Prepares one payment of every miner's whole payable balance: what the payout process and
/// the pool's lane do for it.
fn prepare_all(p: &mut Projection) -> usize {
    let payable = miners_payable(p);
    let e = prepare(p.next_payment_id(), &payable);
    assert_eq!(p.check_payment(&e), Ok(PaymentCheck::Valid));
    p.apply(p.next_seq(), &e).unwrap();
    payable.len()
}

fn fold(events: &[Event]) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for (seq, e) in events.iter().enumerate() {
        p.apply(seq as u64, e).unwrap();
    }
    p
}

fn payouts(c: &mut Criterion) {
    let (events, base) = ledger();
    assert!(base.anomalies().is_empty());
    let payable = miners_payable(&base);
    assert_eq!(
        payable.len() as u64,
        ADDRESSES,
        "every address has a payable balance"
    );
    println!(
        "ledger: {} events, {} payments before, {} addresses payable",
        events.len(),
        base.payments().len(),
        payable.len()
    );

    let mut group = c.benchmark_group("payouts");
    group.sample_size(10);
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("fold_1m_shares_10k_addresses", |b| b.iter(|| fold(&events)));
    group.throughput(Throughput::Elements(ADDRESSES));
    group.bench_function("prepare_payment_10k_addresses", |b| {
        b.iter_batched(
            || base.clone(),
            |mut p| {
                assert_eq!(prepare_all(&mut p) as u64, ADDRESSES);
                p
            },
            BatchSize::LargeInput,
        )
    });
    for k in [1_000usize, 10_000] {
        let e = prepare(base.next_payment_id(), &payable[..k]);
        group.throughput(Throughput::Elements(k as u64));
        group.bench_function(format!("check_payment_{k}_outputs"), |b| {
            b.iter(|| assert_eq!(base.check_payment(&e), Ok(PaymentCheck::Valid)))
        });
    }
    group.finish();

    // The same comparison outside criterion, alternating the two so a change in the machine's
    // load hits both alike (best of 3 each).
    let (mut folds, mut prepares) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        folds.push(timed(|| drop(fold(&events))));
        let mut p = base.clone();
        prepares.push(timed(|| {
            prepare_all(&mut p);
        }));
    }
    let best = |d: &[Duration]| d.iter().min().copied().unwrap_or_default();
    let (fold_t, prepare_t) = (best(&folds), best(&prepares));
    println!(
        "plain fold, {} events:          {:>9.1} ms",
        events.len(),
        ms(fold_t)
    );
    println!(
        "prepare for {ADDRESSES} addresses:      {:>9.1} ms",
        ms(prepare_t)
    );
    println!(
        "ratio prepare / fold: {:.4}",
        prepare_t.as_secs_f64() / fold_t.as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

criterion_group!(benches, payouts);
criterion_main!(benches);
