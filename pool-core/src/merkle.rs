//! Merkle roots and branches over txids, and the segwit witness commitment.
