//! `obtc-pool ledger balances`: a ledger built with the ledger API (a payout rule, shares of two
//! addresses, a found block that matures) replays into credits split exactly by share weight,
//! summing to reward minus the pool fee; a tampered or missing ledger gets no report.

mod ledger_support;

use ledger::Ledger;
use ledger_support::{edit_batch, obtc_pool};
use pool_core::event::{
    BlockFound, BlockMatured, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme,
    ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target};
use serde_json::Value;
use std::path::Path;

const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const FEE: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
const REWARD: u64 = 5_000_000_000;
const FEE_BPS: u16 = 100;

/// `2^bits - 1`: its work is exactly `2^(256 - bits)`.
fn target_below_power_of_two(bits: u32) -> Target {
    // Big-endian: the top `256 - bits` bits are zero, all others one.
    let zero_bits = 256 - bits as usize;
    let mut b = [0xffu8; 32];
    for (i, byte) in b.iter_mut().enumerate() {
        let start = i * 8;
        if start + 8 <= zero_bits {
            *byte = 0;
        } else if start < zero_bits {
            *byte = 0xff >> (zero_bits - start);
        }
    }
    Target::from_be_bytes(b)
}

fn share(address: &str, target: Target, n: u64) -> Event {
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress(address.into()),
        worker: WorkerName("rig".into()),
        share_target: target,
        weight: target.work(),
        job_id: n,
        height: 101,
        network_target: target_below_power_of_two(220),
        time_ms: 1_700_000_000_000 + n,
    })
}

fn rule() -> PayoutRule {
    PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 2,
            window_denominator: 1,
        },
        fee_bps: FEE_BPS,
        fee_address: PayoutAddress(FEE.into()),
        network_fee_payer: NetworkFeePayer::Pool,
    }
}

/// Rule at seq 0; Alice 3 shares of work 2^32, Bob 1 share of work 2^34 (weights 3 : 4); the
/// block (network work 2^36, so the 2x window holds every share) at seq 5, matured at seq 6.
fn build(dir: &Path) {
    let alice = target_below_power_of_two(224);
    let bob = target_below_power_of_two(222);
    assert_eq!(alice.work().as_u256().to_string(), (1u64 << 32).to_string());
    assert_eq!(bob.work().as_u256().to_string(), (1u64 << 34).to_string());
    let block_id = BlockId([7; 32]);
    let ledger = Ledger::open(dir).unwrap();
    let mut events = vec![Event::PayoutRuleSet(rule())];
    events.extend([
        share(ALICE, alice, 1),
        share(BOB, bob, 2),
        share(ALICE, alice, 3),
        share(ALICE, alice, 4),
    ]);
    events.push(Event::BlockFound(BlockFound {
        height: 101,
        block_id,
        reward: Sats(REWARD),
        network_target: target_below_power_of_two(220),
        finder: PayoutAddress(ALICE.into()),
        worker: WorkerName("rig".into()),
        time_ms: 1_700_000_000_010,
    }));
    events.push(Event::BlockMatured(BlockMatured {
        block_id,
        height: 101,
    }));
    for e in events {
        ledger.append_blocking(e).unwrap();
    }
    ledger.close_blocking();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn balances_json(dir: &Path) -> Value {
    let out = obtc_pool(&[
        "ledger",
        "balances",
        "--data",
        dir.to_str().unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn credits_split_exactly_by_weight_and_sum_to_reward_minus_fee() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let report = balances_json(dir.path());

    let fee = REWARD * u64::from(FEE_BPS) / 10_000;
    assert_eq!(fee, 50_000_000);
    // 4 950 000 000 split 3 : 4 is 2 121 428 571.43 : 2 828 571 428.57; the leftover satoshi
    // goes to the larger remainder (Bob's).
    let (alice, bob) = (2_121_428_571u64, 2_828_571_429u64);
    assert_eq!(alice + bob, REWARD - fee);
    assert!((alice * 7).abs_diff((REWARD - fee) * 3) < 7);
    assert!((bob * 7).abs_diff((REWARD - fee) * 4) < 7);

    assert_eq!(report["records"], 7);
    assert_eq!(report["head"]["seq"], 6);
    let history = report["rule_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["seq"], 0);
    let recorded: PayoutRule = serde_json::from_value(history[0]["rule"].clone()).unwrap();
    assert_eq!(recorded, rule());

    let blocks = report["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    assert_eq!(block["height"], 101);
    assert_eq!(block["block_id"], BlockId([7; 32]).to_string());
    assert_eq!(block["status"], "Matured");
    assert_eq!(block["reward"], REWARD);
    assert_eq!(block["fee"], fee);
    assert_eq!(block["fee_address"], FEE);
    let credits = block["credits"].as_object().unwrap();
    assert_eq!(credits.len(), 2, "{credits:?}");
    assert_eq!(credits[ALICE], alice);
    assert_eq!(credits[BOB], bob);

    let balances = report["balances"].as_object().unwrap();
    assert_eq!(balances.len(), 3, "{balances:?}");
    for (address, payable) in [(ALICE, alice), (BOB, bob), (FEE, fee)] {
        let b = &balances[address];
        assert_eq!(b["payable"], payable, "{address}");
        for field in ["immature", "in_flight", "paid", "network_fees", "debt"] {
            assert_eq!(b[field], 0, "{address} {field}");
        }
    }
    let totals = &report["totals"];
    assert_eq!(totals["rewards"], REWARD);
    assert_eq!(totals["pool_fees"], fee);
    assert_eq!(totals["balances_sum"], REWARD);
    assert_eq!(totals["conserved"], true);
    assert_eq!(totals["shares"], 4);
    assert_eq!(totals["blocks_matured"], 1);
    assert!(report["anomalies"].as_array().unwrap().is_empty());
}

#[test]
fn text_report_shows_rule_credits_balances_and_conservation() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let d = dir.path().to_str().unwrap();
    let out = obtc_pool(&["ledger", "balances", "--data", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    for expected in [
        "7 records, head seq 6",
        "hash chain verified",
        &format!("seq 0: PPLNS window 2/1 x block work, pool fee 100 bps to {FEE}, network fees paid by pool"),
        "height 101 block 0707070707070707070707070707070707070707070707070707070707070707 matured (PPLNS 2/1)",
        "reward    5000000000 sat (50.00000000)",
        &format!("pool fee  50000000 sat (0.50000000) to {FEE}"),
        "credits   4950000000 sat (49.50000000) over 2 addresses",
        &format!("{ALICE}  2121428571 sat (21.21428571)"),
        &format!("{BOB}  2828571429 sat (28.28571429)"),
        "payable      2828571429 sat (28.28571429)",
        "conservation: immature + payable + in flight + paid + network fees - debt = 5000000000 sat == rewards 5000000000 sat: OK",
        "anomalies: none",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    // Deterministic: a second replay prints the same bytes.
    let again = obtc_pool(&["ledger", "balances", "--data", d]);
    assert_eq!(again.stdout, out.stdout);
}

#[test]
fn tampered_ledger_is_refused_naming_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    // Records were appended one per batch, so batch key 5 holds the BlockFound: make its
    // reward a satoshi larger (the stored hash no longer matches).
    edit_batch(dir.path(), 5, |records| {
        let event = &mut records[0].event;
        let reward = REWARD.to_le_bytes();
        let at = event
            .windows(8)
            .position(|w| w == reward)
            .expect("reward bytes in the encoded BlockFound");
        event[at] ^= 1;
    });
    let out = obtc_pool(&[
        "ledger",
        "balances",
        "--data",
        dir.path().to_str().unwrap(),
        "--json",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        !out.status.success(),
        "reported on a tampered ledger: {stdout}"
    );
    assert!(stdout.contains("FAILED at record 5"), "{stdout}");
    assert!(stdout.contains("refusing to report balances"), "{stdout}");
    assert!(!stdout.contains("credits"), "{stdout}");
    assert!(text(&out.stderr).contains("first bad sequence number: 5"));
}

#[test]
fn missing_ledger_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-ledger-here");
    let out = obtc_pool(&["ledger", "balances", "--data", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no ledger at"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).is_empty());
    assert!(!missing.exists());
}

#[test]
fn empty_ledger_reports_the_default_rule_and_nothing_owed() {
    let dir = tempfile::tempdir().unwrap();
    Ledger::open(dir.path()).unwrap().close_blocking();
    let report = balances_json(dir.path());
    assert_eq!(report["records"], 0);
    assert!(report["head"].is_null());
    assert!(report["rule_history"].as_array().unwrap().is_empty());
    let in_force: PayoutRule = serde_json::from_value(report["rule_in_force"].clone()).unwrap();
    assert_eq!(in_force, projections::default_rule());
    assert!(report["balances"].as_object().unwrap().is_empty());
    assert_eq!(report["totals"]["conserved"], true);
}

#[test]
fn ledger_held_by_a_running_pool_is_reported_as_in_use() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let running = Ledger::open(dir.path()).unwrap();
    let out = obtc_pool(&["ledger", "balances", "--data", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is in use (is the pool running?)"),
        "{}",
        text(&out.stderr)
    );
    running.close_blocking();
}
