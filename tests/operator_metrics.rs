//! The Prometheus endpoint of a running pool (`obtc-pool run`, synthetic job source: no node):
//! shares accepted and rejected by reason, the submit latency histogram, connections, the
//! ledger writer's commits and the projection's head, scraped over HTTP at `GET /metrics` on
//! the RPC port (no token) and on `[rpc] metrics_listen`, and read with a Prometheus text
//! format parser (`prometheus-parse`). The ledger starts with found blocks in every state, so
//! the scrape-time figures of the live projection (blocks, balances) have values to check.

mod common;

use common::nodes::free_port;
use common::pool::PoolProcess;
use common::rpc::post;
use common::stratum_client::{Solution, StratumClient};
use pool_core::event::{
    BlockFound, BlockMatured, BlockOrphaned, BlockRejected, NetworkFeePayer, PayoutAddress,
    PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MINER: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const POOL: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const ACCEPTED: u64 = 6;

/// The ledger the pool starts on: SOLO blocks of ALICE's (1 and 2 matured: 80,000,000 payable;
/// 3 immature: 20,000,000; 4 orphaned) and one the node refused.
fn seeded() -> Vec<Event> {
    let found = |id: u8, reward: u64| {
        Event::BlockFound(BlockFound {
            height: 100 + u64::from(id),
            block_id: BlockId([id; 32]),
            reward: Sats(reward),
            network_target: Target::from_compact(0x207fffff).unwrap(),
            finder: PayoutAddress(ALICE.into()),
            worker: WorkerName("rig".into()),
            time_ms: 1_700_000_000_000 + u64::from(id),
        })
    };
    let share_target = Target::from_compact(0x1d00ffff).unwrap();
    vec![
        Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Solo,
            fee_bps: 0,
            fee_address: PayoutAddress(POOL.into()),
            network_fee_payer: NetworkFeePayer::Pool,
        }),
        Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(ALICE.into()),
            worker: WorkerName("rig".into()),
            share_target,
            weight: share_target.work(),
            job_id: 0,
            height: 101,
            network_target: Target::from_compact(0x207fffff).unwrap(),
            time_ms: 1_700_000_000_000,
        }),
        found(1, 50_000_000),
        found(2, 30_000_000),
        found(3, 20_000_000),
        found(4, 10_000_000),
        Event::BlockMatured(BlockMatured {
            block_id: BlockId([1; 32]),
            height: 101,
        }),
        Event::BlockMatured(BlockMatured {
            block_id: BlockId([2; 32]),
            height: 102,
        }),
        Event::BlockOrphaned(BlockOrphaned {
            block_id: BlockId([4; 32]),
            height: 104,
        }),
        Event::BlockRejected(BlockRejected {
            height: 105,
            block_id: BlockId([5; 32]),
            reason: "bad-cb-amount".into(),
            finder: PayoutAddress(ALICE.into()),
            worker: WorkerName("rig".into()),
            time_ms: 1_700_000_000_005,
        }),
    ]
}

fn config(stratum: SocketAddr, rpc: SocketAddr, metrics: SocketAddr) -> String {
    format!(
        r#"[chain]
preset = "bsv-regtest"
[node]
kind = "synthetic"
[stratum]
listen = "{stratum}"
extranonce2_size = 4
[stratum.vardiff]
target_share_secs = 30
min_difficulty = 1e-6
max_difficulty = 1e-6
start_difficulty = 1e-6
[pool]
payout_address = "{POOL}"
[payout]
scheme = "solo"
[ledger]
data_dir = "ledger"
[rpc]
listen = "{rpc}"
metrics_listen = "{metrics}"
"#
    )
}

/// `GET path` over HTTP/1.1: the status code, the `Content-Type` and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    let reply = String::from_utf8(reply).expect("UTF-8 reply");
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    assert!(
        !header("transfer-encoding").contains("chunked"),
        "chunked replies are not expected: {head}"
    );
    (status, header("content-type"), body.to_owned())
}

fn scrape(addr: SocketAddr) -> Scrape {
    let (status, content_type, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("a Prometheus text scrape")
}

fn scalar(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{} is not a scalar: {other:?}", s.metric),
    }
}

/// The value of the sample `metric` with the label `labels` (all of them, and no others).
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
                && s.labels.len() == labels.len()
        })
        .collect();
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    scalar(found[0])
}

/// The sum over every sample named `metric` (0 when there is none).
fn total(scrape: &Scrape, metric: &str) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .map(scalar)
        .sum()
}

/// `(le, cumulative count)` of the histogram `metric`.
fn buckets(scrape: &Scrape, metric: &str) -> Vec<(f64, f64)> {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == metric)
        .unwrap_or_else(|| panic!("no histogram {metric}"));
    match &s.value {
        Value::Histogram(h) => h.iter().map(|b| (b.less_than, b.count)).collect(),
        other => panic!("{metric} is not a histogram: {other:?}"),
    }
}

fn submit_raw(client: &mut StratumClient, worker: &str, s: &Solution) -> Result<(), i64> {
    client.submit(worker, s).map(|_| ()).map_err(|e| e.code)
}

#[test]
fn a_running_pool_serves_its_metrics_in_prometheus_text() {
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let seeded = seeded();
    let seeded_records = seeded.len() as f64;
    let pool = PoolProcess::start_on_ledger(|stratum, _| config(stratum, rpc, metrics), seeded);
    let worker = format!("{MINER}.rig1");

    // Accepted shares, then one rejection of each kind a miner can cause here.
    let (mut miner, job) = StratumClient::authorized(pool.stratum, &worker);
    let mut last = None;
    for _ in 0..ACCEPTED {
        let s = miner.grind(&job, None, None, 1_000_000);
        miner.submit(&worker, &s).expect("share accepted");
        last = Some(s);
    }
    let last = last.unwrap();
    let mut rejected = vec![("duplicate", 2u64)];
    for _ in 0..2 {
        assert!(submit_raw(&mut miner, &worker, &last).is_err());
    }
    let unknown = Solution {
        job_id: "ffffff".into(),
        ..miner.grind(&job, None, None, 1_000_000)
    };
    assert!(submit_raw(&mut miner, &worker, &unknown).is_err());
    rejected.push(("unknown_job", 1));
    let bad_nonce = Solution {
        nonce: "zz".into(),
        ..miner.grind(&job, None, None, 1_000_000)
    };
    assert!(submit_raw(&mut miner, &worker, &bad_nonce).is_err());
    rejected.push(("bad_hex_field", 1));
    let s = miner.grind(&job, None, None, 1_000_000);
    assert!(submit_raw(&mut miner, &format!("{MINER}.other"), &s).is_err());
    rejected.push(("unauthorized", 1));
    // A second connection that never subscribed.
    let mut stranger = StratumClient::connect(pool.stratum);
    assert!(submit_raw(&mut stranger, &worker, &s).is_err());
    rejected.push(("not_subscribed", 1));
    let rejected_total: u64 = rejected.iter().map(|(_, n)| n).sum();

    // The RPC port: no token needed, and JSON-RPC still answers beside it.
    let on_rpc = scrape(rpc);
    let status = post(
        rpc,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "pool_status", "params": []}).to_string(),
        None,
    );
    assert!(status["result"].is_object(), "{status}");
    let (code, _, _) = get(metrics, "/nothing");
    assert_eq!(code, 404);
    let on_metrics = scrape(metrics);

    for m in [&on_rpc, &on_metrics] {
        assert_eq!(value(m, "obtc_stratum_connections", &[]), 2.0);
        // The harness's probe for the listening port counts as one too.
        assert!(value(m, "obtc_stratum_connections_opened_total", &[]) >= 2.0);
        assert_eq!(
            value(m, "obtc_stratum_shares_accepted_total", &[]),
            ACCEPTED as f64
        );
        for (reason, n) in &rejected {
            assert_eq!(
                value(
                    m,
                    "obtc_stratum_shares_rejected_total",
                    &[("reason", reason)]
                ),
                *n as f64,
                "{reason}"
            );
        }
        assert_eq!(
            total(m, "obtc_stratum_shares_rejected_total"),
            rejected_total as f64
        );
        // Every submit's reply is timed, accepted or not.
        let acks = (ACCEPTED + rejected_total) as f64;
        assert_eq!(
            value(m, "obtc_stratum_submit_latency_seconds_count", &[]),
            acks
        );
        let latency = buckets(m, "obtc_stratum_submit_latency_seconds");
        assert_eq!(latency.last().unwrap(), &(f64::INFINITY, acks));
        assert!(latency.windows(2).all(|w| w[0].1 <= w[1].1), "{latency:?}");
        assert!(value(m, "obtc_stratum_submit_latency_seconds_sum", &[]) > 0.0);

        // The ledger: this process wrote the synthetic job's JobCreated and the shares (the rule
        // in force is recorded already).
        let appended = value(m, "obtc_ledger_appended_records_total", &[]);
        assert!(appended >= ACCEPTED as f64, "{appended}");
        let commits = value(m, "obtc_ledger_commits_total", &[]);
        assert!(commits >= 1.0 && commits <= appended, "{commits}");
        assert_eq!(
            value(m, "obtc_ledger_commit_latency_seconds_count", &[]),
            commits
        );
        assert_eq!(
            value(m, "obtc_ledger_commit_batch_records_count", &[]),
            commits
        );
        assert_eq!(
            value(m, "obtc_ledger_commit_batch_records_sum", &[]),
            appended
        );
        assert_eq!(value(m, "obtc_ledger_commit_failures_total", &[]), 0.0);
        assert_eq!(appended, ACCEPTED as f64 + 1.0);
        assert_eq!(
            value(m, "obtc_ledger_durable_seq", &[]),
            seeded_records + appended - 1.0
        );
        assert!(value(m, "obtc_ledger_head_seq", &[]) <= seeded_records + appended - 1.0);

        // A synthetic job source calls no node.
        assert_eq!(total(m, "obtc_node_rpc_calls_total"), 0.0);
        assert_eq!(total(m, "obtc_node_rpc_errors_total"), 0.0);
        assert_eq!(value(m, "obtc_stratum_block_submissions_total", &[]), 0.0);
        // The live projection, read at scrape time.
        assert_eq!(value(m, "obtc_blocks_found_total", &[]), 4.0);
        assert_eq!(value(m, "obtc_blocks_matured", &[]), 2.0);
        assert_eq!(value(m, "obtc_blocks_immature", &[]), 1.0);
        assert_eq!(value(m, "obtc_blocks_orphaned", &[]), 1.0);
        assert_eq!(value(m, "obtc_blocks_rejected_total", &[]), 1.0);
        assert_eq!(value(m, "obtc_block_candidates_pending", &[]), 0.0);
        assert_eq!(value(m, "obtc_balance_payable_sats", &[]), 80_000_000.0);
        assert_eq!(value(m, "obtc_balance_immature_sats", &[]), 20_000_000.0);
        assert_eq!(value(m, "obtc_balance_in_flight_sats", &[]), 0.0);
        assert_eq!(value(m, "obtc_balance_paid_sats", &[]), 0.0);
        assert_eq!(value(m, "obtc_payments_open", &[]), 0.0);
        assert_eq!(value(m, "obtc_payout_reported", &[]), 0.0);
        assert_eq!(value(m, "obtc_payouts_paused", &[]), 0.0);
        for state in ["running", "paused", "error"] {
            assert_eq!(value(m, "obtc_payout_state", &[("state", state)]), 0.0);
        }
        assert!(value(m, "obtc_uptime_seconds", &[]) > 0.0);
    }

    // The projection catches up with the ledger (the follower applies within moments).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(metrics);
        let (head, durable) = (
            value(&m, "obtc_ledger_head_seq", &[]),
            value(&m, "obtc_ledger_durable_seq", &[]),
        );
        if head == durable {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{head} < {durable}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A payout report shows as the payout state.
    let token = std::fs::read_to_string(pool.ledger_dir().join("rpc.token")).unwrap();
    let report = json!({"jsonrpc": "2.0", "id": 2, "method": "payout_report",
        "params": [{"state": "paused", "message": "guard", "time_ms": 1}]});
    let reply = post(rpc, &report.to_string(), Some(token.trim()));
    assert_eq!(reply["result"], json!(true), "{reply}");
    drop(stranger);
    drop(miner);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let m = loop {
        let m = scrape(rpc);
        if value(&m, "obtc_stratum_connections", &[]) == 0.0 {
            break m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections stay open"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(value(&m, "obtc_payout_state", &[("state", "paused")]), 1.0);
    assert_eq!(value(&m, "obtc_payout_state", &[("state", "running")]), 0.0);
    assert_eq!(value(&m, "obtc_payout_reported", &[]), 1.0);
    assert!(value(&m, "obtc_payout_report_age_seconds", &[]) > 1e6);

    // Only GET (and HEAD) read the metrics.
    let mut stream = TcpStream::connect(rpc).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST /metrics HTTP/1.1\r\nHost: {rpc}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 405"), "{reply}");
}
