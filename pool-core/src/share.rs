//! Share validation: rebuild the coinbase, merkle root and header from a miner's submit and
//! check its proof of work against the share and network targets. A plain synchronous hot path.
