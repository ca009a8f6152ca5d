//! The admin calls (all need the token): pause and resume payouts (kept across restarts,
//! `crate::live::pause`), and ban or unban a worker or an IP through the Stratum server's ban
//! store, closing the banned target's live connections through its registry.

use crate::live::views::{ledger_head, now_ms};
use crate::rpc::context::RpcContext;
use crate::rpc::methods::authorize;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use payout::api::operator::{
    BanInfo, BanRemoved, BanRequest, BanTargetSpec, BansList, PauseReply, PauseRequest,
    ERR_BAD_REQUEST, METHOD_BANS_LIST, METHOD_BAN_ADD, METHOD_BAN_REMOVE, METHOD_PAYOUTS_PAUSE,
    METHOD_PAYOUTS_RESUME,
};
use payout::api::ERR_UNAVAILABLE;
use pool_core::address::parse_payout_address;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use stratum::ban::{format_utc, Ban, BanCause, BanTarget};

/// The longest ban: one year.
pub const MAX_BAN_SECS: u64 = 365 * 24 * 60 * 60;
/// The longest pause reason.
pub const MAX_REASON_CHARS: usize = 500;
/// The longest username a ban names (Stratum's own limits are lower).
const MAX_USERNAME_BYTES: usize = 256;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    module.register_async_method(METHOD_PAYOUTS_PAUSE, payouts_pause)?;
    module.register_async_method(METHOD_PAYOUTS_RESUME, payouts_resume)?;
    module.register_method(METHOD_BAN_ADD, ban_add)?;
    module.register_method(METHOD_BAN_REMOVE, ban_remove)?;
    module.register_method(METHOD_BANS_LIST, |_, ctx, ext| {
        authorize(METHOD_BANS_LIST, ext)?;
        let bans = ctx.bans.list(now_ms()).iter().map(ban_info).collect();
        Ok::<BansList, ErrorObjectOwned>(BansList { bans })
    })?;
    Ok(())
}

fn bad_request(message: String) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(ERR_BAD_REQUEST, message, None::<()>)
}

fn unavailable(what: &str, e: std::io::Error) -> ErrorObjectOwned {
    tracing::error!("{what}: {e}");
    ErrorObjectOwned::owned(ERR_UNAVAILABLE, format!("{what}: {e}"), None::<()>)
}

/// `[{"reason": TEXT}]`, `["TEXT"]`, `{"reason": TEXT}` or no params.
fn pause_reason(params: &Params<'_>) -> Result<String, ErrorObjectOwned> {
    let reason = if params
        .as_str()
        .map_or(true, |s| s.trim().is_empty() || s.trim() == "[]")
    {
        String::new()
    } else if let Ok((request,)) = params.parse::<(PauseRequest,)>() {
        request.reason
    } else if let Ok((reason,)) = params.parse::<(String,)>() {
        reason
    } else {
        params.parse::<PauseRequest>()?.reason
    };
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(bad_request(format!(
            "the pause reason is {} characters long; at most {MAX_REASON_CHARS}",
            reason.chars().count()
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(bad_request(
            "the pause reason must be one line of text (no control characters)".into(),
        ));
    }
    Ok(if reason.is_empty() {
        "no reason given".into()
    } else {
        reason.to_owned()
    })
}

async fn payouts_pause(
    params: Params<'static>,
    ctx: Arc<RpcContext>,
    extensions: Extensions,
) -> Result<PauseReply, ErrorObjectOwned> {
    authorize(METHOD_PAYOUTS_PAUSE, &extensions)?;
    let reason = pause_reason(&params)?;
    let (info, changed) = ctx
        .live
        .pause_payouts(&reason, now_ms())
        .await
        .map_err(|e| unavailable("cannot write the payout pause file", e))?;
    Ok(PauseReply {
        ledger: ledger_head(ctx.live.read().head),
        paused: Some(info),
        changed,
    })
}

async fn payouts_resume(
    _params: Params<'static>,
    ctx: Arc<RpcContext>,
    extensions: Extensions,
) -> Result<PauseReply, ErrorObjectOwned> {
    authorize(METHOD_PAYOUTS_RESUME, &extensions)?;
    let changed = ctx
        .live
        .resume_payouts()
        .await
        .map_err(|e| unavailable("cannot write the payout pause file", e))?;
    Ok(PauseReply {
        ledger: ledger_head(ctx.live.read().head),
        paused: ctx.live.pause().get(),
        changed,
    })
}

/// A ban's target from the request, checked.
pub fn ban_target(spec: &BanTargetSpec, ctx: &RpcContext) -> Result<BanTarget, ErrorObjectOwned> {
    let ip = |field: &str, s: &str| {
        s.trim().parse::<IpAddr>().map_err(|_| {
            bad_request(format!(
                "{field} {s:?} is not an IP address (v4 like 192.0.2.7 or v6 like 2001:db8::7)"
            ))
        })
    };
    match (&spec.ip, &spec.worker, &spec.from) {
        (Some(addr), None, None) => Ok(BanTarget::Ip(ip("ip", addr)?)),
        (None, Some(username), from) => {
            let username = username.trim();
            if username.is_empty() || username.len() > MAX_USERNAME_BYTES {
                return Err(bad_request(format!(
                    "worker must be a Stratum username (ADDRESS or ADDRESS.WORKER, 1 to \
                     {MAX_USERNAME_BYTES} bytes), got {} bytes",
                    username.len()
                )));
            }
            let address = stratum::server::registry::split_username(username).0;
            let chain = ctx.live.chain();
            if let Err(e) = parse_payout_address(address, chain) {
                return Err(bad_request(format!(
                    "worker {username:?}: a Stratum username is a {} payout address, optionally \
                     followed by .WORKER, and {address:?} is not one: {e}",
                    chain.name
                )));
            }
            let from = match from {
                Some(f) => Some(ip("from", f)?),
                None => None,
            };
            Ok(BanTarget::Worker {
                username: username.to_owned(),
                from,
            })
        }
        (Some(_), Some(_), _) => Err(bad_request(
            "a ban names either an ip or a worker, not both (a worker from one IP: \
             {\"worker\": ..., \"from\": IP})"
                .into(),
        )),
        (Some(_), None, Some(_)) => Err(bad_request(
            "from goes with worker only (an IP ban already covers everything from the IP)".into(),
        )),
        (None, None, _) => Err(bad_request(
            "a ban needs a target: {\"ip\": IP} or {\"worker\": ADDRESS.WORKER} (optionally \
             with \"from\": IP)"
                .into(),
        )),
    }
}

fn spec_of(target: &BanTarget) -> BanTargetSpec {
    match target {
        BanTarget::Ip(ip) => BanTargetSpec {
            ip: Some(ip.to_string()),
            worker: None,
            from: None,
        },
        BanTarget::Worker { username, from } => BanTargetSpec {
            ip: None,
            worker: Some(username.clone()),
            from: from.map(|ip| ip.to_string()),
        },
    }
}

fn ban_info(ban: &Ban) -> BanInfo {
    BanInfo {
        target: spec_of(&ban.target),
        since_ms: ban.since_ms,
        until_ms: ban.until_ms,
        cause: match ban.cause {
            BanCause::Operator => "operator".into(),
            BanCause::Floods { cuts } => format!("floods ({cuts} cuts)"),
        },
        closed_connections: 0,
    }
}

/// `[request]` or the request object itself.
fn one_param<T: serde::de::DeserializeOwned>(params: &Params<'_>) -> Result<T, ErrorObjectOwned> {
    if let Ok((value,)) = params.parse::<(T,)>() {
        return Ok(value);
    }
    params.parse::<T>()
}

fn ban_add(
    params: Params<'_>,
    ctx: &RpcContext,
    extensions: &Extensions,
) -> Result<BanInfo, ErrorObjectOwned> {
    authorize(METHOD_BAN_ADD, extensions)?;
    let request: BanRequest = one_param(&params)?;
    let target = ban_target(&request.target, ctx)?;
    if !(1..=MAX_BAN_SECS).contains(&request.secs) {
        return Err(bad_request(format!(
            "secs {} is not a ban length: 1 to {MAX_BAN_SECS} (one year)",
            request.secs
        )));
    }
    let ban = ctx
        .bans
        .ban(target.clone(), Duration::from_secs(request.secs), now_ms());
    let until = format_utc(ban.until_ms);
    let closed = ctx
        .registry
        .close_matching(&target, &format!("banned by the operator until {until}"));
    tracing::warn!(
        closed_connections = closed,
        "operator banned {target} until {until}"
    );
    let mut info = ban_info(&ban);
    info.closed_connections = closed;
    Ok(info)
}

fn ban_remove(
    params: Params<'_>,
    ctx: &RpcContext,
    extensions: &Extensions,
) -> Result<BanRemoved, ErrorObjectOwned> {
    authorize(METHOD_BAN_REMOVE, extensions)?;
    let spec: BanTargetSpec = one_param(&params)?;
    let target = ban_target(&spec, ctx)?;
    let removed = ctx.bans.unban(&target);
    if removed {
        tracing::warn!("operator lifted the ban of {target}");
    }
    Ok(BanRemoved { removed })
}
