//! The audit's report: what `ledger balances` always printed (payout rules, blocks and their
//! credits, per-address balances, pool totals with the conservation check, anomalies), then
//! the sections of the work, money and anchor checks, the findings, and the verdict as the
//! last line (`audit: PASS ...` or `audit: FAIL: N problems; first: <finding>`). `--json`
//! prints the same as one document: the balances report's fields at the top level (as
//! `ledger balances --json` always had them), then `stream` (only for a ledger with stream
//! batches), `work`, `money`, `anchors`, `skipped`,
//! `findings`, `pass` and `verdict`.
//!
//! Output is a deterministic function of the records (addresses in `BTreeMap` order, blocks in
//! found order): two auditors replaying the same ledger get the same bytes. Amounts are integer
//! satoshis, shown with whole coins (8 decimals) beside them.

use super::anchors::AnchorReport;
use super::money::MoneyReport;
use super::stream::StreamReport;
use super::work::WorkReport;
use super::Finding;
use crate::cli::run::describe_rule;
use ledger::Head;
use pool_core::event::{PayoutAddress, PayoutRule, PayoutScheme};
use pool_core::Sats;
use projections::{Anomaly, Balance, BlockStatus, BlockView, PaymentView, Projection};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything `ledger balances` reports (the `--json` document).
#[derive(Clone, Debug, Serialize)]
pub struct BalancesReport {
    /// Records replayed.
    pub records: u64,
    /// The head the report is as of: sequence number and hash (hex).
    pub head: Option<HeadView>,
    /// The rule the next block would be credited by (the default rule if none was recorded).
    pub rule_in_force: PayoutRule,
    /// Every `PayoutRuleSet`, in ledger order.
    pub rule_history: Vec<RuleEntry>,
    /// Found blocks in found order.
    pub blocks: Vec<BlockView>,
    /// Block candidates without a verdict yet: the pool resolves them at its next start.
    pub open_candidates: Vec<OpenCandidate>,
    pub balances: BTreeMap<PayoutAddress, Balance>,
    pub payments: Vec<PaymentView>,
    pub totals: Totals,
    pub anomalies: Vec<Anomaly>,
}

#[derive(Clone, Debug, Serialize)]
pub struct OpenCandidate {
    pub block_id: pool_core::BlockId,
    pub height: u64,
    pub seq: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HeadView {
    pub seq: u64,
    pub hash: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleEntry {
    pub seq: u64,
    pub rule: PayoutRule,
}

/// Pool-wide sums and the conservation check.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub shares: u64,
    pub addresses: u64,
    pub blocks_immature: u64,
    pub blocks_matured: u64,
    pub blocks_orphaned: u64,
    pub blocks_rejected: u64,
    /// Rewards of blocks that are not orphaned.
    pub rewards: Sats,
    /// Pool fees of blocks that are not orphaned (included in the fee address's balance).
    pub pool_fees: Sats,
    /// The sum of every address's balance, field by field.
    pub balances: Balance,
    /// `immature + payable + in_flight + paid + network_fees - debt` over all addresses.
    pub balances_sum: i128,
    /// `balances_sum == rewards`.
    pub conserved: bool,
}

/// Everything the audit reports (the `--json` document).
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// Where the records came from: `ledger DIR` or `export FILE` (the text's first word; not
    /// in the JSON, which is a function of the records alone, so the same ledger audited from
    /// its directory, a copy or an export gives the same document).
    #[serde(skip)]
    pub source: String,
    /// The replay; `None` when the records were refused (the chain does not verify, an
    /// archive does not join, the export is malformed): nothing is reported from them.
    #[serde(flatten)]
    pub balances: Option<BalancesReport>,
    /// Why the records were refused, when they were: `... FAILED ...; refusing to report
    /// balances` (the line `ledger balances` always printed).
    pub refused: Option<String>,
    /// The stream batches of a scale-out core's ledger; `None` (and absent from the JSON) when
    /// the ledger has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamReport>,
    pub work: Option<WorkReport>,
    pub money: Option<MoneyReport>,
    pub anchors: Option<AnchorReport>,
    /// The checks that did not run, and why.
    pub skipped: Vec<String>,
    /// Every problem found, in the order found: the chain and export first, then the
    /// replay, stream, work, money and anchor checks.
    pub findings: Vec<Finding>,
    pub pass: bool,
    /// The last line without `audit: `: `PASS ...` or `FAIL: N problems; first: ...`.
    pub verdict: String,
}

impl AuditReport {
    /// Sets `pass` and `verdict` from the findings.
    pub fn conclude(&mut self) {
        self.pass = self.findings.is_empty();
        self.verdict = match self.findings.first() {
            None => {
                let mut checked = vec!["chain", "replay"];
                if self.stream.is_some() {
                    checked.push("stream");
                }
                if self.work.is_some() {
                    checked.push("work");
                }
                if self.money.is_some() {
                    checked.push("money");
                }
                if self.anchors.is_some() {
                    checked.push("anchors");
                }
                let at = match self.balances.as_ref().and_then(|b| b.head.as_ref()) {
                    Some(h) => format!("{} records to seq {} hash {}", h.seq + 1, h.seq, h.hash),
                    None => "0 records".to_owned(),
                };
                format!("PASS: {at}; checked {}", checked.join(", "))
            }
            Some(first) => format!(
                "FAIL: {} problem{}; first: {first}",
                self.findings.len(),
                if self.findings.len() == 1 { "" } else { "s" }
            ),
        };
    }

    /// The text report, ending with the verdict line.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut o);
        o
    }

    fn write_text(&self, o: &mut String) -> std::fmt::Result {
        if let Some(refused) = &self.refused {
            writeln!(o, "{refused}")?;
        }
        if let Some(b) = &self.balances {
            o.push_str(&render_text(b, &self.source));
        }
        if let Some(s) = &self.stream {
            write_stream(o, s)?;
        }
        if let Some(w) = &self.work {
            writeln!(
                o,
                "\nwork: {} jobs, {} shares rebuilt and checked, {} shares without work \
                 (recorded before the work fields), {} problems",
                w.jobs,
                w.shares_checked,
                w.shares_without_work,
                w.findings.len()
            )?;
        }
        if let Some(m) = &self.money {
            writeln!(
                o,
                "\nmoney against the node: {} previous-block hashes, {} block rewards, {} \
                 confirmed payments checked, {} problems",
                m.prev_hashes_checked,
                m.blocks_checked,
                m.payments_checked,
                m.findings.len()
            )?;
        }
        if let Some(a) = &self.anchors {
            writeln!(
                o,
                "\nanchors: heights {}..={} scanned, {} pool blocks, {} anchors the ledger \
                 extends, {} problems",
                a.from_height,
                a.to_height,
                a.pool_blocks,
                a.anchors_matched,
                a.findings.len()
            )?;
        }
        if !self.skipped.is_empty() {
            writeln!(o, "\nnot checked:")?;
            for s in &self.skipped {
                writeln!(o, "  {s}")?;
            }
        }
        if self.findings.is_empty() {
            writeln!(o, "\nfindings: none")?;
        } else {
            writeln!(o, "\nfindings: {}", self.findings.len())?;
            for f in &self.findings {
                writeln!(o, "  {f}")?;
            }
        }
        writeln!(o, "audit: {}", self.verdict)
    }
}

/// The stream section: one line for the batches, one per edge boot with its gaps.
fn write_stream(o: &mut String, s: &StreamReport) -> std::fmt::Result {
    writeln!(
        o,
        "\nstream batches: {} batches holding {} events from {} edge boots, {} problems",
        s.batches,
        s.events,
        s.boots.len(),
        s.findings.len() as u64 + s.findings_omitted
    )?;
    for b in &s.boots {
        let gaps = if b.gaps.is_empty() {
            "no gaps".to_owned()
        } else {
            let list: Vec<String> = b
                .gaps
                .iter()
                .map(|g| {
                    if g.from == g.to {
                        g.from.to_string()
                    } else {
                        format!("{}..={}", g.from, g.to)
                    }
                })
                .collect();
            format!(
                "{} abandoned (never acknowledged to miners): counters {}",
                b.missing,
                list.join(", ")
            )
        };
        let late = if b.late.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = b
                .late
                .iter()
                .map(|l| format!("{} (record {})", l.counter, l.seq))
                .collect();
            format!(
                "; {} late (missing, then applied after a higher counter): {}",
                b.late.len(),
                list.join(", ")
            )
        };
        writeln!(
            o,
            "  edge {} boot {:016x}: records {}..={}, {} batches, {} events ({} shares), \
             counters {}..={}, {gaps}{late}",
            b.edge_id,
            b.boot_id,
            b.first_seq,
            b.last_seq,
            b.batches,
            b.events,
            b.shares,
            b.first_counter,
            b.last_counter
        )?;
    }
    Ok(())
}

/// The balances report of a replayed projection, as of `head`.
pub fn balances_report(
    projection: &Projection,
    records: u64,
    head: Option<Head>,
) -> BalancesReport {
    let totals = projection.pool_totals();
    let balances_sum = totals.balances.total_credited();
    BalancesReport {
        records,
        head: head.map(|h| HeadView {
            seq: h.seq,
            hash: hex::encode(h.hash),
        }),
        rule_in_force: projection.rule_in_force(),
        rule_history: projection
            .rule_history()
            .iter()
            .map(|(seq, rule)| RuleEntry {
                seq: *seq,
                rule: rule.clone(),
            })
            .collect(),
        blocks: projection.blocks(),
        open_candidates: projection
            .open_candidates()
            .into_iter()
            .map(|(block_id, height, seq)| OpenCandidate {
                block_id,
                height,
                seq,
            })
            .collect(),
        balances: projection.balances(),
        payments: projection.payments(),
        totals: Totals {
            shares: projection.share_count(),
            addresses: projection.balances().len() as u64,
            blocks_immature: totals.blocks_immature,
            blocks_matured: totals.blocks_matured,
            blocks_orphaned: totals.blocks_orphaned,
            blocks_rejected: totals.blocks_rejected,
            rewards: totals.rewards,
            pool_fees: totals.pool_fees,
            balances: totals.balances,
            balances_sum,
            conserved: balances_sum == i128::from(totals.rewards.0),
        },
        anomalies: projection.anomalies().to_vec(),
    }
}

/// `5000000000 sat (50.00000000)`.
fn amount(s: Sats) -> String {
    format!("{} sat ({s})", s.0)
}

fn addresses(n: usize) -> String {
    if n == 1 {
        "1 address".to_owned()
    } else {
        format!("{n} addresses")
    }
}

fn status(s: BlockStatus) -> &'static str {
    match s {
        BlockStatus::Immature => "immature",
        BlockStatus::Matured => "matured",
        BlockStatus::Orphaned => "orphaned",
    }
}

fn scheme(s: &PayoutScheme) -> String {
    match s {
        PayoutScheme::Pplns {
            window_numerator,
            window_denominator,
        } => format!("PPLNS {window_numerator}/{window_denominator}"),
        PayoutScheme::Prop => "PROP".to_owned(),
        PayoutScheme::Solo => "SOLO".to_owned(),
    }
}

/// The human-readable report.
pub fn render_text(r: &BalancesReport, source: &str) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut o, r, source);
    o
}

fn write_text(o: &mut String, r: &BalancesReport, source: &str) -> std::fmt::Result {
    match &r.head {
        Some(h) => writeln!(
            o,
            "{source}: {} records, head seq {} hash {}; hash chain verified",
            r.records, h.seq, h.hash
        )?,
        None => writeln!(o, "{source}: empty (0 records)")?,
    }

    writeln!(o, "\npayout rules recorded: {}", r.rule_history.len())?;
    for e in &r.rule_history {
        writeln!(o, "  seq {}: {}", e.seq, describe_rule(&e.rule))?;
    }
    if r.rule_history.is_empty() {
        writeln!(o, "  none: blocks are credited by the default rule")?;
    }
    writeln!(o, "rule in force: {}", describe_rule(&r.rule_in_force))?;

    let t = &r.totals;
    writeln!(
        o,
        "\nblocks found: {} ({} immature, {} matured, {} orphaned); {} rejected by the node",
        r.blocks.len(),
        t.blocks_immature,
        t.blocks_matured,
        t.blocks_orphaned,
        t.blocks_rejected
    )?;
    if !r.open_candidates.is_empty() {
        writeln!(
            o,
            "open block candidates (no verdict yet; the pool resolves them at its next start): {}",
            r.open_candidates.len()
        )?;
        for c in &r.open_candidates {
            writeln!(
                o,
                "  height {} block {} at seq {}",
                c.height, c.block_id, c.seq
            )?;
        }
    }
    for b in &r.blocks {
        writeln!(
            o,
            "  height {} block {} {} ({}), {} by {}{}{}",
            b.height,
            b.block_id,
            status(b.status),
            scheme(&b.scheme),
            match b.candidate_seq {
                Some(c) => format!("candidate at seq {c}, found at seq {}", b.found_seq),
                None => format!("found at seq {}", b.found_seq),
            },
            b.finder,
            if b.worker.0.is_empty() { "" } else { "." },
            b.worker
        )?;
        writeln!(o, "    reward    {}", amount(b.reward))?;
        let fee_to = if b.fee_address.0.is_empty() {
            String::new()
        } else {
            format!(" to {}", b.fee_address)
        };
        writeln!(o, "    pool fee  {}{fee_to}", amount(b.fee))?;
        let credited: u64 = b.credits.values().map(|s| s.0).sum();
        writeln!(
            o,
            "    credits   {} over {}{}",
            amount(Sats(credited)),
            addresses(b.credits.len()),
            if b.status == BlockStatus::Orphaned {
                " (withdrawn: the block is orphaned)"
            } else {
                ""
            }
        )?;
        for (address, credit) in &b.credits {
            writeln!(o, "      {address}  {}", amount(*credit))?;
        }
    }

    writeln!(o, "\nbalances: {}", addresses(r.balances.len()))?;
    for (address, b) in &r.balances {
        writeln!(o, "  {address}")?;
        for (label, value) in [
            ("immature", b.immature),
            ("payable", b.payable),
            ("in flight", b.in_flight),
            ("paid", b.paid),
            ("network fees", b.network_fees),
            ("debt", b.debt),
        ] {
            writeln!(o, "    {label:<13}{}", amount(value))?;
        }
    }

    if !r.payments.is_empty() {
        writeln!(o, "\npayments: {}", r.payments.len())?;
        for p in &r.payments {
            let total: u64 = p.outputs.iter().map(|(_, s)| s.0).sum();
            writeln!(
                o,
                "  payment {} {:?}: {} outputs, {}, network fee {} ({:?} pays){}",
                p.payment_id,
                p.status,
                p.outputs.len(),
                amount(Sats(total)),
                amount(p.network_fee),
                p.network_fee_payer,
                p.txid.map(|t| format!(", txid {t}")).unwrap_or_default()
            )?;
        }
    }

    writeln!(o, "\npool totals")?;
    writeln!(o, "  shares                         {}", t.shares)?;
    writeln!(o, "  rewards of non-orphaned blocks {}", amount(t.rewards))?;
    writeln!(
        o,
        "  pool fees                      {}",
        amount(t.pool_fees)
    )?;
    let b = &t.balances;
    for (label, value) in [
        ("immature", b.immature),
        ("payable", b.payable),
        ("in flight", b.in_flight),
        ("paid", b.paid),
        ("network fees", b.network_fees),
        ("debt", b.debt),
    ] {
        writeln!(o, "  {:<31}{}", format!("sum of {label}"), amount(value))?;
    }
    writeln!(
        o,
        "  conservation: immature + payable + in flight + paid + network fees - debt = {} sat {} rewards {} sat: {}",
        t.balances_sum,
        if t.conserved { "==" } else { "!=" },
        t.rewards.0,
        if t.conserved { "OK" } else { "MISMATCH" }
    )?;

    if r.anomalies.is_empty() {
        writeln!(o, "\nanomalies: none")?;
    } else {
        writeln!(
            o,
            "\nanomalies: {} (events that did not fit and changed nothing)",
            r.anomalies.len()
        )?;
        for a in &r.anomalies {
            writeln!(o, "  seq {}: {:?}", a.seq, a.kind)?;
        }
    }
    Ok(())
}
