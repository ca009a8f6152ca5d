//! `obtc-miner`: a small CPU miner that speaks Stratum V1 the way pooler's cpuminer does, for the
//! regtest demo and for trying a pool by hand. It is written apart from the pool's own share code
//! (its coinbase, merkle and header code follow the Stratum vectors, not the pool's functions), so
//! the two check each other.
//!
//! Byte orders it relies on: `mining.notify` sends prevhash as eight 32-bit words each
//! byte-swapped; version, nbits and ntime as big-endian hex of the integers the header stores
//! little-endian; merkle branch hashes in the header's own order. The submitted nonce is the
//! big-endian hex of the header's little-endian nonce.

use clap::Parser;
use pool_core::pow::{MatrixCache, PowAlgorithm, PowHasher};
use pool_core::{DifficultyUnit, Target, TargetError};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(
    name = "obtc-miner",
    about = "A small Stratum V1 CPU miner (SHA-256d, HeavyHash or scrypt)"
)]
struct Args {
    /// Pool address, host:port.
    #[arg(long)]
    url: String,
    /// Stratum username: payout address, optionally `.worker`.
    #[arg(long)]
    user: String,
    #[arg(long, default_value = "x")]
    pass: String,
    /// Proof of work of the chain: sha256d, heavyhash or scrypt. With scrypt,
    /// `mining.set_difficulty` is read in the scrypt convention (difficulty 1 = 65,536 times
    /// Bitcoin's difficulty-1 target).
    #[arg(long, default_value = "sha256d")]
    algo: PowAlgorithm,
    /// Mining threads.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Stop after this many accepted shares (0: no limit). No more shares are submitted once
    /// the accepted ones and those awaiting an answer make this many; the miner exits when they
    /// are answered, so it never has more accepted.
    #[arg(long, default_value_t = 0)]
    max_shares: u64,
}

#[derive(Clone, Debug)]
struct Job {
    id: String,
    prev_hash: [u8; 32],
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    branch: Vec<[u8; 32]>,
    version: u32,
    nbits: u32,
    ntime: u32,
    /// Bumped for every new job so grinding threads notice.
    generation: u64,
}

struct Shared {
    /// How `mining.set_difficulty` reads: the scrypt convention when mining scrypt.
    unit: DifficultyUnit,
    job: Mutex<Option<Job>>,
    target: Mutex<Target>,
    /// Bumped on every `mining.set_difficulty`; grinding threads then reload the target (a
    /// harder target is safe at once: a share meeting it also meets the job's older one).
    target_generation: AtomicU64,
    generation: AtomicU64,
    stop: AtomicBool,
    extranonce1: Mutex<Vec<u8>>,
    extranonce2_size: AtomicU64,
    next_extranonce2: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    /// Submits written to the pool; at the end the miner waits (bounded) until each is answered,
    /// so the counts it prints are the pool's verdicts on everything it sent.
    submitted: AtomicU64,
    /// Shares handed to the writer (counted before they are queued, so the limit below holds
    /// across threads).
    queued: AtomicU64,
    /// `--max-shares` (0: no limit).
    max_shares: u64,
    /// The pool connection is closed (no more answers will come).
    reader_done: AtomicBool,
}

impl Shared {
    /// Takes a place for one more share under `--max-shares`: accepted shares plus those
    /// awaiting an answer stay at most the limit (a rejected share's place is free again, since
    /// queued - rejected counts exactly those). False when every place is taken.
    fn reserve_share(&self) -> bool {
        if self.max_shares == 0 {
            self.queued.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                let rejected = self.rejected.load(Ordering::Acquire);
                (queued.saturating_sub(rejected) < self.max_shares).then_some(queued + 1)
            })
            .is_ok()
    }
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)?;
    Ok(out)
}

fn be_u32(v: &Value) -> anyhow::Result<u32> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("expected a hex string, got {v}"))?;
    Ok(u32::from_str_radix(s, 16)?)
}

fn parse_notify(params: &[Value], generation: u64) -> anyhow::Result<Job> {
    anyhow::ensure!(
        params.len() >= 8,
        "mining.notify with {} params",
        params.len()
    );
    let text = |i: usize| -> anyhow::Result<&str> {
        params[i]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("notify param {i} is not a string"))
    };
    // prevhash: eight 32-bit words, each byte-swapped relative to the header.
    let words = hex32(text(1)?)?;
    let mut prev_hash = [0u8; 32];
    for (i, chunk) in words.chunks(4).enumerate() {
        for j in 0..4 {
            prev_hash[i * 4 + j] = chunk[3 - j];
        }
    }
    let branch = params[4]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("merkle branch is not an array"))?
        .iter()
        .map(|b| hex32(b.as_str().unwrap_or("")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Job {
        id: text(0)?.to_string(),
        prev_hash,
        coinb1: hex::decode(text(2)?)?,
        coinb2: hex::decode(text(3)?)?,
        branch,
        version: be_u32(&params[5])?,
        nbits: be_u32(&params[6])?,
        ntime: be_u32(&params[7])?,
        generation,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stream = TcpStream::connect(&args.url)?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let reader = BufReader::new(stream);
    let unit = difficulty_unit(args.algo);
    let shared = Arc::new(Shared {
        unit,
        job: Mutex::new(None),
        // Difficulty 1 until the pool says otherwise.
        target: Mutex::new(share_target(unit, 1.0)?),
        target_generation: AtomicU64::new(0),
        generation: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        extranonce1: Mutex::new(Vec::new()),
        extranonce2_size: AtomicU64::new(4),
        next_extranonce2: AtomicU64::new(0),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        submitted: AtomicU64::new(0),
        queued: AtomicU64::new(0),
        max_shares: args.max_shares,
        reader_done: AtomicBool::new(false),
    });

    writeln!(
        writer,
        "{}",
        json!({"id": 1, "method": "mining.subscribe", "params": ["obtc-miner/0.1"]})
    )?;
    writeln!(
        writer,
        "{}",
        json!({"id": 2, "method": "mining.authorize", "params": [args.user, args.pass]})
    )?;

    let (submit_tx, submit_rx) = std::sync::mpsc::channel::<String>();
    let mut workers = Vec::new();
    for thread_index in 0..args.threads {
        let shared = shared.clone();
        let submit_tx = submit_tx.clone();
        let user = args.user.clone();
        let algo = args.algo;
        workers.push(std::thread::spawn(move || {
            grind(&shared, &submit_tx, &user, algo, thread_index)
        }));
    }
    drop(submit_tx);

    // Writer thread: forwards found shares to the pool.
    let writer_shared = shared.clone();
    let writer_thread = std::thread::spawn(move || {
        for line in submit_rx {
            if writeln!(writer, "{line}").is_err() {
                writer_shared.stop.store(true, Ordering::Relaxed);
                break;
            }
            writer_shared.submitted.fetch_add(1, Ordering::Relaxed);
        }
    });

    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let reader_shared = shared.clone();
    let max_shares = args.max_shares;
    std::thread::spawn(move || {
        if let Err(e) = read_pool(&reader_shared, reader, max_shares) {
            eprintln!("obtc-miner: {e:#}");
        }
        reader_shared.stop.store(true, Ordering::Relaxed);
        reader_shared.reader_done.store(true, Ordering::Relaxed);
    });

    while Instant::now() < deadline && !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let _ = writer_thread.join();
    // Shares sent just before stopping are still in flight: wait for their answers.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < drain_deadline && !shared.reader_done.load(Ordering::Relaxed) {
        let answered =
            shared.accepted.load(Ordering::Relaxed) + shared.rejected.load(Ordering::Relaxed);
        if answered >= shared.submitted.load(Ordering::Relaxed) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "obtc-miner: accepted {} rejected {}",
        shared.accepted.load(Ordering::Relaxed),
        shared.rejected.load(Ordering::Relaxed)
    );
    Ok(())
}

fn read_pool(shared: &Shared, reader: BufReader<TcpStream>, max_shares: u64) -> anyhow::Result<()> {
    for line in reader.lines() {
        let line = line?;
        let msg: Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("obtc-miner: unreadable line from pool ({e}): {line}");
                continue;
            }
        };
        handle_message(shared, &msg)?;
        if max_shares > 0 && shared.accepted.load(Ordering::Relaxed) >= max_shares {
            shared.stop.store(true, Ordering::Relaxed);
        }
        // Reading goes on after a stop: answers to shares in flight still count.
    }
    anyhow::bail!("the pool closed the connection")
}

/// The difficulty convention of miners of `algo`: scrypt miners read a Stratum difficulty
/// 65,536 times easier than Bitcoin's.
fn difficulty_unit(algo: PowAlgorithm) -> DifficultyUnit {
    match algo {
        PowAlgorithm::Scrypt => DifficultyUnit::Scrypt,
        PowAlgorithm::Sha256d | PowAlgorithm::HeavyHash => DifficultyUnit::Bitcoin,
    }
}

/// The share target of a `mining.set_difficulty` difficulty in `unit`.
fn share_target(unit: DifficultyUnit, difficulty: f64) -> Result<Target, TargetError> {
    unit.target(difficulty)
}

fn handle_message(shared: &Shared, msg: &Value) -> anyhow::Result<()> {
    match msg.get("method").and_then(Value::as_str) {
        Some("mining.notify") => {
            let params = msg["params"].as_array().cloned().unwrap_or_default();
            let generation = shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
            match parse_notify(&params, generation) {
                Ok(job) => {
                    if let Ok(mut slot) = shared.job.lock() {
                        *slot = Some(job);
                    }
                }
                Err(e) => eprintln!("obtc-miner: bad mining.notify: {e}"),
            }
        }
        Some("mining.set_difficulty") => {
            if let Some(d) = msg["params"].get(0).and_then(Value::as_f64) {
                match share_target(shared.unit, d) {
                    Ok(t) => {
                        eprintln!("obtc-miner: difficulty {d}");
                        if let Ok(mut target) = shared.target.lock() {
                            *target = t;
                        }
                        shared.target_generation.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => eprintln!("obtc-miner: bad difficulty {d}: {e}"),
                }
            }
        }
        Some(other) => eprintln!("obtc-miner: ignoring {other}"),
        None => {
            let id = msg.get("id").and_then(Value::as_u64).unwrap_or(0);
            if id == 1 {
                // Subscribe reply: [subscriptions, extranonce1, extranonce2_size].
                let result = &msg["result"];
                let en1 = result.get(1).and_then(Value::as_str).unwrap_or("");
                let size = result.get(2).and_then(Value::as_u64).unwrap_or(4);
                if let Ok(mut slot) = shared.extranonce1.lock() {
                    *slot = hex::decode(en1)?;
                }
                shared.extranonce2_size.store(size, Ordering::Relaxed);
            } else if id == 2 {
                if msg["result"] != Value::Bool(true) {
                    anyhow::bail!("authorization refused: {}", msg["error"]);
                }
            } else if id >= 100 {
                if msg["result"] == Value::Bool(true) {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.rejected.fetch_add(1, Ordering::Relaxed);
                    eprintln!("obtc-miner: share rejected: {}", msg["error"]);
                }
            }
        }
    }
    Ok(())
}

fn grind(shared: &Shared, submit: &Sender<String>, user: &str, algo: PowAlgorithm, index: u32) {
    let cache = MatrixCache::default();
    let mut submit_id = 100 + u64::from(index) * 1_000_000_000;
    while !shared.stop.load(Ordering::Relaxed) {
        let job = match shared.job.lock().ok().and_then(|j| j.clone()) {
            Some(job) => job,
            None => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        let mut target_generation = shared.target_generation.load(Ordering::Relaxed);
        let mut target = shared.target.lock().map(|t| *t).unwrap_or(Target::DIFF1);
        let en1 = shared
            .extranonce1
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default();
        let en2_size = shared.extranonce2_size.load(Ordering::Relaxed) as usize;
        // Each pass takes a fresh extranonce2, so the whole nonce range is this thread's own.
        let en2_full = shared
            .next_extranonce2
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let en2: Vec<u8> = if en2_size <= 8 {
            en2_full[8 - en2_size..].to_vec()
        } else {
            let mut v = vec![0u8; en2_size - 8];
            v.extend_from_slice(&en2_full);
            v
        };

        let mut coinbase = job.coinb1.clone();
        coinbase.extend_from_slice(&en1);
        coinbase.extend_from_slice(&en2);
        coinbase.extend_from_slice(&job.coinb2);
        let mut root = sha256d(&coinbase);
        for step in &job.branch {
            let mut buf = [0u8; 64];
            buf[..32].copy_from_slice(&root);
            buf[32..].copy_from_slice(step);
            root = sha256d(&buf);
        }
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&job.version.to_le_bytes());
        header[4..36].copy_from_slice(&job.prev_hash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&job.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        let hasher = PowHasher::new(algo, &job.prev_hash, &cache);
        // How often to look for a new job, a new target or a stop: every few milliseconds
        // (scrypt hashes some 1,000 times slower than SHA-256d).
        let check_every = if algo == PowAlgorithm::Scrypt {
            16
        } else {
            4096
        };

        for nonce in 0..=u32::MAX {
            if nonce % check_every == 0 {
                if shared.stop.load(Ordering::Relaxed)
                    || shared.generation.load(Ordering::Relaxed) != job.generation
                {
                    break;
                }
                let current = shared.target_generation.load(Ordering::Relaxed);
                if current != target_generation {
                    target_generation = current;
                    target = shared.target.lock().map(|t| *t).unwrap_or(target);
                }
            }
            header[76..80].copy_from_slice(&nonce.to_le_bytes());
            let hash = hasher.hash(&header);
            if target.is_met_by(&hash) {
                // At the limit: wait for answers (a rejection frees a place, the last accepted
                // share stops the miner).
                while !shared.reserve_share() {
                    if shared.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if shared.stop.load(Ordering::Relaxed) {
                    // The place is never used: no answer is awaited for it.
                    return;
                }
                submit_id += 1;
                let line = json!({
                    "id": submit_id,
                    "method": "mining.submit",
                    "params": [user, job.id, hex::encode(&en2), format!("{:08x}", job.ntime), format!("{nonce:08x}")],
                })
                .to_string();
                if submit.send(line).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrypt_reads_set_difficulty_in_the_scrypt_convention() {
        let scrypt = share_target(difficulty_unit(PowAlgorithm::Scrypt), 1.0).unwrap();
        assert_eq!(scrypt, DifficultyUnit::Scrypt.target(1.0).unwrap());
        // Scrypt difficulty 1 is Bitcoin difficulty 1/65536: a target 65,536 times easier.
        assert_eq!(scrypt, Target::from_difficulty(1.0 / 65536.0).unwrap());
        assert_ne!(scrypt, Target::DIFF1);
        assert_eq!(
            share_target(DifficultyUnit::Scrypt, 65536.0).unwrap(),
            Target::DIFF1
        );
        for algo in [PowAlgorithm::Sha256d, PowAlgorithm::HeavyHash] {
            let unit = difficulty_unit(algo);
            assert_eq!(share_target(unit, 1.0).unwrap(), Target::DIFF1, "{algo}");
            assert_eq!(
                share_target(unit, 4.0).unwrap(),
                Target::from_difficulty(4.0).unwrap()
            );
        }
        assert!(share_target(DifficultyUnit::Scrypt, 0.0).is_err());
    }

    #[test]
    fn algo_scrypt_parses() {
        let args = Args::try_parse_from([
            "obtc-miner",
            "--url",
            "127.0.0.1:1",
            "--user",
            "u",
            "--algo",
            "scrypt",
        ])
        .unwrap();
        assert_eq!(args.algo, PowAlgorithm::Scrypt);
    }
}
