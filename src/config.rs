//! The pool configuration file (TOML).
