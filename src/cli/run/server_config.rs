//! The Stratum server's settings from the configuration, and the node check at start.

use crate::config::{Config, ExtraAmount, NodeSettings, RpcNodeSettings};
use node_rpc::{NodeAuth, NodeClient, NodeEndpoint, NodeError};
use std::sync::Arc;
use stratum::job::{ExtraOutput, JobConfig, OutputValue};
use stratum::server::chain_guard::{ChainCheckError, ChainGuard};
use stratum::server::job_source::{NodeSource, TemplateSource};
use stratum::server::submit::SubmitSettings;
use stratum::server::ServerConfig;
use stratum::session::SessionConfig;
use stratum::vardiff::VardiffConfig;

/// The server settings a validated configuration describes.
pub fn server_config(config: &Config) -> anyhow::Result<ServerConfig> {
    let chain = config.chain;
    let s = &config.stratum;
    let mut session = SessionConfig::new(chain, s.extranonce2_size);
    session.version_mask = s.version_rolling_mask;
    // The vardiff difficulties stay in the chain's unit: the session converts them.
    session.vardiff = VardiffConfig {
        initial_difficulty: s.vardiff.start_difficulty,
        min_difficulty: s.vardiff.min_difficulty,
        max_difficulty: s.vardiff.max_difficulty,
        target_interval_ms: s.vardiff.target_share_interval.as_millis() as u64,
        ..VardiffConfig::default()
    };
    let mut job = JobConfig::new(
        chain,
        s.pool_tag.as_bytes(),
        config.pool.payout.script_pubkey.clone(),
    );
    job.extranonce2_size = s.extranonce2_size;
    job.extra_outputs = config
        .pool
        .extra_outputs
        .iter()
        .map(|o| ExtraOutput {
            value: match o.amount {
                ExtraAmount::Sats(v) => OutputValue::Fixed(pool_core::Sats(v)),
                ExtraAmount::BasisPoints(b) => OutputValue::BasisPoints(b),
            },
            script_pubkey: o.address.script_pubkey.clone(),
        })
        .collect();
    // In the chain's difficulty unit, like every difficulty miners see (scrypt: 1 = 65,536 x
    // Bitcoin's difficulty-1 target).
    job.pool_block_target = match config.pool.pool_block_difficulty {
        Some(d) => Some(
            chain
                .difficulty_unit
                .target(d)
                .map_err(|e| anyhow::anyhow!("pool.pool_block_difficulty {d}: {e}"))?,
        ),
        None => None,
    };
    let (source, mut submit, submit_also) = match &config.node {
        NodeSettings::Synthetic => (TemplateSource::Synthetic, SubmitSettings::default(), vec![]),
        NodeSettings::Rpc(n) => (
            TemplateSource::Node(NodeSource {
                client: node_client(&n.url, &n.auth, n),
                longpoll: n.longpoll,
                refresh_interval: n.refresh_interval,
                max_retry_backoff: n.max_retry_backoff,
                guard: Arc::new(ChainGuard::new(chain)),
            }),
            n.submit.clone(),
            n.submit_also
                .iter()
                .map(|(url, auth)| node_client(url, auth, n))
                .collect(),
        ),
    };
    // Test hook: widen the gap between a block's verdict and its append (crash tests).
    if let Some(ms) = std::env::var("OBTC_TEST_VERDICT_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        submit.verdict_delay = std::time::Duration::from_millis(ms);
    }
    Ok(ServerConfig {
        listen: s.listen,
        max_line_bytes: s.max_line_bytes,
        max_connections_per_ip: s.max_connections_per_ip,
        idle_timeout: s.idle_timeout,
        session,
        job_config: job,
        source,
        notify_listen: config.notify.listen,
        submit,
        submit_also,
        flood: s.flood,
        bans: std::sync::Arc::new(stratum::ban::BanStore::new(s.bans.clone())),
        registry: std::sync::Arc::new(stratum::server::registry::Registry::new()),
        extranonce1_prefix: Vec::new(),
        first_job_id: 1,
    })
}

/// Refuses a node that serves another chain and credentials the node refuses (a typo, not an
/// outage), with the chain guard the job source and the submitter use; a node that is down is
/// only a warning: the pool starts, and hands out no work until the guard's check passes.
pub async fn check_node(node: &NodeSource) -> anyhow::Result<()> {
    match node.guard.check(&node.client).await {
        Ok(()) => Ok(()),
        Err(ChainCheckError::WrongChain(why)) => anyhow::bail!(
            "the node at {} serves another chain ({why}): wrong node for this chain preset",
            node.client.endpoint().url
        ),
        Err(ChainCheckError::Node(e @ NodeError::Unauthorized { .. })) => {
            anyhow::bail!("{e}: check [node] user/password or cookie_file in the config")
        }
        Err(ChainCheckError::Node(e)) => {
            tracing::warn!(
                "node not answering yet ({e}); the pool starts anyway and keeps retrying"
            );
            Ok(())
        }
    }
}

/// The chain watcher's node and settings (`None` without a node: nothing to watch).
pub fn watcher_settings(config: &Config) -> Option<(NodeClient, payout::watcher::WatcherSettings)> {
    let NodeSettings::Rpc(n) = &config.node else {
        return None;
    };
    let node = node_client(&n.url, &n.auth, n);
    let settings = payout::watcher::WatcherSettings {
        interval: n.watch_interval,
        coinbase_maturity: u64::from(config.chain.coinbase_maturity),
        max_retry_backoff: n.max_retry_backoff,
        genesis: Some(config.chain.genesis),
    };
    Some((node, settings))
}

/// A client of the node at `url` with `[node]`'s timeouts (the primary, or a `submit_also` one).
fn node_client(url: &str, auth: &NodeAuth, n: &RpcNodeSettings) -> NodeClient {
    NodeClient::new(NodeEndpoint {
        url: url.to_owned(),
        auth: auth.clone(),
        timeout: n.rpc_timeout,
        longpoll_timeout: n.longpoll_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::{DifficultyUnit, Target};
    use std::path::Path;

    fn config(preset: &str) -> Config {
        let text = format!(
            r#"
[chain]
preset = "{preset}"
[node]
url = "http://127.0.0.1:18443"
user = "u"
password = "p"
[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"
pool_block_difficulty = 0.5
[stratum.vardiff]
min_difficulty = 0.25
start_difficulty = 2.0
max_difficulty = 1024.0
[ledger]
data_dir = "data"
"#
        );
        Config::from_text(&text, Path::new(".")).unwrap()
    }

    #[test]
    fn configured_difficulties_are_in_the_chains_unit() {
        // litecoin-regtest: scrypt difficulty 0.5 is Bitcoin difficulty 0.5 / 65,536.
        let scrypt = server_config(&config("litecoin-regtest")).unwrap();
        assert_eq!(scrypt.session.chain.difficulty_unit, DifficultyUnit::Scrypt);
        let target = scrypt.job_config.pool_block_target.unwrap();
        assert_eq!(target, Target::from_difficulty(0.5 / 65_536.0).unwrap());
        assert_eq!(DifficultyUnit::Scrypt.difficulty(&target), 0.5);
        // bsv-regtest: Bitcoin's difficulty, as before.
        let bitcoin = server_config(&config("bsv-regtest")).unwrap();
        let target = bitcoin.job_config.pool_block_target.unwrap();
        assert_eq!(target, Target::from_difficulty(0.5).unwrap());
        assert_eq!(
            scrypt.job_config.pool_block_target.unwrap().as_u256(),
            target.as_u256() << 16
        );
        // The vardiff numbers reach the session as written: it reads them in the chain's unit.
        for c in [&scrypt, &bitcoin] {
            let v = &c.session.vardiff;
            assert_eq!(
                (v.min_difficulty, v.initial_difficulty, v.max_difficulty),
                (0.25, 2.0, 1024.0)
            );
        }
    }
}
