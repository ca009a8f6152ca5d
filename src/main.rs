use clap::{Parser, Subcommand};
use obtc_pool::cli;
use std::path::PathBuf;
use std::process::ExitCode;

/// obtc-pool: an event-sourced mining pool for Optical Bitcoin and Bitcoin-family chains.
#[derive(Debug, Parser)]
#[command(name = "obtc-pool", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the pool.
    Run {
        #[arg(long)]
        config: PathBuf,
    },
    /// Scale-out: a Stratum edge (share checks, its own node for templates and blocks, no
    /// ledger): publishes its events to the JetStream share stream and acknowledges a share
    /// only once the stream has it.
    Edge {
        #[arg(long)]
        config: PathBuf,
    },
    /// Scale-out: the ledger core: applies the share stream to the ledger exactly once, runs the
    /// chain watcher and the RPC server (the payout process talks to it as to `run`).
    Core {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the payout process: pay due balances through the node's wallet, recording every
    /// step through the pool's RPC (a process of its own beside `run`).
    Payout {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print a commented example configuration.
    Init {
        #[arg(long, value_enum, default_value = "regtest")]
        network: cli::init::Network,
        #[arg(long, value_enum, default_value = "heavyhash")]
        pow: cli::init::Pow,
    },
    /// Tell a running pool that the node has a new block (wire to the node's -blocknotify).
    Notify {
        #[arg(long)]
        config: PathBuf,
    },
    /// Audit the ledger of a stopped pool (or a copy of it).
    #[command(subcommand)]
    Ledger(cli::ledger::LedgerCommand),
    /// Verify and replay a ledger directory or an export without trusting the pool: the hash
    /// chain, credits and balances, every share's work, and (with --node) money and history
    /// against the chain. The last line is the verdict.
    Audit(cli::audit::AuditArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => cli::run::run(&config),
        Command::Payout { config } => cli::payout::run(&config),
        Command::Edge { config } => cli::edge::run(&config),
        Command::Core { config } => cli::core::run(&config),
        Command::Init { network, pow } => cli::init::run(network, pow),
        Command::Notify { config } => cli::notify::run(&config),
        Command::Ledger(cmd) => cli::ledger::run(cmd),
        Command::Audit(args) => cli::audit::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
