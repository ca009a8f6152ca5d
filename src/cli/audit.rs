//! `obtc-pool audit (--data DIR [--archive FILE].. | --export FILE) [--json] [--config FILE]
//! [--chain PRESET --pool-address ADDR] [--pool-tag TAG] [--node URL] [--node-cookie FILE |
//! --node-user U --node-password P] [--check-anchors]`: verify and replay a ledger without
//! trusting the pool ([`crate::audit`]). `ledger balances` is this command without a pool
//! identity.
//!
//! The report goes to stdout, its last line the verdict (`audit: PASS ...` or `audit: FAIL: N
//! problems; first: ...`); the exit status is non-zero unless it passes. A ledger that cannot be
//! opened (none there, held by a running pool) is an error on stderr and no report.

use crate::audit::source::Source;
use crate::audit::{run_audit, AuditOptions, PoolIdentity};
use crate::config::{Config, NodeSettings};
use anyhow::Context;
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint};
use pool_core::address::parse_payout_address;
use pool_core::chain::ChainParams;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// The tag a pool puts in its coinbases unless `[stratum] pool_tag` says otherwise.
const DEFAULT_POOL_TAG: &str = "/obtc-pool/";

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// The ledger directory of a stopped pool (or a copy of it).
    #[arg(long, conflicts_with = "export", required_unless_present = "export")]
    pub data: Option<PathBuf>,
    /// A sealed archive of the ledger's dropped prefix (repeatable, oldest first).
    #[arg(long = "archive", value_name = "FILE", requires = "data")]
    pub archives: Vec<PathBuf>,
    /// An export file (`obtc-pool ledger export`): its JSON is checked against its bytes.
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
    /// The pool's configuration: the chain preset, `[pool] payout_address`, `[stratum]
    /// pool_tag` (and the node's credentials, for `--node`).
    #[arg(long, conflicts_with = "chain")]
    pub config: Option<PathBuf>,
    /// The chain preset (`bsv-regtest`, ...), with --pool-address, instead of --config.
    #[arg(long, requires = "pool_address")]
    pub chain: Option<String>,
    /// The pool's payout address (its coinbases pay it).
    #[arg(long, requires = "chain")]
    pub pool_address: Option<String>,
    /// The pool's coinbase tag (default `[stratum] pool_tag`, or `/obtc-pool/`).
    #[arg(long)]
    pub pool_tag: Option<String>,
    /// A node of the chain (`http://HOST:PORT`): check money and history against it.
    #[arg(long)]
    pub node: Option<String>,
    #[arg(long, requires = "node", conflicts_with_all = ["node_user", "node_password"])]
    pub node_cookie: Option<PathBuf>,
    #[arg(long, requires_all = ["node", "node_password"])]
    pub node_user: Option<String>,
    #[arg(long, requires_all = ["node", "node_user"])]
    pub node_password: Option<String>,
    /// Scan the chain for the pool's blocks and prove the ledger extends every anchored head.
    #[arg(long, requires = "node")]
    pub check_anchors: bool,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let source = match (&args.data, &args.export) {
        (Some(dir), None) => Source::Data {
            dir: dir.clone(),
            archives: args.archives.clone(),
        },
        (None, Some(path)) => Source::Export(path.clone()),
        _ => anyhow::bail!("give --data DIR or --export FILE"),
    };
    let config = match &args.config {
        Some(path) => Some(Config::load(path)?),
        None => None,
    };
    let pool = identity(&args, config.as_ref())?;
    let node = match &args.node {
        Some(url) => Some(node_client(url, &args, config.as_ref())?),
        None => None,
    };
    anyhow::ensure!(
        !(args.check_anchors && pool.is_none()),
        "--check-anchors needs the pool's identity: --config, or --chain and --pool-address"
    );
    let options = AuditOptions {
        pool,
        node,
        check_anchors: args.check_anchors,
    };
    audit(&source, &options, args.json)
}

/// Runs the audit and prints its report; the exit status is the verdict.
pub fn audit(source: &Source, options: &AuditOptions, json: bool) -> anyhow::Result<ExitCode> {
    let report = run_audit(source, options)?;
    let text = if json {
        let mut doc = serde_json::to_string_pretty(&report).context("encoding the report")?;
        doc.push('\n');
        doc
    } else {
        report.render_text()
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("writing the report")
        }
        _ => {}
    }
    if let (Some(_), Some(first)) = (&report.refused, report.findings.first()) {
        if let (Some(seq), "chain") = (first.seq, first.check) {
            eprintln!("first bad sequence number: {seq}");
        }
    }
    if let Some(totals) = report.balances.as_ref().map(|b| &b.totals) {
        if !totals.conserved {
            eprintln!(
                "error: balances sum to {} sat but the rewards of non-orphaned blocks are {} sat",
                totals.balances_sum, totals.rewards.0
            );
        }
    }
    Ok(if report.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The pool's identity from `--config` or `--chain` and `--pool-address` (`None`: neither).
fn identity(args: &AuditArgs, config: Option<&Config>) -> anyhow::Result<Option<PoolIdentity>> {
    let (chain, address, script, tag): (&'static ChainParams, String, Vec<u8>, String) =
        match (config, &args.chain, &args.pool_address) {
            (Some(c), _, _) => (
                c.chain,
                c.pool.payout.address.0.clone(),
                c.pool.payout.script_pubkey.clone(),
                c.stratum.pool_tag.clone(),
            ),
            (None, Some(chain), Some(address)) => {
                let chain = ChainParams::by_name(chain)?;
                let parsed = parse_payout_address(address, chain)
                    .with_context(|| format!("--pool-address {address}"))?;
                (
                    chain,
                    parsed.address.0,
                    parsed.script_pubkey,
                    DEFAULT_POOL_TAG.to_owned(),
                )
            }
            _ => return Ok(None),
        };
    Ok(Some(PoolIdentity {
        chain,
        address,
        payout_script: script,
        tag: args.pool_tag.clone().unwrap_or(tag).into_bytes(),
    }))
}

/// The node client of `--node URL`: its credentials from the flags, else from `--config`'s
/// `[node]`.
fn node_client(url: &str, args: &AuditArgs, config: Option<&Config>) -> anyhow::Result<NodeClient> {
    let auth = match (&args.node_cookie, &args.node_user, &args.node_password) {
        (Some(cookie), _, _) => NodeAuth::CookieFile(cookie.clone()),
        (None, Some(user), Some(password)) => NodeAuth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        _ => match config.map(|c| &c.node) {
            Some(NodeSettings::Rpc(n)) => n.auth.clone(),
            _ => anyhow::bail!(
                "--node needs credentials: --node-cookie FILE, --node-user and \
                 --node-password, or --config with a [node] section"
            ),
        },
    };
    Ok(NodeClient::new(NodeEndpoint {
        url: url.to_owned(),
        auth,
        timeout: Duration::from_secs(60),
        longpoll_timeout: Duration::from_secs(60),
    }))
}
