//! Shared harness of the integration tests: the real regtest node pair, a small CPU-mining
//! Stratum client, and helpers to run the pool against the nodes.
#![allow(dead_code)]

pub mod miner;
pub mod nodes;
pub mod pool;
pub mod proxy;
pub mod rpc;
pub mod stratum_client;

/// Tests of one binary that mine or watch the chain take this lock so they run one at a time.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
