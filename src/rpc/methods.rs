//! The methods of `payout::api`, over the live projection.

use super::auth::Caller;
use crate::live::{LaneError, Live};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use payout::api::{
    AppendReply, ArchiveReply, ArchiveRequest, PayoutReport, PayoutState, PoolStatus, ERR_ARCHIVE,
    ERR_REFUSED, ERR_UNAUTHORIZED, ERR_UNAVAILABLE, METHOD_LEDGER_ARCHIVE, METHOD_PAYMENT_APPEND,
    METHOD_PAYOUT_REPORT, METHOD_PAYOUT_STATE, METHOD_POOL_STATUS,
};
use pool_core::Event;
use std::sync::Arc;

pub fn module(live: Arc<Live>) -> anyhow::Result<RpcModule<Live>> {
    let mut module = RpcModule::from_arc(live);
    module.register_method(METHOD_POOL_STATUS, |_, live, _| {
        Ok::<PoolStatus, ErrorObjectOwned>(live.pool_status())
    })?;
    module.register_method(METHOD_PAYOUT_STATE, |_, live, _| {
        Ok::<PayoutState, ErrorObjectOwned>(live.payout_state())
    })?;
    module.register_async_method(METHOD_PAYMENT_APPEND, payment_append)?;
    module.register_method(METHOD_PAYOUT_REPORT, |params, live, extensions| {
        authorize(METHOD_PAYOUT_REPORT, extensions)?;
        let (report,): (PayoutReport,) = params.parse()?;
        live.set_payout_report(report);
        Ok::<bool, ErrorObjectOwned>(true)
    })?;
    module.register_async_method(METHOD_LEDGER_ARCHIVE, ledger_archive)?;
    Ok(module)
}

async fn ledger_archive(
    params: Params<'static>,
    live: Arc<Live>,
    extensions: Extensions,
) -> Result<ArchiveReply, ErrorObjectOwned> {
    authorize(METHOD_LEDGER_ARCHIVE, &extensions)?;
    let (request,): (ArchiveRequest,) = params.parse()?;
    live.archive(request).await.map_err(|e| {
        tracing::warn!("ledger archive not made: {e:#}");
        ErrorObjectOwned::owned(ERR_ARCHIVE, format!("{e:#}"), None::<()>)
    })
}

async fn payment_append(
    params: Params<'static>,
    live: Arc<Live>,
    extensions: Extensions,
) -> Result<AppendReply, ErrorObjectOwned> {
    authorize(METHOD_PAYMENT_APPEND, &extensions)?;
    let (event,): (Event,) = params.parse()?;
    live.append_payment(event).await.map_err(|e| match e {
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
fn authorize(method: &str, extensions: &Extensions) -> Result<(), ErrorObjectOwned> {
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
