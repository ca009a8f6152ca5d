//! HeavyHash end to end without an oBTC node: the real pool on the `obtc-regtest` chain with the
//! synthetic job source (a fixed fake template no share turns into a block), mined by the
//! independent `obtc-miner`. Its HeavyHash shares are accepted and recorded with their work;
//! its SHA-256d shares are refused as low difficulty, so the pool really checks HeavyHash. And the
//! miner's `--max-shares` holds even when shares come thousands a second.

mod common;

use bitcoin::hashes::Hash;
use common::miner::{MinerOptions, MinerProcess};
use common::pool::PoolProcess;
use pool_core::{Event, Target};
use std::net::SocketAddr;
use std::time::Duration;

/// A regtest P2PKH address (valid on `obtc-regtest`) from a fixed key hash.
fn regtest_address(fill: u8) -> String {
    let hash = bitcoin::PubkeyHash::from_byte_array([fill; 20]);
    bitcoin::Address::p2pkh(hash, bitcoin::Network::Regtest).to_string()
}

/// `obtc-regtest`, no node, the share difficulty pinned at `difficulty`.
fn synthetic_obtc_config(difficulty: f64, stratum: SocketAddr) -> String {
    format!(
        r#"[chain]
preset = "obtc-regtest"

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
payout_address = "{payout}"

[ledger]
data_dir = "ledger"
"#,
        payout = regtest_address(0x11),
    )
}

#[test]
fn heavyhash_shares_are_accepted_and_recorded_with_their_work() {
    let _serial = common::serial();
    // About 430 hashes a share: a debug-build miner (some 20k HeavyHash/s) finds dozens of
    // shares a second.
    const DIFFICULTY: f64 = 1e-7;
    const SHARES: u64 = 40;
    let mut pool =
        PoolProcess::start_with_config(|stratum, _| synthetic_obtc_config(DIFFICULTY, stratum));
    let address = regtest_address(0x22);
    let mut options = MinerOptions::new(&format!("{address}.heavy"), "heavyhash");
    options.max_shares = SHARES;
    options.duration_secs = 60;
    let run = MinerProcess::spawn(pool.stratum, &options).wait(Duration::from_secs(90));
    let counts = run.expect_accepted(SHARES, &pool.log());
    eprintln!("heavyhash miner: {counts:?}");
    // One fixed job: no share can be stale, so nothing may be rejected.
    assert_eq!(counts.rejected, 0, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("obtc-miner: difficulty {DIFFICULTY}")),
        "the pool's difficulty reached the miner: {}",
        run.stderr
    );

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
    assert_eq!(
        shares.len() as u64,
        counts.accepted,
        "the ledger holds exactly the shares the miner was told were accepted"
    );
    let target = Target::from_difficulty(DIFFICULTY).unwrap();
    for share in &shares {
        assert_eq!(share.address.0, address);
        assert_eq!(share.worker.0, "heavy");
        assert_eq!(share.share_target, target);
        assert_eq!(share.weight, share.share_target.work());
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::BlockFound(_) | Event::BlockRejected(_))),
        "the synthetic template's target is never met"
    );
}

#[test]
fn sha256d_shares_are_refused_by_a_heavyhash_pool() {
    let _serial = common::serial();
    // The SHA-256d miner submits headers whose SHA-256d meets the share target; their HeavyHash
    // is unrelated to it, so each passes the pool's check only with probability
    // target / 2^256 = 1 / (2^32 * difficulty * 65536/65535), about 2.3e-6 here. Three refusals
    // (and the odd share in flight at the kill) make a false pass about a 1-in-100,000 event; at
    // 1e-7 it would be 1 in 430 per share. The cost: some 430k SHA-256d hashes a share, a second
    // or two each. The same miner's SHA-256d shares are accepted by a SHA-256d pool
    // (miner_regtest.rs), so a refusal here is the algorithm, not the share's assembly.
    const DIFFICULTY: f64 = 1e-4;
    const REFUSALS: usize = 3;
    let mut pool =
        PoolProcess::start_with_config(|stratum, _| synthetic_obtc_config(DIFFICULTY, stratum));
    let address = regtest_address(0x33);
    let mut options = MinerOptions::new(&format!("{address}.wrongalgo"), "sha256d");
    options.duration_secs = 120;
    let miner = MinerProcess::spawn(pool.stratum, &options);
    let refused = miner.wait_for_stderr(Duration::from_secs(90), |stderr| {
        common::miner::rejection_codes(stderr).len() >= REFUSALS
    });
    // Killed: the summary line is not needed, the refusals are logged one by one.
    let run = miner.kill();
    assert!(
        refused,
        "fewer than {REFUSALS} refusals: {run:?}\npool:\n{}",
        pool.log()
    );
    let codes = run.rejection_codes();
    eprintln!("sha256d miner refused with codes {codes:?}");
    assert!(
        codes.iter().all(|&code| code == 23),
        "refused as low difficulty (23): {codes:?}"
    );

    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());
    let accepted = pool
        .ledger_events()
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count();
    assert_eq!(
        accepted, 0,
        "no SHA-256d share may pass the HeavyHash check"
    );
}

#[test]
fn max_shares_stops_the_miner_at_exactly_that_many_accepted_shares() {
    let _serial = common::serial();
    // About 4 hashes a share: two threads find thousands a second, far more than the pool
    // answers while the first 40 are on their way (without the limit on shares in flight, a
    // `--max-shares 40` run ended with over 1,000 accepted).
    const DIFFICULTY: f64 = 1e-9;
    const SHARES: u64 = 40;
    let mut pool =
        PoolProcess::start_with_config(|stratum, _| synthetic_obtc_config(DIFFICULTY, stratum));
    let address = regtest_address(0x44);
    let mut options = MinerOptions::new(&format!("{address}.limited"), "heavyhash");
    options.max_shares = SHARES;
    options.threads = 2;
    options.duration_secs = 60;
    let run = MinerProcess::spawn(pool.stratum, &options).wait(Duration::from_secs(90));
    let counts = run.expect_accepted(SHARES, &pool.log());
    assert_eq!(counts.accepted, SHARES, "{run:?}");
    assert_eq!(counts.rejected, 0, "one fixed job: {run:?}");

    let status = pool.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", pool.log());
    let stored = pool
        .ledger_events()
        .iter()
        .filter(|e| matches!(e, Event::ShareWithWork(_)))
        .count();
    assert_eq!(stored as u64, SHARES, "every submitted share was answered");
}
