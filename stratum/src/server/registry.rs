//! The live connections: who is connected from where, under which usernames, at which
//! difficulty, for the operator's RPC (`pool_stats`, `miner_workers`) and its bans (`ban_add`
//! closes the banned target's connections).
//!
//! One [`Registry`] per pool, created before the server (the RPC starts first) and handed to it
//! in [`super::ServerConfig`]. A connection task registers on connect and holds a
//! [`Registration`] that removes it on drop; it reports only what changes rarely (an authorized
//! username, a new difficulty), never per share, so the registry's one mutex is touched a few
//! times per connection and per retarget. Each connection's shutdown token is a child of the
//! server's, kept here, so the registry can close a connection and the task ends as on a
//! shutdown (logging why).
//!
//! The registry also holds the server's share counters since start (accepted, rejected), which
//! the connection tasks bump with relaxed atomics as before.
//!
//! **Remote snapshots** (`obtc-pool core`): the core has no Stratum server; its edges publish
//! their connections and counters every control interval, and [`Registry::set_remote`] keeps
//! the latest [`RemoteSnapshot`] per edge until it expires (the core uses three intervals, so an
//! edge that stopped publishing is forgotten). [`Registry::counts`], [`Registry::workers_of`],
//! [`Registry::connections`] and [`Registry::share_counts`] include every live snapshot beside
//! the local connections; the all-in-one pool and an edge have none, so they see only their own.

use crate::ban::BanTarget;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Counters of the Stratum server since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Open connections.
    pub connections: AtomicU64,
    /// Shares accepted (durable in the ledger) and rejected.
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    /// Connections cut for a share flood.
    pub flood_cuts: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    peer: SocketAddr,
    /// Authorized usernames (`address.worker`), in order.
    usernames: Vec<String>,
    /// The difficulty vardiff assigns now (`None` before the miner authorized).
    difficulty: Option<f64>,
    since_ms: u64,
    close: CancellationToken,
    /// Set when the registry closed it (the task logs why).
    reason: Option<String>,
}

/// One live connection as the registry shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub usernames: Vec<String>,
    pub difficulty: Option<f64>,
    pub since_ms: u64,
}

/// Counts of what is connected now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    pub connections: u64,
    /// Distinct authorized usernames (`address.worker`).
    pub workers: u64,
    /// Distinct addresses among them.
    pub addresses: u64,
}

/// An address's worker as connected now.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LiveWorker {
    pub connections: u64,
    /// The highest difficulty among its connections (`None` if none has one yet).
    pub difficulty: Option<f64>,
}

/// An edge's live state as it last reported it (`obtc-pool core`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteSnapshot {
    /// The edge process's boot (a new boot replaces the old one's snapshot).
    pub boot_id: u64,
    /// When the edge took it (Unix ms, the edge's clock).
    pub at_ms: u64,
    /// The edge's shares accepted and rejected since it started.
    pub accepted: u64,
    pub rejected: u64,
    pub connections: Vec<ConnectionInfo>,
}

#[derive(Debug)]
struct Remote {
    snapshot: RemoteSnapshot,
    expires: Instant,
}

/// The live connections; see the module docs.
#[derive(Debug, Default)]
pub struct Registry {
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Entry>>,
    stats: Arc<Stats>,
    /// Edges' snapshots by edge id.
    remotes: Mutex<BTreeMap<u16, Remote>>,
}

/// `address.worker` -> (`address`, `worker`), as `mining.authorize` splits it.
pub fn split_username(username: &str) -> (&str, &str) {
    username.split_once('.').unwrap_or((username, ""))
}

/// The same IP, an IPv4 peer on a dual-stack socket (`::ffff:a.b.c.d`) included.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    let plain = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    plain(a) == plain(b)
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // Every step under the lock is a whole update; a panic elsewhere leaves nothing half done.
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The server's counters (shared with its connection tasks).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    fn remotes(&self) -> MutexGuard<'_, BTreeMap<u16, Remote>> {
        self.remotes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `snapshot` as edge `edge_id`'s live state for `ttl` (replacing its last one).
    pub fn set_remote(&self, edge_id: u16, snapshot: RemoteSnapshot, ttl: Duration) {
        let now = Instant::now();
        let mut remotes = self.remotes();
        remotes.retain(|_, r| r.expires > now);
        remotes.insert(
            edge_id,
            Remote {
                snapshot,
                expires: now + ttl,
            },
        );
    }

    /// The live (unexpired) edge snapshots, by edge id.
    pub fn remote_snapshots(&self) -> BTreeMap<u16, RemoteSnapshot> {
        let now = Instant::now();
        self.remotes()
            .iter()
            .filter(|(_, r)| r.expires > now)
            .map(|(&id, r)| (id, r.snapshot.clone()))
            .collect()
    }

    /// Runs `f` on each live remote connection.
    fn each_remote(&self, mut f: impl FnMut(&ConnectionInfo)) {
        let now = Instant::now();
        for r in self.remotes().values().filter(|r| r.expires > now) {
            r.snapshot.connections.iter().for_each(&mut f);
        }
    }

    /// Shares accepted and rejected since the server started (and by each live edge since it
    /// started).
    pub fn share_counts(&self) -> (u64, u64) {
        let now = Instant::now();
        let (mut accepted, mut rejected) = (
            self.stats.accepted.load(Ordering::Relaxed),
            self.stats.rejected.load(Ordering::Relaxed),
        );
        for r in self.remotes().values().filter(|r| r.expires > now) {
            accepted += r.snapshot.accepted;
            rejected += r.snapshot.rejected;
        }
        (accepted, rejected)
    }

    /// Registers a new connection whose task stops on `close` (a child of the server's
    /// shutdown token); dropping the registration removes it.
    pub fn register(
        self: &Arc<Registry>,
        peer: SocketAddr,
        close: CancellationToken,
        now_ms: u64,
    ) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns().insert(
            id,
            Entry {
                peer,
                usernames: Vec::new(),
                difficulty: None,
                since_ms: now_ms,
                close,
                reason: None,
            },
        );
        Registration {
            registry: Arc::clone(self),
            id,
        }
    }

    /// Every live connection (local, then the edges'), oldest first.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        let mut out: Vec<ConnectionInfo> = self
            .conns()
            .values()
            .map(|e| ConnectionInfo {
                peer: e.peer,
                usernames: e.usernames.clone(),
                difficulty: e.difficulty,
                since_ms: e.since_ms,
            })
            .collect();
        self.each_remote(|c| out.push(c.clone()));
        out.sort_by_key(|c| c.since_ms);
        out
    }

    /// Connections, distinct workers and distinct addresses connected now.
    pub fn counts(&self) -> ConnectionCounts {
        let mut connections = 0u64;
        let mut workers: HashSet<String> = HashSet::new();
        let mut addresses: HashSet<String> = HashSet::new();
        let mut count = |usernames: &[String]| {
            connections += 1;
            for u in usernames {
                workers.insert(u.clone());
                addresses.insert(split_username(u).0.to_owned());
            }
        };
        for e in self.conns().values() {
            count(&e.usernames);
        }
        self.each_remote(|c| count(&c.usernames));
        ConnectionCounts {
            connections,
            workers: workers.len() as u64,
            addresses: addresses.len() as u64,
        }
    }

    /// `address`'s workers connected now, by worker name (`""`: none given).
    pub fn workers_of(&self, address: &str) -> BTreeMap<String, LiveWorker> {
        let mut out: BTreeMap<String, LiveWorker> = BTreeMap::new();
        let mut add = |usernames: &[String], difficulty: Option<f64>| {
            for u in usernames {
                let (a, worker) = split_username(u);
                if a != address {
                    continue;
                }
                let w = out.entry(worker.to_owned()).or_insert(LiveWorker {
                    connections: 0,
                    difficulty: None,
                });
                w.connections += 1;
                w.difficulty = match (w.difficulty, difficulty) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
            }
        };
        for e in self.conns().values() {
            add(&e.usernames, e.difficulty);
        }
        self.each_remote(|c| add(&c.usernames, c.difficulty));
        out
    }

    /// Closes every connection `target` names (an IP: all from it; a worker: those that
    /// authorized that username, from `from` only if given); returns how many.
    pub fn close_matching(&self, target: &BanTarget, reason: &str) -> u64 {
        let mut closed = 0;
        for e in self.conns().values_mut() {
            let hit = match target {
                BanTarget::Ip(ip) => same_ip(e.peer.ip(), *ip),
                BanTarget::Worker { username, from } => {
                    e.usernames.iter().any(|u| u == username)
                        && from.map_or(true, |ip| same_ip(e.peer.ip(), ip))
                }
            };
            if hit && !e.close.is_cancelled() {
                e.reason = Some(reason.to_owned());
                e.close.cancel();
                closed += 1;
            }
        }
        closed
    }
}

/// A connection's place in the registry; removed on drop.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<Registry>,
    id: u64,
}

impl Registration {
    /// The connection authorized `username`.
    pub fn authorized(&self, username: &str) {
        if let Some(e) = self.registry.conns().get_mut(&self.id) {
            if !e.usernames.iter().any(|u| u == username) {
                e.usernames.push(username.to_owned());
            }
        }
    }

    /// Vardiff set the connection's difficulty.
    pub fn difficulty(&self, difficulty: f64) {
        if let Some(e) = self.registry.conns().get_mut(&self.id) {
            e.difficulty = Some(difficulty);
        }
    }

    /// Closes the connection (its task ends and logs `reason`).
    pub fn close(&self, reason: &str) {
        if let Some(e) = self.registry.conns().get_mut(&self.id) {
            if !e.close.is_cancelled() {
                e.reason = Some(reason.to_owned());
                e.close.cancel();
            }
        }
    }

    /// Why the registry closed this connection, if it did.
    pub fn close_reason(&self) -> Option<String> {
        self.registry
            .conns()
            .get(&self.id)
            .and_then(|e| e.reason.clone())
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.conns().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
    const B: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

    fn peer(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_are_counted_by_worker_and_address_and_removed_on_drop() {
        let r = Arc::new(Registry::new());
        let one = r.register(peer("10.0.0.1:1000"), CancellationToken::new(), 1);
        let two = r.register(peer("10.0.0.2:1000"), CancellationToken::new(), 2);
        let three = r.register(peer("10.0.0.2:1001"), CancellationToken::new(), 3);
        one.authorized(&format!("{A}.rig1"));
        one.authorized(&format!("{A}.rig1"));
        one.difficulty(2.0);
        two.authorized(&format!("{A}.rig1"));
        two.difficulty(8.0);
        two.authorized(A);
        three.authorized(&format!("{B}.x"));
        assert_eq!(
            r.counts(),
            ConnectionCounts {
                connections: 3,
                workers: 3,
                addresses: 2
            }
        );
        let a = r.workers_of(A);
        assert_eq!(a.len(), 2);
        assert_eq!(
            a["rig1"],
            LiveWorker {
                connections: 2,
                difficulty: Some(8.0)
            }
        );
        assert_eq!(a[""].connections, 1);
        assert!(r.workers_of("nobody").is_empty());
        drop(two);
        assert_eq!(r.workers_of(A)["rig1"].difficulty, Some(2.0));
        assert_eq!(r.connections().len(), 2);
        drop(one);
        drop(three);
        assert_eq!(r.counts(), ConnectionCounts::default());
    }

    #[test]
    fn bans_close_the_connections_they_name() {
        let r = Arc::new(Registry::new());
        let tokens: Vec<CancellationToken> = (0..3).map(|_| CancellationToken::new()).collect();
        let a = r.register(peer("192.0.2.1:1"), tokens[0].clone(), 0);
        let b = r.register(peer("[::ffff:192.0.2.1]:2"), tokens[1].clone(), 0);
        let c = r.register(peer("192.0.2.9:3"), tokens[2].clone(), 0);
        let w = format!("{A}.rig");
        c.authorized(&w);
        let from_elsewhere = BanTarget::Worker {
            username: w.clone(),
            from: Some("192.0.2.1".parse().unwrap()),
        };
        assert_eq!(r.close_matching(&from_elsewhere, "x"), 0);
        let everywhere = BanTarget::Worker {
            username: w,
            from: None,
        };
        assert_eq!(r.close_matching(&everywhere, "banned"), 1);
        assert!(tokens[2].is_cancelled());
        assert_eq!(c.close_reason().as_deref(), Some("banned"));
        // Closing again counts nothing new.
        assert_eq!(r.close_matching(&everywhere, "banned"), 0);
        let ip = BanTarget::Ip("192.0.2.1".parse().unwrap());
        assert_eq!(r.close_matching(&ip, "ip"), 2);
        assert!(tokens[0].is_cancelled() && tokens[1].is_cancelled());
        assert_eq!(a.close_reason().as_deref(), Some("ip"));
        drop((a, b));
        let token = CancellationToken::new();
        let d = r.register(peer("192.0.2.10:4"), token.clone(), 0);
        d.close("worker x banned");
        assert!(token.is_cancelled());
        assert_eq!(d.close_reason().as_deref(), Some("worker x banned"));
        let stats = r.stats();
        stats.accepted.fetch_add(3, Ordering::Relaxed);
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        assert_eq!(r.share_counts(), (3, 1));
    }

    fn remote(
        peer_addr: &str,
        usernames: &[&str],
        difficulty: f64,
        since_ms: u64,
    ) -> ConnectionInfo {
        ConnectionInfo {
            peer: peer(peer_addr),
            usernames: usernames.iter().map(|u| u.to_string()).collect(),
            difficulty: Some(difficulty),
            since_ms,
        }
    }

    #[test]
    fn live_edge_snapshots_count_beside_local_connections_until_they_expire() {
        let r = Arc::new(Registry::new());
        let local = r.register(peer("10.0.0.1:1000"), CancellationToken::new(), 5);
        local.authorized(&format!("{A}.rig1"));
        local.difficulty(2.0);
        r.stats().accepted.fetch_add(10, Ordering::Relaxed);
        let hour = Duration::from_secs(3600);
        let snapshot = RemoteSnapshot {
            boot_id: 1,
            at_ms: 100,
            accepted: 7,
            rejected: 2,
            connections: vec![
                remote("10.1.0.1:1", &[&format!("{A}.rig1")], 16.0, 1),
                remote("10.1.0.2:1", &[&format!("{B}.x")], 4.0, 9),
            ],
        };
        r.set_remote(1, snapshot.clone(), hour);
        r.set_remote(
            2,
            RemoteSnapshot {
                boot_id: 3,
                accepted: 1,
                connections: vec![remote("10.2.0.1:1", &[A], 1.0, 3)],
                ..RemoteSnapshot::default()
            },
            hour,
        );
        assert_eq!(
            r.counts(),
            ConnectionCounts {
                connections: 4,
                workers: 3,
                addresses: 2
            }
        );
        assert_eq!(r.share_counts(), (18, 2));
        let a = r.workers_of(A);
        assert_eq!(
            a["rig1"],
            LiveWorker {
                connections: 2,
                difficulty: Some(16.0)
            }
        );
        assert_eq!(a[""].connections, 1);
        let since: Vec<u64> = r.connections().iter().map(|c| c.since_ms).collect();
        assert_eq!(since, vec![1, 3, 5, 9]);
        assert_eq!(r.remote_snapshots().len(), 2);
        // A new snapshot replaces the edge's last one.
        r.set_remote(
            1,
            RemoteSnapshot {
                boot_id: 2,
                ..RemoteSnapshot::default()
            },
            hour,
        );
        assert_eq!(r.counts().connections, 2);
        assert_eq!(r.share_counts(), (11, 0));
        // An expired one counts no more.
        r.set_remote(2, snapshot, Duration::ZERO);
        assert_eq!(r.counts().connections, 1);
        assert_eq!(r.share_counts(), (10, 0));
        assert_eq!(r.remote_snapshots().keys().collect::<Vec<_>>(), vec![&1]);
        drop(local);
        assert_eq!(r.counts(), ConnectionCounts::default());
    }
}
