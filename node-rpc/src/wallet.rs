//! The node's wallet RPC, as the payout process uses it: balance and coins, building, funding,
//! signing and broadcasting a payment transaction, following it (`gettransaction`, the
//! mempool), and address checks.
//!
//! One client serves the node families we ship, detecting differences instead of configuring
//! them:
//! - signing: `signrawtransactionwithwallet` (Bitcoin Core 0.17+, so oBTC and Litecoin);
//!   Bitcoin SV 1.0.13 has only `signrawtransaction`. The first "Method not found" (-32601)
//!   switches to the old name for the client's lifetime.
//! - `ismine`: `validateaddress` carries it on BSV (and Core before 0.18); Core 0.18+ moved it
//!   to `getaddressinfo`, asked only when `validateaddress` lacks it.
//! - wallet selection: with a wallet name the client talks to `{url}/wallet/{name}` (Core's
//!   multiwallet endpoint). BSV 1.0.13 serves its single wallet on the plain URL and also on
//!   `/wallet/wallet.dat` (its file name); any other name is "Requested wallet does not exist
//!   or is not loaded" (-18).
//! - loading: Core 0.21 (so Litecoin 0.21) has no default wallet and loads only what its
//!   `-wallet` options or `settings.json` name, so a named wallet is loaded with `loadwallet`
//!   ([`WalletClient::load_wallet`], also again whenever a call finds it not loaded: the node
//!   restarted). Measured on Litecoin 0.21.2.1: a missing wallet is -18 "Wallet file
//!   verification failed. Failed to load database path '…'. Path does not exist."; a loaded one
//!   -4 "… Data file '…/wallet.dat' is already loaded." (Core 22+: -35 "Wallet \"pool\" is
//!   already loaded."); `createwallet` of an existing one -4 "… Database already exists.".
//!   BSV 1.0.13 has no `loadwallet` (-32601): its one wallet is always loaded.
//! - `sendrawtransaction` of a transaction the node already has: BSV answers -27 "Transaction
//!   already in the mempool" and, once mined, -26 "257: txn-already-known"; Core answers
//!   "transaction already in block chain" (-27) or, in newer versions, "Transaction outputs
//!   already in utxo set". All are [`Broadcast::AlreadyKnown`]. Refusals stay errors (BSV:
//!   -26 "256: absurdly-high-fee", -26 "258: txn-mempool-conflict", -25 "Missing inputs").
//! - a transaction whose input another one spent in the chain (measured on BSV 1.0.13, a real
//!   competing branch): `gettransaction` shows `confirmations: -N` (the conflicting spend is N
//!   blocks deep) and `walletconflicts` names the other txid; a rebroadcast is -25 "Missing
//!   inputs".

use crate::amount::{de_opt_signed_sats, de_sats, de_signed_sats, format_coins};
use crate::{NodeClient, NodeEndpoint, NodeError};
use pool_core::Sats;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// "Method not found".
pub const RPC_METHOD_NOT_FOUND: i32 = -32601;
/// "Invalid or non-wallet transaction id" (and other unknown keys).
pub const RPC_INVALID_ADDRESS_OR_KEY: i32 = -5;
/// Generic wallet error; "Insufficient funds" from `fundrawtransaction`.
pub const RPC_WALLET_ERROR: i32 = -4;
/// Not enough funds in the wallet (`sendtoaddress` and friends).
pub const RPC_WALLET_INSUFFICIENT_FUNDS: i32 = -6;
/// "Please enter the wallet passphrase with walletpassphrase first."
pub const RPC_WALLET_UNLOCK_NEEDED: i32 = -13;
/// The named wallet is not loaded.
pub const RPC_WALLET_NOT_FOUND: i32 = -18;
/// Core: already in the chain; BSV: already in the mempool.
pub const RPC_VERIFY_ALREADY_IN_CHAIN: i32 = -27;
/// Core 22+: `loadwallet` of a loaded wallet (Core 0.21 answers -4, see the module text).
pub const RPC_WALLET_ALREADY_LOADED: i32 = -35;

/// Messages of nodes that already have the transaction (see the module text).
const ALREADY_KNOWN: [&str; 6] = [
    "already in the mempool",
    "txn-already-in-mempool",
    "txn-already-known",
    "already in block chain",
    "already in the block chain",
    "outputs already in utxo set",
];

/// The URL of a wallet's endpoint: `{url}/wallet/{name}`, or `url` for the node's default wallet.
pub fn wallet_url(url: &str, wallet: Option<&str>) -> String {
    match wallet {
        Some(name) => format!("{}/wallet/{name}", url.trim_end_matches('/')),
        None => url.to_owned(),
    }
}

/// Which signing call the node has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignMethod {
    /// `signrawtransactionwithwallet` (Bitcoin Core 0.17+).
    WithWallet,
    /// `signrawtransaction` (Bitcoin SV, Core before 0.17).
    Legacy,
}

impl SignMethod {
    pub fn rpc_name(self) -> &'static str {
        match self {
            SignMethod::WithWallet => "signrawtransactionwithwallet",
            SignMethod::Legacy => "signrawtransaction",
        }
    }
}

const SIGN_UNKNOWN: u8 = 0;
const SIGN_WITH_WALLET: u8 = 1;
const SIGN_LEGACY: u8 = 2;

/// One coin of the wallet (`listunspent`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Unspent {
    pub txid: String,
    pub vout: u32,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(deserialize_with = "de_sats")]
    pub amount: Sats,
    pub confirmations: i64,
    #[serde(default)]
    pub spendable: bool,
}

/// `fundrawtransaction`'s reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FundedTx {
    /// The funded, unsigned transaction.
    pub hex: String,
    /// What its inputs pay beyond its outputs.
    pub fee: Sats,
    /// Position of the change output, `None` when the wallet added none.
    pub change_position: Option<usize>,
}

#[derive(Deserialize)]
struct RawFunded {
    hex: String,
    #[serde(deserialize_with = "de_sats")]
    fee: Sats,
    changepos: i64,
}

/// A signing call's reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    pub hex: String,
    /// Every input is signed.
    pub complete: bool,
    /// The node's per-input errors when it is not complete.
    pub errors: Vec<String>,
}

#[derive(Deserialize)]
struct RawSigned {
    hex: String,
    complete: bool,
    #[serde(default)]
    errors: Vec<Value>,
}

/// What `sendrawtransaction` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// Accepted into the mempool now; the node's txid (display hex).
    Accepted(String),
    /// The node already has it (mempool or chain).
    AlreadyKnown,
}

/// The parts of `gettransaction` the payout process uses.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WalletTx {
    pub txid: String,
    /// Blocks on top of it counting its own; 0 unconfirmed; negative: a conflicting transaction
    /// is in the chain that many blocks deep.
    pub confirmations: i64,
    #[serde(default)]
    pub blockhash: Option<String>,
    /// Wallet transactions spending one of the same inputs.
    #[serde(default)]
    pub walletconflicts: Vec<String>,
    /// The wallet's net effect (negative fee of a send), when reported.
    #[serde(default, deserialize_with = "de_opt_signed_sats")]
    pub fee: Option<i64>,
    /// The transaction, hex.
    #[serde(default)]
    pub hex: String,
}

/// What the node says about an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressCheck {
    /// The node can pay it (valid for its network).
    pub valid: bool,
    /// The wallet holds its key.
    pub is_mine: bool,
    /// Hex of the output script paying it (when valid).
    pub script_pubkey: Option<String>,
}

#[derive(Deserialize)]
struct RawValidation {
    isvalid: bool,
    #[serde(rename = "scriptPubKey", default)]
    script_pubkey: Option<String>,
    #[serde(default)]
    ismine: Option<bool>,
}

#[derive(Deserialize)]
struct RawAddressInfo {
    #[serde(default)]
    ismine: bool,
    #[serde(rename = "scriptPubKey", default)]
    script_pubkey: Option<String>,
}

/// One entry of `listtransactions` (a transaction has one per output it touches).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct WalletEntry {
    #[serde(default)]
    pub txid: String,
    /// `send`, `receive`, `generate`, `immature`, `orphan`.
    pub category: String,
    /// Signed satoshis: negative for sends.
    #[serde(deserialize_with = "de_signed_sats")]
    pub amount: i64,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub vout: Option<u32>,
    #[serde(default, deserialize_with = "de_opt_signed_sats")]
    pub fee: Option<i64>,
    #[serde(default)]
    pub confirmations: i64,
}

/// An unspent output as `gettxout` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct TxOutInfo {
    pub confirmations: i64,
    #[serde(deserialize_with = "de_sats")]
    pub value: Sats,
}

/// What [`WalletClient::load_wallet`] found or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalletLoad {
    /// `loadwallet` loaded it now.
    Loaded,
    /// The node had it loaded already.
    AlreadyLoaded,
    /// It did not exist; `createwallet` made it (an empty wallet, loaded).
    Created,
    /// The node has no `loadwallet` (Bitcoin SV: its one wallet is always loaded), or the client
    /// has no wallet name (the node's default wallet).
    NotNeeded,
}

/// How a failed `loadwallet` reads (see the module text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadRefusal {
    AlreadyLoaded,
    NotFound,
    NoSuchMethod,
    Other,
}

fn load_refusal(code: i32, message: &str) -> LoadRefusal {
    let message = message.to_ascii_lowercase();
    if code == RPC_WALLET_ALREADY_LOADED || message.contains("already loaded") {
        LoadRefusal::AlreadyLoaded
    } else if code == RPC_WALLET_NOT_FOUND {
        LoadRefusal::NotFound
    } else if code == RPC_METHOD_NOT_FOUND {
        LoadRefusal::NoSuchMethod
    } else {
        LoadRefusal::Other
    }
}

/// `createwallet` of a wallet that exists (another process made it meanwhile): then load it.
fn already_exists(code: i32, message: &str) -> bool {
    code == RPC_WALLET_ERROR && message.to_ascii_lowercase().contains("already exists")
}

/// A cheap, cloneable handle to one wallet of one node.
#[derive(Clone, Debug)]
pub struct WalletClient {
    node: NodeClient,
    /// The wallet's name and the node's base endpoint, where `loadwallet` goes (`None`: the
    /// node's default wallet, never loaded by us).
    loader: Option<(String, NodeClient)>,
    /// The signing call found to work ([`SIGN_UNKNOWN`] until the first signature).
    sign_method: Arc<AtomicU8>,
}

impl WalletClient {
    /// `endpoint.url` is the node's base URL; with `wallet` the client talks to that wallet's
    /// endpoint ([`wallet_url`]).
    pub fn new(endpoint: NodeEndpoint, wallet: Option<&str>) -> Self {
        let loader = wallet.map(|name| (name.to_owned(), NodeClient::new(endpoint.clone())));
        let mut endpoint = endpoint;
        endpoint.url = wallet_url(&endpoint.url, wallet);
        WalletClient {
            node: NodeClient::new(endpoint),
            loader,
            sign_method: Arc::new(AtomicU8::new(SIGN_UNKNOWN)),
        }
    }

    /// Makes sure the named wallet is loaded (`loadwallet`; with `create`, `createwallet` when
    /// the node has no such wallet). A wallet that is loaded already is fine; a node without
    /// `loadwallet` (Bitcoin SV) needs nothing. Without `create` a missing wallet is the node's
    /// -18 error: a typo in the config, not something to paper over with an empty wallet.
    pub async fn load_wallet(&self, create: bool) -> Result<WalletLoad, NodeError> {
        let Some((name, base)) = &self.loader else {
            return Ok(WalletLoad::NotNeeded);
        };
        let params = vec![Value::String(name.clone())];
        let refusal = match base.call::<Value>("loadwallet", params.clone()).await {
            Ok(_) => return Ok(WalletLoad::Loaded),
            Err(e) => e,
        };
        match &refusal {
            NodeError::Rpc { code, message, .. } => match load_refusal(*code, message) {
                LoadRefusal::AlreadyLoaded => return Ok(WalletLoad::AlreadyLoaded),
                LoadRefusal::NoSuchMethod => return Ok(WalletLoad::NotNeeded),
                LoadRefusal::NotFound if create => {}
                LoadRefusal::NotFound | LoadRefusal::Other => return Err(refusal),
            },
            _ => return Err(refusal),
        }
        match base.call::<Value>("createwallet", params.clone()).await {
            Ok(_) => Ok(WalletLoad::Created),
            Err(NodeError::Rpc { code, message, .. }) if already_exists(code, &message) => {
                match base.call::<Value>("loadwallet", params).await {
                    Ok(_) => Ok(WalletLoad::Loaded),
                    Err(NodeError::Rpc { code, message, .. })
                        if load_refusal(code, &message) == LoadRefusal::AlreadyLoaded =>
                    {
                        Ok(WalletLoad::AlreadyLoaded)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A call on the wallet's endpoint; when the node answers that the wallet is not loaded
    /// (it restarted without it), loads it (never creates it) and calls once more.
    async fn call<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: Vec<Value>,
    ) -> Result<T, NodeError> {
        match self.node.call(method, params.clone()).await {
            Err(NodeError::Rpc { code, .. })
                if code == RPC_WALLET_NOT_FOUND && self.loader.is_some() =>
            {
                self.load_wallet(false).await?;
                self.node.call(method, params).await
            }
            other => other,
        }
    }

    /// The node calls (chain, blocks) over the same endpoint.
    pub fn node(&self) -> &NodeClient {
        &self.node
    }

    /// The wallet's spendable balance (`getbalance`).
    pub async fn get_balance(&self) -> Result<Sats, NodeError> {
        let raw: Box<serde_json::value::RawValue> = self.call("getbalance", vec![]).await?;
        crate::amount::parse_coins(raw.get()).map_err(|detail| NodeError::BadReply {
            method: "getbalance",
            detail,
        })
    }

    /// The wallet's coins with at least `min_conf` confirmations (0: unconfirmed too).
    pub async fn list_unspent(&self, min_conf: u32) -> Result<Vec<Unspent>, NodeError> {
        self.call(
            "listunspent",
            vec![Value::from(min_conf), Value::from(9_999_999u32)],
        )
        .await
    }

    /// An unsigned transaction with no inputs paying `outputs` (each address at most once).
    /// The outputs come in the order of the JSON object the node reads: by address.
    pub async fn create_raw_transaction(
        &self,
        outputs: &[(String, Sats)],
    ) -> Result<String, NodeError> {
        let mut map = serde_json::Map::new();
        for (address, amount) in outputs {
            map.insert(address.clone(), Value::String(format_coins(*amount)));
        }
        self.call("createrawtransaction", vec![json!([]), Value::Object(map)])
            .await
    }

    /// Adds the wallet's inputs and a change output (when one is worth having) to `hex`. The
    /// coins are not locked: sign and broadcast before funding another transaction.
    ///
    /// With `subtract_fee_from` (output positions of `hex`) the fee comes out of those outputs
    /// (`subtractFeeFromOutputs`, Bitcoin SV 1.0.13 and Core alike: split equally, the remainder
    /// from the first), so the wallet needs only the outputs' total, not the total plus the fee.
    pub async fn fund_raw_transaction(
        &self,
        hex: &str,
        subtract_fee_from: &[usize],
    ) -> Result<FundedTx, NodeError> {
        let mut params = vec![Value::String(hex.to_owned())];
        if !subtract_fee_from.is_empty() {
            params.push(json!({ "subtractFeeFromOutputs": subtract_fee_from }));
        }
        let raw: RawFunded = self.call("fundrawtransaction", params).await?;
        Ok(FundedTx {
            hex: raw.hex,
            fee: raw.fee,
            change_position: usize::try_from(raw.changepos).ok(),
        })
    }

    /// Signs with the wallet's keys, by the method the node has (see the module text).
    pub async fn sign_raw_transaction(&self, hex: &str) -> Result<SignedTx, NodeError> {
        let params = vec![Value::String(hex.to_owned())];
        let raw: RawSigned = match self.sign_method.load(Ordering::Relaxed) {
            SIGN_LEGACY => self.call("signrawtransaction", params).await?,
            known => match self
                .call("signrawtransactionwithwallet", params.clone())
                .await
            {
                Ok(raw) => {
                    self.sign_method.store(SIGN_WITH_WALLET, Ordering::Relaxed);
                    raw
                }
                Err(NodeError::Rpc { code, .. })
                    if code == RPC_METHOD_NOT_FOUND && known == SIGN_UNKNOWN =>
                {
                    let raw = self.call("signrawtransaction", params).await?;
                    self.sign_method.store(SIGN_LEGACY, Ordering::Relaxed);
                    raw
                }
                Err(e) => return Err(e),
            },
        };
        Ok(SignedTx {
            hex: raw.hex,
            complete: raw.complete,
            errors: raw
                .errors
                .iter()
                .map(|e| match e.get("error").and_then(Value::as_str) {
                    Some(msg) => msg.to_owned(),
                    None => e.to_string(),
                })
                .collect(),
        })
    }

    /// The signing call found to work so far (`None` before the first signature).
    pub fn sign_method(&self) -> Option<SignMethod> {
        match self.sign_method.load(Ordering::Relaxed) {
            SIGN_WITH_WALLET => Some(SignMethod::WithWallet),
            SIGN_LEGACY => Some(SignMethod::Legacy),
            _ => None,
        }
    }

    /// Broadcasts a signed transaction; a node that already has it is a success too.
    pub async fn send_raw_transaction(&self, hex: &str) -> Result<Broadcast, NodeError> {
        match self
            .call::<String>("sendrawtransaction", vec![Value::String(hex.to_owned())])
            .await
        {
            Ok(txid) => Ok(Broadcast::Accepted(txid)),
            Err(NodeError::Rpc { code, message, .. }) if is_already_known(code, &message) => {
                Ok(Broadcast::AlreadyKnown)
            }
            Err(e) => Err(e),
        }
    }

    /// A wallet transaction by txid (display hex); `None` when the wallet does not know it.
    pub async fn get_transaction(&self, txid: &str) -> Result<Option<WalletTx>, NodeError> {
        match self
            .call("gettransaction", vec![Value::String(txid.to_owned())])
            .await
        {
            Ok(tx) => Ok(Some(tx)),
            Err(NodeError::Rpc { code, .. }) if code == RPC_INVALID_ADDRESS_OR_KEY => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Txids (display hex) in the node's mempool.
    pub async fn get_raw_mempool(&self) -> Result<Vec<String>, NodeError> {
        self.call("getrawmempool", vec![]).await
    }

    /// Whether the node can pay `address`, and whether the wallet holds its key.
    pub async fn check_address(&self, address: &str) -> Result<AddressCheck, NodeError> {
        let v: RawValidation = self
            .call("validateaddress", vec![Value::String(address.to_owned())])
            .await?;
        if !v.isvalid {
            return Ok(AddressCheck {
                valid: false,
                is_mine: false,
                script_pubkey: None,
            });
        }
        let (is_mine, script_pubkey) = match v.ismine {
            Some(mine) => (mine, v.script_pubkey),
            None => {
                let info: RawAddressInfo = self
                    .call("getaddressinfo", vec![Value::String(address.to_owned())])
                    .await?;
                (info.ismine, v.script_pubkey.or(info.script_pubkey))
            }
        };
        Ok(AddressCheck {
            valid: true,
            is_mine,
            script_pubkey,
        })
    }

    /// The wallet's latest `count` entries after skipping the `skip` latest, oldest first.
    pub async fn list_transactions(
        &self,
        count: u32,
        skip: u32,
    ) -> Result<Vec<WalletEntry>, NodeError> {
        self.call(
            "listtransactions",
            vec![json!("*"), Value::from(count), Value::from(skip)],
        )
        .await
    }

    /// A fresh change address of the wallet.
    pub async fn get_raw_change_address(&self) -> Result<String, NodeError> {
        self.call("getrawchangeaddress", vec![]).await
    }

    /// The unspent output `txid:vout`; `None` when it is spent (in the chain, or in the mempool
    /// when `include_mempool`) or unknown.
    pub async fn get_tx_out(
        &self,
        txid: &str,
        vout: u32,
        include_mempool: bool,
    ) -> Result<Option<TxOutInfo>, NodeError> {
        self.call(
            "gettxout",
            vec![
                Value::String(txid.to_owned()),
                Value::from(vout),
                Value::Bool(include_mempool),
            ],
        )
        .await
    }
}

fn is_already_known(code: i32, message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    code == RPC_VERIFY_ALREADY_IN_CHAIN || ALREADY_KNOWN.iter().any(|m| message.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_url_appends_the_wallet_path() {
        assert_eq!(wallet_url("http://h:1", None), "http://h:1");
        assert_eq!(
            wallet_url("http://h:1/", Some("pool")),
            "http://h:1/wallet/pool"
        );
    }

    #[test]
    fn already_known_replies_of_both_families() {
        assert!(is_already_known(-27, "Transaction already in the mempool"));
        assert!(is_already_known(-26, "257: txn-already-known"));
        assert!(is_already_known(
            -25,
            "Transaction outputs already in utxo set"
        ));
        assert!(is_already_known(-27, "transaction already in block chain"));
        assert!(!is_already_known(-26, "66: insufficient priority"));
        assert!(!is_already_known(-25, "Missing inputs"));
        assert!(!is_already_known(-26, "258: txn-mempool-conflict"));
    }

    #[test]
    fn loadwallet_refusals_of_litecoin_core_and_bsv() {
        // Litecoin 0.21.2.1, measured.
        assert_eq!(
            load_refusal(
                -18,
                "Wallet file verification failed. Failed to load database path \
                 '/d/regtest/wallets/pool'. Path does not exist."
            ),
            LoadRefusal::NotFound
        );
        assert_eq!(
            load_refusal(
                -4,
                "Wallet file verification failed. Refusing to load database. Data file \
                 '/d/regtest/wallets/pool/wallet.dat' is already loaded."
            ),
            LoadRefusal::AlreadyLoaded
        );
        assert!(already_exists(
            -4,
            "Wallet file verification failed. Failed to create database path \
             '/d/regtest/wallets/pool'. Database already exists."
        ));
        // Bitcoin Core 22+.
        assert_eq!(
            load_refusal(-35, "Wallet \"pool\" is already loaded."),
            LoadRefusal::AlreadyLoaded
        );
        // Bitcoin SV 1.0.13: no such method, its one wallet is always loaded.
        assert_eq!(
            load_refusal(-32601, "Method not found"),
            LoadRefusal::NoSuchMethod
        );
        assert_eq!(
            load_refusal(-4, "Wallet file verification failed. Invalid -wallet path"),
            LoadRefusal::Other
        );
        assert!(!already_exists(-4, "Insufficient funds"));
    }

    #[test]
    fn funded_and_wallet_replies_decode_exactly() {
        let f: RawFunded =
            serde_json::from_str(r#"{"hex":"00","changepos":-1,"fee":0.00003840}"#).unwrap();
        assert_eq!((f.fee, f.changepos), (Sats(3_840), -1));
        let t: WalletTx = serde_json::from_str(
            r#"{"amount":0.0,"fee":-0.00003840,"confirmations":-3,"txid":"ab",
                "walletconflicts":["cd"],"hex":"00","details":[]}"#,
        )
        .unwrap();
        assert_eq!(t.confirmations, -3);
        assert_eq!(t.fee, Some(-3_840));
        assert_eq!(t.walletconflicts, vec!["cd".to_owned()]);
    }
}
