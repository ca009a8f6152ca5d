//! Shared helpers of the ledger integration tests: fixture events of every variant, proptest
//! strategies for arbitrary events, and direct edits of stored batches (for tampering tests).
#![allow(dead_code)]

use ledger::record::{batch_key, decode_batch, encode_batch, RawRecord};
use pool_core::event::{
    BlockCandidate, BlockFound, BlockMatured, BlockOrphaned, BlockReinstated, BlockRejected,
    JobCreated, LedgerAnchor, NetworkFeePayer, PaymentConfirmed, PaymentFailed, PaymentOutput,
    PaymentPrepared, PaymentSent, PaymentSigned, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, ShareWithWork, ShareWork, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target};
use proptest::prelude::*;
use std::path::Path;

pub fn share(n: u64) -> Event {
    let share_target = Target::from_compact(0x1d00ffff).unwrap();
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress("mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef".into()),
        worker: WorkerName(format!("rig{}", n % 3)),
        share_target,
        weight: share_target.work(),
        job_id: n,
        height: 100 + n,
        network_target: Target::from_compact(0x207fffff).unwrap(),
        time_ms: 1_700_000_000_000 + n,
    })
}

/// A deterministic mix of every `Event` variant, `n` events long (cycles through variants).
pub fn fixture_events(n: u64) -> Vec<Event> {
    (0..n).map(fixture_event).collect()
}

pub fn fixture_event(n: u64) -> Event {
    let block_id = BlockId([n as u8; 32]);
    let finder = PayoutAddress("bcrt1qfinder".into());
    let worker = WorkerName("w".into());
    match n % 11 {
        0 => share(n),
        1 => Event::BlockFound(BlockFound {
            height: n,
            block_id,
            reward: Sats(5_000_000_000 - n),
            network_target: Target::from_compact(0x207fffff).unwrap(),
            finder,
            worker,
            time_ms: 1_700_000_000_000 + n,
        }),
        2 => Event::BlockRejected(BlockRejected {
            height: n,
            block_id,
            reason: "high-hash".into(),
            finder,
            worker,
            time_ms: 1_700_000_000_000 + n,
        }),
        3 => Event::BlockOrphaned(BlockOrphaned {
            block_id,
            height: n,
        }),
        4 => Event::BlockReinstated(BlockReinstated {
            block_id,
            height: n,
        }),
        5 => Event::BlockMatured(BlockMatured {
            block_id,
            height: n,
        }),
        6 => Event::PayoutRuleSet(PayoutRule {
            scheme: match n % 3 {
                0 => PayoutScheme::Pplns {
                    window_numerator: 2,
                    window_denominator: 1,
                },
                1 => PayoutScheme::Prop,
                _ => PayoutScheme::Solo,
            },
            fee_bps: 100,
            fee_address: PayoutAddress("bcrt1qfee".into()),
            network_fee_payer: if n % 2 == 0 {
                NetworkFeePayer::Pool
            } else {
                NetworkFeePayer::Miners
            },
        }),
        7 => Event::PaymentPrepared(PaymentPrepared {
            payment_id: n,
            outputs: vec![
                PaymentOutput {
                    address: PayoutAddress("bcrt1qa".into()),
                    amount: Sats(1_000 + n),
                },
                PaymentOutput {
                    address: PayoutAddress("bcrt1qb".into()),
                    amount: Sats(2_000 + n),
                },
            ],
        }),
        8 => Event::PaymentSent(PaymentSent {
            payment_id: n,
            txid: block_id,
            network_fee: Sats(141),
        }),
        9 => Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: n,
            txid: block_id,
            height: n,
        }),
        _ => Event::PaymentFailed(PaymentFailed {
            payment_id: n,
            reason: format!("dropped {n}"),
        }),
    }
}

fn arb_address() -> impl Strategy<Value = PayoutAddress> {
    "[a-zA-Z0-9]{0,40}".prop_map(PayoutAddress)
}

fn arb_worker() -> impl Strategy<Value = WorkerName> {
    "\\PC{0,12}".prop_map(WorkerName)
}

fn arb_target() -> impl Strategy<Value = Target> {
    any::<[u8; 32]>().prop_map(Target::from_be_bytes)
}

fn arb_block_id() -> impl Strategy<Value = BlockId> {
    any::<[u8; 32]>().prop_map(BlockId)
}

fn arb_sats() -> impl Strategy<Value = Sats> {
    any::<u64>().prop_map(Sats)
}

/// Any accepted share (its weight its target's work).
pub fn arb_share() -> impl Strategy<Value = ShareAccepted> {
    (
        arb_address(),
        arb_worker(),
        arb_target(),
        any::<u64>(),
        any::<u64>(),
        arb_target(),
        any::<u64>(),
    )
        .prop_map(
            |(address, worker, share_target, job_id, height, network_target, time_ms)| {
                ShareAccepted {
                    address,
                    worker,
                    share_target,
                    weight: share_target.work(),
                    job_id,
                    height,
                    network_target,
                    time_ms,
                }
            },
        )
}

/// Any share's work (extranonces of any length, empty included).
pub fn arb_share_work() -> impl Strategy<Value = ShareWork> {
    (
        prop::collection::vec(any::<u8>(), 0..9),
        prop::collection::vec(any::<u8>(), 0..17),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(extranonce1, extranonce2, ntime, nonce, version)| ShareWork {
                extranonce1,
                extranonce2,
                ntime,
                nonce,
                version,
            },
        )
}

/// Any job (coinbase halves and merkle branch of any length, with or without an anchor).
pub fn arb_job() -> impl Strategy<Value = JobCreated> {
    (
        (any::<u64>(), any::<u64>(), any::<[u8; 32]>()),
        prop::collection::vec(any::<u8>(), 0..120),
        prop::collection::vec(any::<u8>(), 0..200),
        prop::collection::vec(any::<[u8; 32]>(), 0..14),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        prop::option::of(
            (any::<u64>(), any::<[u8; 32]>()).prop_map(|(seq, hash)| LedgerAnchor { seq, hash }),
        ),
    )
        .prop_map(
            |(
                (job_id, height, prev),
                coinbase1,
                coinbase2,
                merkle_branch,
                (version, bits, ntime),
                anchor,
            )| JobCreated {
                job_id,
                height,
                prev_hash: BlockId(prev),
                coinbase1,
                coinbase2,
                merkle_branch,
                version,
                bits,
                ntime,
                anchor,
            },
        )
}

/// Any event, every variant reachable.
pub fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        arb_share().prop_map(Event::ShareAccepted),
        (arb_share(), arb_share_work())
            .prop_map(|(share, work)| Event::ShareWithWork(ShareWithWork { share, work })),
        arb_job().prop_map(Event::JobCreated),
        (
            any::<u64>(),
            arb_block_id(),
            prop::collection::vec(any::<u8>(), 0..120),
            arb_sats()
        )
            .prop_map(|(payment_id, txid, raw_tx, network_fee)| {
                Event::PaymentSigned(PaymentSigned {
                    payment_id,
                    txid,
                    raw_tx,
                    network_fee,
                })
            }),
        (
            any::<u64>(),
            arb_block_id(),
            arb_sats(),
            arb_target(),
            arb_address(),
            arb_worker(),
            any::<u64>()
        )
            .prop_map(
                |(height, block_id, reward, network_target, finder, worker, time_ms)| {
                    Event::BlockFound(BlockFound {
                        height,
                        block_id,
                        reward,
                        network_target,
                        finder,
                        worker,
                        time_ms,
                    })
                }
            ),
        (
            any::<u64>(),
            arb_block_id(),
            "\\PC{0,30}",
            arb_address(),
            arb_worker(),
            any::<u64>()
        )
            .prop_map(|(height, block_id, reason, finder, worker, time_ms)| {
                Event::BlockRejected(BlockRejected {
                    height,
                    block_id,
                    reason,
                    finder,
                    worker,
                    time_ms,
                })
            }),
        (
            (any::<u64>(), arb_block_id(), arb_sats(), arb_target()),
            (arb_address(), arb_worker(), any::<u64>()),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(
                |((height, block_id, reward, network_target), (finder, worker, time_ms), block)| {
                    Event::BlockCandidate(BlockCandidate {
                        height,
                        block_id,
                        reward,
                        network_target,
                        finder,
                        worker,
                        time_ms,
                        block,
                    })
                }
            ),
        (arb_block_id(), any::<u64>()).prop_map(|(block_id, height)| {
            Event::BlockOrphaned(BlockOrphaned { block_id, height })
        }),
        (arb_block_id(), any::<u64>()).prop_map(|(block_id, height)| {
            Event::BlockReinstated(BlockReinstated { block_id, height })
        }),
        (arb_block_id(), any::<u64>()).prop_map(|(block_id, height)| {
            Event::BlockMatured(BlockMatured { block_id, height })
        }),
        (
            prop_oneof![
                (any::<u32>(), any::<u32>()).prop_map(|(window_numerator, window_denominator)| {
                    PayoutScheme::Pplns {
                        window_numerator,
                        window_denominator,
                    }
                }),
                Just(PayoutScheme::Prop),
                Just(PayoutScheme::Solo),
            ],
            any::<u16>(),
            arb_address(),
            prop_oneof![Just(NetworkFeePayer::Pool), Just(NetworkFeePayer::Miners)]
        )
            .prop_map(|(scheme, fee_bps, fee_address, network_fee_payer)| {
                Event::PayoutRuleSet(PayoutRule {
                    scheme,
                    fee_bps,
                    fee_address,
                    network_fee_payer,
                })
            }),
        (
            any::<u64>(),
            prop::collection::vec(
                (arb_address(), arb_sats())
                    .prop_map(|(address, amount)| PaymentOutput { address, amount }),
                0..5
            )
        )
            .prop_map(|(payment_id, outputs)| {
                Event::PaymentPrepared(PaymentPrepared {
                    payment_id,
                    outputs,
                })
            }),
        (any::<u64>(), arb_block_id(), arb_sats()).prop_map(|(payment_id, txid, network_fee)| {
            Event::PaymentSent(PaymentSent {
                payment_id,
                txid,
                network_fee,
            })
        }),
        (any::<u64>(), arb_block_id(), any::<u64>()).prop_map(|(payment_id, txid, height)| {
            Event::PaymentConfirmed(PaymentConfirmed {
                payment_id,
                txid,
                height,
            })
        }),
        (any::<u64>(), "\\PC{0,30}").prop_map(|(payment_id, reason)| {
            Event::PaymentFailed(PaymentFailed { payment_id, reason })
        }),
    ]
}

/// Rewrites the stored batch under `key` of a closed ledger in `dir`, bypassing the ledger
/// (hashes are kept as stored, so the edit is what verification must catch).
pub fn edit_batch(dir: &Path, key: u64, edit: impl FnOnce(&mut Vec<RawRecord>)) {
    let db = ledger::open_sled_dir(dir).unwrap();
    let tree = db.open_tree(ledger::BATCH_TREE).unwrap();
    let value = tree
        .get(batch_key(key))
        .unwrap()
        .expect("no batch under key");
    let mut records = decode_batch(&value).unwrap();
    edit(&mut records);
    tree.insert(batch_key(key), encode_batch(&records)).unwrap();
    db.flush().unwrap();
}

/// Re-encodes the chunk (format 2) stored under `key` of a closed ledger in `dir` with its
/// records edited, keeping its stored previous and last hashes (so the edit is what
/// verification must catch).
pub fn edit_chunk(dir: &Path, key: u64, edit: impl FnOnce(&mut Vec<RawRecord>)) {
    let db = ledger::open_sled_dir(dir).unwrap();
    let tree = db.open_tree(ledger::BATCH_TREE).unwrap();
    let value = tree
        .get(batch_key(key))
        .unwrap()
        .expect("no value under key");
    let header = ledger::chunk::ChunkHeader::parse(&value).expect("not a chunk");
    let mut records = decode_batch(&value).unwrap();
    let last_hash = header.last_hash;
    edit(&mut records);
    if let Some(last) = records.last_mut() {
        last.hash = last_hash;
    }
    let chunk = ledger::chunk::encode(&records, &header.prev_hash).unwrap();
    tree.insert(batch_key(key), chunk).unwrap();
    db.flush().unwrap();
}

/// Edits the stored tree itself (delete or swap whole batches).
pub fn edit_tree(dir: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = ledger::open_sled_dir(dir).unwrap();
    let tree = db.open_tree(ledger::BATCH_TREE).unwrap();
    edit(&tree);
    db.flush().unwrap();
}

/// Runs the real `obtc-pool` binary.
pub fn obtc_pool(args: &[&str]) -> std::process::Output {
    obtc_pool_with_env(args, &[])
}

/// [`obtc_pool`] with extra environment variables.
pub fn obtc_pool_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}
