//! One miner connection: bytes -> lines (framer) -> [`Session`] -> replies, plus new jobs from the
//! job source. An accepted share is acknowledged only after its ledger append is durable; a share
//! that meets the block threshold is appended with its `BlockCandidate`, and the block is handed
//! to the [`super::submit`] module once both are durable.
//!
//! Replies leave in request order. A miner that pipelines submits is not held to one ledger
//! commit per share: later lines are handled while earlier shares' appends are in flight (the
//! ledger's group commit batches them), up to [`MAX_PIPELINE`] queued replies, after which the
//! connection stops reading until the front is answered.
//!
//! On a scrypt chain (~0.4 ms and 128 KiB a share hash) the lines are handled in
//! [`off_async_workers`]: the worker thread becomes a blocking thread for the batch and its
//! other tasks move on, so hashing never stalls other connections. The lines are still handled
//! in order, by this task, so ordering and acknowledgement are unchanged. SHA-256d and HeavyHash
//! shares are checked inline.

use super::{IpSlot, Shared};
use crate::codec::LineFramer;
use crate::flood::FloodWindow;
use crate::job::{Job, JobBook};
use crate::message::notify_line;
use crate::session::{AcceptedShare, BlockCandidate, Session, SessionOutput};
use pool_core::event::{BlockCandidate as CandidateEvent, Event, ShareWithWork};
use pool_core::pow::PowAlgorithm;
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a write to a miner may take before the miner counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Replies a connection may have queued (shares awaiting their append included) before it
/// stops reading more requests.
const MAX_PIPELINE: usize = 256;
/// Capacity a worker thread's reply buffer keeps between writes.
const OUT_KEPT: usize = 256 * 1024;

thread_local! {
    /// Each worker thread's buffer for gathering a connection's replies (see `flush_ready`).
    static OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) struct Connection {
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    jobs: watch::Receiver<Arc<JobBook>>,
    shutdown: CancellationToken,
    _slot: IpSlot,
    /// The outcomes of this connection's last submits.
    flood: FloodWindow,
}

enum Flow {
    Continue,
    Close,
    /// A share flood: close at once, sending nothing more.
    Cut,
}

impl Connection {
    pub(crate) fn new(
        shared: Arc<Shared>,
        stream: TcpStream,
        peer: SocketAddr,
        jobs: watch::Receiver<Arc<JobBook>>,
        shutdown: CancellationToken,
        slot: IpSlot,
    ) -> Connection {
        Connection {
            shared,
            stream,
            peer,
            jobs,
            shutdown,
            _slot: slot,
            flood: FloodWindow::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let _ = self.stream.set_nodelay(true);
        let peer = self.peer;
        let extranonce1 = self.shared.allocate_extranonce1();
        let mut session = Session::new(Arc::clone(&self.shared.session), extranonce1, now_ms());
        session.set_peer_ip(peer.ip());
        // The connection stops on the server's shutdown or when the registry closes it (an
        // operator's ban): its own token, a child of the server's.
        self.shutdown = self.shutdown.child_token();
        let registration = self
            .shared
            .registry
            .register(peer, self.shutdown.clone(), now_ms());
        let mut known = Known::default();
        let mut framer = LineFramer::new(self.shared.max_line_bytes);
        let mut book = Arc::clone(&self.jobs.borrow_and_update());
        // No read or write buffer per connection: the socket is read only once readable, into
        // a buffer on the stack (see `read_ready`), and replies are gathered in the thread's
        // buffer (`flush_ready`); the framer holds bytes only while a line is partial.
        // The futures below live across loop turns: building them anew on every turn would
        // register (and drop) a timer, a cancellation waiter and a watch waiter per request, on
        // structures every connection shares.
        let mut deadline = Instant::now() + self.shared.idle_timeout;
        let idle = tokio::time::sleep_until(deadline);
        tokio::pin!(idle);
        let cancelled = self.shutdown.clone().cancelled_owned();
        tokio::pin!(cancelled);
        let mut job_change = wait_for_job(self.jobs.clone());
        // Replies in request order; an accepted share's reply waits for its durable append
        // while later lines are already being handled (pipelining miners are not serialized
        // on the ledger's commit latency).
        let mut outgoing: VecDeque<Outgoing> = VecDeque::new();
        tracing::debug!(%peer, "miner connected");
        self.shared
            .stats
            .connections
            .fetch_add(1, Ordering::Relaxed);
        let metrics = crate::metrics::metrics();
        metrics.connections.inc();
        metrics.connections_opened.inc();
        loop {
            let shares_pending = outgoing.iter().any(|o| matches!(o, Outgoing::Share(..)));
            let can_read = outgoing.len() < MAX_PIPELINE;
            tokio::select! {
                _ = &mut cancelled => break,
                _ = &mut idle => {
                    // The deadline moves with every request; the timer only catches up here.
                    if deadline > Instant::now() {
                        idle.as_mut().reset(deadline);
                        continue;
                    }
                    tracing::info!(%peer, "closing idle connection (no complete request within the idle timeout)");
                    break;
                }
                _ = front_ready(&mut outgoing), if shares_pending => {}
                (jobs, changed) = &mut job_change => {
                    if changed.is_err() {
                        break; // the job source is gone: the server is stopping
                    }
                    self.jobs = jobs;
                    let old_prev = book.current().map(|j| j.prev_hash);
                    book = Arc::clone(&self.jobs.borrow_and_update());
                    job_change = wait_for_job(self.jobs.clone());
                    if let Some(job) = book.current() {
                        let mut lines = session.on_job(job, now_ms());
                        // The watch shows only the newest book: if this connection missed the
                        // job that moved to a new block, this one must clean the old jobs.
                        if !job.clean_jobs && old_prev.is_some_and(|p| p != job.prev_hash) {
                            force_clean(&mut lines, job);
                        }
                        // Behind any pending share replies, so a vardiff change announced in
                        // a reply reaches the miner before the job it applies to.
                        outgoing.push_back(Outgoing::Ready(lines, None));
                        let _ = known.update(&session, &registration);
                    }
                }
                readable = self.stream.readable(), if can_read => {
                    if let Err(e) = readable {
                        tracing::debug!(%peer, "read failed: {e}");
                        break;
                    }
                    match read_ready(&self.stream, &mut framer) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        Err(e) => {
                            tracing::debug!(%peer, "read failed: {e}");
                            break;
                        }
                    }
                    let pow = self.shared.session.chain.pow;
                    let flow = off_async_workers(pow, || {
                        self.drain_lines(&mut framer, &mut session, &book, &mut deadline, &mut outgoing)
                    });
                    framer.release_if_drained();
                    if known.update(&session, &registration) {
                        self.close_if_banned(&session, &registration);
                    }
                    if let Flow::Cut = flow {
                        break;
                    }
                    if let Flow::Close = flow {
                        // Answer what can be answered at once, then close.
                        let _ = self.flush_ready(&mut outgoing).await;
                        break;
                    }
                }
            }
            if !self.flush_ready(&mut outgoing).await {
                break;
            }
        }
        // Appends already handed to the ledger complete (unanswered) before the task ends, so
        // the server's shutdown waits for them.
        for o in outgoing {
            if let Outgoing::Share(share, _) = o {
                share.await;
            }
        }
        self.shared
            .stats
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        crate::metrics::metrics().connections.dec();
        let (accepted, rejected) = session.share_counts();
        if let Some(reason) = registration.close_reason() {
            let workers: Vec<&str> = session.authorized_usernames().collect();
            tracing::info!(%peer, workers = %workers.join(","), accepted, rejected, "connection closed: {reason}");
        }
        drop(registration);
        tracing::debug!(%peer, accepted, rejected, "miner disconnected");
    }

    /// Handles every complete line in the framer, queueing the replies.
    fn drain_lines(
        &mut self,
        framer: &mut LineFramer,
        session: &mut Session,
        book: &Arc<JobBook>,
        deadline: &mut Instant,
        outgoing: &mut VecDeque<Outgoing>,
    ) -> Flow {
        let peer = self.peer;
        let mut handled = false;
        // When these lines were read: a submit's latency runs from here to its reply written.
        let read_at = std::time::Instant::now();
        let flow = loop {
            let output = match framer.next_line() {
                Ok(Some(line)) => session.handle_bytes(line, now_ms(), book),
                Ok(None) => break Flow::Continue,
                Err(e) => {
                    tracing::warn!(%peer, "closing connection: {e}");
                    break Flow::Close;
                }
            };
            handled = true;
            match output {
                SessionOutput::Send(lines) => outgoing.push_back(Outgoing::Ready(lines, None)),
                SessionOutput::ShareRejected { reply, reason } => {
                    tracing::debug!(%peer, %reason, "share rejected");
                    self.shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    crate::metrics::metrics().reject(&reason);
                    if self.flood.record(&self.shared.flood, false) {
                        self.cut_flood(session);
                        break Flow::Cut;
                    }
                    outgoing.push_back(Outgoing::Ready(vec![reply], Some(read_at)));
                }
                SessionOutput::ShareAccepted(share) => {
                    self.flood.record(&self.shared.flood, true);
                    // Polled (and so handed to the ledger) on the next turn of the loop, with
                    // the other pending shares: no task per share, and the ledger's wakeup
                    // reaches this connection's task directly.
                    let future = persist_share(Arc::clone(&self.shared), *share, peer);
                    outgoing.push_back(Outgoing::Share(Box::pin(future), read_at));
                }
                SessionOutput::Disconnect { lines, reason } => {
                    tracing::warn!(%peer, "closing connection: {reason}");
                    outgoing.push_back(Outgoing::Ready(lines, None));
                    break Flow::Close;
                }
            }
        };
        if handled {
            *deadline = Instant::now() + self.shared.idle_timeout;
        }
        flow
    }

    /// A ban added between a username's authorize and its registration found no connection to
    /// close: after registering new usernames the connection looks at the bans once more.
    fn close_if_banned(&self, session: &Session, registration: &super::registry::Registration) {
        let now = now_ms();
        let banned = session.authorized_usernames().find_map(|u| {
            self.shared
                .bans
                .worker_banned_until(u, self.peer.ip(), now)
                .map(|until| (u, until))
        });
        if let Some((username, until)) = banned {
            registration.close(&format!(
                "worker {username} banned until {}",
                crate::ban::format_utc(until)
            ));
        }
    }

    /// Logs (once) and counts a flood cut, and records it as an offence of the connection's
    /// IP and workers (which may ban them).
    fn cut_flood(&self, session: &Session) {
        let peer = self.peer;
        let (submits, invalid) = self.flood.counts();
        let workers: Vec<&str> = session.authorized_usernames().collect();
        self.shared.stats.flood_cuts.fetch_add(1, Ordering::Relaxed);
        crate::metrics::metrics().flood_cuts.inc();
        tracing::warn!(
            %peer,
            workers = %workers.join(","),
            invalid,
            submits,
            "closing connection: share flood ({invalid} of its last {submits} shares invalid)"
        );
        for ban in self.shared.bans.record_cut(peer.ip(), &workers, now_ms()) {
            tracing::warn!(
                "banned {} until {} after {} flood cuts",
                ban.target,
                crate::ban::format_utc(ban.until_ms),
                match ban.cause {
                    crate::ban::BanCause::Floods { cuts } => cuts,
                    crate::ban::BanCause::Operator => 0,
                }
            );
        }
    }

    /// Writes the replies at the front of the queue that are ready; false when the miner is
    /// gone.
    async fn flush_ready(&mut self, outgoing: &mut VecDeque<Outgoing>) -> bool {
        if !matches!(outgoing.front(), Some(Outgoing::Ready(..))) {
            return true;
        }
        // The replies are gathered in this thread's buffer and written at once without waiting:
        // the socket buffer nearly always has room. Only what it did not take is copied for the
        // waiting write, so an idle connection holds no write buffer and a busy one allocates
        // nothing per flush.
        let rest = OUT.with(|buf| {
            let mut buf = buf.borrow_mut();
            buf.clear();
            // Submit replies are timed as they go to the socket (written at once just below,
            // nearly always): one clock read per flush.
            let mut now = None;
            let latency = &crate::metrics::metrics().submit_latency;
            while let Some(Outgoing::Ready(..)) = outgoing.front() {
                if let Some(Outgoing::Ready(lines, read_at)) = outgoing.pop_front() {
                    for line in lines {
                        buf.extend_from_slice(line.as_bytes());
                    }
                    if let Some(read_at) = read_at {
                        let now = *now.get_or_insert_with(std::time::Instant::now);
                        latency.observe_duration(now.saturating_duration_since(read_at));
                    }
                }
            }
            let rest = self.try_write_all(&buf);
            if buf.capacity() > OUT_KEPT {
                *buf = Vec::with_capacity(OUT_KEPT);
            }
            rest
        });
        match rest {
            Ok(None) => true,
            Ok(Some(rest)) => self.write_rest(&rest).await,
            Err(()) => false,
        }
    }

    /// Writes what the socket takes now; the bytes it did not take (`None`: all went out), or
    /// `Err` when the miner is gone.
    fn try_write_all(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>, ()> {
        let mut written = 0;
        while written < bytes.len() {
            match self.stream.try_write(&bytes[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(peer = %self.peer, "write failed: {e}");
                    return Err(());
                }
            }
        }
        Ok((written < bytes.len()).then(|| bytes[written..].to_vec()))
    }

    /// Writes bytes the socket did not take at once, waiting up to [`WRITE_TIMEOUT`]; false
    /// when the miner is gone or too slow.
    async fn write_rest(&mut self, bytes: &[u8]) -> bool {
        let write = tokio::time::timeout(WRITE_TIMEOUT, self.stream.write_all(bytes));
        let written = tokio::select! {
            // A miner that does not read must not hold up the pool's shutdown.
            _ = self.shutdown.cancelled() => return false,
            w = write => w,
        };
        match written {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::debug!(peer = %self.peer, "write failed: {e}");
                false
            }
            Err(_) => {
                tracing::info!(peer = %self.peer, "closing connection: miner does not read");
                false
            }
        }
    }
}

/// Reads what the socket has (one `read`, into a stack buffer: nothing per connection) and feeds
/// it to the framer. `Ok(0)`: the miner closed; `WouldBlock`: readiness was spurious.
/// Runs `handle` (a batch of request lines, share checks included) where a memory-hard hash
/// cannot stall the async workers: for scrypt on a multi-thread runtime, in
/// [`tokio::task::block_in_place`] (this worker hands its other tasks to another worker while
/// `handle` runs); inline for SHA-256d and HeavyHash (microseconds a share), and on a
/// current-thread runtime, which has no other worker to hand tasks to.
pub(crate) fn off_async_workers<R>(pow: PowAlgorithm, handle: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if pow == PowAlgorithm::Scrypt && multi_thread {
        tokio::task::block_in_place(handle)
    } else {
        handle()
    }
}

fn read_ready(stream: &TcpStream, framer: &mut LineFramer) -> std::io::Result<usize> {
    let mut buf = [0u8; 4096];
    loop {
        match stream.try_read(&mut buf) {
            Ok(n) => {
                framer.feed(&buf[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The next change of the job book, with the receiver handed back (an owned future, so it can
/// wait across loop turns).
fn wait_for_job(mut jobs: watch::Receiver<Arc<JobBook>>) -> JobChange {
    Box::pin(async move {
        let changed = jobs.changed().await;
        (jobs, changed)
    })
}

/// What [`wait_for_job`] resolves to: the receiver back, and whether the sender still exists.
type JobChanged = (
    watch::Receiver<Arc<JobBook>>,
    Result<(), watch::error::RecvError>,
);
type JobChange = Pin<Box<dyn Future<Output = JobChanged> + Send>>;

/// Replaces `job`'s notify line in `lines` by one with `clean_jobs` set.
fn force_clean(lines: &mut [String], job: &Job) {
    let mut notify = job.notify.clone();
    notify.clean_jobs = true;
    for line in lines.iter_mut() {
        if line.as_str() == job.notify_line() {
            *line = notify_line(&notify);
        }
    }
}

/// What the registry was last told of a connection: its authorized usernames (their count:
/// they are only ever added) and its difficulty. Compared after each batch of lines and each
/// job (a count and a float: nothing allocated), the registry is told only of changes.
#[derive(Default)]
struct Known {
    usernames: usize,
    difficulty: Option<f64>,
}

impl Known {
    /// Tells the registry what changed; true when usernames were added.
    fn update(&mut self, session: &Session, registration: &super::registry::Registration) -> bool {
        if !session.is_authorized() {
            return false;
        }
        let count = session.authorized_usernames().count();
        let added = count != self.usernames;
        if added {
            for username in session.authorized_usernames().skip(self.usernames) {
                registration.authorized(username);
            }
            self.usernames = count;
        }
        let difficulty = session.difficulty();
        if self.difficulty != Some(difficulty) {
            registration.difficulty(difficulty);
            self.difficulty = Some(difficulty);
        }
        added
    }
}

/// A queued reply: ready now, or an accepted share's reply once its append is durable. A
/// submit's reply carries when its line was read (for the submit latency histogram).
enum Outgoing {
    Ready(Vec<String>, Option<std::time::Instant>),
    Share(PendingShare, std::time::Instant),
}

/// An accepted share's append under way: its lines once it has finished.
type PendingShare = Pin<Box<dyn Future<Output = Vec<String>> + Send>>;

/// Drives every pending share (the first poll hands the event to the ledger, so all of a
/// connection's shares join the same group commit); finished ones become ready replies.
/// Resolves once the front of the queue is ready to be written.
fn front_ready(outgoing: &mut VecDeque<Outgoing>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        for o in outgoing.iter_mut() {
            if let Outgoing::Share(share, read_at) = o {
                if let Poll::Ready(lines) = share.as_mut().poll(cx) {
                    *o = Outgoing::Ready(lines, Some(*read_at));
                }
            }
        }
        match outgoing.front() {
            Some(Outgoing::Ready(..)) | None => Poll::Ready(()),
            Some(Outgoing::Share(..)) => Poll::Pending,
        }
    })
}

/// Makes an accepted share durable and returns the lines to send for it: the `true` reply and
/// its follow-ups once the append is durable, the failure reply otherwise. A share that meets
/// the block threshold is appended together with its `BlockCandidate` (the share first), and
/// the block goes to the node once both are durable (see [`super::submit`]), or at once, as soon
/// as the sink has taken them, when the sink says durability may take seconds
/// ([`crate::sink::EventSink::submit_blocks_at_once`]: an edge's stream during an election).
async fn persist_share(shared: Arc<Shared>, share: AcceptedShare, peer: SocketAddr) -> Vec<String> {
    let recorded = Event::ShareWithWork(ShareWithWork {
        share: share.event,
        work: share.work,
    });
    let (events, mut candidate) = match share.block {
        None => (vec![recorded], None),
        Some(block) => {
            let candidate = candidate_event(block);
            let events = vec![recorded, Event::BlockCandidate(candidate.clone())];
            (events, Some(candidate))
        }
    };
    let appended = match shared.sink.submit(events) {
        Ok(durable) => {
            if shared.sink.submit_blocks_at_once() {
                // The candidate is queued ahead of its verdict; the block does not wait for the
                // stream's acknowledgement.
                if let Some(c) = candidate.take() {
                    submit_block(&shared, c, "block candidate queued; submitting it now");
                }
            }
            durable.await
        }
        Err(e) => Err(e),
    };
    let lines = reply_lines(&shared, share.reply, share.follow_up, appended, peer);
    if let Some(candidate) = candidate {
        // Even when the ledger failed: a block in the chain is worth more than a tidy ledger
        // (its verdict append then fails too and is logged).
        submit_block(
            &shared,
            candidate,
            "block candidate recorded; submitting it",
        );
    }
    lines
}

fn submit_block(shared: &Shared, candidate: CandidateEvent, what: &str) {
    tracing::info!(
        height = candidate.height,
        block = %candidate.block_id,
        finder = %candidate.finder,
        worker = %candidate.worker,
        "{what}"
    );
    shared.submitter.submit(candidate, false);
}

/// The lines for an accepted share once its events are durable (or failed).
fn reply_lines(
    shared: &Shared,
    reply: String,
    follow_up: Vec<String>,
    appended: Result<(), crate::sink::SinkError>,
    peer: SocketAddr,
) -> Vec<String> {
    match appended {
        Ok(()) => {
            shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
            crate::metrics::metrics().accepted.inc();
            let mut lines = Vec::with_capacity(1 + follow_up.len());
            lines.push(reply);
            lines.extend(follow_up);
            lines
        }
        Err(e) => {
            crate::metrics::metrics().reject_ledger_error();
            if e.quiet {
                // The sink logged the condition (a full disk, the stream away) once; not once
                // per share.
                tracing::debug!(%peer, "share not acknowledged: {e}");
            } else {
                tracing::error!(%peer, "ledger append failed, share not acknowledged: {e}");
            }
            vec![crate::session::share_failure_reply(&reply)]
        }
    }
}

/// The ledger's record of a block candidate.
fn candidate_event(block: BlockCandidate) -> CandidateEvent {
    CandidateEvent {
        height: block.height,
        block_id: block.block_id,
        reward: block.reward,
        network_target: block.network_target,
        finder: block.finder,
        worker: block.worker,
        time_ms: now_ms(),
        block: block.block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{BlockTemplate, JobConfig};
    use pool_core::chain::ChainParams;
    use pool_core::pow::MatrixCache;

    #[test]
    fn force_clean_sets_clean_jobs_on_the_jobs_notify_line_only() {
        let chain = ChainParams::by_name("bsv-regtest").unwrap();
        let config = JobConfig::new(chain, b"/t/", vec![0x51]);
        let template =
            BlockTemplate::from_value(super::super::job_source::synthetic_template()).unwrap();
        let job = Job::build(&template, &config, 7, false, None, &MatrixCache::new(1)).unwrap();
        let other = "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1.0]}\n";
        let mut lines = vec![other.to_owned(), job.notify_line().to_owned()];
        force_clean(&mut lines, &job);
        assert_eq!(lines[0], other);
        let notify: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(notify["params"][8], serde_json::Value::Bool(true));
        assert_eq!(notify["params"][0], serde_json::json!("7"));
    }

    /// Whether a ticking task on the runtime's single worker advanced while `pow`'s handler
    /// held the calling task for 300 ms.
    fn others_ran_during(pow: PowAlgorithm) -> bool {
        use std::sync::atomic::AtomicU64;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = Arc::clone(&ticks);
            runtime.spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let advanced = runtime.block_on(async {
            // Let the ticker start, then hold a spawned task (on the worker) in the handler.
            while ticks.load(Ordering::Relaxed) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let ticks = Arc::clone(&ticks);
            tokio::spawn(async move {
                off_async_workers(pow, || {
                    let before = ticks.load(Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(300));
                    ticks.load(Ordering::Relaxed) > before
                })
            })
            .await
            .unwrap()
        });
        ticker.abort();
        advanced
    }

    #[test]
    fn scrypt_share_checks_do_not_stall_the_async_workers() {
        assert!(others_ran_during(PowAlgorithm::Scrypt));
        // The check tells the two apart: inline, the single worker is held.
        assert!(!others_ran_during(PowAlgorithm::Sha256d));
    }

    #[test]
    fn off_async_workers_runs_inline_without_a_multi_thread_runtime() {
        assert_eq!(off_async_workers(PowAlgorithm::Scrypt, || 7), 7);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let got = runtime.block_on(async { off_async_workers(PowAlgorithm::Scrypt, || 8) });
        assert_eq!(got, 8);
    }
}
