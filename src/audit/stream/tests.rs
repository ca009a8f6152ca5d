//! Synthetic scale-out ledgers: two edges' batches as a core writes them (a `StreamBatch`, then
//! its events), with the core's own records between them.

use super::*;
use crate::audit::source::Source;
use crate::audit::work::tests::fixture::{job, pool, prev, share};
use crate::audit::{run_audit, AuditOptions};
use pool_core::event::{
    BlockMatured, JobCreated, NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme,
};
use pool_core::BlockId;

const BOOT_A: u64 = 0x00aa_0000_0000_0001;
const BOOT_B: u64 = 0x00bb_0000_0000_0002;

/// Edge `edge`'s job number `n` (ids start at `edge << 48 | 1`).
fn edge_job(edge: u16, n: u64, height: u64) -> JobCreated {
    job(&pool(), u64::from(edge) << 48 | n, height, prev(1), None)
}

fn header(edge: u16, boot: u64, counter: u64, stream_seq: u64, events: u32) -> Event {
    Event::StreamBatch(StreamBatch {
        edge_id: edge,
        boot_id: boot,
        counter,
        stream_seq,
        events,
        sealed_ms: 1_700_000_000_000 + stream_seq,
    })
}

/// A `StreamBatch` and its events.
fn batch(edge: u16, boot: u64, counter: u64, stream_seq: u64, events: Vec<Event>) -> Vec<Event> {
    let mut out = vec![header(edge, boot, counter, stream_seq, events.len() as u32)];
    out.extend(events);
    out
}

/// A record only the core writes (the payout rule at its start).
fn rule() -> Event {
    Event::PayoutRuleSet(PayoutRule {
        scheme: PayoutScheme::Prop,
        fee_bps: 0,
        fee_address: PayoutAddress(String::new()),
        network_fee_payer: NetworkFeePayer::Pool,
    })
}

fn matured() -> Event {
    Event::BlockMatured(BlockMatured {
        block_id: BlockId([5; 32]),
        height: 1,
    })
}

/// Edge 1 boot A: batches 1, 2, 4 (3 abandoned); edge 2 boot B: batches 1, 2; a core record
/// between them. Every share is on its own edge's job, every share's work is real.
fn honest_cluster() -> Vec<Event> {
    let (j1, j2) = (edge_job(1, 1, 101), edge_job(2, 1, 101));
    let s = |j: &JobCreated, en2| Event::ShareWithWork(share(j, 0x0100_0000, en2));
    let t = |j: &JobCreated, en2| Event::ShareWithWork(share(j, 0x0200_0000, en2));
    let mut events = Vec::new();
    events.extend(batch(1, BOOT_A, 1, 1, vec![Event::JobCreated(j1.clone())]));
    events.extend(batch(2, BOOT_B, 1, 2, vec![Event::JobCreated(j2.clone())]));
    events.extend(batch(1, BOOT_A, 2, 3, vec![s(&j1, 0), s(&j1, 1)]));
    events.push(rule());
    events.extend(batch(2, BOOT_B, 2, 5, vec![t(&j2, 0)]));
    events.extend(batch(1, BOOT_A, 4, 6, vec![s(&j1, 2)]));
    events
}

fn run(events: &[Event]) -> StreamReport {
    let mut check = StreamCheck::default();
    for (seq, e) in events.iter().enumerate() {
        check.apply(seq as u64, e);
    }
    check.finish()
}

fn messages(report: &StreamReport) -> Vec<String> {
    report.findings.iter().map(|f| f.to_string()).collect()
}

#[test]
fn an_honest_cluster_ledger_reports_each_edge_boot_and_its_gap_as_information() {
    let report = run(&honest_cluster());
    assert_eq!(messages(&report), Vec::<String>::new());
    assert_eq!((report.batches, report.events), (5, 6));
    let boots: Vec<_> = report
        .boots
        .iter()
        .map(|b| {
            (
                b.edge_id,
                b.boot_id,
                b.batches,
                b.events,
                b.shares,
                b.first_counter,
                b.last_counter,
                b.missing,
            )
        })
        .collect();
    assert_eq!(
        boots,
        vec![(1, BOOT_A, 3, 4, 3, 1, 4, 1), (2, BOOT_B, 2, 2, 1, 1, 2, 0)]
    );
    assert_eq!(report.boots[0].gaps, vec![CounterGap { from: 3, to: 3 }]);
    assert_eq!(
        (report.boots[0].first_seq, report.boots[0].last_seq),
        (0, 10)
    );
}

#[test]
fn a_batch_applied_twice_is_a_finding() {
    let mut events = honest_cluster();
    let j1 = edge_job(1, 1, 101);
    let again = Event::ShareWithWork(share(&j1, 0x0100_0000, 1));
    events.extend(batch(1, BOOT_A, 2, 7, vec![again]));
    let report = run(&events);
    assert_eq!(
        messages(&report),
        vec![format!(
            "stream: record 12: batch e1-b{BOOT_A:016x}-c2 applied twice: its boot's counters \
             1..=4 (last at record 10) already include it"
        )]
    );
}

#[test]
fn a_late_counter_fills_its_gap_as_information() {
    let mut events = honest_cluster();
    events.extend(batch(1, BOOT_A, 3, 7, vec![]));
    let report = run(&events);
    assert_eq!(messages(&report), Vec::<String>::new());
    assert_eq!(report.boots[0].missing, 0);
    assert_eq!(
        report.boots[0].late,
        vec![LateBatch {
            counter: 3,
            seq: 12
        }]
    );
    // A gap split by a late counter keeps both sides.
    let mut events = batch(4, 7, 1, 1, vec![]);
    events.extend(batch(4, 7, 6, 2, vec![]));
    events.extend(batch(4, 7, 3, 3, vec![]));
    let report = run(&events);
    assert_eq!(
        report.boots[0].gaps,
        vec![CounterGap { from: 2, to: 2 }, CounterGap { from: 4, to: 5 }]
    );
    assert_eq!(report.boots[0].missing, 3);
}

#[test]
fn a_boot_starting_past_counter_one_reports_the_first_counters_missing() {
    let j = edge_job(3, 1, 101);
    let report = run(&batch(3, 9, 5, 1, vec![Event::JobCreated(j)]));
    assert_eq!(messages(&report), Vec::<String>::new());
    assert_eq!(report.boots[0].gaps, vec![CounterGap { from: 1, to: 4 }]);
    assert_eq!(report.boots[0].missing, 4);
}

#[test]
fn a_stream_seq_not_increasing_is_a_finding() {
    let mut events = honest_cluster();
    // Edge 2's second batch (record 8) claims the sequence of edge 1's second.
    let Event::StreamBatch(b) = &mut events[8] else {
        panic!("record 8 is a batch")
    };
    b.stream_seq = 3;
    let report = run(&events);
    assert_eq!(
        messages(&report),
        vec![format!(
            "stream: record 8: batch e2-b{BOOT_B:016x}-c2 has stream_seq 3, not above the \
             previous batch's 3 (record 4): the core applies the stream in order"
        )]
    );
}

#[test]
fn a_batch_running_past_the_ledger_end_or_over_another_batch_is_a_finding() {
    let mut events = honest_cluster();
    let last = events.len() - 2;
    let Event::StreamBatch(b) = &mut events[last] else {
        panic!("the last batch's header")
    };
    b.events = 3;
    let report = run(&events);
    assert_eq!(
        messages(&report),
        vec![format!(
            "stream: record {last}: batch e1-b{BOOT_A:016x}-c4 says 3 events follow, but the \
             ledger ends 2 records short"
        )]
    );

    let mut events = honest_cluster();
    let Event::StreamBatch(b) = &mut events[2] else {
        panic!("record 2 is a batch")
    };
    b.events = 2;
    let report = run(&events);
    assert_eq!(report.findings.len(), 1, "{:?}", messages(&report));
    assert_eq!(report.findings[0].seq, Some(4));
    assert!(messages(&report)[0].contains(&format!(
        "StreamBatch e1-b{BOOT_A:016x}-c2 inside the 2 events of batch e2-b{BOOT_B:016x}-c1 \
         (record 2)"
    )));
}

#[test]
fn an_event_no_edge_publishes_in_a_batch_is_a_finding() {
    let mut events = honest_cluster();
    events.extend(batch(2, BOOT_B, 3, 9, vec![matured(), rule()]));
    let report = run(&events);
    assert_eq!(report.findings.len(), 2, "{:?}", messages(&report));
    assert!(messages(&report)[0].contains(&format!(
        "record 13: a BlockMatured in batch e2-b{BOOT_B:016x}-c3 (record 12): an edge never \
         publishes one"
    )));
    assert!(messages(&report)[1].contains("a PayoutRuleSet in batch"));
}

#[test]
fn a_share_on_another_edges_job_or_another_boots_is_a_finding() {
    // Edge 2 publishing a share on edge 1's job id.
    let mut events = honest_cluster();
    let j1 = edge_job(1, 1, 101);
    events.extend(batch(
        2,
        BOOT_B,
        3,
        9,
        vec![Event::ShareWithWork(share(&j1, 0x0200_0000, 9))],
    ));
    let report = run(&events);
    assert_eq!(
        messages(&report),
        vec![format!(
            "stream: record 13: share on job {} in batch e2-b{BOOT_B:016x}-c3 of edge 2: the \
             job id is edge 1's (job_id >> 48)",
            1u64 << 48 | 1
        )]
    );

    // Edge 1 restarted (boot C) and sends a share on job id 1 that only boot A created.
    let mut events = honest_cluster();
    events.extend(batch(
        1,
        0xcc,
        1,
        9,
        vec![Event::ShareWithWork(share(&j1, 0x0100_0001, 0))],
    ));
    let report = run(&events);
    assert_eq!(
        messages(&report),
        vec![format!(
            "stream: record 13: share in a batch of edge 1 boot 00000000000000cc on job {}, \
             whose latest JobCreated (record 1) is in a batch of edge 1 boot {BOOT_A:016x}",
            1u64 << 48 | 1
        )]
    );

    // A job in a batch with another edge's id, and a share outside any batch on an edge's job.
    let mut events = honest_cluster();
    events.extend(batch(
        2,
        BOOT_B,
        3,
        9,
        vec![Event::JobCreated(edge_job(1, 2, 102))],
    ));
    events.push(Event::ShareWithWork(share(&j1, 0x0100_0000, 7)));
    let report = run(&events);
    let m = messages(&report);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].contains("record 13: job 281474976710658 in batch e2-"),
        "{m:?}"
    );
    assert!(
        m[1].contains("record 14: share in no stream batch on job 281474976710657"),
        "{m:?}"
    );
}

#[test]
fn an_all_in_one_ledger_has_nothing_to_report() {
    let pool = pool();
    let j = job(&pool, 1, 101, prev(1), None);
    let events = vec![
        Event::JobCreated(j.clone()),
        Event::ShareWithWork(share(&j, 7, 0)),
    ];
    let report = run(&events);
    assert_eq!(report, StreamReport::default());
}

/// The whole audit of a cluster ledger on disk and of its export: it passes with the stream
/// and the work checked, and the text and JSON name every edge boot. A ledger without batches
/// keeps its report as it was (no `stream` key).
#[test]
fn the_audit_of_a_cluster_ledger_passes_and_reports_its_edge_boots() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("ledger");
    let ledger = ledger::Ledger::open(&ledger_dir).unwrap();
    // As the core appends: one batch (header and events) per append, its own records apart.
    let events = honest_cluster();
    let mut at = 0;
    while at < events.len() {
        let n = match &events[at] {
            Event::StreamBatch(b) => 1 + b.events as usize,
            _ => 1,
        };
        ledger
            .append_batch_blocking(events[at..at + n].to_vec())
            .unwrap();
        at += n;
    }
    let export = dir.path().join("export.jsonl");
    let mut out = std::fs::File::create(&export).unwrap();
    crate::audit::export::write_ledger(&ledger, &mut out).unwrap();
    drop(out);
    ledger.close_blocking();
    let options = AuditOptions {
        pool: Some(pool()),
        ..AuditOptions::default()
    };
    let mut texts = Vec::new();
    for source in [
        Source::Data {
            dir: ledger_dir,
            archives: Vec::new(),
        },
        Source::Export(export),
    ] {
        let report = run_audit(&source, &options).unwrap();
        assert!(report.pass, "{:?}", report.findings);
        assert!(
            report
                .verdict
                .ends_with("checked chain, replay, stream, work"),
            "{}",
            report.verdict
        );
        let text = report.render_text();
        assert!(
            text.contains(
                "stream batches: 5 batches holding 6 events from 2 edge boots, 0 problems"
            ),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "edge 1 boot {BOOT_A:016x}: records 0..=10, 3 batches, 4 events (3 shares), \
                 counters 1..=4, 1 abandoned (never acknowledged to miners): counters 3"
            )),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["stream"]["boots"][1]["edge_id"], 2);
        assert_eq!(json["stream"]["boots"][0]["gaps"][0]["from"], 3);
        texts.push(text.lines().skip(1).collect::<Vec<_>>().join("\n"));
    }
    assert_eq!(
        texts[0], texts[1],
        "the directory and its export audit alike"
    );

    let plain = tempfile::tempdir().unwrap();
    let ledger = ledger::Ledger::open(plain.path()).unwrap();
    let j = job(&pool(), 1, 101, prev(1), None);
    ledger
        .append_batch_blocking(vec![Event::JobCreated(j)])
        .unwrap();
    ledger.close_blocking();
    let report = run_audit(
        &Source::Data {
            dir: plain.path().to_path_buf(),
            archives: Vec::new(),
        },
        &options,
    )
    .unwrap();
    assert!(report.pass, "{:?}", report.findings);
    assert!(report.stream.is_none());
    assert!(serde_json::to_value(&report)
        .unwrap()
        .get("stream")
        .is_none());
    assert!(!report.render_text().contains("stream batches"));
}
