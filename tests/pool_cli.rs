//! The `obtc-pool` command line without a node: `init` output, config errors, `notify` with no
//! pool listening.

use std::process::Command;

fn pool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
}

#[test]
fn init_prints_a_config_that_run_accepts_up_to_the_node() {
    let out = pool()
        .args(["init", "--network", "regtest", "--pow", "sha256d"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("preset = \"bsv-regtest\""), "{text}");
    let out = pool()
        .args(["init", "--pow", "heavyhash"])
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("preset = \"obtc-regtest\""));
    let out = pool().args(["init", "--network", "moon"]).output().unwrap();
    assert!(!out.status.success());
}

#[test]
fn run_refuses_an_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    let out = pool()
        .args(["init", "--network", "mainnet"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace(
            "REPLACE_WITH_YOUR_ADDRESS",
            "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        )
        // The key at a line's start (comments mention `pool.payout_address` too).
        .replace(
            "\npayout_address",
            "\npool_block_difficulty = 2.0\npayout_address",
        );
    std::fs::write(&path, text).unwrap();
    let out = pool()
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pool.pool_block_difficulty"), "{err}");
    assert!(err.contains("regtest"), "{err}");

    let out = pool()
        .arg("run")
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn notify_fails_clearly_when_no_pool_listens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = pool()
        .args(["init", "--network", "regtest"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout)
        .unwrap()
        .replace("127.0.0.1:3334", &format!("127.0.0.1:{port}"));
    std::fs::write(&path, text).unwrap();
    let out = pool()
        .arg("notify")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("notify listener"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
