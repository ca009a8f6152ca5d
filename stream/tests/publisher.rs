//! The edge publisher against one real `nats-server` (JetStream, R1), started by each test on a
//! free port with its own store directory (the binary from `$OBTC_NATS_BIN/nats-server` when
//! set, else `nats-server` on PATH), killed at the end.

use async_nats::jetstream::{self, message::PublishMessage};
use pool_core::event::{Event, PaymentFailed};
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use stratum::sink::EventSink;
use stream::message::{BatchId, BatchMessage};
use stream::publisher::EdgePublisher;
use stream::StreamSettings;
use tokio::task::JoinHandle;

const EDGE: u16 = 7;
/// The longest any one wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

/// One `nats-server -js`, restartable on the same port and store.
struct Nats {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

fn nats_bin() -> PathBuf {
    match std::env::var_os("OBTC_NATS_BIN") {
        Some(dir) => PathBuf::from(dir).join("nats-server"),
        None => PathBuf::from("nats-server"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Nats {
    fn start() -> Nats {
        let mut n = Nats {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        n.spawn();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    fn spawn(&mut self) {
        let store = self.dir.path().join("store");
        let log = self.dir.path().join("nats.log");
        // Its output to a file, and no pipe of ours held open (a server holding the test's
        // pipe makes the test runner hang).
        let child = Command::new(nats_bin())
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&store)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", nats_bin().display()));
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < PATIENCE, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, signal: i32) {
        assert_eq!(unsafe { libc::kill(self.pid(), signal) }, 0);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

fn settings(nats: &Nats) -> StreamSettings {
    let mut s = StreamSettings::new(vec![nats.url()]);
    s.replicas = 1;
    s.ack_timeout = Duration::from_millis(500);
    s
}

/// The client, the stream created, and a publisher for edge [`EDGE`].
async fn setup(s: &StreamSettings) -> (jetstream::Context, std::sync::Arc<EdgePublisher>) {
    let client = stream::setup::connect(s, "publisher-test").await.unwrap();
    let js = stream::setup::jetstream(client.clone(), s);
    stream::setup::ensure_stream(&js, s, PATIENCE)
        .await
        .unwrap();
    let publisher = EdgePublisher::start(client, s, EDGE);
    (js, publisher)
}

/// Event `i` of submit `submit` (its payment id says which).
fn event(submit: u64, i: u64) -> Event {
    Event::PaymentFailed(PaymentFailed {
        payment_id: submit * 100 + i,
        reason: "test".into(),
    })
}

fn payment_id(e: &Event) -> u64 {
    match e {
        Event::PaymentFailed(p) => p.payment_id,
        other => panic!("unexpected event {other:?}"),
    }
}

/// Submits `events` and awaits their ack in a task of its own.
fn submit(p: &EdgePublisher, events: Vec<Event>) -> JoinHandle<Result<(), String>> {
    let durable = p.submit(events).unwrap();
    tokio::spawn(async move { durable.await.map_err(|e| e.message) })
}

async fn resolved(h: JoinHandle<Result<(), String>>) -> Result<(), String> {
    tokio::time::timeout(PATIENCE, h)
        .await
        .expect("a submit did not resolve in time")
        .unwrap()
}

/// Every message in the stream, in stream order, with its `Nats-Msg-Id`.
async fn stream_batches(
    js: &jetstream::Context,
    s: &StreamSettings,
) -> Vec<(u64, String, BatchMessage)> {
    let stream = js.get_stream(&s.name).await.unwrap();
    let info = stream.get_info().await.unwrap();
    let mut out = Vec::new();
    for seq in info.state.first_sequence..=info.state.last_sequence {
        if info.state.messages == 0 {
            break;
        }
        let m = stream.get_raw_message(seq).await.unwrap();
        assert_eq!(m.subject.as_str(), format!("obtc.batch.{EDGE}"));
        let id = m
            .headers
            .get("Nats-Msg-Id")
            .expect("every batch carries its id")
            .to_string();
        out.push((seq, id, BatchMessage::decode(&m.payload).unwrap()));
    }
    assert_eq!(out.len() as u64, info.state.messages);
    out
}

/// Waits until `cond` holds (or panics after [`PATIENCE`]).
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_resolve_once_the_stream_holds_them_in_order_in_counted_batches() {
    let nats = Nats::start();
    let mut s = settings(&nats);
    s.max_batch_events = 3;
    let (js, publisher) = setup(&s).await;
    assert_eq!(publisher.anchor(), None);

    // 20 submits of 1 to 5 events, all queued before the first ack can come back.
    let sizes: Vec<u64> = (0..20).map(|i| [1, 2, 1, 3, 5][i % 5]).collect();
    let mut handles = Vec::new();
    let mut submitted = Vec::new();
    for (n, size) in sizes.iter().enumerate() {
        let events: Vec<Event> = (0..*size).map(|i| event(n as u64, i)).collect();
        submitted.extend(events.iter().map(payment_id));
        handles.push(submit(&publisher, events));
    }
    // Each resolves Ok only once the stream holds its events.
    for (n, h) in handles.into_iter().enumerate() {
        resolved(h).await.unwrap();
        let held: Vec<u64> = stream_batches(&js, &s)
            .await
            .iter()
            .flat_map(|(_, _, b)| b.events.iter().map(payment_id))
            .collect();
        assert!(
            held.contains(&(n as u64 * 100)),
            "submit {n} acked before the stream held it"
        );
    }

    let batches = stream_batches(&js, &s).await;
    assert!(batches.len() > 2, "{} batches", batches.len());
    let mut in_stream = Vec::new();
    let mut submit_batch: BTreeMap<u64, u64> = BTreeMap::new();
    for (i, (_, msg_id, b)) in batches.iter().enumerate() {
        // Counters 1, 2, 3, … in stream order; the header is the id.
        let want = BatchId {
            edge_id: EDGE,
            boot_id: publisher.boot_id(),
            counter: i as u64 + 1,
        };
        assert_eq!(b.id, want);
        assert_eq!(msg_id, &want.msg_id());
        // At most max_batch_events, unless one submit alone is bigger.
        let submits: std::collections::BTreeSet<u64> =
            b.events.iter().map(|e| payment_id(e) / 100).collect();
        assert!(b.events.len() <= 3 || submits.len() == 1, "{:?}", b.events);
        // A submit's events stay together in one batch.
        for e in &b.events {
            let prev = submit_batch.insert(payment_id(e) / 100, b.id.counter);
            assert!(prev.is_none() || prev == Some(b.id.counter));
        }
        in_stream.extend(b.events.iter().map(payment_id));
    }
    assert_eq!(
        in_stream, submitted,
        "the stream holds every event once, in submit order"
    );
    let c = publisher.counters();
    assert_eq!(c.batches, batches.len() as u64);
    assert_eq!(c.events, submitted.len() as u64);
    assert_eq!((c.retries, c.abandoned, c.duplicates), (0, 0, 0));

    // A submit too big for one message fails at once, clearly.
    let huge = Event::PaymentFailed(PaymentFailed {
        payment_id: 1,
        reason: "x".repeat(publisher.byte_budget() + 1),
    });
    let refused = publisher.submit(vec![huge]).err().expect("refused");
    assert!(
        refused.message.contains("max_payload"),
        "{}",
        refused.message
    );

    // The anchor is the last one set.
    let anchor = pool_core::event::LedgerAnchor {
        seq: 9,
        hash: [3; 32],
    };
    publisher.set_anchor(anchor);
    assert_eq!(publisher.anchor(), Some(anchor));

    // Drain: what is queued is published, then no more submits.
    let last: Vec<_> = (50..55)
        .map(|n| submit(&publisher, vec![event(n, 0)]))
        .collect();
    let c = tokio::time::timeout(PATIENCE, publisher.drain(Duration::from_secs(10)))
        .await
        .unwrap();
    for h in last {
        resolved(h).await.unwrap();
    }
    assert_eq!(c.events, submitted.len() as u64 + 5);
    assert_eq!(c.refused, 1);
    assert!(publisher.submit(vec![event(99, 0)]).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_publish_is_stored_once() {
    let nats = Nats::start();
    let s = settings(&nats);
    let (js, publisher) = setup(&s).await;
    resolved(submit(&publisher, vec![event(0, 0)]))
        .await
        .unwrap();

    // The server freezes: the publish and its retries queue in its socket, unanswered.
    nats.signal(libc::SIGSTOP);
    let waiting = submit(&publisher, vec![event(1, 0), event(1, 1)]);
    wait_until("two retries", || publisher.counters().retries >= 2).await;
    assert!(!waiting.is_finished(), "acked while the server was frozen");
    // It thaws: it stores the first copy and drops every retry (same Nats-Msg-Id).
    nats.signal(libc::SIGCONT);
    resolved(waiting).await.unwrap();
    let batches = stream_batches(&js, &s).await;
    let counters: Vec<u64> = batches.iter().map(|(_, _, b)| b.id.counter).collect();
    assert_eq!(counters, vec![1, 2], "each batch stored once");
    assert_eq!(batches[1].2.events.len(), 2);
    let c = publisher.counters();
    assert!(c.duplicates >= 1, "{c:?}");
    assert_eq!((c.batches, c.abandoned), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_ack_is_success_and_stores_nothing() {
    let nats = Nats::start();
    let s = settings(&nats);
    let (js, publisher) = setup(&s).await;
    // The stream already holds the publisher's first batch id (as after an ack lost in
    // transit): the publish is acknowledged as a duplicate and nothing more is stored.
    let id = BatchId {
        edge_id: EDGE,
        boot_id: publisher.boot_id(),
        counter: 1,
    };
    let earlier = BatchMessage {
        id,
        sealed_ms: 1,
        events: vec![event(0, 0)],
    };
    js.send_publish(
        s.subjects().batch(EDGE),
        PublishMessage::build()
            .payload(earlier.encode().into())
            .message_id(id.msg_id()),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    resolved(submit(&publisher, vec![event(0, 0)]))
        .await
        .unwrap();
    let batches = stream_batches(&js, &s).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].2, earlier);
    assert_eq!(publisher.counters().duplicates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_server_down_submits_wait_and_resolve_after_its_restart() {
    let mut nats = Nats::start();
    let s = settings(&nats);
    let (js, publisher) = setup(&s).await;
    resolved(submit(&publisher, vec![event(0, 0)]))
        .await
        .unwrap();

    nats.kill();
    let waiting: Vec<_> = (1..6)
        .map(|n| submit(&publisher, vec![event(n, 0)]))
        .collect();
    wait_until("a failed attempt", || publisher.counters().retries >= 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        waiting.iter().all(|h| !h.is_finished()),
        "a submit resolved while the stream was down"
    );

    nats.spawn();
    for h in waiting {
        resolved(h).await.unwrap();
    }
    let batches = stream_batches(&js, &s).await;
    let counters: Vec<u64> = batches.iter().map(|(_, _, b)| b.id.counter).collect();
    assert_eq!(counters, (1..=counters.len() as u64).collect::<Vec<_>>());
    let events: Vec<u64> = batches
        .iter()
        .flat_map(|(_, _, b)| b.events.iter().map(payment_id))
        .collect();
    assert_eq!(events, (0..6).map(|n| n * 100).collect::<Vec<_>>());
    let c = publisher.counters();
    assert!(c.retries >= 1 && c.abandoned == 0, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_older_than_the_duplicate_window_allows_is_abandoned_and_fails() {
    let mut nats = Nats::start();
    let mut s = settings(&nats);
    s.duplicate_window = Duration::from_secs(10);
    let give_up = stream::publisher::abandon_after(&s);
    assert_eq!(give_up, Duration::from_secs(5));
    let (js, publisher) = setup(&s).await;
    resolved(submit(&publisher, vec![event(0, 0)]))
        .await
        .unwrap();

    nats.kill();
    let started = Instant::now();
    let lost = submit(&publisher, vec![event(1, 0)]);
    let failed = resolved(lost).await;
    let waited = started.elapsed();
    let error = failed.expect_err("an abandoned batch never says Ok");
    assert!(error.contains("e7-b"), "the error names the batch: {error}");
    assert!(
        waited >= give_up - Duration::from_secs(1),
        "abandoned after {waited:?}"
    );
    assert_eq!(publisher.counters().abandoned, 1);

    // The next batch takes the next counter (the core reports the gap at 2).
    nats.spawn();
    resolved(submit(&publisher, vec![event(2, 0)]))
        .await
        .unwrap();
    let batches = stream_batches(&js, &s).await;
    let counters: Vec<u64> = batches.iter().map(|(_, _, b)| b.id.counter).collect();
    assert_eq!(counters, vec![1, 3]);
}
