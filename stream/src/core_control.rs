//! The core's side of the control subjects (plain NATS, outside the ledger; see
//! [`crate::control`]):
//! - publishes its ledger head ([`AnchorMessage`]) on `{p}.anchor` every control interval, and
//!   soon after the ledger moves (at most every [`CoreControlOptions::anchor_throttle`]), so an
//!   edge's next job anchors to a head at most a moment old;
//! - publishes the operator's bans ([`BanList`], the whole list) on `{p}.bans` every interval
//!   and as soon as it changes (checked every [`CoreControlOptions::ban_poll`]);
//! - follows every edge's [`EdgeStats`] on `{p}.stats.*` into the [`Registry`] (each snapshot
//!   lives three intervals: an edge that stops publishing is forgotten).
//!
//! [`connect`] is the core's start-up connection (retried until the stream answers).
//!
//! Only operator bans travel (an edge makes its own flood bans). A ban's target travels in its
//! wire form: `ip:ADDR`, `worker:USERNAME` or `worker:USERNAME@IP`.

use crate::control::{AnchorMessage, BanEntry, BanList, EdgeStats};
use crate::settings::StreamSettings;
use crate::setup::{self, SetupError};
use crate::subjects::Subjects;
use futures_util::StreamExt;
use ledger::Ledger;
use pool_core::event::LedgerAnchor;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stratum::ban::{Ban, BanCause, BanStore, BanTarget};
use stratum::server::registry::{ConnectionInfo, Registry, RemoteSnapshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often what is published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreControlOptions {
    /// The head and the bans every this often (`[stream] control_interval_ms`).
    pub interval: Duration,
    /// At most one head between intervals this often.
    pub anchor_throttle: Duration,
    /// How often the ban store is compared with the list published last.
    pub ban_poll: Duration,
    /// How long an edge's snapshot counts.
    pub stats_ttl: Duration,
}

impl CoreControlOptions {
    pub fn new(settings: &StreamSettings) -> CoreControlOptions {
        CoreControlOptions {
            interval: settings.control_interval,
            anchor_throttle: Duration::from_millis(250),
            ban_poll: Duration::from_millis(250),
            stats_ttl: settings.control_interval * 3,
        }
    }
}

/// What the core's control task needs.
pub struct CoreControl {
    pub client: async_nats::Client,
    pub subjects: Subjects,
    pub ledger: Ledger,
    pub bans: Arc<BanStore>,
    pub registry: Arc<Registry>,
    pub options: CoreControlOptions,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A ban target's wire form (the same as `stratum::ban::BanTarget::wire` on the edge's
/// branch; see the module docs).
pub fn target_wire(target: &BanTarget) -> String {
    match target {
        BanTarget::Ip(ip) => format!("ip:{ip}"),
        BanTarget::Worker {
            username,
            from: None,
        } => format!("worker:{username}"),
        BanTarget::Worker {
            username,
            from: Some(ip),
        } => format!("worker:{username}@{ip}"),
    }
}

/// The operator's bans in force at `now_ms`, as published.
pub fn ban_list(bans: &BanStore, now_ms: u64) -> BanList {
    BanList {
        bans: bans
            .list(now_ms)
            .iter()
            .filter(|b: &&Ban| b.cause == BanCause::Operator)
            .map(|b| BanEntry {
                target: target_wire(&b.target),
                until_ms: b.until_ms,
            })
            .collect(),
    }
}

/// An edge's statistics as the registry keeps them (connections whose peer does not parse as
/// an address are counted from `0.0.0.0:0`).
pub fn remote_snapshot(stats: &EdgeStats) -> RemoteSnapshot {
    RemoteSnapshot {
        boot_id: stats.boot_id,
        at_ms: stats.at_ms,
        accepted: stats.accepted,
        rejected: stats.rejected,
        connections: stats
            .connections
            .iter()
            .map(|c| ConnectionInfo {
                peer: c
                    .peer
                    .parse()
                    .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
                usernames: c.usernames.clone(),
                difficulty: c.difficulty,
                since_ms: c.since_ms,
            })
            .collect(),
    }
}

/// Connects and makes sure the stream is there, retrying (with an error line each time) until
/// it is, or until `shutdown` (`None`). A stream whose settings could drop messages is an error.
pub async fn connect(
    settings: &StreamSettings,
    name: &str,
    shutdown: &CancellationToken,
) -> Result<Option<async_nats::jetstream::Context>, SetupError> {
    let client = loop {
        match setup::connect(settings, name).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::error!("{e}; retrying in 2 s");
                if sleep_or_shutdown(Duration::from_secs(2), shutdown).await {
                    return Ok(None);
                }
            }
        }
    };
    let js = setup::jetstream(client, settings);
    loop {
        let ensured = tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            r = setup::ensure_stream(&js, settings, Duration::from_secs(30)) => r,
        };
        match ensured {
            Ok(_) => return Ok(Some(js)),
            Err(e @ SetupError::Unsafe { .. }) => return Err(e),
            Err(e) => {
                tracing::error!(
                    servers = %settings.servers.join(","),
                    "the share stream is not reachable: {e}; retrying (nothing is applied meanwhile)"
                );
                if sleep_or_shutdown(Duration::from_secs(2), shutdown).await {
                    return Ok(None);
                }
            }
        }
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Starts the control task; it ends on `shutdown`.
pub fn spawn(control: CoreControl, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(run(control, shutdown))
}

async fn run(c: CoreControl, shutdown: CancellationToken) {
    let mut stats = loop {
        match c.client.subscribe(c.subjects.all_stats()).await {
            Ok(s) => break Some(s),
            Err(e) => {
                tracing::warn!("cannot subscribe to the edges' statistics: {e}; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut head = c.ledger.subscribe();
    let mut head_open = true;
    let mut interval = tokio::time::interval(c.options.interval);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ban_poll = tokio::time::interval(c.options.ban_poll);
    ban_poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_anchor: Option<(LedgerAnchor, Instant)> = None;
    let mut anchor_due: Option<Instant> = None;
    let mut last_bans: Option<BanList> = None;
    let mut malformed_logged: Option<Instant> = None;
    loop {
        let due = anchor_due;
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = interval.tick() => {
                publish_anchor(&c, &mut last_anchor, true).await;
                anchor_due = None;
                let list = ban_list(&c.bans, now_ms());
                publish_bans(&c, &list).await;
                last_bans = Some(list);
            }
            changed = head.changed(), if head_open => {
                if changed.is_err() {
                    // The ledger writer is gone: only the interval publishes from now on.
                    head_open = false;
                    continue;
                }
                let earliest = last_anchor
                    .map_or_else(Instant::now, |(_, at)| at + c.options.anchor_throttle);
                anchor_due = Some(anchor_due.map_or(earliest, |d| d.min(earliest)));
            }
            _ = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                publish_anchor(&c, &mut last_anchor, false).await;
                anchor_due = None;
            }
            _ = ban_poll.tick() => {
                let list = ban_list(&c.bans, now_ms());
                if last_bans.as_ref() != Some(&list) {
                    publish_bans(&c, &list).await;
                    last_bans = Some(list);
                }
            }
            message = next_stats(&mut stats) => match message {
                Some(m) => match serde_json::from_slice::<EdgeStats>(&m.payload) {
                    Ok(s) => c.registry.set_remote(s.edge_id, remote_snapshot(&s), c.options.stats_ttl),
                    Err(e) => {
                        if malformed_logged.map_or(true, |t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!(subject = %m.subject, "malformed edge statistics ignored: {e}");
                            malformed_logged = Some(Instant::now());
                        }
                    }
                },
                None => {
                    tracing::warn!("the edges' statistics subscription ended; resubscribing");
                    stats = c.client.subscribe(c.subjects.all_stats()).await.ok();
                    if stats.is_none() {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            },
        }
    }
    // An empty list would lift the edges' bans: publish nothing at the end, just flush.
    let _ = tokio::time::timeout(Duration::from_secs(2), c.client.flush()).await;
}

async fn next_stats(s: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match s {
        Some(s) => s.next().await,
        None => None,
    }
}

/// Publishes the head (unless it is the one published last and `always` is false).
async fn publish_anchor(c: &CoreControl, last: &mut Option<(LedgerAnchor, Instant)>, always: bool) {
    let Some(h) = c.ledger.head() else {
        return;
    };
    let anchor = LedgerAnchor {
        seq: h.seq,
        hash: h.hash,
    };
    if !always && last.is_some_and(|(a, _)| a == anchor) {
        return;
    }
    let payload = match serde_json::to_vec(&AnchorMessage { anchor }) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot encode the anchor: {e}");
            return;
        }
    };
    match c.client.publish(c.subjects.anchor(), payload.into()).await {
        Ok(()) => *last = Some((anchor, Instant::now())),
        Err(e) => tracing::debug!("cannot publish the anchor: {e}"),
    }
}

async fn publish_bans(c: &CoreControl, list: &BanList) {
    let payload = match serde_json::to_vec(list) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot encode the ban list: {e}");
            return;
        }
    };
    if let Err(e) = c.client.publish(c.subjects.bans(), payload.into()).await {
        tracing::debug!("cannot publish the ban list: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::EdgeConnection;

    #[test]
    fn only_operator_bans_are_published_in_their_wire_form() {
        let store = BanStore::default();
        let hour = Duration::from_secs(3600);
        store.ban(BanTarget::Ip("192.0.2.7".parse().unwrap()), hour, 1000);
        store.ban(
            BanTarget::Worker {
                username: "addr.rig".into(),
                from: Some("2001:db8::1".parse().unwrap()),
            },
            hour,
            1000,
        );
        store.ban(
            BanTarget::Worker {
                username: "addr.x".into(),
                from: None,
            },
            hour,
            1000,
        );
        // A flood ban (from the default rules: 10 cuts of one IP) stays local.
        for _ in 0..10 {
            store.record_cut("198.51.100.1".parse().unwrap(), &[], 2000);
        }
        assert_eq!(store.list(2000).len(), 4);
        let list = ban_list(&store, 2000);
        let targets: Vec<&str> = list.bans.iter().map(|b| b.target.as_str()).collect();
        assert_eq!(
            targets,
            vec![
                "ip:192.0.2.7",
                "worker:addr.rig@2001:db8::1",
                "worker:addr.x"
            ]
        );
        assert!(list.bans.iter().all(|b| b.until_ms == 1000 + 3_600_000));
    }

    #[test]
    fn edge_stats_become_a_remote_snapshot() {
        let s = EdgeStats {
            edge_id: 2,
            boot_id: 9,
            at_ms: 5,
            accepted: 3,
            rejected: 1,
            connections: vec![
                EdgeConnection {
                    peer: "10.0.0.1:3333".into(),
                    usernames: vec!["a.b".into()],
                    difficulty: Some(2.0),
                    since_ms: 4,
                },
                EdgeConnection {
                    peer: "not an address".into(),
                    usernames: vec![],
                    difficulty: None,
                    since_ms: 1,
                },
            ],
        };
        let r = remote_snapshot(&s);
        assert_eq!((r.boot_id, r.at_ms, r.accepted, r.rejected), (9, 5, 3, 1));
        assert_eq!(r.connections[0].peer, "10.0.0.1:3333".parse().unwrap());
        assert_eq!(r.connections[0].usernames, vec!["a.b".to_string()]);
        assert_eq!(r.connections[1].peer.port(), 0);
    }
}
