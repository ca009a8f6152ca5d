//! The core's consumer against one real `nats-server` (JetStream, R1), started by each test on
//! a free port with its own store directory (binary: `$OBTC_NATS_BIN/nats-server` if set, else
//! `nats-server` on the PATH), killed on drop. Batches are published directly with async-nats.

use async_nats::jetstream::{self, message::PublishMessage};
use ledger::Ledger;
use pool_core::event::{Event, PaymentFailed, StreamBatch};
use std::time::{Duration, Instant};
use stream::consumer::{Consumer, ConsumerOptions, ConsumerStats};
use stream::dedupe::Dedupe;
use stream::setup;
use stream::{BatchId, BatchMessage, StreamSettings};
use support::Nats;
use tokio_util::sync::CancellationToken;

mod support;

/// A server, the stream on it (R1) and a JetStream context.
struct Setup {
    _server: Nats,
    settings: StreamSettings,
    js: jetstream::Context,
}

async fn setup() -> Setup {
    // The consumer's log, shown for a failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
    let server = Nats::start();
    let mut settings = StreamSettings::new(vec![server.url()]);
    settings.replicas = 1;
    let client = setup::connect(&settings, "consumer-test").await.unwrap();
    let js = setup::jetstream(client, &settings);
    setup::ensure_stream(&js, &settings, Duration::from_secs(10))
        .await
        .unwrap();
    Setup {
        _server: server,
        settings,
        js,
    }
}

fn batch(edge_id: u16, boot_id: u64, counter: u64, events: u64) -> BatchMessage {
    BatchMessage {
        id: BatchId {
            edge_id,
            boot_id,
            counter,
        },
        sealed_ms: 1_700_000_000_000,
        events: (0..events)
            .map(|i| {
                Event::PaymentFailed(PaymentFailed {
                    payment_id: counter * 100 + i,
                    reason: format!("e{edge_id} b{boot_id} c{counter}"),
                })
            })
            .collect(),
    }
}

async fn publish(s: &Setup, b: &BatchMessage, msg_id: &str) {
    let message = PublishMessage::build()
        .payload(b.encode().into())
        .message_id(msg_id);
    s.js.send_publish(s.settings.subjects().batch(b.id.edge_id), message)
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn publish_raw(s: &Setup, edge_id: u16, payload: Vec<u8>) {
    s.js.publish(s.settings.subjects().batch(edge_id), payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
}

fn options() -> ConsumerOptions {
    ConsumerOptions {
        blocked_retry: Duration::from_millis(300),
        report_interval: Duration::from_secs(1),
        ..ConsumerOptions::default()
    }
}

/// A consumer task over `ledger` with the state scanned from it.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Dedupe>,
    stats: std::sync::Arc<ConsumerStats>,
}

fn start(s: &Setup, ledger: &Ledger) -> Running {
    start_with(s, ledger, options())
}

fn start_with(s: &Setup, ledger: &Ledger, options: ConsumerOptions) -> Running {
    start_hooked(s, ledger, options, None)
}

fn start_hooked(
    s: &Setup,
    ledger: &Ledger,
    options: ConsumerOptions,
    hook: Option<stream::consumer::ApplyHook>,
) -> Running {
    let (dedupe, _) = Dedupe::scan(ledger).unwrap();
    let mut consumer = Consumer::new(
        s.js.clone(),
        s.settings.clone(),
        ledger.clone(),
        dedupe,
        options,
    );
    if let Some(hook) = hook {
        consumer = consumer.on_applied(hook);
    }
    let stats = consumer.stats();
    let stop = CancellationToken::new();
    let task = tokio::spawn(consumer.run(stop.clone()));
    Running { stop, task, stats }
}

impl Running {
    async fn stop(self) -> Dedupe {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the consumer stops")
            .unwrap()
    }
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn records(ledger: &Ledger) -> Vec<Event> {
    ledger.read_from(0).map(|r| r.unwrap().event).collect()
}

/// The batches in the ledger: each StreamBatch with the events that follow it.
fn batches(ledger: &Ledger) -> Vec<(StreamBatch, Vec<Event>)> {
    let mut out: Vec<(StreamBatch, Vec<Event>)> = Vec::new();
    for e in records(ledger) {
        match e {
            Event::StreamBatch(b) => out.push((b, Vec::new())),
            other => out.last_mut().expect("a StreamBatch first").1.push(other),
        }
    }
    for (b, events) in &out {
        assert_eq!(b.events as usize, events.len(), "{b:?}");
    }
    out
}

async fn messages_in_stream(s: &Setup) -> u64 {
    let mut stream = s.js.get_stream(&s.settings.name).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_applied_in_stream_order_each_behind_its_stream_batch() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let mut candidate = batch(2, 22, 2, 0);
    candidate
        .events
        .push(Event::BlockOrphaned(pool_core::event::BlockOrphaned {
            block_id: pool_core::BlockId([9; 32]),
            height: 3,
        }));
    candidate
        .events
        .push(Event::BlockCandidate(pool_core::event::BlockCandidate {
            height: 7,
            block_id: pool_core::BlockId([7; 32]),
            reward: pool_core::Sats(1),
            network_target: pool_core::Target::MAX,
            finder: pool_core::event::PayoutAddress("a".into()),
            worker: pool_core::event::WorkerName("w".into()),
            time_ms: 1,
            block: vec![1, 2, 3],
        }));
    let published = [
        batch(1, 11, 1, 2),
        batch(2, 22, 1, 1),
        batch(1, 11, 2, 3),
        candidate,
    ];
    for b in &published {
        publish(&s, b, &b.id.msg_id()).await;
    }
    let state_file = dir.path().join("stream-applied.bin");
    // The hook sees each durable group: its batches and its block events.
    let seen: std::sync::Arc<std::sync::Mutex<(Vec<BatchId>, Vec<Event>)>> = Default::default();
    let sink = seen.clone();
    let running = start_hooked(
        &s,
        &ledger,
        ConsumerOptions {
            state_file: Some(state_file.clone()),
            ..options()
        },
        Some(std::sync::Arc::new(
            move |g: &stream::consumer::AppliedGroup<'_>| {
                let mut seen = sink.lock().unwrap();
                seen.0.extend_from_slice(g.batches);
                seen.1.extend_from_slice(g.block_events);
            },
        )),
    );
    wait_for("4 batches", || {
        running.stats.snapshot().applied_batches == 4
    })
    .await;
    // More while it runs.
    let late = batch(1, 11, 3, 1);
    publish(&s, &late, &late.id.msg_id()).await;
    wait_for("5 batches", || {
        running.stats.snapshot().applied_batches == 5
    })
    .await;
    let stats = running.stats.snapshot();
    let dedupe = running.stop().await;
    let got = batches(&ledger);
    assert_eq!(got.len(), 5);
    for (i, ((b, events), sent)) in got.iter().zip(published.iter().chain([&late])).enumerate() {
        assert_eq!(b.stream_seq, i as u64 + 1);
        assert_eq!(
            (b.edge_id, b.boot_id, b.counter, b.sealed_ms),
            (
                sent.id.edge_id,
                sent.id.boot_id,
                sent.id.counter,
                sent.sealed_ms
            )
        );
        assert_eq!(events, &sent.events);
    }
    assert_eq!(dedupe.last_stream_seq(), 5);
    // The state file written at the stop is the scan's state.
    let (from_file, report) = Dedupe::load_or_scan(&ledger, &state_file).unwrap();
    assert_eq!(report.from_file, Some(ledger.head().unwrap().seq + 1));
    assert_eq!(from_file, Dedupe::scan(&ledger).unwrap().0);
    assert_eq!((stats.gap_reports, stats.skipped_duplicates), (0, 0));
    assert_eq!(stats.applied_events, 9);
    let (hooked_batches, block_events) = seen.lock().unwrap().clone();
    let ids: Vec<BatchId> = published.iter().chain([&late]).map(|b| b.id).collect();
    assert_eq!(hooked_batches, ids);
    assert_eq!(block_events.len(), 1);
    assert_eq!(block_events[0].kind(), "BlockCandidate");
    assert!(stats.lag.events >= 9, "{stats:?}");
    wait_for_empty(&s).await;
    ledger.close().await;
}

async fn wait_for_empty(s: &Setup) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while messages_in_stream(s).await != 0 {
        assert!(
            Instant::now() < deadline,
            "acknowledged messages stay in the stream"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_appended_but_not_acknowledged_before_a_crash_is_applied_once() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let first = batch(3, 33, 1, 2);
    let second = batch(3, 33, 2, 1);
    publish(&s, &first, &first.id.msg_id()).await;
    publish(&s, &second, &second.id.msg_id()).await;
    // A core that appended the first batch and died before acknowledging it: the same durable
    // consumer, a delivery, the append, no ack.
    {
        let mut stream = s.js.get_stream(&s.settings.name).await.unwrap();
        let consumer: jetstream::consumer::PullConsumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(s.settings.consumer.clone()),
                filter_subject: s.settings.subjects().batches(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .unwrap();
        use futures_util::StreamExt;
        let mut fetched = consumer.fetch().max_messages(1).messages().await.unwrap();
        let m = fetched.next().await.unwrap().unwrap();
        let seq = m.info().unwrap().stream_sequence;
        let b = BatchMessage::decode(&m.payload).unwrap();
        assert_eq!(b, first);
        let mut records = vec![Event::StreamBatch(StreamBatch {
            edge_id: b.id.edge_id,
            boot_id: b.id.boot_id,
            counter: b.id.counter,
            stream_seq: seq,
            events: b.events.len() as u32,
            sealed_ms: b.sealed_ms,
        })];
        records.extend(b.events);
        ledger.append_batch(records).await.unwrap();
        drop(m);
        let _ = stream.info().await.unwrap();
    }
    assert_eq!(messages_in_stream(&s).await, 2);
    let running = start(&s, &ledger);
    wait_for("the second batch", || {
        running.stats.snapshot().applied_batches == 1
    })
    .await;
    let stats = running.stats.snapshot();
    running.stop().await;
    let got = batches(&ledger);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got.iter().map(|(b, _)| b.counter).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // The redelivered first one was skipped (by its stream sequence: the ledger had it).
    assert_eq!(stats.skipped_duplicates + stats.skipped_redeliveries, 1);
    wait_for_empty(&s).await;
    // A second run finds nothing to do.
    let again = start(&s, &ledger);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(again.stats.snapshot().applied_batches, 0);
    again.stop().await;
    assert_eq!(batches(&ledger).len(), 2);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_id_is_skipped_and_a_counter_gap_reported() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let one = batch(4, 44, 1, 1);
    publish(&s, &one, &one.id.msg_id()).await;
    // The same batch again past the duplicate window (another message id: the stream keeps it).
    publish(&s, &one, "retried-late").await;
    // Counters 2..=4 never arrive.
    let five = batch(4, 44, 5, 2);
    publish(&s, &five, &five.id.msg_id()).await;
    let running = start(&s, &ledger);
    wait_for("two batches", || {
        running.stats.snapshot().applied_batches == 2
    })
    .await;
    let stats = running.stats.snapshot();
    let dedupe = running.stop().await;
    assert_eq!(stats.skipped_duplicates, 1);
    assert_eq!((stats.gap_reports, stats.missing_batches), (1, 3));
    let boot = dedupe.boot(4, 44).unwrap();
    assert_eq!((boot.last, boot.missing()), (5, vec![2..=4]));
    let got = batches(&ledger);
    assert_eq!(
        got.iter()
            .map(|(b, _)| (b.counter, b.stream_seq))
            .collect::<Vec<_>>(),
        vec![(1, 1), (5, 3)]
    );
    // The scan at the next start knows the same.
    let (scanned, _) = Dedupe::scan(&ledger).unwrap();
    assert_eq!(scanned.boot(4, 44), dedupe.boot(4, 44));
    wait_for_empty(&s).await;
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_message_stops_the_consumer_unacknowledged() {
    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let one = batch(5, 55, 1, 1);
    let two = batch(5, 55, 2, 1);
    publish(&s, &one, &one.id.msg_id()).await;
    publish_raw(&s, 5, vec![1, 2, 3]).await;
    let mut unknown_format = two.encode();
    unknown_format[0] = 9;
    publish(&s, &two, &two.id.msg_id()).await;
    let running = start(&s, &ledger);
    wait_for("the consumer to stop at sequence 2", || {
        running
            .stats
            .snapshot()
            .blocked
            .is_some_and(|b| b.stream_seq == 2)
    })
    .await;
    // Retried a few times, still stopped: nothing after it applied, it is still there.
    wait_for("two retries", || running.stats.snapshot().recreations >= 3).await;
    let stats = running.stats.snapshot();
    assert_eq!(stats.applied_batches, 1);
    assert_eq!(stats.blocked.as_ref().map(|b| b.stream_seq), Some(2));
    assert_eq!(batches(&ledger).len(), 1);
    assert_eq!(messages_in_stream(&s).await, 2);
    // The operator removes it: the consumer reports the hole and goes on.
    let stream = s.js.get_stream(&s.settings.name).await.unwrap();
    assert!(stream.delete_message(2).await.unwrap());
    wait_for("the batch after it", || {
        running.stats.snapshot().applied_batches == 2
    })
    .await;
    let stats = running.stats.snapshot();
    assert_eq!((stats.sequence_jumps, stats.missing_sequences), (1, 1));
    assert_eq!(stats.blocked, None);
    running.stop().await;
    assert_eq!(
        batches(&ledger)
            .iter()
            .map(|(b, _)| (b.counter, b.stream_seq))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 3)]
    );
    // An unknown format stops it the same way.
    publish_raw(&s, 5, unknown_format).await;
    let running = start(&s, &ledger);
    wait_for("the consumer to stop at sequence 4", || {
        running
            .stats
            .snapshot()
            .blocked
            .is_some_and(|b| b.stream_seq == 4 && b.error.contains("format 9"))
    })
    .await;
    running.stop().await;
    assert_eq!(messages_in_stream(&s).await, 1);
    ledger.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_control_publishes_head_and_bans_and_merges_edge_stats() {
    use std::sync::Arc;
    use stratum::ban::{BanStore, BanTarget};
    use stratum::server::registry::Registry;
    use stream::control::{AnchorMessage, BanList, EdgeConnection, EdgeStats};
    use stream::core_control::{self, CoreControl, CoreControlOptions};

    let s = setup().await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let client = s.js.client();
    let subjects = s.settings.subjects();
    let mut anchors = client.subscribe(subjects.anchor()).await.unwrap();
    let mut bans_sub = client.subscribe(subjects.bans()).await.unwrap();
    let bans = Arc::new(BanStore::default());
    let registry = Arc::new(Registry::new());
    let stop = CancellationToken::new();
    let options = CoreControlOptions {
        // Long: what arrives within a test's wait came from an append or a ban change.
        interval: Duration::from_secs(30),
        ..CoreControlOptions::new(&s.settings)
    };
    let task = core_control::spawn(
        CoreControl {
            client: client.clone(),
            subjects: subjects.clone(),
            ledger: ledger.clone(),
            bans: bans.clone(),
            registry: registry.clone(),
            options: CoreControlOptions {
                stats_ttl: Duration::from_secs(60),
                ..options
            },
        },
        stop.clone(),
    );
    // The first interval tick: an empty ban list (no head yet, so no anchor).
    let first: BanList = serde_json::from_slice(&next(&mut bans_sub).await.payload).unwrap();
    assert!(first.bans.is_empty());
    // An append is followed by its head.
    let appended = ledger
        .append(Event::PaymentFailed(PaymentFailed {
            payment_id: 1,
            reason: "x".into(),
        }))
        .await
        .unwrap();
    let anchor: AnchorMessage = serde_json::from_slice(&next(&mut anchors).await.payload).unwrap();
    assert_eq!(
        (anchor.anchor.seq, anchor.anchor.hash),
        (appended.seq, appended.hash)
    );
    // A ban is published at once, its lifting too.
    let target = BanTarget::Ip("192.0.2.1".parse().unwrap());
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    bans.ban(target.clone(), Duration::from_secs(600), now_ms);
    let list: BanList = serde_json::from_slice(&next(&mut bans_sub).await.payload).unwrap();
    assert_eq!(list.bans.len(), 1);
    assert_eq!(list.bans[0].target, "ip:192.0.2.1");
    assert!(bans.unban(&target));
    let list: BanList = serde_json::from_slice(&next(&mut bans_sub).await.payload).unwrap();
    assert!(list.bans.is_empty());
    // An edge's statistics reach the registry.
    let stats = EdgeStats {
        edge_id: 3,
        boot_id: 1,
        at_ms: 1,
        accepted: 42,
        rejected: 1,
        connections: vec![EdgeConnection {
            peer: "10.0.0.1:4000".into(),
            usernames: vec!["mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX.rig".into()],
            difficulty: Some(8.0),
            since_ms: 1,
        }],
    };
    client
        .publish(
            subjects.stats(3),
            serde_json::to_vec(&stats).unwrap().into(),
        )
        .await
        .unwrap();
    wait_for("the edge's snapshot", || registry.share_counts() == (42, 1)).await;
    assert_eq!(registry.counts().connections, 1);
    assert_eq!(
        registry.workers_of("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX")["rig"].difficulty,
        Some(8.0)
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    ledger.close().await;
}

async fn next(sub: &mut async_nats::Subscriber) -> async_nats::Message {
    use futures_util::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message in time")
        .expect("subscribed")
}
