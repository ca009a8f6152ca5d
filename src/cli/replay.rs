//! `obtc-pool ledger balances --data DIR [--json]`: the auditor's replay. Verifies the ledger's
//! hash chain first (a ledger that does not verify gets no report: the first bad sequence number
//! is printed and the exit is non-zero), then folds every record through a fresh
//! [`Projection`] and prints what the pool owes whom: the payout rules recorded, each found block
//! with its status, fee and credits, per-address balances, pool totals with the conservation
//! check (sum of balances == rewards of non-orphaned blocks) and any anomalies.
//!
//! Output is a deterministic function of the ledger (addresses in `BTreeMap` order, blocks in
//! found order): two auditors replaying the same ledger get the same bytes. Amounts are integer
//! satoshis, shown with whole coins (8 decimals) beside them; `--json` prints one JSON document
//! with the same content, amounts in satoshis.

use super::run::describe_rule;
use anyhow::Context;
use ledger::archive::ArchiveReader;
use ledger::Ledger;
use pool_core::event::{PayoutAddress, PayoutRule, PayoutScheme};
use pool_core::Sats;
use projections::{
    Anomaly, Balance, BlockStatus, BlockView, PaymentView, Projection, ProjectionConfig,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// Runs the command: verify, replay, print. Exit 1 if the ledger does not verify or money is not
/// conserved (the report is still printed in the second case).
pub fn balances(ledger: Ledger, archives: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    // The archives' headers first: they must join the live ledger before anything is replayed
    // (their content is checked as it is replayed).
    let mut readers = Vec::with_capacity(archives.len());
    for path in archives {
        match ArchiveReader::open(path) {
            Ok(r) => readers.push((path.clone(), r)),
            Err(e) => {
                println!(
                    "archive {} verification FAILED: {e}; refusing to report balances",
                    path.display()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let headers: Vec<_> = readers.iter().map(|(_, r)| *r.header()).collect();
    if let Err(line) = super::ledger::join(&ledger, &headers)? {
        println!("{line}; refusing to report balances");
        return Ok(ExitCode::FAILURE);
    }
    if let Err(bad) = ledger.verify() {
        println!(
            "ledger verification FAILED at record {}: {}; refusing to report balances",
            bad.seq, bad.problem
        );
        eprintln!("first bad sequence number: {}", bad.seq);
        return Ok(ExitCode::FAILURE);
    }
    let report = match replay_with(&ledger, readers)? {
        Ok(report) => report,
        Err(line) => {
            println!("{line}; refusing to report balances");
            return Ok(ExitCode::FAILURE);
        }
    };
    let text = if json {
        let mut doc = serde_json::to_string_pretty(&report).context("encoding the report")?;
        doc.push('\n');
        doc
    } else {
        render_text(&report, ledger.dir())
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the report")
        }
        _ => {}
    }
    if !report.totals.conserved {
        eprintln!(
            "error: balances sum to {} sat but the rewards of non-orphaned blocks are {} sat",
            report.totals.balances_sum, report.totals.rewards.0
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Folds every record of `ledger` through a fresh projection and collects the report.
pub fn replay(ledger: &Ledger) -> anyhow::Result<BalancesReport> {
    match replay_with(ledger, Vec::new())? {
        Ok(report) => Ok(report),
        Err(line) => anyhow::bail!("{line}"),
    }
}

/// [`replay`] of the archives' records (checked as they are read, each archive's snapshot
/// compared with the replay at its cut) and then the live ledger's. `Ok(Err(line))`: an archive
/// does not verify.
fn replay_with(
    ledger: &Ledger,
    archives: Vec<(PathBuf, ArchiveReader)>,
) -> anyhow::Result<Result<BalancesReport, String>> {
    // Only `blocks_due_for_maturity` reads the maturity, and the report does not use it.
    let mut projection = Projection::new(ProjectionConfig::default());
    let mut records = 0u64;
    for (path, mut reader) in archives {
        let failed = |e: &dyn std::fmt::Display| {
            format!("archive {} verification FAILED: {e}", path.display())
        };
        loop {
            match reader.next_records() {
                Ok(Some(batch)) => {
                    for record in batch {
                        projection
                            .apply(record.seq, &record.event)
                            .with_context(|| format!("replaying archived record {}", record.seq))?;
                        records += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => return Ok(Err(failed(&e))),
            }
        }
        let image = match reader.finish() {
            Ok(image) => image,
            Err(e) => return Ok(Err(failed(&e))),
        };
        let archived = match crate::live::snapshot::parse(image)
            .map_err(|e| e.to_string())
            .and_then(|f| Projection::from_snapshot(f.projection()).map_err(|e| e.to_string()))
        {
            Ok(p) => p,
            Err(e) => return Ok(Err(failed(&format!("its snapshot: {e}")))),
        };
        if !same_state(&archived, &projection) {
            return Ok(Err(failed(
                &"its snapshot is not the state its records replay to",
            )));
        }
    }
    for record in ledger.read_from(projection.next_seq()) {
        let record = record.context("reading the ledger")?;
        projection
            .apply(record.seq, &record.event)
            .with_context(|| format!("replaying record {}", record.seq))?;
        records += 1;
    }
    let totals = projection.pool_totals();
    let balances_sum = totals.balances.total_credited();
    Ok(Ok(BalancesReport {
        records,
        head: ledger.head().map(|h| HeadView {
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
    }))
}

/// Whether an archive's snapshot holds the state the audit's replay reached at its cut. The
/// pool's projection forgets old shares (and the audit's keeps them all), so their bytes differ;
/// everything a pool serves, credits or pays from must be equal. Every chain preset has the
/// default maturity, so the settings compare equal too.
fn same_state(archived: &Projection, replayed: &Projection) -> bool {
    archived.next_seq() == replayed.next_seq()
        && archived.config() == replayed.config()
        && archived.rule_history() == replayed.rule_history()
        && archived.blocks() == replayed.blocks()
        && archived.open_candidates() == replayed.open_candidates()
        && archived.balances() == replayed.balances()
        && archived.pool_totals() == replayed.pool_totals()
        && archived.payments() == replayed.payments()
        && archived.open_payments() == replayed.open_payments()
        && archived.anomalies() == replayed.anomalies()
        && archived.share_count() == replayed.share_count()
        && archived.worker_stats() == replayed.worker_stats()
        && archived.address_stats() == replayed.address_stats()
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
pub fn render_text(r: &BalancesReport, dir: &Path) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut o, r, dir);
    o
}

fn write_text(o: &mut String, r: &BalancesReport, dir: &Path) -> std::fmt::Result {
    match &r.head {
        Some(h) => writeln!(
            o,
            "ledger {}: {} records, head seq {} hash {}; hash chain verified",
            dir.display(),
            r.records,
            h.seq,
            h.hash
        )?,
        None => writeln!(o, "ledger {}: empty (0 records)", dir.display())?,
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
