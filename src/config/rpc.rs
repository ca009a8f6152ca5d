//! `[rpc]`: the pool's JSON-RPC server (HTTP and WebSocket on one port), which the payout
//! process reads state from and appends its payment events through.
//!
//! The server speaks plain HTTP and calls that append events carry a bearer token, so it must
//! only ever listen on loopback: a non-loopback `listen` is refused here. To reach it from
//! another machine, put a TLS-terminating proxy in front of the loopback port.

use super::{invalid, parse_addr, resolve, ParseError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default `[rpc] listen`.
pub const DEFAULT_RPC_LISTEN: &str = "127.0.0.1:8339";
/// The default token file name, in the ledger's data directory.
pub const DEFAULT_TOKEN_FILE: &str = "rpc.token";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RpcSettings {
    pub listen: SocketAddr,
    /// Holds the bearer token (created with mode 0600 and a random token if missing).
    pub token_file: PathBuf,
    /// `ledger_verify` without the token starts a new verification at most this often.
    pub verify_min_interval: Duration,
}

/// The default `[rpc] verify_min_interval_secs`.
pub const DEFAULT_VERIFY_MIN_INTERVAL_SECS: u64 = 60;

// ---- the file as written ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRpc {
    listen: Option<String>,
    token_file: Option<PathBuf>,
    verify_min_interval_secs: Option<u64>,
}

/// `data_dir` is the resolved ledger directory (the token file's default home); relative
/// `token_file` paths are taken against the config file's directory `base`.
pub(super) fn rpc_settings(
    raw: RawRpc,
    base: &Path,
    data_dir: &Path,
) -> Result<RpcSettings, ParseError> {
    let listen = parse_addr(
        "rpc.listen",
        raw.listen.as_deref().unwrap_or(DEFAULT_RPC_LISTEN),
    )?;
    if !listen.ip().is_loopback() {
        return Err(invalid(
            "rpc.listen",
            format!(
                "{listen} is not a loopback address: the pool's RPC has no TLS of its own and \
                 its token would travel in the clear; listen on 127.0.0.1 (or ::1) and put a TLS \
                 proxy in front for remote access"
            ),
        ));
    }
    let token_file = match raw.token_file {
        Some(p) => resolve(base, p),
        None => data_dir.join(DEFAULT_TOKEN_FILE),
    };
    let verify_min_interval = Duration::from_secs(
        raw.verify_min_interval_secs
            .unwrap_or(DEFAULT_VERIFY_MIN_INTERVAL_SECS),
    );
    Ok(RpcSettings {
        listen,
        token_file,
        verify_min_interval,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{minimal, problem};
    use crate::config::Config;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    #[test]
    fn rpc_is_off_without_its_section_and_gets_defaults_with_it() {
        let c = Config::parse(&minimal(""), Path::new("/etc/obtc")).unwrap();
        assert!(c.rpc.is_none());
        let c = Config::parse(&(minimal("") + "[rpc]\n"), Path::new("/etc/obtc")).unwrap();
        let rpc = c.rpc.unwrap();
        assert_eq!(rpc.listen, "127.0.0.1:8339".parse().unwrap());
        assert_eq!(rpc.token_file, PathBuf::from("/etc/obtc/data/rpc.token"));
        assert_eq!(rpc.verify_min_interval, Duration::from_secs(60));
        let text = minimal("") + "[rpc]\nverify_min_interval_secs = 5\n";
        let rpc = Config::parse(&text, Path::new("/etc/obtc")).unwrap().rpc;
        assert_eq!(rpc.unwrap().verify_min_interval, Duration::from_secs(5));
    }

    #[test]
    fn token_file_is_resolved_against_the_config_dir() {
        let text = minimal("") + "[rpc]\nlisten = \"[::1]:9000\"\ntoken_file = \"secret/t\"\n";
        let rpc = Config::parse(&text, Path::new("/etc/obtc"))
            .unwrap()
            .rpc
            .unwrap();
        assert_eq!(rpc.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(rpc.token_file, PathBuf::from("/etc/obtc/secret/t"));
    }

    #[test]
    fn non_loopback_and_malformed_listen_are_refused() {
        for listen in ["0.0.0.0:8339", "192.168.1.10:8339", "[::]:8339"] {
            let text = minimal("") + &format!("[rpc]\nlisten = \"{listen}\"\n");
            let (key, why) = problem(&text);
            assert_eq!(key, "rpc.listen");
            assert!(why.contains("not a loopback address"), "{why}");
        }
        let (key, _) = problem(&(minimal("") + "[rpc]\nlisten = \"localhost\"\n"));
        assert_eq!(key, "rpc.listen");
    }
}
