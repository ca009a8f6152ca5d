//! The audit's work, money and anchor checks on a ledger the real pool wrote while a CPU miner
//! mined real blocks through it on the regtest node pair (one pair, one pool run, shared by
//! every test; the tests run one at a time). Each tampering test edits a copy of the records
//! and rewrites history as a forger would (the original times kept, the hash chain recomputed
//! from the first edit on, so an unedited prefix keeps its hashes), then expects the audit to
//! fail and name the record or block: first through the check modules directly, then through
//! the command an auditor runs (`obtc-pool ledger export`, `obtc-pool audit --export/--data
//! --node --check-anchors`, its verdict the report's last line).

mod common;

use common::nodes::{nodes, RPC_PASSWORD, RPC_USER};
use common::pool::{PoolOptions, PoolProcess};
use common::stratum_client::StratumClient;
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint};
use obtc_pool::audit::anchors::{self, AnchorFacts, AnchorReport};
use obtc_pool::audit::money::{self, MoneyFacts, MoneyReport};
use obtc_pool::audit::work::{WorkCheck, WorkReport};
use obtc_pool::audit::{Finding, PoolIdentity};
use pool_core::chain::ChainParams;
use pool_core::event::{
    NetworkFeePayer, PaymentConfirmed, PaymentOutput, PaymentPrepared, PaymentSent, PayoutAddress,
    PayoutRule, PayoutScheme,
};
use pool_core::{BlockId, Event, Sats};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

const TAG: &str = "/obtc-pool-test/";
/// Blocks the fixture mines through the pool.
const BLOCKS: u64 = 3;

/// One record as the checks see it.
#[derive(Clone, Debug)]
struct Rec {
    seq: u64,
    version: u16,
    time_ms: u64,
    hash: [u8; 32],
    event: Event,
}

struct Mined {
    payout: String,
    records: Vec<Rec>,
    /// A copy of the pool's ledger directory.
    ledger: tempfile::TempDir,
}

/// The pool's ledger after mining [`BLOCKS`] blocks with many shares each.
fn mined() -> &'static Mined {
    static MINED: OnceLock<Mined> = OnceLock::new();
    MINED.get_or_init(|| {
        let node = &nodes().node1;
        let payout = node.new_address();
        let mut options = PoolOptions::new(&payout);
        // Shares at ~43 hashes, blocks at ~4300: some tens of shares per block.
        options.pool_block_difficulty = Some(1e-6);
        options.start_difficulty = 1e-8;
        options.min_difficulty = 1e-8;
        options.max_difficulty = 1e-8;
        let mut pool = PoolProcess::start(&options);
        let user = format!("{}.rig", node.new_address());
        let (mut client, _) = StratumClient::authorized(pool.stratum, &user);
        let block_target = pool_core::Target::from_difficulty(1e-6).unwrap();
        let mut prev = client.latest_job().unwrap().prev_hash;
        let (mut blocks, mut attempts) = (0u64, 0u64);
        while blocks < BLOCKS && attempts < 5_000 {
            attempts += 1;
            let job = client.latest_job().unwrap();
            let s = client.grind(&job, None, None, 1_000_000);
            match client.submit(&user, &s) {
                Ok(v) => assert_eq!(v, serde_json::json!(true)),
                Err(e) => assert_eq!(e.code, 21, "{e:?}"), // stale after our block
            }
            if block_target.is_met_by(&s.hash) {
                let next = client
                    .wait_for_new_block(&prev, Duration::from_secs(30))
                    .unwrap_or_else(|| panic!("no job after a block:\n{}", pool.log()));
                prev = next.prev_hash;
                blocks += 1;
            }
        }
        assert_eq!(blocks, BLOCKS, "after {attempts} shares");
        drop(client);
        assert!(pool.terminate().success(), "{}", pool.log());
        let ledger = tempfile::tempdir().unwrap();
        common::copy_dir(&pool.ledger_dir(), ledger.path());
        let records = read_records(ledger.path());
        Mined {
            payout,
            records,
            ledger,
        }
    })
}

fn read_records(dir: &Path) -> Vec<Rec> {
    let ledger = ledger::Ledger::open_read_only(dir).expect("open ledger");
    ledger.verify().expect("ledger verifies");
    ledger
        .read_from(0)
        .map(|r| {
            let r = r.expect("record");
            Rec {
                seq: r.seq,
                version: r.version,
                time_ms: r.time_ms,
                hash: r.hash,
                event: r.event,
            }
        })
        .collect()
}

/// A ledger directory written afresh from `events` (a valid chain with new hashes): history
/// rewritten.
fn rewritten_dir(events: Vec<Event>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(dir.path()).unwrap();
    ledger.append_batch_blocking(events).unwrap();
    ledger.close_blocking();
    dir
}

/// The records of a ledger rewritten as `events`, as a forger would: record `i` keeps the
/// original record `i`'s version and time, and the hash chain is computed afresh
/// (`SHA-256(previous hash | seq | version | time_ms | event length | event)`), so an unedited
/// prefix keeps its hashes and everything from the first edit on is chained anew.
fn rewritten(events: Vec<Event>) -> Vec<Rec> {
    let original = &mined().records;
    let mut prev = [0u8; 32];
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let like = &original[i.min(original.len() - 1)];
            let seq = i as u64;
            let bytes = canonical_bytes(seq, like.version, like.time_ms, &event);
            let hash = ledger::record::chain_hash(&prev, &bytes);
            prev = hash;
            Rec {
                seq,
                version: like.version,
                time_ms: like.time_ms,
                hash,
                event,
            }
        })
        .collect()
}

fn canonical_bytes(seq: u64, version: u16, time_ms: u64, event: &Event) -> Vec<u8> {
    let encoded = ledger::record::encode_event(event).unwrap();
    let mut out = Vec::new();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    out.extend_from_slice(&encoded);
    out
}

/// `records` as an export file (`pool_core::export`'s lines).
fn write_export(records: &[Rec]) -> tempfile::TempPath {
    use pool_core::export::{
        ExportHead, ExportHeader, ExportRecord, EXPORT_FORMAT, EXPORT_VERSION,
    };
    let header = ExportHeader {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        first_seq: 0,
        prev_hash: hex::encode([0u8; 32]),
        records: records.len() as u64,
        last: records.last().map(|r| ExportHead {
            seq: r.seq,
            hash: hex::encode(r.hash),
        }),
    };
    let mut text = serde_json::to_string(&header).unwrap();
    text.push('\n');
    for r in records {
        let line = ExportRecord {
            seq: r.seq,
            version: r.version,
            time_ms: r.time_ms,
            kind: r.event.kind().into(),
            event: serde_json::to_value(&r.event).unwrap(),
            bytes: hex::encode(canonical_bytes(r.seq, r.version, r.time_ms, &r.event)),
            hash: hex::encode(r.hash),
        };
        text.push_str(&serde_json::to_string(&line).unwrap());
        text.push('\n');
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file.into_temp_path()
}

fn events(records: &[Rec]) -> Vec<Event> {
    records.iter().map(|r| r.event.clone()).collect()
}

fn identity(payout: &str) -> PoolIdentity {
    let chain = ChainParams::by_name("bsv-regtest").unwrap();
    PoolIdentity {
        chain,
        address: payout.to_owned(),
        payout_script: pool_core::parse_payout_address(payout, chain)
            .unwrap()
            .script_pubkey,
        tag: TAG.as_bytes().to_vec(),
    }
}

fn node_client() -> NodeClient {
    NodeClient::new(NodeEndpoint {
        url: nodes().node1.rpc_url(),
        auth: NodeAuth::UserPassword {
            user: RPC_USER.into(),
            password: RPC_PASSWORD.into(),
        },
        timeout: Duration::from_secs(30),
        longpoll_timeout: Duration::from_secs(60),
    })
}

struct Audit {
    work: WorkReport,
    money: MoneyReport,
    anchors: AnchorReport,
}

impl Audit {
    fn findings(&self) -> Vec<&Finding> {
        self.work
            .findings
            .iter()
            .chain(&self.money.findings)
            .chain(&self.anchors.findings)
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        self.findings().iter().map(|f| f.to_string()).collect()
    }
}

/// The three checks over `records`, in one pass, then against node 1.
fn audit(records: &[Rec], payout: &str) -> Audit {
    let pool = identity(payout);
    let mut work = WorkCheck::new(&pool);
    let mut money_facts = MoneyFacts::default();
    let mut anchor_facts = AnchorFacts::default();
    for r in records {
        work.apply(r.seq, &r.event);
        money_facts.apply(r.seq, &r.event);
        anchor_facts.apply(r.seq, &r.hash, &r.event);
    }
    let work = work.finish();
    let node = node_client();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (money, anchors) = rt.block_on(async {
        let money = money::check(&node, &pool, &money_facts, &work.prev_hashes)
            .await
            .expect("money check runs");
        let anchors = anchors::check(&node, &pool, &anchor_facts)
            .await
            .expect("anchor check runs");
        (money, anchors)
    });
    Audit {
        work,
        money,
        anchors,
    }
}

fn found_blocks(records: &[Rec]) -> Vec<(u64, pool_core::event::BlockFound)> {
    records
        .iter()
        .filter_map(|r| match &r.event {
            Event::BlockFound(b) => Some((r.seq, b.clone())),
            _ => None,
        })
        .collect()
}

/// The anchor in the coinbase of the chain's block `id`.
fn chain_anchor(id: &BlockId) -> Option<pool_core::event::LedgerAnchor> {
    let hex_block = nodes().node1.cli(&["getblock", &id.to_display_hex(), "0"]);
    let raw = hex::decode(hex_block.as_str().unwrap()).unwrap();
    let block: bitcoin::Block = bitcoin::consensus::deserialize(&raw).unwrap();
    block.txdata[0]
        .output
        .iter()
        .find_map(|o| pool_core::anchor::parse_anchor_script(o.script_pubkey.as_bytes()))
}

#[test]
fn the_pools_own_ledger_passes_every_check() {
    let _serial = common::serial();
    let m = mined();
    let a = audit(&m.records, &m.payout);
    assert_eq!(a.lines(), Vec::<String>::new());
    // The forger's rechaining reproduces the pool's hashes when nothing is edited.
    let again = rewritten(events(&m.records));
    let hashes = |r: &[Rec]| r.iter().map(|r| r.hash).collect::<Vec<_>>();
    assert_eq!(hashes(&again), hashes(&m.records));
    assert!(a.work.jobs >= BLOCKS, "{:?}", a.work);
    assert!(a.work.shares_checked > BLOCKS, "{:?}", a.work);
    assert_eq!(a.work.shares_without_work, 0);
    assert_eq!(a.money.blocks_checked, BLOCKS);
    assert!(a.money.prev_hashes_checked >= BLOCKS);
    assert_eq!(a.anchors.pool_blocks, BLOCKS, "{:?}", a.anchors);
    assert_eq!(a.anchors.anchors_matched, BLOCKS, "{:?}", a.anchors);
}

#[test]
fn a_share_with_its_nonce_changed_fails_and_is_named() {
    let _serial = common::serial();
    let m = mined();
    let mut records = m.records.clone();
    let (i, seq) = records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.event, Event::ShareWithWork(_)))
        .map(|(i, r)| (i, r.seq))
        .nth(5)
        .expect("a sixth share");
    // Shares meet ~1 in 43 hashes at their target: a changed nonce almost surely fails; try
    // nonces until one does (the check must say so for that one).
    let Event::ShareWithWork(s) = &mut records[i].event else {
        unreachable!()
    };
    s.work.nonce = s.work.nonce.wrapping_add(1);
    let a = audit(&records, &m.payout);
    let mut tries = 1;
    let mut a = a;
    while a.work.findings.is_empty() && tries < 20 {
        let Event::ShareWithWork(s) = &mut records[i].event else {
            unreachable!()
        };
        s.work.nonce = s.work.nonce.wrapping_add(1);
        a = audit(&records, &m.payout);
        tries += 1;
    }
    let f = a.work.findings.first().expect("a work finding");
    assert_eq!(f.seq, Some(seq), "{}", f);
    assert!(f.message.contains("above its share target"), "{f}");
}

#[test]
fn a_share_counted_twice_fails_and_is_named() {
    let _serial = common::serial();
    let m = mined();
    let mut evs = events(&m.records);
    let (i, _) = evs
        .iter()
        .enumerate()
        .find(|(_, e)| matches!(e, Event::ShareWithWork(_)))
        .expect("a share");
    let copy = evs[i].clone();
    evs.insert(i + 2, copy);
    let records = rewritten(evs);
    let a = audit(&records, &m.payout);
    let f = a.work.findings.first().expect("a work finding");
    assert_eq!(f.seq, Some(records[i + 2].seq), "{}", f);
    assert!(f.message.contains("counted twice"), "{f}");
}

#[test]
fn a_job_whose_coinbase_does_not_pay_the_pool_fails_and_is_named() {
    let _serial = common::serial();
    let m = mined();
    let mut records = m.records.clone();
    let pool = identity(&m.payout);
    let other = identity(&nodes().node1.new_address()).payout_script;
    let (i, seq) = records
        .iter()
        .enumerate()
        .find(|(_, r)| matches!(r.event, Event::JobCreated(_)))
        .map(|(i, r)| (i, r.seq))
        .expect("a job");
    let Event::JobCreated(job) = &mut records[i].event else {
        unreachable!()
    };
    let at = job
        .coinbase2
        .windows(pool.payout_script.len())
        .position(|w| w == pool.payout_script.as_slice())
        .expect("the coinbase pays the pool's script");
    job.coinbase2[at..at + other.len()].copy_from_slice(&other);
    let a = audit(&records, &m.payout);
    let f = a.work.findings.first().expect("a work finding");
    assert_eq!(f.seq, Some(seq), "{f}");
    assert!(f.message.contains("pays nothing to the pool"), "{f}");
}

#[test]
fn a_job_on_a_block_the_node_does_not_know_is_named() {
    let _serial = common::serial();
    let m = mined();
    let mut records = m.records.clone();
    let r = records
        .iter_mut()
        .filter(|r| matches!(r.event, Event::JobCreated(_)))
        .nth(1)
        .expect("a second job");
    let seq = r.seq;
    let Event::JobCreated(job) = &mut r.event else {
        unreachable!()
    };
    job.prev_hash = BlockId([0x5a; 32]);
    let a = audit(&records, &m.payout);
    assert_eq!(a.money.findings.len(), 1, "{:?}", a.lines());
    let f = &a.money.findings[0];
    assert_eq!(f.seq, Some(seq));
    assert_eq!(f.block, Some(BlockId([0x5a; 32]).to_display_hex()));
    assert!(f.message.contains("does not know"), "{f}");
}

#[test]
fn an_edited_block_found_reward_fails_the_money_check() {
    let _serial = common::serial();
    let m = mined();
    let mut records = m.records.clone();
    let (seq, block) = found_blocks(&records)[1].clone();
    let r = records.iter_mut().find(|r| r.seq == seq).unwrap();
    if let Event::BlockFound(b) = &mut r.event {
        b.reward = Sats(b.reward.0 + 1);
    }
    let a = audit(&records, &m.payout);
    assert_eq!(a.money.findings.len(), 1, "{:?}", a.lines());
    let f = &a.money.findings[0];
    assert_eq!(f.seq, Some(seq));
    assert_eq!(
        f.block.as_deref(),
        Some(block.block_id.to_display_hex().as_str())
    );
    assert!(
        f.message.contains(&format!(
            "the block's coinbase pays the pool {}",
            block.reward.0
        )),
        "{f}"
    );
}

#[test]
fn a_rewritten_ledger_before_an_anchored_head_names_the_first_block() {
    let _serial = common::serial();
    let m = mined();
    let blocks = found_blocks(&m.records);
    // Edit the record the second block's anchor points at (a share's worker name): the chain
    // of hashes from there on is new, so that block and every later anchored one fail; the
    // first block, anchored before the edit, still matches.
    let anchor = chain_anchor(&blocks[1].1.block_id).expect("pool blocks carry an anchor");
    let first = chain_anchor(&blocks[0].1.block_id).expect("anchor");
    assert!(first.seq < anchor.seq);
    let mut evs = events(&m.records);
    let edit = (0..=anchor.seq as usize)
        .rev()
        .find(|&i| i as u64 > first.seq && evs[i].share().is_some())
        .expect("a share between the anchors");
    match &mut evs[edit] {
        Event::ShareWithWork(s) => s.share.worker.0.push('x'),
        Event::ShareAccepted(s) => s.worker.0.push('x'),
        _ => unreachable!(),
    }
    let records = rewritten(evs);
    let a = audit(&records, &m.payout);
    let anchored: Vec<&Finding> = a
        .anchors
        .findings
        .iter()
        .filter(|f| f.message.contains("its anchor"))
        .collect();
    assert_eq!(anchored.len() as u64, BLOCKS - 1, "{:?}", a.lines());
    assert_eq!(
        anchored[0].block.as_deref(),
        Some(blocks[1].1.block_id.to_display_hex().as_str()),
        "{}",
        anchored[0]
    );
    assert_eq!(a.anchors.anchors_matched, 1);
}

#[test]
fn a_pool_block_removed_from_the_ledger_is_reported() {
    let _serial = common::serial();
    let m = mined();
    let blocks = found_blocks(&m.records);
    let gone = blocks.last().unwrap().1.block_id;
    let evs: Vec<Event> = events(&m.records)
        .into_iter()
        .filter(|e| match e {
            Event::BlockCandidate(b) => b.block_id != gone,
            Event::BlockFound(b) => b.block_id != gone,
            _ => true,
        })
        .collect();
    let records = rewritten(evs);
    let a = audit(&records, &m.payout);
    let missing: Vec<&Finding> = a
        .anchors
        .findings
        .iter()
        .filter(|f| f.message.contains("no BlockCandidate or BlockFound"))
        .collect();
    assert_eq!(missing.len(), 1, "{:?}", a.lines());
    assert_eq!(missing[0].block, Some(gone.to_display_hex()));
    assert_eq!(missing[0].seq, None);
}

#[test]
fn confirmed_payments_are_checked_against_the_chain_net_of_the_miners_fee() {
    let _serial = common::serial();
    let m = mined();
    let pair = nodes();
    let outside = pair.node2.new_address();
    // Node 1's early coinbases mature, so its wallet can pay.
    pair.mine_outside(&outside, 101, Duration::from_secs(60));
    let (x, y) = (pair.node1.new_address(), pair.node1.new_address());
    let prepared = [Sats(20_000_000), Sats(30_000_001)];
    let fee = Sats(12_345);
    let (deductions, _) = projections::split::split_network_fee(&prepared, fee);
    let net: Vec<u64> = prepared
        .iter()
        .zip(&deductions)
        .map(|(a, d)| a.0 - d.0)
        .collect();
    let btc = |sats: u64| format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000);
    let amounts = format!("{{\"{x}\":{},\"{y}\":{}}}", btc(net[0]), btc(net[1]));
    let txid = pair.node1.cli(&["sendmany", "", &amounts]);
    let txid = txid.as_str().expect("a txid").to_owned();
    pair.confirm_payments(&outside, 1, Duration::from_secs(60));
    let height = pair.node1.block_count();
    let txid = BlockId::from_display_hex(&txid).unwrap();
    let outputs = vec![
        PaymentOutput {
            address: PayoutAddress(x.clone()),
            amount: prepared[0],
        },
        PaymentOutput {
            address: PayoutAddress(y),
            amount: prepared[1],
        },
    ];
    let payment = |outputs: Vec<PaymentOutput>| {
        let mut evs = events(&m.records);
        evs.push(Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Solo,
            fee_bps: 0,
            fee_address: PayoutAddress(m.payout.clone()),
            network_fee_payer: NetworkFeePayer::Miners,
        }));
        evs.push(Event::PaymentPrepared(PaymentPrepared {
            payment_id: 1,
            outputs,
        }));
        evs.push(Event::PaymentSent(PaymentSent {
            payment_id: 1,
            txid,
            network_fee: fee,
        }));
        evs.push(Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: 1,
            txid,
            height,
        }));
        evs
    };
    let records = rewritten(payment(outputs.clone()));
    // The rewritten ledger's anchors no longer match (new hashes): only the money check here.
    let a = audit(&records, &m.payout);
    assert_eq!(a.money.findings, vec![], "{:?}", a.lines());
    assert_eq!(a.money.payments_checked, 1);
    let mut edited = outputs;
    edited[0].amount = Sats(edited[0].amount.0 + 1);
    let records = rewritten(payment(edited));
    let a = audit(&records, &m.payout);
    assert_eq!(a.money.findings.len(), 1, "{:?}", a.lines());
    let f = &a.money.findings[0];
    assert_eq!(f.seq, Some(records.last().unwrap().seq));
    assert!(
        f.message
            .contains(&format!("output 0: the ledger pays {x}")),
        "{f}"
    );
}

// The same through the command an auditor runs: `obtc-pool ledger export` and `obtc-pool
// audit`, its verdict the last line of its report.

/// `obtc-pool ARGS`: exit success and stdout.
fn pool_cli(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(args)
        .output()
        .expect("run obtc-pool");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("audit: ")),
        "no verdict line: {args:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (out.status.success(), stdout)
}

/// The export of a ledger directory, written next to it.
fn export_of(dir: &Path) -> std::path::PathBuf {
    let out = dir.with_extension("jsonl");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["ledger", "export", "--data"])
        .arg(dir)
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run obtc-pool ledger export");
    assert!(status.success(), "ledger export failed");
    out
}

/// `obtc-pool audit SOURCE --chain bsv-regtest --pool-address .. --pool-tag .. --node ..`
/// (and `--check-anchors`): whether it passed, and its verdict line.
fn audit_cli(source: &[&str], payout: &str, check_anchors: bool) -> (bool, String) {
    let url = nodes().node1.rpc_url();
    let mut args: Vec<&str> = vec!["audit"];
    args.extend_from_slice(source);
    args.extend_from_slice(&[
        "--chain",
        "bsv-regtest",
        "--pool-address",
        payout,
        "--pool-tag",
        TAG,
        "--node",
        &url,
        "--node-user",
        RPC_USER,
        "--node-password",
        RPC_PASSWORD,
    ]);
    if check_anchors {
        args.push("--check-anchors");
    }
    let (ok, stdout) = pool_cli(&args);
    (ok, stdout.lines().last().unwrap_or_default().to_owned())
}

fn audit_export_of(events: Vec<Event>, payout: &str, check_anchors: bool) -> (bool, String) {
    let export = write_export(&rewritten(events));
    audit_cli(
        &["--export", export.to_str().unwrap()],
        payout,
        check_anchors,
    )
}

#[test]
fn the_audit_command_passes_the_pools_ledger_and_its_export_with_every_check() {
    let _serial = common::serial();
    let m = mined();
    let data = m.ledger.path().to_str().unwrap().to_owned();
    let (ok, verdict) = audit_cli(&["--data", &data], &m.payout, true);
    assert!(ok && verdict.starts_with("audit: PASS"), "{verdict}");
    let export = export_of(m.ledger.path());
    let (ok, verdict) = audit_cli(&["--export", export.to_str().unwrap()], &m.payout, true);
    let _ = std::fs::remove_file(export);
    assert!(ok && verdict.starts_with("audit: PASS"), "{verdict}");
}

#[test]
fn the_audit_command_fails_an_export_with_a_changed_nonce_or_a_share_twice_or_a_job_not_paying_the_pool(
) {
    let _serial = common::serial();
    let m = mined();
    let shares: Vec<usize> = m
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.event, Event::ShareWithWork(_)))
        .map(|(i, _)| i)
        .collect();
    // A changed nonce (bumped until the header misses its target).
    let mut evs = events(&m.records);
    let i = shares[3];
    let mut a = None;
    for _ in 0..20 {
        let Event::ShareWithWork(s) = &mut evs[i] else {
            unreachable!()
        };
        s.work.nonce = s.work.nonce.wrapping_add(1);
        let (ok, verdict) = audit_export_of(evs.clone(), &m.payout, false);
        if !ok {
            a = Some(verdict);
            break;
        }
    }
    let verdict = a.expect("a changed nonce fails");
    assert!(
        verdict.contains(&format!("first: work: record {i}: ")) && verdict.contains("share target"),
        "{verdict}"
    );
    // A share counted twice: the copy is named.
    let mut evs = events(&m.records);
    evs.insert(shares[1] + 1, evs[shares[1]].clone());
    let (ok, verdict) = audit_export_of(evs, &m.payout, false);
    assert!(!ok);
    assert!(
        verdict.contains(&format!("first: work: record {}: ", shares[1] + 1))
            && verdict.contains("counted twice"),
        "{verdict}"
    );
    // A job whose coinbase pays someone else.
    let mut evs = events(&m.records);
    let j = evs
        .iter()
        .position(|e| matches!(e, Event::JobCreated(_)))
        .unwrap();
    let pool = identity(&m.payout);
    let other = identity(&nodes().node1.new_address()).payout_script;
    if let Event::JobCreated(job) = &mut evs[j] {
        let at = job
            .coinbase2
            .windows(pool.payout_script.len())
            .position(|w| w == pool.payout_script.as_slice())
            .unwrap();
        job.coinbase2[at..at + other.len()].copy_from_slice(&other);
    }
    let (ok, verdict) = audit_export_of(evs, &m.payout, false);
    assert!(!ok);
    assert!(
        verdict.contains(&format!("first: work: record {j}: ")) && verdict.contains("pays nothing"),
        "{verdict}"
    );
}

#[test]
fn the_audit_command_fails_an_edited_block_reward_on_the_node() {
    let _serial = common::serial();
    let m = mined();
    let mut evs = events(&m.records);
    let (seq, _) = found_blocks(&m.records)[0].clone();
    if let Event::BlockFound(b) = &mut evs[seq as usize] {
        b.reward = Sats(b.reward.0 - 1);
    }
    let dir = rewritten_dir(evs);
    let (ok, verdict) = audit_cli(&["--data", dir.path().to_str().unwrap()], &m.payout, false);
    assert!(!ok);
    assert!(
        verdict.contains(&format!("money: record {seq}: ")) && verdict.contains("reward"),
        "{verdict}"
    );
}

#[test]
fn the_audit_command_names_the_block_of_a_rewritten_history_and_a_removed_block() {
    let _serial = common::serial();
    let m = mined();
    let blocks = found_blocks(&m.records);
    let first = chain_anchor(&blocks[0].1.block_id).expect("anchor");
    let second = chain_anchor(&blocks[1].1.block_id).expect("anchor");
    let mut evs = events(&m.records);
    let edit = (first.seq as usize + 1..=second.seq as usize)
        .find(|&i| evs[i].share().is_some())
        .expect("a share between the anchors");
    if let Event::ShareWithWork(s) = &mut evs[edit] {
        s.share.worker.0.push('x');
    }
    let (ok, verdict) = audit_export_of(evs, &m.payout, true);
    assert!(!ok);
    assert!(
        verdict.contains(&format!(
            "anchor: block {}",
            blocks[1].1.block_id.to_display_hex()
        )),
        "{verdict}"
    );
    // The last block's records removed: the block is reported.
    let gone = blocks.last().unwrap().1.block_id;
    let evs: Vec<Event> = events(&m.records)
        .into_iter()
        .filter(|e| match e {
            Event::BlockCandidate(b) => b.block_id != gone,
            Event::BlockFound(b) => b.block_id != gone,
            _ => true,
        })
        .collect();
    let dir = rewritten_dir(evs);
    let out = {
        let url = nodes().node1.rpc_url();
        let data = dir.path().to_str().unwrap().to_owned();
        pool_cli(&[
            "audit",
            "--data",
            &data,
            "--chain",
            "bsv-regtest",
            "--pool-address",
            &m.payout,
            "--pool-tag",
            TAG,
            "--node",
            &url,
            "--node-user",
            RPC_USER,
            "--node-password",
            RPC_PASSWORD,
            "--check-anchors",
        ])
    };
    assert!(!out.0);
    assert!(
        out.1
            .lines()
            .any(|l| l.contains(&gone.to_display_hex())
                && l.contains("no BlockCandidate or BlockFound")),
        "{}",
        out.1
    );
}
