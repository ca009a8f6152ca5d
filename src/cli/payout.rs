//! `obtc-pool payout --config FILE`: the payout process. A process of its own, so a broken
//! wallet never stops accounting: it reads the payout state from the pool's JSON-RPC (`[rpc]`),
//! pays through the node's wallet (`[wallet]`) by `[payout]`, and appends its payment events
//! through the pool. Ctrl-C or SIGTERM stop it between two steps; whatever it was doing, the
//! next start resumes it by the payment state table.

use super::run::{init_tracing, wait_for_signal, ShutdownSignals};
use crate::config::{Config, RpcSettings, WalletSettings};
use anyhow::Context;
use node_rpc::{NodeEndpoint, NodeError, WalletClient, WalletLoad};
use payout::payer::client::PoolRpcClient;
use payout::payer::crash::CrashHooks;
use payout::payer::plan::PlanLimits;
use payout::payer::{Payer, PayerSettings};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a call to the pool's RPC may take.
const POOL_RPC_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    init_tracing();
    let config = Config::load(config_path)?;
    let wallet = config.wallet.clone().with_context(|| {
        format!(
            "{}: no [wallet] section: the payout process needs the node wallet it pays from \
             (url, user and password or cookie_file, optional wallet name)",
            config_path.display()
        )
    })?;
    let rpc = config.rpc.clone().with_context(|| {
        format!(
            "{}: no [rpc] section: the payout process reaches the pool through its JSON-RPC \
             server (listen, token_file)",
            config_path.display()
        )
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(serve(config, wallet, rpc));
    runtime.shutdown_timeout(Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

/// The payer's settings from `[payout]`.
pub fn payer_settings(config: &Config) -> PayerSettings {
    let p = &config.payout;
    PayerSettings {
        limits: PlanLimits {
            min_payment: p.min_payment,
            dust_limit: config.chain.dust_limit,
            max_outputs: p.max_outputs,
            max_per_run: p.max_per_run,
            max_per_day: p.max_per_day,
        },
        interval: p.interval,
        confirmations: p.confirmations,
    }
}

async fn serve(config: Config, wallet: WalletSettings, rpc: RpcSettings) -> anyhow::Result<()> {
    let signals = ShutdownSignals::install();
    let client = WalletClient::new(
        NodeEndpoint {
            url: wallet.url.clone(),
            auth: wallet.auth.clone(),
            timeout: wallet.rpc_timeout,
            longpoll_timeout: wallet.rpc_timeout,
        },
        wallet.wallet.as_deref(),
    );
    check_wallet(&client, &wallet).await?;
    let settings = payer_settings(&config);
    let pool = PoolRpcClient::new(
        format!("http://{}", rpc.listen),
        rpc.token_file.clone(),
        POOL_RPC_TIMEOUT,
    );
    tracing::info!(
        pool = %rpc.listen,
        wallet = %client.node().endpoint().url,
        min_payment = settings.limits.min_payment.0,
        max_outputs = settings.limits.max_outputs,
        interval_secs = settings.interval.as_secs(),
        confirmations = settings.confirmations,
        max_per_run = settings.limits.max_per_run.0,
        max_per_day = settings.limits.max_per_day.0,
        "obtc-pool payout running"
    );
    let payer = Payer::new(pool, client, settings, CrashHooks::from_env());
    let stop = CancellationToken::new();
    let signals = tokio::spawn(wait_for_signal(signals, stop.clone()));
    payer.run(stop).await;
    signals.abort();
    Ok(())
}

/// Loads the named wallet (Bitcoin Core 0.21 and Litecoin load none by default; with
/// `[wallet] create = true` a missing one is created), then refuses credentials the node
/// refuses or a wallet it does not have (a typo, not an outage); a node that is down is only a
/// warning: the payer retries every interval, and the client loads the wallet again whenever a
/// call finds it not loaded.
async fn check_wallet(client: &WalletClient, wallet: &WalletSettings) -> anyhow::Result<()> {
    let name = wallet.wallet.as_deref().unwrap_or("(the node's default)");
    match client.load_wallet(wallet.create).await {
        Ok(WalletLoad::Loaded) => tracing::info!(wallet = name, "loaded the wallet"),
        Ok(WalletLoad::AlreadyLoaded) => tracing::info!(wallet = name, "wallet already loaded"),
        Ok(WalletLoad::Created) => {
            tracing::warn!(
                wallet = name,
                "created the wallet ([wallet] create = true): it is empty"
            )
        }
        Ok(WalletLoad::NotNeeded) => {}
        Err(e @ NodeError::Unauthorized { .. }) => {
            anyhow::bail!("{e}: check [wallet] user/password or cookie_file in the config")
        }
        Err(e @ NodeError::Rpc { code, .. }) if code == node_rpc::wallet::RPC_WALLET_NOT_FOUND => {
            anyhow::bail!(
                "{e}: the node has no wallet {name:?}: check [wallet] wallet, create it on the \
                 node (createwallet), or set [wallet] create = true"
            )
        }
        Err(e @ NodeError::Rpc { .. }) => {
            anyhow::bail!("{e}: cannot load [wallet] wallet {name:?}")
        }
        Err(e) => {
            tracing::warn!("wallet not answering yet ({e}); retrying every interval");
            return Ok(());
        }
    }
    match client.get_balance().await {
        Ok(balance) => {
            tracing::info!(balance = balance.0, "wallet answers");
            Ok(())
        }
        Err(e @ NodeError::Unauthorized { .. }) => {
            anyhow::bail!("{e}: check [wallet] user/password or cookie_file in the config")
        }
        Err(e @ NodeError::Rpc { code, .. }) if code == node_rpc::wallet::RPC_WALLET_NOT_FOUND => {
            anyhow::bail!("{e}: check [wallet] wallet (the node has no such wallet loaded)")
        }
        Err(e) => {
            tracing::warn!("wallet not answering yet ({e}); retrying every interval");
            Ok(())
        }
    }
}
