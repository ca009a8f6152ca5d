//! Chain parameters: which proof of work, which block id hash, address prefixes, maturity.
