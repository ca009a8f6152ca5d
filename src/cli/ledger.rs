//! `obtc-pool ledger verify|head|dump`: auditor commands on a stopped pool's ledger directory
//! (or a copy of it). They open the ledger read-only and never create one.

use anyhow::Context;
use clap::Subcommand;
use ledger::Ledger;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Verify the whole hash chain; exit non-zero at the first bad record.
    Verify {
        #[arg(long)]
        data: PathBuf,
    },
    /// Print the head: last sequence number and its hash.
    Head {
        #[arg(long)]
        data: PathBuf,
    },
    /// Print records as text or JSON lines.
    Dump {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long)]
        limit: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Verify, then replay every record: payout rules, blocks and credits, balances, totals.
    Balances {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Verify { data } => verify(&data),
        LedgerCommand::Head { data } => head(&data),
        LedgerCommand::Dump {
            data,
            from,
            limit,
            json,
        } => dump(&data, from, limit, json),
        LedgerCommand::Balances { data, json } => super::replay::balances(open(&data)?, json),
    }
}

fn open(dir: &Path) -> anyhow::Result<Ledger> {
    Ok(Ledger::open_read_only(dir)?)
}

fn verify(dir: &Path) -> anyhow::Result<ExitCode> {
    let ledger = open(dir)?;
    match ledger.verify() {
        Ok(report) => {
            match report.head {
                Some(h) => println!(
                    "ledger intact: {} records checked in {} batches; head seq {} hash {}",
                    report.records,
                    report.batches,
                    h.seq,
                    hex::encode(h.hash)
                ),
                None => println!("ledger intact: empty (0 records)"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(bad) => {
            println!(
                "ledger verification FAILED at record {}: {}",
                bad.seq, bad.problem
            );
            eprintln!("first bad sequence number: {}", bad.seq);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn head(dir: &Path) -> anyhow::Result<ExitCode> {
    let ledger = open(dir)?;
    match ledger.head() {
        Some(h) => println!("seq {}\nhash {}", h.seq, hex::encode(h.hash)),
        None => println!("empty ledger: no records"),
    }
    Ok(ExitCode::SUCCESS)
}

fn dump(dir: &Path, from: u64, limit: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let ledger = open(dir)?;
    let to = limit.map_or(u64::MAX, |n| from.saturating_add(n));
    let mut out = BufWriter::new(io::stdout().lock());
    for record in ledger.read_range(from, to) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                out.flush().context("writing the dump")?;
                eprintln!("error: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        let line = if json {
            serde_json::json!({
                "seq": record.seq,
                "time_ms": record.time_ms,
                "version": record.version,
                "hash": hex::encode(record.hash),
                "kind": record.event.kind(),
                "event": record.event,
            })
            .to_string()
        } else {
            format!(
                "{} {} v{} {} {:?}",
                record.seq,
                record.time_ms,
                record.version,
                hex::encode(record.hash),
                record.event
            )
        };
        if let Err(e) = writeln!(out, "{line}") {
            // A closed pipe (`| head`) ends the dump quietly.
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("writing the dump");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing the dump"),
        _ => Ok(ExitCode::SUCCESS),
    }
}
