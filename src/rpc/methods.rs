//! The methods of `payout::api`, over the live projection. The operator's methods
//! (`payout::api::operator`) are registered by [`operator`](super::operator).

use super::auth::Caller;
use super::context::RpcContext;
use crate::live::LaneError;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use payout::api::{
    AppendReply, ArchiveReply, ArchiveRequest, PayoutReport, PayoutState, PoolStatus, ERR_ARCHIVE,
    ERR_REFUSED, ERR_UNAUTHORIZED, ERR_UNAVAILABLE, METHOD_LEDGER_ARCHIVE, METHOD_PAYMENT_APPEND,
    METHOD_PAYOUT_REPORT, METHOD_PAYOUT_STATE, METHOD_POOL_STATUS,
};
use pool_core::Event;
use std::sync::Arc;

pub fn module(context: Arc<RpcContext>) -> anyhow::Result<RpcModule<RpcContext>> {
    let mut module = RpcModule::from_arc(context);
    module.register_method(METHOD_POOL_STATUS, |_, ctx, _| {
        Ok::<PoolStatus, ErrorObjectOwned>(ctx.live.pool_status())
    })?;
    module.register_method(METHOD_PAYOUT_STATE, |_, ctx, _| {
        Ok::<PayoutState, ErrorObjectOwned>(ctx.live.payout_state())
    })?;
    module.register_async_method(METHOD_PAYMENT_APPEND, payment_append)?;
    module.register_method(METHOD_PAYOUT_REPORT, |params, ctx, extensions| {
        authorize(METHOD_PAYOUT_REPORT, extensions)?;
        let (report,): (PayoutReport,) = params.parse()?;
        ctx.live.set_payout_report(report);
        Ok::<bool, ErrorObjectOwned>(true)
    })?;
    module.register_async_method(METHOD_LEDGER_ARCHIVE, ledger_archive)?;
    super::operator::register(&mut module)?;
    Ok(module)
}

async fn ledger_archive(
    params: Params<'static>,
    ctx: Arc<RpcContext>,
    extensions: Extensions,
) -> Result<ArchiveReply, ErrorObjectOwned> {
    authorize(METHOD_LEDGER_ARCHIVE, &extensions)?;
    let (request,): (ArchiveRequest,) = params.parse()?;
    ctx.live.archive(request).await.map_err(|e| {
        tracing::warn!("ledger archive not made: {e:#}");
        ErrorObjectOwned::owned(ERR_ARCHIVE, format!("{e:#}"), None::<()>)
    })
}

async fn payment_append(
    params: Params<'static>,
    ctx: Arc<RpcContext>,
    extensions: Extensions,
) -> Result<AppendReply, ErrorObjectOwned> {
    authorize(METHOD_PAYMENT_APPEND, &extensions)?;
    let (event,): (Event,) = params.parse()?;
    ctx.live.append_payment(event).await.map_err(|e| match e {
        LaneError::Refused(why) => {
            tracing::info!("payment event refused: {why}");
            ErrorObjectOwned::owned(ERR_REFUSED, why, None::<()>)
        }
        LaneError::Unavailable(why) => {
            tracing::warn!("payment event not taken: {why}");
            ErrorObjectOwned::owned(ERR_UNAVAILABLE, why, None::<()>)
        }
    })
}

/// Appending methods need the request to have carried the token.
pub(crate) fn authorize(method: &str, extensions: &Extensions) -> Result<(), ErrorObjectOwned> {
    let why = match extensions.get::<Caller>().copied() {
        Some(Caller::Authorized) => return Ok(()),
        Some(Caller::WrongToken) => {
            tracing::warn!(method, "RPC call with a wrong token refused");
            "wrong RPC token"
        }
        Some(Caller::NoToken) | None => "this call needs the RPC token",
    };
    Err(ErrorObjectOwned::owned(
        ERR_UNAUTHORIZED,
        format!(
            "{method}: {why} (header `Authorization: Bearer TOKEN`, TOKEN from [rpc] token_file)"
        ),
        None::<()>,
    ))
}
