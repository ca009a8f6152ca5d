//! Stratum V1 line framing: bytes <-> JSON lines, with a size limit.
