//! What to do with an open payment, by the payment state table and what the node shows.
//! Pure: the wallet's view of the transaction comes in as an [`Observation`].
//!
//! | stage | the node shows | action |
//! |---|---|---|
//! | Prepared | — | fund and sign again (nothing signed was recorded, so nothing was broadcast) |
//! | Signed | nothing (not in the mempool, not in the wallet's chain view) | broadcast the recorded bytes |
//! | Signed | in the mempool or in a block | record `PaymentSent` (the broadcast happened before a crash) |
//! | Sent | confirmed at least `confirmations` deep | record `PaymentConfirmed` |
//! | Sent | in the mempool, or confirmed less deep | wait |
//! | Sent | unconfirmed and not in the mempool (reorged out, evicted) | broadcast the recorded bytes again |
//! | Signed, Sent | a conflicting spend of an input at least `confirmations` deep | `PaymentFailed` ("conflicting spend confirmed: ...") |
//! | Signed, Sent | a conflicting spend less deep | wait (it may be reorged out) |

use crate::api::OpenPayment;
use projections::PaymentStatus;

/// `PaymentFailed` from Signed or Sent is valid only with a reason starting with this (the
/// payout process saw a conflicting spend of an input at the final depth).
pub use projections::CONFLICT_REASON_PREFIX;

/// Where an open payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Prepared,
    Signed,
    Sent,
}

/// The stage of an open payment (`None` once final).
pub fn stage(p: &OpenPayment) -> Option<Stage> {
    match p.status {
        PaymentStatus::Prepared => Some(Stage::Prepared),
        PaymentStatus::Signed => Some(Stage::Signed),
        PaymentStatus::Sent => Some(Stage::Sent),
        PaymentStatus::Confirmed | PaymentStatus::Failed => None,
    }
}

/// What the node shows of the payment's transaction.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// `gettransaction`'s confirmations (`None`: the wallet does not know the transaction):
    /// negative when a conflicting spend is that many blocks deep.
    pub confirmations: Option<i64>,
    pub blockhash: Option<String>,
    pub in_mempool: bool,
    /// A conflicting spend of one of its inputs found by looking at the inputs (for a
    /// transaction the wallet does not know): its txid and confirmations.
    pub conflict: Option<(String, i64)>,
    /// The wallet's `walletconflicts`.
    pub wallet_conflicts: Vec<String>,
}

/// The next step for an open payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    FundAndSign,
    Broadcast,
    RecordSent,
    Rebroadcast,
    Wait(String),
    Confirm { blockhash: String },
    Fail(String),
}

pub fn decide(stage: Stage, seen: &Observation, confirmations: u32) -> Action {
    let deep = i64::from(confirmations);
    if stage == Stage::Prepared {
        return Action::FundAndSign;
    }
    let conflict_depth = match (seen.confirmations, &seen.conflict) {
        (Some(c), _) if c < 0 => Some((-c, seen.wallet_conflicts.join(", "))),
        (_, Some((txid, c))) if *c > 0 => Some((*c, txid.clone())),
        _ => None,
    };
    if let Some((depth, txids)) = conflict_depth {
        let who = if txids.is_empty() {
            "a wallet transaction".to_owned()
        } else {
            txids
        };
        return if depth >= deep {
            Action::Fail(format!(
                "{CONFLICT_REASON_PREFIX}{who} spent an input of this payment's transaction and is {depth} blocks deep"
            ))
        } else {
            Action::Wait(format!(
                "a conflicting spend ({who}) is {depth} of {deep} blocks deep"
            ))
        };
    }
    let confirmed = seen.confirmations.filter(|c| *c > 0);
    match (stage, confirmed) {
        (Stage::Signed, Some(_)) => Action::RecordSent,
        (Stage::Signed, None) if seen.in_mempool => Action::RecordSent,
        (Stage::Signed, None) => Action::Broadcast,
        (Stage::Sent, Some(c)) if c >= deep => match &seen.blockhash {
            Some(hash) => Action::Confirm {
                blockhash: hash.clone(),
            },
            None => Action::Wait(format!("{c} confirmations but no block hash yet")),
        },
        (Stage::Sent, Some(c)) => Action::Wait(format!("{c} of {deep} confirmations")),
        (Stage::Sent, None) if seen.in_mempool => Action::Wait("in the mempool".to_owned()),
        (Stage::Sent, None) => Action::Rebroadcast,
        (Stage::Prepared, _) => Action::FundAndSign,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(confirmations: Option<i64>, in_mempool: bool) -> Observation {
        Observation {
            confirmations,
            blockhash: confirmations.filter(|c| *c > 0).map(|_| "bb".to_owned()),
            in_mempool,
            ..Observation::default()
        }
    }

    #[test]
    fn prepared_signs_again() {
        assert_eq!(
            decide(Stage::Prepared, &seen(None, false), 6),
            Action::FundAndSign
        );
    }

    #[test]
    fn signed_broadcasts_unless_the_node_has_it() {
        assert_eq!(
            decide(Stage::Signed, &seen(None, false), 6),
            Action::Broadcast
        );
        assert_eq!(
            decide(Stage::Signed, &seen(Some(0), false), 6),
            Action::Broadcast
        );
        assert_eq!(
            decide(Stage::Signed, &seen(Some(0), true), 6),
            Action::RecordSent
        );
        assert_eq!(
            decide(Stage::Signed, &seen(None, true), 6),
            Action::RecordSent
        );
        assert_eq!(
            decide(Stage::Signed, &seen(Some(7), false), 6),
            Action::RecordSent
        );
    }

    #[test]
    fn sent_confirms_only_at_the_final_depth() {
        assert!(matches!(
            decide(Stage::Sent, &seen(Some(5), false), 6),
            Action::Wait(_)
        ));
        assert_eq!(
            decide(Stage::Sent, &seen(Some(6), false), 6),
            Action::Confirm {
                blockhash: "bb".into()
            }
        );
        assert!(matches!(
            decide(Stage::Sent, &seen(Some(0), true), 6),
            Action::Wait(_)
        ));
    }

    #[test]
    fn sent_reorged_out_and_gone_from_the_mempool_is_broadcast_again() {
        assert_eq!(
            decide(Stage::Sent, &seen(Some(0), false), 6),
            Action::Rebroadcast
        );
        assert_eq!(
            decide(Stage::Sent, &seen(None, false), 6),
            Action::Rebroadcast
        );
    }

    #[test]
    fn a_conflict_fails_only_once_it_is_deep() {
        let mut s = seen(Some(-5), false);
        s.wallet_conflicts = vec!["cc".into()];
        assert!(matches!(decide(Stage::Sent, &s, 6), Action::Wait(_)));
        s.confirmations = Some(-6);
        match decide(Stage::Sent, &s, 6) {
            Action::Fail(reason) => {
                assert!(reason.starts_with(CONFLICT_REASON_PREFIX), "{reason}");
                assert!(reason.contains("cc"), "{reason}");
            }
            a => panic!("{a:?}"),
        }
        // A signed transaction the wallet never saw, whose input another spend took.
        let s = Observation {
            conflict: Some(("dd".into(), 6)),
            ..Observation::default()
        };
        assert!(matches!(decide(Stage::Signed, &s, 6), Action::Fail(r) if r.contains("dd")));
        let s = Observation {
            conflict: Some(("dd".into(), 0)),
            ..Observation::default()
        };
        assert_eq!(decide(Stage::Signed, &s, 6), Action::Broadcast);
    }
}
