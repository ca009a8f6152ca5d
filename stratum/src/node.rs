//! The node client: bitcoind-family JSON-RPC (getblocktemplate, submitblock, ...).
