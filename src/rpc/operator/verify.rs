//! `ledger_verify`: the ledger's own whole-chain check ([`ledger::Ledger::verify`]) of the live
//! ledger, while the pool runs.
//!
//! One verification at a time, in a background thread at the lowest CPU priority (nice 19,
//! and the idle I/O class, on Linux; the checking threads it starts inherit both), so shares
//! never wait for it: appends go on meanwhile (the check reads the head recorded when it
//! starts, and the chain only grows past it), and only storage maintenance (compaction,
//! archiving) waits for it, as it does for every verification. Concurrent callers share the
//! running verification. Without the token a new one starts at most once per
//! `[rpc] verify_min_interval_secs`; callers within get the last result (`fresh: false`). With
//! the token a fresh one starts whenever none is running.

use crate::live::views::{ledger_head, now_ms};
use crate::rpc::auth::Caller;
use crate::rpc::context::RpcContext;
use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use payout::api::operator::{Verification, VerifyReply, ERR_BUSY, METHOD_LEDGER_VERIFY};
use payout::api::ERR_UNAVAILABLE;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    module.register_async_method(METHOD_LEDGER_VERIFY, ledger_verify)?;
    Ok(())
}

/// The running verification (if any) and the last result.
pub struct Verifier {
    min_interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Resolves to `Some` when the running verification ends (`None` forever if it died).
    running: Option<watch::Receiver<Option<Verification>>>,
    last: Option<Verification>,
    last_started: Option<Instant>,
}

/// What a caller gets: a verification to wait for, or the last result.
enum Ticket {
    Wait(watch::Receiver<Option<Verification>>),
    Last(Verification),
}

impl Verifier {
    pub fn new(min_interval: Duration) -> Verifier {
        Verifier {
            min_interval,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins the running verification, returns the last result under the rate limit, or
    /// starts one (`ledger` is verified in a new low-priority thread).
    fn ticket(&self, ledger: &ledger::Ledger, token: bool) -> Result<Ticket, ErrorObjectOwned> {
        let mut state = self.state();
        if let Some(last) = state.running.as_ref().and_then(|r| r.borrow().clone()) {
            state.last = Some(last);
            state.running = None;
        }
        if let Some(running) = &state.running {
            return Ok(Ticket::Wait(running.clone()));
        }
        let recent = state
            .last_started
            .map(|t| t.elapsed())
            .filter(|age| *age < self.min_interval);
        if let (false, Some(age)) = (token, recent) {
            let wait = (self.min_interval - age).as_secs() + 1;
            return match &state.last {
                Some(last) => Ok(Ticket::Last(last.clone())),
                None => Err(ErrorObjectOwned::owned(
                    ERR_BUSY,
                    format!(
                        "a ledger verification ran less than [rpc] verify_min_interval_secs = {} \
                         ago and left no result; retry in {wait} s (or call with the token)",
                        self.min_interval.as_secs()
                    ),
                    None::<()>,
                )),
            };
        }
        let (tx, rx) = watch::channel(None);
        let ledger = ledger.clone();
        std::thread::Builder::new()
            .name("ledger-verify".into())
            .spawn(move || {
                lower_priority();
                let verification = run(&ledger);
                if verification.ok {
                    tracing::info!(
                        records = verification.records,
                        ms = verification.ms,
                        "ledger verified (ledger_verify)"
                    );
                } else {
                    tracing::error!(
                        problem = verification.problem.as_deref().unwrap_or(""),
                        "the ledger does not verify (ledger_verify)"
                    );
                }
                let _ = tx.send(Some(verification));
            })
            .map_err(|e| {
                ErrorObjectOwned::owned(
                    ERR_UNAVAILABLE,
                    format!("cannot start the verification thread: {e}"),
                    None::<()>,
                )
            })?;
        state.last_started = Some(Instant::now());
        state.running = Some(rx.clone());
        Ok(Ticket::Wait(rx))
    }

    /// Records a finished verification as the last one (whoever sees it first).
    fn finished(&self, verification: &Verification) {
        let mut state = self.state();
        if let Some(running) = &state.running {
            if running.borrow().is_some() {
                state.running = None;
            }
        }
        if state
            .last
            .as_ref()
            .map_or(true, |l| l.started_ms <= verification.started_ms)
        {
            state.last = Some(verification.clone());
        }
    }
}

/// One verification of the whole live ledger (blocking).
fn run(ledger: &ledger::Ledger) -> Verification {
    let started_ms = now_ms();
    let started = Instant::now();
    let first = ledger.base().ok().flatten().map_or(0, |b| b.seq);
    let result = ledger.verify();
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(report) => Verification {
            ok: true,
            first: report.first,
            records: report.records,
            head: ledger_head(report.head),
            problem: None,
            started_ms,
            ms,
        },
        Err(e) => Verification {
            ok: false,
            first,
            records: e.seq.saturating_sub(first),
            head: None,
            problem: Some(e.to_string()),
            started_ms,
            ms,
        },
    }
}

/// The calling thread (and the threads it starts) at the lowest CPU and I/O priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    unsafe {
        // SAFETY: plain system calls on this thread's id; failures only leave the priority.
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0 {
            tracing::debug!(
                "ledger_verify: cannot lower the thread's priority: {}",
                std::io::Error::last_os_error()
            );
        }
        // ioprio_set(IOPRIO_WHO_PROCESS, tid, IOPRIO_CLASS_IDLE << 13).
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const IOPRIO_CLASS_IDLE: libc::c_long = 3;
        let _ = libc::syscall(
            libc::SYS_ioprio_set,
            IOPRIO_WHO_PROCESS,
            tid as libc::c_long,
            IOPRIO_CLASS_IDLE << 13,
        );
    }
}

async fn ledger_verify(
    _params: Params<'static>,
    ctx: Arc<RpcContext>,
    extensions: Extensions,
) -> Result<VerifyReply, ErrorObjectOwned> {
    let token = matches!(extensions.get::<Caller>(), Some(Caller::Authorized));
    let ticket = ctx.verifier.ticket(ctx.live.ledger(), token)?;
    let (verification, fresh) = match ticket {
        Ticket::Last(last) => (last, false),
        Ticket::Wait(mut rx) => {
            let done = rx
                .wait_for(|v| v.is_some())
                .await
                .ok()
                .and_then(|v| v.clone());
            let verification = done.ok_or_else(|| {
                ErrorObjectOwned::owned(
                    ERR_UNAVAILABLE,
                    "the verification thread ended without a result (see the pool's log)",
                    None::<()>,
                )
            })?;
            ctx.verifier.finished(&verification);
            (verification, true)
        }
    };
    Ok(VerifyReply {
        ledger: ledger_head(ctx.live.read().head),
        verification,
        fresh,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(ticket: Ticket) -> (Verification, bool) {
        match ticket {
            Ticket::Last(v) => (v, false),
            Ticket::Wait(mut rx) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let v = rt
                    .block_on(rx.wait_for(|v| v.is_some()))
                    .unwrap()
                    .clone()
                    .unwrap();
                (v, true)
            }
        }
    }

    /// The ledger's verification of a ledger that grows meanwhile: every record up to (at
    /// least) the head recorded when it started, and it verifies.
    #[test]
    fn a_verification_while_appends_go_on_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger::Ledger::open(dir.path()).unwrap();
        let event = |i: u64| {
            pool_core::Event::PaymentFailed(pool_core::event::PaymentFailed {
                payment_id: i,
                reason: "x".into(),
            })
        };
        ledger
            .append_batch_blocking((0..20_000).map(event).collect())
            .unwrap();
        let writer = {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    ledger.append_batch_blocking(vec![event(i)]).unwrap();
                }
            })
        };
        let mut verified = Vec::new();
        for _ in 0..3 {
            let v = run(&ledger);
            assert!(v.ok, "{v:?}");
            verified.push(v.records);
        }
        writer.join().unwrap();
        assert!(verified.iter().all(|r| *r >= 20_000), "{verified:?}");
        let last = run(&ledger);
        assert_eq!(last.records, 20_050);
        ledger.close_blocking();
    }

    /// The verification thread runs at nice 19, and so do the checking threads it starts.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_verification_thread_and_its_children_run_at_nice_19() {
        fn nice() -> i32 {
            // SAFETY: reads this thread's priority.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        }
        let (own, child) = std::thread::spawn(|| {
            lower_priority();
            (nice(), std::thread::spawn(nice).join().unwrap())
        })
        .join()
        .unwrap();
        assert_eq!((own, child), (19, 19));
    }

    #[test]
    fn one_verification_at_a_time_and_the_last_under_the_rate_limit() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = ledger::Ledger::open(dir.path()).unwrap();
        let events = (0..50)
            .map(|i| {
                pool_core::Event::PaymentFailed(pool_core::event::PaymentFailed {
                    payment_id: i,
                    reason: "x".into(),
                })
            })
            .collect();
        ledger.append_batch_blocking(events).unwrap();
        let verifier = Verifier::new(Duration::from_secs(3600));
        let a = verifier.ticket(&ledger, false).unwrap();
        let b = verifier.ticket(&ledger, false).unwrap();
        let (va, fresh_a) = wait(a);
        let (vb, fresh_b) = wait(b);
        assert!(va.ok && fresh_a && fresh_b, "{va:?}");
        assert_eq!(va, vb, "the second caller shared the first verification");
        assert_eq!((va.first, va.records), (0, 50));
        assert_eq!(va.head.as_ref().map(|h| h.seq), Some(49));
        verifier.finished(&va);
        // Within the interval without the token: the last result.
        let (vc, fresh_c) = wait(verifier.ticket(&ledger, false).unwrap());
        assert!(!fresh_c);
        assert_eq!(vc, va);
        // With the token: a new one.
        let (vd, fresh_d) = wait(verifier.ticket(&ledger, true).unwrap());
        assert!(fresh_d && vd.ok);
        assert!(vd.started_ms >= va.started_ms);
        ledger.close_blocking();
    }
}
