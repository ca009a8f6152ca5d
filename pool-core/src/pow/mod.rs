//! Proof of work: SHA-256d (Bitcoin family) and HeavyHash (oBTC).
