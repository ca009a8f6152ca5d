//! `[node]`: where jobs come from (a bitcoind-family node over JSON-RPC, or none) and which
//! further nodes each found block is also sent to.

use super::{invalid, resolve, secs, ParseError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub auth: node_rpc::NodeAuth,
    pub rpc_timeout: Duration,
    /// Long-poll `getblocktemplate` (longpollid) for new blocks.
    pub longpoll: bool,
    pub longpoll_timeout: Duration,
    /// Re-fetch the template this often even without a new block, for new transactions.
    pub refresh_interval: Duration,
    /// Longest wait between retries while the node is down.
    pub max_retry_backoff: Duration,
    /// The chain watcher compares the found blocks with the node's best chain this often, on
    /// top of every new tip (`watch_interval_secs`).
    pub watch_interval: Duration,
    /// How block submissions retry, wait at a stop, and give up.
    pub submit: stratum::server::submit::SubmitSettings,
    /// More nodes each found block is also sent to: `(url, auth)`.
    pub submit_also: Vec<(String, node_rpc::NodeAuth)>,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNode {
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
    #[serde(default = "default_watch_interval")]
    watch_interval_secs: u64,
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
fn default_watch_interval() -> u64 {
    10
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

pub(super) fn node_settings(raw: RawNode, base: &Path) -> Result<NodeSettings, ParseError> {
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
                watch_interval: secs("node.watch_interval_secs", raw.watch_interval_secs)?,
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

pub(super) fn check_node_url(key: &'static str, url: &str) -> Result<(), ParseError> {
    if url.starts_with("http://") {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{url:?} must start with http:// (the node's RPC server speaks plain HTTP)"),
        ))
    }
}

pub(super) fn node_auth(
    key: &'static str,
    given: (Option<String>, Option<String>, Option<PathBuf>),
    base: &Path,
) -> Result<node_rpc::NodeAuth, ParseError> {
    match given {
        (Some(user), Some(password), None) => {
            Ok(node_rpc::NodeAuth::UserPassword { user, password })
        }
        (None, None, Some(cookie)) => Ok(node_rpc::NodeAuth::CookieFile(resolve(base, cookie))),
        _ => Err(invalid(
            key,
            "give either user and password, or cookie_file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::minimal;
    use crate::config::Config;

    #[test]
    fn synthetic_node_needs_no_url() {
        let text = minimal("").replace(
            "url = \"http://127.0.0.1:18332\"\nuser = \"u\"\npassword = \"p\"\n",
            "kind = \"synthetic\"\n",
        );
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(c.node, NodeSettings::Synthetic);
    }

    fn rpc(c: &Config) -> &RpcNodeSettings {
        match &c.node {
            NodeSettings::Rpc(n) => n,
            other => panic!("expected an RPC node, got {other:?}"),
        }
    }

    #[test]
    fn the_watch_interval_defaults_to_ten_seconds_and_must_be_positive() {
        let c = Config::parse(&minimal(""), Path::new(".")).unwrap();
        assert_eq!(rpc(&c).watch_interval, Duration::from_secs(10));
        let text = minimal("").replace(
            "password = \"p\"\n",
            "password = \"p\"\nwatch_interval_secs = 3\n",
        );
        let c = Config::parse(&text, Path::new(".")).unwrap();
        assert_eq!(rpc(&c).watch_interval, Duration::from_secs(3));
        let text = minimal("").replace(
            "password = \"p\"\n",
            "password = \"p\"\nwatch_interval_secs = 0\n",
        );
        let (key, _) = crate::config::tests::problem(&text);
        assert_eq!(key, "node.watch_interval_secs");
    }
}
