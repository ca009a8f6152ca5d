//! The payer's runs against a fake pool (a small fold of the payment events) and a fake wallet
//! (real transaction bytes, a mempool and a chain of its own).

use super::*;
use crate::api::{AppendReply, OpenPayment, PayableBalance, PayoutReport, PayoutState};
use bitcoin::{absolute::LockTime, transaction::Version, Amount, ScriptBuf, Sequence, TxIn};
use bitcoin::{Transaction, TxOut, Witness};
use node_rpc::{AddressCheck, FundedTx, SignedTx, TxOutInfo, Unspent, WalletEntry, WalletTx};
use pool_core::event::PayoutScheme;
use projections::PaymentStatus;
use std::collections::BTreeMap;
use std::sync::Mutex;

// ---- the fake pool ----

#[derive(Default)]
struct PoolState {
    payable: BTreeMap<String, u64>,
    open: Vec<OpenPayment>,
    next_id: u64,
    prepared_24h: u64,
    events: Vec<Event>,
    reports: Vec<PayoutReport>,
    payer: Option<NetworkFeePayer>,
    paused: Option<crate::api::operator::PauseInfo>,
}

#[derive(Default)]
struct FakePool(Mutex<PoolState>);

impl FakePool {
    fn with(payable: &[(&str, u64)], payer: NetworkFeePayer) -> FakePool {
        let pool = FakePool::default();
        {
            let mut s = pool.0.lock().unwrap();
            s.payable = payable.iter().map(|(a, v)| (a.to_string(), *v)).collect();
            s.payer = Some(payer);
        }
        pool
    }
    fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().events.clone()
    }
    fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(Event::kind).collect()
    }
    fn last_report(&self) -> PayoutReport {
        self.0.lock().unwrap().reports.last().cloned().unwrap()
    }
}

impl PoolApi for FakePool {
    async fn payout_state(&self) -> Result<PayoutState, PoolApiError> {
        let s = self.0.lock().unwrap();
        Ok(PayoutState {
            ledger: None,
            rule: PayoutRule {
                scheme: PayoutScheme::Solo,
                fee_bps: 0,
                fee_address: PayoutAddress("fee".into()),
                network_fee_payer: s.payer.unwrap_or(NetworkFeePayer::Pool),
            },
            payable: s
                .payable
                .iter()
                .filter(|(_, v)| **v > 0)
                .map(|(a, v)| PayableBalance {
                    address: PayoutAddress(a.clone()),
                    payable: Sats(*v),
                })
                .collect(),
            open_payments: s.open.clone(),
            next_payment_id: s.next_id,
            prepared_last_24h: Sats(s.prepared_24h),
            paused: s.paused.clone(),
        })
    }

    async fn append(&self, event: Event) -> Result<AppendReply, PoolApiError> {
        let mut s = self.0.lock().unwrap();
        let payer = s.payer.unwrap_or(NetworkFeePayer::Pool);
        let find = |s: &mut PoolState, id: u64| s.open.iter().position(|p| p.payment_id == id);
        match &event {
            Event::PaymentPrepared(p) => {
                for o in &p.outputs {
                    *s.payable.entry(o.address.0.clone()).or_default() -= o.amount.0;
                    s.prepared_24h += o.amount.0;
                }
                s.next_id = p.payment_id + 1;
                s.open.push(OpenPayment {
                    payment_id: p.payment_id,
                    status: PaymentStatus::Prepared,
                    outputs: p.outputs.clone(),
                    network_fee_payer: payer,
                    txid: None,
                    raw_tx: None,
                    network_fee: Sats(0),
                });
            }
            Event::PaymentSigned(p) => {
                let i = find(&mut s, p.payment_id).expect("signed an open payment");
                let open = &mut s.open[i];
                assert_eq!(open.status, PaymentStatus::Prepared, "signed twice");
                open.status = PaymentStatus::Signed;
                open.txid = Some(p.txid);
                open.raw_tx = Some(hex::encode(&p.raw_tx));
                open.network_fee = p.network_fee;
            }
            Event::PaymentSent(p) => {
                let i = find(&mut s, p.payment_id).expect("sent an open payment");
                let open = &mut s.open[i];
                assert_eq!(open.txid, Some(p.txid), "sent as signed");
                assert_eq!(open.network_fee, p.network_fee, "sent as signed");
                open.status = PaymentStatus::Sent;
            }
            Event::PaymentConfirmed(p) => {
                let i = find(&mut s, p.payment_id).expect("confirmed an open payment");
                assert_eq!(s.open[i].status, PaymentStatus::Sent);
                s.open.remove(i);
            }
            Event::PaymentFailed(p) => {
                let i = find(&mut s, p.payment_id).expect("failed an open payment");
                let open = s.open.remove(i);
                if open.raw_tx.is_some() {
                    assert!(p.reason.starts_with(resume::CONFLICT_REASON_PREFIX));
                }
                for o in open.outputs {
                    *s.payable.entry(o.address.0).or_default() += o.amount.0;
                }
            }
            other => panic!("not a payment event: {other:?}"),
        }
        s.events.push(event);
        Ok(AppendReply {
            seq: s.events.len() as u64,
            hash: String::new(),
            repeated: false,
        })
    }

    async fn report(&self, report: PayoutReport) -> Result<(), PoolApiError> {
        self.0.lock().unwrap().reports.push(report);
        Ok(())
    }
}

// ---- the fake wallet ----

const FEE: u64 = 1_000;
/// The dust limit of these tests (Bitcoin's).
const DUST_LIMIT: Sats = Sats(546);
const COIN_VALUE: u64 = 10_000_000;

#[derive(Default)]
struct WalletState {
    locked: bool,
    refuse_broadcast: bool,
    /// The wallet's coin is exactly what the transaction needs: no change output.
    exact_coin: bool,
    invalid: BTreeSet<String>,
    mine: BTreeSet<String>,
    /// Coins: (txid display hex, vout) -> value.
    coins: BTreeMap<(String, u32), u64>,
    next_coin: u8,
    mempool: BTreeSet<String>,
    /// Mined txids and their heights.
    chain: BTreeMap<String, u64>,
    tip: u64,
    /// Overrides of gettransaction's confirmations (a conflict).
    confirmations: BTreeMap<String, i64>,
    broadcasts: u32,
    known: BTreeMap<String, String>,
}

#[derive(Default)]
struct FakeWallet(Mutex<WalletState>);

fn script_of(address: &str) -> Vec<u8> {
    let mut hash = [0u8; 20];
    for (i, b) in address.bytes().enumerate() {
        hash[i % 20] ^= b;
    }
    let mut s = vec![0x76, 0xa9, 0x14];
    s.extend(hash);
    s.extend([0x88, 0xac]);
    s
}

impl FakeWallet {
    fn new() -> FakeWallet {
        let w = FakeWallet::default();
        w.0.lock().unwrap().mine.insert("fee".into());
        w
    }
    fn set(&self, f: impl FnOnce(&mut WalletState)) {
        f(&mut self.0.lock().unwrap())
    }
    fn get<T>(&self, f: impl FnOnce(&WalletState) -> T) -> T {
        f(&self.0.lock().unwrap())
    }
    fn mine_blocks(&self, n: u64) {
        let mut s = self.0.lock().unwrap();
        let height = s.tip + 1;
        for txid in std::mem::take(&mut s.mempool) {
            s.chain.insert(txid, height);
        }
        s.tip += n;
    }
}

impl PaymentWallet for FakeWallet {
    async fn check_address(&self, address: &str) -> Result<AddressCheck, NodeError> {
        let s = self.0.lock().unwrap();
        let valid = !s.invalid.contains(address);
        Ok(AddressCheck {
            valid,
            is_mine: s.mine.contains(address),
            script_pubkey: valid.then(|| hex::encode(script_of(address))),
        })
    }
    async fn create_raw_transaction(
        &self,
        outputs: &[(String, Sats)],
    ) -> Result<String, NodeError> {
        // By address, as the node reads the JSON object it gets.
        let pairs: BTreeMap<String, u64> = outputs.iter().map(|(a, v)| (a.clone(), v.0)).collect();
        let pairs: Vec<(String, u64)> = pairs.into_iter().collect();
        Ok(serde_json::to_string(&pairs).unwrap())
    }
    async fn fund_raw_transaction(
        &self,
        hex_tx: &str,
        subtract_fee_from: &[usize],
    ) -> Result<FundedTx, NodeError> {
        let pairs: Vec<(String, u64)> = serde_json::from_str(hex_tx).unwrap();
        let mut s = self.0.lock().unwrap();
        s.next_coin += 1;
        let prev =
            bitcoin::Txid::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([s.next_coin; 32]));
        let total: u64 = pairs.iter().map(|(_, v)| v).sum();
        let mut output: Vec<TxOut> = pairs
            .iter()
            .map(|(a, v)| TxOut {
                value: Amount::from_sat(*v),
                script_pubkey: ScriptBuf::from_bytes(script_of(a)),
            })
            .collect();
        // The wallet's rule for a subtracted fee: equal shares, the remainder from the first.
        let subtracted = !subtract_fee_from.is_empty();
        let n = subtract_fee_from.len() as u64;
        for (k, i) in subtract_fee_from.iter().enumerate() {
            let share = FEE / n + if k == 0 { FEE % n } else { 0 };
            let value = output[*i].value.to_sat();
            if value < share + DUST_LIMIT.0 {
                return Err(NodeError::Rpc {
                    method: "fundrawtransaction",
                    code: -4,
                    message: "The transaction amount is too small to pay the fee".into(),
                });
            }
            output[*i].value = Amount::from_sat(value - share);
        }
        let needed = if subtracted { total } else { total + FEE };
        let (coin, change_position) = if s.exact_coin {
            (needed, None)
        } else {
            output.insert(
                0,
                TxOut {
                    value: Amount::from_sat(COIN_VALUE - needed),
                    script_pubkey: ScriptBuf::from_bytes(script_of("change")),
                },
            );
            (COIN_VALUE, Some(0))
        };
        s.coins.insert((prev.to_string(), 0), coin);
        let fee = FEE;
        let tx = Transaction {
            version: Version(2),
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: bitcoin::OutPoint {
                    txid: prev,
                    vout: 0,
                },
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output,
        };
        Ok(FundedTx {
            hex: hex::encode(tx::to_bytes(&tx)),
            fee: Sats(fee),
            change_position,
        })
    }
    async fn sign_raw_transaction(&self, hex_tx: &str) -> Result<SignedTx, NodeError> {
        if self.0.lock().unwrap().locked {
            return Err(NodeError::Rpc {
                method: "signrawtransaction",
                code: -13,
                message: "Please enter the wallet passphrase with walletpassphrase first.".into(),
            });
        }
        let mut t = tx::decode(hex_tx).unwrap();
        for i in &mut t.input {
            i.script_sig = ScriptBuf::from_bytes(vec![0x51]);
        }
        Ok(SignedTx {
            hex: hex::encode(tx::to_bytes(&t)),
            complete: true,
            errors: vec![],
        })
    }
    async fn send_raw_transaction(&self, hex_tx: &str) -> Result<Broadcast, NodeError> {
        let mut s = self.0.lock().unwrap();
        if s.refuse_broadcast {
            return Err(NodeError::Rpc {
                method: "sendrawtransaction",
                code: -26,
                message: "66: insufficient priority".into(),
            });
        }
        let txid = tx::txid(&tx::decode(hex_tx).unwrap()).to_display_hex();
        if s.mempool.contains(&txid) || s.chain.contains_key(&txid) {
            return Ok(Broadcast::AlreadyKnown);
        }
        s.broadcasts += 1;
        s.mempool.insert(txid.clone());
        s.known.insert(txid.clone(), hex_tx.to_owned());
        Ok(Broadcast::Accepted(txid))
    }
    async fn get_transaction(&self, txid: &str) -> Result<Option<WalletTx>, NodeError> {
        let s = self.0.lock().unwrap();
        let Some(hex) = s.known.get(txid) else {
            return Ok(None);
        };
        let height = s.chain.get(txid).copied();
        let confirmations = match (s.confirmations.get(txid), height) {
            (Some(c), _) => *c,
            (None, Some(h)) => (s.tip - h + 1) as i64,
            (None, None) => 0,
        };
        Ok(Some(WalletTx {
            txid: txid.to_owned(),
            confirmations,
            blockhash: height.map(|h| format!("block-{h}")),
            walletconflicts: vec![],
            fee: None,
            hex: hex.clone(),
        }))
    }
    async fn get_raw_mempool(&self) -> Result<Vec<String>, NodeError> {
        Ok(self.0.lock().unwrap().mempool.iter().cloned().collect())
    }
    async fn list_unspent(&self, _min_conf: u32) -> Result<Vec<Unspent>, NodeError> {
        let s = self.0.lock().unwrap();
        Ok(s.coins
            .iter()
            .map(|((txid, vout), v)| Unspent {
                txid: txid.clone(),
                vout: *vout,
                address: None,
                amount: Sats(*v),
                confirmations: 1,
                spendable: true,
            })
            .collect())
    }
    async fn get_tx_out(&self, _txid: &str, _vout: u32) -> Result<Option<TxOutInfo>, NodeError> {
        Ok(Some(TxOutInfo {
            confirmations: 1,
            value: Sats(COIN_VALUE),
        }))
    }
    async fn list_transactions(&self, _count: u32) -> Result<Vec<WalletEntry>, NodeError> {
        Ok(vec![])
    }
    async fn block_height(&self, blockhash: &str) -> Result<Option<u64>, NodeError> {
        Ok(blockhash
            .strip_prefix("block-")
            .and_then(|h| h.parse().ok()))
    }
}

// ---- the runs ----

fn settings(confirmations: u32) -> PayerSettings {
    PayerSettings {
        limits: PlanLimits {
            min_payment: Sats(1_000),
            dust_limit: DUST_LIMIT,
            max_outputs: 2,
            max_per_run: Sats(1_000_000),
            max_per_day: Sats(2_000_000),
        },
        interval: Duration::from_secs(1),
        confirmations,
    }
}

fn payer(pool: FakePool, confirmations: u32) -> Payer<FakePool, FakeWallet> {
    Payer::new(
        pool,
        FakeWallet::new(),
        settings(confirmations),
        CrashHooks::none(),
    )
}

async fn run(p: &mut Payer<FakePool, FakeWallet>) -> RunSummary {
    p.run_once(&CancellationToken::new()).await
}

fn signed_tx(pool: &FakePool, id: u64) -> (Transaction, Sats) {
    pool.events()
        .iter()
        .find_map(|e| match e {
            Event::PaymentSigned(s) if s.payment_id == id => {
                Some((tx::decode_bytes(&s.raw_tx).unwrap(), s.network_fee))
            }
            _ => None,
        })
        .expect("a signed payment")
}

fn paid_to(t: &Transaction, address: &str) -> Option<u64> {
    t.output
        .iter()
        .find(|o| o.script_pubkey.as_bytes() == script_of(address).as_slice())
        .map(|o| o.value.to_sat())
}

#[tokio::test]
async fn due_balances_are_paid_in_batches_and_confirmed_at_the_final_depth() {
    let pool = FakePool::with(
        &[
            ("a", 5_000),
            ("b", 3_000),
            ("c", 999),
            ("d", 2_000),
            ("fee", 50_000),
        ],
        NetworkFeePayer::Pool,
    );
    let mut p = payer(pool, 2);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running, "{s:?}");
    // Two transactions (max_outputs = 2): a, b then d. c is below the threshold; the fee
    // address belongs to the wallet and is never paid.
    assert_eq!(
        p.pool.kinds(),
        [
            "PaymentPrepared",
            "PaymentSigned",
            "PaymentSent",
            "PaymentPrepared",
            "PaymentSigned",
            "PaymentSent"
        ]
    );
    let (t0, fee0) = signed_tx(&p.pool, 0);
    assert_eq!(paid_to(&t0, "a"), Some(5_000));
    assert_eq!(paid_to(&t0, "b"), Some(3_000));
    assert_eq!(fee0, Sats(FEE));
    let (t1, _) = signed_tx(&p.pool, 1);
    assert_eq!(paid_to(&t1, "d"), Some(2_000));
    assert_eq!(paid_to(&t1, "fee"), None);
    assert_eq!(p.wallet.get(|w| w.broadcasts), 2);

    // Waiting in the mempool, then below the final depth: nothing more.
    let s = run(&mut p).await;
    assert!(s.message.contains("in the mempool"), "{s:?}");
    p.wallet.mine_blocks(1);
    run(&mut p).await;
    assert_eq!(p.pool.events().len(), 6);
    p.wallet.mine_blocks(1);
    run(&mut p).await;
    let confirmed: Vec<(u64, u64)> = p
        .pool
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::PaymentConfirmed(c) => Some((c.payment_id, c.height)),
            _ => None,
        })
        .collect();
    assert_eq!(confirmed, vec![(0, 1), (1, 1)]);
    // Nothing is paid twice.
    run(&mut p).await;
    assert_eq!(p.pool.events().len(), 8);
    assert_eq!(p.wallet.get(|w| w.broadcasts), 2);
}

#[tokio::test]
async fn miners_share_the_fee_in_proportion_and_the_change_is_untouched() {
    let pool = FakePool::with(&[("a", 30_000), ("b", 10_000)], NetworkFeePayer::Miners);
    let mut p = payer(pool, 1);
    run(&mut p).await;
    let (t, fee) = signed_tx(&p.pool, 0);
    assert_eq!(fee, Sats(FEE));
    // 1000 split 3:1 (the wallet took 500 from each).
    assert_eq!(paid_to(&t, "a"), Some(29_250));
    assert_eq!(paid_to(&t, "b"), Some(9_750));
    assert_eq!(paid_to(&t, "change"), Some(COIN_VALUE - 40_000));
    let out: u64 = t.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(
        COIN_VALUE - out,
        FEE,
        "the fee is the one the wallet reported"
    );
}

#[tokio::test]
async fn miners_paying_need_only_the_payments_total_in_the_wallet() {
    let pool = FakePool::with(
        &[("a", 6_000_001), ("b", 3_000_000)],
        NetworkFeePayer::Miners,
    );
    let mut p = payer(pool, 1);
    p.wallet.set(|w| w.exact_coin = true);
    p.settings.limits.max_per_run = Sats(u64::MAX);
    p.settings.limits.max_per_day = Sats(u64::MAX);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running, "{s:?}");
    let (t, fee) = signed_tx(&p.pool, 0);
    assert_eq!(fee, Sats(FEE));
    assert_eq!(
        t.output.len(),
        2,
        "no change: the coin is exactly the payments' total"
    );
    let (d, _) = projections::split::split_network_fee(&[Sats(6_000_001), Sats(3_000_000)], fee);
    assert_eq!(paid_to(&t, "a"), Some(6_000_001 - d[0].0));
    assert_eq!(paid_to(&t, "b"), Some(3_000_000 - d[1].0));
    let out: u64 = t.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(9_000_001 - out, FEE);
}

#[tokio::test]
async fn an_output_too_small_for_an_equal_fee_share_is_funded_by_the_largest_alone() {
    // An equal share (500 each) would leave "a" below dust; its share by amount is 10 sats.
    let pool = FakePool::with(&[("a", 1_000), ("b", 99_000)], NetworkFeePayer::Miners);
    let mut p = payer(pool, 1);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running, "{s:?}");
    let (t, fee) = signed_tx(&p.pool, 0);
    assert_eq!(fee, Sats(FEE));
    assert_eq!(paid_to(&t, "a"), Some(990));
    assert_eq!(paid_to(&t, "b"), Some(98_010));
    assert_eq!(paid_to(&t, "change"), Some(COIN_VALUE - 100_000));
}

#[tokio::test]
async fn the_guard_pauses_and_prepares_nothing() {
    let pool = FakePool::with(&[("a", 600_000), ("b", 500_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Paused);
    assert!(s.message.contains("max_per_run"), "{s:?}");
    assert!(p.pool.events().is_empty());
    assert_eq!(p.pool.last_report().state, PayoutProcessState::Paused);
    // The daily cap: 1.5 M already today, 0.6 M more would pass 2 M.
    p.pool.0.lock().unwrap().payable.remove("b");
    p.pool.0.lock().unwrap().prepared_24h = 1_500_000;
    let s = run(&mut p).await;
    assert!(s.message.contains("max_per_day"), "{s:?}");
    assert!(p.pool.events().is_empty());
    // Once the day's payments age out, it pays.
    p.pool.0.lock().unwrap().prepared_24h = 0;
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running);
    assert_eq!(p.pool.kinds()[0], "PaymentPrepared");
}

#[tokio::test]
async fn a_locked_wallet_records_nothing_signed_and_the_retry_signs_the_same_payment() {
    let pool = FakePool::with(&[("a", 5_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    p.wallet.set(|w| w.locked = true);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Error);
    assert!(s.message.contains("locked"), "{s:?}");
    assert_eq!(p.pool.kinds(), ["PaymentPrepared"]);
    assert_eq!(p.pool.last_report().state, PayoutProcessState::Error);
    // Still locked: the prepared payment waits, no second one is made.
    run(&mut p).await;
    assert_eq!(p.pool.kinds(), ["PaymentPrepared"]);
    p.wallet.set(|w| w.locked = false);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running, "{s:?}");
    assert_eq!(
        p.pool.kinds(),
        ["PaymentPrepared", "PaymentSigned", "PaymentSent"]
    );
}

#[tokio::test]
async fn a_refused_broadcast_is_retried_with_the_recorded_bytes_never_failed() {
    let pool = FakePool::with(&[("a", 5_000), ("b", 7_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    p.settings.limits.max_outputs = 1;
    p.wallet.set(|w| w.refuse_broadcast = true);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Error);
    assert!(s.message.contains("refused"), "{s:?}");
    // The run stopped at the refused payment: b was not prepared.
    assert_eq!(p.pool.kinds(), ["PaymentPrepared", "PaymentSigned"]);
    let s = run(&mut p).await;
    assert!(s.message.contains("no new payment"), "{s:?}");
    assert_eq!(p.pool.kinds(), ["PaymentPrepared", "PaymentSigned"]);
    p.wallet.set(|w| w.refuse_broadcast = false);
    run(&mut p).await;
    let signed = match &p.pool.events()[1] {
        Event::PaymentSigned(s) => s.txid,
        e => panic!("{e:?}"),
    };
    match &p.pool.events()[2] {
        Event::PaymentSent(s) => assert_eq!(s.txid, signed),
        e => panic!("{e:?}"),
    }
    // And then b, in a transaction of its own.
    assert_eq!(p.pool.kinds().len(), 6);
}

#[tokio::test]
async fn after_a_crash_past_the_broadcast_the_payment_is_recorded_sent_without_a_second_one() {
    let pool = FakePool::with(&[("a", 5_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    run(&mut p).await;
    // Simulate the crash after the broadcast: drop the PaymentSent from the pool's state.
    {
        let mut s = p.pool.0.lock().unwrap();
        s.events.pop();
        s.open[0].status = PaymentStatus::Signed;
    }
    run(&mut p).await;
    assert_eq!(
        p.pool.kinds(),
        ["PaymentPrepared", "PaymentSigned", "PaymentSent"]
    );
    assert_eq!(p.wallet.get(|w| w.broadcasts), 1);
    // And after a crash past the signing (never broadcast): the same bytes go out.
    let pool = FakePool::with(&[("a", 5_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    p.wallet.set(|w| w.refuse_broadcast = true);
    run(&mut p).await;
    p.wallet.set(|w| w.refuse_broadcast = false);
    let mut fresh = Payer::new(
        FakePool::default(),
        FakeWallet::new(),
        settings(1),
        CrashHooks::none(),
    );
    std::mem::swap(&mut fresh.pool, &mut p.pool);
    std::mem::swap(&mut fresh.wallet, &mut p.wallet);
    run(&mut fresh).await;
    let (signed, _) = signed_tx(&fresh.pool, 0);
    let mempool = fresh.wallet.get(|w| w.mempool.clone());
    assert_eq!(
        mempool.into_iter().collect::<Vec<_>>(),
        vec![tx::txid(&signed).to_display_hex()]
    );
}

#[tokio::test]
async fn unpayable_addresses_are_skipped_and_keep_their_balance() {
    let pool = FakePool::with(&[("a", 5_000), ("bad", 9_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    p.wallet.set(|w| {
        w.invalid.insert("bad".into());
    });
    run(&mut p).await;
    let (t, _) = signed_tx(&p.pool, 0);
    assert_eq!(paid_to(&t, "a"), Some(5_000));
    assert_eq!(t.output.len(), 2, "a and the change");
    assert_eq!(p.pool.0.lock().unwrap().payable.get("bad"), Some(&9_000));
}

#[tokio::test]
async fn a_conflicting_spend_fails_the_payment_only_at_the_final_depth() {
    let pool = FakePool::with(&[("a", 5_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 3);
    run(&mut p).await;
    let txid = signed_tx(&p.pool, 0).0.compute_txid().to_string();
    p.wallet.set(|w| {
        w.mempool.clear();
        w.confirmations.insert(txid.clone(), -2);
    });
    run(&mut p).await;
    assert_eq!(p.pool.events().len(), 3, "a shallow conflict waits");
    p.wallet.set(|w| {
        w.confirmations.insert(txid.clone(), -3);
    });
    run(&mut p).await;
    match p.pool.events().last() {
        Some(Event::PaymentFailed(f)) => {
            assert!(
                f.reason.starts_with(resume::CONFLICT_REASON_PREFIX),
                "{f:?}"
            )
        }
        e => panic!("{e:?}"),
    }
    // The amount is payable again and is paid in a new payment.
    run(&mut p).await;
    assert_eq!(p.pool.kinds().len(), 7);
}

#[tokio::test]
async fn an_operators_pause_prepares_nothing_new_but_carries_open_payments_through() {
    let pool = FakePool::with(&[("a", 5_000), ("b", 3_000)], NetworkFeePayer::Pool);
    let mut p = payer(pool, 1);
    // One payment made and sent before the pause.
    run(&mut p).await;
    assert_eq!(
        p.pool.kinds(),
        ["PaymentPrepared", "PaymentSigned", "PaymentSent"]
    );
    p.pool.0.lock().unwrap().paused = Some(crate::api::operator::PauseInfo {
        reason: "wallet audit".into(),
        since_ms: 1,
    });
    // A new balance is due, and the open payment confirms: it is confirmed, nothing prepared.
    p.pool.0.lock().unwrap().payable.insert("c".into(), 9_000);
    p.wallet.mine_blocks(1);
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Paused, "{s:?}");
    assert!(
        s.message
            .starts_with("payouts paused by the operator: wallet audit"),
        "{s:?}"
    );
    assert!(s.message.contains("payment 0 confirmed"), "{s:?}");
    assert_eq!(
        p.pool.kinds(),
        [
            "PaymentPrepared",
            "PaymentSigned",
            "PaymentSent",
            "PaymentConfirmed"
        ]
    );
    assert_eq!(p.pool.last_report().state, PayoutProcessState::Paused);
    let s = run(&mut p).await;
    assert_eq!(s.message, "payouts paused by the operator: wallet audit");
    assert_eq!(p.pool.events().len(), 4);
    // Resumed: c is paid.
    p.pool.0.lock().unwrap().paused = None;
    let s = run(&mut p).await;
    assert_eq!(s.state, PayoutProcessState::Running, "{s:?}");
    assert_eq!(p.pool.events().len(), 7);
    let (t, _) = signed_tx(&p.pool, 1);
    assert_eq!(paid_to(&t, "c"), Some(9_000));
}
