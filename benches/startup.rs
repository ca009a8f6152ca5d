//! Start-up of the pool's live projection as the ledger grows, and the ledger's bytes per share.
//!
//! Writes a ledger of `STARTUP_BENCH_SHARES` shares (default 10,000,000: 1,000 addresses with
//! 4 workers each, scattered, difficulty 1.000-1.999, a found block that matures every 1,000,000
//! shares), with `append_batch` as fast as the ledger takes it. Then it measures what
//! `obtc-pool run` does before it serves miners (`Ledger::open` plus `Live::open`):
//! 1. without a snapshot: a full replay (the start-up of every pool before the live projection);
//! 2. with the snapshot the clean stop of (1) wrote (`Live::finish`), no tail;
//! 3. with that snapshot and a tail of `STARTUP_BENCH_TAIL` shares (default 300,000: ten
//!    seconds of 30,000 shares/s arrived after it).
//!
//! It prints bytes on disk per share (the ledger's files, with and without the two fixed-size
//! write-ahead log files) and the snapshot's size. `STARTUP_BENCH_DIR=PATH` keeps the ledger
//! there (an existing ledger there is reused, its shares counted by its head).
//!
//! Run: `cargo bench --bench startup` (release; ~2-3 minutes and ~2 GB of disk at 10 M shares).

use ledger::Ledger;
use obtc_pool::live::{snapshot, Live, SnapshotPolicy};
use pool_core::chain::Chain;
use pool_core::event::{
    BlockFound, BlockMatured, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};
use std::path::Path;
use std::time::{Duration, Instant};

const ADDRESSES: u64 = 1_000;
const BLOCK_EVERY: u64 = 1_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn address(i: u64) -> PayoutAddress {
    PayoutAddress(format!("bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx", i))
}

fn targets() -> Vec<(Target, Work)> {
    (0..1_000)
        .map(|k| {
            let t = Target::from_difficulty(1.0 + f64::from(k) / 1_000.0).expect("difficulty");
            (t, t.work())
        })
        .collect()
}

fn share(i: u64, targets: &[(Target, Work)]) -> Event {
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let miner = mixed % ADDRESSES;
    let (share_target, weight) = targets[((mixed >> 10) % targets.len() as u64) as usize];
    Event::ShareAccepted(ShareAccepted {
        address: address(miner),
        worker: WorkerName(format!("rig{}", (mixed >> 20) % 4)),
        share_target,
        weight,
        job_id: i / 100,
        height: 800_000 + i / BLOCK_EVERY,
        network_target: Target::from_compact(0x1703a30c).expect("bits"),
        time_ms: 1_700_000_000_000 + i / 30,
    })
}

fn block(n: u64) -> [Event; 2] {
    let block_id = BlockId([(n % 251) as u8 + 1; 32]);
    let height = 800_000 + n;
    [
        Event::BlockFound(BlockFound {
            height,
            block_id,
            reward: Sats(625_000_000),
            network_target: Target::from_compact(0x1703a30c).expect("bits"),
            finder: address(n % ADDRESSES),
            worker: WorkerName("rig0".into()),
            time_ms: 1_700_000_000_000 + n,
        }),
        Event::BlockMatured(BlockMatured { block_id, height }),
    ]
}

/// Appends shares `from..to` (with a block every `BLOCK_EVERY`); returns the time it took.
fn write_shares(ledger: &Ledger, from: u64, to: u64) -> Duration {
    let targets = targets();
    let started = Instant::now();
    let mut i = from;
    while i < to {
        let end = (i + 4096).min(to);
        let mut batch: Vec<Event> = Vec::with_capacity(4100);
        for n in i..end {
            batch.push(share(n, &targets));
            if (n + 1) % BLOCK_EVERY == 0 {
                batch.extend(block(n / BLOCK_EVERY));
            }
        }
        ledger.append_batch_blocking(batch).expect("append");
        i = end;
    }
    started.elapsed()
}

fn dir_bytes(dir: &Path) -> (u64, u64) {
    let mut all = 0;
    let mut wal = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            let name = entry.file_name().to_string_lossy().into_owned();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if name != snapshot::SNAPSHOT_FILE {
                all += meta.len();
                if name.starts_with("wal.") {
                    wal += meta.len();
                }
            }
        }
    }
    (all, wal)
}

/// `Ledger::open` + `Live::open`, as `obtc-pool run` starts; returns (ledger, live, times).
fn start(dir: &Path) -> (Live, Duration, Duration) {
    let t = Instant::now();
    let ledger = Ledger::open(dir).expect("open ledger");
    let open = t.elapsed();
    let t = Instant::now();
    let live = Live::open(
        ledger,
        Chain::BsvRegtest.params(),
        SnapshotPolicy::default(),
    )
    .expect("live projection");
    (live, open, t.elapsed())
}

fn stop(live: Live) {
    live.finish().expect("finish");
    live.ledger().clone().close_blocking();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let shares = env_u64("STARTUP_BENCH_SHARES", 10_000_000);
    let tail = env_u64("STARTUP_BENCH_TAIL", 300_000);
    let kept = std::env::var("STARTUP_BENCH_DIR").ok();
    let temp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let dir = kept
        .as_deref()
        .map_or(temp.path().join("ledger"), |d| Path::new(d).to_path_buf());

    let ledger = Ledger::open(&dir).expect("open ledger");
    let have = ledger.head().map_or(0, |h| h.seq + 1);
    if have == 0 {
        let rule = Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Pplns {
                window_numerator: 2,
                window_denominator: 1,
            },
            fee_bps: 100,
            fee_address: address(0),
            network_fee_payer: pool_core::event::NetworkFeePayer::Pool,
        });
        ledger.append_blocking(rule).expect("rule");
        let took = write_shares(&ledger, 0, shares);
        println!(
            "wrote {shares} shares in {:.1} s ({:.0} shares/s)",
            took.as_secs_f64(),
            shares as f64 / took.as_secs_f64()
        );
    } else {
        println!("reusing the ledger in {} ({have} records)", dir.display());
    }
    ledger.close_blocking();
    let _ = std::fs::remove_file(snapshot::path_in(&dir));
    let event = ledger::record::encode_event(&share(12_345, &targets())).expect("encode");
    println!(
        "one stored share record: {} bytes (header {}, event {}, chain hash 32)",
        ledger::record::RECORD_HEADER_LEN + event.len() + 32,
        ledger::record::RECORD_HEADER_LEN,
        event.len()
    );
    // Shares (a reused ledger: its records, nearly all shares).
    let shares = if have == 0 { shares } else { have };
    let records = {
        let (all, wal) = dir_bytes(&dir);
        println!(
            "on disk: {:.1} MB, {:.1} bytes/share ({:.1} MB in the write-ahead log files: {:.1} \
             bytes/share without them)",
            all as f64 / 1e6,
            all as f64 / shares as f64,
            wal as f64 / 1e6,
            (all - wal) as f64 / shares as f64
        );
        shares
    };

    let (live, open, built) = start(&dir);
    println!(
        "start without a snapshot (full replay of {records} shares): ledger open {:.0} ms + live \
         projection {:.0} ms = {:.0} ms",
        ms(open),
        ms(built),
        ms(open + built)
    );
    let t = Instant::now();
    stop(live);
    let size = std::fs::metadata(snapshot::path_in(&dir))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "snapshot written at the stop: {:.1} MB ({:.1} bytes/share), stop took {:.0} ms",
        size as f64 / 1e6,
        size as f64 / records as f64,
        ms(t.elapsed())
    );

    let t = Instant::now();
    let file = snapshot::read(&dir).expect("snapshot");
    let read = t.elapsed();
    let t = Instant::now();
    let projection = projections::Projection::from_snapshot(file.projection()).expect("decode");
    println!(
        "of which: snapshot file read + CRC-32 {:.0} ms, Projection::from_snapshot {:.0} ms ({} \
         shares)",
        ms(read),
        ms(t.elapsed()),
        projection.share_count()
    );
    drop((file, projection));

    for round in 0..2 {
        let (live, open, built) = start(&dir);
        println!(
            "start from the snapshot, no tail (run {}): ledger open {:.0} ms + live projection \
             {:.0} ms = {:.0} ms",
            round + 1,
            ms(open),
            ms(built),
            ms(open + built)
        );
        live.ledger().clone().close_blocking();
    }

    let ledger = Ledger::open(&dir).expect("open ledger");
    write_shares(&ledger, records, records + tail);
    ledger.close_blocking();
    let (live, open, built) = start(&dir);
    println!(
        "start from the snapshot + a tail of {tail} shares: ledger open {:.0} ms + live \
         projection {:.0} ms = {:.0} ms",
        ms(open),
        ms(built),
        ms(open + built)
    );
    live.ledger().clone().close_blocking();
}
