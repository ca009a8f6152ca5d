//! Sealed archives: `obtc-pool ledger archive` on a stopped pool and through a running pool's
//! JSON-RPC, then `ledger verify` and `ledger balances` over the archives and the live ledger
//! (the same numbers as the ledger before anything was archived); tampered archives (a record,
//! the snapshot, a missing one, the wrong order) are caught; the safe cut never archives an
//! immature block's records or an open payment's; a restart after a drop starts from the
//! snapshot with the same state.

mod common;
mod ledger_support;

use common::nodes::free_port;
use common::pool::PoolProcess;
use common::rpc::post;
use ledger::Ledger;
use ledger_support::obtc_pool_with_env;
use pool_core::event::{
    BlockFound, BlockMatured, NetworkFeePayer, PaymentConfirmed, PaymentOutput, PaymentPrepared,
    PaymentSent, PayoutAddress, PayoutRule, PayoutScheme, ShareAccepted, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const POOL: &str = "n3GNqMveyvaPvUbH469vDRadqpJMPc84JA";
/// Rounds of the fixture: each is shares, a block, its maturity (one append each).
const ROUNDS: u64 = 6;
const SHARES_PER_ROUND: u64 = 20;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn share(address: &str, n: u64) -> Event {
    let target = Target::from_compact(0x1d00ffff).unwrap();
    Event::ShareAccepted(ShareAccepted {
        address: PayoutAddress(address.into()),
        worker: WorkerName(format!("rig{}", n % 3)),
        share_target: target,
        weight: target.work(),
        job_id: n,
        height: 101,
        // The blocks' network target (a real share carries its job's), so the horizon's estimate of
        // the next window holds.
        network_target: Target::from_compact(0x1c0fffff).unwrap(),
        time_ms: 1_700_000_000_000 + n,
    })
}

/// A share whose job had the easiest network target: the horizon's estimate of the next
/// block's window then reaches back one share, so only blocks and payments hold the cut.
fn easy_share(address: &str, n: u64) -> Event {
    match share(address, n) {
        Event::ShareAccepted(mut s) => {
            s.network_target = Target::from_compact(0x207fffff).unwrap();
            Event::ShareAccepted(s)
        }
        _ => unreachable!(),
    }
}

fn found(id: u8, finder: &str) -> Event {
    Event::BlockFound(BlockFound {
        height: 100 + u64::from(id),
        block_id: BlockId([id; 32]),
        reward: Sats(50_000_000 + u64::from(id)),
        // Work ~2^36: the 2x PPLNS window spans ~32 shares of work 2^32, across the cuts.
        network_target: Target::from_compact(0x1c0fffff).unwrap(),
        finder: PayoutAddress(finder.into()),
        worker: WorkerName("rig".into()),
        time_ms: 1_700_000_000_000 + u64::from(id),
    })
}

fn matured(id: u8) -> Event {
    Event::BlockMatured(BlockMatured {
        block_id: BlockId([id; 32]),
        height: 100 + u64::from(id),
    })
}

fn rule() -> PayoutRule {
    PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 2,
            window_denominator: 1,
        },
        fee_bps: 100,
        fee_address: PayoutAddress(POOL.into()),
        network_fee_payer: NetworkFeePayer::Pool,
    }
}

/// The fixture: a rule, `ROUNDS` rounds of shares of both addresses with a found and matured
/// block each, a paid payment (prepared, sent, confirmed) after the third round; then
/// `tail` events after it (appended one value at a time). Returns the seq where the tail
/// starts.
fn build(dir: &Path, tail: Vec<Event>) -> u64 {
    let ledger = Ledger::open(dir).unwrap();
    ledger
        .append_blocking(Event::PayoutRuleSet(rule()))
        .unwrap();
    let mut n = 0;
    for round in 0..ROUNDS {
        let shares = (0..SHARES_PER_ROUND)
            .map(|i| {
                n += 1;
                share(if i % 3 == 0 { BOB } else { ALICE }, n)
            })
            .collect();
        ledger.append_batch_blocking(shares).unwrap();
        let id = round as u8 + 1;
        ledger.append_blocking(found(id, ALICE)).unwrap();
        ledger.append_blocking(matured(id)).unwrap();
        if round == 2 {
            let txid = BlockId([0xee; 32]);
            ledger
                .append_blocking(Event::PaymentPrepared(PaymentPrepared {
                    payment_id: 0,
                    outputs: vec![PaymentOutput {
                        address: PayoutAddress(ALICE.into()),
                        amount: Sats(1_000_000),
                    }],
                }))
                .unwrap();
            ledger
                .append_blocking(Event::PaymentSent(PaymentSent {
                    payment_id: 0,
                    txid,
                    network_fee: Sats(200),
                }))
                .unwrap();
            ledger
                .append_blocking(Event::PaymentConfirmed(PaymentConfirmed {
                    payment_id: 0,
                    txid,
                    height: 300,
                }))
                .unwrap();
        }
    }
    let start = ledger.head().unwrap().seq + 1;
    for event in tail {
        ledger.append_blocking(event).unwrap();
    }
    ledger.close_blocking();
    start
}

/// The live projection's share mark interval in these tests (the default, 65,536 shares, would
/// keep the horizon at the first share of ledgers this small).
const MARK_EVERY: (&str, &str) = ("OBTC_TEST_MARK_EVERY", "4");

fn run(args: &[&str]) -> (bool, String) {
    let out = obtc_pool_with_env(args, &[MARK_EVERY]);
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.success(), all)
}

fn archive(dir: &Path, before: u64, out: &Path) -> (bool, String) {
    run(&[
        "ledger",
        "archive",
        "--data",
        dir.to_str().unwrap(),
        "--before",
        &before.to_string(),
        "--out",
        out.to_str().unwrap(),
        "--drop",
    ])
}

fn with_archives<'a>(mut args: Vec<&'a str>, archives: &'a [PathBuf]) -> Vec<&'a str> {
    for a in archives {
        args.push("--archive");
        args.push(a.to_str().unwrap());
    }
    args
}

fn balances(dir: &Path, archives: &[PathBuf]) -> (bool, String) {
    let d = dir.to_str().unwrap();
    run(&with_archives(
        vec!["ledger", "balances", "--data", d, "--json"],
        archives,
    ))
}

fn verify(dir: &Path, archives: &[PathBuf]) -> (bool, String) {
    let d = dir.to_str().unwrap();
    run(&with_archives(
        vec!["ledger", "verify", "--data", d],
        archives,
    ))
}

/// The `cut N` an archive command reports.
fn cut_of(output: &str) -> u64 {
    let at = output.find(" cut ").expect("a cut in the output");
    output[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// A ledger archived twice (and dropped) and the same ledger untouched.
struct Archived {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    whole: PathBuf,
    archives: Vec<PathBuf>,
    cuts: Vec<u64>,
}

fn archived() -> Archived {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    let whole = tmp.path().join("whole");
    build(&dir, Vec::new());
    common::copy_dir(&dir, &whole);
    let archives = vec![tmp.path().join("a1.archive"), tmp.path().join("a2.archive")];
    let mut cuts = Vec::new();
    for (before, out) in [40, 110].iter().zip(&archives) {
        let (ok, said) = archive(&dir, *before, out);
        assert!(ok, "{said}");
        assert!(
            said.contains("dropped: the ledger now starts at record"),
            "{said}"
        );
        cuts.push(cut_of(&said));
    }
    Archived {
        _tmp: tmp,
        dir,
        whole,
        archives,
        cuts,
    }
}

#[test]
fn archives_and_the_live_ledger_verify_and_audit_to_the_unarchived_numbers() {
    let a = archived();
    assert!(a.cuts[0] > 0 && a.cuts[0] <= 40 && a.cuts[1] > a.cuts[0] && a.cuts[1] <= 110);
    let live = Ledger::open_read_only(&a.dir).unwrap();
    assert_eq!(live.base().unwrap().unwrap().seq, a.cuts[1]);
    assert!(live.read_from(0).next().unwrap().is_err());
    drop(live);

    let (ok, said) = verify(&a.dir, &a.archives);
    assert!(ok, "{said}");
    assert!(said.contains("joined onto 2 archive(s)"), "{said}");
    // The live ledger alone verifies from its base, and says the rest is archived.
    let (ok, said) = verify(&a.dir, &[]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!("from its base {}", a.cuts[1])),
        "{said}"
    );

    let (ok, expected) = balances(&a.whole, &[]);
    assert!(ok, "{expected}");
    let (ok, got) = balances(&a.dir, &a.archives);
    assert!(ok, "{got}");
    let expected: Value = serde_json::from_str(&expected).unwrap();
    let got: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(got, expected);
    assert!(expected["totals"]["conserved"].as_bool().unwrap());
    // Both addresses were credited (the windows reach back across the cuts).
    for address in [ALICE, BOB] {
        assert!(
            expected["balances"][address]["payable"].as_u64().unwrap() > 0,
            "{expected}"
        );
    }
    assert_eq!(
        expected["blocks"].as_array().unwrap().len(),
        ROUNDS as usize
    );
    // Without the archives there is nothing to audit from.
    let (ok, said) = balances(&a.dir, &[]);
    assert!(!ok, "{said}");
    assert!(said.contains("an archive is missing"), "{said}");
}

/// An archive's parts, to rewrite it consistently (checksum recomputed) as a forger would.
struct Parts {
    header: Vec<u8>,
    payload: Vec<u8>,
}

const HEADER_LEN: usize = ledger::archive::HEADER_LEN;

fn parts(path: &Path) -> Parts {
    let bytes = std::fs::read(path).unwrap();
    let payload = zstd::decode_all(&bytes[HEADER_LEN..bytes.len() - 32]).unwrap();
    Parts {
        header: bytes[..HEADER_LEN].to_vec(),
        payload,
    }
}

fn write_parts(path: &Path, p: &Parts) {
    let mut out = p.header.clone();
    out.extend(zstd::encode_all(&p.payload[..], 3).unwrap());
    let digest: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&digest);
    std::fs::write(path, out).unwrap();
}

fn snapshot_len(p: &Parts) -> usize {
    u64::from_be_bytes(p.header[97..105].try_into().unwrap()) as usize
}

#[test]
fn tampered_missing_and_reordered_archives_are_caught() {
    let a = archived();
    let first = &a.archives[0];
    let good = std::fs::read(first).unwrap();
    let both = |dir: &Path| verify(dir, &a.archives);
    let audit = |dir: &Path| balances(dir, &a.archives);
    let refused = |(ok, said): (bool, String), says: &str| {
        assert!(!ok, "accepted: {said}");
        assert!(said.contains(says), "expected {says:?} in: {said}");
    };

    // A flipped byte anywhere (here: in the compressed payload).
    let mut bad = good.clone();
    bad[HEADER_LEN + 40] ^= 0x10;
    std::fs::write(first, &bad).unwrap();
    refused(both(&a.dir), "verification FAILED");
    refused(audit(&a.dir), "verification FAILED");

    // A record byte changed and the file's checksum recomputed: the chain hash catches it.
    let mut p = parts(first);
    // The first value: key, length, batch header, record header, then the event's bytes.
    p.payload[8 + 4 + 5 + 22 + 3] ^= 0x01;
    write_parts(first, &p);
    refused(both(&a.dir), "hash mismatch");
    refused(audit(&a.dir), "hash mismatch");

    // A snapshot byte changed, checksum recomputed: the snapshot's own checksum catches it.
    let mut p = parts(first);
    std::fs::write(first, &good).unwrap();
    let p_good = parts(first);
    let at = p.payload.len() - snapshot_len(&p) + 60;
    p.payload = p_good.payload.clone();
    p.payload[at] ^= 0x01;
    write_parts(first, &p);
    refused(both(&a.dir), "snapshot");

    // A forged but well-formed snapshot (another state framed as the one at the cut): the audit
    // replays the records and finds the snapshot is not their state.
    let cut = a.cuts[0];
    let ledger = Ledger::open_read_only(&a.whole).unwrap();
    let config = projections::ProjectionConfig::default();
    let mut other = projections::Projection::new(config);
    let mut last = None;
    for r in ledger.read_range(0, cut) {
        let r = r.unwrap();
        // Leave one share out of the forged state.
        let event = if r.seq == 5 {
            Event::PayoutRuleSet(rule())
        } else {
            r.event.clone()
        };
        other.apply(r.seq, &event).unwrap();
        last = Some((r.seq, r.hash));
    }
    drop(ledger);
    let (seq, hash) = last.unwrap();
    let image = obtc_pool::live::snapshot::image(
        &obtc_pool::live::snapshot::SnapshotHeader {
            seq,
            hash,
            prepared_times: Default::default(),
        },
        &other.snapshot().unwrap(),
    );
    let mut p = parts(first);
    p = Parts {
        payload: p_good.payload[..p_good.payload.len() - snapshot_len(&p_good)].to_vec(),
        header: std::mem::take(&mut p.header),
    };
    p.payload.extend_from_slice(&image);
    p.header[97..105].copy_from_slice(&(image.len() as u64).to_be_bytes());
    write_parts(first, &p);
    assert!(both(&a.dir).0, "the forged snapshot is well formed");
    refused(
        audit(&a.dir),
        "its snapshot is not the state its records replay to",
    );
    std::fs::write(first, &good).unwrap();

    // A missing archive, and the right archives in the wrong order.
    refused(
        verify(&a.dir, &a.archives[1..]),
        "an archive is missing or out of order",
    );
    refused(
        balances(&a.dir, &a.archives[1..]),
        "an archive is missing or out of order",
    );
    refused(verify(&a.dir, &a.archives[..1]), "an archive is missing");
    let reversed = vec![a.archives[1].clone(), a.archives[0].clone()];
    refused(verify(&a.dir, &reversed), "out of order");
    refused(balances(&a.dir, &reversed), "out of order");
    // Restored, everything verifies again.
    assert!(both(&a.dir).0);
}

fn prepared(id: u64) -> Event {
    Event::PaymentPrepared(PaymentPrepared {
        payment_id: id,
        outputs: vec![PaymentOutput {
            address: PayoutAddress(BOB.into()),
            amount: Sats(1_000_000),
        }],
    })
}

#[test]
fn the_safe_cut_keeps_an_open_payment_and_an_immature_block() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ledger");
    // After the fixture: shares, an open payment, shares, an immature block, shares.
    let mut tail: Vec<Event> = (0..5).map(|n| easy_share(ALICE, 1_000 + n)).collect();
    tail.push(prepared(1));
    tail.extend((0..5).map(|n| easy_share(BOB, 2_000 + n)));
    tail.push(found(50, BOB));
    tail.extend((0..5).map(|n| easy_share(ALICE, 3_000 + n)));
    let start = build(&dir, tail);
    let open_payment = start + 5;
    let immature = start + 11;
    let out = tmp.path().join("a.archive");
    let (ok, said) = archive(&dir, u64::MAX, &out);
    assert!(ok, "{said}");
    let cut = cut_of(&said);
    assert!(said.contains(&format!("horizon {open_payment}")), "{said}");
    assert!(cut <= open_payment && cut > 0, "{said}");
    // Everything from the cut on is still in the live ledger.
    let check_kept = |cut: u64| {
        let ledger = Ledger::open_read_only(&dir).unwrap();
        assert_eq!(ledger.base().unwrap().unwrap().seq, cut);
        let kept: Vec<_> = ledger.read_from(cut).map(|r| r.unwrap().seq).collect();
        assert_eq!(kept.first(), Some(&cut));
        assert_eq!(*kept.last().unwrap(), ledger.head().unwrap().seq);
    };
    check_kept(cut);
    // Nothing more can go while that payment is open.
    let (ok, said) = archive(&dir, u64::MAX, &tmp.path().join("b.archive"));
    assert!(!ok && said.contains("nothing to archive"), "{said}");
    // The payment completes: now the immature block holds the cut.
    let ledger = Ledger::open(&dir).unwrap();
    let txid = BlockId([0xdd; 32]);
    ledger
        .append_blocking(Event::PaymentSent(PaymentSent {
            payment_id: 1,
            txid,
            network_fee: Sats(100),
        }))
        .unwrap();
    ledger
        .append_blocking(Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: 1,
            txid,
            height: 400,
        }))
        .unwrap();
    ledger.close_blocking();
    let (ok, said) = archive(&dir, u64::MAX, &tmp.path().join("b.archive"));
    assert!(ok, "{said}");
    let second = cut_of(&said);
    assert!(said.contains(&format!("horizon {immature}")), "{said}");
    assert!(second > cut && second <= immature, "{said}");
    check_kept(second);
    // An existing file is never overwritten.
    let (ok, said) = archive(&dir, u64::MAX, &out);
    assert!(!ok && said.contains("never overwritten"), "{said}");
    let archives = vec![out, tmp.path().join("b.archive")];
    let (ok, said) = verify(&dir, &archives);
    assert!(ok, "{said}");
}

#[test]
fn a_restart_after_a_drop_starts_from_the_snapshot_with_the_same_state() {
    let a = archived();
    let chain = pool_core::chain::Chain::BsvRegtest.params();
    let state = |dir: &Path| {
        let ledger = Ledger::open(dir).unwrap();
        let live = obtc_pool::live::Live::open(
            ledger.clone(),
            chain,
            obtc_pool::live::SnapshotPolicy::default(),
        )
        .unwrap();
        // What the pool serves and pays from (the projections' bytes differ: the archive
        // command ran with the tests' mark interval, this process with the default).
        let views = {
            let p = &live.read().projection;
            format!(
                "{:?}",
                (
                    p.next_seq(),
                    p.blocks(),
                    p.balances(),
                    p.pool_totals(),
                    p.payments(),
                    p.open_candidates(),
                    p.anomalies(),
                    p.share_count(),
                )
            )
        };
        drop(live);
        ledger.close_blocking();
        views
    };
    let whole = state(&a.whole);
    assert_eq!(state(&a.dir), whole);
    // Without the live snapshot, the base snapshot and the tail give the same state.
    std::fs::remove_file(a.dir.join("live-projection.bin")).unwrap();
    assert_eq!(state(&a.dir), whole);
    assert!(a
        .dir
        .join(format!("archive-base.{}.bin", a.cuts[1]))
        .is_file());
    assert!(!a
        .dir
        .join(format!("archive-base.{}.bin", a.cuts[0]))
        .exists());
}

// ---- the running pool ----

fn pool_config(stratum: SocketAddr, rpc: SocketAddr, ledger_extra: &str) -> String {
    format!(
        r#"[chain]
preset = "bsv-regtest"
[node]
kind = "synthetic"
[stratum]
listen = "{stratum}"
[pool]
payout_address = "{POOL}"
[payout]
scheme = "pplns"
fee_bps = 100
[ledger]
data_dir = "ledger"
{ledger_extra}
[rpc]
listen = "{rpc}"
"#
    )
}

#[test]
fn the_running_pool_archives_through_the_rpc_with_the_token() {
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut process = PoolProcess::unstarted(|stratum, _| pool_config(stratum, rpc, ""));
    let dir = process.ledger_dir();
    build(&dir, Vec::new());
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    common::copy_dir(&dir, &whole);
    process.env = vec![(MARK_EVERY.0.into(), MARK_EVERY.1.into())];
    process.spawn();
    let token_file = dir.join("rpc.token");
    let token = std::fs::read_to_string(&token_file).unwrap();
    let out1 = tmp.path().join("r1.archive");
    let call = |token: Option<&str>, before: u64, out: &Path| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ledger_archive",
            "params": [{"before": before, "out": out.to_str().unwrap(), "drop": true}]});
        post(rpc, &body.to_string(), token)
    };
    let refused = call(None, 25, &out1);
    assert_eq!(
        refused["error"]["code"],
        payout::api::ERR_UNAUTHORIZED,
        "{refused}"
    );
    assert!(!out1.exists());
    let reply = call(Some(token.trim()), 25, &out1);
    let result = &reply["result"];
    assert_eq!(result["dropped"], true, "{reply}");
    let cut = result["cut"].as_u64().unwrap();
    assert!(cut > 0 && cut <= 25, "{reply}");
    assert_eq!(result["base"], cut);
    // The CLI's way to a running pool.
    let out2 = tmp.path().join("r2.archive");
    let (ok, said) = run(&[
        "ledger",
        "archive",
        "--rpc",
        &format!("http://{rpc}"),
        "--token-file",
        token_file.to_str().unwrap(),
        "--before",
        "120",
        "--out",
        out2.to_str().unwrap(),
        "--drop",
    ]);
    assert!(ok, "{said}");
    assert!(
        said.contains("dropped: the ledger now starts at record"),
        "{said}"
    );
    // Still serving from the live projection.
    let status = post(
        rpc,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "pool_status", "params": []}).to_string(),
        None,
    );
    assert!(
        status["result"]["ledger"]["seq"].as_u64().is_some(),
        "{status}"
    );
    assert!(process.terminate().success());

    let archives = vec![out1, out2];
    let (ok, said) = verify(&dir, &archives);
    assert!(ok, "{said}");
    let (ok, expected) = balances(&whole, &[]);
    assert!(ok, "{expected}");
    let (ok, got) = balances(&dir, &archives);
    assert!(ok, "{got}");
    let mut expected: Value = serde_json::from_str(&expected).unwrap();
    let mut got: Value = serde_json::from_str(&got).unwrap();
    // The config's rule is the ledger's: the pool recorded nothing of its own but its job
    // (JobCreated: one record more, which moves the head and nothing else).
    let (head, whole_head) = (got["head"]["seq"].clone(), expected["head"]["seq"].clone());
    assert_eq!(head.as_u64(), whole_head.as_u64().map(|s| s + 1), "{got}");
    let (records, whole_records) = (got["records"].clone(), expected["records"].clone());
    assert_eq!(records.as_u64(), whole_records.as_u64().map(|n| n + 1));
    for report in [&mut got, &mut expected] {
        let report = report.as_object_mut().unwrap();
        report.remove("head");
        report.remove("records");
    }
    assert_eq!(got, expected);

    // A restart after the drops starts from the snapshot.
    process.env = vec![(MARK_EVERY.0.into(), MARK_EVERY.1.into())];
    process.spawn();
    assert!(process.terminate().success());
    let log = process.log();
    assert_eq!(
        log.matches("live projection ready from the snapshot")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn retention_archives_the_running_pools_old_records_on_its_own() {
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut process = PoolProcess::unstarted(|stratum, _| {
        pool_config(
            stratum,
            rpc,
            "archive_dir = \"archives\"\nretain_records = 20\narchive_check_secs = 1",
        )
    });
    let dir = process.ledger_dir();
    build(&dir, Vec::new());
    let archive_dir = dir.parent().unwrap().join("archives");
    process.env = vec![(MARK_EVERY.0.into(), MARK_EVERY.1.into())];
    process.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !process.log().contains("ledger archive sealed") {
        assert!(
            std::time::Instant::now() < deadline,
            "no archive within 30 s:\n{}",
            process.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(process.terminate().success());
    let mut archives: Vec<PathBuf> = std::fs::read_dir(&archive_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    archives.sort();
    assert!(!archives.is_empty());
    let ledger = Ledger::open_read_only(&dir).unwrap();
    assert!(ledger.base().unwrap().is_some());
    drop(ledger);
    let (ok, said) = verify(&dir, &archives);
    assert!(ok, "{said}");
    let (ok, said) = balances(&dir, &archives);
    assert!(ok, "{said}");
}
