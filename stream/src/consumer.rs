//! The core's consumer: the stream into the ledger, in stream order, exactly once.
//!
//! One durable pull consumer (`[stream] consumer`, filter `{p}.batch.>`, explicit acks,
//! deliver-all). [`Consumer::run`] deletes and recreates it at start, so delivery starts again
//! at the first unacknowledged message in stream order (a work-queue stream holds nothing
//! else: acknowledged messages are gone). Then, strictly in order, for each message:
//!
//! 1. its stream sequence (from the delivery's reply subject);
//! 2. decode the [`BatchMessage`]. A message that does not decode (or has a format or schema
//!    this build does not know) stops the consumer: nothing after it is applied, it is neither
//!    acknowledged nor skipped, an error names its stream sequence, and the consumer tries again
//!    every [`ConsumerOptions::blocked_retry`] (an operator who removes the message from the
//!    stream gets the removal reported as a sequence jump, below);
//! 3. [`Dedupe::decide`]: skipped messages are acknowledged (a duplicate id is logged at warn);
//!    a gap in an edge boot's counters is logged at warn with edge, boot and counters and
//!    counted ([`ConsumerSnapshot::gap_reports`], [`ConsumerSnapshot::missing_batches`]);
//! 4. apply: `[StreamBatch, events...]` per batch into ONE ledger append for every message in
//!    hand (group commit: whatever the server has delivered already, up to
//!    [`ConsumerOptions::max_group_messages`] / `max_group_events`), retried with a capped
//!    backoff while the ledger refuses (a full disk) until it succeeds or shutdown. A failed
//!    append may still be durable, so before a retry the state is rebuilt from the ledger's
//!    tail ([`Dedupe::catch_up`]) and the messages decided again;
//! 5. acknowledge, only after the append is durable.
//!
//! A jump in the stream sequence within one delivery (a message the server sent was lost on
//! the way, e.g. across a reconnect) makes the consumer recreate itself once; if the jump is
//! still there, the sequences are reported at error level ("stream sequences X..Y are not in
//! the stream") and delivery goes on. A stream whose last sequence is below the last one
//! applied was deleted and created anew: that is logged at error level and from then on only
//! batch ids decide duplicates.
//!
//! Statistics ([`ConsumerStats`]) include the share-to-ledger lag (the time of the append minus
//! the batch's `sealed_ms`, weighted by events), logged every
//! [`ConsumerOptions::report_interval`] while batches arrive. A hook ([`Consumer::on_applied`])
//! sees every durable group (the core pokes the chain watcher on block events). With
//! [`ConsumerOptions::state_file`] the applied-batch state is written every report interval and
//! at the end, so the next start reads only the ledger after it ([`Dedupe::load_or_scan`]).

use crate::dedupe::{Decision, Dedupe, SkipReason};
use crate::message::{BatchId, BatchMessage};
use crate::settings::StreamSettings;
use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use futures_util::{FutureExt, StreamExt};
use ledger::{Appended, Ledger};
use pool_core::event::{Event, StreamBatch};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How the consumer runs (the defaults suit production).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// At most this many messages in one ledger append.
    pub max_group_messages: usize,
    /// At most about this many events in one ledger append (a message is never split).
    pub max_group_events: usize,
    /// The server's pull batch.
    pub pull_batch: usize,
    /// How long the server waits for an ack before redelivering (progress acks extend it while
    /// the ledger refuses appends).
    pub ack_wait: Duration,
    /// After an undecodable message: wait this long, then try it again.
    pub blocked_retry: Duration,
    /// Longest pause between ledger retries (from 100 ms, doubling).
    pub ledger_retry_max: Duration,
    /// How often the lag and counters are logged while batches arrive (and the state file
    /// written).
    pub report_interval: Duration,
    /// Where the applied-batch state is kept for a quick start ([`Dedupe::save`]): written every
    /// report interval while batches arrive, and at the end.
    pub state_file: Option<std::path::PathBuf>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            max_group_messages: 256,
            max_group_events: 32_768,
            pull_batch: 512,
            ack_wait: Duration::from_secs(60),
            blocked_retry: Duration::from_secs(10),
            ledger_retry_max: Duration::from_secs(5),
            report_interval: Duration::from_secs(30),
            state_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("the stream consumer: {0}")]
    Nats(String),
}

/// Where the consumer is stopped on a message it will not skip.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub stream_seq: u64,
    pub error: String,
}

/// The share-to-ledger lag, in milliseconds (events weighted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LagSummary {
    pub events: u64,
    pub p50_ms: u64,
    pub p90_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// The consumer's counters since start.
#[derive(Debug)]
pub struct ConsumerStats {
    pub applied_batches: AtomicU64,
    pub applied_events: AtomicU64,
    /// Ledger appends (each holds one or more batches).
    pub appends: AtomicU64,
    pub skipped_duplicates: AtomicU64,
    pub skipped_redeliveries: AtomicU64,
    /// Gaps reported in edges' counters, and the batches they miss.
    pub gap_reports: AtomicU64,
    pub missing_batches: AtomicU64,
    pub late_batches: AtomicU64,
    /// Stream sequence jumps that persisted after a recreation (reported).
    pub sequence_jumps: AtomicU64,
    pub missing_sequences: AtomicU64,
    /// Consumer (re)creations.
    pub recreations: AtomicU64,
    pub ledger_retries: AtomicU64,
    /// The last stream sequence applied or skipped.
    pub last_stream_seq: AtomicU64,
    blocked: Mutex<Option<Blocked>>,
    lag: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for ConsumerStats {
    fn default() -> Self {
        ConsumerStats {
            applied_batches: AtomicU64::new(0),
            applied_events: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            skipped_duplicates: AtomicU64::new(0),
            skipped_redeliveries: AtomicU64::new(0),
            gap_reports: AtomicU64::new(0),
            missing_batches: AtomicU64::new(0),
            late_batches: AtomicU64::new(0),
            sequence_jumps: AtomicU64::new(0),
            missing_sequences: AtomicU64::new(0),
            recreations: AtomicU64::new(0),
            ledger_retries: AtomicU64::new(0),
            last_stream_seq: AtomicU64::new(0),
            blocked: Mutex::new(None),
            lag: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 24 * 3_600_000, 3)
                    .expect("valid histogram bounds"),
            ),
        }
    }
}

/// A copy of [`ConsumerStats`] at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerSnapshot {
    pub applied_batches: u64,
    pub applied_events: u64,
    pub appends: u64,
    pub skipped_duplicates: u64,
    pub skipped_redeliveries: u64,
    pub gap_reports: u64,
    pub missing_batches: u64,
    pub late_batches: u64,
    pub sequence_jumps: u64,
    pub missing_sequences: u64,
    pub recreations: u64,
    pub ledger_retries: u64,
    pub last_stream_seq: u64,
    pub blocked: Option<Blocked>,
    pub lag: LagSummary,
}

impl ConsumerStats {
    pub fn snapshot(&self) -> ConsumerSnapshot {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ConsumerSnapshot {
            applied_batches: n(&self.applied_batches),
            applied_events: n(&self.applied_events),
            appends: n(&self.appends),
            skipped_duplicates: n(&self.skipped_duplicates),
            skipped_redeliveries: n(&self.skipped_redeliveries),
            gap_reports: n(&self.gap_reports),
            missing_batches: n(&self.missing_batches),
            late_batches: n(&self.late_batches),
            sequence_jumps: n(&self.sequence_jumps),
            missing_sequences: n(&self.missing_sequences),
            recreations: n(&self.recreations),
            ledger_retries: n(&self.ledger_retries),
            last_stream_seq: n(&self.last_stream_seq),
            blocked: self.blocked().clone(),
            lag: self.lag_summary(),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, Option<Blocked>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lag(&self) -> std::sync::MutexGuard<'_, hdrhistogram::Histogram<u64>> {
        self.lag.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lag since start.
    pub fn lag_summary(&self) -> LagSummary {
        let h = self.lag();
        if h.is_empty() {
            return LagSummary::default();
        }
        LagSummary {
            events: h.len(),
            p50_ms: h.value_at_quantile(0.5),
            p90_ms: h.value_at_quantile(0.9),
            p99_ms: h.value_at_quantile(0.99),
            max_ms: h.max(),
        }
    }

    fn observe_lag(&self, lag_ms: u64, events: u64) {
        self.lag().saturating_record_n(lag_ms.max(1), events.max(1));
    }
}

/// What one durable ledger append held.
pub struct AppliedGroup<'a> {
    /// The append's last record (the new head, unless something was appended after it).
    pub last: Appended,
    /// The batches applied, in order.
    pub batches: &'a [BatchId],
    /// The block candidates and verdicts among their events (the chain watcher looks again).
    pub block_events: &'a [Event],
}

fn is_block_event(e: &Event) -> bool {
    matches!(
        e,
        Event::BlockFound(_) | Event::BlockCandidate(_) | Event::BlockRejected(_)
    )
}

/// Called after each durable append (keep it short: the consumer waits).
pub type ApplyHook = Arc<dyn Fn(&AppliedGroup<'_>) + Send + Sync>;

/// See the module docs.
pub struct Consumer {
    js: jetstream::Context,
    settings: StreamSettings,
    ledger: Ledger,
    dedupe: Dedupe,
    options: ConsumerOptions,
    stats: Arc<ConsumerStats>,
    hook: Option<ApplyHook>,
    /// The next stream sequence this delivery should bring (`None`: none seen yet).
    expected: Option<u64>,
    /// A jump seen once already (recreated for it): `expected` at that time.
    pending_jump: Option<u64>,
    last_report: Instant,
    reported: ConsumerSnapshot,
    /// The ledger seq the state file was last written for.
    saved_at: Option<u64>,
}

/// One message in hand, decoded.
struct InHand {
    message: jetstream::Message,
    stream_seq: u64,
    batch: BatchMessage,
}

/// Why a group stopped early.
enum Cut {
    /// A jump seen the first time: recreate the consumer.
    Jump,
    /// A message that cannot be applied: stop until it is retried.
    Blocked(Blocked),
}

/// How a group ended.
enum Outcome {
    Done,
    Recreate,
    Blocked,
    Shutdown,
}

/// One group's append, decided.
struct Prepared {
    records: Vec<Event>,
    batches: Vec<BatchId>,
    notes: Vec<Note>,
    skips: Vec<Option<SkipReason>>,
}

/// A report to log once the append is durable.
enum Note {
    Gap { id: BatchId, from: u64, to: u64 },
    Late(BatchId),
    NewBoot(BatchId),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Consumer {
    /// A consumer that applies the stream onto `ledger`, whose applied batches `dedupe` holds
    /// ([`Dedupe::scan`] of the same ledger).
    pub fn new(
        js: jetstream::Context,
        settings: StreamSettings,
        ledger: Ledger,
        dedupe: Dedupe,
        options: ConsumerOptions,
    ) -> Consumer {
        Consumer {
            js,
            settings,
            ledger,
            dedupe,
            options,
            stats: Arc::new(ConsumerStats::default()),
            hook: None,
            expected: None,
            pending_jump: None,
            last_report: Instant::now(),
            reported: ConsumerSnapshot::default(),
            saved_at: None,
        }
    }

    /// Calls `hook` after each durable append.
    pub fn on_applied(mut self, hook: ApplyHook) -> Consumer {
        self.hook = Some(hook);
        self
    }

    pub fn stats(&self) -> Arc<ConsumerStats> {
        Arc::clone(&self.stats)
    }

    /// Runs until `shutdown`: the group in hand is appended and acknowledged first (or, while
    /// the ledger refuses it, left unacknowledged for the next start). Returns the state.
    pub async fn run(mut self, shutdown: CancellationToken) -> Dedupe {
        let mut nats_down_logged: Option<Instant> = None;
        'session: while !shutdown.is_cancelled() {
            let consumer = match self.recreate().await {
                Ok(c) => c,
                Err(e) => {
                    if nats_down_logged.map_or(true, |t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!("cannot (re)create the stream consumer: {e}; retrying");
                        nats_down_logged = Some(Instant::now());
                    }
                    if sleep_or_shutdown(Duration::from_secs(1), &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.options.pull_batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!("cannot pull from the stream consumer: {e}; retrying");
                    if sleep_or_shutdown(Duration::from_secs(1), &shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            nats_down_logged = None;
            loop {
                let first = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break 'session,
                    m = messages.next() => m,
                };
                let mut group = match first {
                    Some(Ok(m)) => vec![m],
                    Some(Err(e)) => {
                        tracing::warn!("stream consumer: {e}; recreating it");
                        if sleep_or_shutdown(Duration::from_millis(500), &shutdown).await {
                            break 'session;
                        }
                        continue 'session;
                    }
                    None => continue 'session,
                };
                let mut events = 0usize;
                while group.len() < self.options.max_group_messages
                    && events < self.options.max_group_events
                {
                    match messages.next().now_or_never() {
                        Some(Some(Ok(m))) => {
                            events += m.payload.len() / 64;
                            group.push(m);
                        }
                        _ => break,
                    }
                }
                match self.process(group, &shutdown).await {
                    Outcome::Done => {}
                    Outcome::Recreate => continue 'session,
                    Outcome::Blocked => {
                        if sleep_or_shutdown(self.options.blocked_retry, &shutdown).await {
                            break 'session;
                        }
                        continue 'session;
                    }
                    Outcome::Shutdown => break 'session,
                }
                self.maybe_report();
            }
        }
        // Acks are published without waiting: get them out before the caller exits (a lost
        // one only means a redelivery that is skipped). Bounded: NATS may be down.
        match tokio::time::timeout(Duration::from_secs(2), self.js.client().flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("cannot flush the last acknowledgements: {e}"),
            Err(_) => tracing::warn!("the last acknowledgements were not flushed within 2 s"),
        }
        self.report();
        self.save_state();
        self.dedupe
    }

    /// Writes the state file, if there is one (a failure is logged: the next start scans more).
    fn save_state(&mut self) {
        let Some(path) = &self.options.state_file else {
            return;
        };
        if self.saved_at == Some(self.dedupe.next_ledger_seq()) {
            return;
        }
        match self.dedupe.save(&self.ledger, path) {
            Ok(()) => self.saved_at = Some(self.dedupe.next_ledger_seq()),
            Err(e) => tracing::warn!("cannot write the applied-batch state: {e}"),
        }
    }

    /// Deletes and creates the durable consumer (delivery starts at the first unacknowledged
    /// message), after checking the stream was not created anew.
    async fn recreate(&mut self) -> Result<PullConsumer, ConsumerError> {
        let nats = |e: &dyn std::fmt::Display| ConsumerError::Nats(e.to_string());
        let mut stream = self
            .js
            .get_stream(&self.settings.name)
            .await
            .map_err(|e| nats(&e))?;
        let info = stream.info().await.map_err(|e| nats(&e))?.clone();
        let last_in_stream = info.state.last_sequence;
        if last_in_stream < self.dedupe.last_stream_seq() {
            tracing::error!(
                stream = %self.settings.name,
                last_in_stream,
                last_applied = self.dedupe.last_stream_seq(),
                "the stream's last sequence is below the last one applied: it was deleted and \
                 created anew; from now on only batch ids decide what was applied"
            );
            self.dedupe.forget_stream_seq();
            self.expected = None;
            self.pending_jump = None;
        }
        let name = &self.settings.consumer;
        if let Err(e) = stream.delete_consumer(name).await {
            tracing::debug!(consumer = %name, "no consumer deleted: {e}");
        }
        let config = pull::Config {
            durable_name: Some(name.clone()),
            filter_subject: self.settings.subjects().batches(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: self.options.ack_wait,
            max_ack_pending: i64::try_from(self.options.pull_batch * 4).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(|e| nats(&e))?;
        let n = self.stats.recreations.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(
            consumer = %name,
            stream = %self.settings.name,
            first_in_stream = info.state.first_sequence,
            waiting = info.state.messages,
            last_applied = self.dedupe.last_stream_seq(),
            creations = n,
            "stream consumer created: delivery starts at the first unacknowledged message"
        );
        Ok(consumer)
    }

    /// Decodes the group in order up to the first message that must stop it.
    fn decode(&mut self, group: Vec<jetstream::Message>) -> (Vec<InHand>, Option<Cut>) {
        let mut ok = Vec::with_capacity(group.len());
        let mut expected = self.expected;
        for message in group {
            let stream_seq = match message.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    let subject = message.subject.to_string();
                    return (
                        ok,
                        Some(Cut::Blocked(Blocked {
                            stream_seq: 0,
                            error: format!(
                                "a delivery on {subject} without a JetStream reply subject: {e}"
                            ),
                        })),
                    );
                }
            };
            if let Some(exp) = expected {
                if stream_seq > exp {
                    if self.pending_jump != Some(exp) {
                        tracing::warn!(
                            expected = exp,
                            delivered = stream_seq,
                            "stream sequence jump: a delivery may have been lost; recreating the consumer"
                        );
                        self.pending_jump = Some(exp);
                        return (ok, Some(Cut::Jump));
                    }
                    let (from, to) = (exp, stream_seq - 1);
                    tracing::error!(
                        from,
                        to,
                        "stream sequences {from}..{to} are not in the stream (removed by an \
                         operator, or lost); continuing at {stream_seq}"
                    );
                    self.stats.sequence_jumps.fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .missing_sequences
                        .fetch_add(to - from + 1, Ordering::Relaxed);
                }
            }
            if expected.map_or(true, |exp| stream_seq >= exp) {
                // At (or reported past) the position a jump was seen at.
                self.pending_jump = None;
            }
            match BatchMessage::decode(&message.payload) {
                Ok(batch) => {
                    expected = Some(expected.map_or(stream_seq + 1, |e| e.max(stream_seq + 1)));
                    ok.push(InHand {
                        message,
                        stream_seq,
                        batch,
                    });
                }
                Err(e) => {
                    return (
                        ok,
                        Some(Cut::Blocked(Blocked {
                            stream_seq,
                            error: format!("message on {} does not decode: {e}", message.subject),
                        })),
                    );
                }
            }
        }
        (ok, None)
    }

    /// Decides every message in hand against the state (which it updates) and builds the
    /// append; returns the records, the applied batch ids, what to log once durable and each
    /// message's skip reason (`None`: applied).
    fn prepare(&mut self, in_hand: &[InHand]) -> Prepared {
        let mut records = Vec::new();
        let mut batches = Vec::new();
        let mut notes = Vec::new();
        let mut skips = Vec::with_capacity(in_hand.len());
        for m in in_hand {
            let id = m.batch.id;
            let decision = self.dedupe.decide(&id, m.stream_seq);
            skips.push(match &decision {
                Decision::Skip(r) => Some(*r),
                Decision::Apply(_) => None,
            });
            match decision {
                Decision::Skip(_) => self.dedupe.record_skip(m.stream_seq),
                Decision::Apply(a) => {
                    if let Some(gap) = a.gap {
                        notes.push(Note::Gap {
                            id,
                            from: *gap.start(),
                            to: *gap.end(),
                        });
                    }
                    if a.late {
                        notes.push(Note::Late(id));
                    }
                    if a.new_boot {
                        notes.push(Note::NewBoot(id));
                    }
                    records.push(Event::StreamBatch(StreamBatch {
                        edge_id: id.edge_id,
                        boot_id: id.boot_id,
                        counter: id.counter,
                        stream_seq: m.stream_seq,
                        events: u32::try_from(m.batch.events.len()).unwrap_or(u32::MAX),
                        sealed_ms: m.batch.sealed_ms,
                    }));
                    records.extend(m.batch.events.iter().cloned());
                    batches.push(id);
                    self.dedupe.record(&id, m.stream_seq);
                }
            }
        }
        Prepared {
            records,
            batches,
            notes,
            skips,
        }
    }

    async fn process(
        &mut self,
        group: Vec<jetstream::Message>,
        shutdown: &CancellationToken,
    ) -> Outcome {
        let (in_hand, cut) = self.decode(group);
        if !in_hand.is_empty() {
            if !self.apply(&in_hand, shutdown).await {
                return Outcome::Shutdown;
            }
            let last = in_hand.last().map_or(0, |m| m.stream_seq);
            self.expected = Some(self.expected.map_or(last + 1, |e| e.max(last + 1)));
            *self.stats.blocked() = None;
        }
        match cut {
            None => Outcome::Done,
            Some(Cut::Jump) => Outcome::Recreate,
            Some(Cut::Blocked(b)) => {
                tracing::error!(
                    stream_seq = b.stream_seq,
                    "STREAM CONSUMER STOPPED at stream sequence {}: {}; nothing after it is \
                     applied, it is not acknowledged or skipped; retrying in {} s (remove the \
                     message from the stream only if it can never be read)",
                    b.stream_seq,
                    b.error,
                    self.options.blocked_retry.as_secs()
                );
                *self.stats.blocked() = Some(b);
                Outcome::Blocked
            }
        }
    }

    /// Appends and acknowledges the messages in hand; false on shutdown before they were
    /// durable (they stay unacknowledged).
    async fn apply(&mut self, in_hand: &[InHand], shutdown: &CancellationToken) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut logged: Option<Instant> = None;
        loop {
            let saved = self.dedupe.clone();
            let Prepared {
                records,
                batches,
                notes,
                skips,
            } = self.prepare(in_hand);
            let block_events: Vec<Event> = match &self.hook {
                Some(_) => records
                    .iter()
                    .filter(|e| is_block_event(e))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            let appended = if records.is_empty() {
                Ok(None)
            } else {
                self.ledger
                    .append_batch(records)
                    .await
                    .map(|a| a.last().copied())
            };
            match appended {
                Ok(last) => {
                    let at = now_ms();
                    for m in in_hand {
                        if let Err(e) = m.message.ack().await {
                            tracing::warn!(
                                stream_seq = m.stream_seq,
                                "cannot acknowledge (it will be redelivered and skipped): {e}"
                            );
                        }
                    }
                    self.account(in_hand, &skips, &batches, notes, at);
                    if let Some(last) = last {
                        self.dedupe.set_next_ledger_seq(last.seq + 1);
                        if let Some(hook) = &self.hook {
                            hook(&AppliedGroup {
                                last,
                                batches: &batches,
                                block_events: &block_events,
                            });
                        }
                    }
                    return true;
                }
                Err(e) => {
                    self.dedupe = saved;
                    self.stats.ledger_retries.fetch_add(1, Ordering::Relaxed);
                    if logged.map_or(true, |t| t.elapsed() > Duration::from_secs(10)) {
                        tracing::error!(
                            messages = in_hand.len(),
                            first_stream_seq = in_hand.first().map_or(0, |m| m.stream_seq),
                            "cannot append stream batches to the ledger: {e}; retrying (nothing \
                             is acknowledged until they are durable)"
                        );
                        logged = Some(Instant::now());
                    }
                    loop {
                        if sleep_or_shutdown(backoff, shutdown).await {
                            return false;
                        }
                        backoff = (backoff * 2).min(self.options.ledger_retry_max);
                        for m in in_hand {
                            let _ = m.message.ack_with(AckKind::Progress).await;
                        }
                        // The failed append may be durable all the same: the ledger decides.
                        match self.dedupe.catch_up(&self.ledger) {
                            Ok(_) => break,
                            Err(e) => tracing::debug!("cannot read the ledger's tail yet: {e}"),
                        }
                    }
                }
            }
        }
    }

    /// Counters, logs and lag for a durable group.
    fn account(
        &mut self,
        in_hand: &[InHand],
        skips: &[Option<SkipReason>],
        batches: &[BatchId],
        notes: Vec<Note>,
        at: u64,
    ) {
        let s = &self.stats;
        for (m, skip) in in_hand.iter().zip(skips) {
            if let Some(reason) = skip {
                if *reason == SkipReason::Duplicate {
                    s.skipped_duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        batch = %m.batch.id,
                        stream_seq = m.stream_seq,
                        "batch already applied: skipped (a duplicate id)"
                    );
                } else {
                    s.skipped_redeliveries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        batch = %m.batch.id,
                        stream_seq = m.stream_seq,
                        "redelivered message at or below the last applied stream sequence: skipped"
                    );
                }
                continue;
            }
            s.applied_batches.fetch_add(1, Ordering::Relaxed);
            let n = m.batch.events.len() as u64;
            s.applied_events.fetch_add(n, Ordering::Relaxed);
            s.observe_lag(at.saturating_sub(m.batch.sealed_ms), n);
        }
        if !batches.is_empty() {
            s.appends.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(last) = in_hand.last() {
            s.last_stream_seq
                .fetch_max(last.stream_seq, Ordering::Relaxed);
        }
        for note in notes {
            match note {
                Note::Gap { id, from, to } => {
                    s.gap_reports.fetch_add(1, Ordering::Relaxed);
                    s.missing_batches
                        .fetch_add(to - from + 1, Ordering::Relaxed);
                    tracing::warn!(
                        edge = id.edge_id,
                        boot = format_args!("{:016x}", id.boot_id),
                        counter = id.counter,
                        missing_from = from,
                        missing_to = to,
                        "edge {} boot {:016x}: batches {from}..={to} never arrived (applying {})",
                        id.edge_id,
                        id.boot_id,
                        id.counter
                    );
                }
                Note::Late(id) => {
                    s.late_batches.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(batch = %id, "a batch reported missing arrived late: applied");
                }
                Note::NewBoot(id) => {
                    tracing::info!(
                        edge = id.edge_id,
                        boot = format_args!("{:016x}", id.boot_id),
                        "first batch of an edge boot"
                    );
                }
            }
        }
    }

    fn maybe_report(&mut self) {
        if self.last_report.elapsed() >= self.options.report_interval {
            self.report();
            self.save_state();
        }
    }

    /// Logs what was applied since the last report (nothing if nothing was).
    fn report(&mut self) {
        self.last_report = Instant::now();
        let now = self.stats.snapshot();
        let batches = now.applied_batches - self.reported.applied_batches;
        if batches == 0 && now.skipped_duplicates == self.reported.skipped_duplicates {
            return;
        }
        let lag = now.lag;
        tracing::info!(
            batches,
            events = now.applied_events - self.reported.applied_events,
            appends = now.appends - self.reported.appends,
            last_stream_seq = now.last_stream_seq,
            lag_p50_ms = lag.p50_ms,
            lag_p99_ms = lag.p99_ms,
            lag_max_ms = lag.max_ms,
            gap_reports = now.gap_reports,
            missing_batches = now.missing_batches,
            skipped_duplicates = now.skipped_duplicates,
            "stream applied to the ledger"
        );
        self.reported = now;
    }
}

/// Sleeps `d`; true if `shutdown` came first.
async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_summary_weighs_events() {
        let s = ConsumerStats::default();
        assert_eq!(s.lag_summary(), LagSummary::default());
        s.observe_lag(10, 99);
        s.observe_lag(1000, 1);
        let l = s.lag_summary();
        assert_eq!(l.events, 100);
        assert_eq!(l.p50_ms, 10);
        assert_eq!(l.p90_ms, 10);
        assert!((999..=1001).contains(&l.max_ms), "{l:?}");
    }
}
