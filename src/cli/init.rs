//! `obtc-pool init`: print a commented example configuration for a network and proof of work.

use clap::ValueEnum;
use pool_core::chain::{Chain, ChainParams};
use pool_core::pow::PowAlgorithm;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Network {
    Regtest,
    Testnet,
    Mainnet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Pow {
    Sha256d,
    Heavyhash,
    /// Litecoin.
    Scrypt,
}

/// Which chain preset `--network`/`--pow` name. SHA-256d regtest is Bitcoin SV's, the node the
/// tests and the demo run.
pub fn preset(network: Network, pow: Pow) -> Chain {
    match (pow, network) {
        (Pow::Heavyhash, Network::Regtest) => Chain::ObtcRegtest,
        (Pow::Heavyhash, Network::Testnet) => Chain::ObtcTest,
        (Pow::Heavyhash, Network::Mainnet) => Chain::ObtcMain,
        (Pow::Sha256d, Network::Regtest) => Chain::BsvRegtest,
        (Pow::Sha256d, Network::Testnet) => Chain::BitcoinTest,
        (Pow::Sha256d, Network::Mainnet) => Chain::BitcoinMain,
        (Pow::Scrypt, Network::Regtest) => Chain::LitecoinRegtest,
        (Pow::Scrypt, Network::Testnet) => Chain::LitecoinTest,
        (Pow::Scrypt, Network::Mainnet) => Chain::LitecoinMain,
    }
}

/// The suggested regtest `pool_block_difficulty`: one CPU thread of `obtc-miner` finds a block
/// every 10-30 s. Difficulty d takes d * 2^32 hashes a block on average; measured single-thread
/// release-build rates on the project's machine (2026-11-25): SHA-256d 7.1 M/s, HeavyHash
/// 0.95 M/s, so 0.03 and 0.004 give ~18 s a block each.
pub fn regtest_block_difficulty(pow: PowAlgorithm) -> f64 {
    match pow {
        PowAlgorithm::Sha256d => 0.03,
        PowAlgorithm::HeavyHash => 0.004,
        // Scrypt difficulty (1 = 65,536 Bitcoin difficulty-1 targets): 0.5 is ~3.3e4 hashes.
        PowAlgorithm::Scrypt => 0.5,
    }
}

fn regtest_block_note(pow: PowAlgorithm) -> &'static str {
    match pow {
        PowAlgorithm::Sha256d => {
            "0.03: ~1.3e8 hashes, a block every ~18 s for one CPU thread (SHA-256d, 7 M/s)."
        }
        PowAlgorithm::HeavyHash => {
            "0.004: ~1.7e7 hashes, a block every ~18 s for one CPU thread (HeavyHash, 0.95 M/s)."
        }
        PowAlgorithm::Scrypt => {
            "0.5 (scrypt difficulty): ~3.3e4 hashes, a block every ~13 s for one CPU thread (scrypt, ~2.5 k/s)."
        }
    }
}

pub fn run(network: Network, pow: Pow) -> anyhow::Result<ExitCode> {
    print!("{}", example_config(preset(network, pow).params()));
    Ok(ExitCode::SUCCESS)
}

/// A commented example configuration for `chain`. On regtest chains it loads as printed (with
/// an example address to replace); elsewhere the payout address must be filled in first.
pub fn example_config(chain: &ChainParams) -> String {
    let regtest = chain.allows_harder_block_threshold;
    let (rpc_port, address) = match chain.chain {
        Chain::BsvRegtest => (18332, "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"),
        Chain::ObtcRegtest | Chain::BitcoinRegtest => (18443, "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"),
        Chain::ObtcTest | Chain::BitcoinTest => (18332, "REPLACE_WITH_YOUR_TESTNET_ADDRESS"),
        Chain::ObtcMain | Chain::BitcoinMain => (8332, "REPLACE_WITH_YOUR_ADDRESS"),
        Chain::LitecoinRegtest => (19443, "rltc1qquxn67dc5nwqhdta40a8lz8edlgx3ydn76fwjf"),
        Chain::LitecoinTest => (19332, "REPLACE_WITH_YOUR_TESTNET_ADDRESS"),
        Chain::LitecoinMain => (9332, "REPLACE_WITH_YOUR_ADDRESS"),
    };
    let block_threshold = if regtest {
        format!(
            "# Regtest only: submit a share as a block only if it also meets this difficulty, so a CPU\n\
             # miner makes many shares per block. Refused on any other chain.\n\
             # {}\n\
             # pool_block_difficulty = {}\n",
            regtest_block_note(chain.pow),
            regtest_block_difficulty(chain.pow)
        )
    } else {
        String::new()
    };
    // In the chain's difficulty unit (scrypt: 1 = 65,536 Bitcoin difficulty-1 targets).
    let start_difficulty = if regtest { "0.001" } else { "16384" };
    let min_difficulty = if regtest { "0.0001" } else { "1" };
    format!(
        r#"# obtc-pool configuration ({name}, proof of work {pow}).
# Run with: obtc-pool run --config THIS_FILE

[chain]
# Chain preset: obtc-main, obtc-test, obtc-regtest, bitcoin-main, bitcoin-test,
# bitcoin-regtest, bsv-regtest, litecoin-main, litecoin-test, litecoin-regtest.
preset = "{name}"

[node]
# "rpc": a bitcoind-family node; "synthetic": no node, a fixed fake job (benchmarks only).
kind = "rpc"
url = "http://127.0.0.1:{rpc_port}"
# Either user + password (the node's -rpcuser/-rpcpassword) ...
user = "obtc"
password = "obtcpass"
# ... or the node's cookie file instead:
# cookie_file = "/home/me/.bitcoin/.cookie"
rpc_timeout_secs = 30
# Long-poll getblocktemplate so a new block reaches miners at once.
longpoll = true
longpoll_timeout_secs = 120
# Re-fetch the template this often anyway, to include new transactions.
refresh_secs = 30
# While the node is down, retry with a backoff of at most this long.
max_retry_backoff_secs = 30
# The chain watcher compares found blocks with the node's best chain at every new tip and at
# least this often (orphaned, reinstated, matured blocks are recorded in the ledger).
watch_interval_secs = 10
# A found block is recorded first, then submitted until the node judges it; retries back off
# up to this long, and each one looks the block up first (a timed-out submit may have landed).
submit_retry_max_secs = 5
# At a clean stop, wait this long for open submissions; the rest are resolved at the next start.
submit_shutdown_wait_secs = 10
# A candidate the node never judged is closed once the node's tip is this many blocks past it.
never_judged_depth = 6
# More nodes every found block is also sent to (found if any of them accepts it):
# submit_also = [{{ url = "http://backup-node:8332", user = "pool", password = "secret" }}]

[stratum]
listen = "0.0.0.0:3333"
extranonce2_size = 4
# Written into every coinbase after the height.
pool_tag = "/obtc-pool/"
# BIP 310 version bits miners may roll (mining.configure).
version_rolling_mask = "1fffe000"
# Longer lines are an error and close the connection.
max_line_bytes = 16384
max_connections_per_ip = 256
# Close a connection that sends nothing for this long.
idle_timeout_secs = 600

[stratum.vardiff]
# Aim for one share per this many seconds per connection.
target_share_secs = 10
# Fractions are allowed (CPU miners on test networks).
min_difficulty = {min_difficulty}
max_difficulty = 1e12
start_difficulty = {start_difficulty}

[stratum.flood]
# Cut a connection when, of its last `window` submits, at least `min_invalid` are invalid and
# they are at least `ratio` of them. An honest miner's few stale shares after a new block stay
# far below; a flood of invalid shares is cut after its `min_invalid`th.
enabled = true
window = 100
ratio = 0.9
min_invalid = 50

[stratum.bans]
# Each cut is an offence of the connection's IP and of each worker it authorized. Within
# offence_window_secs, worker_after_cuts cuts ban the worker (from that IP only: anyone can send
# shares under any name) and ip_after_cuts cuts ban the IP (kept higher: many rigs share one IP
# behind a NAT or a Stratum proxy), each for ban_secs. 0 turns that ban off. The allowlist (IPs
# or CIDR ranges, e.g. your Stratum proxy) is never banned by IP. Bans are kept in memory only:
# a restart lifts them.
offence_window_secs = 3600
worker_after_cuts = 3
ip_after_cuts = 10
ban_secs = 3600
allowlist = ["127.0.0.0/8", "::1"]

[pool]
# The pool's wallet: coinbases pay the block reward here.
payout_address = "{address}"
{block_threshold}# Further coinbase outputs (a fee or a donation), each either a fixed amount in satoshis or
# basis points (1/100 %) of the coinbase value:
# [[pool.extra_outputs]]
# address = "..."
# bps = 100

[payout]
# How block rewards are split among miners. The rule is recorded in the ledger (a PayoutRuleSet
# event) whenever the pool starts with a rule different from the one recorded last; blocks
# already found keep the rule they were credited by.
# "pplns": the last N of share work before the block, N = pplns_window x the block's work;
# "prop": the shares since the previous block; "solo": the finder takes the reward.
scheme = "pplns"
# A whole number, a fraction ("3/2") or a decimal ("1.5"), quoted: converted exactly.
pplns_window = "2"
# Pool fee in basis points (100 = 1 %) of each block's reward, credited to fee_address.
fee_bps = 0
# Where the pool fee is credited; defaults to the pool's payout address.
# fee_address = "..."
# Who bears a payment transaction's network fee: "pool" (booked against the fee address) or
# "miners" (deducted from the paid amounts in proportion).
network_fee_payer = "pool"
# The payout process (`obtc-pool payout --config THIS_FILE`, a process of its own) pays every
# address whose payable balance reaches min_payment (satoshis; at least the dust limit, 546),
# up to max_outputs outputs per transaction, every interval_secs.
min_payment = 1000000
max_outputs = 100
interval_secs = 600
# A payment is final (PaymentConfirmed) at this depth; a payment whose input was spent by a
# conflicting transaction fails only once that one is this deep.
confirmations = 6
# Spending guard (satoshis): a run that would pay more than max_per_run, or bring the last 24
# hours above max_per_day, pauses payouts and says so, so a bug can never empty the wallet.
max_per_run = 10000000000
max_per_day = 100000000000

[ledger]
# The append-only event ledger (relative paths are relative to this file).
data_dir = "data/ledger"
# Free space kept in reserve (MiB): start and resume after a full disk only with this much free
# beyond what the two 64 MiB write-ahead log files still need; below half of it, shares are
# refused as on a full disk.
# min_free_mb = 64

[wallet]
# The node wallet the payout process pays from (the pool itself never uses it). Coinbases pay
# pool.payout_address, which must be an address of this wallet.
url = "http://127.0.0.1:{rpc_port}"
user = "obtc"
password = "obtcpass"
# cookie_file = "/home/me/.bitcoin/.cookie"
# A named wallet (Bitcoin Core's multiwallet: calls go to /wallet/NAME); Bitcoin SV has one
# wallet, served without a name (or as "wallet.dat"). The payout process loads it (loadwallet:
# Bitcoin Core 0.21 and Litecoin load no wallet by default); with create = true it creates it
# when the node has none of that name.
{wallet_line}
# create = false
rpc_timeout_secs = 30

[notify]
# Loopback listener for `obtc-pool notify --config THIS_FILE`; wire that command to the
# node's -blocknotify so new blocks reach miners without waiting for the long poll.
listen = "127.0.0.1:3334"

[rpc]
# The pool's JSON-RPC server (HTTP and WebSocket on one port): the payout process reads the
# payout state and appends its payment events here. Without this section the server is off.
# Loopback only: the server has no TLS of its own, so a non-loopback address is refused; to
# reach it from elsewhere, put a TLS proxy in front of this port.
listen = "127.0.0.1:8339"
# Calls that append events need `Authorization: Bearer TOKEN` with this file's contents.
# Created with mode 0600 and a random token at the first start if missing (default: rpc.token
# in the ledger's data_dir).
# token_file = "data/ledger/rpc.token"
# Prometheus metrics: GET /metrics on the port above (no token), and with this key on a listener
# of its own, which may be a non-loopback address (metrics carry no secret).
# metrics_listen = "0.0.0.0:9339"
"#,
        name = chain.name,
        pow = chain.pow.name(),
        wallet_line = if chain.mweb {
            "wallet = \"pool\""
        } else {
            "# wallet = \"pool\""
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    #[test]
    fn regtest_examples_load_as_printed() {
        for pow in [Pow::Sha256d, Pow::Heavyhash, Pow::Scrypt] {
            let chain = preset(Network::Regtest, pow).params();
            let config = Config::from_text(&example_config(chain), Path::new("/tmp")).unwrap();
            assert_eq!(config.chain.name, chain.name);
            assert_eq!(config.chain.pow, chain.pow);
        }
    }

    #[test]
    fn examples_with_the_threshold_uncommented_load_on_regtest_only() {
        let chain = preset(Network::Regtest, Pow::Heavyhash).params();
        let text =
            example_config(chain).replace("# pool_block_difficulty", "pool_block_difficulty");
        let config = Config::from_text(&text, Path::new("/tmp")).unwrap();
        assert_eq!(config.pool.pool_block_difficulty, Some(0.004));
        let sha = preset(Network::Regtest, Pow::Sha256d).params();
        let text = example_config(sha).replace("# pool_block_difficulty", "pool_block_difficulty");
        let config = Config::from_text(&text, Path::new("/tmp")).unwrap();
        assert_eq!(config.pool.pool_block_difficulty, Some(0.03));
        let main = example_config(preset(Network::Mainnet, Pow::Heavyhash).params());
        assert!(!main.contains("pool_block_difficulty"));
    }

    #[test]
    fn example_payout_section_is_the_default_rule_and_its_options_load() {
        let chain = preset(Network::Regtest, Pow::Sha256d).params();
        let text = example_config(chain);
        let config = Config::from_text(&text, Path::new("/tmp")).unwrap();
        let mut expected = projections::default_rule();
        expected.fee_address = config.pool.payout.address.clone();
        assert_eq!(config.payout.rule, expected);
        let text = text
            .replace("fee_bps = 0", "fee_bps = 250")
            .replace("pplns_window = \"2\"", "pplns_window = \"1.5\"")
            .replace(
                "network_fee_payer = \"pool\"",
                "network_fee_payer = \"miners\"",
            );
        let rule = Config::from_text(&text, Path::new("/tmp"))
            .unwrap()
            .payout
            .rule;
        assert_eq!(rule.fee_bps, 250);
        assert_eq!(
            rule.scheme,
            pool_core::event::PayoutScheme::Pplns {
                window_numerator: 3,
                window_denominator: 2
            }
        );
        assert_eq!(
            rule.network_fee_payer,
            pool_core::event::NetworkFeePayer::Miners
        );
    }

    #[test]
    fn example_flood_and_ban_settings_are_the_defaults() {
        // Every network prints the same [stratum.flood] and [stratum.bans] sections.
        let chain = preset(Network::Regtest, Pow::Heavyhash).params();
        let config = Config::from_text(&example_config(chain), Path::new("/tmp")).unwrap();
        assert_eq!(config.stratum.flood, stratum::flood::FloodConfig::default());
        assert_eq!(config.stratum.bans, stratum::ban::BanConfig::default());
    }

    #[test]
    fn example_rpc_section_is_on_loopback_with_the_default_token_file() {
        let chain = preset(Network::Regtest, Pow::Sha256d).params();
        let config = Config::from_text(&example_config(chain), Path::new("/tmp")).unwrap();
        let rpc = config.rpc.unwrap();
        assert_eq!(
            rpc.listen,
            crate::config::DEFAULT_RPC_LISTEN.parse().unwrap()
        );
        assert_eq!(
            rpc.token_file,
            Path::new("/tmp/data/ledger").join(crate::config::DEFAULT_TOKEN_FILE)
        );
    }

    #[test]
    fn example_wallet_and_payment_keys_load() {
        let chain = preset(Network::Regtest, Pow::Sha256d).params();
        let config = Config::from_text(&example_config(chain), Path::new("/tmp")).unwrap();
        let wallet = config.wallet.unwrap();
        assert_eq!(wallet.url, "http://127.0.0.1:18332");
        assert!(wallet.wallet.is_none());
        assert_eq!(config.payout.min_payment, pool_core::Sats(1_000_000));
        assert_eq!(config.payout.confirmations, 6);
        assert_eq!(config.payout.max_per_run, pool_core::Sats(10_000_000_000));
        assert_eq!(config.payout.max_per_day, pool_core::Sats(100_000_000_000));
    }

    #[test]
    fn mainnet_example_demands_a_real_address() {
        let text = example_config(preset(Network::Mainnet, Pow::Heavyhash).params());
        let err = Config::from_text(&text, Path::new("/tmp")).unwrap_err();
        assert!(err.to_string().contains("pool.payout_address"), "{err}");
    }
}
