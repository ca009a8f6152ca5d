//! One module per `obtc-pool` subcommand.

pub mod init;
pub mod ledger;
pub mod notify;
pub mod payout;
pub mod replay;
pub mod run;
