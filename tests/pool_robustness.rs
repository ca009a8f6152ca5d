//! Hostile and broken input against the real pool binary: oversize lines, malformed JSON,
//! floods, slowloris, too many connections, a node that is down. Each gets an error or a
//! disconnect, and an honest miner on the same pool keeps being served.

mod common;

use common::nodes::{free_port, nodes};
use common::pool::{PoolOptions, PoolProcess};
use common::stratum_client::StratumClient;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn honest_miner(pool: &PoolProcess) -> (StratumClient, String) {
    let user = nodes().node1.new_address();
    let (client, _) = StratumClient::authorized(pool.stratum, &user);
    (client, user)
}

fn assert_still_served(client: &mut StratumClient, user: &str) {
    let job = client.latest_job().unwrap();
    let s = client.grind(&job, None, None, 1_000_000);
    assert_eq!(client.submit(user, &s), Ok(json!(true)));
}

/// Reads until EOF (or error); true when the pool closed the connection within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn no_block_options() -> PoolOptions {
    let mut o = PoolOptions::new(&nodes().node1.new_address());
    o.pool_block_difficulty = Some(1e3);
    o.start_difficulty = 1e-9;
    o.min_difficulty = 1e-9;
    o.max_difficulty = 1e-9;
    o
}

#[test]
fn bad_input_gets_errors_or_disconnects_and_others_are_still_served() {
    let _serial = common::serial();
    let mut options = no_block_options();
    options.max_line_bytes = 1024;
    let pool = PoolProcess::start(&options);
    let (mut honest, user) = honest_miner(&pool);

    // Malformed JSON: an error reply, and the connection stays usable.
    let mut sloppy = StratumClient::connect(pool.stratum);
    sloppy.send_raw("{this is not json").unwrap();
    let reply = sloppy.read_line().expect("an error reply");
    assert!(!reply["error"].is_null(), "{reply}");
    sloppy
        .send_raw(r#"{"id":7,"method":"mining.nonsense","params":[]}"#)
        .unwrap();
    let reply = sloppy.read_line().expect("an error reply");
    assert_eq!(reply["id"], json!(7));
    assert!(!reply["error"].is_null());
    sloppy.subscribe();

    // A line over the limit: disconnect.
    let mut big = TcpStream::connect(pool.stratum).unwrap();
    let line = format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"{}\"]}}\n",
        "x".repeat(4096)
    );
    let _ = big.write_all(line.as_bytes());
    assert!(
        closed_within(&mut big, Duration::from_secs(20)),
        "oversize line must disconnect"
    );

    // A flood of garbage lines: disconnect after the session's error budget.
    let mut flood = TcpStream::connect(pool.stratum).unwrap();
    let garbage = "garbage\n".repeat(500);
    let _ = flood.write_all(garbage.as_bytes());
    assert!(
        closed_within(&mut flood, Duration::from_secs(20)),
        "a garbage flood must disconnect"
    );

    // Binary junk with no newline at all hits the line limit.
    let mut junk = TcpStream::connect(pool.stratum).unwrap();
    let _ = junk.write_all(&[0xffu8; 2048]);
    assert!(closed_within(&mut junk, Duration::from_secs(20)));

    assert_still_served(&mut honest, &user);
    assert!(pool.log().contains("closing connection"), "{}", pool.log());
}

#[test]
fn slowloris_and_idle_connections_are_closed() {
    let _serial = common::serial();
    let mut options = no_block_options();
    options.idle_timeout_secs = 2;
    let pool = PoolProcess::start(&options);

    // Dribbles bytes of a line that never ends.
    let mut slow = TcpStream::connect(pool.stratum).unwrap();
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    let mut buf = [0u8; 64];
    while started.elapsed() < Duration::from_secs(30) {
        if slow.write_all(b"{").is_err() {
            closed = true;
            break;
        }
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "a slowloris connection must be closed");

    // Silent after connecting: closed too.
    let mut idle = TcpStream::connect(pool.stratum).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(30)));
    assert!(pool.log().contains("idle"), "{}", pool.log());

    // A miner that keeps talking stays.
    let (mut honest, user) = honest_miner(&pool);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        assert_still_served(&mut honest, &user);
    }
}

#[test]
fn connections_over_the_per_ip_limit_are_refused() {
    let _serial = common::serial();
    let mut options = no_block_options();
    options.max_connections_per_ip = 3;
    let pool = PoolProcess::start(&options);
    let (mut a, user) = honest_miner(&pool);
    let (_b, _) = honest_miner(&pool);
    let (_c, _) = honest_miner(&pool);
    let mut fourth = TcpStream::connect(pool.stratum).unwrap();
    let _ = fourth.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n");
    assert!(
        closed_within(&mut fourth, Duration::from_secs(20)),
        "fourth connection must be refused"
    );
    assert_still_served(&mut a, &user);
    // A slot frees up when a miner leaves.
    drop(_c);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut again = StratumClient::connect(pool.stratum);
        again
            .send_raw(r#"{"id":1,"method":"mining.subscribe","params":[]}"#)
            .unwrap();
        if again.read_line().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed slot was never reusable"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_node_that_is_down_does_not_stop_the_pool() {
    let _serial = common::serial();
    let mut options = no_block_options();
    options.node_url = Some(format!("http://127.0.0.1:{}", free_port()));
    let mut pool = PoolProcess::start(&options);
    let mut client = StratumClient::connect(pool.stratum);
    client.subscribe();
    assert_eq!(
        client.authorize(&nodes().node1.new_address()),
        Ok(json!(true))
    );
    assert!(client.jobs.is_empty(), "no job without a node");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pool.log().contains("retrying") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pool.log().contains("retrying"), "{}", pool.log());
    drop(client);
    let status = pool.terminate();
    assert!(status.success(), "{status}\n{}", pool.log());
}

#[test]
fn miners_keep_working_while_the_node_is_down_and_get_new_work_when_it_returns() {
    let _serial = common::serial();
    let node = &nodes().node1;
    let upstream: std::net::SocketAddr = format!("127.0.0.1:{}", node.rpc_port).parse().unwrap();
    let proxy = common::proxy::CuttableProxy::start(upstream);
    let mut options = no_block_options();
    options.node_url = Some(format!("http://{}", proxy.addr));
    options.refresh_secs = 1;
    let pool = PoolProcess::start(&options);
    let (mut client, user) = honest_miner(&pool);
    let job = client.latest_job().unwrap();

    proxy.cut();
    // The pool notices (refresh every second) and retries; shares on the last job still count.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pool.log().contains("retrying") && Instant::now() < deadline {
        assert_still_served(&mut client, &user);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(pool.log().contains("retrying"), "{}", pool.log());
    for _ in 0..3 {
        assert_still_served(&mut client, &user);
    }

    // The network moves on meanwhile; once the node is back, miners get the new block.
    nodes().node2.cli(&["generate", "1"]);
    proxy.restore();
    let next = client
        .wait_for_new_block(&job.prev_hash, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no new work after the node came back:\n{}", pool.log()));
    assert!(next.clean_jobs);
    assert!(
        pool.log().contains("node is answering again"),
        "{}",
        pool.log()
    );
    assert_still_served(&mut client, &user);
}

#[test]
fn run_refuses_a_node_of_another_chain() {
    let _serial = common::serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.toml");
    let node = &nodes().node1;
    // oBTC regtest shares Bitcoin's address prefixes but not the BSV node's genesis block.
    let text = format!(
        "[chain]\npreset = \"obtc-regtest\"\n[node]\nurl = \"{}\"\nuser = \"{}\"\npassword = \"{}\"\n\
         [stratum]\nlisten = \"127.0.0.1:{}\"\n[pool]\npayout_address = \"{}\"\n[ledger]\ndata_dir = \"ledger\"\n",
        node.rpc_url(),
        common::nodes::RPC_USER,
        common::nodes::RPC_PASSWORD,
        free_port(),
        node.new_address()
    );
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_obtc-pool"))
        .arg("run")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("genesis"), "{err}");
}
