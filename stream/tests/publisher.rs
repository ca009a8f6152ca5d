//! The edge publisher against one real `nats-server` (JetStream, R1), started by each test on a
//! free port with its own store directory (the binary from `$OBTC_NATS_BIN/nats-server` when
//! set, else `nats-server` on PATH), killed at the end.

use async_nats::jetstream::{self, message::PublishMessage};
use pool_core::event::{Event, PaymentFailed};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use stratum::sink::EventSink;
use stream::message::{BatchId, BatchMessage};
use stream::publisher::EdgePublisher;
use stream::StreamSettings;
use support::Nats;
use tokio::task::JoinHandle;

mod support;

const EDGE: u16 = 7;
/// The longest any one wait in these tests may take.
const PATIENCE: Duration = Duration::from_secs(20);

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
    nats.freeze();
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
    // Batch 2 is in the stream only if a publish of it the client wrote before it noticed the
    // outage went out on reconnect: then once, before batch 3 (its submitters were told it
    // failed all the same: the ledger may hold shares no miner was told `true` for, never the
    // reverse).
    assert!(
        counters == vec![1, 3] || counters == vec![1, 2, 3],
        "{counters:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_control_follows_the_cores_anchor_and_bans_and_reports_connections() {
    use futures_util::StreamExt;
    use std::sync::Arc;
    use stratum::ban::{BanStore, BanTarget};
    use stratum::server::registry::Registry;
    use stream::control::{AnchorMessage, BanEntry, BanList, EdgeStats};
    use stream::edge_control::{self, EdgeControl};

    let nats = Nats::start();
    let mut s = settings(&nats);
    s.control_interval = Duration::from_millis(200);
    let client = stream::setup::connect(&s, "control-test").await.unwrap();
    let publisher = EdgePublisher::start(client.clone(), &s, EDGE);
    let bans = Arc::new(BanStore::default());
    let registry = Arc::new(Registry::new());
    let far: std::net::IpAddr = "203.0.113.5".parse().unwrap();
    let close = tokio_util::sync::CancellationToken::new();
    let _conn = registry.register((far, 4000).into(), close.clone(), 1);
    // An automatic flood ban of the edge's own, which the core's list does not touch.
    let flooder: std::net::IpAddr = "198.51.100.9".parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for t in 0..10 {
        bans.record_cut(flooder, &[], now + t);
    }
    assert!(bans.check_ip(flooder, now + 20).is_some());

    let mut stats = client.subscribe(s.subjects().stats(EDGE)).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let control = edge_control::spawn(
        EdgeControl {
            client: client.clone(),
            settings: s.clone(),
            publisher: Arc::clone(&publisher),
            bans: Arc::clone(&bans),
            registry: Arc::clone(&registry),
        },
        shutdown.clone(),
    );

    // Statistics every interval, with the live connection.
    let m = tokio::time::timeout(PATIENCE, stats.next())
        .await
        .unwrap()
        .unwrap();
    let snapshot: EdgeStats = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(
        (snapshot.edge_id, snapshot.boot_id),
        (EDGE, publisher.boot_id())
    );
    assert_eq!(snapshot.connections.len(), 1);
    assert_eq!(snapshot.connections[0].peer, "203.0.113.5:4000");

    // The anchor (the subscription may not be in place yet: publish until it lands).
    let anchor = pool_core::event::LedgerAnchor {
        seq: 42,
        hash: [9; 32],
    };
    let body = serde_json::to_vec(&AnchorMessage { anchor }).unwrap();
    let started = Instant::now();
    while publisher.anchor() != Some(anchor) {
        assert!(started.elapsed() < PATIENCE, "the anchor never arrived");
        client
            .publish(s.subjects().anchor(), body.clone().into())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The operator bans the connection's IP and a worker: the connection is closed.
    let until = 4_000_000_000_000;
    let worker = BanTarget::Worker {
        username: "addr.rig".into(),
        from: None,
    };
    let list = |targets: &[BanTarget]| {
        let list = BanList {
            bans: targets
                .iter()
                .map(|t| BanEntry {
                    target: t.wire(),
                    until_ms: until,
                })
                .chain([BanEntry {
                    target: "range:10.0.0.0/8".into(),
                    until_ms: until,
                }])
                .collect(),
        };
        serde_json::to_vec(&list).unwrap()
    };
    let both = list(&[BanTarget::Ip(far), worker.clone()]);
    let started = Instant::now();
    while !close.is_cancelled() {
        assert!(started.elapsed() < PATIENCE, "the ban never arrived");
        client
            .publish(s.subjects().bans(), both.clone().into())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(bans.check_ip(far, now).is_some());
    assert_eq!(bans.worker_banned_until("addr.rig", far, now), Some(until));
    // The IP ban is lifted at the core: the next list lacks it; the flood ban stays.
    let worker_only = list(&[worker]);
    client
        .publish(s.subjects().bans(), worker_only.into())
        .await
        .unwrap();
    wait_until("the lift", || bans.check_ip(far, now).is_none()).await;
    assert_eq!(bans.worker_banned_until("addr.rig", far, now), Some(until));
    assert!(bans.check_ip(flooder, now + 100).is_some());

    // At shutdown, a last snapshot with no connections.
    shutdown.cancel();
    tokio::time::timeout(PATIENCE, control)
        .await
        .unwrap()
        .unwrap();
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < PATIENCE, "no last snapshot");
        let m = tokio::time::timeout(PATIENCE, stats.next())
            .await
            .unwrap()
            .unwrap();
        let snapshot: EdgeStats = serde_json::from_slice(&m.payload).unwrap();
        if snapshot.connections.is_empty() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_holds_submits_back_until_it_has_room() {
    let nats = Nats::start();
    let mut s = settings(&nats);
    s.max_bytes = 8 * 1024;
    let (js, publisher) = setup(&s).await;
    let big = |n: u64| {
        Event::PaymentFailed(PaymentFailed {
            payment_id: n * 100,
            reason: "x".repeat(5000),
        })
    };
    resolved(submit(&publisher, vec![big(0)])).await.unwrap();
    // No room for a second: the stream refuses it (discard: new), the submit waits.
    let waiting = submit(&publisher, vec![big(1)]);
    wait_until("a refused publish", || publisher.counters().retries >= 2).await;
    assert!(!waiting.is_finished(), "acked while the stream was full");
    // The core consumes the first batch (here: deleted): the second goes in.
    let stream = js.get_stream(&s.name).await.unwrap();
    stream.delete_message(1).await.unwrap();
    resolved(waiting).await.unwrap();
    let batches = stream_batches(&js, &s).await;
    let counters: Vec<u64> = batches.iter().map(|(_, _, b)| b.id.counter).collect();
    assert_eq!(counters, vec![2]);
}
