//! A full disk under the real pool binary, its ledger on a small tmpfs (the tests run as root;
//! without root or a tmpfs they skip, saying so): a Stratum miner's shares are acknowledged,
//! then, once a file fills the file system, answered with an error (never `true`) while jobs
//! are still served; once the file is deleted they are acknowledged again without a restart.
//! The pool logs the full disk once, stops cleanly, `ledger verify` passes and every
//! acknowledged share is in the ledger. Start-up on a nearly full tmpfs is refused with a
//! message saying how much is free and needed.

mod common;
mod tmpfs;

use common::nodes::{free_port, nodes};
use common::pool::{config_text, read_events, PoolOptions, PoolProcess};
use common::stratum_client::StratumClient;
use pool_core::event::ShareWithWork;
use pool_core::Event;
use serde_json::json;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tmpfs::Tmpfs;

/// The two 64 MiB log files, sled and an 8 MiB reserve (`min_free_mb = 8`) fit.
const TMPFS_BYTES: u64 = 192 << 20;
const MIN_FREE_MB: u64 = 8;
const PHASE_LIMIT: Duration = Duration::from_secs(30);

fn options() -> PoolOptions {
    let mut o = PoolOptions::new(&nodes().node1.new_address());
    o.pool_block_difficulty = Some(1e3);
    o.start_difficulty = 1e-9;
    o.min_difficulty = 1e-9;
    o.max_difficulty = 1e-9;
    o
}

/// A pool (not started) whose ledger lives in `ledger_dir`, with its RPC on `rpc`.
fn pool_on(ledger_dir: &Path, rpc: SocketAddr) -> PoolProcess {
    let mut options = options();
    options.extra = format!("\n[rpc]\nlisten = \"{rpc}\"\n");
    PoolProcess::unstarted(|stratum, notify| {
        config_text(&options, stratum, notify).replace(
            "data_dir = \"ledger\"",
            &format!(
                "data_dir = \"{}\"\nmin_free_mb = {MIN_FREE_MB}",
                ledger_dir.display()
            ),
        )
    })
}

/// Grinds and submits one share; `Ok(true)` acknowledged, `Err(code, message)` refused.
fn submit_one(client: &mut StratumClient, user: &str) -> Result<(), (i64, String)> {
    let job = client.latest_job().expect("a job");
    let s = client.grind(&job, None, None, 1_000_000);
    match client.submit(user, &s) {
        Ok(Value::Bool(true)) => Ok(()),
        Ok(v) => panic!("a share answered {v}"),
        Err(e) => Err((e.code, e.message)),
    }
}

/// `pool_status` over the pool's JSON-RPC (a read: no token): its result.
fn pool_status(rpc: SocketAddr) -> Value {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "pool_status", "params": []}).to_string();
    let mut stream = TcpStream::connect(rpc).expect("connect to the RPC");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST / HTTP/1.1\r\nHost: {rpc}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read the reply");
    let (_, body) = reply.split_once("\r\n\r\n").expect("an HTTP body");
    let reply: Value = serde_json::from_str(body).expect("JSON");
    reply["result"].clone()
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

#[test]
fn shares_are_refused_on_a_full_disk_and_acknowledged_again_once_space_is_freed() {
    let test = "shares_are_refused_on_a_full_disk_and_acknowledged_again_once_space_is_freed";
    let _serial = common::serial();
    let fs = match Tmpfs::mount(TMPFS_BYTES) {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip(test, &why),
    };
    let started = Instant::now();
    let ledger_dir = fs.path().join("ledger");
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut pool = pool_on(&ledger_dir, rpc);
    pool.spawn();
    let address = nodes().node1.new_address();
    let mut acked: BTreeMap<&str, u64> = BTreeMap::new();

    // Acknowledged while there is room.
    let before = format!("{address}.before");
    let (mut client, _) = StratumClient::authorized(pool.stratum, &before);
    for _ in 0..20 {
        submit_one(&mut client, &before).unwrap_or_else(|e| panic!("{e:?}\n{}", pool.log()));
        *acked.entry("before").or_default() += 1;
    }

    // The disk fills: shares are refused with an error, never acknowledged.
    let full = format!("{address}.full");
    let (mut client, _) = StratumClient::authorized(pool.stratum, &full);
    fs.fill("fill", 0);
    let deadline = Instant::now() + PHASE_LIMIT;
    let refusal = loop {
        assert!(
            Instant::now() < deadline,
            "no share refused:\n{}",
            pool.log()
        );
        match submit_one(&mut client, &full) {
            // Durable before the writer met the full disk (the log had room): acknowledged.
            Ok(()) => *acked.entry("full").or_default() += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(refusal.0, 20, "refusal {refusal:?}");
    assert!(
        refusal.1.contains("share not recorded"),
        "refusal {refusal:?}"
    );
    for _ in 0..10 {
        assert_eq!(
            submit_one(&mut client, &full).map_err(|e| e.0),
            Err(refusal.0),
            "acknowledged on a full disk"
        );
    }
    // Jobs are still served: a new miner subscribes, authorizes and gets work.
    let (mut newcomer, job) = StratumClient::authorized(pool.stratum, &format!("{address}.new"));
    assert!(!job.job_id.is_empty());
    assert!(submit_one(&mut newcomer, &format!("{address}.new")).is_err());
    // And RPC reads: the status shows the ledger head.
    let status = pool_status(rpc);
    assert!(status["ledger"]["seq"].is_u64(), "{status}");
    // Still refused after several of the writer's tries to heal (100, 200, 400 ms, ...).
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        submit_one(&mut client, &full).map_err(|e| e.0),
        Err(refusal.0),
        "acknowledged on a full disk"
    );

    // Space is freed: acknowledgements resume, on the same connection, without a restart.
    fs.free("fill");
    let after = format!("{address}.after");
    client.authorize(&after).unwrap();
    let deadline = Instant::now() + PHASE_LIMIT;
    let mut resumed = 0;
    while resumed < 20 {
        assert!(
            Instant::now() < deadline,
            "no ack after space was freed:\n{}",
            pool.log()
        );
        if submit_one(&mut client, &after).is_ok() {
            resumed += 1;
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    acked.insert("after", resumed);
    drop((client, newcomer));
    let status = pool.terminate();
    let log = pool.log();
    assert!(status.success(), "{status}\n{log}");
    assert_eq!(count(&log, "LEDGER DISK FULL"), 1, "{log}");
    assert_eq!(
        count(&log, "disk space is back: appends are accepted again"),
        1,
        "{log}"
    );

    // `ledger verify` passes, and every acknowledged share is in the ledger.
    let verify = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .args(["ledger", "verify", "--data"])
        .arg(&ledger_dir)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    let mut stored: BTreeMap<String, u64> = BTreeMap::new();
    for e in read_events(&ledger_dir) {
        if let Event::ShareWithWork(ShareWithWork { share: s, .. }) = e {
            *stored.entry(s.worker.0).or_default() += 1;
        }
    }
    for (worker, n) in &acked {
        let have = stored.get(*worker).copied().unwrap_or(0);
        assert!(
            have >= *n,
            "{worker}: {n} acknowledged, {have} in the ledger"
        );
    }
    for line in log
        .lines()
        .filter(|l| l.contains("DISK FULL") || l.contains("disk space") || l.contains("reopened"))
    {
        eprintln!("{line}");
    }
    eprintln!(
        "{test}: acknowledged {acked:?}, in the ledger {stored:?}, {:?}",
        started.elapsed()
    );
}

#[test]
fn start_up_on_a_nearly_full_disk_is_refused_clearly() {
    let test = "start_up_on_a_nearly_full_disk_is_refused_clearly";
    let _serial = common::serial();
    let fs = match Tmpfs::mount(TMPFS_BYTES) {
        Ok(fs) => fs,
        Err(why) => return tmpfs::skip(test, &why),
    };
    let ledger_dir = fs.path().join("ledger");
    let rpc: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut pool = pool_on(&ledger_dir, rpc);
    // 100 MiB left: the log files need 128 MiB plus the 8 MiB reserve.
    fs.fill("fill", 100 << 20);
    let mut child = Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .arg("run")
        .arg("--config")
        .arg(&pool.config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PHASE_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the pool did not refuse to start within {PHASE_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("the disk holding the ledger is full")
            && stderr.contains("free, the ledger needs at least 136.0 MiB"),
        "{stderr}"
    );
    // With the space back the same config starts.
    fs.free("fill");
    pool.spawn();
    assert!(pool.terminate().success(), "{}", pool.log());
}
