//! The edge's [`EventSink`]: what the Stratum server submits goes to the stream, and a
//! submitter hears `Ok` only once the stream's publish acknowledgement says a quorum of its
//! replicas holds the batch.
//!
//! Group commit with **one batch in flight**: [`EdgePublisher::submit`] queues its events (the
//! order is fixed when it returns); one task takes everything queued (each submit's events kept
//! together, at most [`StreamSettings::max_batch_events`] events unless one submit alone has
//! more, and at most the server's `max_payload` less a margin for headers), seals it as a
//! [`BatchMessage`] with the next [`BatchId`] (counter 1, 2, 3, … per boot) and publishes it
//! with `Nats-Msg-Id` = [`BatchId::msg_id`] on `{p}.batch.{edge_id}`. Whatever is submitted
//! meanwhile forms the next batch, so the stream holds an edge's events in submit order (a
//! `JobCreated` always precedes the shares on its job).
//!
//! No ack (a timeout, `503 no responders` during a leader election, a full stream refusing
//! with `discard: new`, a lost connection): the batch is retried, **the same payload with the
//! same id**, after a pause (250 ms, growing to 1 s), so a retry of a batch the stream did store
//! is dropped by its duplicate window (the ack then says `duplicate`: success). Submitters wait
//! meanwhile (miners are never told `true` early). The first failure is logged with its reason,
//! then at most every 10 s with how long and how many submits wait.
//!
//! A batch is abandoned only when it is older than the duplicate window less a margin
//! ([`abandon_after`]): a retry after that could be stored twice. Its submitters then get an
//! error (never `Ok`), the batch id is logged, and the next batch takes the next counter (the
//! core reports the gap). No retry is even sent while the client is not connected (a publish
//! queued in a disconnected client would go out whenever it reconnects, maybe past the window).
//! One the client wrote just before it noticed the outage can still go out on its reconnect:
//! then an abandoned batch may reach the stream after all, before any later batch (the client
//! keeps its order). Its submitters were told it failed, so the ledger may then hold shares no
//! miner was told `true` for, never the reverse; a copy past the duplicate window is what the
//! core's own batch-id dedupe is for.

use crate::message::{BatchId, BatchMessage};
use crate::settings::StreamSettings;
use async_nats::connection::State;
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use pool_core::event::{Event, LedgerAnchor};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stratum::sink::{Durable, EventSink, SinkError};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Bytes kept below the server's `max_payload` for the message's headers (`Nats-Msg-Id`).
const HEADER_ROOM: usize = 512;
/// The payload's fixed part: format byte, edge id, boot id, counter, sealed_ms, schema, and
/// the events' length prefix (see [`crate::message`]).
const ENVELOPE_BYTES: usize = 1 + 2 + 8 + 8 + 8 + 2 + 8;
const FIRST_PAUSE: Duration = Duration::from_millis(250);
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// An ongoing outage is logged again at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How old a batch may get before it is abandoned: the duplicate window less a margin of
/// `max(10 s, 4 x ack_timeout)`, the margin capped at half the window (so a short window still
/// leaves time to retry). The last retry is sent before this age, and its ack is awaited for
/// at most `ack_timeout` more, well inside the window.
pub fn abandon_after(settings: &StreamSettings) -> Duration {
    let window = settings.duplicate_window;
    let margin = Duration::from_secs(10)
        .max(settings.ack_timeout * 4)
        .min(window / 2);
    window.saturating_sub(margin)
}

/// At most this many events wait in the queue (beyond it submits are refused, quietly: the
/// stream is away and the outage is logged): 64 full batches, at least 262,144 events.
fn max_waiting_events(settings: &StreamSettings) -> usize {
    settings.max_batch_events.saturating_mul(64).max(1 << 18)
}

/// The publisher's counters since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublisherCounters {
    /// Batches the stream acknowledged (duplicates included) and the events in them.
    pub batches: u64,
    pub events: u64,
    /// Acknowledgements that said `duplicate` (a retry of a batch the stream already held).
    pub duplicates: u64,
    /// Publish attempts that got no ack and were retried.
    pub retries: u64,
    /// Batches given up past the duplicate window (their submitters got an error).
    pub abandoned: u64,
    /// Submits refused at once (too big for one message, the queue full, shutting down).
    pub refused: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    events: AtomicU64,
    duplicates: AtomicU64,
    retries: AtomicU64,
    abandoned: AtomicU64,
    refused: AtomicU64,
}

type Reply = oneshot::Sender<Result<(), SinkError>>;

/// One submit, waiting.
struct Submit {
    events: Vec<Event>,
    /// The events' encoded size.
    bytes: usize,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    submits: VecDeque<Submit>,
    events: usize,
    /// Draining: no new submits.
    closed: bool,
}

struct Inner {
    edge_id: u16,
    boot_id: u64,
    subject: String,
    settings: StreamSettings,
    client: async_nats::Client,
    js: jetstream::Context,
    queue: Mutex<Queue>,
    wake: Notify,
    anchor: Mutex<Option<LedgerAnchor>>,
    counters: Counters,
    /// Cancelled when a drain's wait is over: what is left fails.
    stop: CancellationToken,
    /// Unix ms of the last "queue full" log line.
    full_logged_ms: AtomicU64,
}

/// See the module docs.
pub struct EdgePublisher {
    inner: Arc<Inner>,
    task: Mutex<Option<JoinHandle<()>>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every step under these locks is a whole update.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EdgePublisher {
    /// Starts the publisher task of edge `edge_id` on `client` (a fresh random boot id).
    pub fn start(
        client: async_nats::Client,
        settings: &StreamSettings,
        edge_id: u16,
    ) -> Arc<EdgePublisher> {
        let inner = Arc::new(Inner {
            edge_id,
            boot_id: rand::random(),
            subject: settings.subjects().batch(edge_id),
            settings: settings.clone(),
            js: crate::setup::jetstream(client.clone(), settings),
            client,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            anchor: Mutex::new(None),
            counters: Counters::default(),
            stop: CancellationToken::new(),
            full_logged_ms: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(Arc::clone(&inner)));
        Arc::new(EdgePublisher {
            inner,
            task: Mutex::new(Some(task)),
        })
    }

    pub fn edge_id(&self) -> u16 {
        self.inner.edge_id
    }

    /// This process's boot id (in every batch id).
    pub fn boot_id(&self) -> u64 {
        self.inner.boot_id
    }

    /// The next coinbase anchor (the core's ledger head, from `{p}.anchor`).
    pub fn set_anchor(&self, anchor: LedgerAnchor) {
        *lock(&self.inner.anchor) = Some(anchor);
    }

    pub fn counters(&self) -> PublisherCounters {
        let c = &self.inner.counters;
        PublisherCounters {
            batches: c.batches.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            duplicates: c.duplicates.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
        }
    }

    /// Submits and events queued, not yet in a batch in flight.
    pub fn waiting(&self) -> (usize, usize) {
        let q = lock(&self.inner.queue);
        (q.submits.len(), q.events)
    }

    /// The largest events payload one submit may carry now (the server's `max_payload` less
    /// room for the headers and the batch's envelope).
    pub fn byte_budget(&self) -> usize {
        self.inner.byte_budget()
    }

    /// Stops now: the batch in flight and everything queued fail (never acknowledged), the
    /// task ends. For a shutdown that cannot wait any longer ([`EdgePublisher::drain`] waits).
    pub fn stop(&self) {
        lock(&self.inner.queue).closed = true;
        self.inner.stop.cancel();
    }

    /// Stops taking submits, publishes what is queued for up to `wait`, then fails whatever is
    /// still unacknowledged and ends the task. Returns the final counters.
    pub async fn drain(&self, wait: Duration) -> PublisherCounters {
        lock(&self.inner.queue).closed = true;
        self.inner.wake.notify_one();
        let task = lock(&self.task).take();
        if let Some(mut task) = task {
            if tokio::time::timeout(wait, &mut task).await.is_err() {
                let (submits, events) = self.waiting();
                tracing::warn!(
                    submits,
                    events,
                    "the stream did not take everything within {} ms of the shutdown; failing \
                     what is left (those shares were never acknowledged)",
                    wait.as_millis()
                );
                self.inner.stop.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
        }
        self.counters()
    }
}

impl Drop for EdgePublisher {
    fn drop(&mut self) {
        self.inner.stop.cancel();
        lock(&self.inner.queue).closed = true;
        self.inner.wake.notify_one();
    }
}

impl Inner {
    fn byte_budget(&self) -> usize {
        self.client
            .max_payload()
            .saturating_sub(HEADER_ROOM + ENVELOPE_BYTES)
    }

    fn refuse(&self, error: SinkError) -> SinkError {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        error
    }

    /// Takes the next batch off the queue: the first submit, then the following ones while
    /// they fit the event cap and the byte budget. A first submit bigger than the budget (the
    /// server's limit shrank since it was queued) fails on its own.
    fn take_batch(&self) -> Vec<Submit> {
        let budget = self.byte_budget();
        let max_events = self.settings.max_batch_events;
        let mut q = lock(&self.queue);
        let mut batch: Vec<Submit> = Vec::new();
        let (mut events, mut bytes) = (0usize, 0usize);
        while let Some(next) = q.submits.front() {
            let fits = batch.is_empty()
                || (events + next.events.len() <= max_events && bytes + next.bytes <= budget);
            if !fits {
                break;
            }
            let Some(next) = q.submits.pop_front() else {
                break;
            };
            q.events -= next.events.len();
            if next.bytes > budget {
                let _ = next
                    .reply
                    .send(Err(self.refuse(too_big(next.bytes, budget))));
                continue;
            }
            events += next.events.len();
            bytes += next.bytes;
            batch.push(next);
        }
        batch
    }
}

fn too_big(bytes: usize, budget: usize) -> SinkError {
    SinkError::new(format!(
        "{bytes} bytes of events do not fit one stream message (the NATS server's max_payload \
         leaves {budget} bytes): raise max_payload in the NATS server config"
    ))
}

impl EventSink for EdgePublisher {
    fn submit(&self, events: Vec<Event>) -> Result<Durable, SinkError> {
        let inner = &self.inner;
        if events.is_empty() {
            return Ok(Box::pin(async { Ok(()) }));
        }
        let bytes = events.iter().fold(0usize, |sum, e| {
            let size = bincode::serialized_size(e).map_or(usize::MAX, |s| s as usize);
            sum.saturating_add(size)
        });
        let budget = inner.byte_budget();
        if bytes > budget {
            return Err(inner.refuse(too_big(bytes, budget)));
        }
        let (reply, done) = oneshot::channel();
        {
            let mut q = lock(&inner.queue);
            if q.closed {
                return Err(inner.refuse(SinkError::quiet(
                    "the edge is stopping: the stream takes no more events",
                )));
            }
            let limit = max_waiting_events(&inner.settings);
            if q.events + events.len() > limit {
                let now = now_ms();
                let last = inner.full_logged_ms.load(Ordering::Relaxed);
                if now.saturating_sub(last) >= LOG_EVERY.as_millis() as u64 {
                    inner.full_logged_ms.store(now, Ordering::Relaxed);
                    tracing::error!(
                        waiting_events = q.events,
                        limit,
                        "the stream is not taking events and {limit} wait already: refusing \
                         new shares until it does"
                    );
                }
                return Err(inner.refuse(SinkError::quiet(format!(
                    "{} events wait for the stream already",
                    q.events
                ))));
            }
            q.events += events.len();
            q.submits.push_back(Submit {
                events,
                bytes,
                reply,
            });
        }
        inner.wake.notify_one();
        Ok(Box::pin(async move {
            done.await.unwrap_or_else(|_| {
                Err(SinkError::new(
                    "the stream publisher stopped before these events were acknowledged",
                ))
            })
        }))
    }

    fn anchor(&self) -> Option<LedgerAnchor> {
        *lock(&self.inner.anchor)
    }
}

/// How the batch in flight ended.
enum Outcome {
    Acked(jetstream::publish::PublishAck),
    Abandoned,
    Stopped,
}

/// An outage in progress (for its log lines).
struct Outage {
    since: Instant,
    logged: Instant,
}

/// The publisher task: one batch in flight, until drained (or stopped).
async fn run(inner: Arc<Inner>) {
    let mut counter = 0u64;
    let mut outage: Option<Outage> = None;
    loop {
        let batch = inner.take_batch();
        if batch.is_empty() {
            let drained = {
                let q = lock(&inner.queue);
                q.closed && q.submits.is_empty()
            };
            if drained {
                break;
            }
            tokio::select! {
                _ = inner.wake.notified() => continue,
                _ = inner.stop.cancelled() => break,
            }
        }
        counter += 1;
        let id = BatchId {
            edge_id: inner.edge_id,
            boot_id: inner.boot_id,
            counter,
        };
        let mut replies = Vec::with_capacity(batch.len());
        let mut events = Vec::new();
        for submit in batch {
            events.extend(submit.events);
            replies.push(submit.reply);
        }
        let n_events = events.len() as u64;
        let message = BatchMessage {
            id,
            sealed_ms: now_ms(),
            events,
        };
        let payload = bytes::Bytes::from(message.encode());
        drop(message);
        let result = match publish(&inner, id, payload, replies.len(), &mut outage).await {
            Outcome::Acked(ack) => {
                let c = &inner.counters;
                c.batches.fetch_add(1, Ordering::Relaxed);
                c.events.fetch_add(n_events, Ordering::Relaxed);
                if ack.duplicate {
                    c.duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(batch = %id, seq = ack.sequence, "the stream held this batch already (a retry's duplicate ack)");
                }
                Ok(())
            }
            Outcome::Abandoned => {
                inner.counters.abandoned.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    batch = %id,
                    submits = replies.len(),
                    events = n_events,
                    "batch abandoned: no publish ack within {} s (the stream's duplicate window \
                     less a margin); its shares were never acknowledged to miners, the next \
                     batch takes counter {} and the core reports the gap",
                    abandon_after(&inner.settings).as_secs(),
                    counter + 1
                );
                Err(SinkError::quiet(format!(
                    "the stream did not acknowledge batch {id} in time"
                )))
            }
            Outcome::Stopped => {
                tracing::warn!(batch = %id, events = n_events, "the edge stopped before the stream acknowledged this batch");
                Err(SinkError::quiet(format!(
                    "the edge stopped before the stream acknowledged batch {id}"
                )))
            }
        };
        let stopped = result.is_err() && inner.stop.is_cancelled();
        for reply in replies {
            let _ = reply.send(result.clone());
        }
        if stopped {
            break;
        }
    }
    // Whatever still waits (a stop) fails: never acknowledged.
    let left: Vec<Submit> = {
        let mut q = lock(&inner.queue);
        q.closed = true;
        q.events = 0;
        q.submits.drain(..).collect()
    };
    for submit in left {
        let _ = submit.reply.send(Err(SinkError::quiet(
            "the edge stopped before these events reached the stream",
        )));
    }
}

/// Publishes one sealed batch until it is acknowledged, abandoned, or the publisher stops.
async fn publish(
    inner: &Inner,
    id: BatchId,
    payload: bytes::Bytes,
    submits: usize,
    outage: &mut Option<Outage>,
) -> Outcome {
    let sealed = Instant::now();
    let give_up = abandon_after(&inner.settings);
    let mut pause = FIRST_PAUSE;
    loop {
        let attempt = tokio::select! {
            a = attempt(inner, id, payload.clone()) => a,
            _ = inner.stop.cancelled() => return Outcome::Stopped,
        };
        let reason = match attempt {
            Ok(ack) => {
                if let Some(o) = outage.take() {
                    tracing::info!(
                        batch = %id,
                        seq = ack.sequence,
                        "the stream acknowledges again after {:.1} s",
                        o.since.elapsed().as_secs_f64()
                    );
                }
                return Outcome::Acked(ack);
            }
            Err(reason) => reason,
        };
        inner.counters.retries.fetch_add(1, Ordering::Relaxed);
        match outage {
            None => {
                tracing::warn!(
                    batch = %id,
                    "the stream did not acknowledge a batch ({reason}); its shares wait \
                     unacknowledged, retrying with the same message id"
                );
                let now = Instant::now();
                *outage = Some(Outage {
                    since: now,
                    logged: now,
                });
            }
            Some(o) if o.logged.elapsed() >= LOG_EVERY => {
                o.logged = Instant::now();
                let (queued, events) = {
                    let q = lock(&inner.queue);
                    (q.submits.len(), q.events)
                };
                tracing::warn!(
                    batch = %id,
                    waiting_submits = submits + queued,
                    queued_events = events,
                    "still no publish ack from the stream after {:.0} s ({reason})",
                    o.since.elapsed().as_secs_f64()
                );
            }
            Some(_) => tracing::debug!(batch = %id, "publish retry failed: {reason}"),
        }
        let age = sealed.elapsed();
        if age + pause >= give_up {
            return Outcome::Abandoned;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = inner.stop.cancelled() => return Outcome::Stopped,
        }
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// One publish of the batch and the wait for its ack; the error says why in an operator's
/// words.
async fn attempt(
    inner: &Inner,
    id: BatchId,
    payload: bytes::Bytes,
) -> Result<jetstream::publish::PublishAck, String> {
    if inner.client.connection_state() != State::Connected {
        return Err("not connected to any NATS server".into());
    }
    let timeout = inner.settings.ack_timeout;
    let message = PublishMessage::build()
        .payload(payload)
        .message_id(id.msg_id());
    let describe = |e: jetstream::context::PublishError| match e.kind() {
        PublishErrorKind::StreamNotFound => format!(
            "no responders: the stream {} has no leader now (an election) or does not exist",
            inner.settings.name
        ),
        PublishErrorKind::TimedOut => format!("no publish ack within {} ms", timeout.as_millis()),
        _ if e.to_string().contains("maximum") => format!(
            "the stream {} is full and refuses new batches until the core consumes some \
             (discard: new; is the core running?): {e}",
            inner.settings.name
        ),
        _ => e.to_string(),
    };
    let ack = tokio::time::timeout(
        timeout,
        inner.js.send_publish(inner.subject.clone(), message),
    )
    .await
    .map_err(|_| format!("the publish was not sent within {} ms", timeout.as_millis()))?
    .map_err(describe)?;
    ack.await.map_err(describe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_abandoned_well_inside_the_duplicate_window() {
        let mut s = StreamSettings::new(vec!["nats://127.0.0.1:4222".into()]);
        // The defaults: 120 s window, 2 s ack timeout: 10 s of margin.
        assert_eq!(abandon_after(&s), Duration::from_secs(110));
        // A long ack timeout: four of them.
        s.duplicate_window = Duration::from_secs(60);
        s.ack_timeout = Duration::from_secs(5);
        assert_eq!(abandon_after(&s), Duration::from_secs(40));
        // The shortest window the config allows: half of it is left to retry in.
        s.duplicate_window = Duration::from_secs(10);
        s.ack_timeout = Duration::from_millis(500);
        assert_eq!(abandon_after(&s), Duration::from_secs(5));
        assert_eq!(max_waiting_events(&s), 1 << 18);
    }
}
