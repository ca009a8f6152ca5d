//! The chain check before any work: no job reaches a miner and no block is submitted until the
//! node has shown that it serves the configured chain (its genesis block, and the network name
//! `getblockchaininfo` reports).
//!
//! The node client opens a connection per call, so there is no reconnect to hook: the check is
//! made again after any failed node call (the node may have been restarted, or replaced by
//! another), and periodically (the job source re-checks with its template refreshes). A node
//! that now serves another chain is refused and logged, and the job source withdraws its jobs.

use node_rpc::{NodeClient, NodeError};
use pool_core::chain::ChainParams;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::time::Instant;

/// Where the check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainState {
    /// Not checked since start or since the last failed call.
    Unchecked,
    /// The node serves the configured chain.
    Verified,
    /// The node serves another chain: no work, no submissions.
    WrongChain,
}

/// Why a check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ChainCheckError {
    #[error("cannot check the node's chain: {0}")]
    Node(#[from] NodeError),
    #[error("the node serves another chain: {0}")]
    WrongChain(String),
}

/// The check's state, shared by the job source and the block submitter.
#[derive(Debug)]
pub struct ChainGuard {
    chain: &'static ChainParams,
    state: AtomicU8,
    last_check: std::sync::Mutex<Option<Instant>>,
}

/// The `chain` name `getblockchaininfo` reports for a preset.
fn node_chain_name(preset: &str) -> &'static str {
    if preset.ends_with("-regtest") {
        "regtest"
    } else if preset.ends_with("-test") {
        "test"
    } else {
        "main"
    }
}

impl ChainGuard {
    pub fn new(chain: &'static ChainParams) -> ChainGuard {
        ChainGuard {
            chain,
            state: AtomicU8::new(0),
            last_check: std::sync::Mutex::new(None),
        }
    }

    pub fn state(&self) -> ChainState {
        match self.state.load(Ordering::Acquire) {
            1 => ChainState::Verified,
            2 => ChainState::WrongChain,
            _ => ChainState::Unchecked,
        }
    }

    pub fn is_verified(&self) -> bool {
        self.state() == ChainState::Verified
    }

    fn set(&self, state: ChainState) {
        let v = match state {
            ChainState::Unchecked => 0,
            ChainState::Verified => 1,
            ChainState::WrongChain => 2,
        };
        self.state.store(v, Ordering::Release);
    }

    /// A node call failed: check again before the next work or submission. (A wrong chain
    /// stays refused until a check passes.)
    pub fn invalidate(&self) {
        let _ = self
            .state
            .compare_exchange(1, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// How long ago the last check ran (`None`: never).
    pub fn since_last_check(&self) -> Option<std::time::Duration> {
        let last = *self.last_check.lock().unwrap_or_else(|e| e.into_inner());
        last.map(|t| t.elapsed())
    }

    /// Asks the node for its network and genesis block and compares them with the preset's.
    /// Logs every change of state (a wrong chain as an error).
    pub async fn check(&self, node: &NodeClient) -> Result<(), ChainCheckError> {
        let before = self.state();
        let result = self.compare(node).await;
        *self.last_check.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        match &result {
            Ok(()) => {
                self.set(ChainState::Verified);
                if before != ChainState::Verified {
                    tracing::info!(
                        chain = self.chain.name,
                        genesis = %self.chain.genesis,
                        "node checked: it serves the configured chain"
                    );
                }
            }
            Err(ChainCheckError::WrongChain(why)) => {
                self.set(ChainState::WrongChain);
                if before != ChainState::WrongChain {
                    tracing::error!(
                        url = %node.endpoint().url,
                        "refusing the node: {why}; no work is handed out and no block submitted until it serves {}",
                        self.chain.name
                    );
                }
            }
            Err(ChainCheckError::Node(_)) => self.invalidate(),
        }
        result
    }

    async fn compare(&self, node: &NodeClient) -> Result<(), ChainCheckError> {
        let info = node.get_blockchain_info().await?;
        let expected = node_chain_name(self.chain.name);
        if info.chain != expected {
            return Err(ChainCheckError::WrongChain(format!(
                "it reports chain {:?}, the preset {} needs {expected:?}",
                info.chain, self.chain.name
            )));
        }
        let genesis = node.get_block_hash(0).await?;
        if genesis != self.chain.genesis.to_string() {
            return Err(ChainCheckError::WrongChain(format!(
                "its genesis block is {genesis}, {}'s is {}",
                self.chain.name, self.chain.genesis
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_call_unchecks_a_verified_node_but_not_a_wrong_chain() {
        let guard = ChainGuard::new(ChainParams::by_name("bsv-regtest").unwrap());
        assert_eq!(guard.state(), ChainState::Unchecked);
        guard.set(ChainState::Verified);
        guard.invalidate();
        assert_eq!(guard.state(), ChainState::Unchecked);
        guard.set(ChainState::WrongChain);
        guard.invalidate();
        assert_eq!(guard.state(), ChainState::WrongChain);
    }

    #[test]
    fn network_names_follow_the_preset_suffix() {
        assert_eq!(node_chain_name("bsv-regtest"), "regtest");
        assert_eq!(node_chain_name("obtc-test"), "test");
        assert_eq!(node_chain_name("obtc"), "main");
    }
}
