//! `[wallet]`: the node wallet the payout process pays from (JSON-RPC URL, credentials, wallet
//! name). Only `obtc-pool payout` needs it; the pool itself never touches the wallet.

use super::node::{check_node_url, node_auth};
use super::{invalid, secs, ParseError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletSettings {
    /// The node's RPC base URL (`http://host:port`).
    pub url: String,
    pub auth: node_rpc::NodeAuth,
    /// The wallet's name: calls go to `{url}/wallet/{name}` (Bitcoin Core's multiwallet
    /// endpoint; Bitcoin SV serves its one wallet as `wallet.dat`, or without a name).
    pub wallet: Option<String>,
    /// `create = true`: when the node has no wallet of that name, the payout process creates
    /// it (`createwallet`, an empty wallet) instead of refusing to start. Off by default: a
    /// missing wallet is usually a typo, and paying from a fresh empty wallet helps nobody.
    pub create: bool,
    pub rpc_timeout: Duration,
}

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWallet {
    url: Option<String>,
    user: Option<String>,
    password: Option<String>,
    cookie_file: Option<PathBuf>,
    wallet: Option<String>,
    #[serde(default)]
    create: bool,
    #[serde(default = "default_rpc_timeout")]
    rpc_timeout_secs: u64,
}

fn default_rpc_timeout() -> u64 {
    30
}

pub(super) fn wallet_settings(raw: RawWallet, base: &Path) -> Result<WalletSettings, ParseError> {
    let url = raw
        .url
        .ok_or_else(|| invalid("wallet.url", "missing (e.g. \"http://127.0.0.1:8332\")"))?;
    check_node_url("wallet.url", &url)?;
    let auth = node_auth(
        "wallet.user/wallet.password/wallet.cookie_file",
        (raw.user, raw.password, raw.cookie_file),
        base,
    )?;
    if let Some(name) = &raw.wallet {
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(invalid(
                "wallet.wallet",
                format!("{name:?} must be a wallet name of letters, digits, '.', '_' or '-'"),
            ));
        }
    }
    if raw.create && raw.wallet.is_none() {
        return Err(invalid(
            "wallet.create",
            "needs wallet.wallet, the name of the wallet to create",
        ));
    }
    Ok(WalletSettings {
        url,
        auth,
        wallet: raw.wallet,
        create: raw.create,
        rpc_timeout: secs("wallet.rpc_timeout_secs", raw.rpc_timeout_secs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{minimal, problem};
    use crate::config::Config;

    #[test]
    fn wallet_section_is_optional_and_read_exactly() {
        let c = Config::parse(&minimal(""), Path::new("/etc/obtc")).unwrap();
        assert!(c.wallet.is_none());
        let text = minimal("")
            + "[wallet]\nurl = \"http://127.0.0.1:18443\"\ncookie_file = \"node/.cookie\"\nwallet = \"pool\"\n";
        let w = Config::parse(&text, Path::new("/etc/obtc"))
            .unwrap()
            .wallet
            .unwrap();
        assert_eq!(w.url, "http://127.0.0.1:18443");
        assert_eq!(
            w.auth,
            node_rpc::NodeAuth::CookieFile(PathBuf::from("/etc/obtc/node/.cookie"))
        );
        assert_eq!(w.wallet.as_deref(), Some("pool"));
        assert!(!w.create, "never created unless asked");
        assert_eq!(w.rpc_timeout, Duration::from_secs(30));
        let w = Config::parse(&(text + "create = true\n"), Path::new("/etc/obtc"))
            .unwrap()
            .wallet
            .unwrap();
        assert!(w.create);
    }

    #[test]
    fn bad_wallet_values_are_named() {
        for (section, key) in [
            ("user = \"u\"\npassword = \"p\"\n", "wallet.url"),
            (
                "url = \"https://h:1\"\nuser = \"u\"\npassword = \"p\"\n",
                "wallet.url",
            ),
            (
                "url = \"http://h:1\"\nuser = \"u\"\n",
                "wallet.user/wallet.password/wallet.cookie_file",
            ),
            (
                "url = \"http://h:1\"\nuser = \"u\"\npassword = \"p\"\nwallet = \"a/b\"\n",
                "wallet.wallet",
            ),
            (
                "url = \"http://h:1\"\nuser = \"u\"\npassword = \"p\"\nrpc_timeout_secs = 0\n",
                "wallet.rpc_timeout_secs",
            ),
            (
                "url = \"http://h:1\"\nuser = \"u\"\npassword = \"p\"\ncreate = true\n",
                "wallet.create",
            ),
        ] {
            let (got, p) = problem(&(minimal("") + "[wallet]\n" + section));
            assert_eq!(got, key, "{section}: {p}");
        }
    }
}
