//! `obtc-pool ledger verify|head|dump|balances`: auditor commands on a stopped pool's ledger
//! directory (or a copy of it). They open the ledger read-only and never create one. `verify`
//! and `balances` take the sealed archives of a ledger whose prefix was dropped
//! (`--archive FILE`, repeatable, oldest first) and prove they join the live ledger.
//! `balances` is `obtc-pool audit --data` without a pool identity ([`super::audit`]).
//!
//! `obtc-pool ledger export --data DIR|--rpc URL --out FILE`: the export format
//! ([`pool_core::export`], docs/ledger.md), every record's decoded event beside the exact bytes
//! its chain hash covers, from a stopped pool's ledger or paged from a running pool's
//! `ledger_export` (no token; the pool reads in the background). Both write the same bytes for
//! the same records: the records from the ledger's first live record to its head when the
//! export starts.
//!
//! `obtc-pool ledger archive`: seals a prefix of the ledger into an archive file
//! ([`ledger::archive`]) and, with `--drop`, drops it from the ledger: on a stopped pool
//! (`--data DIR`) or through a running pool's JSON-RPC (`--rpc URL --token-file FILE`).

use crate::live::{archive as sealing, snapshot};
use anyhow::Context;
use clap::Subcommand;
use ledger::archive::{self, ArchiveHeader};
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
        /// A sealed archive of the ledger's dropped prefix (repeatable, oldest first): each is
        /// verified and the chain proved to join onto the live ledger.
        #[arg(long = "archive", value_name = "FILE")]
        archives: Vec<PathBuf>,
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
        /// The sealed archives before the live ledger (repeatable, oldest first): replayed first,
        /// each one's snapshot checked against the replay at its cut.
        #[arg(long = "archive", value_name = "FILE")]
        archives: Vec<PathBuf>,
    },
    /// Export every record (from the first live one to the head) as JSON lines: the decoded
    /// event beside the exact bytes its chain hash covers, in hex (`obtc-pool audit --export`
    /// checks one against the other).
    Export {
        /// The ledger directory of a stopped pool (or a copy).
        #[arg(long, conflicts_with = "rpc", required_unless_present = "rpc")]
        data: Option<PathBuf>,
        /// A running pool's `[rpc] listen` (`http://127.0.0.1:PORT`): paged from `ledger_export`.
        #[arg(long)]
        rpc: Option<String>,
        /// The file to write (never overwritten; written to FILE.partial and renamed when
        /// complete).
        #[arg(long)]
        out: PathBuf,
    },
    /// Seal the records below SEQ (lowered to the safe cut: nothing an open payment, an immature
    /// block or a pending candidate needs, rounded down to a stored value boundary) into a new
    /// archive file; with --drop, drop them from the ledger once the archive is verified.
    Archive {
        /// The ledger directory of a stopped pool.
        #[arg(long, conflicts_with = "rpc", required_unless_present = "rpc")]
        data: Option<PathBuf>,
        /// A running pool's `[rpc] listen` (`http://127.0.0.1:PORT`): the pool does it.
        #[arg(long, requires = "token_file")]
        rpc: Option<String>,
        /// The pool's `[rpc] token_file`.
        #[arg(long)]
        token_file: Option<PathBuf>,
        #[arg(long, value_name = "SEQ")]
        before: u64,
        /// The archive file to write (never overwritten; with --rpc, the pool writes it).
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        drop: bool,
    },
}

pub fn run(cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCommand::Verify { data, archives } => verify(&data, &archives),
        LedgerCommand::Head { data } => head(&data),
        LedgerCommand::Dump {
            data,
            from,
            limit,
            json,
        } => dump(&data, from, limit, json),
        LedgerCommand::Balances {
            data,
            json,
            archives,
        } => super::audit::audit(
            &crate::audit::source::Source::Data {
                dir: data,
                archives,
            },
            &crate::audit::AuditOptions::default(),
            json,
        ),
        LedgerCommand::Export { data, rpc, out } => super::export::run(data, rpc, &out),
        LedgerCommand::Archive {
            data,
            rpc,
            token_file,
            before,
            out,
            drop,
        } => match (data, rpc, token_file) {
            (Some(data), None, _) => archive_stopped(&data, before, &out, drop),
            (None, Some(url), Some(token_file)) => {
                archive_running(url, token_file, before, &out, drop)
            }
            _ => anyhow::bail!("give --data DIR (a stopped pool) or --rpc URL --token-file FILE"),
        },
    }
}

fn print_archived(r: &payout::api::ArchiveReply) {
    println!(
        "archived records {}..={} ({} records in {} stored values) into {}: {} bytes ({:.1} B per \
         record); requested before {}, horizon {}, cut {} (the safe cut rounded down to a \
         stored value boundary); last hash {}",
        r.first_seq,
        r.cut - 1,
        r.records,
        r.values,
        r.out,
        r.file_bytes,
        r.file_bytes as f64 / r.records as f64,
        r.requested,
        r.horizon,
        r.cut,
        r.last_hash
    );
    match r.base {
        Some(base) => println!("dropped: the ledger now starts at record {base}"),
        None => println!("not dropped: the ledger still holds them (--drop drops them)"),
    }
}

fn archive_stopped(
    dir: &Path,
    before: u64,
    out: &Path,
    drop_prefix: bool,
) -> anyhow::Result<ExitCode> {
    // The audit's check that there is a ledger (a writable open would create one).
    drop(Ledger::open_read_only(dir)?);
    let started = std::time::Instant::now();
    let ledger = Ledger::open(dir)?;
    let at_head = sealing::projection_at_head(&ledger)?;
    let horizon = at_head.projection.horizon();
    let config = at_head.projection.config().clone();
    let sealed = sealing::seal(&ledger, before, horizon, &config, out)?;
    let dropped = if drop_prefix {
        sealing::ensure_live_snapshot(&ledger, &sealed, &at_head)?;
        Some(sealing::drop_sealed(&ledger, &sealed)?)
    } else {
        None
    };
    ledger.close_blocking();
    print_archived(&sealing::reply(
        &sealed,
        dropped,
        started.elapsed().as_millis() as u64,
    ));
    Ok(ExitCode::SUCCESS)
}

fn archive_running(
    url: String,
    token_file: PathBuf,
    before: u64,
    out: &Path,
    drop: bool,
) -> anyhow::Result<ExitCode> {
    let client = payout::payer::client::PoolRpcClient::new(
        url,
        token_file,
        std::time::Duration::from_secs(3600),
    );
    let request = payout::api::ArchiveRequest {
        before,
        out: out.display().to_string(),
        drop,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(client.ledger_archive(request)) {
        Ok(reply) => {
            print_archived(&reply);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: the pool did not archive: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Verifies each archive (records, hashes, snapshot, checksum) and proves the archives and the
/// live ledger form one chain; returns their headers. `Err` is the line to print.
pub fn check_archives(
    ledger: &Ledger,
    archives: &[PathBuf],
    quiet: bool,
) -> anyhow::Result<Result<Vec<ArchiveHeader>, String>> {
    if archives.is_empty() {
        // The live ledger alone (from its base, if it has one).
        return Ok(Ok(Vec::new()));
    }
    let mut headers = Vec::with_capacity(archives.len());
    for path in archives {
        let verified = match archive::verify(path) {
            Ok(v) => v,
            Err(e) => {
                return Ok(Err(format!(
                    "archive {} verification FAILED: {e}",
                    path.display()
                )))
            }
        };
        let h = verified.header;
        match snapshot::parse(verified.snapshot) {
            Ok(s) if s.header.seq + 1 == h.cut && s.header.hash == h.last_hash => {}
            Ok(s) => {
                return Ok(Err(format!(
                    "archive {} verification FAILED: its snapshot reflects record {}, not its \
                     last record {}",
                    path.display(),
                    s.header.seq,
                    h.cut - 1
                )))
            }
            Err(e) => {
                return Ok(Err(format!(
                    "archive {} verification FAILED: its snapshot: {e}",
                    path.display()
                )))
            }
        }
        if !quiet {
            println!(
                "archive {} intact: records {}..={} ({} stored values, {} bytes), last hash {}",
                path.display(),
                h.first_seq,
                h.cut - 1,
                verified.values,
                verified.file_len,
                hex::encode(h.last_hash)
            );
        }
        headers.push(h);
    }
    if let Err(e) = join(ledger, &headers)? {
        return Ok(Err(e));
    }
    Ok(Ok(headers))
}

/// The archives join each other and the live ledger; `Err` is the line to print.
pub fn join(ledger: &Ledger, headers: &[ArchiveHeader]) -> anyhow::Result<Result<(), String>> {
    let base = ledger.base()?;
    let hash_at = |seq: u64| {
        ledger
            .read_range(seq, seq + 1)
            .next()
            .and_then(|r| r.ok())
            .map(|r| r.hash)
    };
    Ok(archive::check_join(headers, base, hash_at)
        .map_err(|e| format!("ledger verification FAILED: {e}")))
}

fn open(dir: &Path) -> anyhow::Result<Ledger> {
    Ok(Ledger::open_read_only(dir)?)
}

fn verify(dir: &Path, archives: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let ledger = open(dir)?;
    if let Err(line) = check_archives(&ledger, archives, false)? {
        println!("{line}");
        return Ok(ExitCode::FAILURE);
    }
    match ledger.verify() {
        Ok(report) => {
            let from = if report.first == 0 {
                String::new()
            } else if archives.is_empty() {
                format!(
                    " from its base {} (the records below it were archived: pass the archives \
                     with --archive to check them and their join)",
                    report.first
                )
            } else {
                format!(
                    " from its base {}, joined onto {} archive(s) of records 0..{}",
                    report.first,
                    archives.len(),
                    report.first
                )
            };
            match report.head {
                Some(h) => println!(
                    "ledger intact{from}: {} records checked in {} batches; head seq {} hash {}",
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
