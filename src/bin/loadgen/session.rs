//! One miner connection: connect, subscribe, authorize, wait for work, then submit shares in a
//! closed loop (K in flight) or an open loop (one submit every `interval`, on a schedule that does
//! not wait for replies) until the window ends, and drain the replies still owed.
//!
//! Every submit carries the latest job id and ntime, the subscribe reply's extranonce2 size and a
//! nonce unique on this connection (the extranonce2 counter steps when the nonces run out), so a
//! pool never sees a duplicate. Latency is measured from the send (closed loop) or from the
//! scheduled send time (open loop, so a stalled server cannot hide its stall).
//!
//! Failover: with several targets (`--target A,B`), a connection the pool closes during the
//! window connects to the next target (then the next, round robin, with a short pause after a
//! failed attempt), subscribes and authorizes again and goes on loading; the submits that were
//! in flight count as unanswered. Without a second target a closed connection ends the session
//! (`dropped`), as before.

use crate::report::Tally;
use crate::wire::{self, Incoming, JobRef, Verdict};
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A line longer than this from the pool is treated as a broken connection.
const MAX_LINE: usize = 1024 * 1024;
/// Open loop: a submit that leaves later than this after its scheduled time counts as late.
const LATE: Duration = Duration::from_millis(2);
/// Open loop: tokio's timer ticks in milliseconds and rounds a deadline up, so a session wakes
/// this much before a scheduled send and sends what falls due within this much after waking.
/// A submit sent early is stamped with its real send time, one sent late with its schedule.
const TIMER_SLACK: Duration = Duration::from_micros(500);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by the pool")]
    Closed,
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("handshake timed out")]
    Timeout,
    #[error("unreadable subscribe reply")]
    BadSubscribe,
    #[error("authorize refused: {0}")]
    Unauthorized(String),
}

/// How a connection loads the pool once the window opens.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Keep this many submits in flight.
    Closed { in_flight: usize },
    /// Send one submit every `interval`, the first at `offset` after the window opens.
    Open {
        interval: Duration,
        offset: Duration,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub duration: Duration,
    pub drain: Duration,
}

/// Bytes in from the socket, split into lines; bytes out, written in one call per batch.
struct Conn {
    stream: TcpStream,
    input: Vec<u8>,
    /// Start of the unread part of `input`.
    read_pos: usize,
    output: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            input: Vec::with_capacity(16 * 1024),
            read_pos: 0,
            output: Vec::with_capacity(16 * 1024),
        }
    }

    /// The next complete line already buffered, if any.
    fn next_line(&mut self) -> Option<Incoming> {
        loop {
            let rest = &self.input[self.read_pos..];
            let pos = rest.iter().position(|&b| b == b'\n')?;
            let line = &rest[..pos];
            self.read_pos += pos + 1;
            let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
            if trimmed.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            // An unparseable line is reported as an `Incoming` with nothing in it.
            return Some(Incoming::parse(trimmed).unwrap_or(Incoming {
                id: serde_json::Value::Null,
                result: serde_json::Value::Null,
                error: serde_json::Value::Null,
                method: None,
                params: serde_json::Value::Null,
            }));
        }
    }

    /// Reads more bytes from the socket (cancel safe: a cancelled read has read nothing).
    async fn fill(&mut self) -> Result<(), SessionError> {
        if self.read_pos > 0 {
            self.input.drain(..self.read_pos);
            self.read_pos = 0;
        }
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(16 * 1024);
        }
        // Straight into the buffer's spare capacity, no copy.
        let n = self.stream.read_buf(&mut self.input).await?;
        if n == 0 {
            return Err(SessionError::Closed);
        }
        if self.input.len() > MAX_LINE {
            return Err(SessionError::LineTooLong);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), SessionError> {
        if !self.output.is_empty() {
            self.stream.write_all(&self.output).await?;
            self.output.clear();
        }
        Ok(())
    }

    async fn next_line_wait(&mut self) -> Result<Incoming, SessionError> {
        loop {
            if let Some(line) = self.next_line() {
                return Ok(line);
            }
            self.fill().await?;
        }
    }
}

/// A connection that has subscribed, authorized and received work.
pub struct Ready {
    conn: Conn,
    login: Login,
    /// Which of `login.targets` this connection is on.
    target: usize,
    /// The subscribe reply's extranonce1 (hex), as the pool assigned it to this connection.
    extranonce1: String,
    /// Every job this connection was sent, the latest last (a pending submit names its job by
    /// index, so the hot path copies no strings).
    jobs: Vec<JobRef>,
    extranonce2_size: usize,
    extranonce2: u64,
    nonce: u32,
    next_id: u64,
}

/// Who a connection is and where it may connect.
#[derive(Clone, Debug)]
pub struct Login {
    /// The pools to try, in order (failover goes to the next one, round robin).
    pub targets: std::sync::Arc<Vec<String>>,
    pub username: String,
    pub password: std::sync::Arc<String>,
    /// Write every submit's outcome into the tally's record (`--record`).
    pub record: bool,
}

/// A submit waiting for its reply: when it left (or was scheduled) and what it carried.
#[derive(Debug, Clone, Copy)]
struct Pending {
    sent_at: Instant,
    extranonce2: u64,
    nonce: u32,
    job: u32,
}

/// Connects to the first target that completes the handshake within `timeout` (trying them in
/// order from the first), or the last target's error.
pub async fn connect(login: &Login, timeout: Duration) -> Result<Ready, SessionError> {
    let deadline = Instant::now() + timeout;
    let mut last = SessionError::Timeout;
    for target in 0..login.targets.len() {
        match connect_one(login, target, deadline).await {
            Ok(ready) => return Ok(ready),
            Err(e) => last = e,
        }
        if Instant::now() >= deadline {
            break;
        }
    }
    Err(last)
}

/// Connects to `login.targets[target]` and completes the handshake by `deadline`.
async fn connect_one(
    login: &Login,
    target: usize,
    deadline: Instant,
) -> Result<Ready, SessionError> {
    let handshake = handshake(&login.targets[target], &login.username, &login.password);
    match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(parts)) => Ok(Ready {
            conn: parts.conn,
            login: login.clone(),
            target,
            extranonce1: parts.subscription.extranonce1,
            jobs: vec![parts.job],
            extranonce2_size: parts.subscription.extranonce2_size,
            extranonce2: 0,
            nonce: 0,
            next_id: 3,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(SessionError::Timeout),
    }
}

/// What a completed handshake leaves: the connection, its subscription and its first job.
struct Handshake {
    conn: Conn,
    subscription: wire::Subscription,
    job: JobRef,
}

async fn handshake(
    target: &str,
    username: &str,
    password: &str,
) -> Result<Handshake, SessionError> {
    let stream = TcpStream::connect(target)
        .await
        .map_err(SessionError::Connect)?;
    stream.set_nodelay(true)?;
    let mut conn = Conn::new(stream);
    // Like cgminer: subscribe, wait for its reply, then authorize.
    wire::write_subscribe(&mut conn.output, 1);
    conn.flush().await?;
    let mut subscription = None;
    let mut authorized = false;
    let mut job = None;
    let mut difficulty_seen = false;
    let mut authorize_sent = false;
    while subscription.is_none() || !authorized || job.is_none() || !difficulty_seen {
        let line = conn.next_line_wait().await?;
        match line.method.as_deref() {
            Some("mining.notify") => {
                if let Some(j) = wire::job_ref(&line.params) {
                    job = Some(j);
                }
            }
            Some("mining.set_difficulty") => difficulty_seen = true,
            Some(_) => {}
            None => match line.id.as_u64() {
                Some(1) => {
                    let sub = wire::subscription(&line).ok_or(SessionError::BadSubscribe)?;
                    subscription = Some(sub);
                    if !authorize_sent {
                        wire::write_authorize(&mut conn.output, 2, username, password);
                        conn.flush().await?;
                        authorize_sent = true;
                    }
                }
                Some(2) => match wire::verdict(&line) {
                    Verdict::Accepted => authorized = true,
                    Verdict::Rejected(code) => return Err(SessionError::Unauthorized(code)),
                    Verdict::Unreadable => {
                        return Err(SessionError::Unauthorized(format!(
                            "{} / {}",
                            line.result, line.error
                        )))
                    }
                },
                _ => {}
            },
        }
    }
    let (Some(subscription), Some(job)) = (subscription, job) else {
        return Err(SessionError::BadSubscribe);
    };
    Ok(Handshake {
        conn,
        subscription,
        job,
    })
}

impl Ready {
    /// The socket alone, for a connection that is only held open (`loadgen idle`): the
    /// buffers go, so the generator's own memory stays small.
    pub fn into_stream(self) -> TcpStream {
        self.conn.stream
    }

    /// Queues one submit in the output buffer and notes it as pending, sent at `sent_at`.
    fn queue_submit(&mut self, pending: &mut HashMap<u64, Pending>, sent_at: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let job = self.jobs.len() - 1;
        wire::write_submit(
            &mut self.conn.output,
            &wire::Submit {
                id,
                username: &self.login.username,
                job: &self.jobs[job],
                extranonce2: self.extranonce2,
                extranonce2_size: self.extranonce2_size,
                nonce: self.nonce,
            },
        );
        pending.insert(
            id,
            Pending {
                sent_at,
                extranonce2: self.extranonce2,
                nonce: self.nonce,
                job: u32::try_from(job).unwrap_or(u32::MAX),
            },
        );
        // A fresh extranonce2 when this one's nonces are spent keeps every submit unique.
        self.nonce = self.nonce.wrapping_add(1);
        if self.nonce == 0 {
            self.extranonce2 = self.extranonce2.wrapping_add(1);
        }
    }

    /// With `--record`: one line for a submit's outcome (`true`, an error code, `unanswered`),
    /// `OUTCOME WORKER EXTRANONCE1 EXTRANONCE2 NTIME NONCE JOB_ID`, as sent.
    fn record(&self, tally: &mut Tally, outcome: &str, p: &Pending) {
        use std::io::Write;
        if !self.login.record {
            return;
        }
        let job = &self.jobs[p.job as usize];
        let _ = write!(
            tally.record,
            "{outcome} {} {} ",
            self.login.username, self.extranonce1
        );
        wire::write_extranonce2(&mut tally.record, p.extranonce2, self.extranonce2_size);
        let _ = writeln!(
            tally.record,
            " {} {:08x} {}",
            job.ntime, p.nonce, job.job_id
        );
    }

    /// Handles one line during the load: a reply to a submit or a notification.
    fn take_line(
        &mut self,
        line: Incoming,
        pending: &mut HashMap<u64, Pending>,
        tally: &mut Tally,
        start: Instant,
    ) {
        if let Some(method) = line.method.as_deref() {
            if method == "mining.notify" {
                if let Some(job) = wire::job_ref(&line.params) {
                    self.jobs.push(job);
                }
            }
            return;
        }
        let Some(p) = line.id.as_u64().and_then(|id| pending.remove(&id)) else {
            tally.other_errors += 1;
            return;
        };
        let now = Instant::now();
        let micros = u32::try_from(now.duration_since(p.sent_at).as_micros()).unwrap_or(u32::MAX);
        tally.latencies_us.push(micros);
        tally.last_reply_after = now.duration_since(start);
        match wire::verdict(&line) {
            Verdict::Accepted => {
                tally.accepted += 1;
                match tally.accepted_by_worker.get_mut(&self.login.username) {
                    Some(n) => *n += 1,
                    None => {
                        tally
                            .accepted_by_worker
                            .insert(self.login.username.clone(), 1);
                    }
                }
                self.record(tally, "true", &p);
            }
            Verdict::Rejected(code) => {
                self.record(tally, &code, &p);
                *tally.rejected_by_code.entry(code).or_insert(0) += 1;
            }
            Verdict::Unreadable => {
                self.record(tally, "unreadable", &p);
                tally.other_errors += 1;
            }
        }
    }

    /// The submits still owed a reply are given up (the connection ended or the drain did).
    fn give_up(&self, pending: &mut HashMap<u64, Pending>, tally: &mut Tally) {
        tally.unanswered += pending.len() as u64;
        if self.login.record {
            let mut owed: Vec<(u64, Pending)> = pending.drain().collect();
            owed.sort_by_key(|(id, _)| *id);
            for (_, p) in &owed {
                self.record(tally, "unanswered", p);
            }
        }
        pending.clear();
    }

    /// Connects to the next target (round robin, a short pause after a failed attempt) until one
    /// completes the handshake or the window ends; whether it did.
    async fn fail_over(&mut self, end: Instant, tally: &mut Tally) -> bool {
        let targets = self.login.targets.len();
        let mut target = self.target;
        while Instant::now() < end {
            target = (target + 1) % targets;
            let deadline = (Instant::now() + Duration::from_secs(5)).min(end);
            match connect_one(&self.login, target, deadline).await {
                Ok(ready) => {
                    *self = ready;
                    tally.reconnects += 1;
                    return true;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        false
    }

    /// Runs the load for the window, then drains. Never takes longer than duration + drain
    /// (plus one write that the kernel accepts, plus a failover handshake in flight at the
    /// window's end).
    pub async fn run(mut self, load: Load, window: Window) -> Tally {
        let mut tally = Tally::new();
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        let end = window.start + window.duration;
        let drain_end = end + window.drain;
        let mut next_at = match load {
            Load::Open { offset, .. } => window.start + offset,
            Load::Closed { .. } => window.start,
        };
        tokio::time::sleep_until(window.start).await;
        loop {
            let outcome = match load {
                Load::Closed { in_flight } => {
                    self.closed_loop(
                        in_flight,
                        &mut pending,
                        &mut tally,
                        window.start,
                        end,
                        drain_end,
                    )
                    .await
                }
                Load::Open { interval, .. } => {
                    self.open_loop(
                        interval,
                        &mut next_at,
                        &mut pending,
                        &mut tally,
                        window.start,
                        end,
                        drain_end,
                    )
                    .await
                }
            };
            if outcome.is_ok() {
                break;
            }
            self.give_up(&mut pending, &mut tally);
            if self.login.targets.len() < 2 || !self.fail_over(end, &mut tally).await {
                tally.dropped = true;
                break;
            }
            // Open loop: the slots missed while reconnecting are skipped, not sent in a burst.
            if let Load::Open { interval, .. } = load {
                let now = Instant::now();
                while next_at < now {
                    next_at += interval;
                }
            }
        }
        self.give_up(&mut pending, &mut tally);
        tally
    }

    async fn closed_loop(
        &mut self,
        in_flight: usize,
        pending: &mut HashMap<u64, Pending>,
        tally: &mut Tally,
        start: Instant,
        end: Instant,
        drain_end: Instant,
    ) -> Result<(), SessionError> {
        let now = Instant::now();
        if now < end {
            while pending.len() < in_flight {
                self.queue_submit(pending, now);
                tally.sent += 1;
            }
        }
        self.conn.flush().await?;
        loop {
            let sending = Instant::now() < end;
            if !sending && pending.is_empty() {
                return Ok(());
            }
            let deadline = if sending { end } else { drain_end };
            tokio::select! {
                filled = self.conn.fill() => filled?,
                _ = tokio::time::sleep_until(deadline) => {
                    if sending { continue; }
                    return Ok(());
                }
            }
            while let Some(line) = self.conn.next_line() {
                self.take_line(line, pending, tally, start);
            }
            if Instant::now() < end {
                // Replace what came back, so K stay in flight; all of them leave in one write.
                let now = Instant::now();
                while pending.len() < in_flight {
                    self.queue_submit(pending, now);
                    tally.sent += 1;
                }
                self.conn.flush().await?;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_loop(
        &mut self,
        interval: Duration,
        next_at: &mut Instant,
        pending: &mut HashMap<u64, Pending>,
        tally: &mut Tally,
        start: Instant,
        end: Instant,
        drain_end: Instant,
    ) -> Result<(), SessionError> {
        loop {
            let now = Instant::now();
            let sending = *next_at < end;
            if !sending && (pending.is_empty() || now >= drain_end) {
                return Ok(());
            }
            if sending && *next_at <= now + TIMER_SLACK {
                // Everything due leaves now; latency counts from the schedule when we are late,
                // so a stalled pool cannot hide its stall by holding back our sends.
                while *next_at <= now + TIMER_SLACK && *next_at < end {
                    self.queue_submit(pending, (*next_at).max(now));
                    tally.sent += 1;
                    let lag = now.saturating_duration_since(*next_at);
                    if lag > LATE {
                        tally.late_sends += 1;
                    }
                    tally.max_send_lag = tally.max_send_lag.max(lag);
                    *next_at += interval;
                }
                self.conn.flush().await?;
                continue;
            }
            let deadline = if sending {
                next_at.checked_sub(TIMER_SLACK).unwrap_or(*next_at)
            } else {
                drain_end
            };
            tokio::select! {
                filled = self.conn.fill() => filled?,
                _ = tokio::time::sleep_until(deadline) => continue,
            }
            while let Some(line) = self.conn.next_line() {
                self.take_line(line, pending, tally, start);
            }
        }
    }
}
