//! The real `obtc-pool run` records the configured payout rule in its ledger: once when the
//! ledger has none, not again while the config's rule is the one recorded last, and again when
//! the config changes (also back to an earlier rule). Runs the synthetic job source, so no node
//! is needed; the ledger is read with the ledger API after the pool stopped.

mod common;

use common::nodes::free_port;
use common::pool::read_events;
use pool_core::event::{NetworkFeePayer, PayoutAddress, PayoutRule, PayoutScheme};
use pool_core::Event;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const POOL_ADDRESS: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";
const FEE_ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";

/// Kills the pool if a test fails while it runs.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(listen: SocketAddr, payout: &str) -> String {
    format!(
        r#"[chain]
preset = "bsv-regtest"

[node]
kind = "synthetic"

[stratum]
listen = "{listen}"

[pool]
payout_address = "{POOL_ADDRESS}"

[payout]
{payout}
[ledger]
data_dir = "ledger"
"#
    )
}

/// Starts the pool with `payout` as its `[payout]` section, waits until it serves miners (the
/// rule is recorded before that), stops it with SIGTERM and returns its log.
fn run_pool(dir: &Path, payout: &str) -> String {
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config_path = dir.join("pool.toml");
    std::fs::write(&config_path, config(listen, payout)).unwrap();
    let log_path = dir.join("pool.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .arg("run")
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start obtc-pool");
    let mut running = Running(Some(child));
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
            break;
        }
        let child = running.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            panic!("obtc-pool exited early ({status}):\n{}", read_log());
        }
        assert!(
            Instant::now() < deadline,
            "obtc-pool did not listen within 30 s:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = running.0.as_ref().unwrap().id();
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(signalled.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = running.0.as_mut().unwrap().try_wait().unwrap() {
            running.0 = None;
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "obtc-pool did not exit within 30 s of SIGTERM:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = read_log();
    assert!(status.success(), "obtc-pool exited with {status}:\n{log}");
    log
}

fn recorded_rules(dir: &Path) -> Vec<PayoutRule> {
    read_events(&dir.join("ledger"))
        .into_iter()
        .filter_map(|e| match e {
            Event::PayoutRuleSet(rule) => Some(rule),
            _ => None,
        })
        .collect()
}

fn rule(fee_bps: u16) -> PayoutRule {
    PayoutRule {
        scheme: PayoutScheme::Pplns {
            window_numerator: 3,
            window_denominator: 2,
        },
        fee_bps,
        fee_address: PayoutAddress(FEE_ADDRESS.into()),
        network_fee_payer: NetworkFeePayer::Miners,
    }
}

fn payout_section(fee_bps: u16) -> String {
    format!(
        "scheme = \"pplns\"\npplns_window = \"1.5\"\nfee_bps = {fee_bps}\nfee_address = \"{FEE_ADDRESS}\"\nnetwork_fee_payer = \"miners\"\n"
    )
}

#[test]
fn rule_is_recorded_once_then_again_only_when_the_config_changes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let first = run_pool(d, &payout_section(100));
    assert!(first.contains("payout rule recorded (first)"), "{first}");
    assert_eq!(recorded_rules(d), vec![rule(100)]);

    let same = run_pool(d, &payout_section(100));
    assert!(same.contains("payout rule unchanged"), "{same}");
    assert!(!same.contains("payout rule recorded"), "{same}");
    assert_eq!(
        recorded_rules(d),
        vec![rule(100)],
        "same rule: no new event"
    );

    let changed = run_pool(d, &payout_section(250));
    assert!(
        changed.contains("payout rule recorded (changed)"),
        "{changed}"
    );
    assert_eq!(recorded_rules(d), vec![rule(100), rule(250)]);

    // Back to the first rule: it differs from the one recorded last, so it is recorded again
    // (blocks found under the 250 bps rule keep it).
    let back = run_pool(d, &payout_section(100));
    assert!(back.contains("payout rule recorded (changed)"), "{back}");
    assert_eq!(recorded_rules(d), vec![rule(100), rule(250), rule(100)]);

    // The auditor's replay sees the same history.
    let out = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["ledger", "balances", "--json", "--data"])
        .arg(d.join("ledger"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let history: Vec<PayoutRule> = report["rule_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| serde_json::from_value(e["rule"].clone()).unwrap())
        .collect();
    assert_eq!(history, vec![rule(100), rule(250), rule(100)]);
}

#[test]
fn default_payout_rule_is_recorded_with_the_pool_address_as_fee_address() {
    let dir = tempfile::tempdir().unwrap();
    let log = run_pool(dir.path(), "");
    assert!(log.contains("payout rule recorded (first)"), "{log}");
    assert_eq!(
        recorded_rules(dir.path()),
        vec![PayoutRule {
            scheme: PayoutScheme::Pplns {
                window_numerator: 2,
                window_denominator: 1,
            },
            fee_bps: 0,
            fee_address: PayoutAddress(POOL_ADDRESS.into()),
            network_fee_payer: NetworkFeePayer::Pool,
        }]
    );
}
