//! The operator's methods (`payout::api::operator`, documented in `docs/rpc.md`): reads of the
//! running pool, the heavy `ledger_verify`, the admin calls, and the WebSocket subscriptions.
//! Each group registers its methods from its own module.

use super::context::RpcContext;
use jsonrpsee::RpcModule;

pub fn register(_module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    Ok(())
}
