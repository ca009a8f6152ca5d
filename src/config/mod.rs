//! The pool configuration file (TOML): what chain, which node, how the Stratum server listens,
//! who the coinbase pays, how block rewards are split among miners, where the ledger lives.
//!
//! [`Config::load`] parses and validates in one step, so everything past it can trust the values:
//! addresses parse for the configured chain, difficulties are positive and ordered, the regtest-only
//! block threshold is refused elsewhere. Errors name the file, the key and what is wrong.
//!
//! This file is the shared loader (the whole file, its errors, the common checks); each section's
//! types, defaults and checks live in the submodule named after it.

mod ledger;
mod node;
mod notify;
mod payout;
mod pool;
mod rpc;
mod stratum;
mod stream;
mod wallet;

pub use self::ledger::{LedgerSettings, Retention};
pub use self::node::{NodeSettings, RpcNodeSettings};
pub use self::notify::NotifySettings;
pub use self::payout::PayoutSettings;
pub use self::pool::{ExtraAmount, ExtraOutput, PoolSettings};
pub use self::rpc::{RpcSettings, DEFAULT_RPC_LISTEN, DEFAULT_TOKEN_FILE};
pub use self::stratum::{StratumSettings, VardiffSettings};
pub use self::stream::{EdgeSettings, StreamSettings};
pub use self::wallet::WalletSettings;

use self::ledger::{ledger_settings, RawLedger};
use self::node::{node_settings, RawNode};
use self::notify::{notify_settings, RawNotify};
use self::payout::{payout_settings, RawPayout};
use self::pool::{pool_settings, RawPool};
use self::rpc::{rpc_settings, RawRpc};
use self::stratum::{stratum_settings, RawStratum};
use self::stream::{edge_settings, stream_settings, RawEdge, RawStream};
use self::wallet::{wallet_settings, RawWallet};
use pool_core::chain::{Chain, ChainParams};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub chain: &'static ChainParams,
    pub node: NodeSettings,
    pub stratum: StratumSettings,
    pub pool: PoolSettings,
    pub ledger: LedgerSettings,
    /// `None` without a `[wallet]` section: the payout process refuses to start.
    pub wallet: Option<WalletSettings>,
    pub notify: NotifySettings,
    pub payout: PayoutSettings,
    /// `None` without an `[rpc]` section: no JSON-RPC server (and so no payout process).
    pub rpc: Option<RpcSettings>,
    /// `[stream]`: the share stream of the scale-out roles (`edge`, `core`); `run` ignores it.
    pub stream: Option<StreamSettings>,
    /// `[edge]`: this edge's id (`obtc-pool edge` needs it).
    pub edge: Option<EdgeSettings>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("config file {path}: {key}: {problem}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        problem: String,
    },
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    chain: RawChain,
    node: RawNode,
    #[serde(default)]
    stratum: RawStratum,
    pool: RawPool,
    ledger: RawLedger,
    wallet: Option<RawWallet>,
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    payout: RawPayout,
    rpc: Option<RawRpc>,
    stream: Option<RawStream>,
    edge: Option<RawEdge>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    preset: String,
}

impl Config {
    /// Reads and validates `path`. Relative paths inside (ledger dir, cookie file) are taken
    /// relative to the config file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, base).map_err(|e| match e {
            ParseError::Toml(source) => ConfigError::Parse {
                path: path.to_owned(),
                source: Box::new(source),
            },
            ParseError::Invalid { key, problem } => ConfigError::Invalid {
                path: path.to_owned(),
                key,
                problem,
            },
        })
    }

    /// Parses and validates configuration text; relative paths are resolved against `base`.
    pub fn from_text(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let path = base.join("<text>");
        Config::parse(text, base).map_err(|e| match e {
            ParseError::Toml(source) => ConfigError::Parse {
                path,
                source: Box::new(source),
            },
            ParseError::Invalid { key, problem } => ConfigError::Invalid { path, key, problem },
        })
    }

    fn parse(text: &str, base: &Path) -> Result<Config, ParseError> {
        let raw: RawConfig = toml::from_str(text).map_err(ParseError::Toml)?;
        let chain = ChainParams::by_name(&raw.chain.preset)
            .map_err(|e| invalid("chain.preset", e.to_string()))?;
        let node = node_settings(raw.node, base)?;
        let stratum = stratum_settings(raw.stratum)?;
        let pool = pool_settings(raw.pool, chain)?;
        let payout = payout_settings(raw.payout, chain, &pool)?;
        let ledger = ledger_settings(raw.ledger, base)?;
        let wallet = match raw.wallet {
            Some(w) => Some(wallet_settings(w, base)?),
            None => None,
        };
        let notify = notify_settings(raw.notify)?;
        let rpc = match raw.rpc {
            Some(r) => Some(rpc_settings(r, base, &ledger.data_dir)?),
            None => None,
        };
        let stream = match raw.stream {
            Some(s) => Some(stream_settings(s)?),
            None => None,
        };
        let edge = match raw.edge {
            Some(e) => Some(edge_settings(e)?),
            None => None,
        };
        Ok(Config {
            chain,
            node,
            stratum,
            pool,
            ledger,
            wallet,
            notify,
            payout,
            rpc,
            stream,
            edge,
        })
    }

    /// The chain preset as an enum.
    pub fn chain_kind(&self) -> Chain {
        self.chain.chain
    }
}

#[derive(Debug)]
enum ParseError {
    Toml(toml::de::Error),
    Invalid { key: &'static str, problem: String },
}

fn invalid(key: &'static str, problem: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        key,
        problem: problem.into(),
    }
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        base.join(p)
    }
}

fn parse_addr(key: &'static str, s: &str) -> Result<SocketAddr, ParseError> {
    s.parse()
        .map_err(|e| invalid(key, format!("{s:?} is not an ip:port socket address: {e}")))
}

fn secs(key: &'static str, v: u64) -> Result<Duration, ParseError> {
    if v == 0 {
        return Err(invalid(key, "must be at least 1 second"));
    }
    Ok(Duration::from_secs(v))
}

fn positive_difficulty(key: &'static str, d: f64) -> Result<f64, ParseError> {
    if d.is_finite() && d > 0.0 {
        Ok(d)
    } else {
        Err(invalid(key, format!("{d} must be a positive number")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const BSV_ADDR: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

    pub(super) fn minimal(extra_pool: &str) -> String {
        format!(
            r#"
[chain]
preset = "bsv-regtest"
[node]
url = "http://127.0.0.1:18332"
user = "u"
password = "p"
[pool]
payout_address = "{BSV_ADDR}"
{extra_pool}
[ledger]
data_dir = "data"
"#
        )
    }

    pub(super) fn problem(text: &str) -> (&'static str, String) {
        match Config::parse(text, Path::new("/etc/obtc")) {
            Err(ParseError::Invalid { key, problem }) => (key, problem),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn ledger_cache_mb_sets_sleds_cache() {
        let text = minimal("").replace("data_dir = \"data\"", "data_dir = \"data\"\ncache_mb = 32");
        let c = Config::parse(&text, Path::new("/etc/obtc")).unwrap();
        assert_eq!(c.ledger.writer_options().cache_bytes, 32 << 20);
        let zero = minimal("").replace("data_dir = \"data\"", "data_dir = \"data\"\ncache_mb = 0");
        assert_eq!(problem(&zero).0, "ledger.cache_mb");
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = Config::parse(&minimal(""), Path::new("/etc/obtc")).unwrap();
        assert_eq!(c.chain.name, "bsv-regtest");
        assert_eq!(c.ledger.data_dir, PathBuf::from("/etc/obtc/data"));
        assert_eq!(c.ledger.min_free_bytes, 64 << 20);
        let text = minimal("").replace(
            "data_dir = \"data\"",
            "data_dir = \"data\"\nmin_free_mb = 8",
        );
        let small = Config::parse(&text, Path::new("/etc/obtc")).unwrap();
        assert_eq!(small.ledger.min_free_bytes, 8 << 20);
        assert_eq!(c.ledger.cache_mb, 64);
        assert_eq!(c.ledger.writer_options().cache_bytes, 64 << 20);
        assert_eq!(c.stratum.extranonce2_size, 4);
        assert_eq!(c.stratum.version_rolling_mask, 0x1fff_e000);
        assert_eq!(
            c.stratum.vardiff.target_share_interval,
            Duration::from_secs(10)
        );
        assert_eq!(c.pool.payout.address.0, BSV_ADDR);
        assert!(c.pool.pool_block_difficulty.is_none());
        match c.node {
            NodeSettings::Rpc(r) => {
                assert!(r.longpoll);
                assert_eq!(r.url, "http://127.0.0.1:18332");
            }
            NodeSettings::Synthetic => panic!("expected rpc"),
        }
    }

    #[test]
    fn fractional_difficulties_and_regtest_block_threshold_are_accepted() {
        let text = minimal("pool_block_difficulty = 0.5\n")
            + "[stratum.vardiff]\nmin_difficulty = 0.0001\nstart_difficulty = 0.01\n";
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.pool.pool_block_difficulty, Some(0.5));
        assert_eq!(c.stratum.vardiff.start_difficulty, 0.01);
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            problem(&minimal("").replace("bsv-regtest", "dogecoin")).0,
            "chain.preset"
        );
        let text =
            minimal("") + "[stratum.vardiff]\nmin_difficulty = 10.0\nstart_difficulty = 1.0\n";
        assert_eq!(problem(&text).0, "stratum.vardiff");
        let text = minimal("") + "[stratum]\nextranonce2_size = 0\n";
        assert_eq!(problem(&text).0, "stratum.extranonce2_size");
        let text = minimal("").replace("user = \"u\"\n", "");
        assert_eq!(problem(&text).0, "node.user/node.password/node.cookie_file");
        let text = minimal("") + "[notify]\nlisten = \"0.0.0.0:9\"\n";
        assert_eq!(problem(&text).0, "notify.listen");
        let text = minimal(&format!(
            "[[pool.extra_outputs]]\naddress = \"{BSV_ADDR}\"\nbps = 10000\n"
        ));
        assert_eq!(problem(&text).0, "pool.extra_outputs");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = minimal("") + "[stratum]\nlisten_addr = \"0.0.0.0:1\"\n";
        assert!(matches!(
            Config::parse(&text, Path::new(".")),
            Err(ParseError::Toml(_))
        ));
    }

    #[test]
    fn shipped_examples_load() {
        for text in [
            include_str!("../../examples/bsv-regtest.toml"),
            include_str!("../../examples/obtc-regtest.toml"),
            include_str!("../../examples/litecoin-regtest.toml"),
            include_str!("../../examples/synthetic.toml"),
        ] {
            Config::parse(text, Path::new("/tmp")).unwrap();
        }
        // The worked scale-out cluster (README, "Scale-out"): two edges and their core.
        for (text, edge) in [
            (include_str!("../../examples/cluster/edge-1.toml"), Some(1)),
            (include_str!("../../examples/cluster/edge-2.toml"), Some(2)),
            (include_str!("../../examples/cluster/core.toml"), None),
        ] {
            let c = Config::parse(text, Path::new("/tmp")).unwrap();
            let stream = c.stream.expect("a [stream] section");
            assert_eq!((stream.servers.len(), stream.replicas), (3, 3));
            assert_eq!(c.edge.map(|e| e.id), edge);
        }
        // The mainnet example must be edited first: it names no real address.
        let (key, _) = problem(include_str!("../../examples/obtc-mainnet.toml"));
        assert_eq!(key, "pool.payout_address");
    }
}
