//! Ledger throughput: durable appends (each acknowledgement awaited) with 1, 16 and 256
//! concurrent appenders against plain sled baselines (120-byte values flushed once per 1,000
//! inserts, and once per insert); full replay (decode + verify; decode alone) against sled's raw
//! iteration over the same records; event decoding alone, the fast v1 decoder against bincode. Criterion reports each;
//! a summary pass at the end prints the ratios the ledger is held to. Run with
//! `cargo bench --bench ledger`.

use criterion::{black_box, BenchmarkId, Criterion, Throughput};
use ledger::Ledger;
use pool_core::event::{PayoutAddress, ShareAccepted, WorkerName};
use pool_core::{Event, Target};
use std::time::{Duration, Instant};

fn share(n: u64) -> Event {
    let share_target = Target::from_compact(0x1d00ffff).expect("constant bits");
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress("mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef".into()),
        worker: WorkerName(format!("rig{}", n % 16)),
        share_target,
        weight: share_target.work(),
        job_id: n,
        height: 800_000,
        network_target: Target::from_compact(0x1703a30c).expect("constant bits"),
        time_ms: 1_700_000_000_000 + n,
    })
}

/// A ledger for the append figures; `LEDGER_BENCH_COMMITTERS=N` sets the writer's committer
/// threads (frames written at once; default 1).
fn open_ledger(dir: &std::path::Path) -> Ledger {
    let committers = std::env::var("LEDGER_BENCH_COMMITTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let options = ledger::WriterOptions {
        committers,
        ..ledger::WriterOptions::default()
    };
    Ledger::open_with(dir, options).expect("open")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `total` durable appends spread over `appenders` tasks; returns the elapsed time.
fn appends(rt: &tokio::runtime::Runtime, ledger: &Ledger, appenders: u64, total: u64) -> Duration {
    rt.block_on(async {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for a in 0..appenders {
            let n = total / appenders + u64::from(a < total % appenders);
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..n {
                    ledger.append(share(a << 32 | i)).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("appender task");
        }
        started.elapsed()
    })
}

/// `total` sled inserts of 120-byte values, flushing once per `flush_every`.
fn sled_inserts(tree: &sled::Tree, start: u64, total: u64, flush_every: u64) -> Duration {
    let value = [7u8; 120];
    let started = Instant::now();
    for i in start..start + total {
        tree.insert(i.to_be_bytes(), &value[..]).expect("insert");
        if (i + 1) % flush_every == 0 {
            tree.flush().expect("flush");
        }
    }
    tree.flush().expect("flush");
    started.elapsed()
}

fn sled_tree(dir: &std::path::Path) -> (sled::Db, sled::Tree) {
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(None)
        .open()
        .expect("sled open");
    let tree = db.open_tree("baseline").expect("tree");
    (db, tree)
}

fn bench_appends(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("ledger_append_durable");
    group.throughput(Throughput::Elements(1));
    for appenders in [1u64, 16, 256] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open_ledger(dir.path());
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{appenders}_appenders")),
            &appenders,
            |b, &appenders| b.iter_custom(|iters| appends(&rt, &ledger, appenders, iters)),
        );
        ledger.close_blocking();
    }
    group.finish();

    let mut group = c.benchmark_group("sled_baseline");
    group.throughput(Throughput::Elements(1));
    for flush_every in [1_000u64, 1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_db, tree) = sled_tree(dir.path());
        let mut next = 0u64;
        group.bench_function(format!("insert_120b_flush_every_{flush_every}"), |b| {
            b.iter_custom(|iters| {
                let d = sled_inserts(&tree, next, iters, flush_every);
                next += iters;
                d
            })
        });
    }
    group.finish();
}

/// A ledger of `n` records written in commit batches of 256 (what 256 appenders produce), and
/// a plain sled tree holding the same records' bytes one entry per record.
struct ReplayData {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    _raw_db: sled::Db,
    raw: sled::Tree,
    records: u64,
}

fn replay_data(n: u64) -> ReplayData {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(&dir.path().join("ledger")).expect("open");
    let mut seq = 0;
    while seq < n {
        let batch: Vec<Event> = (seq..(seq + 256).min(n)).map(share).collect();
        seq += batch.len() as u64;
        ledger.append_batch_blocking(batch).expect("append");
    }
    let (raw_db, raw) = sled_tree(&dir.path().join("raw"));
    for r in ledger.read_from(0) {
        let r = r.expect("record");
        let event = ledger::record::encode_event(&r.event).expect("encode");
        let mut value = Vec::with_capacity(event.len() + 54);
        ledger::record::push_record(&mut value, &[0; 32], r.seq, r.version, r.time_ms, &event)
            .expect("record");
        raw.insert(r.seq.to_be_bytes(), value).expect("insert");
    }
    raw.flush().expect("flush");
    ReplayData {
        _dir: dir,
        ledger,
        _raw_db: raw_db,
        raw,
        records: n,
    }
}

fn raw_iterate(tree: &sled::Tree) -> u64 {
    let mut bytes = 0u64;
    for entry in tree.iter() {
        let (_, v) = entry.expect("entry");
        bytes += black_box(v.len() as u64);
    }
    bytes
}

/// Decodes every record (what a projection replay does); returns the sum of sequences.
fn read_all(ledger: &Ledger) -> u64 {
    let mut sum = 0u64;
    for r in ledger.read_from(0) {
        sum = sum.wrapping_add(black_box(r.expect("record")).seq);
    }
    sum
}

/// Decodes each of `events` (stored v1 bytes) with `decode`; returns the time taken.
fn decode_each(
    events: &[Vec<u8>],
    decode: impl Fn(&[u8]) -> Result<Event, ledger::Problem>,
) -> Duration {
    let t = Instant::now();
    for bytes in events {
        black_box(decode(bytes).expect("decodes"));
    }
    t.elapsed()
}

fn bench_replay(c: &mut Criterion, data: &ReplayData) {
    let mut group = c.benchmark_group("ledger_replay");
    group.throughput(Throughput::Elements(data.records));
    group.bench_function("verify_decode_and_chain", |b| {
        b.iter(|| data.ledger.verify().expect("verify"))
    });
    group.bench_function("read_from_0_decode", |b| b.iter(|| read_all(&data.ledger)));
    group.bench_function("sled_raw_iter_one_entry_per_record", |b| {
        b.iter(|| raw_iterate(&data.raw))
    });
    group.finish();
}

fn best_of(runs: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..runs).map(|_| f()).min().unwrap_or_default()
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Mean time of one 4 KiB `O_DIRECT | O_DSYNC` write into blocks written before: what one
/// write-ahead log frame costs at least on this disk (`O_DSYNC` alone where `O_DIRECT` is refused).
fn durable_write_us(dir: &std::path::Path, writes: u64) -> f64 {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    const BLOCK: usize = 4096;
    let path = dir.join("durable-write-probe");
    std::fs::write(&path, vec![0u8; BLOCK * writes as usize]).expect("probe file");
    let open = |flags| {
        std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(flags)
            .open(&path)
    };
    let file = open(libc::O_DIRECT | libc::O_DSYNC)
        .or_else(|_| open(libc::O_DSYNC))
        .expect("open probe");
    file.sync_all().expect("sync probe");
    // O_DIRECT wants an aligned buffer: use the aligned part of a larger one.
    let raw = vec![7u8; 2 * BLOCK];
    let at = raw.as_ptr().align_offset(BLOCK);
    let block = &raw[at..at + BLOCK];
    let t = Instant::now();
    for i in 0..writes {
        file.write_all_at(block, i * BLOCK as u64)
            .expect("probe write");
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / writes as f64;
    let _ = std::fs::remove_file(&path);
    us
}

/// The figures the ledger is held to, measured in this run, with their ratios. The 256-appender
/// ledger and the sled baseline are measured in alternating rounds (median of each), so a
/// change in the machine's load hits both alike.
fn summary(data: &ReplayData) {
    let rt = runtime();
    println!("\n== ledger summary (same run) ==");
    let mut one_and_sixteen = Vec::new();
    for (appenders, total) in [(1u64, 2_000u64), (16, 30_000)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = open_ledger(dir.path());
        appends(&rt, &ledger, appenders, total / 10); // warm up
        let rate = per_sec(total, appends(&rt, &ledger, appenders, total));
        println!("durable appends, {appenders:>3} appenders: {rate:>9.0}/s ({total} appends)");
        one_and_sixteen.push(rate);
        ledger.close_blocking();
    }
    let ledger_dir = tempfile::tempdir().expect("tempdir");
    let ledger = open_ledger(ledger_dir.path());
    let sled_dir = tempfile::tempdir().expect("tempdir");
    let (_db, tree) = sled_tree(sled_dir.path());
    appends(&rt, &ledger, 256, 20_000); // warm up
    sled_inserts(&tree, 0, 20_000, 1_000);
    let (mut ledger_rates, mut sled_rates) = (Vec::new(), Vec::new());
    let mut next_key = 20_000;
    for _ in 0..5 {
        ledger_rates.push(per_sec(100_000, appends(&rt, &ledger, 256, 100_000)));
        sled_rates.push(per_sec(
            100_000,
            sled_inserts(&tree, next_key, 100_000, 1_000),
        ));
        next_key += 100_000;
    }
    let report = ledger.verify().expect("verify");
    println!(
        "durable appends, 256 appenders: {:>9.0}/s (median of 5 x 100,000; rounds {:?}; {:.0} records per stored batch)",
        median(ledger_rates.clone()),
        ledger_rates.iter().map(|r| r.round()).collect::<Vec<_>>(),
        report.records as f64 / report.batches as f64
    );
    println!(
        "sled insert 120 B, flush per 1,000: {:>9.0}/s (median of 5 x 100,000, alternating; rounds {:?})",
        median(sled_rates.clone()),
        sled_rates.iter().map(|r| r.round()).collect::<Vec<_>>()
    );
    let per_insert = per_sec(2_000, sled_inserts(&tree, next_key, 2_000, 1));
    println!("sled insert 120 B, flush per insert: {per_insert:>9.0}/s");
    println!(
        "one durable 4 KiB write (O_DIRECT|O_DSYNC into written blocks, the floor of a commit): {:.1} us",
        durable_write_us(ledger_dir.path(), 2_000)
    );
    println!(
        "ratio durable appends (256 appenders) / sled flush-per-1,000 baseline: {:.2}",
        median(ledger_rates) / median(sled_rates)
    );
    println!(
        "ratio durable appends (1 appender) / sled flush-per-insert: {:.2}",
        one_and_sixteen[0] / per_insert
    );
    ledger.close_blocking();

    let n = data.records;
    let verify = per_sec(
        n,
        best_of(5, || {
            let t = Instant::now();
            data.ledger.verify().expect("verify");
            t.elapsed()
        }),
    );
    let read = per_sec(
        n,
        best_of(5, || {
            let t = Instant::now();
            black_box(read_all(&data.ledger));
            t.elapsed()
        }),
    );
    let raw = per_sec(
        n,
        best_of(5, || {
            let t = Instant::now();
            raw_iterate(&data.raw);
            t.elapsed()
        }),
    );
    let events: Vec<Vec<u8>> = data
        .ledger
        .read_from(0)
        .map(|r| ledger::record::encode_event(&r.expect("record").event).expect("encode"))
        .collect();
    let fast = per_sec(
        n,
        best_of(5, || {
            decode_each(&events, |b| ledger::record::decode_event(1, b))
        }),
    );
    let bincode = per_sec(
        n,
        best_of(5, || {
            decode_each(&events, ledger::record::decode_v1_bincode)
        }),
    );
    println!("replay verify (decode + chain), {n} records: {verify:>12.0} records/s");
    println!("replay read_from(0) (decode):               {read:>12.0} records/s");
    println!("sled raw iteration, one entry per record:   {raw:>12.0} records/s");
    println!("ratio verify / sled raw iteration: {:.2}", verify / raw);
    println!("event decode only, fast v1 decoder:         {fast:>12.0} events/s");
    println!("event decode only, bincode:                 {bincode:>12.0} events/s");
    println!("ratio read_from / sled raw iteration: {:.2}", read / raw);
    println!("ratio read_from / verify: {:.2}", read / verify);
    println!("ratio fast decoder / bincode: {:.2}", fast / bincode);
}

/// `LEDGER_BENCH_GROWTH=N`: N rounds of 100,000 durable appends (256 appenders) onto one
/// growing ledger, one line per round, to see whether throughput holds as the ledger grows.
fn growth(rounds: u32) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path()).expect("open");
    for round in 0..rounds {
        let rate = per_sec(100_000, appends(&rt, &ledger, 256, 100_000));
        let size: u64 = std::fs::read_dir(dir.path())
            .expect("dir")
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        println!(
            "round {round}: {rate:>9.0} appends/s, ledger {} records, {} MB on disk",
            (round + 1) * 100_000,
            size / 1_000_000
        );
    }
    ledger.close_blocking();
}

fn main() {
    if let Some(rounds) = std::env::var("LEDGER_BENCH_GROWTH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        growth(rounds);
        return;
    }
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_appends(&mut c);
    let data = replay_data(200_000);
    bench_replay(&mut c, &data);
    c.final_summary();
    // A name filter (`cargo bench --bench ledger -- 256_appenders`) runs just those benches.
    let filtered = std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && a != "ledger");
    if !filtered {
        summary(&data);
    }
}
