//! Scrypt end to end without a Litecoin node: the real pool on `litecoin-regtest` with the
//! synthetic job source, mined by the independent `obtc-miner --algo scrypt`. The miner reads
//! `mining.set_difficulty` in the scrypt convention (difficulty 1 = 65,536 Bitcoin difficulty-1
//! targets), as the pool sends it: every share it finds is accepted, and the ledger records them
//! at the scrypt difficulty's target.

mod common;

use common::miner::{MinerOptions, MinerProcess};
use common::pool::PoolProcess;
use pool_core::{DifficultyUnit, Event};
use std::net::SocketAddr;
use std::time::Duration;

/// A P2PKH address with version byte 111, valid on litecoin-regtest.
const ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const POOL_ADDRESS: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

fn config(difficulty: f64, stratum: SocketAddr) -> String {
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
min_difficulty = {difficulty:e}
max_difficulty = {difficulty:e}
start_difficulty = {difficulty:e}

[pool]
payout_address = "{POOL_ADDRESS}"

[ledger]
data_dir = "ledger"
"#
    )
}

#[test]
fn scrypt_miner_shares_are_accepted_at_the_scrypt_difficulty() {
    let _serial = common::serial();
    // Scrypt difficulty 2^-10 is a target of about 2^250: one scrypt hash in ~64 meets it, a
    // fraction of a second for a debug-build miner. Read in Bitcoin's convention the miner's
    // target would be 65,536 times harder (one share in ~4 M hashes: none in the test's time),
    // and a share ground to an easier target than the pool's would be refused.
    const DIFFICULTY: f64 = 1.0 / 1024.0;
    const SHARES: u64 = 5;
    let mut pool = PoolProcess::start_with_config(|stratum, _| config(DIFFICULTY, stratum));
    let mut options = MinerOptions::new(&format!("{ADDRESS}.scrypt"), "scrypt");
    options.max_shares = SHARES;
    options.duration_secs = 120;
    let run = MinerProcess::spawn(pool.stratum, &options).wait(Duration::from_secs(150));
    let counts = run.expect_accepted(SHARES, &pool.log());
    eprintln!("scrypt miner: {counts:?}");
    assert_eq!(counts.rejected, 0, "{run:?}");

    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());
    let events = pool.ledger_events();
    let shares: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ShareWithWork(w) => Some(&w.share),
            _ => None,
        })
        .collect();
    assert_eq!(shares.len() as u64, counts.accepted);
    let target = DifficultyUnit::Scrypt.target(DIFFICULTY).unwrap();
    for share in &shares {
        assert_eq!(share.address.0, ADDRESS);
        assert_eq!(share.worker.0, "scrypt");
        assert_eq!(share.share_target, target);
        assert_eq!(share.weight, share.share_target.work());
    }
}
