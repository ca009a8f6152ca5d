//! The node client shared by the Stratum server, the chain watcher and the payout process:
//! bitcoind-family JSON-RPC over HTTP (getblocktemplate with long polling,
//! submitblock, getblockheader, getblockchaininfo, getblockcount, getblockhash, getblock,
//! validateaddress), and the wallet calls of the payout process ([`WalletClient`], in
//! [`wallet`]; amounts exactly as satoshis, in [`amount`]).
//!
//! The nodes (Bitcoin SV, Litecoin Core, oBTC's Bitcoin Core code base) answer JSON-RPC 1.0
//! style and send large replies chunked; `jsonrpc`'s `minreq_http` transport reads both. That
//! transport is blocking, so every call runs on tokio's blocking pool, never on a worker thread.

pub mod amount;
pub mod metrics;
pub mod wallet;

pub use wallet::{
    AddressCheck, Broadcast, FundedTx, SignMethod, SignedTx, TxOutInfo, Unspent, WalletClient,
    WalletEntry, WalletLoad, WalletTx,
};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// How the pool authenticates to the node's RPC server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAuth {
    UserPassword {
        user: String,
        password: String,
    },
    /// The node's `.cookie` file (`__cookie__:SECRET`); re-read on every call because the node
    /// writes a new one each time it starts.
    CookieFile(PathBuf),
}

/// Where the node is and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// `http://host:port`.
    pub url: String,
    pub auth: NodeAuth,
    /// Timeout of ordinary calls (whole seconds; the transport's granularity).
    pub timeout: Duration,
    /// Timeout of a long-polling `getblocktemplate`: the node holds it until the template changes.
    pub longpoll_timeout: Duration,
}

/// What went wrong talking to the node, in the caller's terms.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The node could not be reached or did not answer in time (down, restarting, slow).
    #[error("node unreachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The node answered an HTTP error without a JSON-RPC reply: 500/503 with `Work queue depth
    /// exceeded` when its RPC work queue is full, 502/504 from a proxy in front of it. Busy,
    /// not a verdict: retrying later helps.
    #[error("node at {url} is busy (HTTP {status}: {detail})")]
    Busy {
        url: String,
        status: i32,
        detail: String,
    },
    /// The node refused our credentials (HTTP 401/403).
    #[error("node at {url} refused the RPC credentials (HTTP {status})")]
    Unauthorized { url: String, status: i32 },
    /// The cookie file could not be read.
    #[error("cannot read the node's cookie file {path}: {detail}")]
    Cookie { path: PathBuf, detail: String },
    /// The node answered with a JSON-RPC error.
    #[error("node RPC {method} failed: code {code}: {message}")]
    Rpc {
        method: &'static str,
        code: i32,
        message: String,
    },
    /// The node answered something we cannot read.
    #[error("bad reply from node to {method}: {detail}")]
    BadReply {
        method: &'static str,
        detail: String,
    },
}

impl NodeError {
    /// True when the node is down or slow (retrying later may help), as opposed to a refusal.
    pub fn is_transient(&self) -> bool {
        matches!(self, NodeError::Unreachable { .. } | NodeError::Busy { .. })
            || matches!(self, NodeError::Rpc { code, .. } if NODE_BUSY_CODES.contains(code))
    }
}

/// RPC codes a node uses while it is not ready: -28 warming up, -9 not connected, -10 initial
/// block download.
const NODE_BUSY_CODES: [i32; 3] = [-28, -9, -10];

/// What `submitblock` said about a block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// `null`: the node accepted the block (it may still lose a race later).
    Accepted,
    /// A BIP 22 reason string (`"duplicate"`, `"high-hash"`, `"bad-txnmrklroot"`, ...).
    Rejected(String),
}

/// The parts of `getblockchaininfo` the pool uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ChainInfo {
    /// `main`, `test`, `regtest`.
    pub chain: String,
    pub blocks: u64,
    pub bestblockhash: String,
}

/// The parts of `getblockheader HASH` the pool uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct BlockHeaderInfo {
    pub hash: String,
    pub height: u64,
    /// Blocks on top of it in the best chain, counting itself; `-1` when it is not in the best
    /// chain (a side branch).
    pub confirmations: i64,
}

/// RPC code of "Block not found" (`RPC_INVALID_ADDRESS_OR_KEY`).
const RPC_NOT_FOUND: i32 = -5;

/// The parts of `validateaddress` the pool uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AddressValidation {
    pub isvalid: bool,
    #[serde(rename = "scriptPubKey", default)]
    pub script_pubkey: Option<String>,
}

/// A cheap, cloneable handle to one node.
#[derive(Clone, Debug)]
pub struct NodeClient {
    endpoint: NodeEndpoint,
}

impl NodeClient {
    pub fn new(endpoint: NodeEndpoint) -> Self {
        NodeClient { endpoint }
    }

    pub fn endpoint(&self) -> &NodeEndpoint {
        &self.endpoint
    }

    /// Calls `method` with positional `params` and decodes the result as `T`.
    pub async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> Result<T, NodeError> {
        self.call_with_timeout(method, params, self.endpoint.timeout)
            .await
    }

    async fn call_with_timeout<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<T, NodeError> {
        let endpoint = self.endpoint.clone();
        let joined = tokio::task::spawn_blocking(move || {
            call_blocking::<T>(&endpoint, method, &params, timeout)
        })
        .await;
        let result = match joined {
            Ok(result) => result,
            Err(e) => Err(NodeError::BadReply {
                method,
                detail: format!("RPC task failed: {e}"),
            }),
        };
        metrics::metrics().record(method, result.is_ok());
        result
    }

    /// `getblocktemplate` as raw JSON (the job builder decodes it). With `longpollid` the node
    /// holds the request until the template changes (new block, or new transactions after a while).
    pub async fn get_block_template(&self, longpollid: Option<&str>) -> Result<Value, NodeError> {
        // Litecoin Core refuses a request without both rules it knows ("mweb" and "segwit");
        // Bitcoin Core (and oBTC, its 0.20.1 fork) and Bitcoin SV ignore a client rule they do not
        // know, so one request serves every node family.
        let mut request = serde_json::json!({ "rules": ["mweb", "segwit"] });
        let timeout = match longpollid {
            Some(id) => {
                request["longpollid"] = Value::String(id.to_owned());
                self.endpoint.longpoll_timeout
            }
            None => self.endpoint.timeout,
        };
        self.call_with_timeout("getblocktemplate", vec![request], timeout)
            .await
    }

    /// `submitblock`: `null` is acceptance, a string is the node's reason for refusing.
    pub async fn submit_block(&self, block_hex: String) -> Result<SubmitOutcome, NodeError> {
        let reply: Value = self
            .call("submitblock", vec![Value::String(block_hex)])
            .await?;
        match reply {
            Value::Null => Ok(SubmitOutcome::Accepted),
            Value::String(reason) => Ok(SubmitOutcome::Rejected(reason)),
            other => Ok(SubmitOutcome::Rejected(other.to_string())),
        }
    }

    /// `getblockheader HASH`: `None` when the node does not know the block.
    pub async fn get_block_header(&self, hash: &str) -> Result<Option<BlockHeaderInfo>, NodeError> {
        match self
            .call(
                "getblockheader",
                vec![Value::String(hash.to_owned()), Value::Bool(true)],
            )
            .await
        {
            Ok(header) => Ok(Some(header)),
            Err(NodeError::Rpc { code, .. }) if code == RPC_NOT_FOUND => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Height of the node's best chain.
    pub async fn get_block_count(&self) -> Result<u64, NodeError> {
        self.call("getblockcount", vec![]).await
    }

    pub async fn get_blockchain_info(&self) -> Result<ChainInfo, NodeError> {
        self.call("getblockchaininfo", vec![]).await
    }

    /// The block id (display hex) at `height` on the node's best chain.
    pub async fn get_block_hash(&self, height: u64) -> Result<String, NodeError> {
        self.call("getblockhash", vec![Value::from(height)]).await
    }

    /// `getblock HASH VERBOSITY` as raw JSON (verbosity 0 returns the hex string).
    pub async fn get_block(&self, hash: &str, verbosity: u8) -> Result<Value, NodeError> {
        self.call(
            "getblock",
            vec![Value::String(hash.to_owned()), Value::from(verbosity)],
        )
        .await
    }

    pub async fn validate_address(&self, address: &str) -> Result<AddressValidation, NodeError> {
        self.call("validateaddress", vec![Value::String(address.to_owned())])
            .await
    }
}

fn call_blocking<T: DeserializeOwned>(
    endpoint: &NodeEndpoint,
    method: &'static str,
    params: &[Value],
    timeout: Duration,
) -> Result<T, NodeError> {
    use jsonrpc::minreq_http::MinreqHttpTransport;

    // minreq counts its timeout in whole seconds; never let it become 0 (= no timeout).
    let timeout = Duration::from_secs(timeout.as_secs().max(1));
    let builder = MinreqHttpTransport::builder()
        .timeout(timeout)
        .url(&endpoint.url)
        .map_err(|e| NodeError::Unreachable {
            url: endpoint.url.clone(),
            detail: e.to_string(),
        })?;
    let builder = match &endpoint.auth {
        NodeAuth::UserPassword { user, password } => {
            builder.basic_auth(user.clone(), Some(password.clone()))
        }
        NodeAuth::CookieFile(path) => {
            let cookie = std::fs::read_to_string(path).map_err(|e| NodeError::Cookie {
                path: path.clone(),
                detail: e.to_string(),
            })?;
            builder.cookie_auth(cookie.trim())
        }
    };
    let client = jsonrpc::Client::with_transport(builder.build());
    let params = serde_json::value::to_raw_value(params).map_err(|e| NodeError::BadReply {
        method,
        detail: format!("cannot encode params: {e}"),
    })?;
    client
        .call::<T>(method, Some(&params))
        .map_err(|e| classify(&endpoint.url, method, e))
}

fn classify(url: &str, method: &'static str, err: jsonrpc::Error) -> NodeError {
    use jsonrpc::minreq_http::Error as HttpErr;
    match err {
        jsonrpc::Error::Rpc(rpc) => NodeError::Rpc {
            method,
            code: rpc.code,
            message: rpc.message,
        },
        jsonrpc::Error::Transport(inner) => match inner.downcast_ref::<HttpErr>() {
            Some(HttpErr::Http(h)) if h.status_code == 401 || h.status_code == 403 => {
                NodeError::Unauthorized {
                    url: url.to_owned(),
                    status: h.status_code,
                }
            }
            Some(HttpErr::Http(h)) if matches!(h.status_code, 429 | 500 | 502 | 503 | 504) => {
                NodeError::Busy {
                    url: url.to_owned(),
                    status: h.status_code,
                    detail: truncate(h.body.trim()).to_owned(),
                }
            }
            Some(HttpErr::Http(h)) => NodeError::BadReply {
                method,
                detail: format!("HTTP {}: {}", h.status_code, truncate(&h.body)),
            },
            Some(HttpErr::Json(e)) => NodeError::BadReply {
                method,
                detail: e.to_string(),
            },
            _ => NodeError::Unreachable {
                url: url.to_owned(),
                detail: inner.to_string(),
            },
        },
        jsonrpc::Error::Json(e) => NodeError::BadReply {
            method,
            detail: e.to_string(),
        },
        other => NodeError::BadReply {
            method,
            detail: other.to_string(),
        },
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(200) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_port_is_unreachable_and_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let node = NodeClient::new(NodeEndpoint {
            url: format!("http://127.0.0.1:{port}"),
            auth: NodeAuth::UserPassword {
                user: "u".into(),
                password: "p".into(),
            },
            timeout: Duration::from_secs(2),
            longpoll_timeout: Duration::from_secs(2),
        });
        let err = node.get_blockchain_info().await.unwrap_err();
        assert!(matches!(err, NodeError::Unreachable { .. }), "{err:?}");
        assert!(err.is_transient());
    }

    #[tokio::test]
    async fn missing_cookie_file_is_a_cookie_error() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeClient::new(NodeEndpoint {
            url: "http://127.0.0.1:1".into(),
            auth: NodeAuth::CookieFile(dir.path().join(".cookie")),
            timeout: Duration::from_secs(1),
            longpoll_timeout: Duration::from_secs(1),
        });
        let err = node.get_block_hash(0).await.unwrap_err();
        assert!(matches!(err, NodeError::Cookie { .. }), "{err:?}");
        assert!(!err.is_transient());
    }
}
