//! The pool's side of the payout process: its JSON-RPC methods ([`crate::api`]) behind a small
//! trait ([`PoolApi`]), and the HTTP client that calls them with the bearer token.

use crate::api::{
    AppendReply, ArchiveReply, ArchiveRequest, PayoutReport, PayoutState, PoolStatus, ERR_REFUSED,
    ERR_UNAUTHORIZED, ERR_UNAVAILABLE, METHOD_LEDGER_ARCHIVE, METHOD_PAYMENT_APPEND,
    METHOD_PAYOUT_REPORT, METHOD_PAYOUT_STATE, METHOD_POOL_STATUS,
};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use pool_core::Event;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// What went wrong talking to the pool.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolApiError {
    /// The pool is not running, or did not answer in time.
    #[error("pool RPC unreachable at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    /// The pool refused our token (or we have none yet).
    #[error("pool RPC refused the token: {0}")]
    Unauthorized(String),
    /// The payment lane refused the event; the sentence says why.
    #[error("the pool refused the payment event: {0}")]
    Refused(String),
    /// The pool cannot append now (ledger closed or failing); retry later.
    #[error("the pool cannot append now: {0}")]
    Unavailable(String),
    #[error("pool RPC error: {0}")]
    Other(String),
}

/// The three calls the payout process makes.
pub trait PoolApi: Send + Sync {
    fn payout_state(&self) -> impl Future<Output = Result<PayoutState, PoolApiError>> + Send;
    /// One payment event through the pool's serialized lane, durable when this returns Ok.
    fn append(
        &self,
        event: Event,
    ) -> impl Future<Output = Result<AppendReply, PoolApiError>> + Send;
    fn report(&self, report: PayoutReport)
        -> impl Future<Output = Result<(), PoolApiError>> + Send;
}

/// The pool's JSON-RPC over HTTP, `Authorization: Bearer TOKEN` on every call. The token file
/// is read when the first call needs it, and again after a refusal (the pool writes it at its
/// first start, which may come after ours).
pub struct PoolRpcClient {
    url: String,
    token_file: PathBuf,
    timeout: Duration,
    client: Mutex<Option<HttpClient>>,
}

impl PoolRpcClient {
    /// `url` is `http://HOST:PORT` of the pool's `[rpc] listen`.
    pub fn new(url: String, token_file: PathBuf, timeout: Duration) -> PoolRpcClient {
        PoolRpcClient {
            url,
            token_file,
            timeout,
            client: Mutex::new(None),
        }
    }

    /// `pool_status`: ledger head, chain watcher, the payout process's last report, anomalies.
    pub async fn pool_status(&self) -> Result<PoolStatus, PoolApiError> {
        self.call(METHOD_POOL_STATUS, jsonrpsee::rpc_params![])
            .await
    }

    /// `ledger_archive`: the running pool seals (and with `drop`, drops) a ledger prefix.
    pub async fn ledger_archive(
        &self,
        request: ArchiveRequest,
    ) -> Result<ArchiveReply, PoolApiError> {
        self.call(METHOD_LEDGER_ARCHIVE, jsonrpsee::rpc_params![request])
            .await
    }

    fn client(&self) -> Result<HttpClient, PoolApiError> {
        let mut slot = self
            .client
            .lock()
            .map_err(|_| PoolApiError::Other("client lock poisoned".into()))?;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let token = std::fs::read_to_string(&self.token_file).map_err(|e| {
            PoolApiError::Unauthorized(format!(
                "cannot read the token file {}: {e} (the pool writes it at its first start)",
                self.token_file.display()
            ))
        })?;
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
            PoolApiError::Unauthorized(format!(
                "the token in {} is not a valid header value",
                self.token_file.display()
            ))
        })?;
        headers.insert("authorization", value);
        let client = HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(self.timeout)
            .build(&self.url)
            .map_err(|e| PoolApiError::Other(format!("cannot build the RPC client: {e}")))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: &str,
        params: jsonrpsee::core::params::ArrayParams,
    ) -> Result<T, PoolApiError> {
        let client = self.client()?;
        let result = client.request(method, params).await;
        let err = match result {
            Ok(v) => return Ok(v),
            Err(e) => self.classify(e),
        };
        if matches!(err, PoolApiError::Unauthorized(_)) {
            if let Ok(mut slot) = self.client.lock() {
                *slot = None;
            }
        }
        Err(err)
    }

    fn classify(&self, e: jsonrpsee::core::ClientError) -> PoolApiError {
        use jsonrpsee::core::ClientError;
        match e {
            ClientError::Call(obj) => match obj.code() {
                ERR_UNAUTHORIZED => PoolApiError::Unauthorized(obj.message().to_owned()),
                ERR_REFUSED => PoolApiError::Refused(obj.message().to_owned()),
                ERR_UNAVAILABLE => PoolApiError::Unavailable(obj.message().to_owned()),
                code => PoolApiError::Other(format!("code {code}: {}", obj.message())),
            },
            ClientError::Transport(t) => {
                let detail = t.to_string();
                if detail.contains("401") || detail.contains("403") {
                    PoolApiError::Unauthorized(detail)
                } else {
                    PoolApiError::Unreachable {
                        url: self.url.clone(),
                        detail,
                    }
                }
            }
            ClientError::RequestTimeout => PoolApiError::Unreachable {
                url: self.url.clone(),
                detail: "request timed out".into(),
            },
            other => PoolApiError::Other(other.to_string()),
        }
    }
}

impl PoolApi for PoolRpcClient {
    async fn payout_state(&self) -> Result<PayoutState, PoolApiError> {
        self.call(METHOD_PAYOUT_STATE, jsonrpsee::rpc_params![])
            .await
    }

    async fn append(&self, event: Event) -> Result<AppendReply, PoolApiError> {
        self.call(METHOD_PAYMENT_APPEND, jsonrpsee::rpc_params![event])
            .await
    }

    async fn report(&self, report: PayoutReport) -> Result<(), PoolApiError> {
        let _: serde_json::Value = self
            .call(METHOD_PAYOUT_REPORT, jsonrpsee::rpc_params![report])
            .await?;
        Ok(())
    }
}
