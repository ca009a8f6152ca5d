//! The Stratum server: accept loop, one task per connection, job distribution, share
//! acknowledgement after the ledger append is durable, block submission.
//!
//! Tasks: the [`job_source`] (templates -> jobs, published as `Arc<JobBook>` snapshots on a
//! watch channel), the accept loop (per-IP connection limit), one [`connection`] task per miner
//! driving the pure [`crate::session::Session`], and the optional [`notify`] trigger listener.
//! Everything stops on the shutdown token; [`Server::run`] returns once every task has ended,
//! so the caller can then close (flush) the ledger.

pub mod chain_guard;
pub mod connection;
pub mod job_source;
pub mod notify;
pub mod registry;
pub mod submit;

use crate::ban::{format_utc, BanStore};
use crate::flood::FloodConfig;
use crate::job::{JobBook, JobConfig};
use crate::session::SessionConfig;
use crate::sink::EventSink;
use job_source::{ChainTip, JobSource, TemplateSource};
use ledger::Ledger;
use node_rpc::NodeClient;
use pool_core::event::BlockCandidate;
use pool_core::pow::MatrixCache;
use registry::{Registry, Stats};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use submit::{SubmitSettings, Submitter};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the server logs its share counters.
const STATS_INTERVAL: Duration = Duration::from_secs(60);

/// Everything the server needs, already validated.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_line_bytes: usize,
    pub max_connections_per_ip: usize,
    /// A connection that completes no request line for this long is closed (this also ends
    /// slowloris connections that dribble bytes without ever finishing a line).
    pub idle_timeout: Duration,
    pub session: SessionConfig,
    pub job_config: JobConfig,
    pub source: TemplateSource,
    /// Loopback address of the `obtc-pool notify` trigger, if any.
    pub notify_listen: Option<SocketAddr>,
    /// How block submissions retry and give up.
    pub submit: SubmitSettings,
    /// More nodes every found block is also sent to (`[node] submit_also`).
    pub submit_also: Vec<NodeClient>,
    /// When a connection's shares count as a flood (it is then cut).
    pub flood: FloodConfig,
    /// The pool's bans (shared with whoever else bans: the operator's admin calls).
    pub bans: Arc<BanStore>,
    /// The live connections and the share counters (shared with the operator's RPC).
    pub registry: Arc<Registry>,
    /// Bytes every extranonce1 starts with (an edge's id, so two edges never hand out the same
    /// work); the rest is the per-connection counter. Empty for the all-in-one pool.
    pub extranonce1_prefix: Vec<u8>,
    /// The first Stratum job id (1 for the all-in-one pool; an edge's ids start at
    /// `edge_id << 48 | 1`, so jobs of two edges never share an id in the one ledger).
    pub first_job_id: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen for miners on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot listen for notify triggers on {addr}: {source}")]
    BindNotify {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid job settings: {0}")]
    JobConfig(#[from] crate::job::JobError),
    #[error("the session's extranonce2 size ({session}) differs from the job's ({job})")]
    ExtranonceMismatch { session: usize, job: usize },
    #[error("an extranonce1 prefix of {prefix} bytes leaves no room in a {size}-byte extranonce1")]
    ExtranoncePrefix { prefix: usize, size: usize },
    #[error("invalid flood settings: {0}")]
    FloodConfig(String),
}

/// A server with its sockets bound (so a test can learn the port before running it).
pub struct Server {
    config: ServerConfig,
    sink: Arc<dyn EventSink>,
    listener: TcpListener,
    notify_listener: Option<TcpListener>,
    /// Candidates an earlier run left open, resolved once the server runs.
    open_candidates: Vec<BlockCandidate>,
    /// The job source's view of the node's best block ([`Server::tips`]).
    tips: watch::Sender<Option<ChainTip>>,
}

/// State shared by the connection tasks.
pub(crate) struct Shared {
    pub session: Arc<SessionConfig>,
    pub sink: Arc<dyn EventSink>,
    pub submitter: Arc<Submitter>,
    pub max_line_bytes: usize,
    pub idle_timeout: Duration,
    pub extranonce1_size: usize,
    extranonce1_prefix: Vec<u8>,
    next_extranonce1: AtomicU32,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    max_per_ip: usize,
    /// The counters of the periodic log line (the registry's, so the RPC reads them too).
    pub stats: Arc<Stats>,
    pub flood: FloodConfig,
    pub bans: Arc<BanStore>,
    pub registry: Arc<Registry>,
}

/// Logs a summary line every `every` while anything happens.
async fn log_stats(shared: Arc<Shared>, every: Duration, shutdown: CancellationToken) {
    let mut last = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let accepted = shared.stats.accepted.load(Ordering::Relaxed);
        let rejected = shared.stats.rejected.load(Ordering::Relaxed);
        let connections = shared.stats.connections.load(Ordering::Relaxed);
        let flood_cuts = shared.stats.flood_cuts.load(Ordering::Relaxed);
        if (accepted, rejected) != last || connections > 0 {
            tracing::info!(
                connections,
                flood_cuts,
                accepted = accepted - last.0,
                rejected = rejected - last.1,
                "shares in the last {} s",
                every.as_secs()
            );
            last = (accepted, rejected);
        }
    }
}

impl Shared {
    /// A fresh extranonce1 for a connection: the configured prefix (an edge's id), then a
    /// counter (random start), big-endian, padded or cut to the configured size. Unique among
    /// the 2^32 most recent connections (2^24 on an edge with a 4-byte extranonce1).
    pub fn allocate_extranonce1(&self) -> Vec<u8> {
        let n = self
            .next_extranonce1
            .fetch_add(1, Ordering::Relaxed)
            .to_be_bytes();
        let mut e = self.extranonce1_prefix.clone();
        // The room after the prefix takes the counter's low bytes: cutting the low end instead
        // would hand the same extranonce1 to 256 connections in a row.
        let room = self.extranonce1_size.saturating_sub(e.len());
        e.extend_from_slice(&n[n.len().saturating_sub(room)..]);
        e.resize(self.extranonce1_size, 0);
        e
    }
}

/// Counts a connection against its IP; released on drop.
pub(crate) struct IpSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.shared.per_ip.lock() {
            if let Some(n) = map.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    map.remove(&self.ip);
                }
            }
        }
    }
}

/// True when `peer`'s IP is banned now (the first refused attempt of each ban is logged, the
/// rest only at debug level, so a banned flooder reconnecting cannot flood the log).
fn refuse_banned(shared: &Shared, peer: SocketAddr) -> bool {
    let Some(refusal) = shared.bans.check_ip(peer.ip(), connection::now_ms()) else {
        return false;
    };
    let until = format_utc(refusal.until_ms);
    if refusal.first {
        tracing::info!(%peer, "refusing connections from a banned IP until {until} (logged once per ban)");
    } else {
        tracing::debug!(%peer, "refused: IP banned until {until}");
    }
    true
}

fn take_ip_slot(shared: &Arc<Shared>, ip: IpAddr) -> Option<IpSlot> {
    let mut map = shared.per_ip.lock().ok()?;
    let n = map.entry(ip).or_insert(0);
    if *n >= shared.max_per_ip {
        return None;
    }
    *n += 1;
    Some(IpSlot {
        shared: Arc::clone(shared),
        ip,
    })
}

impl Server {
    /// Checks the settings and binds the miner (and notify) sockets; events go to `ledger`.
    pub async fn bind(config: ServerConfig, ledger: Ledger) -> Result<Server, ServerError> {
        Server::bind_with_sink(config, Arc::new(ledger)).await
    }

    /// [`Server::bind`] with events going to any [`EventSink`] (an edge's stream).
    pub async fn bind_with_sink(
        config: ServerConfig,
        sink: Arc<dyn EventSink>,
    ) -> Result<Server, ServerError> {
        config.job_config.validate()?;
        if config.extranonce1_prefix.len() >= config.job_config.extranonce1_size {
            return Err(ServerError::ExtranoncePrefix {
                prefix: config.extranonce1_prefix.len(),
                size: config.job_config.extranonce1_size,
            });
        }
        if let Some(problem) = config.flood.problem() {
            return Err(ServerError::FloodConfig(problem));
        }
        if config.session.extranonce2_size != config.job_config.extranonce2_size {
            return Err(ServerError::ExtranonceMismatch {
                session: config.session.extranonce2_size,
                job: config.job_config.extranonce2_size,
            });
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let notify_listener = match config.notify_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::BindNotify { addr, source })?,
            ),
            None => None,
        };
        Ok(Server {
            config,
            sink,
            listener,
            notify_listener,
            open_candidates: Vec::new(),
            tips: watch::channel(None).0,
        })
    }

    /// Candidates left open in the ledger by an earlier run (no verdict recorded): each is
    /// looked up on the node and resubmitted once the server runs.
    pub fn resume_candidates(&mut self, candidates: Vec<BlockCandidate>) {
        self.open_candidates = candidates;
    }

    /// The pool's ban store (for the operator's admin calls).
    pub fn bans(&self) -> Arc<BanStore> {
        Arc::clone(&self.config.bans)
    }

    /// The live connections and share counters (for the operator's RPC).
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.config.registry)
    }

    /// Changes whenever a template builds on a new block (from the long poll, `obtc-pool
    /// notify`, the refresh, or a block the pool found): the chain watcher checks then. The
    /// sender ends with the job source, when the server stops.
    pub fn tips(&self) -> watch::Receiver<Option<ChainTip>> {
        self.tips.subscribe()
    }

    /// The address miners connect to.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The notify trigger's address, if it listens.
    pub fn notify_addr(&self) -> Option<SocketAddr> {
        self.notify_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` is cancelled, then waits for every task (in-flight ledger
    /// appends and block submissions included) to end.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let (jobs_tx, jobs_rx) = watch::channel(Arc::new(JobBook::default()));
        let (refetch_tx, refetch_rx) = mpsc::channel(8);
        let tasks = TaskTracker::new();
        let primary = match &self.config.source {
            TemplateSource::Node(n) => Some((n.client.clone(), Arc::clone(&n.guard))),
            TemplateSource::Synthetic => None,
        };
        let submitter = Arc::new(Submitter::new(
            primary,
            self.config.submit_also.clone(),
            Arc::clone(&self.sink),
            self.config.submit.clone(),
            refetch_tx.clone(),
            tasks.clone(),
            shutdown.clone(),
        ));
        if !self.open_candidates.is_empty() {
            tracing::info!(
                open = self.open_candidates.len(),
                "resolving block candidates an earlier run left open"
            );
        }
        for candidate in std::mem::take(&mut self.open_candidates) {
            submitter.submit(candidate, true);
        }
        let shared = Arc::new(Shared {
            session: Arc::new(SessionConfig {
                bans: Some(Arc::clone(&self.config.bans)),
                ..self.config.session.clone()
            }),
            sink: Arc::clone(&self.sink),
            submitter,
            max_line_bytes: self.config.max_line_bytes,
            idle_timeout: self.config.idle_timeout,
            extranonce1_size: self.config.job_config.extranonce1_size,
            extranonce1_prefix: self.config.extranonce1_prefix.clone(),
            next_extranonce1: AtomicU32::new(rand::random()),
            per_ip: Mutex::new(HashMap::new()),
            max_per_ip: self.config.max_connections_per_ip,
            stats: Arc::clone(self.config.registry.stats()),
            flood: self.config.flood,
            bans: Arc::clone(&self.config.bans),
            registry: Arc::clone(&self.config.registry),
        });
        tasks.spawn(log_stats(
            Arc::clone(&shared),
            STATS_INTERVAL,
            shutdown.clone(),
        ));

        let source = JobSource {
            source: self.config.source.clone(),
            job_config: self.config.job_config.clone(),
            matrices: MatrixCache::new(4),
            sink: Arc::clone(&self.sink),
            first_job_id: self.config.first_job_id,
            jobs: jobs_tx,
            refetch: refetch_rx,
            tips: self.tips,
            shutdown: shutdown.clone(),
        };
        tasks.spawn(source.run());
        if let Some(listener) = self.notify_listener {
            tasks.spawn(notify::listen(listener, refetch_tx, shutdown.clone()));
        }
        if let Ok(addr) = self.listener.local_addr() {
            tracing::info!(%addr, "stratum server listening");
        }
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => a,
            };
            match accepted {
                Ok((stream, peer)) if refuse_banned(&shared, peer) => drop(stream),
                Ok((stream, peer)) => match take_ip_slot(&shared, peer.ip()) {
                    Some(slot) => {
                        let conn = connection::Connection::new(
                            Arc::clone(&shared),
                            stream,
                            peer,
                            jobs_rx.clone(),
                            shutdown.clone(),
                            slot,
                        );
                        tasks.spawn(conn.run());
                    }
                    None => {
                        tracing::warn!(%peer, "refused: too many connections from this address");
                        drop(stream);
                    }
                },
                Err(e) => {
                    // Out of file descriptors and the like: log, breathe, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        drop(self.listener);
        tracing::info!("stopped accepting miners; waiting for connections to finish");
        let open = shared.submitter.open_count();
        if open > 0 {
            tracing::info!(
                open,
                "waiting up to {} s for open block submissions ([node] submit_shutdown_wait_secs)",
                self.config.submit.shutdown_wait.as_secs()
            );
        }
        tasks.close();
        tasks.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::chain::ChainParams;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    const ADDRESS: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

    fn config() -> ServerConfig {
        let chain = ChainParams::by_name("bsv-regtest").unwrap();
        let payout = pool_core::address::parse_payout_address(ADDRESS, chain).unwrap();
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_line_bytes: 1024,
            max_connections_per_ip: 2,
            idle_timeout: Duration::from_secs(30),
            session: SessionConfig::new(chain, 4),
            job_config: JobConfig::new(chain, b"/test/", payout.script_pubkey),
            source: TemplateSource::Synthetic,
            notify_listen: None,
            submit: SubmitSettings::default(),
            submit_also: Vec::new(),
            flood: FloodConfig::default(),
            bans: Arc::new(BanStore::default()),
            registry: Arc::new(Registry::new()),
            extranonce1_prefix: Vec::new(),
            first_job_id: 1,
        }
    }

    async fn next_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut line = String::new();
        tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        line
    }

    #[tokio::test]
    async fn synthetic_server_serves_jobs_and_stops_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let server = Server::bind(config(), ledger.clone()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));

        let (read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut reader = BufReader::new(read);
        write
            .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .await
            .unwrap();
        assert!(next_line(&mut reader).await.contains("\"id\":1"));
        let auth = format!(
            "{{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{ADDRESS}\",\"x\"]}}\n"
        );
        write.write_all(auth.as_bytes()).await.unwrap();
        let mut saw_notify = false;
        for _ in 0..4 {
            if next_line(&mut reader).await.contains("mining.notify") {
                saw_notify = true;
                break;
            }
        }
        assert!(saw_notify, "an authorized miner gets the synthetic job");

        // The per-IP limit (2): a third connection is closed at once.
        let _second = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::AsyncReadExt::read(&mut third, &mut buf),
        )
        .await
        .unwrap()
        .unwrap_or(0);
        assert_eq!(n, 0);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .unwrap()
            .unwrap();
        ledger.close().await;
    }
}
