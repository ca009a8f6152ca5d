//! A small Stratum V1 client for the tests: plain TCP and serde_json, and a CPU "miner" that
//! grinds nonces with SHA-256d. It builds the header itself (coinbase, merkle root, byte orders)
//! from `mining.notify`, so it checks the pool's jobs independently of the pool's own code.

use pool_core::chain::ChainParams;
use pool_core::pow::PowAlgorithm;
use pool_core::{DifficultyUnit, Target};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A `mining.notify` job as received.
#[derive(Clone, Debug)]
pub struct Job {
    pub job_id: String,
    pub prev_hash: String,
    pub coinb1: String,
    pub coinb2: String,
    pub merkle_branch: Vec<String>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
}

/// A share found by grinding: what `mining.submit` needs, and the header hash.
#[derive(Clone, Debug)]
pub struct Solution {
    pub job_id: String,
    pub extranonce2: String,
    pub ntime: String,
    pub nonce: String,
    pub version_bits: Option<String>,
    /// The header's proof-of-work hash (SHA-256d, or scrypt after [`StratumClient::use_chain`]
    /// on a scrypt chain), internal byte order.
    pub hash: [u8; 32],
}

/// A reply error `[code, message, null]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StratumError {
    pub code: i64,
    pub message: String,
}

pub struct StratumClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    next_id: u64,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
    pub difficulty: f64,
    pub version_mask: Option<u32>,
    pub jobs: VecDeque<Job>,
    /// Every notification seen, in order (method, params).
    pub notifications: Vec<(String, Value)>,
    extranonce2_counter: u64,
    /// The hash [`StratumClient::grind`] checks headers with (default SHA-256d).
    pub pow: PowAlgorithm,
    /// What the pool's difficulties mean (default the Bitcoin convention).
    pub difficulty_unit: DifficultyUnit,
}

pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let first = Sha256::digest(data);
    Sha256::digest(first).into()
}

impl StratumClient {
    /// Connects, subscribes and authorizes `username` (which must be accepted), then waits for
    /// the first job: the common start of a mining test.
    pub fn authorized(addr: SocketAddr, username: &str) -> (StratumClient, Job) {
        let mut client = StratumClient::connect(addr);
        client.subscribe();
        client.authorize(username).unwrap();
        let job = client.wait_for_job();
        (client, job)
    }

    pub fn connect(addr: SocketAddr) -> StratumClient {
        let deadline = Instant::now() + Duration::from_secs(20);
        let stream = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => break s,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot connect to the pool at {addr}: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        StratumClient {
            writer: stream.try_clone().unwrap(),
            reader: BufReader::new(stream),
            next_id: 1,
            extranonce1: Vec::new(),
            extranonce2_size: 0,
            difficulty: 1.0,
            version_mask: None,
            jobs: VecDeque::new(),
            notifications: Vec::new(),
            extranonce2_counter: 0,
            pow: PowAlgorithm::Sha256d,
            difficulty_unit: DifficultyUnit::Bitcoin,
        }
    }

    /// Grind as a miner of `chain` does: its proof-of-work hash, its difficulty unit.
    pub fn use_chain(&mut self, chain: &ChainParams) {
        assert!(
            matches!(chain.pow, PowAlgorithm::Sha256d | PowAlgorithm::Scrypt),
            "the test client grinds SHA-256d or scrypt, not {:?}",
            chain.pow
        );
        self.pow = chain.pow;
        self.difficulty_unit = chain.difficulty_unit;
    }

    /// The proof-of-work hash of a header, as [`StratumClient::grind`] checks it.
    pub fn pow_hash(&self, header: &[u8; 80]) -> [u8; 32] {
        match self.pow {
            PowAlgorithm::Scrypt => pool_core::pow::scrypt_header(header),
            _ => sha256d(header),
        }
    }

    /// Sends a raw line (a `\n` is appended).
    pub fn send_raw(&mut self, line: &str) -> std::io::Result<()> {
        self.writer.write_all(line.as_bytes())?;
        self.writer.write_all(b"\n")
    }

    /// Reads one line; `None` on EOF or timeout.
    pub fn read_line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                Some(serde_json::from_str(line.trim()).unwrap_or_else(|e| {
                    panic!("pool sent a line that is not JSON ({e}): {line:?}")
                }))
            }
        }
    }

    /// Reads and absorbs whatever the pool sends for `window` (notifications update the jobs).
    pub fn read_line_within(&mut self, window: Duration) {
        let deadline = Instant::now() + window;
        let stream = self.reader.get_ref().try_clone().unwrap();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            match self.read_line() {
                Some(msg) => self.absorb_notification(&msg),
                None => break,
            }
        }
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
    }

    fn absorb_notification(&mut self, msg: &Value) {
        let method = msg["method"].as_str().unwrap_or_default().to_owned();
        let params = msg["params"].clone();
        match method.as_str() {
            "mining.set_difficulty" => {
                self.difficulty = params[0].as_f64().expect("difficulty");
            }
            "mining.set_version_mask" => {
                self.version_mask = u32::from_str_radix(params[0].as_str().unwrap(), 16).ok();
            }
            "mining.notify" => {
                let hex_u32 = |v: &Value| u32::from_str_radix(v.as_str().unwrap(), 16).unwrap();
                let job = Job {
                    job_id: params[0].as_str().unwrap().to_owned(),
                    prev_hash: params[1].as_str().unwrap().to_owned(),
                    coinb1: params[2].as_str().unwrap().to_owned(),
                    coinb2: params[3].as_str().unwrap().to_owned(),
                    merkle_branch: params[4]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|b| b.as_str().unwrap().to_owned())
                        .collect(),
                    version: hex_u32(&params[5]),
                    nbits: hex_u32(&params[6]),
                    ntime: hex_u32(&params[7]),
                    clean_jobs: params[8].as_bool().unwrap_or(false),
                };
                if job.clean_jobs {
                    self.jobs.clear();
                }
                self.jobs.push_back(job);
            }
            _ => {}
        }
        self.notifications.push((method, params));
    }

    /// Sends a request and returns its reply (`result` or error), absorbing notifications.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, StratumError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "method": method, "params": params}).to_string();
        self.send_raw(&line).expect("send request");
        loop {
            let msg = self
                .read_line()
                .unwrap_or_else(|| panic!("no reply to {method} (connection closed or timed out)"));
            if msg.get("method").is_some() && msg["id"].is_null() {
                self.absorb_notification(&msg);
                continue;
            }
            if msg["id"] != json!(id) {
                continue;
            }
            if !msg["error"].is_null() {
                return Err(StratumError {
                    code: msg["error"][0].as_i64().unwrap_or(0),
                    message: msg["error"][1].as_str().unwrap_or_default().to_owned(),
                });
            }
            return Ok(msg["result"].clone());
        }
    }

    pub fn subscribe(&mut self) {
        let result = self
            .request("mining.subscribe", json!(["obtc-test-miner/0.1"]))
            .expect("subscribe");
        self.extranonce1 = hex::decode(result[1].as_str().expect("extranonce1")).unwrap();
        self.extranonce2_size = result[2].as_u64().expect("extranonce2 size") as usize;
    }

    pub fn authorize(&mut self, username: &str) -> Result<Value, StratumError> {
        self.request("mining.authorize", json!([username, "x"]))
    }

    /// BIP310 version rolling; returns the granted mask.
    pub fn configure_version_rolling(&mut self, mask: u32) -> Option<u32> {
        let reply = self
            .request(
                "mining.configure",
                json!([["version-rolling"], {"version-rolling.mask": format!("{mask:08x}"), "version-rolling.min-bit-count": 2}]),
            )
            .expect("configure");
        if reply["version-rolling"].as_bool() == Some(true) {
            let granted = u32::from_str_radix(reply["version-rolling.mask"].as_str()?, 16).ok()?;
            self.version_mask = Some(granted);
            Some(granted)
        } else {
            None
        }
    }

    /// Reads notifications until a job is there (bounded by the socket timeout).
    pub fn wait_for_job(&mut self) -> Job {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.jobs.is_empty() && Instant::now() < deadline {
            let msg = self
                .read_line()
                .expect("connection closed while waiting for a job");
            if msg.get("method").is_some() {
                self.absorb_notification(&msg);
            }
        }
        self.jobs.back().cloned().expect("no job within 60 s")
    }

    /// Reads notifications until a job on another previous block than `old_prev_hash` arrives.
    pub fn wait_for_new_block(&mut self, old_prev_hash: &str, timeout: Duration) -> Option<Job> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(job) = self.jobs.back() {
                if job.prev_hash != old_prev_hash {
                    return Some(job.clone());
                }
            }
            let msg = self.read_line()?;
            if msg.get("method").is_some() {
                self.absorb_notification(&msg);
            }
        }
        None
    }

    pub fn latest_job(&self) -> Option<Job> {
        self.jobs.back().cloned()
    }

    /// The 80-byte header for a job with these rolled values.
    pub fn header(
        &self,
        job: &Job,
        extranonce2: &[u8],
        ntime: u32,
        nonce: u32,
        version: u32,
    ) -> [u8; 80] {
        let mut coinbase = hex::decode(&job.coinb1).unwrap();
        coinbase.extend_from_slice(&self.extranonce1);
        coinbase.extend_from_slice(extranonce2);
        coinbase.extend_from_slice(&hex::decode(&job.coinb2).unwrap());
        let mut root = sha256d(&coinbase);
        for branch in &job.merkle_branch {
            let mut cat = root.to_vec();
            cat.extend_from_slice(&hex::decode(branch).unwrap());
            root = sha256d(&cat);
        }
        // Stratum sends prevhash as eight 32-bit words, each byte-swapped.
        let prev = hex::decode(&job.prev_hash).unwrap();
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&version.to_le_bytes());
        for (i, word) in prev.chunks(4).enumerate() {
            for (j, b) in word.iter().rev().enumerate() {
                header[4 + i * 4 + j] = *b;
            }
        }
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        header
    }

    /// Grinds nonces for a share at difficulty `difficulty` (default: the pool's current one).
    /// `rolled_version_bits` sets the BIP310 bits (within the granted mask). Bounded: panics
    /// after `max_hashes` attempts.
    pub fn grind(
        &mut self,
        job: &Job,
        difficulty: Option<f64>,
        rolled_version_bits: Option<u32>,
        max_hashes: u64,
    ) -> Solution {
        let target: Target = self
            .difficulty_unit
            .target(difficulty.unwrap_or(self.difficulty))
            .unwrap();
        self.grind_target(job, &target, rolled_version_bits, max_hashes)
    }

    /// Grinds nonces (the chain's proof of work, [`StratumClient::pow_hash`]) for a header meeting
    /// `target`, on a fresh extranonce2. As [`StratumClient::grind`], for a target not given as a
    /// difficulty (e.g. the harder of the share and block targets). Panics after `max_hashes`.
    pub fn grind_target(
        &mut self,
        job: &Job,
        target: &Target,
        rolled_version_bits: Option<u32>,
        max_hashes: u64,
    ) -> Solution {
        self.extranonce2_counter += 1;
        let mut en2 = self.extranonce2_counter.to_le_bytes().to_vec();
        en2.resize(self.extranonce2_size, 0);
        let version = match rolled_version_bits {
            Some(bits) => {
                let mask = self.version_mask.unwrap_or(0);
                (job.version & !mask) | (bits & mask)
            }
            None => job.version,
        };
        let ntime = job.ntime;
        for nonce in 0..max_hashes.min(u64::from(u32::MAX)) as u32 {
            let header = self.header(job, &en2, ntime, nonce, version);
            let hash = self.pow_hash(&header);
            if target.is_met_by(&hash) {
                return Solution {
                    job_id: job.job_id.clone(),
                    extranonce2: hex::encode(&en2),
                    ntime: format!("{ntime:08x}"),
                    nonce: format!("{nonce:08x}"),
                    version_bits: rolled_version_bits
                        .map(|_| format!("{:08x}", version & self.version_mask.unwrap_or(0))),
                    hash,
                };
            }
        }
        panic!("no share at target {target} within {max_hashes} hashes");
    }

    /// Submits a solution; `Ok(true)` is an accepted share.
    pub fn submit(&mut self, worker: &str, s: &Solution) -> Result<Value, StratumError> {
        let mut params = vec![
            json!(worker),
            json!(s.job_id),
            json!(s.extranonce2),
            json!(s.ntime),
            json!(s.nonce),
        ];
        if let Some(v) = &s.version_bits {
            params.push(json!(v));
        }
        self.request("mining.submit", Value::Array(params))
    }
}
