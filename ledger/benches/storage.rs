//! Compact storage (format 2, the compactor): bytes per share on disk, and the append, verify
//! and replay rates with it beside the old encoding (compaction off) in the same run; and
//! bytes per share with each share's work in the ledger (issue #18) beside without.
//!
//! The shares are those of `benches/startup.rs` (1,000 addresses with 4 workers each,
//! scattered, difficulty 1.000-1.999, a found and matured block every 1,000,000 shares),
//! appended with `append_batch` in commits of 4,096. On disk = the ledger directory without
//! the two write-ahead log files, measured after the ledger is closed, reopened, compacted to
//! its steady state (`Ledger::compact` until nothing is left to do, then 5 s for sled's
//! segment cleaner) and closed again.
//!
//! With work (`ShareWithWork`), the same shares carry what the miner submitted: the pool's
//! 4-byte extranonce1 of the share's (address, worker) connection, a scattered 4-byte
//! extranonce2 (the stratum default size; scattered is the worst case for the codec), the
//! job's ntime, a scattered nonce, and BIP310-rolled version bits on half the rigs; a
//! `JobCreated` (a 12-hash merkle branch and a coinbase with the anchor, ~670 bytes) opens each
//! job, every `STORAGE_BENCH_JOB_SHARES` shares (default 30,000: a job a second at the
//! 30,000 shares/s the shares' times imply). The shares' `job_id` is then `i / job_shares`
//! (`i / 100` without work).
//!
//! Run: `cargo bench -p ledger --bench storage` (release; ~15 minutes, ~1 GB of disk at peak).
//! First, in memory (no sled, `STORAGE_BENCH_BYTES=0` skips it): bytes per share of
//! `STORAGE_BENCH_BYTES_SHARES` shares (default 1,000,000) as event bytes, format 1 and chunks,
//! with decode, check and expand rates, for shares without work, with work (jobs every
//! `STORAGE_BENCH_JOB_SHARES`, every 100, and one job only). Then the ledgers on disk, for
//! shares without and with work (`STORAGE_BENCH_WORK=0`: without only, `only`: with only).
//! `STORAGE_BENCH_SHARES=1000000,10000000` sets the sizes (default both), `STORAGE_BENCH_RATE`
//! the rate the compacted ledgers are written at (default 50,000 shares/s, above the 30,000/s
//! of a full load; 0: as fast as the ledger takes them), `STORAGE_BENCH_OLD=0` skips the old
//! encoding's ledger (written as fast as it takes them), `STORAGE_BENCH_APPENDS=0` the append
//! rates, `STORAGE_BENCH_CODEC=0` the codec figures (chunk sizes, zstd levels, dictionary),
//! `STORAGE_BENCH_CHUNK=N` the records per chunk, `STORAGE_BENCH_FILES=1` lists the
//! directory's files, `STORAGE_BENCH_REOPEN=1` reopens the ledger once more before measuring,
//! `STORAGE_BENCH_DIR` the directory (default a temporary one in the system's; removed
//! afterwards).

use ledger::record::{is_chunk, RawRecord};
use ledger::{CompactOptions, Ledger, WriterOptions};
use pool_core::event::{
    BlockFound, BlockMatured, JobCreated, LedgerAnchor, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, ShareWithWork, ShareWork, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const ADDRESSES: u64 = 1_000;
const BLOCK_EVERY: u64 = 1_000_000;

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
    Event::ShareAccepted(accepted(i, targets, i / 100))
}

fn accepted(i: u64, targets: &[(Target, Work)], job_id: u64) -> ShareAccepted {
    let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let miner = mixed % ADDRESSES;
    let (share_target, weight) = targets[((mixed >> 10) % targets.len() as u64) as usize];
    ShareAccepted {
        address: address(miner),
        worker: WorkerName(format!("rig{}", (mixed >> 20) % 4)),
        share_target,
        weight,
        job_id,
        height: 800_000 + i / BLOCK_EVERY,
        network_target: Target::from_compact(0x1703a30c).expect("bits"),
        time_ms: 1_700_000_000_000 + i / 30,
    }
}

/// What the shares are written as: `ShareAccepted` (the ledger before #18) or `ShareWithWork`
/// with a `JobCreated` before the first share of each job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shares {
    Accepted,
    /// A new job every `job_shares` shares (the shares' `job_id` is `i / job_shares`).
    WithWork {
        job_shares: u64,
    },
}

impl Shares {
    fn tag(self) -> &'static str {
        match self {
            Shares::Accepted => "accepted",
            Shares::WithWork { .. } => "work",
        }
    }

    fn name(self) -> String {
        match self {
            Shares::Accepted => "ShareAccepted".into(),
            Shares::WithWork {
                job_shares: u64::MAX,
            } => "ShareWithWork, one JobCreated (the work fields alone)".into(),
            Shares::WithWork { job_shares } => {
                format!("ShareWithWork + a JobCreated every {job_shares} shares")
            }
        }
    }
}

/// Jobs every 30,000 shares by default: one a second at the 30,000 shares/s these shares'
/// times imply (pools refresh the template every ~30 s and on each block: this is pessimistic).
const JOB_SHARES: u64 = 30_000;

/// The events of share `i`: its `JobCreated` first when it opens a job.
fn share_events(i: u64, targets: &[(Target, Work)], shares: Shares, out: &mut Vec<Event>) {
    let Shares::WithWork { job_shares } = shares else {
        out.push(share(i, targets));
        return;
    };
    let job_id = i / job_shares;
    let share = accepted(i, targets, job_id);
    if i % job_shares == 0 {
        out.push(job(job_id, &share));
    }
    // The share's (address, worker) pair (as in `accepted`) is its connection: the pool's
    // 4-byte extranonce1 for it.
    let pair = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
    let rig = (pair >> 20) % 4;
    let connection = (pair % ADDRESSES) * 4 + rig;
    let mixed = splitmix(i);
    out.push(Event::ShareWithWork(ShareWithWork {
        share,
        work: ShareWork {
            extranonce1: (connection as u32 + 1).to_be_bytes().to_vec(),
            // The stratum default of 4 bytes, scattered (the worst case for a codec).
            extranonce2: (mixed as u32).to_le_bytes().to_vec(),
            ntime: job_ntime(job_id),
            nonce: (mixed >> 32) as u32,
            // Half the rigs roll BIP310 version bits (mask 0x1fffe000).
            version: 0x2000_0000
                | if rig < 2 {
                    (mixed as u32) & 0x1fff_e000
                } else {
                    0
                },
        },
    }));
}

/// splitmix64's output function: scattered, incompressible bits from a counter.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn job_ntime(job_id: u64) -> u32 {
    1_700_000_000 + job_id as u32
}

/// A job as the pool records it: a coinbase paying one address with the tag and the anchor
/// output, and a 12-hash merkle branch (~4,000 transactions) new for each job.
fn job(job_id: u64, share: &ShareAccepted) -> Event {
    let h = |k: u64| {
        let mut a = [0u8; 32];
        for (j, word) in a.chunks_exact_mut(8).enumerate() {
            word.copy_from_slice(&splitmix(job_id << 16 | k << 4 | j as u64).to_le_bytes());
        }
        a
    };
    let mut coinbase1 = vec![1, 0, 0, 0, 1];
    coinbase1.extend([0; 32]);
    coinbase1.extend([0xff; 4]);
    coinbase1.extend([4 + 11 + 8, 3]);
    coinbase1.extend(&(share.height as u32).to_le_bytes()[..3]);
    coinbase1.extend(b"/obtc-pool/");
    let mut coinbase2 = vec![0xff; 4];
    coinbase2.push(2);
    coinbase2.extend(625_000_000u64.to_le_bytes());
    coinbase2.extend([25, 0x76, 0xa9, 0x14]);
    coinbase2.extend([0x42; 20]);
    coinbase2.extend([0x88, 0xac]);
    coinbase2.extend(0u64.to_le_bytes());
    coinbase2.extend([46, 0x6a, 44]);
    coinbase2.extend(b"OBTL");
    coinbase2.extend((job_id * 50).to_be_bytes());
    coinbase2.extend(h(99));
    coinbase2.extend(0u32.to_le_bytes());
    Event::JobCreated(JobCreated {
        job_id,
        height: share.height,
        prev_hash: BlockId([(share.height % 251) as u8; 32]),
        coinbase1,
        coinbase2,
        merkle_branch: (0..12).map(h).collect(),
        version: 0x2000_0000,
        bits: 0x1703_a30c,
        ntime: job_ntime(job_id),
        anchor: Some(LedgerAnchor {
            seq: job_id * 50,
            hash: h(99),
        }),
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

/// `STORAGE_BENCH_CHUNK` overrides the records per chunk (to compare sizes).
fn compaction(background: bool) -> CompactOptions {
    let defaults = CompactOptions::default();
    CompactOptions {
        background,
        chunk_records: std::env::var("STORAGE_BENCH_CHUNK")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.chunk_records),
        ..defaults
    }
}

fn rule() -> Event {
    Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 2,
            window_denominator: 1,
        },
        fee_bps: 100,
        fee_address: address(0),
        network_fee_payer: pool_core::event::NetworkFeePayer::Pool,
    })
}

/// Writes a ledger of `shares` shares (as `as_`) in `dir`, at most `rate` shares/s (0: as fast as it
/// takes them); returns the time the appends took.
fn write_ledger(dir: &Path, shares: u64, as_: Shares, compact: bool, rate: u64) -> Duration {
    let ledger = Ledger::open_tuned(dir, WriterOptions::default(), compaction(compact))
        .expect("open ledger");
    ledger.append_blocking(rule()).expect("rule");
    let targets = targets();
    let started = Instant::now();
    let mut i = 0;
    while i < shares {
        let end = (i + 4096).min(shares);
        let mut batch: Vec<Event> = Vec::with_capacity(4100);
        for n in i..end {
            share_events(n, &targets, as_, &mut batch);
            if (n + 1) % BLOCK_EVERY == 0 {
                batch.extend(block(n / BLOCK_EVERY));
            }
        }
        ledger.append_batch_blocking(batch).expect("append");
        i = end;
        if rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    let took = started.elapsed();
    ledger.close_blocking();
    took
}

/// Reopens, compacts until nothing is left, closes: the steady state.
fn settle(dir: &Path) -> Duration {
    let ledger =
        Ledger::open_tuned(dir, WriterOptions::default(), compaction(false)).expect("open ledger");
    let started = Instant::now();
    while ledger.compact().expect("compact").chunks > 0 {}
    let took = started.elapsed();
    ledger.close_blocking();
    took
}

/// Bytes of the ledger directory, and of its two write-ahead log files.
fn dir_bytes(dir: &Path) -> (u64, u64) {
    let (mut all, mut wal) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                all += meta.len();
                if entry.file_name().to_string_lossy().starts_with("wal.") {
                    wal += meta.len();
                }
            }
        }
    }
    (all, wal)
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Verify and replay (`read_from(0)`, every event decoded) rates of the ledger in `dir`.
fn read_rates(dir: &Path) -> (u64, f64, f64) {
    let ledger = Ledger::open_read_only(dir).expect("open");
    let records = ledger.head().map_or(0, |h| h.seq + 1);
    let verify = best_of(3, || {
        let t = Instant::now();
        black_box(ledger.verify().expect("verify"));
        t.elapsed()
    });
    let replay = best_of(3, || {
        let t = Instant::now();
        let mut sum = 0u64;
        for r in ledger.read_from(0) {
            sum = sum.wrapping_add(r.expect("record").seq);
        }
        black_box(sum);
        t.elapsed()
    });
    (records, per_sec(records, verify), per_sec(records, replay))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `total` durable appends from 256 tasks (what `benches/ledger.rs` measures).
fn appends(rt: &tokio::runtime::Runtime, ledger: &Ledger, total: u64) -> Duration {
    let targets = std::sync::Arc::new(targets());
    rt.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for a in 0..256u64 {
            let ledger = ledger.clone();
            let targets = targets.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..total / 256 {
                    let event = share(a << 32 | i, &targets);
                    ledger.append(event).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("appender task");
        }
        started.elapsed()
    })
}

/// Durable appends with 256 appenders onto a ledger with the compactor running and one
/// without, in alternating rounds (median of 5 each).
fn append_rates(base: &Path) {
    let rt = runtime();
    let on = Ledger::open_tuned(
        &base.join("append-new"),
        WriterOptions::default(),
        compaction(true),
    )
    .expect("open");
    let off = Ledger::open_tuned(
        &base.join("append-old"),
        WriterOptions::default(),
        compaction(false),
    )
    .expect("open");
    appends(&rt, &on, 25_600);
    appends(&rt, &off, 25_600);
    let (mut new, mut old) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        old.push(per_sec(102_400, appends(&rt, &off, 102_400)));
        new.push(per_sec(102_400, appends(&rt, &on, 102_400)));
    }
    println!(
        "durable appends, 256 appenders, compactor running: {:>8.0}/s (rounds {:?})",
        median(new.clone()),
        new.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!(
        "durable appends, 256 appenders, compaction off:    {:>8.0}/s (rounds {:?})",
        median(old.clone()),
        old.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    println!("ratio new / old: {:.3}", median(new) / median(old));
    on.close_blocking();
    off.close_blocking();
    let _ = std::fs::remove_dir_all(base.join("append-new"));
    let _ = std::fs::remove_dir_all(base.join("append-old"));
}

/// The stored records of the first `n` records of the ledger in `dir`.
fn records_of(dir: &Path, n: u64) -> Vec<RawRecord> {
    let ledger = Ledger::open_read_only(dir).expect("open");
    let mut out = Vec::new();
    for r in ledger.read_range(0, n) {
        let r = r.expect("record");
        out.push(RawRecord {
            seq: r.seq,
            version: r.version,
            time_ms: r.time_ms,
            event: ledger::record::encode_event(&r.event).expect("encode"),
            hash: r.hash,
        });
    }
    out
}

/// Chunk size, zstd level and a trained dictionary: stored chunk bytes per record over the
/// same records.
fn codec_figures(records: &[RawRecord]) {
    println!(
        "chunk value bytes per record (the first {} records):",
        records.len()
    );
    for size in [1_024usize, 4_096, 8_192, 16_384, 32_768] {
        let bytes: usize = records
            .chunks(size)
            .map(|c| ledger::chunk::encode(c, &[0; 32]).expect("chunk").len())
            .sum();
        println!(
            "  {size:>6} records per chunk: {:.2} B/record",
            bytes as f64 / records.len() as f64
        );
    }
    let size = CompactOptions::default().chunk_records as usize;
    // Chained as stored (the first record of the ledger chains onto 32 zero bytes).
    let chunks: Vec<Vec<u8>> = records
        .chunks(size)
        .enumerate()
        .map(|(i, c)| {
            let prev = if i == 0 {
                [0; 32]
            } else {
                records[i * size - 1].hash
            };
            ledger::chunk::encode(c, &prev).expect("chunk")
        })
        .collect();
    let expand = best_of(3, || {
        let t = Instant::now();
        for c in &chunks {
            black_box(ledger::chunk::expand(c).expect("expand"));
        }
        t.elapsed()
    });
    println!(
        "  chunk::expand alone ({size} records per chunk): {:.0} records/s",
        per_sec(records.len() as u64, expand)
    );
    let bodies: Vec<Vec<u8>> = records
        .chunks(size)
        .map(ledger::chunk::encode_body)
        .collect();
    let raw: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "  uncompressed body: {:.2} B/record",
        raw as f64 / records.len() as f64
    );
    for level in [3, 9, 19] {
        let t = Instant::now();
        let bytes: usize = bodies
            .iter()
            .map(|b| zstd::bulk::compress(b, level).expect("zstd").len())
            .sum();
        println!(
            "  zstd level {level:>2}: {:.2} B/record, {:.0} ms to compress",
            bytes as f64 / records.len() as f64,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
    // A dictionary trained on the first half of the chunks, used on the second half.
    let (train, test) = bodies.split_at(bodies.len() / 2);
    let test_records = (records.len() - train.len() * size) as f64;
    for dict_size in [16 << 10, 112 << 10] {
        let dict = match zstd::dict::from_samples(train, dict_size) {
            Ok(d) => d,
            Err(e) => {
                println!("  dictionary of {dict_size} B: training failed ({e})");
                continue;
            }
        };
        let level = ledger::chunk::ZSTD_LEVEL;
        let mut with = zstd::bulk::Compressor::with_dictionary(level, &dict).expect("dict");
        let plain: usize = test
            .iter()
            .map(|b| zstd::bulk::compress(b, level).expect("zstd").len())
            .sum();
        let dicted: usize = test
            .iter()
            .map(|b| with.compress(b).expect("zstd").len())
            .sum();
        println!(
            "  trained dictionary of {} B (level {level}): {:.2} B/record with it, {:.2} without \
             (the dictionary itself {:.3} B/record if stored once per {} records)",
            dict.len(),
            dicted as f64 / test_records,
            plain as f64 / test_records,
            dict.len() as f64 / test_records,
            test_records
        );
    }
}

/// The writer's cut of stored batches (`MAX_BATCH_BYTES` in `ledger/src/writer.rs`).
const MAX_BATCH_BYTES: usize = 6 * 1024;

/// A ledger's records in memory: the event bytes, and the chunks they compact to.
struct InMemory {
    encoded: Vec<Vec<u8>>,
    chunks: Vec<Vec<u8>>,
}

/// Bytes per share of `n` shares written as `as_` (from record 0, the payout rule first, a
/// block every 1 M shares), computed in memory, no sled: the event bytes, format 1 (the
/// records in stored batches of at most 6 KiB, cut as the writer cuts them: what sled holds
/// live before compaction), and format-2 chunks of the default size (what it holds after).
fn bytes_per_share(n: u64, as_: Shares) -> InMemory {
    let targets = targets();
    let mut events = vec![rule()];
    for i in 0..n {
        share_events(i, &targets, as_, &mut events);
        if (i + 1) % BLOCK_EVERY == 0 {
            events.extend(block(i / BLOCK_EVERY));
        }
    }
    let encoded: Vec<Vec<u8>> = events
        .iter()
        .map(|e| ledger::record::encode_event(e).expect("encode"))
        .collect();
    drop(events);
    let (mut format1, mut batch_len) = (0usize, 0usize);
    let mut records = Vec::with_capacity(encoded.len());
    let mut prev = [0u8; 32];
    let mut scratch = Vec::new();
    for (seq, event) in encoded.iter().enumerate() {
        let len = ledger::record::RECORD_HEADER_LEN + event.len() + 32;
        if seq == 0 || batch_len + len > MAX_BATCH_BYTES {
            format1 += ledger::record::BATCH_HEADER_LEN;
            batch_len = ledger::record::BATCH_HEADER_LEN;
        }
        batch_len += len;
        format1 += len;
        let time_ms = 1_700_000_000_000 + seq as u64 / 30;
        scratch.clear();
        let hash = ledger::record::push_record(&mut scratch, &prev, seq as u64, 1, time_ms, event)
            .expect("record");
        records.push(RawRecord {
            seq: seq as u64,
            version: 1,
            time_ms,
            event: event.clone(),
            hash,
        });
        prev = hash;
    }
    let size = CompactOptions::default().chunk_records as usize;
    let chunks: Vec<Vec<u8>> = records
        .chunks(size)
        .enumerate()
        .map(|(k, c)| {
            let prev = if k == 0 {
                [0; 32]
            } else {
                records[k * size - 1].hash
            };
            ledger::chunk::encode(c, &prev).expect("chunk")
        })
        .collect();
    let body: usize = records
        .chunks(size)
        .map(|c| ledger::chunk::encode_body(c).len())
        .sum();
    drop(records);
    let chunked: usize = chunks.iter().map(Vec::len).sum();
    let events_len: usize = encoded.iter().map(Vec::len).sum();
    let per = |b: usize| b as f64 / n as f64;
    println!(
        "{n} shares as {} ({} records): event bytes {:.1} B/share; format 1 {:.1} B/share; \
         chunks of {size} records {:.2} B/share ({:.2} uncompressed)",
        as_.name(),
        encoded.len(),
        per(events_len),
        per(format1),
        per(chunked),
        per(body),
    );
    InMemory { encoded, chunks }
}

/// Decoding the events (`decode_event`, the replay's decoder), checking them (`check_event`,
/// verify's walk) and expanding the chunks (`chunk::expand`: zstd, rebuild, a SHA-256 per
/// record), in 5 rounds alternating between the ledgers; the median of each.
fn read_rates_in_memory(ledgers: &[(Shares, InMemory)]) {
    let mut rates = vec![[Vec::new(), Vec::new(), Vec::new()]; ledgers.len()];
    for _ in 0..5 {
        for ((_, l), r) in ledgers.iter().zip(&mut rates) {
            let count = l.encoded.len() as u64;
            let t = Instant::now();
            for e in &l.encoded {
                black_box(ledger::record::decode_event(1, e).expect("decode"));
            }
            r[0].push(per_sec(count, t.elapsed()));
            let t = Instant::now();
            for e in &l.encoded {
                black_box(ledger::record::check_event(1, e)).expect("check");
            }
            r[1].push(per_sec(count, t.elapsed()));
            let t = Instant::now();
            for c in &l.chunks {
                black_box(ledger::chunk::expand(c).expect("expand"));
            }
            r[2].push(per_sec(count, t.elapsed()));
        }
    }
    for ((as_, _), [decode, check, expand]) in ledgers.iter().zip(rates) {
        println!(
            "  {}: decode_event {:.2} M records/s, check_event {:.2} M/s, chunk::expand {:.2} \
             M/s (medians of 5 alternating rounds)",
            as_.name(),
            median(decode) / 1e6,
            median(check) / 1e6,
            median(expand) / 1e6,
        );
    }
}

fn main() {
    let sizes: Vec<u64> = std::env::var("STORAGE_BENCH_SHARES")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000_000, 10_000_000]);
    let old = std::env::var("STORAGE_BENCH_OLD").map_or(true, |v| v != "0");
    let rate: u64 = std::env::var("STORAGE_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let appends = std::env::var("STORAGE_BENCH_APPENDS").map_or(true, |v| v != "0");
    let base = match std::env::var("STORAGE_BENCH_DIR") {
        Ok(d) => std::path::PathBuf::from(d),
        Err(_) => std::env::temp_dir().join(format!("store-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base).expect("bench dir");
    let job_shares: u64 = std::env::var("STORAGE_BENCH_JOB_SHARES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(JOB_SHARES);
    let with_work = Shares::WithWork { job_shares };
    let on_disk: Vec<Shares> = match std::env::var("STORAGE_BENCH_WORK").as_deref() {
        Ok("0") => vec![Shares::Accepted],
        Ok("only") => vec![with_work],
        _ => vec![Shares::Accepted, with_work],
    };
    if std::env::var("STORAGE_BENCH_BYTES").map_or(true, |v| v != "0") {
        let n = std::env::var("STORAGE_BENCH_BYTES_SHARES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_000_000);
        println!("== bytes per share, in memory (no sled) ==");
        let mut kept = Vec::new();
        for as_ in [
            Shares::Accepted,
            with_work,
            Shares::WithWork { job_shares: 100 },
            // One job at the start: the work fields alone.
            Shares::WithWork {
                job_shares: u64::MAX,
            },
        ] {
            let ledger = bytes_per_share(n, as_);
            if as_ == Shares::Accepted || as_ == with_work {
                kept.push((as_, ledger));
            }
        }
        read_rates_in_memory(&kept);
    }
    println!("== compact storage (same run) ==");
    if appends {
        append_rates(&base);
    }
    for &as_ in &on_disk {
        on_disk_figures(&base, &sizes, as_, old, rate);
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// The ledgers on disk of each size, with the shares written as `as_`: the old encoding
/// (compaction off, first size only, when `old`) and the new one.
fn on_disk_figures(base: &Path, sizes: &[u64], as_: Shares, old: bool, rate: u64) {
    println!("-- shares as {} --", as_.name());
    for (i, &shares) in sizes.iter().enumerate() {
        let kinds: &[bool] = if old && i == 0 {
            &[false, true]
        } else {
            &[true]
        };
        for &compact in kinds {
            let name = if compact { "new" } else { "old" };
            let dir = base.join(format!("{name}-{shares}-{}", as_.tag()));
            let took = write_ledger(&dir, shares, as_, compact, if compact { rate } else { 0 });
            let (written, _) = dir_bytes(&dir);
            let settled = if compact {
                settle(&dir)
            } else {
                Duration::ZERO
            };
            let (all, wal) = dir_bytes(&dir);
            if std::env::var_os("STORAGE_BENCH_FILES").is_some() {
                let mut stack = vec![dir.clone()];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).expect("dir").flatten() {
                        let m = e.metadata().expect("meta");
                        if m.is_dir() {
                            stack.push(e.path());
                        } else {
                            println!("  file {}: {} bytes", e.path().display(), m.len());
                        }
                    }
                }
            }
            println!(
                "{name} encoding, {shares} shares: appended at {:.0} shares/s (commits of \
                 4,096{}); on disk {:.1} MB, {:.1} bytes/share without the write-ahead log \
                 files ({:.1} with them; {:.1} MB before the compaction after reopen, which \
                 took {:.0} ms)",
                per_sec(shares, took),
                if compact { ", compactor running" } else { "" },
                (all - wal) as f64 / 1e6,
                (all - wal) as f64 / shares as f64,
                all as f64 / shares as f64,
                (written - wal) as f64 / 1e6,
                settled.as_secs_f64() * 1e3,
            );
            if i == 0 {
                let (records, verify, replay) = read_rates(&dir);
                println!(
                    "{name} encoding, {records} records: verify {verify:.0} records/s, replay \
                     read_from(0) {replay:.0} records/s"
                );
            }
            if compact && i == 0 && std::env::var("STORAGE_BENCH_CODEC").map_or(true, |v| v != "0")
            {
                let db = ledger::open_sled_dir(&dir).expect("sled");
                let tree = db.open_tree(ledger::BATCH_TREE).expect("tree");
                let (mut chunks, mut batches, mut bytes) = (0u64, 0u64, 0u64);
                for entry in tree.iter() {
                    let (_, v) = entry.expect("entry");
                    bytes += v.len() as u64;
                    if is_chunk(&v) {
                        chunks += 1;
                    } else {
                        batches += 1;
                    }
                }
                println!(
                    "  stored: {chunks} chunks and {batches} format-1 batches, {:.1} value \
                     bytes/share",
                    bytes as f64 / shares as f64
                );
                drop((tree, db));
                codec_figures(&records_of(&dir, shares.min(1_000_000)));
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
