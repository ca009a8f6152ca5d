//! The edge's side of the control subjects (plain NATS, outside the stream; see
//! [`crate::control`]):
//! - `{p}.anchor`: the core's ledger head becomes the publisher's [`EventSink::anchor`], the
//!   anchor of the edge's next job;
//! - `{p}.bans`: the core's whole list of operator bans becomes the edge's copy of them
//!   ([`BanStore::apply_operator_list`]: new ones close the matching live connections, one
//!   absent from the list is lifted, the edge's own flood bans stay);
//! - `{p}.stats.{edge_id}`: every control interval, the edge's live connections and share
//!   counters ([`EdgeStats`]), and an empty snapshot when it stops.
//!
//! A message lost on these subjects is replaced by the next one; a malformed one is logged and
//! ignored. Subscriptions survive reconnects (the client renews them).
//!
//! [`EventSink::anchor`]: stratum::sink::EventSink::anchor

use crate::control::{AnchorMessage, BanList, EdgeConnection, EdgeStats};
use crate::publisher::EdgePublisher;
use crate::settings::StreamSettings;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stratum::ban::{format_utc, BanStore, BanTarget};
use stratum::server::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the publisher's counters are logged (when they moved).
const COUNTERS_EVERY: Duration = Duration::from_secs(60);
/// A malformed control message is logged at most this often per subject.
const MALFORMED_EVERY: Duration = Duration::from_secs(60);

/// What the edge's control tasks work on.
pub struct EdgeControl {
    pub client: async_nats::Client,
    pub settings: StreamSettings,
    pub publisher: Arc<EdgePublisher>,
    /// The Stratum server's ban store and registry (`ServerConfig::bans`, `::registry`).
    pub bans: Arc<BanStore>,
    pub registry: Arc<Registry>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the three control loops until `shutdown`, then sends the last (empty) statistics.
pub fn spawn(control: EdgeControl, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let control = Arc::new(control);
        tokio::join!(
            follow_anchor(Arc::clone(&control), shutdown.clone()),
            follow_bans(Arc::clone(&control), shutdown.clone()),
            publish_stats(Arc::clone(&control), shutdown),
        );
    })
}

/// Subscribes to `subject`, retrying (with a pause) until it works or `shutdown`.
async fn subscribe(
    client: &async_nats::Client,
    subject: &str,
    shutdown: &CancellationToken,
) -> Option<async_nats::Subscriber> {
    loop {
        match client.subscribe(subject.to_owned()).await {
            Ok(sub) => return Some(sub),
            Err(e) => tracing::warn!(subject, "cannot subscribe ({e}); retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The next message on `subject` (resubscribing if the subscription ended), or `None` on
/// shutdown.
async fn next_message(
    control: &EdgeControl,
    subject: &str,
    sub: &mut Option<async_nats::Subscriber>,
    shutdown: &CancellationToken,
) -> Option<async_nats::Message> {
    loop {
        if sub.is_none() {
            *sub = Some(subscribe(&control.client, subject, shutdown).await?);
        }
        let next = tokio::select! {
            _ = shutdown.cancelled() => return None,
            m = sub.as_mut()?.next() => m,
        };
        match next {
            Some(m) => return Some(m),
            None => {
                tracing::warn!(subject, "subscription ended; subscribing again");
                *sub = None;
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Logs a malformed message at most every [`MALFORMED_EVERY`].
fn malformed(subject: &str, error: &dyn std::fmt::Display, last: &mut Option<Instant>) {
    let due = match last {
        Some(t) => t.elapsed() >= MALFORMED_EVERY,
        None => true,
    };
    if due {
        *last = Some(Instant::now());
        tracing::warn!(subject, "ignoring a malformed control message: {error}");
    }
}

async fn follow_anchor(control: Arc<EdgeControl>, shutdown: CancellationToken) {
    let subject = control.settings.subjects().anchor();
    let mut sub = None;
    let mut bad = None;
    let mut first = true;
    while let Some(message) = next_message(&control, &subject, &mut sub, &shutdown).await {
        match serde_json::from_slice::<AnchorMessage>(&message.payload) {
            Ok(a) => {
                if first {
                    first = false;
                    tracing::info!(
                        seq = a.anchor.seq,
                        "first ledger head from the core: new jobs anchor to it"
                    );
                }
                control.publisher.set_anchor(a.anchor);
            }
            Err(e) => malformed(&subject, &e, &mut bad),
        }
    }
}

async fn follow_bans(control: Arc<EdgeControl>, shutdown: CancellationToken) {
    let subject = control.settings.subjects().bans();
    let mut sub = None;
    let mut bad = None;
    // Each target this build cannot read is logged once.
    let mut unreadable: HashSet<String> = HashSet::new();
    while let Some(message) = next_message(&control, &subject, &mut sub, &shutdown).await {
        let list = match serde_json::from_slice::<BanList>(&message.payload) {
            Ok(list) => list,
            Err(e) => {
                malformed(&subject, &e, &mut bad);
                continue;
            }
        };
        apply_bans(&control, &list, &mut unreadable, now_ms());
    }
}

/// Applies one ban list from the core; returns how many connections it closed.
pub fn apply_bans(
    control: &EdgeControl,
    list: &BanList,
    unreadable: &mut HashSet<String>,
    now_ms: u64,
) -> u64 {
    let mut targets = Vec::with_capacity(list.bans.len());
    for entry in &list.bans {
        match BanTarget::from_wire(&entry.target) {
            Ok(t) => targets.push((t, entry.until_ms)),
            Err(e) => {
                if unreadable.insert(entry.target.clone()) {
                    tracing::warn!(
                        "the core's ban list holds a target this edge cannot apply: {e}"
                    );
                }
            }
        }
    }
    let change = control.bans.apply_operator_list(&targets, now_ms);
    let mut closed_total = 0;
    for ban in &change.added {
        let until = format_utc(ban.until_ms);
        let closed = control.registry.close_matching(
            &ban.target,
            &format!("banned by the operator until {until}"),
        );
        closed_total += closed;
        tracing::warn!(
            closed_connections = closed,
            "operator banned {} until {until} (from the core)",
            ban.target
        );
    }
    for target in &change.lifted {
        tracing::info!("operator ban of {target} lifted (from the core)");
    }
    closed_total
}

/// The edge's live state now.
pub fn snapshot(control: &EdgeControl, at_ms: u64) -> EdgeStats {
    let (accepted, rejected) = control.registry.share_counts();
    EdgeStats {
        edge_id: control.publisher.edge_id(),
        boot_id: control.publisher.boot_id(),
        at_ms,
        accepted,
        rejected,
        connections: control
            .registry
            .connections()
            .into_iter()
            .map(|c| EdgeConnection {
                peer: c.peer.to_string(),
                usernames: c.usernames,
                difficulty: c.difficulty,
                since_ms: c.since_ms,
            })
            .collect(),
    }
}

async fn send_stats(control: &EdgeControl, subject: &str, stats: &EdgeStats) {
    let payload = match serde_json::to_vec(stats) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("edge statistics do not encode: {e}");
            return;
        }
    };
    if let Err(e) = control
        .client
        .publish(subject.to_owned(), payload.into())
        .await
    {
        tracing::debug!(subject, "edge statistics not sent: {e}");
    }
}

async fn publish_stats(control: Arc<EdgeControl>, shutdown: CancellationToken) {
    let subject = control
        .settings
        .subjects()
        .stats(control.publisher.edge_id());
    let mut tick = tokio::time::interval(control.settings.control_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut counters_logged = Instant::now();
    let mut last_counters = control.publisher.counters();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let stats = snapshot(&control, now_ms());
        send_stats(&control, &subject, &stats).await;
        if counters_logged.elapsed() >= COUNTERS_EVERY {
            counters_logged = Instant::now();
            let c = control.publisher.counters();
            if c != last_counters {
                let (waiting_submits, waiting_events) = control.publisher.waiting();
                tracing::info!(
                    batches = c.batches - last_counters.batches,
                    events = c.events - last_counters.events,
                    retries = c.retries - last_counters.retries,
                    duplicates = c.duplicates - last_counters.duplicates,
                    abandoned = c.abandoned - last_counters.abandoned,
                    refused = c.refused - last_counters.refused,
                    waiting_submits,
                    waiting_events,
                    "stream publishing in the last {} s",
                    COUNTERS_EVERY.as_secs()
                );
                last_counters = c;
            }
        }
    }
    // The last word: no connections here any more.
    let mut last = snapshot(&control, now_ms());
    last.connections.clear();
    send_stats(&control, &subject, &last).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), control.client.flush()).await;
}
