//! One module per `obtc-pool` subcommand.

pub mod chain_watch;
pub mod init;
pub mod ledger;
pub mod notify;
pub mod payout;
pub mod replay;
pub mod run;
