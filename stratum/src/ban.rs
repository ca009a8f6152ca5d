//! The ban store: repeat flood offenders (by worker and by IP) refused for a while.
//!
//! One [`BanStore`] per pool, shared as an `Arc` by the accept loop (refuses a banned IP), the
//! sessions (`mining.authorize` of a banned worker gets an error) and the connection tasks
//! (each flood cut is an offence), and meant for the operator's admin calls too
//! ([`BanStore::ban`], [`BanStore::unban`], [`BanStore::list`]) and, on an edge, the core's
//! list of operator bans ([`BanStore::apply_operator_list`], targets in [`BanTarget::wire`]
//! form). It is touched only on accept,
//! authorize and cut, never per share, so its one mutex is never on the share path. Time is
//! passed in (Unix milliseconds), so every rule is testable without a clock.
//!
//! Rules: a cut is an offence of the connection's IP and of each worker (full `address.worker`
//! username) it authorized. A worker is banned after `worker_after_cuts` offences within
//! `offence_window`, and then only from the IP it offended from: anyone can send shares under
//! anyone's username, so a ban everywhere would let a flooder lock out the worker it names. An
//! IP is banned after the larger `ip_after_cuts` (many honest rigs share one IP behind a NAT or
//! a Stratum proxy), never when it is in the allowlist. Bans last `ban_duration`.
//!
//! Bans live in memory only: they do not survive a restart (a restart forgives every offender,
//! who is banned again after as many offences).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// When repeat offenders are banned.
#[derive(Clone, Debug, PartialEq)]
pub struct BanConfig {
    /// Cuts older than this are forgotten.
    pub offence_window: Duration,
    /// Cuts of one worker (from one IP) within the window that ban it from that IP; 0: never.
    pub worker_after_cuts: u32,
    /// Cuts of one IP within the window that ban the IP; 0: never.
    pub ip_after_cuts: u32,
    /// How long an automatic ban lasts.
    pub ban_duration: Duration,
    /// Addresses never banned by IP (their workers still can be).
    pub allowlist: Vec<IpRange>,
}

impl Default for BanConfig {
    fn default() -> Self {
        BanConfig {
            offence_window: Duration::from_secs(3600),
            worker_after_cuts: 3,
            ip_after_cuts: 10,
            ban_duration: Duration::from_secs(3600),
            allowlist: vec![
                "127.0.0.0/8".parse().expect("a valid range"),
                "::1".parse().expect("a valid range"),
            ],
        }
    }
}

/// An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not an IP address or a CIDR range (e.g. \"10.0.0.0/8\")")]
pub struct IpRangeError(String);

impl std::str::FromStr for IpRange {
    type Err = IpRangeError;

    fn from_str(s: &str) -> Result<IpRange, IpRangeError> {
        let err = || IpRangeError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(err)?,
        };
        Ok(IpRange { network, prefix })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl IpRange {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(u32::from(n)) << 96,
                u128::from(u32::from(a)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p.min(128))) == 0,
    }
}

/// What a ban refuses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BanTarget {
    /// Every connection from this address.
    Ip(IpAddr),
    /// `mining.authorize` of this username (`address.worker`), from `from` only, or from
    /// anywhere when `None` (an operator's ban).
    Worker {
        username: String,
        from: Option<IpAddr>,
    },
}

impl std::fmt::Display for BanTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BanTarget::Ip(ip) => write!(f, "IP {ip}"),
            BanTarget::Worker {
                username,
                from: Some(ip),
            } => write!(f, "worker {username} from {ip}"),
            BanTarget::Worker {
                username,
                from: None,
            } => write!(f, "worker {username}"),
        }
    }
}

/// A [`BanTarget`]'s wire form is not one this build reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a ban target (ip:ADDR, worker:USERNAME or worker:USERNAME@IP)")]
pub struct BanTargetError(String);

impl BanTarget {
    /// The target as the core's ban list carries it to the edges (`BanEntry::target`):
    /// `ip:ADDR`, `worker:USERNAME` (everywhere) or `worker:USERNAME@IP` (from that IP only).
    pub fn wire(&self) -> String {
        match self {
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

    /// Reads [`BanTarget::wire`] back. A worker's `@IP` is the part after the last `@` when it
    /// is an IP address (a worker name may hold an `@` of its own).
    pub fn from_wire(s: &str) -> Result<BanTarget, BanTargetError> {
        let err = || BanTargetError(s.to_owned());
        if let Some(ip) = s.strip_prefix("ip:") {
            return ip.trim().parse().map(BanTarget::Ip).map_err(|_| err());
        }
        let rest = s.strip_prefix("worker:").ok_or_else(err)?;
        let (username, from) = match rest.rsplit_once('@') {
            Some((u, ip)) => match ip.parse::<IpAddr>() {
                Ok(ip) => (u, Some(ip)),
                Err(_) => (rest, None),
            },
            None => (rest, None),
        };
        if username.is_empty() {
            return Err(err());
        }
        Ok(BanTarget::Worker {
            username: username.to_owned(),
            from,
        })
    }
}

/// What [`BanStore::apply_operator_list`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorListChange {
    /// Bans the store did not hold as operator bans before (close their connections).
    pub added: Vec<Ban>,
    /// Operator bans absent from the list, now lifted.
    pub lifted: Vec<BanTarget>,
}

/// Why a ban was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BanCause {
    /// This many flood cuts within the offence window.
    Floods { cuts: u32 },
    /// An operator's call.
    Operator,
}

/// One ban in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ban {
    pub target: BanTarget,
    pub since_ms: u64,
    pub until_ms: u64,
    pub cause: BanCause,
}

/// A banned IP's connection attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRefusal {
    pub until_ms: u64,
    /// True for the first attempt refused under this ban (log that one only).
    pub first: bool,
}

#[derive(Debug, Default)]
struct BanState {
    bans: BTreeMap<BanTarget, Entry>,
    /// Cut times per offender, oldest first, at most the threshold's number kept.
    ip_cuts: HashMap<IpAddr, VecDeque<u64>>,
    worker_cuts: HashMap<(String, IpAddr), VecDeque<u64>>,
}

#[derive(Debug)]
struct Entry {
    ban: Ban,
    refusal_logged: bool,
}

/// The pool's bans; see the module docs.
#[derive(Debug)]
pub struct BanStore {
    config: BanConfig,
    state: Mutex<BanState>,
}

impl Default for BanStore {
    fn default() -> Self {
        BanStore::new(BanConfig::default())
    }
}

impl BanStore {
    pub fn new(config: BanConfig) -> BanStore {
        BanStore {
            config,
            state: Mutex::new(BanState::default()),
        }
    }

    pub fn config(&self) -> &BanConfig {
        &self.config
    }

    fn state(&self) -> MutexGuard<'_, BanState> {
        // The state stays consistent at every await-free step; a panic elsewhere while holding
        // the lock leaves nothing half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        self.config.allowlist.iter().any(|r| r.contains(ip))
    }

    /// Records a flood cut of a connection from `ip` that authorized `usernames`; returns the
    /// bans it caused (empty for most cuts).
    pub fn record_cut(&self, ip: IpAddr, usernames: &[&str], now_ms: u64) -> Vec<Ban> {
        let window = self.config.offence_window.as_millis() as u64;
        let horizon = now_ms.saturating_sub(window);
        let duration = self.config.ban_duration.as_millis() as u64;
        let mut state = self.state();
        state.forget_before(horizon, now_ms);
        let mut new_bans = Vec::new();
        let mut ban = |state: &mut BanState, target: BanTarget, cuts: u32| {
            let ban = Ban {
                target: target.clone(),
                since_ms: now_ms,
                until_ms: now_ms.saturating_add(duration),
                cause: BanCause::Floods { cuts },
            };
            state.bans.insert(
                target,
                Entry {
                    ban: ban.clone(),
                    refusal_logged: false,
                },
            );
            new_bans.push(ban);
        };
        let k = self.config.worker_after_cuts;
        for username in usernames {
            let key = ((*username).to_owned(), ip);
            let cuts = state.worker_cuts.entry(key.clone()).or_default();
            if let Some(n) = count_cut(cuts, now_ms, k) {
                state.worker_cuts.remove(&key);
                let target = BanTarget::Worker {
                    username: key.0,
                    from: Some(ip),
                };
                ban(&mut state, target, n);
            }
        }
        if !self.is_allowlisted(ip) {
            let m = self.config.ip_after_cuts;
            let cuts = state.ip_cuts.entry(ip).or_default();
            if let Some(n) = count_cut(cuts, now_ms, m) {
                state.ip_cuts.remove(&ip);
                ban(&mut state, BanTarget::Ip(ip), n);
            }
        }
        new_bans
    }

    /// Whether a connection from `ip` is refused now.
    pub fn check_ip(&self, ip: IpAddr, now_ms: u64) -> Option<IpRefusal> {
        let mut state = self.state();
        if state.bans.is_empty() {
            return None;
        }
        let target = BanTarget::Ip(ip);
        let entry = state.bans.get_mut(&target)?;
        if entry.ban.until_ms <= now_ms {
            state.bans.remove(&target);
            return None;
        }
        let first = !entry.refusal_logged;
        entry.refusal_logged = true;
        Some(IpRefusal {
            until_ms: entry.ban.until_ms,
            first,
        })
    }

    /// Until when `username` may not authorize from `ip` (the longer of its ban everywhere and
    /// its ban from that IP), if it is banned now.
    pub fn worker_banned_until(&self, username: &str, ip: IpAddr, now_ms: u64) -> Option<u64> {
        let state = self.state();
        if state.bans.is_empty() {
            return None;
        }
        [None, Some(ip)]
            .into_iter()
            .filter_map(|from| {
                let target = BanTarget::Worker {
                    username: username.to_owned(),
                    from,
                };
                state.bans.get(&target).map(|e| e.ban.until_ms)
            })
            .filter(|until| *until > now_ms)
            .max()
    }

    /// Bans `target` for `duration` from `now_ms` (an operator's call; replaces any ban of the
    /// same target). Allowlisted IPs can be banned this way: the operator decides.
    pub fn ban(&self, target: BanTarget, duration: Duration, now_ms: u64) -> Ban {
        let ban = Ban {
            target: target.clone(),
            since_ms: now_ms,
            until_ms: now_ms.saturating_add(duration.as_millis() as u64),
            cause: BanCause::Operator,
        };
        self.state().bans.insert(
            target,
            Entry {
                ban: ban.clone(),
                refusal_logged: false,
            },
        );
        ban
    }

    /// Lifts a ban and forgets the target's offences; false when it was not banned.
    pub fn unban(&self, target: &BanTarget) -> bool {
        let mut state = self.state();
        match target {
            BanTarget::Ip(ip) => {
                state.ip_cuts.remove(ip);
            }
            BanTarget::Worker { username, from } => state
                .worker_cuts
                .retain(|(u, ip), _| !(u == username && (from.is_none() || *from == Some(*ip)))),
        }
        state.bans.remove(target).is_some()
    }

    /// Makes the store's operator bans exactly `list` (target, until when), as the core's ban
    /// list says (an edge's copy of the operator's bans): a ban the store lacks is added (it
    /// replaces an automatic ban of the same target), one whose end moved is updated, and an
    /// operator ban absent from the list is lifted. The store's own automatic (flood) bans of
    /// other targets stay. Entries already over at `now_ms` are ignored.
    pub fn apply_operator_list(
        &self,
        list: &[(BanTarget, u64)],
        now_ms: u64,
    ) -> OperatorListChange {
        let wanted: BTreeMap<&BanTarget, u64> = list
            .iter()
            .filter(|(_, until)| *until > now_ms)
            .map(|(t, until)| (t, *until))
            .collect();
        let mut state = self.state();
        state.bans.retain(|_, e| e.ban.until_ms > now_ms);
        let mut change = OperatorListChange::default();
        state.bans.retain(|target, e| {
            let keep = e.ban.cause != BanCause::Operator || wanted.contains_key(target);
            if !keep {
                change.lifted.push(target.clone());
            }
            keep
        });
        for (target, until_ms) in wanted {
            match state.bans.get_mut(target) {
                Some(e) if e.ban.cause == BanCause::Operator => e.ban.until_ms = until_ms,
                _ => {
                    let ban = Ban {
                        target: target.clone(),
                        since_ms: now_ms,
                        until_ms,
                        cause: BanCause::Operator,
                    };
                    state.bans.insert(
                        target.clone(),
                        Entry {
                            ban: ban.clone(),
                            refusal_logged: false,
                        },
                    );
                    change.added.push(ban);
                }
            }
        }
        change
    }

    /// The bans in force at `now_ms`, in target order.
    pub fn list(&self, now_ms: u64) -> Vec<Ban> {
        let mut state = self.state();
        state.bans.retain(|_, e| e.ban.until_ms > now_ms);
        state.bans.values().map(|e| e.ban.clone()).collect()
    }
}

impl BanState {
    /// Drops expired bans and offences older than `horizon` (cuts are rare: each costs a
    /// flood of submits, so a full pass per cut is cheap).
    fn forget_before(&mut self, horizon: u64, now_ms: u64) {
        self.bans.retain(|_, e| e.ban.until_ms > now_ms);
        let fresh = |cuts: &mut VecDeque<u64>| {
            while cuts.front().is_some_and(|t| *t < horizon) {
                cuts.pop_front();
            }
            !cuts.is_empty()
        };
        self.ip_cuts.retain(|_, c| fresh(c));
        self.worker_cuts.retain(|_, c| fresh(c));
    }
}

/// Adds a cut at `now_ms` to `cuts` (already cleared of old ones); `Some(count)` when that
/// reaches `threshold` (0: never).
fn count_cut(cuts: &mut VecDeque<u64>, now_ms: u64, threshold: u32) -> Option<u32> {
    if threshold == 0 {
        return None;
    }
    cuts.push_back(now_ms);
    while cuts.len() > threshold as usize {
        cuts.pop_front();
    }
    (cuts.len() == threshold as usize).then_some(threshold)
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS UTC` (for ban messages).
pub fn format_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef.rig1";
    const MIN: u64 = 60_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn store(worker_after_cuts: u32, ip_after_cuts: u32) -> BanStore {
        BanStore::new(BanConfig {
            offence_window: Duration::from_secs(600),
            worker_after_cuts,
            ip_after_cuts,
            ban_duration: Duration::from_secs(300),
            allowlist: vec!["10.0.0.0/8".parse().unwrap(), "fd00::1".parse().unwrap()],
        })
    }

    #[test]
    fn a_worker_is_banned_after_k_cuts_from_that_ip_only() {
        let s = store(3, 10);
        let a = ip("203.0.113.5");
        assert!(s.record_cut(a, &[W], 0).is_empty());
        assert!(s.record_cut(a, &[W], MIN).is_empty());
        assert_eq!(s.worker_banned_until(W, a, MIN), None);
        let bans = s.record_cut(a, &[W], 2 * MIN);
        assert_eq!(bans.len(), 1);
        assert_eq!(
            bans[0].target,
            BanTarget::Worker {
                username: W.into(),
                from: Some(a)
            }
        );
        assert_eq!(bans[0].cause, BanCause::Floods { cuts: 3 });
        let until = 2 * MIN + 300_000;
        assert_eq!(s.worker_banned_until(W, a, 2 * MIN + 1), Some(until));
        // The same username from elsewhere (its real owner) is not banned; nor is the IP.
        assert_eq!(s.worker_banned_until(W, ip("198.51.100.7"), 2 * MIN), None);
        assert_eq!(s.check_ip(a, 2 * MIN), None);
        // The ban ends.
        assert_eq!(s.worker_banned_until(W, a, until), None);
        assert!(s.list(until).is_empty());
    }

    #[test]
    fn offences_older_than_the_window_are_forgotten() {
        let s = store(3, 10);
        let a = ip("203.0.113.5");
        for t in [0, 400, 800, 1200] {
            assert!(s.record_cut(a, &[W], t * 1000).is_empty(), "cut at {t} s");
        }
        // 3 within 600 s: 800, 1200, 1300.
        assert_eq!(s.record_cut(a, &[W], 1_300_000).len(), 1);
    }

    #[test]
    fn an_ip_is_banned_after_m_cuts_of_any_workers_and_refusals_log_once() {
        let s = store(3, 4);
        let a = ip("203.0.113.5");
        let names: Vec<String> = (0..4).map(|i| format!("{W}{i}")).collect();
        for (i, n) in names.iter().take(3).enumerate() {
            assert!(s.record_cut(a, &[n], i as u64).is_empty());
        }
        let bans = s.record_cut(a, &[&names[3]], 3);
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].target, BanTarget::Ip(a));
        let first = s.check_ip(a, 4).unwrap();
        assert!(first.first);
        assert_eq!(first.until_ms, 300_003);
        let again = s.check_ip(a, 5).unwrap();
        assert!(!again.first);
        assert_eq!(s.check_ip(ip("203.0.113.6"), 5), None);
        assert_eq!(s.check_ip(a, 300_003), None);
    }

    #[test]
    fn allowlisted_ips_are_never_banned_but_their_workers_can_be() {
        let s = store(2, 2);
        for a in [ip("10.1.2.3"), ip("fd00::1"), ip("::ffff:10.9.9.9")] {
            let one = format!("{W}-{a}");
            s.record_cut(a, &[&one], 0);
            let bans = s.record_cut(a, &[&one], 1);
            assert_eq!(bans.len(), 1, "{a}: {bans:?}");
            assert!(matches!(bans[0].target, BanTarget::Worker { .. }));
            assert_eq!(s.check_ip(a, 2), None);
        }
    }

    #[test]
    fn operator_bans_unbans_and_lists() {
        let s = store(0, 0);
        let a = ip("2001:db8::1");
        // Thresholds 0: cuts never ban.
        for t in 0..20 {
            assert!(s.record_cut(a, &[W], t).is_empty());
        }
        let everywhere = BanTarget::Worker {
            username: W.into(),
            from: None,
        };
        let ban = s.ban(everywhere.clone(), Duration::from_secs(60), 1000);
        assert_eq!(ban.until_ms, 61_000);
        assert_eq!(ban.cause, BanCause::Operator);
        assert_eq!(s.worker_banned_until(W, a, 2000), Some(61_000));
        assert_eq!(
            s.worker_banned_until(W, ip("192.0.2.1"), 2000),
            Some(61_000)
        );
        s.ban(BanTarget::Ip(a), Duration::from_secs(10), 1000);
        let listed: Vec<_> = s.list(2000).into_iter().map(|b| b.target).collect();
        assert_eq!(listed, vec![BanTarget::Ip(a), everywhere.clone()]);
        assert!(s.unban(&everywhere));
        assert!(!s.unban(&everywhere));
        assert_eq!(s.worker_banned_until(W, a, 2000), None);
        assert!(s.check_ip(a, 2000).is_some());
        assert_eq!(s.list(11_000), vec![]);
    }

    #[test]
    fn ban_targets_round_trip_their_wire_form() {
        let a = ip("2001:db8::1");
        let targets = [
            BanTarget::Ip(ip("203.0.113.5")),
            BanTarget::Ip(a),
            BanTarget::Worker {
                username: W.into(),
                from: None,
            },
            BanTarget::Worker {
                username: W.into(),
                from: Some(a),
            },
            BanTarget::Worker {
                username: format!("{W}@home"),
                from: None,
            },
        ];
        for t in targets {
            assert_eq!(
                BanTarget::from_wire(&t.wire()),
                Ok(t.clone()),
                "{}",
                t.wire()
            );
        }
        assert_eq!(
            BanTarget::Worker {
                username: W.into(),
                from: Some(ip("192.0.2.1"))
            }
            .wire(),
            format!("worker:{W}@192.0.2.1")
        );
        for bad in [
            "",
            "ip:",
            "ip:host",
            "worker:",
            "range:10.0.0.0/8",
            "address:x",
        ] {
            assert!(BanTarget::from_wire(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_operator_list_replaces_operator_bans_and_keeps_flood_bans() {
        let s = store(1, 0);
        let flooder = ip("198.51.100.9");
        let flood = s.record_cut(flooder, &[W], 0);
        assert_eq!(flood.len(), 1);
        let a = BanTarget::Ip(ip("203.0.113.5"));
        let b = BanTarget::Worker {
            username: "other.rig".into(),
            from: None,
        };
        let first = s.apply_operator_list(&[(a.clone(), 50_000), (b.clone(), 60_000)], 1000);
        let added: Vec<_> = first.added.iter().map(|b| b.target.clone()).collect();
        assert_eq!(added, vec![a.clone(), b.clone()]);
        assert!(first.lifted.is_empty());
        assert!(first.added.iter().all(|b| b.cause == BanCause::Operator));
        // The same list again changes nothing; a moved end is updated, not re-added.
        assert_eq!(
            s.apply_operator_list(&[(a.clone(), 50_000), (b.clone(), 60_000)], 2000),
            OperatorListChange::default()
        );
        let moved = s.apply_operator_list(&[(a.clone(), 90_000), (b.clone(), 60_000)], 2000);
        assert_eq!(moved, OperatorListChange::default());
        assert_eq!(
            s.check_ip(ip("203.0.113.5"), 80_000).unwrap().until_ms,
            90_000
        );
        // b is no longer listed: lifted; the flood ban stays; an expired entry is ignored.
        let later = s.apply_operator_list(&[(a.clone(), 90_000), (b.clone(), 2500)], 3000);
        assert_eq!(later.lifted, vec![b.clone()]);
        assert!(later.added.is_empty());
        let listed: Vec<_> = s.list(3000).into_iter().map(|b| b.target).collect();
        assert_eq!(listed, vec![a.clone(), flood[0].target.clone()]);
        // An operator ban of a target the store banned for floods replaces it.
        let over = s.apply_operator_list(&[(flood[0].target.clone(), 99_000)], 3000);
        assert_eq!(over.added.len(), 1);
        assert_eq!(over.lifted, vec![a]);
        assert_eq!(s.list(3000)[0].cause, BanCause::Operator);
        assert_eq!(s.apply_operator_list(&[], 3000).lifted.len(), 1);
        assert!(s.list(3000).is_empty());
    }

    #[test]
    fn ip_ranges_parse_and_match() {
        let r: IpRange = "192.168.0.0/16".parse().unwrap();
        assert!(r.contains(ip("192.168.200.1")));
        assert!(!r.contains(ip("192.169.0.1")));
        assert!(!r.contains(ip("::1")));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6: IpRange = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let one: IpRange = "203.0.113.5".parse().unwrap();
        assert!(one.contains(ip("203.0.113.5")) && !one.contains(ip("203.0.113.4")));
        assert_eq!(one.to_string(), "203.0.113.5/32");
        for bad in ["", "10.0.0.0/33", "::/129", "10.0.0/8", "host", "1.2.3.4/x"] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn utc_times_format() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_utc(1_795_572_408_999), "2026-11-25 02:06:48 UTC");
    }
}
