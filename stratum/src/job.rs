//! Jobs: block templates turned into mining.notify work (coinbase split, merkle branch).
