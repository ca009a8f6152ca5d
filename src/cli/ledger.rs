//! `obtc-pool ledger verify|head|dump`: auditor commands on a stopped pool's ledger directory.

use clap::Subcommand;
use std::path::PathBuf;

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
}

pub fn run(cmd: LedgerCommand) -> anyhow::Result<std::process::ExitCode> {
    let _ = cmd;
    anyhow::bail!("not implemented yet")
}
