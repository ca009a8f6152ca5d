//! What an audit costs beside `ledger verify`, in one run on one generated ledger.
//!
//! Writes a ledger of `AUDIT_BENCH_SHARES` shares (default 1,000,000) as the pool now writes
//! them: a `JobCreated` every `AUDIT_BENCH_JOB_EVERY` shares (default 1,000; a coinbase that
//! pays the pool's P2PKH script and carries the ledger anchor, a 10-hash merkle branch: a block
//! of ~1,000 transactions), then `ShareWithWork` records on it (200 addresses, 2 workers each,
//! every header distinct and ground to meet its share target on `bsv-regtest`'s SHA-256d), a
//! found block that matures every 100,000 shares. Then, on that ledger:
//! 1. `ledger verify` (`Ledger::verify`: every record's chain hash and that its event decodes);
//! 2. `ledger export --data` to a file (`obtc_pool::audit` export), and its size per record;
//! 3. `audit --data` (chain, replay, work checks: every header rebuilt and hashed);
//! 4. `audit --export` of the file from (2) (the same, plus each line's JSON checked against its
//!    bytes).
//!
//! Each as records per second. `AUDIT_BENCH_DIR=PATH` keeps the ledger there (reused when it
//! has records).
//!
//! Run: `cargo bench --bench audit` (release; ~1 minute and ~0.5 GB of disk at 1 M shares).

use ledger::Ledger;
use obtc_pool::audit;
use pool_core::anchor::anchor_script;
use pool_core::chain::Chain;
use pool_core::event::{
    BlockFound, BlockMatured, JobCreated, LedgerAnchor, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, ShareWithWork, ShareWork, WorkerName,
};
use pool_core::merkle::root_from_branch;
use pool_core::pow::sha256d_header;
use pool_core::share::{build_header, coinbase_txid};
use pool_core::{BlockId, Event, Sats, Target};
use std::path::Path;
use std::time::{Duration, Instant};

const ADDRESSES: u64 = 200;
const BLOCK_EVERY: u64 = 100_000;
/// The pool's payout address on bsv-regtest (a P2PKH address of the regtest prefix).
const POOL_ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const POOL_TAG: &[u8] = b"/obtc-pool/";
/// bsv-regtest's bits: about every second hash meets its target, so grinding is cheap.
const BITS: u32 = 0x207f_ffff;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn address(i: u64) -> PayoutAddress {
    PayoutAddress(format!("bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx", i))
}

fn pool_script() -> Vec<u8> {
    pool_core::parse_payout_address(POOL_ADDRESS, Chain::BsvRegtest.params())
        .expect("the bench's pool address")
        .script_pubkey
}

fn write_output(buf: &mut Vec<u8>, value: u64, script: &[u8]) {
    buf.extend_from_slice(&value.to_le_bytes());
    buf.push(script.len() as u8);
    buf.extend_from_slice(script);
}

/// A job as the pool builds it: BIP34 height, tag, 4+4 extranonce bytes; the pool's output and
/// the anchor.
fn job(job_id: u64, height: u64, anchor: Option<LedgerAnchor>, script: &[u8]) -> JobCreated {
    let height_push = stratum::job::bip34_height(height);
    let mut coinbase1 = Vec::new();
    coinbase1.extend_from_slice(&1u32.to_le_bytes());
    coinbase1.push(1);
    coinbase1.extend_from_slice(&[0u8; 32]);
    coinbase1.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
    coinbase1.push((height_push.len() + POOL_TAG.len() + 8) as u8);
    coinbase1.extend_from_slice(&height_push);
    coinbase1.extend_from_slice(POOL_TAG);
    let mut coinbase2 = Vec::new();
    coinbase2.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
    coinbase2.push(1 + u8::from(anchor.is_some()));
    write_output(&mut coinbase2, 5_000_000_000, script);
    if let Some(a) = &anchor {
        write_output(&mut coinbase2, 0, &anchor_script(a));
    }
    coinbase2.extend_from_slice(&0u32.to_le_bytes());
    let mut prev = [0u8; 32];
    prev[..8].copy_from_slice(&height.to_le_bytes());
    JobCreated {
        job_id,
        height,
        prev_hash: BlockId(prev),
        coinbase1,
        coinbase2,
        merkle_branch: (0..10u8)
            .map(|k| [k.wrapping_add(job_id as u8); 32])
            .collect(),
        version: 0x2000_0000,
        bits: BITS,
        ntime: 1_700_000_000 + job_id as u32,
        anchor,
    }
}

/// Share `n` on `job`, its nonce ground until the header meets the share target.
fn share(n: u64, job: &JobCreated, target: &Target) -> Event {
    let mixed = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let miner = mixed % ADDRESSES;
    let extranonce1 = ((miner as u32) * 2 + (mixed >> 10) as u32 % 2).to_be_bytes();
    let extranonce2 = (n as u32).to_be_bytes();
    let txid = coinbase_txid(&job.coinbase1, &extranonce1, &extranonce2, &job.coinbase2);
    let root = root_from_branch(&txid, &job.merkle_branch);
    let mut nonce = 0u32;
    while !target.is_met_by(&sha256d_header(&build_header(
        job.version,
        &job.prev_hash.0,
        &root,
        job.ntime,
        job.bits,
        nonce,
    ))) {
        nonce += 1;
    }
    Event::ShareWithWork(ShareWithWork {
        share: ShareAccepted {
            address: address(miner),
            worker: WorkerName(format!("rig{}", (mixed >> 10) % 2)),
            share_target: *target,
            weight: target.work(),
            job_id: job.job_id,
            height: job.height,
            network_target: *target,
            time_ms: 1_700_000_000_000 + n,
        },
        work: ShareWork {
            extranonce1: extranonce1.to_vec(),
            extranonce2: extranonce2.to_vec(),
            ntime: job.ntime,
            nonce,
            version: job.version,
        },
    })
}

fn block(n: u64, target: &Target) -> [Event; 2] {
    let block_id = BlockId([(n % 251) as u8 + 1; 32]);
    let height = 1_000 + n;
    [
        Event::BlockFound(BlockFound {
            height,
            block_id,
            reward: Sats(5_000_000_000),
            network_target: *target,
            finder: address(n % ADDRESSES),
            worker: WorkerName("rig0".into()),
            time_ms: 1_700_000_000_000 + n,
        }),
        Event::BlockMatured(BlockMatured { block_id, height }),
    ]
}

/// Appends `shares` shares on jobs of `job_every` shares each; returns the time it took.
fn write_ledger(ledger: &Ledger, shares: u64, job_every: u64) -> Duration {
    let target = Target::from_compact(BITS).expect("constant bits");
    let script = pool_script();
    let started = Instant::now();
    let rule = Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 2,
            window_denominator: 1,
        },
        fee_bps: 100,
        fee_address: PayoutAddress(POOL_ADDRESS.into()),
        network_fee_payer: pool_core::event::NetworkFeePayer::Pool,
    });
    ledger.append_blocking(rule).expect("rule");
    let mut n = 0;
    let mut job_id = 0;
    while n < shares {
        job_id += 1;
        let anchor = ledger.head().map(|h| LedgerAnchor {
            seq: h.seq,
            hash: h.hash,
        });
        let j = job(job_id, 1_000 + n / BLOCK_EVERY, anchor, &script);
        let end = (n + job_every).min(shares);
        let mut batch = Vec::with_capacity((end - n) as usize + 3);
        batch.push(Event::JobCreated(j.clone()));
        for i in n..end {
            batch.push(share(i, &j, &target));
            if (i + 1) % BLOCK_EVERY == 0 {
                batch.extend(block(i / BLOCK_EVERY, &target));
            }
        }
        ledger.append_batch_blocking(batch).expect("append");
        n = end;
    }
    started.elapsed()
}

fn rate(records: u64, d: Duration) -> String {
    format!(
        "{:>8.0} ms  {:>9.0} records/s",
        d.as_secs_f64() * 1e3,
        records as f64 / d.as_secs_f64()
    )
}

/// How long `d` took against the `ledger verify` run.
fn vs(d: Duration, verify: Duration) -> String {
    format!(
        "{:.1}x verify's time",
        d.as_secs_f64() / verify.as_secs_f64()
    )
}

fn main() {
    let shares = env_u64("AUDIT_BENCH_SHARES", 1_000_000);
    let job_every = env_u64("AUDIT_BENCH_JOB_EVERY", 1_000).max(1);
    let kept = std::env::var("AUDIT_BENCH_DIR").ok();
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = kept
        .as_deref()
        .map_or(temp.path().join("ledger"), |d| Path::new(d).to_path_buf());

    let ledger = Ledger::open(&dir).expect("open ledger");
    if ledger.head().is_none() {
        let took = write_ledger(&ledger, shares, job_every);
        println!(
            "wrote {shares} ShareWithWork shares (a JobCreated every {job_every}) in {:.1} s",
            took.as_secs_f64()
        );
    } else {
        println!("reusing the ledger in {}", dir.display());
    }
    // As a pool that ran a while has it: every full run of records compacted into chunks.
    let compacted = ledger.compact().expect("compact");
    println!(
        "compacted: {} chunks of {} records",
        compacted.chunks, compacted.records
    );
    ledger.close_blocking();

    let t = Instant::now();
    let ledger = Ledger::open_read_only(&dir).expect("open read-only");
    let report = ledger.verify().expect("the generated ledger verifies");
    let verify = t.elapsed();
    let records = report.records;
    println!("{records} records");
    println!("ledger verify          {}", rate(records, verify));

    let export_path = temp.path().join("ledger.export.jsonl");
    let t = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(&export_path).expect("export"));
    let written = audit::export::write_ledger(&ledger, &mut out).expect("export");
    std::io::Write::flush(&mut out).expect("export flush");
    drop(out);
    let export = t.elapsed();
    drop(ledger);
    println!(
        "ledger export --data   {}   {}; {:.0} bytes/record, {:.1} MB",
        rate(written.records, export),
        vs(export, verify),
        written.bytes as f64 / written.records as f64,
        written.bytes as f64 / 1e6
    );

    let chain = Chain::BsvRegtest.params();
    let options = audit::AuditOptions {
        pool: Some(audit::PoolIdentity {
            chain,
            address: POOL_ADDRESS.into(),
            payout_script: pool_script(),
            tag: POOL_TAG.to_vec(),
        }),
        node: None,
        check_anchors: false,
    };
    let sources = [
        (
            "audit --data",
            audit::source::Source::Data {
                dir: dir.clone(),
                archives: Vec::new(),
            },
        ),
        (
            "audit --export",
            audit::source::Source::Export(export_path.clone()),
        ),
    ];
    for (name, source) in &sources {
        let t = Instant::now();
        let report = audit::run_audit(source, &options).expect("audit");
        let took = t.elapsed();
        assert!(report.pass, "{name}: {}", report.verdict);
        println!(
            "{name:<22} {}   {}; {}",
            rate(records, took),
            vs(took, verify),
            report.verdict
        );
    }
    // Once more, now that every reader has had the files in the page cache.
    let t = Instant::now();
    let again = Ledger::open_read_only(&dir)
        .expect("open read-only")
        .verify()
        .expect("verifies");
    println!(
        "ledger verify (again)  {}",
        rate(again.records, t.elapsed())
    );
}
