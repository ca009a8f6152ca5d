//! The operator's read methods (no token): `pool_info`, `miner_balance`, `blocks_list`,
//! `block_get`, `payments_list`, `ledger_head`. Each checks its params, takes the live
//! projection's read lock once and builds its reply from that one state (`crate::live::reads`),
//! so the figures and the `ledger` head beside them belong together.
//!
//! Params: positional (`[address]`, `[status|null, limit, before|null]`) or by name (an object,
//! bare or as the only element of the array). Wrong JSON types are `-32602` (invalid params);
//! well-typed but refused values are the contract's errors ([`ERR_BAD_REQUEST`],
//! [`ERR_INVALID_ADDRESS`], [`ERR_UNKNOWN`]), each message naming the method, what was wrong and
//! what is allowed.

use crate::live::{reads, views};
use crate::rpc::context::RpcContext;
use jsonrpsee::types::error::INVALID_PARAMS_CODE;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::RpcModule;
use payout::api::operator::{
    BlockDetail, BlockState, BlocksPage, LedgerHeadReply, MinerBalance, PaymentsPage, PoolInfo,
    ERR_BAD_REQUEST, ERR_INVALID_ADDRESS, ERR_UNKNOWN, MAX_LIMIT, METHOD_BLOCKS_LIST,
    METHOD_BLOCK_GET, METHOD_LEDGER_HEAD, METHOD_MINER_BALANCE, METHOD_PAYMENTS_LIST,
    METHOD_POOL_INFO,
};
use pool_core::address::parse_payout_address;
use pool_core::chain::ChainParams;
use pool_core::event::PayoutAddress;
use pool_core::BlockId;
use serde_json::{Map, Value};

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    module.register_method(METHOD_POOL_INFO, |_, ctx, _| pool_info(ctx))?;
    module.register_method(METHOD_LEDGER_HEAD, |_, ctx, _| ledger_head(ctx))?;
    module.register_method(METHOD_MINER_BALANCE, |params, ctx, _| {
        miner_balance(&params, ctx)
    })?;
    module.register_method(METHOD_BLOCKS_LIST, |params, ctx, _| {
        blocks_list(&params, ctx)
    })?;
    module.register_method(METHOD_BLOCK_GET, |params, ctx, _| block_get(&params, ctx))?;
    module.register_method(METHOD_PAYMENTS_LIST, |params, ctx, _| {
        payments_list(&params, ctx)
    })?;
    Ok(())
}

type Reply<T> = Result<T, ErrorObjectOwned>;

fn error(code: i32, message: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message, None::<()>)
}

fn invalid_params(method: &str, why: impl std::fmt::Display) -> ErrorObjectOwned {
    error(
        INVALID_PARAMS_CODE,
        format!("{method}: invalid params: {why}"),
    )
}

fn ledger_base(ctx: &RpcContext) -> u64 {
    match ctx.live.ledger().base() {
        Ok(base) => base.map_or(0, |b| b.seq),
        Err(e) => {
            tracing::warn!("pool_info: cannot read the ledger's base: {e}");
            0
        }
    }
}

fn pool_info(ctx: &RpcContext) -> Reply<PoolInfo> {
    let base = ledger_base(ctx);
    Ok(reads::pool_info(&ctx.live.read(), &ctx.config, base))
}

fn ledger_head(ctx: &RpcContext) -> Reply<LedgerHeadReply> {
    let applied_seq = ctx.live.read().head.map(|h| h.seq);
    Ok(LedgerHeadReply {
        // Read after the applied head, so it is never behind it.
        ledger: views::ledger_head(ctx.live.ledger().head()),
        base: ledger_base(ctx),
        applied_seq,
    })
}

fn miner_balance(params: &Params, ctx: &RpcContext) -> Reply<MinerBalance> {
    let method = METHOD_MINER_BALANCE;
    let args = Args::parse(method, params, &["address"])?;
    let Some(text) = args.string(method, "address")? else {
        return Err(invalid_params(method, "expected [address]"));
    };
    let address = payout_address(method, &text, ctx.live.chain())?;
    reads::miner_balance(&ctx.live.read(), &address)
        .ok_or_else(|| unknown_address(method, &address))
}

fn blocks_list(params: &Params, ctx: &RpcContext) -> Reply<BlocksPage> {
    let method = METHOD_BLOCKS_LIST;
    let args = Args::parse(method, params, &["status", "limit", "before"])?;
    let status = match args.string(method, "status")? {
        None => None,
        Some(s) => Some(BlockState::parse(&s).ok_or_else(|| {
            error(
                ERR_BAD_REQUEST,
                format!(
                    "{method}: unknown status {s:?}: use pending, immature, matured, orphaned, \
                     rejected, or null for every block"
                ),
            )
        })?),
    };
    let limit = args.limit(method)?;
    let before = args.u64(method, "before")?;
    Ok(reads::blocks_page(&ctx.live.read(), status, limit, before))
}

fn block_get(params: &Params, ctx: &RpcContext) -> Reply<BlockDetail> {
    let method = METHOD_BLOCK_GET;
    let args = Args::parse(method, params, &["block_id"])?;
    let Some(text) = args.string(method, "block_id")? else {
        return Err(invalid_params(method, "expected [block_id]"));
    };
    let id = parse_block_id(&text).ok_or_else(|| {
        error(
            ERR_BAD_REQUEST,
            format!("{method}: {text:?} is not a block id: expected 64 hex digits (as the node prints it)"),
        )
    })?;
    reads::block_detail(&ctx.live.read(), &id).ok_or_else(|| {
        error(
            ERR_UNKNOWN,
            format!("{method}: the pool has no record of block {id} (not one of its candidates or found blocks)"),
        )
    })
}

fn payments_list(params: &Params, ctx: &RpcContext) -> Reply<PaymentsPage> {
    let method = METHOD_PAYMENTS_LIST;
    let args = Args::parse(method, params, &["address", "limit", "before"])?;
    let address = match args.string(method, "address")? {
        None => None,
        Some(text) => Some(payout_address(method, &text, ctx.live.chain())?),
    };
    let limit = args.limit(method)?;
    let before = args.u64(method, "before")?;
    reads::payments_page(&ctx.live.read(), address.as_ref(), limit, before).ok_or_else(|| {
        unknown_address(
            method,
            address.as_ref().expect("only an address can be unknown"),
        )
    })
}

/// The canonical form of an address of the pool's chain, or [`ERR_INVALID_ADDRESS`].
pub(super) fn payout_address(
    method: &str,
    text: &str,
    chain: &ChainParams,
) -> Reply<PayoutAddress> {
    parse_payout_address(text, chain)
        .map(|parsed| parsed.address)
        .map_err(|e| {
            error(
                ERR_INVALID_ADDRESS,
                format!(
                    "{method}: {text:?} is not a payout address of {}: {e}",
                    chain.name
                ),
            )
        })
}

fn unknown_address(method: &str, address: &PayoutAddress) -> ErrorObjectOwned {
    error(
        ERR_UNKNOWN,
        format!(
            "{method}: the pool has no record of address {address} (no share, credit or payment)"
        ),
    )
}

/// A block id as the node prints it: exactly 64 hex digits.
fn parse_block_id(text: &str) -> Option<BlockId> {
    if text.len() != 64 {
        return None;
    }
    BlockId::from_display_hex(text).ok()
}

/// A method's params by name, whichever form they came in.
struct Args {
    named: Map<String, Value>,
}

impl Args {
    /// `[a, b, c]` (positional, at most `names.len()`), `{"a": ..}` or `[{"a": ..}]`. Unknown
    /// names are refused (a typo must not silently mean "no filter").
    fn parse(method: &str, params: &Params, names: &[&str]) -> Reply<Args> {
        let value: Value = match params.as_str() {
            None => Value::Array(Vec::new()),
            Some(text) => serde_json::from_str(text).map_err(|e| invalid_params(method, e))?,
        };
        let named = match value {
            Value::Object(map) => map,
            Value::Array(items) if items.len() == 1 && items[0].is_object() => {
                let Some(Value::Object(map)) = items.into_iter().next() else {
                    unreachable!("checked")
                };
                map
            }
            Value::Array(items) => {
                if items.len() > names.len() {
                    return Err(invalid_params(
                        method,
                        format!(
                            "{} params given, at most {} taken: [{}]",
                            items.len(),
                            names.len(),
                            names.join(", ")
                        ),
                    ));
                }
                names.iter().map(|n| n.to_string()).zip(items).collect()
            }
            other => {
                return Err(invalid_params(
                    method,
                    format!("expected an array or an object, got {other}"),
                ))
            }
        };
        if let Some(unknown) = named.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(invalid_params(
                method,
                format!(
                    "unknown param {unknown:?}; the params are {}",
                    names.join(", ")
                ),
            ));
        }
        Ok(Args { named })
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.named.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, method: &str, name: &str) -> Reply<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid_params(
                method,
                format!("{name} must be a string or null, got {other}"),
            )),
        }
    }

    fn u64(&self, method: &str, name: &str) -> Reply<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                invalid_params(
                    method,
                    format!("{name} must be an integer from 0, or null, got {v}"),
                )
            }),
        }
    }

    /// `limit`: required, 1 to [`MAX_LIMIT`].
    fn limit(&self, method: &str) -> Reply<u32> {
        let range = || format!("a page holds 1 to {MAX_LIMIT} items");
        let Some(value) = self.get("limit") else {
            return Err(error(
                ERR_BAD_REQUEST,
                format!("{method}: limit is required ({})", range()),
            ));
        };
        let Some(n) = value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX)) else {
            return Err(invalid_params(
                method,
                format!("limit must be an integer, got {value}"),
            ));
        };
        match u32::try_from(n) {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(error(
                ERR_BAD_REQUEST,
                format!("{method}: limit {value} is out of range: {}", range()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(json: &str, names: &[&str]) -> Reply<Args> {
        let params = Params::new(Some(json));
        Args::parse("m", &params, names)
    }

    const PAGED: &[&str] = &["status", "limit", "before"];

    #[test]
    fn positional_and_named_params_read_the_same() {
        for json in [
            r#"["matured", 10, 1234]"#,
            r#"{"status": "matured", "limit": 10, "before": 1234}"#,
            r#"[{"status": "matured", "limit": 10, "before": 1234}]"#,
        ] {
            let a = args(json, PAGED).unwrap();
            assert_eq!(a.string("m", "status").unwrap().as_deref(), Some("matured"));
            assert_eq!(a.limit("m").unwrap(), 10);
            assert_eq!(a.u64("m", "before").unwrap(), Some(1234));
        }
        let a = args("[null, 5]", PAGED).unwrap();
        assert_eq!(a.string("m", "status").unwrap(), None);
        assert_eq!(a.u64("m", "before").unwrap(), None);
    }

    #[test]
    fn bad_params_are_refused_with_the_right_code() {
        let code = |r: Reply<u32>| r.unwrap_err().code();
        assert_eq!(
            code(args("[null, 0]", PAGED).unwrap().limit("m")),
            ERR_BAD_REQUEST
        );
        assert_eq!(
            code(args("[null, 1001]", PAGED).unwrap().limit("m")),
            ERR_BAD_REQUEST
        );
        assert_eq!(
            code(args("[null, -1]", PAGED).unwrap().limit("m")),
            ERR_BAD_REQUEST
        );
        assert_eq!(
            code(
                args("[null, 18446744073709551615]", PAGED)
                    .unwrap()
                    .limit("m")
            ),
            ERR_BAD_REQUEST
        );
        assert_eq!(
            code(args("[null]", PAGED).unwrap().limit("m")),
            ERR_BAD_REQUEST
        );
        assert_eq!(
            code(args(r#"[null, "ten"]"#, PAGED).unwrap().limit("m")),
            INVALID_PARAMS_CODE
        );
        assert_eq!(
            code(args("[null, 1.5]", PAGED).unwrap().limit("m")),
            INVALID_PARAMS_CODE
        );
        assert_eq!(
            args(r#"[7, 10]"#, PAGED)
                .unwrap()
                .string("m", "status")
                .unwrap_err()
                .code(),
            INVALID_PARAMS_CODE
        );
        assert_eq!(
            args(r#"[null, 10, "x"]"#, PAGED)
                .unwrap()
                .u64("m", "before")
                .unwrap_err()
                .code(),
            INVALID_PARAMS_CODE
        );
        assert_eq!(
            args("[null, 10, 1, 2]", PAGED).err().unwrap().code(),
            INVALID_PARAMS_CODE
        );
        let typo = args(r#"{"limt": 10}"#, PAGED).err().unwrap();
        assert_eq!(typo.code(), INVALID_PARAMS_CODE);
        assert!(typo.message().contains("limt"), "{}", typo.message());
        assert_eq!(args("5", PAGED).err().unwrap().code(), INVALID_PARAMS_CODE);
    }

    #[test]
    fn block_ids_are_64_hex_digits() {
        let hex = "00".repeat(31) + "01";
        assert_eq!(parse_block_id(&hex).unwrap().to_display_hex(), hex);
        assert!(parse_block_id("01").is_none());
        assert!(parse_block_id(&"zz".repeat(32)).is_none());
    }
}
