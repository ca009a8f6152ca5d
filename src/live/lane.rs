//! The payment lane: payment events enter the ledger one at a time, each checked against a
//! projection that has applied everything durable, then appended and applied before the next
//! is checked. So two requests can never both pass against the same balance.
//!
//! Besides the projection's state table ([`projections::Projection::check_payment`]), a
//! `PaymentSigned` must carry a transaction that really is the one it names and really pays
//! what the payment owes: its raw bytes decode, their txid is the event's, and its outputs pay
//! each address at least the amount the projection expects it to receive.

use super::Live;
use payout::api::AppendReply;
use payout::payer::tx;
use pool_core::address::parse_payout_address;
use pool_core::chain::ChainParams;
use pool_core::event::{PaymentSigned, PayoutAddress};
use pool_core::{Event, Sats};
use projections::PaymentCheck;
use std::collections::BTreeMap;

/// Why the lane did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// The event breaks a rule (the message says which); sending it again will not help.
    #[error("{0}")]
    Refused(String),
    /// The pool cannot append now (ledger closed or failing, projection behind); retry later.
    #[error("{0}")]
    Unavailable(String),
}

impl Live {
    /// Takes one payment event through the lane. A repeat of the payment's latest event is
    /// answered with that event's record (`repeated: true`) and appends nothing.
    pub async fn append_payment(&self, event: Event) -> Result<AppendReply, LaneError> {
        if !is_payment_event(&event) {
            return Err(LaneError::Refused(format!(
                "payment_append takes payment events only, not {}",
                event.kind()
            )));
        }
        let _turn = self.lane.lock().await;
        self.wait_durable_applied().await?;
        let check = {
            let state = self.read();
            let check = state
                .projection
                .check_payment(&event)
                .map_err(|refusal| LaneError::Refused(refusal.to_string()))?;
            if let (PaymentCheck::Valid, Event::PaymentSigned(signed)) = (&check, &event) {
                let expected = state
                    .projection
                    .expected_receipts(signed.payment_id, signed.network_fee)
                    .ok_or_else(|| {
                        LaneError::Refused(format!("payment {} is unknown", signed.payment_id))
                    })?;
                check_signed_tx(signed, &expected, self.chain).map_err(LaneError::Refused)?;
            }
            check
        };
        // Under the lane's turn: a pause that took effect is seen by every later prepare. An
        // exact repeat of a prepare made before the pause is still answered (it adds nothing).
        if let (PaymentCheck::Valid, Event::PaymentPrepared(p), Some(pause)) =
            (&check, &event, self.pause().get())
        {
            return Err(LaneError::Refused(format!(
                "payouts are paused by the operator since {} ({}): no new payment (payment {} \
                 not prepared); open payments go on; payouts_resume lifts the pause",
                stratum::ban::format_utc(pause.since_ms),
                pause.reason,
                p.payment_id
            )));
        }
        match check {
            PaymentCheck::Repeat { seq } => {
                let ledger = self.ledger().clone();
                let record = tokio::task::spawn_blocking(move || super::read_record(&ledger, seq))
                    .await
                    .map_err(|e| LaneError::Unavailable(format!("reading record {seq}: {e}")))?
                    .map_err(|e| LaneError::Unavailable(format!("{e:#}")))?;
                Ok(AppendReply {
                    seq,
                    hash: hex::encode(record.hash),
                    repeated: true,
                })
            }
            PaymentCheck::Valid => {
                let kind = event.kind();
                let appended = self.ledger().append(event).await.map_err(|e| {
                    LaneError::Unavailable(format!("cannot append to the ledger: {e}"))
                })?;
                self.wait_applied(appended.seq).await?;
                tracing::info!(seq = appended.seq, event = kind, "payment event recorded");
                Ok(AppendReply {
                    seq: appended.seq,
                    hash: hex::encode(appended.hash),
                    repeated: false,
                })
            }
        }
    }
}

fn is_payment_event(event: &Event) -> bool {
    matches!(
        event,
        Event::PaymentPrepared(_)
            | Event::PaymentSigned(_)
            | Event::PaymentSent(_)
            | Event::PaymentConfirmed(_)
            | Event::PaymentFailed(_)
    )
}

/// A signed payment's transaction against what it must do: decode, same txid, and for each
/// address at least `expected` satoshis paid to its script (outputs to one script are summed).
pub fn check_signed_tx(
    signed: &PaymentSigned,
    expected: &[(PayoutAddress, Sats)],
    chain: &ChainParams,
) -> Result<(), String> {
    let tx = tx::decode_bytes(&signed.raw_tx)
        .map_err(|e| format!("the signed transaction does not decode: {e}"))?;
    let txid = tx::txid(&tx);
    if txid != signed.txid {
        return Err(format!(
            "the signed transaction's txid is {txid}, the event names {}",
            signed.txid
        ));
    }
    let mut owed: BTreeMap<Vec<u8>, (&PayoutAddress, u64)> = BTreeMap::new();
    for (address, amount) in expected {
        let script = parse_payout_address(&address.0, chain)
            .map_err(|e| format!("payment output {address}: {e}"))?
            .script_pubkey;
        let entry = owed.entry(script).or_insert((address, 0));
        entry.1 = entry.1.saturating_add(amount.0);
    }
    for (script, (address, amount)) in &owed {
        let paid = tx
            .output
            .iter()
            .filter(|o| o.script_pubkey.as_bytes() == script.as_slice())
            .fold(0u64, |sum, o| sum.saturating_add(o.value.to_sat()));
        if paid < *amount {
            return Err(format!(
                "the signed transaction pays {address} {paid} sats, the payment owes it {amount}"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
    use pool_core::chain::Chain;

    const ALICE: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
    const BOB: &str = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX";

    fn chain() -> &'static ChainParams {
        Chain::BsvRegtest.params()
    }

    fn pay(outputs: &[(&str, u64)]) -> Transaction {
        Transaction {
            version: Version::ONE,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: outputs
                .iter()
                .map(|(a, v)| TxOut {
                    value: Amount::from_sat(*v),
                    script_pubkey: ScriptBuf::from_bytes(
                        parse_payout_address(a, chain()).unwrap().script_pubkey,
                    ),
                })
                .collect(),
        }
    }

    fn signed(tx: &Transaction) -> PaymentSigned {
        PaymentSigned {
            payment_id: 0,
            txid: tx::txid(tx),
            raw_tx: tx::to_bytes(tx),
            network_fee: Sats(200),
        }
    }

    fn owed() -> Vec<(PayoutAddress, Sats)> {
        vec![
            (PayoutAddress(ALICE.into()), Sats(5_000)),
            (PayoutAddress(BOB.into()), Sats(7_000)),
        ]
    }

    #[test]
    fn a_transaction_paying_every_address_its_due_passes() {
        let tx = pay(&[(BOB, 7_000), (ALICE, 5_000), (ALICE, 1)]);
        assert_eq!(check_signed_tx(&signed(&tx), &owed(), chain()), Ok(()));
        // Two outputs to one address count together.
        let tx = pay(&[(ALICE, 2_500), (BOB, 7_000), (ALICE, 2_500)]);
        assert_eq!(check_signed_tx(&signed(&tx), &owed(), chain()), Ok(()));
    }

    #[test]
    fn short_or_missing_outputs_a_wrong_txid_and_garbage_are_refused() {
        let short = pay(&[(ALICE, 5_000), (BOB, 6_999)]);
        let err = check_signed_tx(&signed(&short), &owed(), chain()).unwrap_err();
        assert!(err.contains(BOB) && err.contains("6999"), "{err}");
        let missing = pay(&[(ALICE, 12_000)]);
        assert!(check_signed_tx(&signed(&missing), &owed(), chain()).is_err());
        let mut wrong_id = signed(&pay(&[(ALICE, 5_000), (BOB, 7_000)]));
        wrong_id.txid.0[0] ^= 1;
        let err = check_signed_tx(&wrong_id, &owed(), chain()).unwrap_err();
        assert!(err.contains("txid"), "{err}");
        let mut garbage = signed(&pay(&[(ALICE, 5_000), (BOB, 7_000)]));
        garbage.raw_tx.truncate(20);
        let err = check_signed_tx(&garbage, &owed(), chain()).unwrap_err();
        assert!(err.contains("does not decode"), "{err}");
    }
}
