//! docs/ledger.md's examples, checked against the real code so the document cannot drift.
//!
//! Each example sits between `<!-- example:NAME -->` and `<!-- end -->` in the document and is
//! parsed out of it here:
//! - `export`: an export (header line, record lines). Every record's `bytes` are taken apart
//!   by the layout the document gives (not by our reader), the event re-encoded by an encoder
//!   written from the document's bincode rules and by the ledger's own, the chain hashes
//!   recomputed, and the JSON compared with the decoded event.
//! - `header`: the header rebuilt from that export's `JobCreated` and `ShareWithWork`, step by
//!   step as the document describes, and its proof-of-work hash.
//! - `anchor`: an anchor's output script.
//! - `ledger`: the worked example, one `{"seq":N,"event":{...}}` per line, folded through
//!   `projections::Projection`; every `<!-- check: blocks after seq N -->` and
//!   `<!-- check: balances after seq N -->` table is compared with the projection after that
//!   record.
//!
//! On a mismatch the message shows what the code gives, in the document's own form.

use ledger::record::{decode_event, encode_event};
use pool_core::anchor::anchor_script;
use pool_core::event::{
    JobCreated, LedgerAnchor, NetworkFeePayer, PaymentOutput, PayoutRule, PayoutScheme,
    ShareAccepted, ShareWithWork, ShareWork,
};
use pool_core::export::{ExportHeader, ExportRecord};
use pool_core::pow::sha256d_header;
use pool_core::{BlockId, Event, Target};
use projections::{BlockStatus, Projection, ProjectionConfig};
use sha2::{Digest, Sha256};

const DOC: &str = include_str!("../docs/ledger.md");

/// The text between `<!-- example:NAME -->` and the next `<!-- end -->`.
fn example(name: &str) -> &'static str {
    let open = format!("<!-- example:{name} -->");
    let start = DOC
        .find(&open)
        .unwrap_or_else(|| panic!("docs/ledger.md has no {open}"))
        + open.len();
    let len = DOC[start..]
        .find("<!-- end -->")
        .unwrap_or_else(|| panic!("example {name} has no <!-- end -->"));
    &DOC[start..start + len]
}

/// The lines of a fenced code block's body, without the fences and blank lines.
fn code_lines(block: &str) -> Vec<&str> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("```"))
        .collect()
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&[&sha256(&[data])])
}

fn h32(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap_or_else(|e| panic!("{s:?} is not 32 bytes hex: {e}"));
    out
}

// ---------------------------------------------------------------------------------------------
// The document's bincode rules, written out: integers fixed-width little-endian, an enum as its
// variant index (u32), a struct as its fields in order, a string or a byte vector as a u64
// length and its bytes, a vector as a u64 count and its items, an option as one byte (0 or 1)
// and its value, a fixed array as its bytes; targets and work as 32 big-endian bytes, block ids
// and txids as their 32 internal-order bytes.

struct Enc(Vec<u8>);

impl Enc {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.0.extend_from_slice(v);
    }
    fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    fn fixed(&mut self, v: &[u8; 32]) {
        self.0.extend_from_slice(v);
    }
    fn target(&mut self, t: &Target) {
        self.fixed(&t.to_be_bytes());
    }
    fn share(&mut self, s: &ShareAccepted) {
        self.str(&s.address.0);
        self.str(&s.worker.0);
        self.target(&s.share_target);
        self.fixed(&s.weight.as_u256().to_be_bytes::<32>());
        self.u64(s.job_id);
        self.u64(s.height);
        self.target(&s.network_target);
        self.u64(s.time_ms);
    }
    fn rule(&mut self, r: &PayoutRule) {
        match r.scheme {
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            } => {
                self.u32(0);
                self.u32(window_numerator);
                self.u32(window_denominator);
            }
            PayoutScheme::Prop => self.u32(1),
            PayoutScheme::Solo => self.u32(2),
        }
        self.u16(r.fee_bps);
        self.str(&r.fee_address.0);
        self.u32(match r.network_fee_payer {
            NetworkFeePayer::Pool => 0,
            NetworkFeePayer::Miners => 1,
        });
    }
}

/// The event's bytes by the document's rules, for the variants the examples use.
fn encode_by_the_doc(event: &Event) -> Vec<u8> {
    let mut e = Enc(Vec::new());
    match event {
        Event::ShareAccepted(s) => {
            e.u32(0);
            e.share(s);
        }
        Event::BlockFound(b) => {
            e.u32(1);
            e.u64(b.height);
            e.fixed(&b.block_id.0);
            e.u64(b.reward.0);
            e.target(&b.network_target);
            e.str(&b.finder.0);
            e.str(&b.worker.0);
            e.u64(b.time_ms);
        }
        Event::BlockOrphaned(b) => {
            e.u32(3);
            e.fixed(&b.block_id.0);
            e.u64(b.height);
        }
        Event::BlockReinstated(b) => {
            e.u32(4);
            e.fixed(&b.block_id.0);
            e.u64(b.height);
        }
        Event::BlockMatured(b) => {
            e.u32(5);
            e.fixed(&b.block_id.0);
            e.u64(b.height);
        }
        Event::PayoutRuleSet(r) => {
            e.u32(6);
            e.rule(r);
        }
        Event::PaymentPrepared(p) => {
            e.u32(7);
            e.u64(p.payment_id);
            e.u64(p.outputs.len() as u64);
            for PaymentOutput { address, amount } in &p.outputs {
                e.str(&address.0);
                e.u64(amount.0);
            }
        }
        Event::PaymentSent(p) => {
            e.u32(8);
            e.u64(p.payment_id);
            e.fixed(&p.txid.0);
            e.u64(p.network_fee.0);
        }
        Event::PaymentConfirmed(p) => {
            e.u32(9);
            e.u64(p.payment_id);
            e.fixed(&p.txid.0);
            e.u64(p.height);
        }
        Event::BlockCandidate(c) => {
            e.u32(11);
            e.u64(c.height);
            e.fixed(&c.block_id.0);
            e.u64(c.reward.0);
            e.target(&c.network_target);
            e.str(&c.finder.0);
            e.str(&c.worker.0);
            e.u64(c.time_ms);
            e.bytes(&c.block);
        }
        Event::PaymentSigned(p) => {
            e.u32(12);
            e.u64(p.payment_id);
            e.fixed(&p.txid.0);
            e.bytes(&p.raw_tx);
            e.u64(p.network_fee.0);
        }
        Event::JobCreated(j) => {
            e.u32(13);
            e.u64(j.job_id);
            e.u64(j.height);
            e.fixed(&j.prev_hash.0);
            e.bytes(&j.coinbase1);
            e.bytes(&j.coinbase2);
            e.u64(j.merkle_branch.len() as u64);
            for h in &j.merkle_branch {
                e.fixed(h);
            }
            e.u32(j.version);
            e.u32(j.bits);
            e.u32(j.ntime);
            match &j.anchor {
                None => e.0.push(0),
                Some(a) => {
                    e.0.push(1);
                    e.u64(a.seq);
                    e.fixed(&a.hash);
                }
            }
        }
        Event::ShareWithWork(ShareWithWork { share, work }) => {
            e.u32(14);
            e.share(share);
            e.bytes(&work.extranonce1);
            e.bytes(&work.extranonce2);
            e.u32(work.ntime);
            e.u32(work.nonce);
            e.u32(work.version);
        }
        Event::BlockRejected(r) => {
            e.u32(2);
            e.u64(r.height);
            e.fixed(&r.block_id.0);
            e.str(&r.reason);
            e.str(&r.finder.0);
            e.str(&r.worker.0);
            e.u64(r.time_ms);
        }
        Event::PaymentFailed(p) => {
            e.u32(10);
            e.u64(p.payment_id);
            e.str(&p.reason);
        }
        Event::StreamBatch(b) => {
            e.u32(15);
            e.u16(b.edge_id);
            e.u64(b.boot_id);
            e.u64(b.counter);
            e.u64(b.stream_seq);
            e.u32(b.events);
            e.u64(b.sealed_ms);
        }
    }
    e.0
}

// ---------------------------------------------------------------------------------------------
// The export example.

struct ExportExample {
    header: ExportHeader,
    records: Vec<ExportRecord>,
}

fn export_example() -> ExportExample {
    let lines = code_lines(example("export"));
    let header: ExportHeader = serde_json::from_str(lines[0]).expect("the header line parses");
    let records = lines[1..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    ExportExample { header, records }
}

/// The records of the export example as the code writes them, to show on a mismatch.
fn generated_export() -> String {
    // The real block of the share vectors (pool-core/src/share.rs): bsv-regtest, three
    // transactions, a legacy coinbase paying the pool's P2PKH script.
    let coinbase1 = hex::decode("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1401662f6f6274632d706f6f6c").unwrap();
    let coinbase2 = hex::decode(
        "ffffffff018832062a010000001976a914435082ba48a5c4c123ceb6cdc2b6f3dcc218716488ac00000000",
    )
    .unwrap();
    let header = hex::decode("0000002006abf337d33d28d09827aba38f06ae503264f58d67cabd4ed208af85e45ccb62839ff80538feda6d1706da887b9d12e7b041d58e5cfcc40cc21c61e8974150d1b842066bffff7f2000000000").unwrap();
    let target = Target::from_compact(0x207f_ffff).unwrap();
    let events = [
        (
            1_700_000_000_000u64,
            Event::JobCreated(JobCreated {
                job_id: 1,
                height: 102,
                prev_hash: BlockId(header[4..36].try_into().unwrap()),
                coinbase1,
                coinbase2,
                merkle_branch: vec![
                    h32("8933279295b639816e2dcb4dc107136562f2fb88688e520f313acf1d48e8d82e"),
                    h32("d8489264bcb73cae5a1946ec7850663e0075769fec8b9fa48352f09bda0f5323"),
                ],
                version: 0x2000_0000,
                bits: 0x207f_ffff,
                ntime: 0x6b06_42b8,
                anchor: None,
            }),
        ),
        (
            1_700_000_000_250,
            Event::ShareWithWork(ShareWithWork {
                share: ShareAccepted {
                    address: pool_core::event::PayoutAddress(
                        "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef".into(),
                    ),
                    worker: pool_core::event::WorkerName("rig1".into()),
                    share_target: target,
                    weight: target.work(),
                    job_id: 1,
                    height: 102,
                    network_target: target,
                    time_ms: 1_700_000_000_249,
                },
                work: ShareWork {
                    extranonce1: hex::decode("2d766563").unwrap(),
                    extranonce2: hex::decode("746f722f").unwrap(),
                    ntime: 0x6b06_42b8,
                    nonce: 0,
                    version: 0x2000_0000,
                },
            }),
        ),
    ];
    // The records as the ledger stores them, written by the exporter's own functions (the
    // writer's clock gives `time_ms`, so the records are built here rather than appended).
    let mut prev = [0u8; 32];
    let mut lines = Vec::new();
    for (seq, (time_ms, event)) in events.iter().enumerate() {
        let mut raw = ledger::record::RawRecord {
            seq: seq as u64,
            version: 1,
            time_ms: *time_ms,
            event: encode_event(event).unwrap(),
            hash: [0; 32],
        };
        raw.hash = sha256(&[&prev, &ledger::export::canonical_bytes(&raw)]);
        prev = raw.hash;
        lines.push(obtc_pool::audit::export::record_line(&raw).unwrap());
    }
    let head = obtc_pool::audit::export::header(
        0,
        [0u8; 32],
        Some(ledger::Head {
            seq: lines.len() as u64 - 1,
            hash: prev,
        }),
    );
    let mut out = serde_json::to_string(&head).unwrap();
    for l in &lines {
        out.push('\n');
        out.push_str(&serde_json::to_string(l).unwrap());
    }
    out
}

#[test]
fn the_export_example_is_what_the_code_writes_and_its_bytes_are_as_documented() {
    let ex = export_example();
    let generated = generated_export();
    let expected: Vec<&str> = generated.lines().collect();
    let doc_lines = code_lines(example("export"));
    assert_eq!(
        doc_lines, expected,
        "the export example is not what the code writes; the code writes:\n{generated}"
    );

    assert_eq!(ex.header.format, "obtc-pool-ledger-export");
    assert_eq!(ex.header.records as usize, ex.records.len());
    let mut prev = h32(&ex.header.prev_hash);
    let mut seq = ex.header.first_seq;
    for r in &ex.records {
        let bytes = hex::decode(&r.bytes).unwrap();
        // The canonical bytes, taken apart as the document lays them out.
        assert_eq!(u64::from_be_bytes(bytes[0..8].try_into().unwrap()), r.seq);
        assert_eq!(r.seq, seq, "records are consecutive");
        assert_eq!(
            u16::from_be_bytes(bytes[8..10].try_into().unwrap()),
            r.version
        );
        assert_eq!(
            u64::from_be_bytes(bytes[10..18].try_into().unwrap()),
            r.time_ms
        );
        let len = u32::from_be_bytes(bytes[18..22].try_into().unwrap()) as usize;
        let event_bytes = &bytes[22..];
        assert_eq!(event_bytes.len(), len, "event_len covers the rest");
        // The JSON agrees with the bytes.
        let from_json: Event = serde_json::from_value(r.event.clone()).unwrap();
        let decoded = decode_event(r.version, event_bytes).unwrap();
        assert_eq!(
            decoded, from_json,
            "record {}: JSON and bytes differ",
            r.seq
        );
        assert_eq!(r.kind, decoded.kind());
        assert_eq!(encode_by_the_doc(&decoded), event_bytes, "record {}", r.seq);
        assert_eq!(encode_event(&decoded).unwrap(), event_bytes);
        // The chain.
        let hash = sha256(&[&prev, &bytes]);
        assert_eq!(hex::encode(hash), r.hash, "record {}'s chain hash", r.seq);
        prev = hash;
        seq += 1;
    }
    let last = ex.header.last.as_ref().expect("the example has records");
    assert_eq!((last.seq, h32(&last.hash)), (seq - 1, prev));
}

#[test]
fn the_header_example_rebuilds_from_the_exported_job_and_share() {
    let ex = export_example();
    let Event::JobCreated(job) = serde_json::from_value(ex.records[0].event.clone()).unwrap()
    else {
        panic!("record 0 of the export example is the job");
    };
    let Event::ShareWithWork(sw) = serde_json::from_value(ex.records[1].event.clone()).unwrap()
    else {
        panic!("record 1 of the export example is the share");
    };
    assert_eq!(sw.share.job_id, job.job_id);

    // Step by step, as the document says.
    let coinbase = [
        &job.coinbase1[..],
        &sw.work.extranonce1,
        &sw.work.extranonce2,
        &job.coinbase2,
    ]
    .concat();
    let txid = sha256d(&coinbase);
    let mut root = txid;
    for sibling in &job.merkle_branch {
        root = sha256d(&[&root[..], &sibling[..]].concat());
    }
    let mut header = Vec::with_capacity(80);
    header.extend_from_slice(&sw.work.version.to_le_bytes());
    header.extend_from_slice(&job.prev_hash.0);
    header.extend_from_slice(&root);
    header.extend_from_slice(&sw.work.ntime.to_le_bytes());
    header.extend_from_slice(&job.bits.to_le_bytes());
    header.extend_from_slice(&sw.work.nonce.to_le_bytes());
    let pow = sha256d(&header);

    // The code's own functions agree.
    let coded = pool_core::share::build_header(
        sw.work.version,
        &job.prev_hash.0,
        &pool_core::merkle::root_from_branch(
            &pool_core::share::coinbase_txid(
                &job.coinbase1,
                &sw.work.extranonce1,
                &sw.work.extranonce2,
                &job.coinbase2,
            ),
            &job.merkle_branch,
        ),
        sw.work.ntime,
        job.bits,
        sw.work.nonce,
    );
    assert_eq!(coded.as_slice(), header.as_slice());
    assert_eq!(sha256d_header(&coded), pow);
    assert!(sw.share.share_target.is_met_by(&pow));

    let actual = format!(
        "coinbase_txid: {}\nmerkle_root:   {}\nheader:        {}\npow_hash:      {}\npow_number:    {}",
        hex::encode(txid),
        hex::encode(root),
        hex::encode(&header),
        hex::encode(pow),
        hex::encode(pow.iter().rev().copied().collect::<Vec<u8>>()),
    );
    let doc = code_lines(example("header")).join("\n");
    assert_eq!(
        doc, actual,
        "the header example differs; the code gives:\n{actual}"
    );
}

#[test]
fn the_anchor_example_is_the_codes_anchor_script() {
    let lines = code_lines(example("anchor"));
    let field = |name: &str| -> &str {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(name).map(str::trim))
            .unwrap_or_else(|| panic!("the anchor example has no {name}"))
    };
    let anchor = LedgerAnchor {
        seq: field("seq:").parse().unwrap(),
        hash: h32(field("hash:")),
    };
    let script = anchor_script(&anchor);
    let output = [&0u64.to_le_bytes()[..], &[script.len() as u8], &script].concat();
    assert_eq!(field("script:"), hex::encode(script));
    assert_eq!(field("output:"), hex::encode(output));
    assert_eq!(
        pool_core::anchor::parse_anchor_script(&script),
        Some(anchor)
    );
}

// ---------------------------------------------------------------------------------------------
// The worked example.

/// The worked example's events, in order, checked to be numbered from 0.
fn ledger_example() -> Vec<Event> {
    #[derive(serde::Deserialize)]
    struct Line {
        seq: u64,
        event: Event,
    }
    code_lines(example("ledger"))
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let line: Line = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(
                line.seq, i as u64,
                "the example's records are numbered from 0"
            );
            line.event
        })
        .collect()
}

/// A markdown table's body rows as cells (header and separator rows skipped).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(str::trim)
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().trim_matches('`').to_string())
                .collect()
        })
        .collect()
}

/// The `<!-- check: WHAT after seq N -->` markers of the document, with the table after each.
fn checks(what: &str) -> Vec<(u64, Vec<Vec<String>>)> {
    let open = format!("<!-- check: {what} after seq ");
    let mut out = Vec::new();
    let mut rest = DOC;
    while let Some(at) = rest.find(&open) {
        rest = &rest[at + open.len()..];
        let close = rest.find(" -->").expect("a check marker ends with -->");
        let seq = rest[..close].parse().expect("a check marker names a seq");
        let table = rest[close + 4..].trim_start();
        out.push((seq, table_rows(table)));
    }
    out
}

fn sats(cell: &str) -> u64 {
    cell.replace([',', '_', ' '], "")
        .parse()
        .unwrap_or_else(|e| panic!("{cell:?}: {e}"))
}

fn folded_to(events: &[Event], seq: u64) -> Projection {
    let mut p = Projection::new(ProjectionConfig::default());
    for (i, e) in events.iter().enumerate().take(seq as usize + 1) {
        p.apply(i as u64, e).unwrap();
    }
    p
}

/// The blocks table as the code gives it (the document's form).
fn blocks_table(p: &Projection) -> Vec<Vec<String>> {
    p.blocks()
        .iter()
        .map(|b| {
            let scheme = match b.scheme {
                PayoutScheme::Pplns {
                    window_numerator,
                    window_denominator,
                } => format!("PPLNS {window_numerator}/{window_denominator}"),
                PayoutScheme::Prop => "PROP".into(),
                PayoutScheme::Solo => "SOLO".into(),
            };
            let status = match b.status {
                BlockStatus::Immature => "immature",
                BlockStatus::Matured => "matured",
                BlockStatus::Orphaned => "orphaned",
            };
            let credits: Vec<String> = b
                .credits
                .iter()
                .map(|(a, s)| format!("{a} {}", s.0))
                .collect();
            vec![
                b.height.to_string(),
                b.candidate_seq.map_or("-".into(), |s| s.to_string()),
                b.found_seq.to_string(),
                scheme,
                status.into(),
                b.reward.0.to_string(),
                format!("{} {}", b.fee_address, b.fee.0),
                credits.join(", "),
            ]
        })
        .collect()
}

fn balances_table(p: &Projection) -> Vec<Vec<String>> {
    p.balances()
        .iter()
        .map(|(a, b)| {
            let mut row = vec![a.0.clone()];
            row.extend(
                [
                    b.immature,
                    b.payable,
                    b.debt,
                    b.in_flight,
                    b.paid,
                    b.network_fees,
                ]
                .iter()
                .map(|s| s.0.to_string()),
            );
            row
        })
        .collect()
}

fn render(rows: &[Vec<String>]) -> String {
    rows.iter()
        .map(|r| format!("| {} |", r.join(" | ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Cells compared as the document writes them: amounts may carry thousands separators.
fn normalize(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    if c.chars().all(|ch| ch.is_ascii_digit() || ch == ',') && !c.is_empty() {
                        sats(c).to_string()
                    } else {
                        c.clone()
                    }
                })
                .collect()
        })
        .collect()
}

#[test]
fn the_worked_example_credits_and_balances_are_the_projections() {
    let events = ledger_example();
    assert!(events.len() >= 20, "the worked example is there");
    let blocks = checks("blocks");
    let balances = checks("balances");
    assert!(
        !blocks.is_empty() && !balances.is_empty(),
        "the example has tables to check"
    );
    for (seq, table) in &blocks {
        let p = folded_to(&events, *seq);
        let actual = blocks_table(&p);
        assert_eq!(
            normalize(table),
            actual,
            "blocks after seq {seq}: the projection gives\n{}",
            render(&actual)
        );
    }
    for (seq, table) in &balances {
        let p = folded_to(&events, *seq);
        let actual = balances_table(&p);
        assert_eq!(
            normalize(table),
            actual,
            "balances after seq {seq}: the projection gives\n{}",
            render(&actual)
        );
    }
    // The whole example folds without an anomaly, and money is conserved at its end.
    let p = folded_to(&events, events.len() as u64 - 1);
    assert!(p.anomalies().is_empty(), "{:?}", p.anomalies());
    let totals = p.pool_totals();
    let sum: i128 = p.balances().values().map(|b| b.total_credited()).sum();
    assert_eq!(sum, i128::from(totals.rewards.0));
    // Every share in the example weighs the work of its target, as the pool records it.
    for e in &events {
        if let Some(s) = e.share() {
            assert_eq!(s.weight, s.share_target.work());
        }
    }
}

#[test]
fn the_worked_example_encodes_by_the_documents_rules() {
    for (seq, e) in ledger_example().iter().enumerate() {
        let bytes = encode_event(e).unwrap();
        assert_eq!(encode_by_the_doc(e), bytes, "record {seq} ({})", e.kind());
        assert_eq!(&decode_event(1, &bytes).unwrap(), e);
    }
}

/// One event of every variant, with every option and enum case the encoding has.
fn one_of_each() -> Vec<Event> {
    use pool_core::event::*;
    use pool_core::Sats;
    let t = Target::from_compact(0x1d00_ffff).unwrap();
    let share = ShareAccepted {
        address: PayoutAddress("bc1qexample".into()),
        worker: WorkerName("rïg-1".into()),
        share_target: t,
        weight: t.work(),
        job_id: 0x0102_0304_0506_0708,
        height: 840_000,
        network_target: Target::from_compact(0x1703_a30c).unwrap(),
        time_ms: 1_700_000_000_123,
    };
    let id = BlockId(std::array::from_fn(|i| i as u8));
    let rule = |scheme, payer| PayoutRule {
        scheme,
        fee_bps: 250,
        fee_address: PayoutAddress("pool".into()),
        network_fee_payer: payer,
    };
    let job = |anchor| JobCreated {
        job_id: 9,
        height: 840_001,
        prev_hash: id,
        coinbase1: vec![1, 2, 3],
        coinbase2: vec![],
        merkle_branch: vec![[7; 32], [8; 32]],
        version: 0x2000_0000,
        bits: 0x1703_a30c,
        ntime: 1_700_000_000,
        anchor,
    };
    vec![
        Event::ShareAccepted(share.clone()),
        Event::BlockFound(BlockFound {
            height: 840_000,
            block_id: id,
            reward: Sats(312_500_000),
            network_target: t,
            finder: share.address.clone(),
            worker: share.worker.clone(),
            time_ms: 5,
        }),
        Event::BlockRejected(BlockRejected {
            height: 840_000,
            block_id: id,
            reason: "high-hash".into(),
            finder: share.address.clone(),
            worker: WorkerName::default(),
            time_ms: 6,
        }),
        Event::BlockOrphaned(BlockOrphaned {
            block_id: id,
            height: 1,
        }),
        Event::BlockReinstated(BlockReinstated {
            block_id: id,
            height: 2,
        }),
        Event::BlockMatured(BlockMatured {
            block_id: id,
            height: 3,
        }),
        Event::PayoutRuleSet(rule(
            PayoutScheme::Pplns {
                window_numerator: 3,
                window_denominator: 2,
            },
            NetworkFeePayer::Pool,
        )),
        Event::PayoutRuleSet(rule(PayoutScheme::Prop, NetworkFeePayer::Miners)),
        Event::PayoutRuleSet(rule(PayoutScheme::Solo, NetworkFeePayer::Pool)),
        Event::PaymentPrepared(PaymentPrepared {
            payment_id: 4,
            outputs: vec![
                PaymentOutput {
                    address: PayoutAddress("a".into()),
                    amount: Sats(1),
                },
                PaymentOutput {
                    address: PayoutAddress("b".into()),
                    amount: Sats(u64::MAX),
                },
            ],
        }),
        Event::PaymentSent(PaymentSent {
            payment_id: 4,
            txid: id,
            network_fee: Sats(226),
        }),
        Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: 4,
            txid: id,
            height: 840_010,
        }),
        Event::PaymentFailed(PaymentFailed {
            payment_id: 5,
            reason: "conflicting spend confirmed: x".into(),
        }),
        Event::BlockCandidate(BlockCandidate {
            height: 840_000,
            block_id: id,
            reward: Sats(312_500_000),
            network_target: t,
            finder: share.address.clone(),
            worker: share.worker.clone(),
            time_ms: 4,
            block: vec![0xde, 0xad],
        }),
        Event::PaymentSigned(PaymentSigned {
            payment_id: 4,
            txid: id,
            raw_tx: vec![2, 0, 0, 0],
            network_fee: Sats(226),
        }),
        Event::JobCreated(job(None)),
        Event::JobCreated(job(Some(LedgerAnchor {
            seq: 41,
            hash: [0xab; 32],
        }))),
        Event::ShareWithWork(ShareWithWork {
            share,
            work: ShareWork {
                extranonce1: vec![0, 0, 0, 1],
                extranonce2: vec![0xff; 8],
                ntime: 1_700_000_001,
                nonce: 0xdead_beef,
                version: 0x2000_e000,
            },
        }),
        Event::StreamBatch(StreamBatch {
            edge_id: 2,
            boot_id: 0x0123_4567_89ab_cdef,
            counter: 42,
            stream_seq: 1_000,
            events: 3,
            sealed_ms: 1_700_000_000_123,
        }),
    ]
}

/// The variant table's rows: (index, variant name).
fn documented_variants() -> Vec<(u32, String)> {
    let at = DOC
        .find("| index | variant | fields, in order |")
        .expect("docs/ledger.md has the variant table");
    table_rows(&DOC[at..])
        .into_iter()
        .map(|row| (row[0].parse().expect("an index"), row[1].clone()))
        .collect()
}

#[test]
fn every_variant_encodes_by_the_documents_rules_and_table() {
    let table = documented_variants();
    assert_eq!(table.len(), 16, "the table lists every variant");
    for (i, (index, name)) in table.iter().enumerate() {
        assert_eq!(*index as usize, i, "the table is in index order");
        assert!(!name.is_empty());
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in one_of_each() {
        let bytes = encode_event(&e).unwrap();
        assert_eq!(encode_by_the_doc(&e), bytes, "{}", e.kind());
        assert_eq!(decode_event(1, &bytes).unwrap(), e);
        let index = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        assert_eq!(
            table[index as usize].1,
            e.kind(),
            "variant index {index} is {} in the table",
            table[index as usize].1
        );
        // The JSON's one key is the variant name (or the whole value is, for no fields).
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(
            json.as_object().map(|o| o.keys().next().unwrap().as_str()),
            Some(e.kind())
        );
        seen.insert(index);
    }
    assert_eq!(seen.len(), 16, "the test covers every variant");
}

#[test]
fn the_json_forms_are_as_documented() {
    use pool_core::event::*;
    let id = BlockId(std::array::from_fn(|i| i as u8));
    // Block ids and txids reversed, merkle branch and anchor hash in order, targets big-endian.
    let job = serde_json::to_value(JobCreated {
        job_id: 1,
        height: 2,
        prev_hash: id,
        coinbase1: vec![0xab],
        coinbase2: vec![0xcd],
        merkle_branch: vec![id.0],
        version: 3,
        bits: 4,
        ntime: 5,
        anchor: Some(LedgerAnchor { seq: 6, hash: id.0 }),
    })
    .unwrap();
    let in_order = hex::encode(id.0);
    let reversed = id.to_display_hex();
    assert_ne!(in_order, reversed);
    assert_eq!(job["prev_hash"], reversed);
    assert_eq!(job["merkle_branch"][0], in_order);
    assert_eq!(job["anchor"]["hash"], in_order);
    assert_eq!(job["anchor"]["seq"], 6);
    assert_eq!(job["coinbase1"], "ab");
    let t = Target::from_compact(0x1d00_ffff).unwrap();
    assert_eq!(
        serde_json::to_value(t).unwrap(),
        format!("00000000ffff{}", "0".repeat(52))
    );
    assert_eq!(serde_json::to_value(PayoutScheme::Prop).unwrap(), "Prop");
    assert_eq!(
        serde_json::to_value(NetworkFeePayer::Miners).unwrap(),
        "Miners"
    );
    let sent = serde_json::to_value(Event::PaymentSent(PaymentSent {
        payment_id: 1,
        txid: id,
        network_fee: pool_core::Sats(2),
    }))
    .unwrap();
    assert_eq!(sent["PaymentSent"]["txid"], reversed);
    assert_eq!(sent["PaymentSent"]["network_fee"], 2);
}
