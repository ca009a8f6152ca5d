//! The pool configuration file (TOML): what chain, which node, how the Stratum server listens,
//! who the coinbase pays, how block rewards are split among miners, where the ledger lives.
//!
//! [`Config::load`] parses and validates in one step, so everything past it can trust the values:
//! addresses parse for the configured chain, difficulties are positive and ordered, the regtest-only
//! block threshold is refused elsewhere. Errors name the file, the key and what is wrong.

use pool_core::address::{parse_payout_address, ParsedAddress};
use pool_core::chain::{Chain, ChainParams};
use pool_core::event::{NetworkFeePayer, PayoutRule, PayoutScheme};
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
    pub notify: NotifySettings,
    pub payout: PayoutSettings,
}

/// Where jobs come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSettings {
    /// A bitcoind-family node over JSON-RPC.
    Rpc(Box<RpcNodeSettings>),
    /// No node: a fixed fake template whose network target no share meets (benchmarks).
    Synthetic,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcNodeSettings {
    pub url: String,
    pub auth: stratum::node::NodeAuth,
    pub rpc_timeout: Duration,
    /// Long-poll `getblocktemplate` (longpollid) for new blocks.
    pub longpoll: bool,
    pub longpoll_timeout: Duration,
    /// Re-fetch the template this often even without a new block, for new transactions.
    pub refresh_interval: Duration,
    /// Longest wait between retries while the node is down.
    pub max_retry_backoff: Duration,
    /// How block submissions retry, wait at a stop, and give up.
    pub submit: stratum::server::submit::SubmitSettings,
    /// More nodes each found block is also sent to: `(url, auth)`.
    pub submit_also: Vec<(String, stratum::node::NodeAuth)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StratumSettings {
    pub listen: SocketAddr,
    pub extranonce2_size: usize,
    /// Text put in every coinbase's script after the height.
    pub pool_tag: String,
    /// BIP 310 version bits miners may roll.
    pub version_rolling_mask: u32,
    pub max_line_bytes: usize,
    pub max_connections_per_ip: usize,
    pub idle_timeout: Duration,
    pub vardiff: VardiffSettings,
    /// When a connection's shares are a flood (`[stratum.flood]`).
    pub flood: stratum::flood::FloodConfig,
    /// When repeat flooders are banned (`[stratum.bans]`).
    pub bans: stratum::ban::BanConfig,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VardiffSettings {
    pub target_share_interval: Duration,
    pub min_difficulty: f64,
    pub max_difficulty: f64,
    pub start_difficulty: f64,
}

#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// The address block rewards are paid to (the pool's wallet).
    pub payout: ParsedAddress,
    /// Further coinbase outputs (fee, donation), in order.
    pub extra_outputs: Vec<ExtraOutput>,
    /// Regtest only: a harder target a share must meet to be submitted as a block.
    pub pool_block_difficulty: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct ExtraOutput {
    pub address: ParsedAddress,
    pub amount: ExtraAmount,
}

/// How much of the coinbase value an extra output takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraAmount {
    /// A fixed amount in satoshis.
    Sats(u64),
    /// Basis points (1/100 %) of the coinbase value.
    BasisPoints(u16),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSettings {
    pub data_dir: PathBuf,
}

/// The loopback listener `obtc-pool notify` talks to (wire it to the node's `-blocknotify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotifySettings {
    pub listen: Option<SocketAddr>,
}

/// How block rewards are split (`[payout]`). The rule is recorded in the ledger as a
/// `PayoutRuleSet` event whenever it differs from the one recorded last, so a later config change
/// never rewrites the credits of blocks already found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutSettings {
    /// Scheme, its parameters, pool fee and fee address, network fee payer: exactly what goes
    /// into the event (integers only; the PPLNS window is a reduced fraction).
    pub rule: PayoutRule,
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
    #[serde(default)]
    notify: RawNotify,
    #[serde(default)]
    payout: RawPayout,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    preset: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default = "default_node_kind")]
    kind: String,
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    cookie_file: Option<PathBuf>,
    #[serde(default = "default_rpc_timeout")]
    rpc_timeout_secs: u64,
    #[serde(default = "default_true")]
    longpoll: bool,
    #[serde(default = "default_longpoll_timeout")]
    longpoll_timeout_secs: u64,
    #[serde(default = "default_refresh")]
    refresh_secs: u64,
    #[serde(default = "default_max_backoff")]
    max_retry_backoff_secs: u64,
    #[serde(default = "default_submit_retry_max")]
    submit_retry_max_secs: u64,
    #[serde(default = "default_submit_shutdown_wait")]
    submit_shutdown_wait_secs: u64,
    #[serde(default = "default_never_judged_depth")]
    never_judged_depth: u64,
    #[serde(default)]
    submit_also: Vec<RawAlsoNode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlsoNode {
    url: String,
    user: Option<String>,
    password: Option<String>,
    cookie_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStratum {
    listen: String,
    extranonce2_size: usize,
    pool_tag: String,
    version_rolling_mask: String,
    max_line_bytes: usize,
    max_connections_per_ip: usize,
    idle_timeout_secs: u64,
    vardiff: RawVardiff,
    flood: RawFlood,
    bans: RawBans,
}

impl Default for RawStratum {
    fn default() -> Self {
        RawStratum {
            listen: "0.0.0.0:3333".into(),
            extranonce2_size: 4,
            pool_tag: "/obtc-pool/".into(),
            version_rolling_mask: "1fffe000".into(),
            max_line_bytes: 16 * 1024,
            max_connections_per_ip: 256,
            idle_timeout_secs: 600,
            vardiff: RawVardiff::default(),
            flood: RawFlood::default(),
            bans: RawBans::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFlood {
    enabled: bool,
    window: u32,
    ratio: f64,
    min_invalid: u32,
}

impl Default for RawFlood {
    fn default() -> Self {
        let d = stratum::flood::FloodConfig::default();
        RawFlood {
            enabled: d.enabled,
            window: d.window,
            ratio: d.ratio,
            min_invalid: d.min_invalid,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBans {
    offence_window_secs: u64,
    worker_after_cuts: u32,
    ip_after_cuts: u32,
    ban_secs: u64,
    allowlist: Vec<String>,
}

impl Default for RawBans {
    fn default() -> Self {
        let d = stratum::ban::BanConfig::default();
        RawBans {
            offence_window_secs: d.offence_window.as_secs(),
            worker_after_cuts: d.worker_after_cuts,
            ip_after_cuts: d.ip_after_cuts,
            ban_secs: d.ban_duration.as_secs(),
            allowlist: d.allowlist.iter().map(|r| r.to_string()).collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawVardiff {
    target_share_secs: f64,
    min_difficulty: f64,
    max_difficulty: f64,
    start_difficulty: f64,
}

impl Default for RawVardiff {
    fn default() -> Self {
        RawVardiff {
            target_share_secs: 10.0,
            min_difficulty: 0.001,
            max_difficulty: 1e12,
            start_difficulty: 1.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    payout_address: String,
    #[serde(default)]
    extra_outputs: Vec<RawExtraOutput>,
    pool_block_difficulty: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExtraOutput {
    address: String,
    sats: Option<u64>,
    bps: Option<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLedger {
    data_dir: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayout {
    scheme: Option<String>,
    /// A string ("2", "3/2", "1.5") or an integer; a TOML float is refused (not exact).
    pplns_window: Option<toml::Value>,
    fee_bps: Option<i64>,
    fee_address: Option<String>,
    network_fee_payer: Option<String>,
}

fn default_node_kind() -> String {
    "rpc".into()
}
fn default_true() -> bool {
    true
}
fn default_rpc_timeout() -> u64 {
    30
}
fn default_longpoll_timeout() -> u64 {
    120
}
fn default_refresh() -> u64 {
    30
}
fn default_max_backoff() -> u64 {
    30
}
fn default_submit_retry_max() -> u64 {
    5
}
fn default_submit_shutdown_wait() -> u64 {
    10
}
fn default_never_judged_depth() -> u64 {
    6
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
        let data_dir = resolve(base, raw.ledger.data_dir);
        let notify = NotifySettings {
            listen: match raw.notify.listen {
                Some(s) => Some(parse_addr("notify.listen", &s)?),
                None => None,
            },
        };
        if let Some(addr) = notify.listen {
            if !addr.ip().is_loopback() {
                return Err(invalid(
                    "notify.listen",
                    format!("{addr} is not a loopback address; the trigger has no authentication"),
                ));
            }
        }
        Ok(Config {
            chain,
            node,
            stratum,
            pool,
            ledger: LedgerSettings { data_dir },
            notify,
            payout,
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

fn node_settings(raw: RawNode, base: &Path) -> Result<NodeSettings, ParseError> {
    match raw.kind.as_str() {
        "synthetic" => Ok(NodeSettings::Synthetic),
        "rpc" => {
            let url = raw
                .url
                .ok_or_else(|| invalid("node.url", "missing (e.g. \"http://127.0.0.1:8332\")"))?;
            check_node_url("node.url", &url)?;
            let auth = node_auth(
                "node.user/node.password/node.cookie_file",
                (raw.user, raw.password, raw.cookie_file),
                base,
            )?;
            let submit_also = raw
                .submit_also
                .into_iter()
                .map(|n| {
                    check_node_url("node.submit_also.url", &n.url)?;
                    let auth = node_auth(
                        "node.submit_also user/password/cookie_file",
                        (n.user, n.password, n.cookie_file),
                        base,
                    )?;
                    Ok((n.url, auth))
                })
                .collect::<Result<Vec<_>, ParseError>>()?;
            if raw.submit_retry_max_secs == 0 {
                return Err(invalid("node.submit_retry_max_secs", "must be at least 1"));
            }
            if raw.never_judged_depth == 0 {
                return Err(invalid("node.never_judged_depth", "must be at least 1"));
            }
            let submit = stratum::server::submit::SubmitSettings {
                retry_max: Duration::from_secs(raw.submit_retry_max_secs),
                shutdown_wait: Duration::from_secs(raw.submit_shutdown_wait_secs),
                never_judged_depth: raw.never_judged_depth,
                ..Default::default()
            };
            Ok(NodeSettings::Rpc(Box::new(RpcNodeSettings {
                url,
                auth,
                rpc_timeout: secs("node.rpc_timeout_secs", raw.rpc_timeout_secs)?,
                longpoll: raw.longpoll,
                longpoll_timeout: secs("node.longpoll_timeout_secs", raw.longpoll_timeout_secs)?,
                refresh_interval: secs("node.refresh_secs", raw.refresh_secs)?,
                max_retry_backoff: secs("node.max_retry_backoff_secs", raw.max_retry_backoff_secs)?,
                submit,
                submit_also,
            })))
        }
        other => Err(invalid(
            "node.kind",
            format!("{other:?} is not a node kind (expected \"rpc\" or \"synthetic\")"),
        )),
    }
}

fn check_node_url(key: &'static str, url: &str) -> Result<(), ParseError> {
    if url.starts_with("http://") {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{url:?} must start with http:// (the node's RPC server speaks plain HTTP)"),
        ))
    }
}

fn node_auth(
    key: &'static str,
    given: (Option<String>, Option<String>, Option<PathBuf>),
    base: &Path,
) -> Result<stratum::node::NodeAuth, ParseError> {
    match given {
        (Some(user), Some(password), None) => {
            Ok(stratum::node::NodeAuth::UserPassword { user, password })
        }
        (None, None, Some(cookie)) => {
            Ok(stratum::node::NodeAuth::CookieFile(resolve(base, cookie)))
        }
        _ => Err(invalid(
            key,
            "give either user and password, or cookie_file",
        )),
    }
}

fn positive_difficulty(key: &'static str, d: f64) -> Result<f64, ParseError> {
    if d.is_finite() && d > 0.0 {
        Ok(d)
    } else {
        Err(invalid(key, format!("{d} must be a positive number")))
    }
}

fn stratum_settings(raw: RawStratum) -> Result<StratumSettings, ParseError> {
    let listen = parse_addr("stratum.listen", &raw.listen)?;
    if !(1..=8).contains(&raw.extranonce2_size) {
        return Err(invalid(
            "stratum.extranonce2_size",
            format!("{} must be between 1 and 8 bytes", raw.extranonce2_size),
        ));
    }
    if raw.pool_tag.len() > 40 {
        return Err(invalid(
            "stratum.pool_tag",
            "longer than 40 bytes (the coinbase script holds at most 100)",
        ));
    }
    let mask_hex = raw.version_rolling_mask.trim_start_matches("0x");
    let version_rolling_mask = u32::from_str_radix(mask_hex, 16).map_err(|e| {
        invalid(
            "stratum.version_rolling_mask",
            format!("{:?} is not a hex u32: {e}", raw.version_rolling_mask),
        )
    })?;
    if raw.max_line_bytes < 512 {
        return Err(invalid(
            "stratum.max_line_bytes",
            "must be at least 512 (a mining.submit line is ~200 bytes)",
        ));
    }
    if raw.max_connections_per_ip == 0 {
        return Err(invalid(
            "stratum.max_connections_per_ip",
            "must be at least 1",
        ));
    }
    let v = raw.vardiff;
    if !(v.target_share_secs.is_finite() && v.target_share_secs >= 0.1) {
        return Err(invalid(
            "stratum.vardiff.target_share_secs",
            "must be at least 0.1 seconds",
        ));
    }
    let min = positive_difficulty("stratum.vardiff.min_difficulty", v.min_difficulty)?;
    let max = positive_difficulty("stratum.vardiff.max_difficulty", v.max_difficulty)?;
    let start = positive_difficulty("stratum.vardiff.start_difficulty", v.start_difficulty)?;
    if !(min <= start && start <= max) {
        return Err(invalid(
            "stratum.vardiff",
            format!("need min_difficulty <= start_difficulty <= max_difficulty, got {min} / {start} / {max}"),
        ));
    }
    let f = raw.flood;
    let flood = stratum::flood::FloodConfig {
        enabled: f.enabled,
        window: f.window,
        ratio: f.ratio,
        min_invalid: f.min_invalid,
    };
    if let Some(problem) = flood.problem() {
        return Err(invalid("stratum.flood", problem));
    }
    let b = raw.bans;
    let allowlist = b
        .allowlist
        .iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: stratum::ban::IpRangeError| {
            invalid("stratum.bans.allowlist", e.to_string())
        })?;
    let bans = stratum::ban::BanConfig {
        offence_window: secs("stratum.bans.offence_window_secs", b.offence_window_secs)?,
        worker_after_cuts: b.worker_after_cuts,
        ip_after_cuts: b.ip_after_cuts,
        ban_duration: secs("stratum.bans.ban_secs", b.ban_secs)?,
        allowlist,
    };
    Ok(StratumSettings {
        listen,
        extranonce2_size: raw.extranonce2_size,
        pool_tag: raw.pool_tag,
        version_rolling_mask,
        max_line_bytes: raw.max_line_bytes,
        max_connections_per_ip: raw.max_connections_per_ip,
        idle_timeout: secs("stratum.idle_timeout_secs", raw.idle_timeout_secs)?,
        vardiff: VardiffSettings {
            target_share_interval: Duration::from_millis((v.target_share_secs * 1000.0) as u64),
            min_difficulty: min,
            max_difficulty: max,
            start_difficulty: start,
        },
        flood,
        bans,
    })
}

fn pool_settings(raw: RawPool, chain: &'static ChainParams) -> Result<PoolSettings, ParseError> {
    let payout = parse_payout_address(&raw.payout_address, chain)
        .map_err(|e| invalid("pool.payout_address", e.to_string()))?;
    let mut extra_outputs = Vec::with_capacity(raw.extra_outputs.len());
    let mut total_bps: u32 = 0;
    for out in raw.extra_outputs {
        let address = parse_payout_address(&out.address, chain)
            .map_err(|e| invalid("pool.extra_outputs.address", e.to_string()))?;
        let amount = match (out.sats, out.bps) {
            (Some(s), None) if s > 0 => ExtraAmount::Sats(s),
            (None, Some(b)) if b > 0 && b <= 10_000 => {
                total_bps += u32::from(b);
                ExtraAmount::BasisPoints(b)
            }
            _ => {
                return Err(invalid(
                    "pool.extra_outputs",
                    format!(
                        "output to {}: give exactly one of sats (> 0) or bps (1..=10000)",
                        out.address
                    ),
                ))
            }
        };
        extra_outputs.push(ExtraOutput { address, amount });
    }
    if total_bps >= 10_000 {
        return Err(invalid(
            "pool.extra_outputs",
            format!(
                "extra outputs take {total_bps} bps: nothing would be left for the pool address"
            ),
        ));
    }
    let pool_block_difficulty = match raw.pool_block_difficulty {
        None => None,
        Some(d) => {
            if !chain.allows_harder_block_threshold {
                return Err(invalid(
                    "pool.pool_block_difficulty",
                    format!(
                        "only allowed on regtest chains, not on {}: on a real network it would throw away blocks",
                        chain.name
                    ),
                ));
            }
            Some(positive_difficulty("pool.pool_block_difficulty", d)?)
        }
    };
    Ok(PoolSettings {
        payout,
        extra_outputs,
        pool_block_difficulty,
    })
}

/// The PPLNS window multiple when `payout.pplns_window` is not given (as the projections'
/// default rule).
const DEFAULT_PPLNS_WINDOW: (u32, u32) = projections::DEFAULT_PPLNS_WINDOW;

fn payout_settings(
    raw: RawPayout,
    chain: &'static ChainParams,
    pool: &PoolSettings,
) -> Result<PayoutSettings, ParseError> {
    let scheme_name = raw.scheme.as_deref().unwrap_or("pplns");
    let scheme = match scheme_name {
        "pplns" => {
            let (window_numerator, window_denominator) = match raw.pplns_window {
                None => DEFAULT_PPLNS_WINDOW,
                Some(v) => parse_window(&v).map_err(|p| invalid("payout.pplns_window", p))?,
            };
            PayoutScheme::Pplns {
                window_numerator,
                window_denominator,
            }
        }
        "prop" | "solo" => {
            if raw.pplns_window.is_some() {
                return Err(invalid(
                    "payout.pplns_window",
                    format!("only applies to scheme = \"pplns\", not {scheme_name:?}; remove it"),
                ));
            }
            if scheme_name == "prop" {
                PayoutScheme::Prop
            } else {
                PayoutScheme::Solo
            }
        }
        other => {
            return Err(invalid(
                "payout.scheme",
                format!(
                    "{other:?} is not a payout scheme (expected \"pplns\", \"prop\" or \"solo\")"
                ),
            ))
        }
    };
    let fee_bps = match raw.fee_bps {
        None => 0,
        Some(b) => u16::try_from(b)
            .ok()
            .filter(|b| *b <= 10_000)
            .ok_or_else(|| {
                invalid(
                    "payout.fee_bps",
                    format!("{b} is not between 0 and 10000 basis points (1 bps = 0.01 %)"),
                )
            })?,
    };
    let fee_address = match raw.fee_address {
        None => pool.payout.address.clone(),
        Some(a) => {
            parse_payout_address(&a, chain)
                .map_err(|e| invalid("payout.fee_address", e.to_string()))?
                .address
        }
    };
    let network_fee_payer = match raw.network_fee_payer.as_deref().unwrap_or("pool") {
        "pool" => NetworkFeePayer::Pool,
        "miners" => NetworkFeePayer::Miners,
        other => {
            return Err(invalid(
                "payout.network_fee_payer",
                format!("{other:?} is not a payer (expected \"pool\" or \"miners\")"),
            ))
        }
    };
    Ok(PayoutSettings {
        rule: PayoutRule {
            scheme,
            fee_bps,
            fee_address,
            network_fee_payer,
        },
    })
}

/// Most decimal places a window may have: 10^9 still fits the u32 denominator.
const MAX_WINDOW_DECIMALS: usize = 9;

/// Parses a PPLNS window multiple exactly into a reduced `(numerator, denominator)`: an integer
/// (`2`, `"2"`), a fraction (`"3/2"`) or a decimal (`"1.5"`, taken as 15/10 and reduced).
fn parse_window(value: &toml::Value) -> Result<(u32, u32), String> {
    let text = match value {
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Float(f) => {
            return Err(format!(
                "{f} is a TOML float; quote it (pplns_window = \"{f}\") so it converts exactly"
            ))
        }
        other => {
            return Err(format!(
                "{other} is not a window multiple (e.g. \"2\", \"3/2\" or \"1.5\")"
            ))
        }
    };
    let digits = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is not a window multiple (e.g. \"2\", \"3/2\" or \"1.5\")"
            ));
        }
        s.parse::<u64>()
            .map_err(|_| format!("{text:?} has numbers too large for a window multiple"))
    };
    let (numerator, denominator) = if let Some((n, d)) = text.split_once('/') {
        (digits(n.trim())?, digits(d.trim())?)
    } else if let Some((whole, frac)) = text.split_once('.') {
        if frac.len() > MAX_WINDOW_DECIMALS {
            return Err(format!(
                "{text:?} has more than {MAX_WINDOW_DECIMALS} decimal places"
            ));
        }
        let scale = 10u64.pow(frac.len() as u32);
        let whole = if whole.is_empty() { 0 } else { digits(whole)? };
        let frac = digits(frac)?;
        let n = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac))
            .ok_or_else(|| format!("{text:?} is too large for a window multiple"))?;
        (n, scale)
    } else {
        (digits(&text)?, 1)
    };
    if denominator == 0 {
        return Err(format!("{text:?} divides by zero"));
    }
    if numerator == 0 {
        return Err(format!(
            "{text:?} must be positive (the window is this multiple of the block's work)"
        ));
    }
    let g = gcd(numerator, denominator);
    let (n, d) = (numerator / g, denominator / g);
    match (u32::try_from(n), u32::try_from(d)) {
        (Ok(n), Ok(d)) => Ok((n, d)),
        _ => Err(format!(
            "{text:?} is {n}/{d} reduced; numerator and denominator must each fit in 32 bits"
        )),
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::event::PayoutAddress;

    const BSV_ADDR: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

    fn minimal(extra_pool: &str) -> String {
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

    fn problem(text: &str) -> (&'static str, String) {
        match Config::parse(text, Path::new("/etc/obtc")) {
            Err(ParseError::Invalid { key, problem }) => (key, problem),
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }

    #[test]
    fn minimal_config_gets_defaults_and_resolves_paths() {
        let c = Config::parse(&minimal(""), Path::new("/etc/obtc")).unwrap();
        assert_eq!(c.chain.name, "bsv-regtest");
        assert_eq!(c.ledger.data_dir, PathBuf::from("/etc/obtc/data"));
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
    fn block_threshold_is_refused_off_regtest() {
        let text = minimal("pool_block_difficulty = 100.0\n")
            .replace("bsv-regtest", "bitcoin-main")
            .replace(BSV_ADDR, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
        let (key, p) = problem(&text);
        assert_eq!(key, "pool.pool_block_difficulty");
        assert!(p.contains("regtest"), "{p}");
    }

    #[test]
    fn wrong_network_payout_address_is_refused() {
        let text = minimal("").replace(BSV_ADDR, "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2");
        assert_eq!(problem(&text).0, "pool.payout_address");
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
    fn flood_and_ban_settings_default_and_are_checked() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap();
        assert_eq!(c.stratum.flood, stratum::flood::FloodConfig::default());
        assert_eq!(c.stratum.bans, stratum::ban::BanConfig::default());
        let text = minimal("")
            + "[stratum.flood]\nwindow = 20\nratio = 0.5\nmin_invalid = 5\n"
            + "[stratum.bans]\nworker_after_cuts = 1\nip_after_cuts = 0\nban_secs = 60\n"
            + "allowlist = [\"192.0.2.0/24\", \"2001:db8::7\"]\n";
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.stratum.flood.window, 20);
        assert_eq!(c.stratum.flood.min_invalid, 5);
        assert_eq!(c.stratum.bans.worker_after_cuts, 1);
        assert_eq!(c.stratum.bans.ip_after_cuts, 0);
        assert_eq!(c.stratum.bans.ban_duration, Duration::from_secs(60));
        assert_eq!(c.stratum.bans.allowlist.len(), 2);
        for (section, key) in [
            ("[stratum.flood]\nratio = 1.5\n", "stratum.flood"),
            ("[stratum.flood]\nwindow = 10\n", "stratum.flood"),
            ("[stratum.bans]\nban_secs = 0\n", "stratum.bans.ban_secs"),
            (
                "[stratum.bans]\nallowlist = [\"10.0.0.0/40\"]\n",
                "stratum.bans.allowlist",
            ),
        ] {
            assert_eq!(problem(&(minimal("") + section)).0, key, "{section}");
        }
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
            include_str!("../examples/bsv-regtest.toml"),
            include_str!("../examples/obtc-regtest.toml"),
            include_str!("../examples/synthetic.toml"),
        ] {
            Config::parse(text, Path::new("/tmp")).unwrap();
        }
        // The mainnet example must be edited first: it names no real address.
        let (key, _) = problem(include_str!("../examples/obtc-mainnet.toml"));
        assert_eq!(key, "pool.payout_address");
    }

    fn payout(section: &str) -> String {
        minimal("") + "[payout]\n" + section
    }

    fn rule(section: &str) -> PayoutRule {
        Config::parse(&payout(section), Path::new("."))
            .unwrap()
            .payout
            .rule
    }

    fn pplns(window_numerator: u32, window_denominator: u32) -> PayoutScheme {
        PayoutScheme::Pplns {
            window_numerator,
            window_denominator,
        }
    }

    #[test]
    fn payout_defaults_to_pplns_2_no_fee_to_the_pool_address() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap();
        assert_eq!(
            c.payout.rule,
            PayoutRule {
                scheme: pplns(2, 1),
                fee_bps: 0,
                fee_address: PayoutAddress(BSV_ADDR.into()),
                network_fee_payer: NetworkFeePayer::Pool,
            }
        );
        assert_eq!(rule(""), c.payout.rule, "an empty [payout] is the default");
    }

    #[test]
    fn payout_section_is_read_exactly() {
        let fee_addr = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
        let r = rule(&format!(
            "scheme = \"pplns\"\npplns_window = \"3/2\"\nfee_bps = 150\nfee_address = \"{fee_addr}\"\nnetwork_fee_payer = \"miners\"\n"
        ));
        assert_eq!(
            r,
            PayoutRule {
                scheme: pplns(3, 2),
                fee_bps: 150,
                fee_address: PayoutAddress(fee_addr.into()),
                network_fee_payer: NetworkFeePayer::Miners,
            }
        );
        assert_eq!(rule("scheme = \"prop\"\n").scheme, PayoutScheme::Prop);
        assert_eq!(rule("scheme = \"solo\"\n").scheme, PayoutScheme::Solo);
        assert_eq!(rule("fee_bps = 10000\n").fee_bps, 10_000);
    }

    #[test]
    fn pplns_window_converts_exactly_and_reduces() {
        for (text, expected) in [
            ("\"2\"", (2, 1)),
            ("5", (5, 1)),
            ("\"3/2\"", (3, 2)),
            ("\"1.5\"", (3, 2)),
            ("\"4/2\"", (2, 1)),
            ("\"2.50\"", (5, 2)),
            ("\"0.125\"", (1, 8)),
            ("\".1\"", (1, 10)),
            ("\" 7 / 3 \"", (7, 3)),
            ("\"1.000000001\"", (1_000_000_001, 1_000_000_000)),
        ] {
            let r = rule(&format!("pplns_window = {text}\n"));
            assert_eq!(r.scheme, pplns(expected.0, expected.1), "{text}");
        }
    }

    #[test]
    fn bad_payout_values_are_named() {
        for (section, key) in [
            ("scheme = \"pps\"\n", "payout.scheme"),
            ("pplns_window = 1.5\n", "payout.pplns_window"),
            ("pplns_window = \"0\"\n", "payout.pplns_window"),
            ("pplns_window = \"0.0\"\n", "payout.pplns_window"),
            ("pplns_window = \"3/0\"\n", "payout.pplns_window"),
            ("pplns_window = \"-2\"\n", "payout.pplns_window"),
            ("pplns_window = -2\n", "payout.pplns_window"),
            ("pplns_window = \"two\"\n", "payout.pplns_window"),
            ("pplns_window = \"1.\"\n", "payout.pplns_window"),
            ("pplns_window = \"1.0000000001\"\n", "payout.pplns_window"),
            ("pplns_window = \"4294967296\"\n", "payout.pplns_window"),
            ("pplns_window = true\n", "payout.pplns_window"),
            (
                "scheme = \"solo\"\npplns_window = \"2\"\n",
                "payout.pplns_window",
            ),
            ("fee_bps = 10001\n", "payout.fee_bps"),
            ("fee_bps = -1\n", "payout.fee_bps"),
            (
                "fee_address = \"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2\"\n",
                "payout.fee_address",
            ),
            (
                "network_fee_payer = \"nobody\"\n",
                "payout.network_fee_payer",
            ),
        ] {
            let (got, p) = problem(&payout(section));
            assert_eq!(got, key, "{section}: {p}");
        }
        let (_, p) = problem(&payout("pplns_window = 1.5\n"));
        assert!(p.contains("quote it"), "{p}");
        let text = payout("fee = 1\n");
        assert!(matches!(
            Config::parse(&text, Path::new(".")),
            Err(ParseError::Toml(_))
        ));
    }

    #[test]
    fn synthetic_node_needs_no_url() {
        let text = minimal("").replace(
            "url = \"http://127.0.0.1:18332\"\nuser = \"u\"\npassword = \"p\"\n",
            "kind = \"synthetic\"\n",
        );
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.node, NodeSettings::Synthetic);
    }
}
