//! The payment transaction's bytes: finding the payment's outputs in what the wallet funded,
//! splitting the network fee over them by the projection's rule when the miners pay it, and
//! checking what the wallet signed. Pure.
//!
//! When the miners pay, the wallet funds the transaction with the fee subtracted from the
//! payment outputs (`subtractFeeFromOutputs`: it needs only the payments' total, so a wallet
//! holding exactly the rewards it owes can pay them), by its own rule: equal shares, the
//! remainder from the first output. The ledger books the fee by the projection's proportional
//! split, so the outputs are set to that split before signing. Their sum is unchanged, and an
//! amount is 8 bytes whatever its value, so the inputs, the change, the size and the fee the
//! wallet chose all stay as funded.

use bitcoin::consensus::encode;
use bitcoin::{Amount, OutPoint, Transaction};
use pool_core::event::Txid;
use pool_core::{BlockId, Sats};

/// What is wrong with a transaction the wallet returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("cannot decode the wallet's transaction: {0}")]
    Decode(String),
    #[error("the funded transaction does not hold the payment's outputs as asked: {0}")]
    Outputs(String),
    #[error("the signed transaction differs from the one given to sign: {0}")]
    Signed(String),
}

/// One output the payment asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AskedOutput {
    pub script_pubkey: Vec<u8>,
    pub amount: Sats,
}

pub fn decode(hex_tx: &str) -> Result<Transaction, TxError> {
    let bytes = hex::decode(hex_tx.trim()).map_err(|e| TxError::Decode(e.to_string()))?;
    decode_bytes(&bytes)
}

pub fn decode_bytes(bytes: &[u8]) -> Result<Transaction, TxError> {
    encode::deserialize(bytes).map_err(|e| TxError::Decode(e.to_string()))
}

pub fn to_bytes(tx: &Transaction) -> Vec<u8> {
    encode::serialize(tx)
}

pub fn txid(tx: &Transaction) -> Txid {
    use bitcoin::hashes::Hash;
    BlockId(tx.compute_txid().to_byte_array())
}

/// How the wallet funded a payment's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Funding {
    /// The outputs pay what was asked; the fee is on top (the pool pays it).
    FeeOnTop,
    /// The wallet subtracted this fee from the outputs (the miners pay it).
    FeeSubtracted(Sats),
}

/// Positions of the asked outputs in the funded transaction, in the asked order: every output
/// but the change, each with the asked script, and the asked amount (`FeeOnTop`) or at most it
/// with the outputs `fee` short in all (`FeeSubtracted(fee)`).
pub fn payment_positions(
    tx: &Transaction,
    asked: &[AskedOutput],
    change: Option<usize>,
    funding: Funding,
) -> Result<Vec<usize>, TxError> {
    let positions: Vec<usize> = (0..tx.output.len())
        .filter(|i| Some(*i) != change)
        .collect();
    if positions.len() != asked.len() {
        return Err(TxError::Outputs(format!(
            "{} payment outputs asked, {} found",
            asked.len(),
            positions.len()
        )));
    }
    let mut short: u64 = 0;
    for (pos, want) in positions.iter().zip(asked) {
        let got = &tx.output[*pos];
        let value = got.value.to_sat();
        let amount_ok = match funding {
            Funding::FeeOnTop => value == want.amount.0,
            Funding::FeeSubtracted(_) => value <= want.amount.0,
        };
        if got.script_pubkey.as_bytes() != want.script_pubkey.as_slice() || !amount_ok {
            return Err(TxError::Outputs(format!(
                "output {pos} pays {value} sats to script {}, asked {} sats to {}",
                hex::encode(got.script_pubkey.as_bytes()),
                want.amount.0,
                hex::encode(&want.script_pubkey)
            )));
        }
        short += want.amount.0 - value;
    }
    if let Funding::FeeSubtracted(fee) = funding {
        if short != fee.0 {
            return Err(TxError::Outputs(format!(
                "the wallet took {short} sats from the payment outputs for a fee of {} sats",
                fee.0
            )));
        }
    }
    Ok(positions)
}

/// Sets the payment outputs (at `positions`) to `paid`, which must sum to what they pay now:
/// the fee is re-split among them, and the inputs, the change and the fee stay as funded.
pub fn set_paid_amounts(
    tx: &mut Transaction,
    positions: &[usize],
    paid: &[Sats],
) -> Result<(), TxError> {
    let now: u64 = positions.iter().map(|p| tx.output[*p].value.to_sat()).sum();
    let then: u64 = paid.iter().map(|s| s.0).sum();
    if positions.len() != paid.len() || now != then {
        return Err(TxError::Outputs(format!(
            "the payment outputs pay {now} sats in all, the fee split {then} sats"
        )));
    }
    for (pos, amount) in positions.iter().zip(paid) {
        tx.output[*pos].value = Amount::from_sat(amount.0);
    }
    Ok(())
}

/// Inputs minus outputs, when every input's value is known.
pub fn fee(tx: &Transaction, input_value: impl Fn(&OutPoint) -> Option<Sats>) -> Option<Sats> {
    let mut inputs: u64 = 0;
    for input in &tx.input {
        inputs = inputs.checked_add(input_value(&input.previous_output)?.0)?;
    }
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    inputs.checked_sub(outputs).map(Sats)
}

/// The signed transaction spends the same inputs and pays the same outputs as the unsigned one.
pub fn check_signed(unsigned: &Transaction, signed: &Transaction) -> Result<(), TxError> {
    let prevouts =
        |t: &Transaction| -> Vec<OutPoint> { t.input.iter().map(|i| i.previous_output).collect() };
    if prevouts(unsigned) != prevouts(signed) {
        return Err(TxError::Signed("its inputs differ".into()));
    }
    if unsigned.output != signed.output {
        return Err(TxError::Signed("its outputs differ".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Witness;
    use bitcoin::{absolute::LockTime, transaction::Version, ScriptBuf, Sequence, TxIn, TxOut};

    fn script(tag: u8) -> Vec<u8> {
        let mut s = vec![0x76, 0xa9, 0x14];
        s.extend([tag; 20]);
        s.extend([0x88, 0xac]);
        s
    }

    fn funded(outputs: &[(u8, u64)]) -> Transaction {
        Transaction {
            version: Version(2),
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: outputs
                .iter()
                .map(|(tag, v)| TxOut {
                    value: Amount::from_sat(*v),
                    script_pubkey: ScriptBuf::from_bytes(script(*tag)),
                })
                .collect(),
        }
    }

    fn asked(outputs: &[(u8, u64)]) -> Vec<AskedOutput> {
        outputs
            .iter()
            .map(|(t, v)| AskedOutput {
                script_pubkey: script(*t),
                amount: Sats(*v),
            })
            .collect()
    }

    #[test]
    fn bytes_round_trip_and_txid_is_the_display_reversed_hash() {
        let tx = funded(&[(1, 5_000)]);
        let bytes = to_bytes(&tx);
        assert_eq!(decode(&hex::encode(&bytes)).unwrap(), tx);
        assert_eq!(txid(&tx).to_display_hex(), tx.compute_txid().to_string());
    }

    #[test]
    fn positions_skip_the_change_and_check_scripts_and_amounts() {
        let tx = funded(&[(9, 70_000), (1, 5_000), (2, 6_000)]);
        let want = asked(&[(1, 5_000), (2, 6_000)]);
        let on_top = Funding::FeeOnTop;
        assert_eq!(
            payment_positions(&tx, &want, Some(0), on_top),
            Ok(vec![1, 2])
        );
        assert!(payment_positions(&tx, &want, Some(2), on_top).is_err());
        let more = asked(&[(1, 5_000), (2, 6_001)]);
        assert!(payment_positions(&tx, &more, Some(0), on_top).is_err());
    }

    #[test]
    fn a_subtracted_fee_must_be_exactly_what_the_outputs_lack() {
        // Asked 5000 and 6000; the wallet took a fee of 1001 equally, the odd satoshi first.
        let tx = funded(&[(1, 4_499), (9, 70_000), (2, 5_500)]);
        let want = asked(&[(1, 5_000), (2, 6_000)]);
        let fee = |f| Funding::FeeSubtracted(Sats(f));
        assert_eq!(
            payment_positions(&tx, &want, Some(1), fee(1_001)),
            Ok(vec![0, 2])
        );
        assert!(payment_positions(&tx, &want, Some(1), fee(1_000)).is_err());
        assert!(payment_positions(&tx, &want, Some(1), Funding::FeeOnTop).is_err());
        // An output above what was asked is never a fee.
        let tx = funded(&[(1, 5_001), (2, 4_999)]);
        assert!(payment_positions(&tx, &want, None, fee(0)).is_err());
    }

    #[test]
    fn the_fee_is_re_split_among_the_payment_outputs_and_the_rest_stays() {
        let mut tx = funded(&[(1, 4_499), (9, 70_000), (2, 5_500)]);
        let value = |_: &OutPoint| Some(Sats(81_000));
        let fee_before = fee(&tx, value).unwrap();
        set_paid_amounts(&mut tx, &[0, 2], &[Sats(4_545), Sats(5_454)]).unwrap();
        assert_eq!(tx.output[0].value.to_sat(), 4_545);
        assert_eq!(tx.output[1].value.to_sat(), 70_000);
        assert_eq!(tx.output[2].value.to_sat(), 5_454);
        assert_eq!(fee(&tx, value), Some(fee_before));
        // A split that does not sum to what the outputs pay would change the fee.
        let mut tx = funded(&[(1, 4_499), (2, 5_500)]);
        assert!(set_paid_amounts(&mut tx, &[0, 1], &[Sats(4_545), Sats(5_455)]).is_err());
        assert_eq!(tx.output[0].value.to_sat(), 4_499, "unchanged on refusal");
    }

    #[test]
    fn a_signed_transaction_must_pay_what_was_given() {
        let tx = funded(&[(1, 5_000)]);
        let mut signed = tx.clone();
        signed.input[0].script_sig = ScriptBuf::from_bytes(vec![1, 2, 3]);
        assert_eq!(check_signed(&tx, &signed), Ok(()));
        signed.output[0].value = Amount::from_sat(4_999);
        assert!(check_signed(&tx, &signed).is_err());
        assert_eq!(fee(&tx, |_| None), None);
    }
}
