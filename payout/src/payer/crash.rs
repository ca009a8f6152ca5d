//! Test hooks: `OBTC_TEST_PAYOUT_CRASH=after-prepare|after-sign|after-broadcast|before-confirm`
//! makes the process kill itself with SIGKILL at exactly that point, once, so crash tests can
//! prove that a restart resumes every payment by the state table.

use std::sync::atomic::{AtomicBool, Ordering};

/// The environment variable naming the crash point.
pub const CRASH_ENV: &str = "OBTC_TEST_PAYOUT_CRASH";

/// Where the process may be told to die.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Right after the `PaymentPrepared` append.
    AfterPrepare,
    /// Right after the `PaymentSigned` append, before any broadcast.
    AfterSign,
    /// After `sendrawtransaction` accepted the transaction, before `PaymentSent`.
    AfterBroadcast,
    /// After `PaymentSent`, when the transaction is deep enough, just before `PaymentConfirmed`.
    BeforeConfirm,
}

impl CrashPoint {
    pub fn parse(s: &str) -> Option<CrashPoint> {
        match s.trim() {
            "after-prepare" => Some(CrashPoint::AfterPrepare),
            "after-sign" => Some(CrashPoint::AfterSign),
            "after-broadcast" => Some(CrashPoint::AfterBroadcast),
            "before-confirm" => Some(CrashPoint::BeforeConfirm),
            _ => None,
        }
    }
}

/// The configured crash point, if any; fires at most once.
#[derive(Debug, Default)]
pub struct CrashHooks {
    point: Option<CrashPoint>,
    fired: AtomicBool,
}

impl CrashHooks {
    /// From [`CRASH_ENV`]; an unknown value is ignored with a warning.
    pub fn from_env() -> CrashHooks {
        let point = match std::env::var(CRASH_ENV) {
            Ok(v) => {
                let p = CrashPoint::parse(&v);
                if p.is_none() {
                    tracing::warn!("{CRASH_ENV}={v:?} is not a crash point; ignored");
                } else {
                    tracing::warn!("test hook: the payout process will SIGKILL itself at {v}");
                }
                p
            }
            Err(_) => None,
        };
        CrashHooks {
            point,
            fired: AtomicBool::new(false),
        }
    }

    pub fn none() -> CrashHooks {
        CrashHooks::default()
    }

    /// Kills the process if `here` is the configured point (the first time only).
    pub fn at(&self, here: CrashPoint) {
        if self.point == Some(here) && !self.fired.swap(true, Ordering::SeqCst) {
            tracing::warn!("test hook: SIGKILL at {here:?}");
            // SAFETY: kill(2) on our own pid; no memory is touched.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse() {
        assert_eq!(
            CrashPoint::parse("after-broadcast"),
            Some(CrashPoint::AfterBroadcast)
        );
        assert_eq!(CrashPoint::parse("later"), None);
        // No point configured: nothing happens.
        CrashHooks::none().at(CrashPoint::AfterSign);
    }
}
