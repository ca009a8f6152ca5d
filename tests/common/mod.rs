//! Shared harness of the integration tests: the real regtest node pair, a small CPU-mining
//! Stratum client, and helpers to run the pool against the nodes.
#![allow(dead_code)]

pub mod cluster;
pub mod miner;
pub mod nats;
pub mod nodes;
pub mod payout;
pub mod payout_scenarios;
pub mod payout_setup;
pub mod pool;
pub mod proxy;
pub mod rpc;
pub mod scrypt_shares;
pub mod stratum_client;
pub mod watchdog;

/// Tests of one binary that mine or watch the chain take this lock so they run one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A copy of a closed ledger directory (the same records, the same hashes).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    copy_tree(from, to, false);
}

/// A copy of a running pool's ledger directory: a file that vanishes meanwhile (a snapshot's
/// temporary file) is left out; a copy cut mid-write verifies up to its last complete batch.
pub fn copy_live_dir(from: &std::path::Path, to: &std::path::Path) {
    copy_tree(from, to, true);
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path, live: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target, live);
        } else {
            match std::fs::copy(entry.path(), &target) {
                Ok(_) => {}
                Err(e) if live && e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("copy {}: {e}", entry.path().display()),
            }
        }
    }
}
