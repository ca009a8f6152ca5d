//! Share validation per core: coinbase txid, merkle root, header, proof of work and target check
//! (`pool_core::share::check_share`), SHA-256d with a 12-level merkle branch (a ~3,000
//! transaction block) and with an empty one (regtest), HeavyHash with the block's cached matrix
//! and a 12-level branch, and the raw HeavyHash rate beside it; scrypt (Litecoin) with a 12-level
//! branch beside the `scrypt` crate's raw rate (`pool_core::pow::scrypt_header`). Also the whole session path for
//! one `mining.submit` line (JSON parsing, checks, validation, reply). Each iteration changes the
//! nonce. Run with `cargo bench --bench share_validation`.
//!
//! On a shared machine criterion's wall-clock figures drop with the load; at the end the bench
//! also prints each variant's rate per second of this thread's CPU time (from
//! `/proc/thread-self/schedstat`), which is what one otherwise idle core would do.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use pool_core::chain::Chain;
use pool_core::pow::{heavyhash_with_matrix, scrypt_header, MatrixCache, PowAlgorithm, PowHasher};
use pool_core::share::{check_share, ShareInput};
use pool_core::Target;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use stratum::job::{BlockTemplate, JobBook, JobConfig};
use stratum::session::{Session, SessionConfig, SessionOutput};
use stratum::vardiff::VardiffConfig;

/// A segwit coinbase split as the job builder makes it (BIP34 height, tag, payout and witness
/// commitment outputs), from the shared oBTC vector.
const COINB1: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1401692f6f6274632d706f6f6c";
const COINB2: &str = "ffffffff02be10062a01000000160014582115d39778f38690d442b19bbcf48dc732b4700000000000000000266a24aa21a9edf03610d45c8f12fbb27a9f94c9b4473910e1c2ef1584ddad04ddb1082444780000000000";
const PREV: [u8; 32] = [0x5a; 32];

fn branch(levels: usize) -> Vec<[u8; 32]> {
    (0..levels).map(|i| [i as u8 + 1; 32]).collect()
}

/// A share checker over fixed job parts; each call checks the next nonce.
fn checker<'a>(
    hasher: &'a PowHasher,
    merkle_branch: &'a [[u8; 32]],
) -> impl FnMut() -> pool_core::share::ShareCheck + 'a {
    let coinb1 = hex::decode(COINB1).expect("constant hex");
    let coinb2 = hex::decode(COINB2).expect("constant hex");
    let share_target = Target::from_difficulty(65536.0).expect("positive difficulty");
    let block_target = Target::from_compact(0x1703_4e6d).expect("mainnet-like bits");
    let mut nonce = 0u32;
    move || {
        nonce = nonce.wrapping_add(1);
        let input = ShareInput {
            coinb1: &coinb1,
            extranonce1: &[0xde, 0xad, 0xbe, 0xef],
            extranonce2: &[0, 0, 0, 1],
            coinb2: &coinb2,
            merkle_branch,
            version: 0x2000_0000,
            prev_hash: &PREV,
            nbits: 0x1703_4e6d,
            ntime: 0x6b06_42b1,
            nonce,
        };
        check_share(
            black_box(&input),
            |h| hasher.hash(h),
            &share_target,
            &block_target,
        )
    }
}

fn bench_check(c: &mut Criterion, name: &str, hasher: &PowHasher, merkle_branch: &[[u8; 32]]) {
    let mut check = checker(hasher, merkle_branch);
    let mut group = c.benchmark_group("share_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| b.iter(&mut check));
    group.finish();
}

/// This thread's CPU time in nanoseconds (Linux), if readable.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// Runs `f` `n` times and prints its rate per second of CPU time and of wall time.
fn print_cpu_rate<T>(name: &str, n: u32, mut f: impl FnMut() -> T) {
    let (Some(cpu0), wall0) = (thread_cpu_ns(), std::time::Instant::now()) else {
        println!("{name}: no thread CPU clock on this system");
        return;
    };
    for _ in 0..n {
        black_box(f());
    }
    let wall = wall0.elapsed().as_secs_f64();
    let cpu = thread_cpu_ns().map_or(f64::NAN, |c| c.saturating_sub(cpu0) as f64 / 1e9);
    println!(
        "{name:<40} {:>12.0} /s per core of CPU time   ({:>10.0} /s wall, {n} iterations)",
        f64::from(n) / cpu,
        f64::from(n) / wall,
    );
}

/// Rates per second of CPU time, independent of how busy the machine is.
fn cpu_time_rates(_: &mut Criterion) {
    let cache = MatrixCache::new(2);
    let sha = PowHasher::new(PowAlgorithm::Sha256d, &PREV, &cache);
    let heavy = PowHasher::new(PowAlgorithm::HeavyHash, &PREV, &cache);
    let (b12, b0) = (branch(12), branch(0));
    println!("\nshare validation, per second of one core's CPU time:");
    print_cpu_rate("sha256d_branch12", 400_000, checker(&sha, &b12));
    print_cpu_rate("sha256d_branch0", 1_000_000, checker(&sha, &b0));
    print_cpu_rate(
        "heavyhash_cached_matrix_branch12",
        200_000,
        checker(&heavy, &b12),
    );
    let PowHasher::HeavyHash(matrix) = &heavy else {
        unreachable!("built as HeavyHash")
    };
    let mut header = [0u8; 80];
    header[4..36].copy_from_slice(&PREV);
    let mut nonce = 0u32;
    print_cpu_rate("heavyhash_raw_cached_matrix", 400_000, || {
        nonce = nonce.wrapping_add(1);
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        heavyhash_with_matrix(black_box(matrix), black_box(&header))
    });
    let scrypt = PowHasher::new(PowAlgorithm::Scrypt, &PREV, &cache);
    print_cpu_rate("scrypt_branch12", 3_000, checker(&scrypt, &b12));
    let mut nonce = 0u32;
    print_cpu_rate("scrypt_raw", 3_000, || {
        nonce = nonce.wrapping_add(1);
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        scrypt_header(black_box(&header))
    });
    print_cpu_rate("session_submit_line_sha256d_branch12", 200_000, submitter());
}

fn share_validation(c: &mut Criterion) {
    let cache = MatrixCache::new(2);
    let sha = PowHasher::new(PowAlgorithm::Sha256d, &PREV, &cache);
    let heavy = PowHasher::new(PowAlgorithm::HeavyHash, &PREV, &cache);
    bench_check(c, "sha256d_branch12", &sha, &branch(12));
    bench_check(c, "sha256d_branch0", &sha, &branch(0));
    bench_check(c, "heavyhash_cached_matrix_branch12", &heavy, &branch(12));

    // The raw HeavyHash rate, for comparison with the full check above.
    let PowHasher::HeavyHash(matrix) = &heavy else {
        unreachable!("built as HeavyHash")
    };
    let mut header = [0u8; 80];
    header[4..36].copy_from_slice(&PREV);
    let mut nonce = 0u32;
    let mut group = c.benchmark_group("share_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("heavyhash_raw_cached_matrix", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            heavyhash_with_matrix(black_box(matrix), black_box(&header))
        })
    });
    group.finish();

    // scrypt: the full check and the crate's raw rate, in the same run.
    let scrypt = PowHasher::new(PowAlgorithm::Scrypt, &PREV, &cache);
    bench_check(c, "scrypt_branch12", &scrypt, &branch(12));
    let mut group = c.benchmark_group("share_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("scrypt_raw", |b| {
        b.iter(|| {
            nonce = nonce.wrapping_add(1);
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            scrypt_header(black_box(&header))
        })
    });
    group.finish();
}

/// A subscribed, authorized session on a ~3,000-transaction SHA-256d job (12-level branch) at
/// network difficulty 1, and a submitter: each call sends the next nonce as a `mining.submit`
/// line. The shares are (almost always) low-difficulty rejections that still run the whole
/// validation.
fn submitter() -> impl FnMut() -> String {
    submitter_at(None)
}

/// As [`submitter`], at a difficulty every share meets (vardiff pinned there): each line is an
/// accepted share (event, reply). The job is re-sent as a clean job every 4,096 shares so the
/// duplicate set stays small, as it does between real jobs.
fn accepting_submitter() -> impl FnMut() -> String {
    submitter_at(Some(1e-12))
}

fn submitter_at(fixed_difficulty: Option<f64>) -> impl FnMut() -> String {
    let chain = Chain::BsvRegtest.params();
    let txs: Vec<serde_json::Value> = (0..3000u32)
        .map(|i| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_le_bytes());
            json!({ "data": "", "txid": hex::encode(id) })
        })
        .collect();
    let template = BlockTemplate::from_value(json!({
        "version": 0x2000_0000u32,
        "previousblockhash": hex::encode(PREV),
        "transactions": txs,
        "coinbasevalue": 625_000_000u64,
        "bits": "1d00ffff",
        "curtime": 1_795_572_408u32,
        "height": 900_000,
    }))
    .expect("bench template");
    let mut book = JobBook::default();
    let config = JobConfig::new(chain, b"/obtc-pool/", vec![0x51]);
    let job = book
        .add_template(&template, &config, None, &MatrixCache::new(1))
        .expect("bench job");
    assert_eq!(job.merkle_branch.len(), 12);
    let mut session_config = SessionConfig::new(chain, 4);
    if let Some(d) = fixed_difficulty {
        session_config.vardiff = VardiffConfig {
            initial_difficulty: d,
            min_difficulty: d,
            max_difficulty: d,
            ..VardiffConfig::default()
        };
    }
    let mut session = Session::new(Arc::new(session_config), vec![1, 2, 3, 4], 0);
    let address = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
    let _ = session.handle_line(
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        0,
        &book,
    );
    let auth = json!({"id": 2, "method": "mining.authorize", "params": [address]}).to_string();
    let _ = session.handle_line(&auth, 0, &book);
    let mut nonce = 0u32;
    move || {
        nonce = nonce.wrapping_add(1);
        if fixed_difficulty.is_some() && nonce % 4096 == 0 {
            black_box(session.on_job(&job, 1));
        }
        let line = format!(
            r#"{{"id":7,"method":"mining.submit","params":["{address}","1","00000001","6b0642b8","{nonce:08x}"]}}"#
        );
        match session.handle_line(black_box(&line), 1, &book) {
            SessionOutput::ShareRejected { reply, .. } => reply,
            SessionOutput::ShareAccepted(a) => a.reply,
            SessionOutput::Send(mut l) => l.pop().unwrap_or_default(),
            SessionOutput::Disconnect { reason, .. } => reason,
        }
    }
}

/// One `mining.submit` line through a session: JSON parse, checks, validation, reply.
fn session_submit(c: &mut Criterion) {
    let mut submit = submitter();
    let mut group = c.benchmark_group("share_validation");
    group.throughput(Throughput::Elements(1));
    group.bench_function("session_submit_line_sha256d_branch12", |b| {
        b.iter(&mut submit)
    });
    let mut accepted = accepting_submitter();
    group.bench_function("session_submit_accepted_line_sha256d_branch12", |b| {
        b.iter(&mut accepted)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(4));
    targets = share_validation, session_submit, cpu_time_rates
}
criterion_main!(benches);
