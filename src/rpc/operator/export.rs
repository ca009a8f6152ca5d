//! `ledger_export` (no token): a page of the export format of the live ledger
//! ([`crate::audit::export`], the same lines `obtc-pool ledger export --data` writes), read on
//! tokio's blocking pool so no share waits for it. Params `[from, limit]` or `{"from",
//! "limit"}`: `from` the first record (default: the ledger's first live record), `limit` 1 to
//! [`MAX_EXPORT_LIMIT`] records (default the maximum). A page also ends once its lines pass
//! [`MAX_PAGE_BYTES`] (the RPC server answers at most 10 MiB); `next` is where the next page
//! starts, `None` once the page reached the durable head at the time of the call.

use crate::audit::export::{first_seq, page};
use crate::live::views::ledger_head;
use crate::rpc::context::RpcContext;
use jsonrpsee::types::error::INVALID_PARAMS_CODE;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use payout::api::operator::{
    LedgerExportPage, ERR_BAD_REQUEST, MAX_EXPORT_LIMIT, METHOD_LEDGER_EXPORT,
};
use payout::api::ERR_UNAVAILABLE;
use serde_json::Value;
use std::sync::Arc;

/// Lines of one page, at most (bytes of JSON, about): under the server's 10 MiB reply limit.
pub const MAX_PAGE_BYTES: usize = 6 << 20;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    module.register_async_method(METHOD_LEDGER_EXPORT, ledger_export)?;
    Ok(())
}

fn error(code: i32, message: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message, None::<()>)
}

fn invalid_params(why: impl std::fmt::Display) -> ErrorObjectOwned {
    error(
        INVALID_PARAMS_CODE,
        format!("{METHOD_LEDGER_EXPORT}: invalid params: {why}"),
    )
}

/// `(from, limit)` from `[from, limit]`, `{"from", "limit"}` or `[{...}]`, each optional.
fn parse(params: &Params) -> Result<(Option<u64>, u64), ErrorObjectOwned> {
    let value: Value = match params.as_str() {
        None => Value::Array(Vec::new()),
        Some(text) => serde_json::from_str(text).map_err(invalid_params)?,
    };
    let (from, limit) = match value {
        Value::Array(items) if items.len() == 1 && items[0].is_object() => {
            let Some(Value::Object(map)) = items.into_iter().next() else {
                unreachable!("checked")
            };
            named(map)?
        }
        Value::Object(map) => named(map)?,
        Value::Array(items) if items.len() <= 2 => {
            let mut items = items.into_iter();
            (items.next(), items.next())
        }
        Value::Array(items) => {
            return Err(invalid_params(format!(
                "{} params given, at most 2 taken: [from, limit]",
                items.len()
            )))
        }
        other => {
            return Err(invalid_params(format!(
                "expected an array or an object, got {other}"
            )))
        }
    };
    let from = match from.filter(|v| !v.is_null()) {
        None => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            invalid_params(format!("from must be an integer from 0, or null, got {v}"))
        })?),
    };
    let limit = match limit.filter(|v| !v.is_null()) {
        None => u64::from(MAX_EXPORT_LIMIT),
        Some(v) => {
            let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)) else {
                return Err(invalid_params(format!("limit must be an integer, got {v}")));
            };
            if !(1..=i64::from(MAX_EXPORT_LIMIT)).contains(&n) {
                return Err(error(
                    ERR_BAD_REQUEST,
                    format!(
                        "{METHOD_LEDGER_EXPORT}: limit {v} is out of range: a page holds 1 to \
                         {MAX_EXPORT_LIMIT} records"
                    ),
                ));
            }
            n as u64
        }
    };
    Ok((from, limit))
}

fn named(
    mut map: serde_json::Map<String, Value>,
) -> Result<(Option<Value>, Option<Value>), ErrorObjectOwned> {
    if let Some(unknown) = map.keys().find(|k| *k != "from" && *k != "limit") {
        return Err(invalid_params(format!(
            "unknown param {unknown:?}; the params are from, limit"
        )));
    }
    Ok((map.remove("from"), map.remove("limit")))
}

async fn ledger_export(
    params: Params<'static>,
    ctx: Arc<RpcContext>,
    _extensions: Extensions,
) -> Result<LedgerExportPage, ErrorObjectOwned> {
    let (from, limit) = parse(&params)?;
    let ledger = ctx.live.ledger().clone();
    let read = tokio::task::spawn_blocking(move || {
        let head = ledger.head();
        let base = first_seq(&ledger).map_err(|e| {
            error(
                ERR_UNAVAILABLE,
                format!("{METHOD_LEDGER_EXPORT}: cannot read the ledger's base: {e}"),
            )
        })?;
        let from = from.unwrap_or(base);
        if from < base {
            return Err(error(
                ERR_BAD_REQUEST,
                format!(
                    "{METHOD_LEDGER_EXPORT}: record {from} was archived: the live ledger starts \
                     at record {base} (the archives hold the records before it)"
                ),
            ));
        }
        let (header, records, next) =
            page(&ledger, from, limit, MAX_PAGE_BYTES, head).map_err(|e| {
                error(
                    ERR_UNAVAILABLE,
                    format!("{METHOD_LEDGER_EXPORT}: reading records from {from}: {e}"),
                )
            })?;
        Ok(LedgerExportPage {
            header,
            records,
            next,
            ledger: ledger_head(head),
        })
    })
    .await;
    read.map_err(|e| {
        error(
            ERR_UNAVAILABLE,
            format!("{METHOD_LEDGER_EXPORT}: the reading task failed: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<(Option<u64>, u64), i32> {
        parse(&Params::new(Some(json))).map_err(|e| e.code())
    }

    #[test]
    fn from_and_limit_positional_named_or_defaulted() {
        let max = u64::from(MAX_EXPORT_LIMIT);
        assert_eq!(parsed("[]"), Ok((None, max)));
        assert_eq!(parsed("[5]"), Ok((Some(5), max)));
        assert_eq!(parsed("[null, 10]"), Ok((None, 10)));
        assert_eq!(parsed(r#"{"from": 3, "limit": 7}"#), Ok((Some(3), 7)));
        assert_eq!(parsed(r#"[{"limit": 7}]"#), Ok((None, 7)));
        assert_eq!(parsed("[0, 0]"), Err(ERR_BAD_REQUEST));
        assert_eq!(parsed(&format!("[0, {}]", max + 1)), Err(ERR_BAD_REQUEST));
        assert_eq!(parsed("[-1]"), Err(INVALID_PARAMS_CODE));
        assert_eq!(parsed(r#"["x"]"#), Err(INVALID_PARAMS_CODE));
        assert_eq!(parsed("[1, 2, 3]"), Err(INVALID_PARAMS_CODE));
        assert_eq!(parsed(r#"{"form": 1}"#), Err(INVALID_PARAMS_CODE));
    }
}
