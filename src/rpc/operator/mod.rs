//! The operator's methods (`payout::api::operator`, documented in `docs/rpc.md`): reads of the
//! running pool, the heavy `ledger_verify`, the admin calls, and the WebSocket subscriptions.
//! Each group registers its methods from its own module.

pub mod admin;
pub mod export;
mod read;
pub mod stats;
mod subscriptions;
pub mod verify;

use super::context::RpcContext;
use jsonrpsee::RpcModule;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    read::register(module)?;
    subscriptions::register(module)?;
    stats::register(module)?;
    admin::register(module)?;
    verify::register(module)?;
    export::register(module)?;
    Ok(())
}
