//! The scrypt difficulty convention end to end, without a node: the real pool on
//! `litecoin-regtest` with the synthetic job source, a Stratum client grinding scrypt. The
//! difficulty the pool sends, takes (`mining.suggest_difficulty`) and shows (`miner_workers`,
//! `pool_info`) is the scrypt number (difficulty 1 = 65,536 Bitcoin difficulty-1 targets), and the
//! share it accepts is recorded at that number's target, weighing the target's work.

mod common;

use common::nodes::free_port;
use common::pool::PoolProcess;
use common::rpc::{request, result_of};
use common::stratum_client::StratumClient;
use payout::api::operator::{MinerWorkers, PoolInfo, METHOD_MINER_WORKERS, METHOD_POOL_INFO};
use pool_core::chain::Chain;
use pool_core::{DifficultyUnit, Event, Target};
use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A P2PKH address with version byte 111, valid on litecoin-regtest.
const ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";

fn config(stratum: SocketAddr, rpc: SocketAddr, start: f64) -> String {
    format!(
        r#"[chain]
preset = "litecoin-regtest"

[node]
kind = "synthetic"

[stratum]
listen = "{stratum}"
extranonce2_size = 4

[stratum.vardiff]
target_share_secs = 10
min_difficulty = 1e-6
max_difficulty = 1e6
start_difficulty = {start:e}

[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"

[ledger]
data_dir = "ledger"

[rpc]
listen = "{rpc}"
"#
    )
}

#[test]
fn a_litecoin_pool_sends_takes_and_shows_scrypt_difficulties() {
    // Scrypt difficulty 2^-15 is a target of about 2^255: every other scrypt hash meets it. The
    // same number in Bitcoin's unit would take ~131,000 hashes a share.
    let start = 2f64.powi(-15);
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut pool = PoolProcess::start_with_config(|stratum, _| config(stratum, rpc, start));
    let username = format!("{ADDRESS}.scrypt");
    let (mut client, _job) = StratumClient::authorized(pool.stratum, &username);
    assert_eq!(
        client.difficulty, start,
        "set_difficulty carries the scrypt number"
    );

    let share_target = DifficultyUnit::Scrypt.target(start).unwrap();
    client.use_chain(Chain::LitecoinRegtest.params());
    let job = client.latest_job().expect("a job");
    let solution = client.grind_target(&job, &share_target, None, 1_000);
    assert_eq!(
        client.submit(&username, &solution),
        Ok(json!(true)),
        "{}",
        pool.log()
    );

    // Taken in the unit: suggested 4, sent back 4 (Bitcoin's 4 / 65,536).
    client
        .request("mining.suggest_difficulty", json!([4.0]))
        .unwrap();
    client.read_line_within(Duration::from_millis(500));
    assert_eq!(client.difficulty, 4.0);

    // Shown in the unit.
    let (_, reply) = request(rpc, METHOD_POOL_INFO, &json!([]));
    let info: PoolInfo = result_of(METHOD_POOL_INFO, &json!([]), &reply).unwrap();
    assert_eq!(info.difficulty_unit, DifficultyUnit::Scrypt);
    assert_eq!(reply["result"]["difficulty_unit"], "scrypt");
    let deadline = Instant::now() + Duration::from_secs(20);
    let params = json!([ADDRESS]);
    let workers = loop {
        let (_, reply) = request(rpc, METHOD_MINER_WORKERS, &params);
        let workers: MinerWorkers = result_of(METHOD_MINER_WORKERS, &params, &reply).unwrap();
        if workers.workers.first().and_then(|w| w.difficulty) == Some(4.0)
            || Instant::now() > deadline
        {
            break workers;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(workers.workers.len(), 1, "{workers:?}");
    assert_eq!(workers.workers[0].worker, "scrypt");
    assert_eq!(workers.workers[0].difficulty, Some(4.0), "{workers:?}");

    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());
    let shares: Vec<_> = pool
        .ledger_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::ShareWithWork(w) => Some(w.share),
            _ => None,
        })
        .collect();
    assert_eq!(shares.len(), 1);
    let share = &shares[0];
    // Recorded at the scrypt number's target: Bitcoin's target of the same number x 65,536.
    assert_eq!(share.share_target, share_target);
    assert_eq!(
        share.share_target.as_u256(),
        Target::from_difficulty(start).unwrap().as_u256() << 16
    );
    assert_eq!(share.weight, share.share_target.work());
}
