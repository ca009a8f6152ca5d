//! One connection's Stratum session as a state machine: subscribe, authorize, configure, submit.
//!
//! Pure and synchronous: inputs are request lines, the current [`JobBook`] and the time (ms);
//! outputs are lines to send and effects for the server. No sockets, no clocks, no panics on any
//! input.
//!
//! # How the server uses this
//! ```text
//! let mut framer = LineFramer::new(max_line);
//! let mut session = Session::new(Arc::clone(&session_config), extranonce1_bytes, now_ms);
//! loop {
//!     select! {
//!         bytes = socket.read() => {
//!             framer.feed(&bytes);
//!             loop {
//!                 let line = match framer.next_line() {
//!                     Ok(Some(line)) => line,
//!                     Ok(None) => break,
//!                     Err(e) => { log(e); disconnect }          // oversize line
//!                 };
//!                 match session.handle_bytes(line, now_ms, &job_book_snapshot) {
//!                     SessionOutput::Send(lines) => write all lines,
//!                     SessionOutput::ShareRejected { reply, reason } => { count/log reason; write reply }
//!                     SessionOutput::ShareAccepted(share) => {
//!                         // 1. durable first: append Event::ShareWithWork { share: share.event,
//!                         //    work: share.work } to the ledger
//!                         //    (with an Event::BlockCandidate right after it, in the same append,
//!                         //    when share.block is Some) and await the acknowledgement; on
//!                         //    failure write share_failure_reply(&share.reply).
//!                         // 2. then write share.reply and share.follow_up (vardiff set_difficulty
//!                         //    and the current job re-sent under a new id).
//!                         // 3. if share.block is Some: hand the durable candidate to the block
//!                         //    submitter (`server::submit`), which gets the node's verdict and
//!                         //    records BlockFound / BlockRejected for its block id.
//!                     }
//!                     SessionOutput::Disconnect { lines, reason } => { write lines; log reason; close }
//!                 }
//!             }
//!         }
//!         job = new_job.recv() => write session.on_job(&job, now_ms) (possibly empty),
//!     }
//! }
//! ```
//! The `JobBook` is shared (e.g. the server publishes `Arc<JobBook>` snapshots through a watch
//! channel): every connection must see each job in the book before it is notified.
//! `on_job` also runs the vardiff idle rule (lowering the difficulty of a silent miner), so jobs
//! (template refreshes) should reach every session at least every ~30 s. The session config's
//! `extranonce2_size` and the extranonce1 length must equal the job config's sizes.
//! Every line produced here ends with `\n`.
//!
//! Difficulties (sent, suggested, the vardiff settings) are in the chain's [`DifficultyUnit`]
//! (on scrypt chains difficulty 1 is 65,536 Bitcoin difficulty-1 targets) and become share
//! targets only through it; a share's weight is the work of its target whatever the unit.

use crate::ban::{format_utc, BanStore};
use crate::job::{Job, JobBook, JobLookupError, MAX_EXTRANONCE2_SIZE};
use crate::message::{
    error_line, error_reply, notify_line, parse_line, parse_submit_fast, result_line,
    set_difficulty_line, true_line, ErrorCode, ParsedLine, ReplyId, Request, RpcError, SubmitRef,
    TRUE_TAIL,
};
use crate::vardiff::{Vardiff, VardiffConfig};
use pool_core::address::parse_payout_address;
use pool_core::chain::ChainParams;
use pool_core::event::{PayoutAddress, ShareAccepted, ShareWork, WorkerName};
use pool_core::share::{check_share, rolled_version, ShareInput};
use pool_core::{BlockId, DifficultyUnit, Sats, Target};
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use thiserror::Error;

/// Longest worker name (the part after the address) accepted.
pub const MAX_WORKER_NAME: usize = 64;

/// Settings shared by every session of a pool.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub chain: &'static ChainParams,
    /// Must equal the job config's extranonce2 size.
    pub extranonce2_size: usize,
    /// BIP310 pool version mask; 0 turns version rolling off.
    pub version_mask: u32,
    pub vardiff: VardiffConfig,
    /// How far a share's ntime may be ahead of the job's ntime (seconds; Bitcoin allows blocks
    /// up to 2 hours ahead).
    pub max_ntime_ahead_secs: u32,
    /// Distinct usernames one connection may authorize.
    pub max_workers: usize,
    /// Malformed requests in a row before the connection is dropped.
    pub max_consecutive_errors: u32,
    /// Banned workers are refused at `mining.authorize` (checked against the session's peer
    /// IP, see [`Session::set_peer_ip`]). The server sets its store here.
    pub bans: Option<Arc<BanStore>>,
}

impl SessionConfig {
    /// Defaults: BIP310 mask `1fffe000`, 2 h ntime window, 32 workers, 50 malformed lines.
    pub fn new(chain: &'static ChainParams, extranonce2_size: usize) -> SessionConfig {
        SessionConfig {
            chain,
            extranonce2_size,
            version_mask: 0x1fff_e000,
            vardiff: VardiffConfig::default(),
            max_ntime_ahead_secs: 7200,
            max_workers: 32,
            max_consecutive_errors: 50,
            bans: None,
        }
    }
}

/// What the server must do after a line.
#[derive(Debug)]
pub enum SessionOutput {
    /// Send these lines now (possibly none).
    Send(Vec<String>),
    /// A share was refused: send `reply`; `reason` is for logs and statistics.
    ShareRejected {
        reply: String,
        reason: ShareRejection,
    },
    /// A share was accepted. Append `event` to the ledger durably, THEN send `reply` and
    /// `follow_up`; submit `block` when present. See the module docs.
    ShareAccepted(Box<AcceptedShare>),
    /// Send `lines`, then close the connection.
    Disconnect { lines: Vec<String>, reason: String },
}

/// An accepted share and what follows from it.
#[derive(Clone, Debug)]
pub struct AcceptedShare {
    /// The ledger event; acknowledge the miner only once it is durable.
    pub event: ShareAccepted,
    /// What the miner submitted, recorded with the event (`Event::ShareWithWork`) so an auditor
    /// can rebuild the share's header from its job's `JobCreated`.
    pub work: ShareWork,
    /// Present when the share meets the block threshold.
    pub block: Option<BlockCandidate>,
    /// The `true` reply, to send after the event is durable. [`AcceptedShare::failure_reply`]
    /// reads the request id back from it.
    pub reply: String,
    /// Lines to send after `reply` (a vardiff `mining.set_difficulty`, then the current job
    /// re-sent under a new id so that the miner takes the difficulty up at once).
    pub follow_up: Vec<String>,
}

impl AcceptedShare {
    /// The reply to send instead of `reply` when the ledger append failed (built only then).
    pub fn failure_reply(&self) -> String {
        share_failure_reply(&self.reply)
    }
}

/// The error reply for a share whose ledger append failed, given its `true` reply (the same id).
pub fn share_failure_reply(reply: &str) -> String {
    let message = "share not recorded: pool storage error, please retry";
    let id = reply
        .strip_prefix("{\"id\":")
        .and_then(|r| r.strip_suffix(TRUE_TAIL))
        .unwrap_or("null");
    let line = error_reply(ReplyId::Null, ErrorCode::Other, &message);
    // `line` starts with `{"id":null`: put the id's JSON text in its place.
    format!("{{\"id\":{id}{}", &line["{\"id\":null".len()..])
}

/// A share that meets the block threshold, ready for `submitblock`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockCandidate {
    pub height: u64,
    pub block_id: BlockId,
    /// The whole block in its consensus serialization (hex-encoded only for `submitblock`).
    pub block: Vec<u8>,
    /// What the coinbase pays to the pool's address.
    pub reward: Sats,
    pub network_target: Target,
    pub finder: PayoutAddress,
    pub worker: WorkerName,
    pub job_id: u64,
    pub header: [u8; 80],
}

/// Why a share was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ShareRejection {
    #[error("not subscribed")]
    NotSubscribed,
    #[error("unauthorized worker")]
    Unauthorized,
    #[error("job not found")]
    UnknownJob,
    #[error("stale job")]
    StaleJob,
    #[error("duplicate share")]
    Duplicate,
    #[error("low difficulty share (above target)")]
    LowDifficulty,
    #[error("ntime out of range")]
    NtimeOutOfRange,
    #[error("extranonce2 must be {expected} bytes of hex")]
    BadExtranonce2 { expected: usize },
    #[error("version bits outside the negotiated mask")]
    VersionBitsOutsideMask,
    #[error("version rolling was not negotiated (mining.configure)")]
    VersionRollingNotNegotiated,
    #[error("{0} must be 8 hex digits")]
    BadHexField(&'static str),
    #[error("connection extranonce1 does not fit the job (pool misconfiguration)")]
    Extranonce1Mismatch,
}

impl ShareRejection {
    /// The Stratum error code (ckpool/cgminer convention).
    pub fn code(&self) -> ErrorCode {
        match self {
            ShareRejection::NotSubscribed => ErrorCode::NotSubscribed,
            ShareRejection::Unauthorized => ErrorCode::Unauthorized,
            ShareRejection::UnknownJob | ShareRejection::StaleJob => ErrorCode::JobNotFound,
            ShareRejection::Duplicate => ErrorCode::Duplicate,
            ShareRejection::LowDifficulty => ErrorCode::LowDifficulty,
            _ => ErrorCode::Other,
        }
    }
}

#[derive(Clone, Debug)]
struct AuthorizedWorker {
    username: String,
    address: PayoutAddress,
    worker: WorkerName,
}

/// Identifies a share for duplicate detection (extranonce1 is the connection's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ShareKey {
    job_id: u64,
    extranonce2: [u8; MAX_EXTRANONCE2_SIZE],
    ntime: u32,
    nonce: u32,
    version: u32,
}

/// How many runs of issue-time targets a session remembers (a run covers consecutive jobs sent
/// at the same target, so an idle miner keeps one; the job book holds 16 jobs by default).
const ISSUED_MEMORY: usize = 32;

/// The share target a run of jobs was sent with: jobs `first..=last` under their own ids, or
/// (`resend` > 0) one job re-sent after a retarget under the wire id `{id:x}.{resend:x}`.
#[derive(Clone, Copy, Debug)]
struct Issued {
    first: u64,
    last: u64,
    resend: u32,
    target: Target,
}

impl Issued {
    fn covers(&self, job_id: u64, resend: u32) -> bool {
        self.resend == resend && self.first <= job_id && job_id <= self.last
    }
}

/// A submitted job id: the job's own (`1f`) or a re-sent job's (`1f.2`, see [`Session`]).
fn split_job_id(wire: &str) -> Result<(&str, u32), ShareRejection> {
    match wire.split_once('.') {
        None => Ok((wire, 0)),
        Some((id, resend)) => match u32::from_str_radix(resend, 16) {
            Ok(n) if n > 0 && resend.len() <= 8 => Ok((id, n)),
            _ => Err(ShareRejection::UnknownJob),
        },
    }
}

/// One connection's state.
///
/// After a retarget the current job is sent again at once under a new wire id (`{id:x}.{n:x}`,
/// `clean_jobs` false) behind the `mining.set_difficulty`: miners such as cpuminer take up a
/// new difficulty only with a job they have not seen, so otherwise the change reached them
/// with the next template, up to `refresh_secs` later. Shares for every job sent before stay
/// valid at the target each was sent with; the re-sent job is the same work (same header for
/// the same nonce), so duplicates are caught across its ids.
#[derive(Debug)]
pub struct Session {
    config: Arc<SessionConfig>,
    extranonce1: Vec<u8>,
    extranonce1_hex: String,
    subscribed: bool,
    user_agent: Option<String>,
    workers: Vec<AuthorizedWorker>,
    /// The negotiated BIP310 mask (pool mask & miner mask), once configured.
    version_mask: Option<u32>,
    vardiff: Vardiff,
    /// Share target each job was sent with, newest last.
    issued: VecDeque<Issued>,
    /// Jobs re-sent after a retarget so far (numbers their wire ids).
    resends: u32,
    /// The last difficulty sent with `mining.set_difficulty`.
    sent_difficulty: Option<f64>,
    seen: HashSet<ShareKey>,
    /// The target of the current difficulty, cached with the difficulty it was computed for.
    difficulty_target: Option<(f64, Target)>,
    consecutive_errors: u32,
    accepted: u64,
    rejected: u64,
    /// The miner's address, for worker bans (unset: the unspecified address).
    peer_ip: Option<IpAddr>,
}

impl Session {
    /// A new session; `extranonce1` is unique per connection (the server allocates it) and must
    /// have the job config's extranonce1 size.
    pub fn new(config: Arc<SessionConfig>, extranonce1: Vec<u8>, now_ms: u64) -> Session {
        let vardiff = Vardiff::new(&config.vardiff, now_ms);
        Session {
            extranonce1_hex: hex::encode(&extranonce1),
            extranonce1,
            config,
            subscribed: false,
            user_agent: None,
            workers: Vec::new(),
            version_mask: None,
            vardiff,
            issued: VecDeque::new(),
            resends: 0,
            sent_difficulty: None,
            seen: HashSet::new(),
            difficulty_target: None,
            consecutive_errors: 0,
            accepted: 0,
            rejected: 0,
            peer_ip: None,
        }
    }

    /// The miner's IP address: a worker banned from it is refused at `mining.authorize`.
    pub fn set_peer_ip(&mut self, ip: IpAddr) {
        self.peer_ip = Some(ip);
    }

    /// The usernames (`address.worker`) this connection authorized.
    pub fn authorized_usernames(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|w| w.username.as_str())
    }

    pub fn extranonce1(&self) -> &[u8] {
        &self.extranonce1
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    pub fn is_authorized(&self) -> bool {
        !self.workers.is_empty()
    }

    /// The miner software's name from `mining.subscribe`, if it gave one.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }

    /// The difficulty assigned now (applies to jobs sent from now on), in the chain's
    /// [`DifficultyUnit`] (what `mining.set_difficulty` sent).
    pub fn difficulty(&self) -> f64 {
        self.vardiff.difficulty()
    }

    /// The negotiated BIP310 mask, if version rolling is on.
    pub fn version_mask(&self) -> Option<u32> {
        self.version_mask
    }

    /// Shares accepted and rejected so far.
    pub fn share_counts(&self) -> (u64, u64) {
        (self.accepted, self.rejected)
    }

    /// Handles one raw line from the framer (UTF-8 is checked here).
    pub fn handle_bytes(&mut self, line: &[u8], now_ms: u64, jobs: &JobBook) -> SessionOutput {
        match std::str::from_utf8(line) {
            Ok(s) => self.handle_line(s, now_ms, jobs),
            Err(_) => self.protocol_error(&Value::Null, RpcError::other("invalid UTF-8")),
        }
    }

    /// Handles one request line.
    pub fn handle_line(&mut self, line: &str, now_ms: u64, jobs: &JobBook) -> SessionOutput {
        // The common submit line without building a JSON value; anything else (or anything
        // unusual) takes the general path below, which gives the same request.
        if let Some(fast) = parse_submit_fast(line) {
            self.consecutive_errors = 0;
            return self.submit(fast.id, fast.params, now_ms, jobs);
        }
        self.handle_parsed(parse_line(line), now_ms, jobs)
    }

    /// Handles a request read by the general parser.
    fn handle_parsed(&mut self, parsed: ParsedLine, now_ms: u64, jobs: &JobBook) -> SessionOutput {
        let id = parsed.id;
        let request = match parsed.request {
            Ok(r) => r,
            Err(e) => return self.protocol_error(&id, e),
        };
        self.consecutive_errors = 0;
        match request {
            Request::Subscribe { user_agent } => {
                self.subscribed = true;
                self.user_agent = user_agent;
                let result = json!([
                    [
                        ["mining.set_difficulty", &self.extranonce1_hex],
                        ["mining.notify", &self.extranonce1_hex]
                    ],
                    &self.extranonce1_hex,
                    self.config.extranonce2_size
                ]);
                let mut lines = vec![result_line(&id, &result)];
                // A miner that authorized first gets its work now.
                if self.is_authorized() {
                    lines.extend(self.first_work(jobs, now_ms));
                }
                SessionOutput::Send(lines)
            }
            Request::Authorize { username } => self.authorize(&id, &username, now_ms, jobs),
            Request::Configure { extensions, params } => SessionOutput::Send(vec![result_line(
                &id,
                &self.configure(&extensions, &params),
            )]),
            Request::SuggestDifficulty { difficulty } => {
                let network = self.network_difficulty(jobs);
                let d = self
                    .vardiff
                    .set(&self.config.vardiff, difficulty, network, now_ms);
                let mut lines = vec![result_line(&id, &Value::Bool(true))];
                if let Some(sent) = self.sent_difficulty {
                    lines.push(set_difficulty_line(d));
                    self.sent_difficulty = Some(d);
                    if sent != d {
                        lines.extend(self.resend_current(jobs));
                    }
                }
                SessionOutput::Send(lines)
            }
            Request::ExtranonceSubscribe => {
                // The extranonce never changes during a connection; nothing more will follow.
                SessionOutput::Send(vec![result_line(&id, &Value::Bool(true))])
            }
            Request::Submit(submit) => {
                self.submit(ReplyId::from_value(&id), submit.view(), now_ms, jobs)
            }
            Request::ClientResponse => SessionOutput::Send(Vec::new()),
        }
    }

    /// The lines announcing a new job (a `mining.set_difficulty` first when the difficulty
    /// changed, then `mining.notify`). Empty until the miner is subscribed and authorized.
    pub fn on_job(&mut self, job: &Job, now_ms: u64) -> Vec<String> {
        if !(self.subscribed && self.is_authorized()) {
            return Vec::new();
        }
        let network = self.unit().difficulty(&job.block_target);
        // A miner silent for long gets an easier difficulty; the result is sent below.
        let _ = self.vardiff.on_tick(&self.config.vardiff, network, now_ms);
        self.issue(job)
    }

    fn first_work(&mut self, jobs: &JobBook, now_ms: u64) -> Vec<String> {
        if self.sent_difficulty.is_some() {
            return Vec::new();
        }
        match jobs.current() {
            Some(job) => {
                let job = Arc::clone(job);
                self.on_job(&job, now_ms)
            }
            None => {
                let d = self.vardiff.difficulty();
                self.sent_difficulty = Some(d);
                vec![set_difficulty_line(d)]
            }
        }
    }

    /// Sends `job` at the current difficulty and remembers the target it was sent with.
    fn issue(&mut self, job: &Job) -> Vec<String> {
        let mut lines = Vec::with_capacity(2);
        let d = self.vardiff.difficulty();
        if self.sent_difficulty != Some(d) {
            lines.push(set_difficulty_line(d));
            self.sent_difficulty = Some(d);
        }
        if job.clean_jobs {
            self.issued.clear();
            self.seen.clear();
        }
        let target = self.share_target(job);
        match self.issued.back_mut() {
            Some(run) if run.resend == 0 && run.target == target && run.last < job.id => {
                run.last = job.id;
            }
            _ => self.remember_issued(job.id, 0, target),
        }
        lines.push(job.notify_line().to_owned());
        lines
    }

    fn remember_issued(&mut self, job_id: u64, resend: u32, target: Target) {
        if self.issued.len() == ISSUED_MEMORY {
            self.issued.pop_front();
        }
        self.issued.push_back(Issued {
            first: job_id,
            last: job_id,
            resend,
            target,
        });
    }

    /// The book's current job again, under a new wire id and at the current difficulty (after
    /// a retarget; see [`Session`]). Nothing before the first job.
    fn resend_current(&mut self, jobs: &JobBook) -> Option<String> {
        let job = jobs.current()?;
        if self.issued.is_empty() {
            return None;
        }
        self.resends = self.resends.checked_add(1)?;
        let target = self.share_target(job);
        self.remember_issued(job.id, self.resends, target);
        let mut notify = job.notify.clone();
        notify.job_id = format!("{:x}.{:x}", job.id, self.resends);
        notify.clean_jobs = false;
        Some(notify_line(&notify))
    }

    fn authorize(
        &mut self,
        id: &Value,
        username: &str,
        now_ms: u64,
        jobs: &JobBook,
    ) -> SessionOutput {
        if self.workers.iter().any(|w| w.username == username) {
            return SessionOutput::Send(vec![result_line(id, &Value::Bool(true))]);
        }
        if self.workers.len() >= self.config.max_workers {
            let e = RpcError::new(
                ErrorCode::Unauthorized,
                "too many workers on this connection",
            );
            return SessionOutput::Send(vec![error_line(id, &e)]);
        }
        if let Some(bans) = &self.config.bans {
            let ip = self
                .peer_ip
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            if let Some(until) = bans.worker_banned_until(username, ip, now_ms) {
                let e = RpcError::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "worker banned until {} (for too many invalid shares, or by the operator)",
                        format_utc(until)
                    ),
                );
                return SessionOutput::Send(vec![error_line(id, &e)]);
            }
        }
        let (address, worker) = match username.split_once('.') {
            Some((a, w)) => (a, w),
            None => (username, ""),
        };
        if worker.len() > MAX_WORKER_NAME {
            let e = RpcError::new(
                ErrorCode::Unauthorized,
                format!("worker name longer than {MAX_WORKER_NAME} bytes"),
            );
            return SessionOutput::Send(vec![error_line(id, &e)]);
        }
        let parsed = match parse_payout_address(address, self.config.chain) {
            Ok(p) => p,
            Err(e) => {
                let e = RpcError::new(
                    ErrorCode::Unauthorized,
                    format!(
                        "username must be a {} payout address, optionally followed by .worker: {e}",
                        self.config.chain.name
                    ),
                );
                return SessionOutput::Send(vec![error_line(id, &e)]);
            }
        };
        self.workers.push(AuthorizedWorker {
            username: username.to_owned(),
            address: parsed.address,
            worker: WorkerName(worker.to_owned()),
        });
        let mut lines = vec![result_line(id, &Value::Bool(true))];
        if self.subscribed {
            lines.extend(self.first_work(jobs, now_ms));
        }
        SessionOutput::Send(lines)
    }

    fn configure(
        &mut self,
        extensions: &[String],
        params: &serde_json::Map<String, Value>,
    ) -> Value {
        let mut result = serde_json::Map::new();
        for ext in extensions {
            if ext == "version-rolling" {
                let pool_mask = self.config.version_mask;
                let miner_mask = match params.get("version-rolling.mask") {
                    Some(Value::String(s)) => u32::from_str_radix(s, 16).unwrap_or(0),
                    _ => u32::MAX,
                };
                let mask = pool_mask & miner_mask;
                let min_bits = params
                    .get("version-rolling.min-bit-count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                // BIP310: without as many bits as the miner needs, there is no version rolling.
                if pool_mask == 0 || u64::from(mask.count_ones()) < min_bits {
                    result.insert(ext.clone(), Value::Bool(false));
                    self.version_mask = None;
                } else {
                    result.insert(ext.clone(), Value::Bool(true));
                    result.insert(
                        "version-rolling.mask".into(),
                        Value::String(format!("{mask:08x}")),
                    );
                    self.version_mask = Some(mask);
                }
            } else if ext.len() <= 64 {
                result.insert(ext.clone(), Value::Bool(false));
            }
        }
        Value::Object(result)
    }

    fn submit(
        &mut self,
        id: ReplyId<'_>,
        s: SubmitRef<'_>,
        now_ms: u64,
        jobs: &JobBook,
    ) -> SessionOutput {
        match self.check_submit(s, now_ms, jobs) {
            Ok(accepted) => {
                self.accepted += 1;
                let mut share = accepted;
                share.reply = true_line(id);
                SessionOutput::ShareAccepted(Box::new(share))
            }
            Err(reason) => {
                self.rejected += 1;
                SessionOutput::ShareRejected {
                    reply: error_reply(id, reason.code(), &reason),
                    reason,
                }
            }
        }
    }

    fn check_submit(
        &mut self,
        s: SubmitRef<'_>,
        now_ms: u64,
        jobs: &JobBook,
    ) -> Result<AcceptedShare, ShareRejection> {
        if !self.subscribed {
            return Err(ShareRejection::NotSubscribed);
        }
        let worker_index = self
            .workers
            .iter()
            .position(|w| w.username == s.worker)
            .ok_or(ShareRejection::Unauthorized)?;
        let (job_id, resend) = split_job_id(s.job_id)?;
        let job = jobs.get(job_id).map_err(|e| match e {
            JobLookupError::Unknown => ShareRejection::UnknownJob,
            JobLookupError::Stale => ShareRejection::StaleJob,
        })?;
        if self.extranonce1.len() != job.extranonce1_size {
            return Err(ShareRejection::Extranonce1Mismatch);
        }

        let size = job.extranonce2_size;
        let mut extranonce2 = [0u8; MAX_EXTRANONCE2_SIZE];
        if s.extranonce2.len() != size * 2
            || hex::decode_to_slice(s.extranonce2, &mut extranonce2[..size]).is_err()
        {
            return Err(ShareRejection::BadExtranonce2 { expected: size });
        }
        let ntime = parse_u32_hex(s.ntime).ok_or(ShareRejection::BadHexField("ntime"))?;
        let nonce = parse_u32_hex(s.nonce).ok_or(ShareRejection::BadHexField("nonce"))?;
        if ntime < job.min_ntime
            || ntime > job.ntime.saturating_add(self.config.max_ntime_ahead_secs)
        {
            return Err(ShareRejection::NtimeOutOfRange);
        }
        let version = match s.version_bits {
            None => job.version,
            Some(bits) => {
                let bits =
                    parse_u32_hex(bits).ok_or(ShareRejection::BadHexField("version bits"))?;
                match self.version_mask {
                    None if bits == 0 => job.version,
                    None => return Err(ShareRejection::VersionRollingNotNegotiated),
                    Some(mask) if bits & !mask != 0 => {
                        return Err(ShareRejection::VersionBitsOutsideMask)
                    }
                    Some(mask) => rolled_version(job.version, bits, mask),
                }
            }
        };
        let key = ShareKey {
            job_id: job.id,
            extranonce2,
            ntime,
            nonce,
            version,
        };
        if self.seen.contains(&key) {
            return Err(ShareRejection::Duplicate);
        }

        // Shares are checked against the target the job was sent with, or the current one when
        // that is easier (the miner may apply a new difficulty at once).
        let current = self.share_target(job);
        let issued = self
            .issued
            .iter()
            .rev()
            .find(|r| r.covers(job.id, resend))
            .map(|r| r.target);
        let target = issued.map_or(current, |t| t.easier(current));

        let input = ShareInput {
            coinb1: &job.coinb1,
            extranonce1: &self.extranonce1,
            extranonce2: &extranonce2[..size],
            coinb2: &job.coinb2,
            merkle_branch: &job.merkle_branch,
            version,
            prev_hash: &job.prev_hash,
            nbits: job.nbits,
            ntime,
            nonce,
        };
        let check = check_share(&input, |h| job.pow.hash(h), &target, &job.block_target);
        if !check.meets_share && !check.meets_block {
            return Err(ShareRejection::LowDifficulty);
        }
        self.seen.insert(key);
        let worker = &self.workers[worker_index];
        let (address, worker) = (worker.address.clone(), worker.worker.clone());

        let block = check.meets_block.then(|| BlockCandidate {
            height: job.height,
            block_id: job
                .pow
                .block_id(job.block_id_algorithm, &check.header, &check.pow_hash),
            block: job.block_bytes(&check.header, &self.extranonce1, &extranonce2[..size]),
            reward: job.pool_reward,
            // The threshold the block had to meet: the network target, or on regtest with
            // `pool_block_difficulty` the pool's harder one, so PPLNS windows (a multiple of this
            // target's work) span many shares there as they do on a real network.
            network_target: job.block_target,
            finder: address.clone(),
            worker: worker.clone(),
            job_id: job.id,
            header: check.header,
        });

        // For the hashrate estimate, a share counts only if it meets the harder of the two
        // targets it may have been mined at (the job's and the current one), and then at that
        // difficulty; one that meets only the easier shows the miner alive and no more. After a
        // retarget some miners switch at once and some at their next job: a miner working at
        // the easier target meets the harder one with probability d_easy / d_hard, so counting
        // those at d_hard credits it d_easy per share on average, exactly its work; a miner at
        // the harder target has every share counted. Unbiased for both kinds (counting every
        // share at the easier target took a switched miner for a fraction of itself; counting
        // at the harder one when met and the easier otherwise overrated a next-job miner by up
        // to 2x until its next job, and with long jobs settled it ~4x too high).
        let harder = issued.map_or(current, |t| t.harder(current));
        let rate_difficulty = if harder.is_met_by(&check.pow_hash) {
            self.unit().difficulty(&harder)
        } else {
            0.0
        };
        let mut follow_up = Vec::new();
        let network = self.unit().difficulty(&job.block_target);
        if let Some(d) =
            self.vardiff
                .on_share(&self.config.vardiff, rate_difficulty, network, now_ms)
        {
            follow_up.push(set_difficulty_line(d));
            self.sent_difficulty = Some(d);
            follow_up.extend(self.resend_current(jobs));
        }

        Ok(AcceptedShare {
            event: ShareAccepted {
                address,
                worker,
                share_target: target,
                weight: target.work(),
                job_id: job.id,
                height: job.height,
                network_target: job.block_target,
                time_ms: now_ms,
            },
            work: ShareWork {
                extranonce1: self.extranonce1.clone(),
                extranonce2: extranonce2[..size].to_vec(),
                ntime,
                nonce,
                version,
            },
            block,
            reply: String::new(),
            follow_up,
        })
    }

    /// The share target at the current difficulty on `job`: never harder than the job's block
    /// threshold (so every block is also a share). The difficulty's target is cached: it only
    /// changes on a retarget.
    fn share_target(&mut self, job: &Job) -> Target {
        let d = self.vardiff.difficulty();
        let target = match self.difficulty_target {
            Some((cached, t)) if cached == d => t,
            _ => {
                let t = self.unit().target(d).unwrap_or(Target::MAX);
                self.difficulty_target = Some((d, t));
                t
            }
        };
        target.easier(job.block_target)
    }

    /// What difficulty 1 means here: every difficulty this session sends (`mining.set_difficulty`),
    /// takes (`mining.suggest_difficulty`) or clamps to (vardiff bounds, the block threshold) is
    /// in this unit, and becomes a target only through it.
    fn unit(&self) -> DifficultyUnit {
        self.config.chain.difficulty_unit
    }

    /// The current job's block threshold as a difficulty in the chain's unit.
    fn network_difficulty(&self, jobs: &JobBook) -> f64 {
        jobs.current()
            .map_or(f64::INFINITY, |j| self.unit().difficulty(&j.block_target))
    }

    fn protocol_error(&mut self, id: &Value, e: RpcError) -> SessionOutput {
        self.consecutive_errors = self.consecutive_errors.saturating_add(1);
        let line = error_line(id, &e);
        if self.consecutive_errors >= self.config.max_consecutive_errors {
            return SessionOutput::Disconnect {
                lines: vec![line],
                reason: format!(
                    "{} malformed requests in a row (last: {})",
                    self.consecutive_errors, e.message
                ),
            };
        }
        SessionOutput::Send(vec![line])
    }
}

/// Eight hex digits, big-endian (Stratum's ntime, nonce and version bits).
fn parse_u32_hex(s: &str) -> Option<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{BlockTemplate, JobConfig};
    use crate::message::tests::{json_text, request_text};
    use pool_core::chain::Chain;
    use pool_core::pow::MatrixCache;
    use proptest::prelude::*;
    use serde_json::json;

    const ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";

    fn setup() -> (JobBook, Session) {
        let chain = Chain::BsvRegtest.params();
        let template = BlockTemplate::from_value(json!({
            "version": 0x2000_0000u32,
            "previousblockhash": "62cb5ce485af08d24ebdca678df5643250ae068fa3ab2798d0283dd337f3ab06",
            "transactions": [],
            "coinbasevalue": 5_000_000_000u64,
            "bits": "207fffff",
            "curtime": 1_795_572_408u32,
            "height": 200,
        }))
        .unwrap();
        let mut book = JobBook::new(4);
        let cfg = JobConfig::new(chain, b"/fast/", vec![0x51]);
        book.add_template(&template, &cfg, None, &MatrixCache::new(1))
            .unwrap();
        let mut config = SessionConfig::new(chain, 4);
        config.vardiff.initial_difficulty = 1e-9;
        config.vardiff.min_difficulty = 1e-12;
        let mut session = Session::new(Arc::new(config), vec![0xde, 0xad, 0xbe, 0xef], 0);
        for line in [
            r#"{"id":0,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#.to_owned(),
            r#"{"id":1,"method":"mining.subscribe","params":[]}"#.to_owned(),
            json!({"id": 2, "method": "mining.authorize", "params": [format!("{ADDRESS}.w")]})
                .to_string(),
        ] {
            let _ = session.handle_line(&line, 0, &book);
        }
        (book, session)
    }

    /// Submit lines, mostly valid or nearly so, with ids and params in any JSON form.
    fn submit_text() -> impl Strategy<Value = String> {
        let hex8 = "[0-9a-f]{8}";
        let text = |s: String| json_text(Value::String(s));
        (
            prop_oneof![Just(format!("{ADDRESS}.w")), ".{0,8}"].prop_flat_map(text),
            prop_oneof![Just("1".to_owned()), "[0-9a-z]{0,3}"].prop_flat_map(text),
            prop_oneof![hex8.prop_map(String::from), "[0-9a-fz]{0,10}"].prop_flat_map(text),
            prop_oneof![Just("6b0642b8".to_owned()), hex8.prop_map(String::from)]
                .prop_flat_map(text),
            hex8.prop_flat_map(|s| json_text(Value::String(s))),
            prop::option::of(prop_oneof![
                Just("\"00000000\"".to_owned()),
                Just("\"1fffe000\"".to_owned()),
                Just("null".to_owned()),
                hex8.prop_flat_map(|s| json_text(Value::String(s))),
            ]),
            prop_oneof![
                Just("1".to_owned()),
                Just("\"a\\\"b\"".to_owned()),
                Just("null".to_owned()),
                Just("-3".to_owned()),
                Just("2.5".to_owned()),
                any::<String>().prop_flat_map(|s| json_text(Value::String(s))),
            ],
        )
            .prop_map(|(w, j, e, t, n, v, id)| {
                let mut params = [w, j, e, t, n].join(",");
                if let Some(v) = v {
                    params = format!("{params},{v}");
                }
                format!(r#"{{"id":{id},"method":"mining.submit","params":[{params}]}}"#)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// The session answers every line the same whether or not the fast submit parser ran.
        #[test]
        fn fast_and_general_paths_give_the_same_outputs(
            lines in prop::collection::vec(prop_oneof![submit_text(), request_text()], 1..30),
        ) {
            let (book, mut fast) = setup();
            let (_, mut general) = setup();
            for (i, line) in lines.iter().enumerate() {
                let now = 1_000 + i as u64;
                let a = fast.handle_line(line, now, &book);
                let b = general.handle_parsed(parse_line(line), now, &book);
                if let (SessionOutput::ShareAccepted(a), SessionOutput::ShareAccepted(b)) = (&a, &b) {
                    prop_assert_eq!(a.failure_reply(), b.failure_reply());
                }
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "line {}", line);
            }
            prop_assert_eq!(fast.share_counts(), general.share_counts());
        }
    }

    #[test]
    fn failure_reply_echoes_the_id() {
        let (book, mut s) = setup();
        let mut accepted = 0;
        for nonce in 0..20u32 {
            let line = format!(
                r#"{{"id":"q\"{nonce}","method":"mining.submit","params":["{ADDRESS}.w","1","00000001","6b0642b8","{nonce:08x}"]}}"#
            );
            if let SessionOutput::ShareAccepted(a) = s.handle_line(&line, 5, &book) {
                let expected = error_line(
                    &json!(format!("q\"{nonce}")),
                    &RpcError::other("share not recorded: pool storage error, please retry"),
                );
                assert_eq!(a.failure_reply(), expected);
                accepted += 1;
            }
        }
        assert!(accepted > 0);
    }
}
