//! The pure domain of obtc-pool.
//!
//! This crate owns the vocabulary every other crate speaks: the ledger's [`Event`]s, money in
//! satoshis ([`Sats`]), 256-bit targets and the work they stand for ([`Target`], [`Work`]), block
//! ids, and the proof-of-work functions (SHA-256d, HeavyHash and scrypt).
//!
//! It must never do I/O: no files, sockets, clocks or randomness. Everything here is a plain
//! function of its inputs, so the hot paths (share validation) can be tested and benchmarked
//! without a runtime, and projections built on these types stay deterministic.

pub mod address;
pub mod amount;
pub mod anchor;
pub mod block_id;
pub mod chain;
pub mod event;
pub mod export;
pub mod merkle;
pub mod pow;
pub mod share;
pub mod target;

pub use address::{parse_payout_address, AddressError, ParsedAddress};
pub use amount::Sats;
pub use block_id::BlockId;
pub use chain::{Chain, ChainParams};
pub use event::{Event, EVENT_SCHEMA_VERSION};
pub use pow::{MatrixCache, PowAlgorithm, PowHasher};
pub use target::{DifficultyUnit, Target, TargetError, Work};
