//! The payment transaction's bytes: finding the payment's outputs in what the wallet funded,
//! lowering them by the miners' fee shares (the change takes the difference, so the fee stays
//! the one the wallet chose), and checking what the wallet signed. Pure.
//!
//! Only amounts change between funding and signing; an amount is 8 bytes whatever its value,
//! so the transaction's size, and with it the fee the wallet computed for it, stays the same.
//! The one exception is a funded transaction without change: the deducted total then needs an
//! output of its own (a change address of the wallet), a few bytes more at the same fee.

use crate::payer::fees::DUST_LIMIT;
use bitcoin::consensus::encode;
use bitcoin::{Amount, OutPoint, ScriptBuf, Transaction, TxOut};
use pool_core::event::Txid;
use pool_core::{BlockId, Sats};

/// What is wrong with a transaction the wallet returned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("cannot decode the wallet's transaction: {0}")]
    Decode(String),
    #[error("the funded transaction does not hold the payment's outputs as asked: {0}")]
    Outputs(String),
    #[error("the funded transaction has no change output and the miners' fee share ({0} sats) is below the dust limit: it cannot be returned to the wallet without changing the fee; retrying at the next run")]
    NoRoomForDeduction(u64),
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

/// Positions of the asked outputs in the funded transaction, in the asked order: every output
/// but the change, each with the asked script and amount.
pub fn payment_positions(
    tx: &Transaction,
    asked: &[AskedOutput],
    change: Option<usize>,
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
    for (pos, want) in positions.iter().zip(asked) {
        let got = &tx.output[*pos];
        if got.script_pubkey.as_bytes() != want.script_pubkey.as_slice()
            || got.value.to_sat() != want.amount.0
        {
            return Err(TxError::Outputs(format!(
                "output {pos} pays {} sats to script {}, asked {} sats to {}",
                got.value.to_sat(),
                hex::encode(got.script_pubkey.as_bytes()),
                want.amount.0,
                hex::encode(&want.script_pubkey)
            )));
        }
    }
    Ok(positions)
}

/// Where the deducted total goes back to the wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The funded transaction's change output.
    At(usize),
    /// No change output: a new one to this script (a change address of the wallet).
    New(Vec<u8>),
}

/// Sets the payment outputs (at `positions`) to `paid` and returns the difference to the wallet
/// through `change`, so inputs minus outputs (the fee) is unchanged.
pub fn apply_paid_amounts(
    tx: &mut Transaction,
    positions: &[usize],
    paid: &[Sats],
    change: Change,
) -> Result<(), TxError> {
    let mut deducted: u64 = 0;
    for (pos, amount) in positions.iter().zip(paid) {
        let out = &mut tx.output[*pos];
        let before = out.value.to_sat();
        if amount.0 > before {
            return Err(TxError::Outputs(format!(
                "output {pos} would rise from {before} to {} sats",
                amount.0
            )));
        }
        deducted += before - amount.0;
        out.value = Amount::from_sat(amount.0);
    }
    if deducted == 0 {
        return Ok(());
    }
    match change {
        Change::At(pos) => {
            let out = tx
                .output
                .get_mut(pos)
                .ok_or_else(|| TxError::Outputs(format!("no change output at {pos}")))?;
            out.value = Amount::from_sat(out.value.to_sat() + deducted);
        }
        Change::New(script) => {
            if deducted < DUST_LIMIT.0 {
                return Err(TxError::NoRoomForDeduction(deducted));
            }
            tx.output.push(TxOut {
                value: Amount::from_sat(deducted),
                script_pubkey: ScriptBuf::from_bytes(script),
            });
        }
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
    use bitcoin::{absolute::LockTime, transaction::Version, Sequence, TxIn, Witness};

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
        assert_eq!(payment_positions(&tx, &want, Some(0)), Ok(vec![1, 2]));
        assert!(payment_positions(&tx, &want, Some(2)).is_err());
        assert!(payment_positions(&tx, &asked(&[(1, 5_000), (2, 6_001)]), Some(0)).is_err());
    }

    #[test]
    fn deductions_move_to_the_change_and_keep_the_fee() {
        let mut tx = funded(&[(1, 5_000), (9, 70_000), (2, 6_000)]);
        let value = |_: &OutPoint| Some(Sats(100_000));
        let fee_before = fee(&tx, value).unwrap();
        apply_paid_amounts(&mut tx, &[0, 2], &[Sats(4_500), Sats(5_400)], Change::At(1)).unwrap();
        assert_eq!(tx.output[0].value.to_sat(), 4_500);
        assert_eq!(tx.output[2].value.to_sat(), 5_400);
        assert_eq!(tx.output[1].value.to_sat(), 71_100);
        assert_eq!(fee(&tx, value), Some(fee_before));
    }

    #[test]
    fn without_change_the_deduction_gets_its_own_output_if_not_dust() {
        let mut tx = funded(&[(1, 50_000)]);
        let value = |_: &OutPoint| Some(Sats(51_000));
        apply_paid_amounts(&mut tx, &[0], &[Sats(49_000)], Change::New(script(7))).unwrap();
        assert_eq!(tx.output.len(), 2);
        assert_eq!(tx.output[1].value.to_sat(), 1_000);
        assert_eq!(fee(&tx, value), Some(Sats(1_000)));
        let mut tx = funded(&[(1, 50_000)]);
        assert_eq!(
            apply_paid_amounts(&mut tx, &[0], &[Sats(49_800)], Change::New(script(7))),
            Err(TxError::NoRoomForDeduction(200))
        );
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
