//! The append-only, hash-chained event ledger on sled.
