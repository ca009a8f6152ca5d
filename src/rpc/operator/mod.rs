//! The operator's methods (`payout::api::operator`, documented in `docs/rpc.md`): reads of the
//! running pool, the heavy `ledger_verify`, the admin calls, and the WebSocket subscriptions.
//! Each group registers its methods from its own module.

mod read;
mod subscriptions;

use super::context::RpcContext;
use jsonrpsee::RpcModule;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    read::register(module)?;
    subscriptions::register(module)?;
    Ok(())
}
