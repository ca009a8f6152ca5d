//! `obtc-pool audit` and `obtc-pool ledger export` against a running `obtc-pool run` on the real
//! BSV regtest pair (one pair for this binary): the pool mines a block that is orphaned and
//! reinstated (invalidated, then reconsidered on both nodes), then one that stays orphaned;
//! 100 blocks outside mature the first and `obtc-pool payout` pays it. At one ledger sequence
//! the numbers the RPC serves equal `audit --data` on a copy of the ledger and `audit --export`
//! of the pool's RPC export, to the satoshi; the export from the copy's directory is the RPC's,
//! byte for byte; an export with an edited amount but intact hex fails naming the record, and
//! one with a tampered hex fails the chain at the record.
//!
//! Every wait is bounded; a timeout shows the pool's and the payout process's logs.

mod common;

use common::miner::{MinerOptions, MinerProcess};
use common::nodes::{free_port, start_payout_pair, NodePair};
use common::payout::PayoutProcess;
use common::pool::{config_text, PoolOptions, PoolProcess};
use common::rpc::{self, example};
use payout::api::operator::*;
use payout::api::LedgerHead;
use projections::PaymentStatus;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(60);

fn obtc_pool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run obtc-pool")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The last line of a report: the verdict.
fn verdict(out: &Output) -> String {
    text(&out.stdout).lines().last().unwrap_or("").to_owned()
}

/// `obtc-pool audit ARGS --json`, which must pass.
fn audit_json(args: &[&str]) -> Value {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let out = obtc_pool(&all);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "audit {args:?} failed: {stdout}\n{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["pass"], true, "{stdout}");
    report
}

/// The pool on the pair, with `[rpc]`, `[wallet]` (node 1's), PROP with a 1 % fee, and the
/// chain watcher checking every second.
struct Setup {
    pair: NodePair,
    pool: PoolProcess,
    rpc: SocketAddr,
    pool_address: String,
    /// Node 2's address for set-up blocks.
    outside: String,
}

impl Setup {
    fn start() -> Setup {
        let pair = start_payout_pair().expect("node pair");
        let pool_address = pair.node1.new_address();
        let outside = pair.node2.new_address();
        let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let options = PoolOptions::with_rpc_and_prop_payouts(&pool_address, &pair.node1, rpc);
        let pool = PoolProcess::start_with_config(|stratum, notify| {
            config_text(&options, stratum, notify).replace(
                "max_retry_backoff_secs = 2",
                "max_retry_backoff_secs = 2\nwatch_interval_secs = 1",
            )
        });
        Setup {
            pair,
            pool,
            rpc,
            pool_address,
            outside,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.rpc)
    }

    /// The raw JSON-RPC reply of `method(params)` over HTTP.
    fn raw(&self, method: &str, params: Value) -> Value {
        let (request, reply) = rpc::request(self.rpc, method, &params);
        example(&json!({"request": request, "reply": reply}));
        reply
    }

    /// `method(params)`'s result, decoded.
    fn call<T: DeserializeOwned>(&self, method: &str, params: Value) -> T {
        let (_, reply) = rpc::request(self.rpc, method, &params);
        rpc::result_of(method, &params, &reply)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.pool.log()))
    }

    fn blocks(&self) -> Vec<BlockSummary> {
        let page: BlocksPage = self.call(METHOD_BLOCKS_LIST, json!([null, MAX_LIMIT]));
        page.blocks
    }

    fn status_of(&self, block: &str) -> Option<BlockState> {
        self.blocks()
            .into_iter()
            .find(|b| b.block_id.to_display_hex() == block)
            .map(|b| b.status)
    }

    fn payments(&self) -> Vec<PaymentInfo> {
        let page: PaymentsPage = self.call(METHOD_PAYMENTS_LIST, json!({"limit": MAX_LIMIT}));
        page.payments
    }

    fn head(&self) -> LedgerHeadReply {
        self.call(METHOD_LEDGER_HEAD, json!([]))
    }

    fn logs(&self, payout: Option<&PayoutProcess>) -> String {
        format!(
            "---- pool log ----\n{}\n---- payout log ----\n{}",
            self.pool.log(),
            payout.map_or_else(|| "(not running)".into(), PayoutProcess::log)
        )
    }

    /// Waits (bounded) for `what`.
    fn wait(&self, what: &str, payout: Option<&PayoutProcess>, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs(payout)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn best(&self, node: &common::nodes::Node) -> String {
        node.cli(&["getbestblockhash"])
            .as_str()
            .expect("best block hash")
            .to_owned()
    }

    /// A miner mines one share through the pool (on regtest a block); returns the block's hash
    /// once the pool recorded it found and node 2 has it.
    fn mine_one(&self, user: &str) -> String {
        let before = self.blocks().len();
        let mut o = MinerOptions::new(user, "sha256d");
        o.max_shares = 1;
        MinerProcess::spawn(self.pool.stratum, &o)
            .wait(TIMEOUT)
            .expect_accepted(1, &self.pool.log());
        self.wait("the block's verdict", None, || {
            let all = self.blocks();
            all.len() > before && all.iter().all(|b| b.status != BlockState::Pending)
        });
        let block = self.best(&self.pair.node1);
        assert_eq!(
            self.status_of(&block),
            Some(BlockState::Immature),
            "{:?}",
            self.blocks()
        );
        let node2 = &self.pair.node2;
        assert!(
            node2.wait_until(TIMEOUT, |n| self.best(n) == block),
            "node 2 did not get {block}"
        );
        block
    }

    fn on_both(&self, args: &[&str]) {
        for node in [&self.pair.node1, &self.pair.node2] {
            node.cli(args);
        }
    }
}

/// A page of `ledger_export` is the export's lines from `from`, chained onto the record before
/// it, with `next` until the head; bad params get the contract's errors.
fn export_pages(s: &Setup, head: &LedgerHead, records: &[Value]) {
    let page: LedgerExportPage = s.call(METHOD_LEDGER_EXPORT, json!([1, 2]));
    assert_eq!(page.header.first_seq, 1);
    assert_eq!(page.header.records, 2);
    assert_eq!(page.header.prev_hash, records[1]["hash"].as_str().unwrap());
    assert_eq!(page.next, Some(3));
    assert_eq!(page.ledger.as_ref(), Some(head));
    for (got, want) in page.records.iter().zip(&records[2..4]) {
        assert_eq!(&serde_json::to_value(got).unwrap(), want);
    }
    let last: LedgerExportPage = s.call(METHOD_LEDGER_EXPORT, json!({"from": head.seq}));
    assert_eq!((last.records.len(), last.next), (1, None));
    let past: LedgerExportPage = s.call(METHOD_LEDGER_EXPORT, json!([head.seq + 5]));
    assert!(past.records.is_empty() && past.next.is_none());
    s.raw(METHOD_LEDGER_EXPORT, json!([0, 2]));
    for (params, code) in [
        (json!([0, 0]), ERR_BAD_REQUEST),
        (json!([0, MAX_EXPORT_LIMIT + 1]), ERR_BAD_REQUEST),
        (json!(["x"]), -32602),
        (json!({"form": 1}), -32602),
    ] {
        let reply = s.raw(METHOD_LEDGER_EXPORT, params.clone());
        assert_eq!(reply["error"]["code"], code, "{params}: {reply}");
    }
}

fn sats(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("satoshis: {v}"))
}

/// What the RPC serves at `head` equals the audit report: every address's balance, every
/// block's status, reward, fee and credits, every payment.
fn rpc_equals_report(s: &Setup, head: &LedgerHead, report: &Value) {
    assert_eq!(report["head"]["seq"], head.seq, "{}", report["head"]);
    assert_eq!(report["head"]["hash"], head.hash);
    let reported = report["balances"].as_object().unwrap();
    assert!(reported.len() >= 3, "{reported:?}");
    for (address, r) in reported.iter().filter(|(a, _)| !a.is_empty()) {
        let b: MinerBalance = s.call(METHOD_MINER_BALANCE, json!([address]));
        assert_eq!(b.ledger.as_ref(), Some(head), "the head moved");
        for (field, served) in [
            ("immature", b.immature),
            ("payable", b.payable),
            ("in_flight", b.in_flight),
            ("paid", b.paid),
            ("debt", b.debt),
            ("network_fees", b.network_fees),
        ] {
            assert_eq!(served.0, sats(&r[field]), "{address} {field}: {r}");
        }
    }
    let blocks = s.blocks();
    let report_blocks = report["blocks"].as_array().unwrap();
    assert_eq!(report_blocks.len(), blocks.len());
    for b in &blocks {
        let d: BlockDetail = s.call(METHOD_BLOCK_GET, json!([b.block_id.to_display_hex()]));
        assert_eq!(d.ledger.as_ref(), Some(head), "the head moved");
        let r = report_blocks
            .iter()
            .find(|r| r["block_id"] == d.block.block_id.to_display_hex())
            .unwrap_or_else(|| panic!("block {} not in the report", d.block.block_id));
        assert_eq!(d.block.reward.0, sats(&r["reward"]));
        assert_eq!(d.fee.0, sats(&r["fee"]));
        assert_eq!(
            format!("{:?}", d.block.status).to_lowercase(),
            r["status"].as_str().unwrap().to_lowercase()
        );
        let credits: BTreeMap<String, u64> = r["credits"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(a, v)| (a.clone(), sats(v)))
            .collect();
        let served: BTreeMap<String, u64> = d
            .credits
            .iter()
            .map(|c| (c.address.0.clone(), c.amount.0))
            .collect();
        assert_eq!(served, credits, "block {} credits", d.block.block_id);
    }
    let pays = s.payments();
    let report_payments = report["payments"].as_array().unwrap();
    assert_eq!(report_payments.len(), pays.len());
    for p in &pays {
        let r = report_payments
            .iter()
            .find(|r| r["payment_id"] == p.payment_id)
            .unwrap();
        assert_eq!(p.network_fee.0, sats(&r["network_fee"]));
        assert_eq!(format!("{:?}", p.status), r["status"].as_str().unwrap());
        let outputs: Vec<(String, u64)> = r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| (o[0].as_str().unwrap().to_owned(), sats(&o[1])))
            .collect();
        let served: Vec<(String, u64)> = p
            .outputs
            .iter()
            .map(|o| (o.address.0.clone(), o.amount.0))
            .collect();
        assert_eq!(served, outputs);
    }
}

/// The export's lines, the header first.
fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(file: &Path, lines: &[Value]) {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.to_string());
        out.push('\n');
    }
    std::fs::write(file, out).unwrap();
}

#[test]
fn rpc_numbers_equal_audit_data_and_audit_export_at_one_sequence() {
    let started = Instant::now();
    let s = Setup::start();
    let miner_a = s.pair.node2.new_address();
    let miner_b = s.pair.node2.new_address();

    // Block x: orphaned (invalidated on both nodes), then reinstated (reconsidered).
    let x = s.mine_one(&format!("{miner_a}.rig"));
    s.on_both(&["invalidateblock", &x]);
    s.wait("x orphaned", None, || {
        s.status_of(&x) == Some(BlockState::Orphaned)
    });
    s.on_both(&["reconsiderblock", &x]);
    s.wait("x reinstated", None, || {
        s.status_of(&x) == Some(BlockState::Immature)
    });
    // Block y on x: orphaned for good.
    let y = s.mine_one(&format!("{miner_b}.rig"));
    s.on_both(&["invalidateblock", &y]);
    s.wait("y orphaned", None, || {
        s.status_of(&y) == Some(BlockState::Orphaned)
    });
    // 100 blocks outside mature x; the payout process pays it and the payment confirms.
    s.pair.mine_outside(&s.outside, 100, TIMEOUT);
    s.wait("x matured", None, || {
        s.status_of(&x) == Some(BlockState::Matured)
    });
    let mut payout = PayoutProcess::spawn(&s.pool.config_path, &[]);
    s.wait("a payment sent", Some(&payout), || {
        s.payments().iter().any(|p| p.status == PaymentStatus::Sent)
    });
    s.pair.confirm_payments(&s.outside, 2, TIMEOUT);
    s.wait("the payment confirmed", Some(&payout), || {
        let p = s.payments();
        !p.is_empty() && p.iter().all(|p| p.status == PaymentStatus::Confirmed)
    });
    assert!(payout.terminate().success(), "{}", payout.log());

    // The head stops moving: nothing mines or pays any more.
    let mut last = s.head();
    let mut still_since = Instant::now();
    s.wait("the ledger head to settle", None, || {
        let now = s.head();
        if now != last || now.applied_seq != now.ledger.as_ref().map(|h| h.seq) {
            last = now;
            still_since = Instant::now();
        }
        still_since.elapsed() >= Duration::from_millis(1500)
    });
    let head: LedgerHead = last.ledger.clone().expect("a ledger");

    // The RPC export of the running pool, and a copy of its ledger at the same head.
    let work = tempfile::tempdir().unwrap();
    let rpc_export = work.path().join("rpc.jsonl");
    let out = obtc_pool(&[
        "ledger",
        "export",
        "--rpc",
        &s.url(),
        "--out",
        path(&rpc_export),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copy = work.path().join("copy");
    common::copy_live_dir(&s.pool.ledger_dir(), &copy);
    assert_eq!(s.head().ledger.as_ref(), Some(&head), "the head moved");
    let data_export = work.path().join("data.jsonl");
    let out = obtc_pool(&[
        "ledger",
        "export",
        "--data",
        path(&copy),
        "--out",
        path(&data_export),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let exported = std::fs::read(&rpc_export).unwrap();
    assert!(
        exported == std::fs::read(&data_export).unwrap(),
        "the RPC export differs from the directory's"
    );
    let records = lines(&rpc_export);
    assert_eq!(records[0]["records"], head.seq + 1);
    assert_eq!(records[0]["last"]["hash"], head.hash);
    let kinds: Vec<&str> = records[1..]
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "JobCreated",
        "ShareWithWork",
        "BlockOrphaned",
        "BlockReinstated",
        "BlockMatured",
        "PaymentConfirmed",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in the ledger: {kinds:?}");
    }

    export_pages(&s, &head, &records);

    // RPC == audit --data == audit --export, at that head.
    let config = path(&s.pool.config_path);
    let by_data = audit_json(&["--data", path(&copy), "--config", config]);
    let by_export = audit_json(&["--export", path(&rpc_export), "--config", config]);
    assert_eq!(by_data, by_export, "audit --data and audit --export differ");
    rpc_equals_report(&s, &head, &by_data);
    let statuses: Vec<&str> = by_data["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"Orphaned") && statuses.contains(&"Matured"),
        "{statuses:?}"
    );
    assert!(
        sats(&by_data["balances"][&miner_a]["paid"]) > 0,
        "{}",
        by_data["balances"]
    );
    assert!(
        by_data["balances"].get(&s.pool_address).is_some(),
        "the fee address (the pool's) has a balance"
    );
    assert!(by_data["totals"]["conserved"].as_bool().unwrap());
    // The text report ends with the verdict; against the node (money, anchors) it passes too.
    let node = s.pair.node1.rpc_url();
    let out = obtc_pool(&[
        "audit",
        "--export",
        path(&rpc_export),
        "--config",
        config,
        "--node",
        &node,
        "--check-anchors",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        verdict(&out).starts_with("audit: PASS") && verdict(&out).contains("money, anchors"),
        "{}",
        verdict(&out)
    );

    // An edited amount with intact hex fails, naming the record.
    let (at, found) = records
        .iter()
        .enumerate()
        .find(|(_, r)| r["kind"] == "BlockFound")
        .expect("a BlockFound line");
    let seq = found["seq"].as_u64().unwrap();
    let mut edited = records.clone();
    let reward = &mut edited[at]["event"]["BlockFound"]["reward"];
    *reward = json!(sats(reward) + 1);
    let edited_file = work.path().join("edited.jsonl");
    write_lines(&edited_file, &edited);
    let out = obtc_pool(&["audit", "--export", path(&edited_file)]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let last = verdict(&out);
    assert!(
        last.starts_with(&format!(
            "audit: FAIL: 1 problem; first: export: record {seq}: "
        )) && last.contains("reward"),
        "{last}"
    );

    // A tampered hex fails the chain at the record.
    let mut tampered = records.clone();
    let bytes = tampered[at]["bytes"].as_str().unwrap().to_owned();
    let flipped = format!(
        "{}{}",
        &bytes[..bytes.len() - 1],
        if bytes.ends_with('0') { '1' } else { '0' }
    );
    tampered[at]["bytes"] = json!(flipped);
    let tampered_file = work.path().join("tampered.jsonl");
    write_lines(&tampered_file, &tampered);
    let out = obtc_pool(&["audit", "--export", path(&tampered_file), "--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["check"], "chain", "{report}");
    assert_eq!(report["findings"][0]["seq"], seq, "{report}");
    assert!(report["blocks"].is_null(), "no report from a broken chain");
    assert!(text(&out.stderr).contains(&format!("first bad sequence number: {seq}")));

    eprintln!("audit test: {:.1} s", started.elapsed().as_secs_f64());
}

/// The export of a ledger with a dropped line, a reordered pair of lines or an edited header
/// is refused; `ledger export` never overwrites a file.
#[test]
fn truncated_reordered_or_misdescribed_exports_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("ledger");
    common::copy_dir(Path::new("testdata/ledger-v1"), &dir);
    let file = work.path().join("e.jsonl");
    let out = obtc_pool(&[
        "ledger",
        "export",
        "--data",
        path(&dir),
        "--out",
        path(&file),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = obtc_pool(&[
        "ledger",
        "export",
        "--data",
        path(&dir),
        "--out",
        path(&file),
    ]);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("never overwrites"));
    let records = lines(&file);
    let by_data = audit_json(&["--data", path(&dir)]);
    assert_eq!(by_data, audit_json(&["--export", path(&file)]));

    let refused = |name: &str, lines: &[Value], says: &str| {
        let f = work.path().join(name);
        write_lines(&f, lines);
        let out = obtc_pool(&["audit", "--export", path(&f)]);
        assert!(!out.status.success(), "{name}: {}", text(&out.stdout));
        let last = verdict(&out);
        assert!(last.contains(says), "{name}: {last}");
    };
    let n = records.len();
    let mut dropped = records.clone();
    dropped.remove(n - 1);
    refused("truncated", &dropped, "truncated or its header edited");
    let mut dropped_inside = records.clone();
    dropped_inside.remove(5);
    refused(
        "gap",
        &dropped_inside,
        "chain: record 4: line 6 holds record 5",
    );
    let mut swapped = records.clone();
    swapped.swap(3, 4);
    refused(
        "swapped",
        &swapped,
        "chain: record 2: line 4 holds record 3",
    );
    let mut header = records.clone();
    header[0]["first_seq"] = json!(1);
    refused("header", &header, "not at record 0");
}

/// A ledger whose prefix was sealed into an archive and dropped exports whole with the archive
/// (the same bytes as before the drop) and audits to the same report from the export, from the
/// directory with its archive, and from the ledger before the drop; without the archive its
/// export starts at the base and `audit --export` refuses it.
#[test]
fn an_archived_prefix_exports_whole_with_its_archive() {
    use ledger::Ledger;
    use pool_core::event::{
        BlockFound, BlockMatured, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme,
        ShareAccepted, WorkerName,
    };
    use pool_core::{BlockId, Event, Sats, Target};
    const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
    const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
    let share = |n: u64| {
        let target = Target::from_compact(0x1d00ffff).unwrap();
        Event::ShareAccepted(ShareAccepted {
            address: PayoutAddress(if n % 3 == 0 { BOB } else { ALICE }.into()),
            worker: WorkerName("rig".into()),
            share_target: target,
            weight: target.work(),
            job_id: n,
            height: 101,
            // The easiest network target: the next block's window reaches back one share, so
            // only blocks hold the safe cut.
            network_target: Target::from_compact(0x207fffff).unwrap(),
            time_ms: 1_700_000_000_000 + n,
        })
    };
    let work = tempfile::tempdir().unwrap();
    let whole = work.path().join("whole");
    let ledger = Ledger::open(&whole).unwrap();
    ledger
        .append_blocking(Event::PayoutRuleSet(PayoutRule {
            scheme: PayoutScheme::Pplns {
                window_numerator: 2,
                window_denominator: 1,
            },
            fee_bps: 100,
            fee_address: PayoutAddress(ALICE.into()),
            network_fee_payer: NetworkFeePayer::Pool,
        }))
        .unwrap();
    let mut n = 0;
    let mut rounds = Vec::new();
    for id in 1..=4u8 {
        rounds.push(ledger.head().unwrap().seq + 1);
        let shares = (0..10)
            .map(|_| {
                n += 1;
                share(n)
            })
            .collect();
        ledger.append_batch_blocking(shares).unwrap();
        ledger
            .append_blocking(Event::BlockFound(BlockFound {
                height: 100 + u64::from(id),
                block_id: BlockId([id; 32]),
                reward: Sats(50_000_000 + u64::from(id)),
                // Easy too: each block's window is its last share, so the cut can pass it.
                network_target: Target::from_compact(0x207fffff).unwrap(),
                finder: PayoutAddress(ALICE.into()),
                worker: WorkerName("rig".into()),
                time_ms: 1_700_000_000_000 + u64::from(id),
            }))
            .unwrap();
        ledger
            .append_blocking(Event::BlockMatured(BlockMatured {
                block_id: BlockId([id; 32]),
                height: 100 + u64::from(id),
            }))
            .unwrap();
    }
    ledger.close_blocking();
    let dir = work.path().join("dir");
    common::copy_dir(&whole, &dir);
    let archive = work.path().join("a.archive");
    let before = rounds[2].to_string();
    // Share marks every 4 shares (not every few thousand), so a cut can fall inside this ledger.
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .env("OBTC_TEST_MARK_EVERY", "4")
        .args([
            "ledger",
            "archive",
            "--data",
            path(&dir),
            "--before",
            &before,
            "--out",
            path(&archive),
            "--drop",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("the ledger now starts at record {before}")),
        "{}",
        text(&out.stdout)
    );

    let export = |name: &str, args: &[&str]| {
        let file = work.path().join(name);
        let mut all = vec!["ledger", "export", "--out", path(&file)];
        all.extend_from_slice(args);
        let out = obtc_pool(&all);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        file
    };
    let of_whole = export("whole.jsonl", &["--data", path(&whole)]);
    let with_archive = export(
        "archived.jsonl",
        &["--data", path(&dir), "--archive", path(&archive)],
    );
    assert!(
        std::fs::read(&of_whole).unwrap() == std::fs::read(&with_archive).unwrap(),
        "the export with the archive differs from the ledger's before the drop"
    );
    let expected = audit_json(&["--data", path(&whole)]);
    assert_eq!(
        audit_json(&["--data", path(&dir), "--archive", path(&archive)]),
        expected
    );
    assert_eq!(audit_json(&["--export", path(&with_archive)]), expected);

    let live_only = export("live.jsonl", &["--data", path(&dir)]);
    assert_ne!(lines(&live_only)[0]["first_seq"], 0);
    let out = obtc_pool(&["audit", "--export", path(&live_only)]);
    assert!(!out.status.success());
    assert!(
        verdict(&out).contains("not at record 0"),
        "{}",
        verdict(&out)
    );
}
