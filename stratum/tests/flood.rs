//! Reject floods end to end: a connection flooding invalid shares is cut, a repeat offender is
//! banned (its worker refused at authorize, then its IP refused at accept), and an honest miner
//! with bursts of stale shares after each new block is never cut (through the session with real
//! stale jobs, and through the server). The synthetic job source needs no node; a pinned, tiny
//! share difficulty makes every fresh submit a valid share.

use pool_core::chain::{Chain, ChainParams};
use pool_core::pow::MatrixCache;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use stratum::ban::{BanConfig, BanStore, BanTarget};
use stratum::flood::{FloodConfig, FloodWindow};
use stratum::job::{BlockTemplate, JobBook, JobConfig};
use stratum::server::job_source::TemplateSource;
use stratum::server::{Server, ServerConfig};
use stratum::session::{Session, SessionConfig, SessionOutput, ShareRejection};
use stratum::vardiff::VardiffConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const ADDRESS: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const WAIT: Duration = Duration::from_secs(10);

/// Every share meets the target: difficulty pinned so low that its target is the largest.
fn easy_vardiff() -> VardiffConfig {
    VardiffConfig {
        initial_difficulty: 1e-12,
        min_difficulty: 1e-12,
        max_difficulty: 1e-12,
        ..VardiffConfig::default()
    }
}

fn submit(id: u64, username: &str, job: &str, ntime: &str, nonce: u32) -> String {
    json!({
        "id": id,
        "method": "mining.submit",
        "params": [username, job, "00000000", ntime, format!("{nonce:08x}")],
    })
    .to_string()
        + "\n"
}

// ---- through the session, with real stale jobs ----

#[test]
fn an_honest_miner_with_stale_bursts_after_each_block_is_never_cut() {
    let chain = Chain::BsvRegtest.params();
    let job_config = JobConfig::new(chain, b"/t/", vec![0x51]);
    let mut config = SessionConfig::new(chain, 4);
    config.vardiff = easy_vardiff();
    let cache = MatrixCache::new(1);
    let mut book = JobBook::new(4);
    let template = |height: u64| {
        BlockTemplate::from_value(json!({
            "version": 0x2000_0000u32,
            "previousblockhash": format!("{height:064x}"),
            "transactions": [],
            "coinbasevalue": 5_000_000_000u64,
            "bits": "1d00ffff",
            "curtime": 1_795_572_408u32,
            "height": height,
        }))
        .unwrap()
    };
    let username = format!("{ADDRESS}.rig");
    let mut job = book
        .add_template(&template(1), &job_config, None, &cache)
        .unwrap();
    let mut session = Session::new(Arc::new(config), vec![1, 2, 3, 4], 0);
    for line in [
        json!({"id": 1, "method": "mining.subscribe", "params": []}),
        json!({"id": 2, "method": "mining.authorize", "params": [&username, "x"]}),
    ] {
        let _ = session.handle_line(&line.to_string(), 0, &book);
    }
    let flood = FloodConfig::default();
    let mut window = FloodWindow::new();
    let (mut nonce, mut stale, mut valid) = (0u32, 0, 0);
    for block in 2..=40u64 {
        let old = job.notify.job_id.clone();
        job = book
            .add_template(&template(block), &job_config, None, &cache)
            .unwrap();
        assert!(job.clean_jobs);
        let _ = session.on_job(&job, block * 1000);
        // The work the miner was on when the block came: 5 to 10 stale shares.
        let burst = 5 + block % 6;
        let ntime = format!("{:08x}", job.ntime);
        for (job_id, count) in [(old, burst), (job.notify.job_id.clone(), 20)] {
            for _ in 0..count {
                nonce += 1;
                let line = submit(9, &username, &job_id, &ntime, nonce);
                let ok = match session.handle_line(line.trim_end(), block * 1000, &book) {
                    SessionOutput::ShareAccepted(_) => {
                        valid += 1;
                        true
                    }
                    SessionOutput::ShareRejected {
                        reason: ShareRejection::StaleJob,
                        ..
                    } => {
                        stale += 1;
                        false
                    }
                    other => panic!("{other:?}"),
                };
                assert!(
                    !window.record(&flood, ok),
                    "cut after {valid} valid and {stale} stale shares: {:?}",
                    window.counts()
                );
            }
        }
    }
    assert!(stale > 250 && valid > 700, "{stale} stale, {valid} valid");
}

// ---- through the server ----

struct Pool {
    addr: SocketAddr,
    bans: Arc<BanStore>,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
    ledger: ledger::Ledger,
    _dir: tempfile::TempDir,
}

impl Pool {
    async fn start(bans: BanConfig) -> Pool {
        let chain = ChainParams::by_name("bsv-regtest").unwrap();
        let payout = pool_core::address::parse_payout_address(ADDRESS, chain).unwrap();
        let mut session = SessionConfig::new(chain, 4);
        session.vardiff = easy_vardiff();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_line_bytes: 1024,
            max_connections_per_ip: 16,
            idle_timeout: Duration::from_secs(30),
            session,
            job_config: JobConfig::new(chain, b"/test/", payout.script_pubkey),
            source: TemplateSource::Synthetic,
            notify_listen: None,
            flood: FloodConfig::default(),
            bans: Arc::new(BanStore::new(bans)),
            submit: stratum::server::submit::SubmitSettings::default(),
            submit_also: Vec::new(),
            registry: Arc::new(stratum::server::registry::Registry::new()),
            extranonce1_prefix: Vec::new(),
            first_job_id: 1,
        };
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger::Ledger::open(dir.path()).unwrap();
        let server = Server::bind(config, ledger.clone()).await.unwrap();
        let addr = server.local_addr().unwrap();
        let bans = server.bans();
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));
        Pool {
            addr,
            bans,
            shutdown,
            running,
            ledger,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.running)
            .await
            .unwrap()
            .unwrap();
        self.ledger.close().await;
    }
}

struct Miner {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    username: String,
    job: String,
    ntime: String,
    nonce: u32,
}

impl Miner {
    /// Connects, subscribes and authorizes; the authorize error's message if refused.
    async fn authorized(addr: SocketAddr, worker: &str) -> Result<Miner, String> {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        let username = format!("{ADDRESS}.{worker}");
        let mut miner = Miner {
            reader: BufReader::new(read),
            writer,
            username,
            job: String::new(),
            ntime: String::new(),
            nonce: 0,
        };
        let lines = json!({"id": 1, "method": "mining.subscribe", "params": []}).to_string()
            + "\n"
            + &json!({"id": 2, "method": "mining.authorize", "params": [&miner.username, "x"]})
                .to_string()
            + "\n";
        miner.writer.write_all(lines.as_bytes()).await.unwrap();
        loop {
            let line = miner.line().await.expect("the pool answers authorize");
            if line["id"] == 2 && !line["error"].is_null() {
                return Err(line["error"][1].as_str().unwrap_or_default().to_owned());
            }
            if line["method"] == "mining.notify" {
                miner.job = line["params"][0].as_str().unwrap().to_owned();
                miner.ntime = line["params"][7].as_str().unwrap().to_owned();
                return Ok(miner);
            }
        }
    }

    /// The next line, or None once the pool closed the connection.
    async fn line(&mut self) -> Option<Value> {
        let mut line = String::new();
        match tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(serde_json::from_str(&line).unwrap()),
            Err(_) => panic!("the pool neither answered nor closed within {WAIT:?}"),
        }
    }

    /// Sends `valid` fresh shares and `invalid` ones (for a job the pool does not have),
    /// pipelined; returns the replies read, accepted and refused, until the pool closed the
    /// connection or all were answered.
    async fn send(&mut self, valid: u32, invalid: u32) -> (u32, u32, bool) {
        let mut lines = String::new();
        for i in 0..valid + invalid {
            self.nonce += 1;
            let job = if i < valid { self.job.as_str() } else { "ffff" };
            lines += &submit(
                u64::from(i) + 10,
                &self.username,
                job,
                &self.ntime,
                self.nonce,
            );
        }
        // The pool may cut the connection while these are in flight.
        let _ = self.writer.write_all(lines.as_bytes()).await;
        let (mut accepted, mut refused) = (0, 0);
        while accepted + refused < valid + invalid {
            match self.line().await {
                None => return (accepted, refused, true),
                Some(v) if v["result"] == true => accepted += 1,
                Some(v) if !v["error"].is_null() => refused += 1,
                Some(_) => {} // a notification
            }
        }
        (accepted, refused, false)
    }

    /// Floods invalid shares until the pool closes the connection.
    async fn flood(mut self) -> u32 {
        let (_, refused, closed) = self.send(0, 300).await;
        assert!(closed, "a flood of 300 invalid shares was answered in full");
        refused
    }
}

fn offender_bans() -> BanConfig {
    BanConfig {
        worker_after_cuts: 2,
        ip_after_cuts: 3,
        allowlist: Vec::new(),
        ..BanConfig::default()
    }
}

#[tokio::test]
async fn a_flood_is_cut_and_a_repeat_offender_is_banned() {
    let pool = Pool::start(offender_bans()).await;
    // Cut after its 50th invalid share (the default rule), which gets no reply.
    let refused = Miner::authorized(pool.addr, "flood")
        .await
        .unwrap()
        .flood()
        .await;
    assert!(refused <= 49, "{refused} refusals before the cut");
    assert!(pool.bans.list(now_ms()).is_empty(), "one cut bans nobody");

    // The second cut bans the worker, from this IP only.
    Miner::authorized(pool.addr, "flood")
        .await
        .unwrap()
        .flood()
        .await;
    let refusal = Miner::authorized(pool.addr, "flood").await.err().unwrap();
    assert!(refusal.contains("worker banned until"), "{refusal}");
    assert!(pool
        .bans
        .worker_banned_until(
            &format!("{ADDRESS}.flood"),
            "198.51.100.1".parse().unwrap(),
            now_ms()
        )
        .is_none());

    // Another worker on the same IP still mines; its flood is the IP's third cut: IP banned.
    let mut other = Miner::authorized(pool.addr, "other").await.unwrap();
    assert_eq!(other.send(3, 0).await, (3, 0, false));
    other.flood().await;
    let targets: Vec<BanTarget> = pool
        .bans
        .list(now_ms())
        .into_iter()
        .map(|b| b.target)
        .collect();
    assert!(
        targets.contains(&BanTarget::Ip("127.0.0.1".parse().unwrap())),
        "{targets:?}"
    );
    for _ in 0..3 {
        // Accepted by the kernel, closed by the pool before anything is said.
        let mut refused = TcpStream::connect(pool.addr).await.unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut refused, &mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    // The operator lifts the ban.
    assert!(pool
        .bans
        .unban(&BanTarget::Ip("127.0.0.1".parse().unwrap())));
    let mut back = Miner::authorized(pool.addr, "other").await.unwrap();
    assert_eq!(back.send(2, 0).await, (2, 0, false));
    pool.stop().await;
}

#[tokio::test]
async fn an_honest_pattern_through_the_server_is_never_cut() {
    let pool = Pool::start(offender_bans()).await;
    let mut miner = Miner::authorized(pool.addr, "honest").await.unwrap();
    // 12 rounds of 30 valid shares and a burst of 5-10 invalid ones (as after a new block).
    for round in 0..12 {
        let burst = 5 + round % 6;
        let (accepted, refused, closed) = miner.send(30, burst).await;
        assert!(!closed, "round {round}: the pool closed an honest miner");
        assert_eq!((accepted, refused), (30, burst), "round {round}");
    }
    assert!(pool.bans.list(now_ms()).is_empty());
    pool.stop().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
