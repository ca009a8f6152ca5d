//! The payment process: every interval it reads the pool's payout state, resumes each open
//! payment by the state table ([`resume`]), then pays every balance that is due ([`plan`]) in
//! transactions of many outputs, with the network fee by the rule in force ([`fees`], [`tx`]).
//!
//! Exactly once: a payment is recorded (`PaymentPrepared`) before the wallet builds anything,
//! its signed transaction is recorded (`PaymentSigned`) before the first broadcast, and only
//! those recorded bytes are ever broadcast for it. After a crash anywhere the next run finds the
//! payment open and continues from its state: before `PaymentSigned` it signs again (nothing was
//! broadcast), after it it broadcasts the same bytes (one txid). No event claims money moved
//! unless the node shows it: `PaymentSent` follows an accepted broadcast (or a node that already
//! has the transaction), `PaymentConfirmed` the final depth, and `PaymentFailed` of a signed
//! payment only a conflicting spend at that depth. A refused broadcast is retried and reported.
//!
//! New payments are made only when every open payment's transaction is with the node: the
//! wallet does not lock the coins of a signed transaction it has not seen, so funding another
//! one first could spend the same coins.

pub mod client;
pub mod crash;
pub mod fees;
pub mod plan;
pub mod resume;
pub mod tx;
pub mod wallet;

use crate::api::{OpenPayment, PayoutProcessState, PayoutReport, PayoutState};
use client::{PoolApi, PoolApiError};
use crash::{CrashHooks, CrashPoint};
use fees::FeeError;
use node_rpc::{Broadcast, FundedTx, NodeError};
use plan::{Guard, PlanLimits};
use pool_core::event::{
    NetworkFeePayer, PaymentConfirmed, PaymentFailed, PaymentOutput, PaymentPrepared, PaymentSent,
    PaymentSigned, PayoutAddress, PayoutRule, Txid,
};
use pool_core::{Event, Sats};
use resume::{Action, Observation, Stage};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tx::{AskedOutput, Funding, TxError};
use wallet::PaymentWallet;

/// `[payout]` as the payer uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayerSettings {
    pub limits: PlanLimits,
    pub interval: Duration,
    /// The final depth: `PaymentConfirmed` at this many confirmations.
    pub confirmations: u32,
}

/// Wallet entries looked through for a conflicting spend of a transaction's inputs.
const CONFLICT_SCAN_ENTRIES: u32 = 1_000;

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    #[error(transparent)]
    Pool(#[from] PoolApiError),
    #[error("wallet: {0}")]
    Wallet(String),
    #[error(transparent)]
    Tx(#[from] TxError),
    #[error(transparent)]
    Fee(#[from] FeeError),
    #[error("the node cannot pay address {address}: validateaddress says it is not valid for its network")]
    Unpayable { address: PayoutAddress },
    #[error("the pool's state is inconsistent: {0}")]
    State(String),
}

impl From<NodeError> for PayError {
    fn from(e: NodeError) -> PayError {
        PayError::Wallet(describe_wallet_error(&e))
    }
}

/// One line for the log and the report, with what the operator can do.
pub fn describe_wallet_error(e: &NodeError) -> String {
    match e {
        NodeError::Rpc { code, .. } if *code == node_rpc::wallet::RPC_WALLET_UNLOCK_NEEDED => {
            format!("the wallet is locked (unlock it with walletpassphrase): {e}")
        }
        e if is_insufficient_funds(e) => {
            format!("the wallet has too little money for this payment: {e}")
        }
        NodeError::Rpc { code, .. } if *code == node_rpc::wallet::RPC_WALLET_NOT_FOUND => {
            format!("the wallet named in [wallet] is not loaded on the node: {e}")
        }
        e if e.is_transient() => format!("the node is down or busy: {e}"),
        e => e.to_string(),
    }
}

/// The wallet cannot fund the transaction.
fn is_insufficient_funds(e: &NodeError) -> bool {
    matches!(e, NodeError::Rpc { code, message, .. }
        if (*code == node_rpc::wallet::RPC_WALLET_ERROR
            || *code == node_rpc::wallet::RPC_WALLET_INSUFFICIENT_FUNDS)
            && message.to_ascii_lowercase().contains("insufficient"))
}

/// The wallet refuses to take an equal share of the fee from an output too small for it.
fn is_too_small_for_the_fee(e: &NodeError) -> bool {
    matches!(e, NodeError::Rpc { code, message, .. }
        if *code == node_rpc::wallet::RPC_WALLET_ERROR
            && message.to_ascii_lowercase().contains("too small"))
}

/// Position of the largest output in the transaction `createrawtransaction` made of `outputs`
/// (its outputs come by address, `node_rpc::WalletClient::create_raw_transaction`).
fn position_of_largest(outputs: &[PaymentOutput]) -> usize {
    match outputs.iter().max_by_key(|o| o.amount) {
        Some(largest) => outputs
            .iter()
            .filter(|o| o.address < largest.address)
            .count(),
        None => 0,
    }
}

/// What one run did, as reported to the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSummary {
    pub state: PayoutProcessState,
    pub message: String,
}

/// A payment's transaction once signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPayment {
    pub txid: Txid,
    pub raw_tx: Vec<u8>,
    pub network_fee: Sats,
}

/// Where an open payment stands after this run's step.
enum Progress {
    /// Its transaction is with the node (or the payment is final).
    WithNode(String),
    /// Its transaction is not with the node yet: no new payment this run.
    Blocked(String),
}

/// The payout process's state between runs.
pub struct Payer<P, W> {
    pool: P,
    wallet: W,
    settings: PayerSettings,
    hooks: CrashHooks,
    /// Addresses whose skip reason was logged (each once at WARN/INFO, then at DEBUG).
    told: BTreeSet<(PayoutAddress, &'static str)>,
    announced_rule: Option<PayoutRule>,
}

impl<P: PoolApi, W: PaymentWallet> Payer<P, W> {
    pub fn new(pool: P, wallet: W, settings: PayerSettings, hooks: CrashHooks) -> Self {
        Payer {
            pool,
            wallet,
            settings,
            hooks,
            told: BTreeSet::new(),
            announced_rule: None,
        }
    }

    pub fn settings(&self) -> &PayerSettings {
        &self.settings
    }

    /// Runs every `interval` until `stop`; a run in progress ends at its next step boundary.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            self.run_once(&stop).await;
            if stop.is_cancelled() {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(self.settings.interval) => {}
            }
        }
        tracing::info!("payout process stopped");
    }

    /// One run: resume, pay, report. Logs its outcome and reports it to the pool.
    pub async fn run_once(&mut self, stop: &CancellationToken) -> RunSummary {
        let summary = match self.pay(stop).await {
            Ok(s) => s,
            Err(e) => RunSummary {
                state: PayoutProcessState::Error,
                message: format!("{e}; retrying in {} s", self.settings.interval.as_secs()),
            },
        };
        match summary.state {
            PayoutProcessState::Running => tracing::info!("payout run: {}", summary.message),
            PayoutProcessState::Paused => tracing::error!("{}", summary.message),
            PayoutProcessState::Error => tracing::error!("payout run failed: {}", summary.message),
        }
        let report = PayoutReport {
            state: summary.state,
            message: summary.message.clone(),
            time_ms: now_ms(),
        };
        if let Err(e) = self.pool.report(report).await {
            tracing::warn!("cannot report the payout status to the pool: {e}");
        }
        summary
    }

    async fn pay(&mut self, stop: &CancellationToken) -> Result<RunSummary, PayError> {
        let state = self.pool.payout_state().await?;
        self.announce_rule(&state.rule);
        let mut notes: Vec<String> = Vec::new();
        let mut blocked: Vec<String> = Vec::new();
        let mut open = state.open_payments.clone();
        open.sort_by_key(|p| p.payment_id);
        for p in &open {
            if stop.is_cancelled() {
                return Ok(running("stopping".into()));
            }
            match self.resume(p).await? {
                Progress::WithNode(note) => notes.push(note),
                Progress::Blocked(why) => blocked.push(why),
            }
        }
        if !blocked.is_empty() {
            return Ok(RunSummary {
                state: PayoutProcessState::Error,
                message: format!(
                    "{}; no new payment until the node has every open payment's transaction",
                    blocked.join("; ")
                ),
            });
        }
        if let Some(pause) = &state.paused {
            // Open payments were carried on above; nothing new is prepared.
            let mut message = format!("payouts paused by the operator: {}", pause.reason);
            notes.retain(|n| !n.is_empty());
            if !notes.is_empty() {
                message = format!("{message}; {}", notes.join("; "));
            }
            return Ok(RunSummary {
                state: PayoutProcessState::Paused,
                message,
            });
        }
        let paid = self.pay_due(&state, stop).await?;
        match paid {
            NewPayments::Paused(why) => Ok(RunSummary {
                state: PayoutProcessState::Paused,
                message: why,
            }),
            NewPayments::Made(made) => {
                notes.extend(made);
                if notes.is_empty() {
                    notes.push("nothing due".into());
                }
                Ok(running(notes.join("; ")))
            }
        }
    }

    fn announce_rule(&mut self, rule: &PayoutRule) {
        if self.announced_rule.as_ref() == Some(rule) {
            return;
        }
        if rule.network_fee_payer == NetworkFeePayer::Pool && rule.fee_bps == 0 {
            tracing::warn!(
                fee_address = %rule.fee_address,
                "network_fee_payer = pool with fee_bps = 0: the operator pays every payment's network fee; \
                 it is booked against the fee address {}, whose debt shows what was paid",
                rule.fee_address
            );
        }
        self.announced_rule = Some(rule.clone());
    }

    // ---- open payments ----

    async fn resume(&mut self, p: &OpenPayment) -> Result<Progress, PayError> {
        let Some(stage) = resume::stage(p) else {
            return Ok(Progress::WithNode(String::new()));
        };
        let id = p.payment_id;
        match stage {
            Stage::Prepared => {
                tracing::info!(
                    payment_id = id,
                    "resuming payment {id}: prepared, not signed; signing it again"
                );
                self.sign_and_send(id, &p.outputs, p.network_fee_payer)
                    .await
            }
            Stage::Signed | Stage::Sent => {
                let signed = recorded(p)?;
                let seen = self.observe(&signed).await?;
                self.follow(id, stage, &signed, &seen).await
            }
        }
    }

    /// Acts on a signed or sent payment by what the node shows.
    async fn follow(
        &mut self,
        id: u64,
        stage: Stage,
        signed: &SignedPayment,
        seen: &Observation,
    ) -> Result<Progress, PayError> {
        let txid = signed.txid.to_display_hex();
        match resume::decide(stage, seen, self.settings.confirmations) {
            Action::FundAndSign => Err(PayError::State(format!(
                "payment {id} is signed but was asked to sign again"
            ))),
            Action::RecordSent => {
                tracing::info!(
                    payment_id = id,
                    %txid,
                    "payment {id}'s transaction is already with the node; recording it as sent"
                );
                self.append_sent(id, signed).await?;
                Box::pin(self.follow(id, Stage::Sent, signed, seen)).await
            }
            Action::Broadcast => self.broadcast(id, signed, true).await,
            Action::Rebroadcast => {
                tracing::warn!(
                    payment_id = id,
                    %txid,
                    "payment {id}'s transaction is unconfirmed and not in the mempool; broadcasting the recorded bytes again"
                );
                self.broadcast(id, signed, false).await
            }
            Action::Wait(why) => match stage {
                Stage::Sent => Ok(Progress::WithNode(format!("payment {id} ({txid}): {why}"))),
                _ => Ok(Progress::Blocked(format!("payment {id} ({txid}): {why}"))),
            },
            Action::Confirm { blockhash } => {
                let height = self.wallet.block_height(&blockhash).await?.ok_or_else(|| {
                    PayError::Wallet(format!(
                        "the node does not know block {blockhash} of payment {id}"
                    ))
                })?;
                self.hooks.at(CrashPoint::BeforeConfirm);
                self.pool
                    .append(Event::PaymentConfirmed(PaymentConfirmed {
                        payment_id: id,
                        txid: signed.txid,
                        height,
                    }))
                    .await?;
                tracing::info!(
                    payment_id = id,
                    %txid,
                    height,
                    "payment {id} confirmed"
                );
                Ok(Progress::WithNode(format!(
                    "payment {id} confirmed at height {height}"
                )))
            }
            Action::Fail(reason) => {
                tracing::error!(payment_id = id, %txid, "payment {id} failed: {reason}");
                self.pool
                    .append(Event::PaymentFailed(PaymentFailed {
                        payment_id: id,
                        reason: reason.clone(),
                    }))
                    .await?;
                Ok(Progress::WithNode(format!("payment {id} failed: {reason}")))
            }
        }
    }

    /// Broadcasts the recorded bytes; `record` appends `PaymentSent` on acceptance (a Signed
    /// payment), a rebroadcast of a Sent one records nothing.
    async fn broadcast(
        &mut self,
        id: u64,
        signed: &SignedPayment,
        record: bool,
    ) -> Result<Progress, PayError> {
        let txid = signed.txid.to_display_hex();
        match self
            .wallet
            .send_raw_transaction(&hex::encode(&signed.raw_tx))
            .await
        {
            Ok(outcome) => {
                if let Broadcast::Accepted(node_txid) = &outcome {
                    if *node_txid != txid {
                        return Err(PayError::State(format!(
                            "the node accepted payment {id}'s transaction as {node_txid}, recorded as {txid}"
                        )));
                    }
                }
                self.hooks.at(CrashPoint::AfterBroadcast);
                if record {
                    self.append_sent(id, signed).await?;
                }
                tracing::info!(payment_id = id, %txid, fee = signed.network_fee.0, "payment {id} broadcast");
                Ok(Progress::WithNode(format!("payment {id} sent: {txid}")))
            }
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                // Refused (fee, policy, inputs gone): never a failure by itself. Only a
                // conflicting spend at the final depth fails the payment.
                let seen = self.observe(signed).await?;
                let stage = if record { Stage::Signed } else { Stage::Sent };
                let action = resume::decide(stage, &seen, self.settings.confirmations);
                match action {
                    Action::Fail(_) | Action::RecordSent | Action::Confirm { .. } => {
                        Box::pin(self.follow(id, stage, signed, &seen)).await
                    }
                    _ => {
                        let why = format!(
                            "the node refused payment {id}'s transaction {txid}: {}; retrying at the next run",
                            describe_wallet_error(&e)
                        );
                        tracing::error!(payment_id = id, %txid, "{why}");
                        Ok(Progress::Blocked(why))
                    }
                }
            }
        }
    }

    async fn append_sent(&self, id: u64, signed: &SignedPayment) -> Result<(), PayError> {
        self.pool
            .append(Event::PaymentSent(PaymentSent {
                payment_id: id,
                txid: signed.txid,
                network_fee: signed.network_fee,
            }))
            .await?;
        Ok(())
    }

    /// What the node shows of a payment's transaction.
    async fn observe(&self, signed: &SignedPayment) -> Result<Observation, PayError> {
        let txid = signed.txid.to_display_hex();
        let wallet_tx = self.wallet.get_transaction(&txid).await?;
        let in_mempool = self.wallet.get_raw_mempool().await?.contains(&txid);
        let mut seen = Observation {
            confirmations: wallet_tx.as_ref().map(|t| t.confirmations),
            blockhash: wallet_tx.as_ref().and_then(|t| t.blockhash.clone()),
            in_mempool,
            conflict: None,
            wallet_conflicts: wallet_tx
                .as_ref()
                .map(|t| t.walletconflicts.clone())
                .unwrap_or_default(),
        };
        let unseen = !in_mempool && !matches!(seen.confirmations, Some(c) if c != 0);
        if unseen {
            seen.conflict = self.find_conflict(signed).await?;
        }
        Ok(seen)
    }

    /// A wallet transaction other than ours spending one of our transaction's inputs, with its
    /// confirmations. Looked for only when an input is spent (`gettxout` shows none).
    async fn find_conflict(
        &self,
        signed: &SignedPayment,
    ) -> Result<Option<(String, i64)>, PayError> {
        let ours = tx::decode_bytes(&signed.raw_tx)?;
        let mut spent = Vec::new();
        for input in &ours.input {
            let prev = input.previous_output;
            if self
                .wallet
                .get_tx_out(&prev.txid.to_string(), prev.vout)
                .await?
                .is_none()
            {
                spent.push(prev);
            }
        }
        if spent.is_empty() {
            return Ok(None);
        }
        let our_txid = signed.txid.to_display_hex();
        let mut looked: BTreeSet<String> = BTreeSet::new();
        for entry in self
            .wallet
            .list_transactions(CONFLICT_SCAN_ENTRIES)
            .await?
            .into_iter()
            .rev()
        {
            if entry.txid == our_txid || !looked.insert(entry.txid.clone()) {
                continue;
            }
            let Some(other) = self.wallet.get_transaction(&entry.txid).await? else {
                continue;
            };
            let Ok(other_tx) = tx::decode(&other.hex) else {
                continue;
            };
            if other_tx
                .input
                .iter()
                .any(|i| spent.contains(&i.previous_output))
            {
                return Ok(Some((other.txid, other.confirmations)));
            }
        }
        Ok(None)
    }

    // ---- new payments ----

    async fn pay_due(
        &mut self,
        state: &PayoutState,
        stop: &CancellationToken,
    ) -> Result<NewPayments, PayError> {
        let limits = self.settings.limits;
        let mut payable = Vec::new();
        for o in plan::due(state, limits.min_payment) {
            let check = self.wallet.check_address(&o.address.0).await?;
            if !check.valid {
                self.tell(&o.address, "unpayable", || {
                    format!(
                        "skipping {}: the node cannot pay this address (validateaddress: not valid); its balance of {} sats stays",
                        o.address, o.amount.0
                    )
                });
                continue;
            }
            if o.address == state.rule.fee_address && check.is_mine {
                self.tell(&o.address, "fee-mine", || {
                    format!(
                        "not paying the fee address {}: it belongs to the pool's wallet, so its balance ({} sats) is the operator's already",
                        o.address, o.amount.0
                    )
                });
                continue;
            }
            payable.push(o);
        }
        if payable.is_empty() {
            return Ok(NewPayments::Made(vec![]));
        }
        let run_total = plan::total(&payable);
        if let Guard::Paused(why) = plan::guard(run_total, state.prepared_last_24h, &limits) {
            return Ok(NewPayments::Paused(why));
        }
        let payer = state.rule.network_fee_payer;
        let mut next_id = state.next_payment_id;
        let mut made = Vec::new();
        for batch in plan::batches(payable, limits.max_outputs) {
            if stop.is_cancelled() {
                break;
            }
            let batch = match payer {
                NetworkFeePayer::Pool => batch,
                NetworkFeePayer::Miners => {
                    let estimate = self.estimate_fee(&batch).await?;
                    let (kept, dropped) = fees::prune_dust(batch, estimate, limits.dust_limit);
                    for d in dropped {
                        tracing::info!(
                            address = %d.address,
                            "not paying {} this run: {} sats would be dust after its share of a ~{} sats network fee; it waits for a larger balance",
                            d.address, d.amount.0, estimate.0
                        );
                    }
                    kept
                }
            };
            if batch.is_empty() {
                continue;
            }
            let id = next_id;
            next_id += 1;
            self.pool
                .append(Event::PaymentPrepared(PaymentPrepared {
                    payment_id: id,
                    outputs: batch.clone(),
                }))
                .await?;
            tracing::info!(
                payment_id = id,
                outputs = batch.len(),
                total = plan::total(&batch).0,
                "payment {id} prepared"
            );
            self.hooks.at(CrashPoint::AfterPrepare);
            match self.sign_and_send(id, &batch, payer).await? {
                Progress::WithNode(note) => made.push(note),
                Progress::Blocked(why) => return Err(PayError::Wallet(why)),
            }
        }
        Ok(NewPayments::Made(made))
    }

    /// The fee the wallet would pay for a batch the miners pay for, now (a funding without
    /// signing: no coins are locked or spent).
    async fn estimate_fee(&self, outputs: &[PaymentOutput]) -> Result<Sats, PayError> {
        let hex = self.wallet.create_raw_transaction(&pairs(outputs)).await?;
        Ok(self.fund_fee_subtracted(&hex, outputs).await?.fee)
    }

    /// Funds a payment the miners pay for with the fee taken from its outputs, so the wallet
    /// needs only their total. The wallet takes equal shares and refuses when one output cannot
    /// bear its share ("The transaction amount is too small to pay the fee"); the fee is split
    /// again by amount before signing anyway, so then the largest output alone bears it here.
    async fn fund_fee_subtracted(
        &self,
        unfunded: &str,
        outputs: &[PaymentOutput],
    ) -> Result<FundedTx, NodeError> {
        let every: Vec<usize> = (0..outputs.len()).collect();
        match self.wallet.fund_raw_transaction(unfunded, &every).await {
            Err(e) if outputs.len() > 1 && is_too_small_for_the_fee(&e) => {
                let largest = position_of_largest(outputs);
                self.wallet.fund_raw_transaction(unfunded, &[largest]).await
            }
            funded => funded,
        }
    }

    /// Funds and signs a prepared payment, records `PaymentSigned`, broadcasts. A payment that
    /// cannot be built as prepared (an unpayable address, a dust output after the fee split)
    /// fails: nothing was signed into the ledger, so nothing can be on the network.
    async fn sign_and_send(
        &mut self,
        id: u64,
        outputs: &[PaymentOutput],
        payer: NetworkFeePayer,
    ) -> Result<Progress, PayError> {
        let signed = match self.fund_and_sign(outputs, payer).await {
            Ok(s) => s,
            Err(e @ (PayError::Unpayable { .. } | PayError::Fee(_))) => {
                let reason = format!("not signed: {e}");
                tracing::error!(payment_id = id, "payment {id} fails: {reason}");
                self.pool
                    .append(Event::PaymentFailed(PaymentFailed {
                        payment_id: id,
                        reason: reason.clone(),
                    }))
                    .await?;
                return Ok(Progress::WithNode(format!("payment {id} failed: {reason}")));
            }
            Err(e) => return Err(e),
        };
        self.pool
            .append(Event::PaymentSigned(PaymentSigned {
                payment_id: id,
                txid: signed.txid,
                raw_tx: signed.raw_tx.clone(),
                network_fee: signed.network_fee,
            }))
            .await?;
        tracing::info!(
            payment_id = id,
            txid = %signed.txid,
            fee = signed.network_fee.0,
            bytes = signed.raw_tx.len(),
            "payment {id} signed"
        );
        self.hooks.at(CrashPoint::AfterSign);
        self.broadcast(id, &signed, true).await
    }

    /// Builds the payment's transaction with the wallet: create, fund (the fee on top when the
    /// pool pays it, subtracted from the outputs when the miners do, then split among them by
    /// the projection's rule), sign, check.
    pub async fn fund_and_sign(
        &self,
        outputs: &[PaymentOutput],
        payer: NetworkFeePayer,
    ) -> Result<SignedPayment, PayError> {
        let mut asked = Vec::with_capacity(outputs.len());
        for o in outputs {
            let check = self.wallet.check_address(&o.address.0).await?;
            let script = match (check.valid, check.script_pubkey) {
                (true, Some(s)) => hex::decode(&s).map_err(|e| {
                    PayError::Wallet(format!("validateaddress gave a bad script {s:?}: {e}"))
                })?,
                _ => {
                    return Err(PayError::Unpayable {
                        address: o.address.clone(),
                    })
                }
            };
            asked.push(AskedOutput {
                script_pubkey: script,
                amount: o.amount,
            });
        }
        let unfunded = self.wallet.create_raw_transaction(&pairs(outputs)).await?;
        let funded = match payer {
            NetworkFeePayer::Pool => self.wallet.fund_raw_transaction(&unfunded, &[]).await,
            NetworkFeePayer::Miners => self.fund_fee_subtracted(&unfunded, outputs).await,
        };
        let funded = match funded {
            Ok(funded) => funded,
            // The pool's rewards pay the miners; with the pool paying the fee on top, the
            // operator's money (or the pool fee's) must cover it.
            Err(e) if payer == NetworkFeePayer::Pool && is_insufficient_funds(&e) => {
                return Err(PayError::Wallet(format!(
                    "{}; the pool pays the network fee (network_fee_payer = pool), so the wallet \
                     needs the payment's {} sats plus the fee: fund it",
                    describe_wallet_error(&e),
                    plan::total(outputs).0
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let funding = match payer {
            NetworkFeePayer::Pool => Funding::FeeOnTop,
            NetworkFeePayer::Miners => Funding::FeeSubtracted(funded.fee),
        };
        let mut unsigned = tx::decode(&funded.hex)?;
        let positions = tx::payment_positions(&unsigned, &asked, funded.change_position, funding)?;
        let paid =
            fees::output_amounts(outputs, payer, funded.fee, self.settings.limits.dust_limit)?;
        if payer == NetworkFeePayer::Miners {
            tx::set_paid_amounts(&mut unsigned, &positions, &paid)?;
        }
        let signed = self
            .wallet
            .sign_raw_transaction(&hex::encode(tx::to_bytes(&unsigned)))
            .await?;
        if !signed.complete {
            return Err(PayError::Wallet(format!(
                "the wallet could not sign every input (is it locked?): {}",
                signed.errors.join("; ")
            )));
        }
        let signed_tx = tx::decode(&signed.hex)?;
        tx::check_signed(&unsigned, &signed_tx)?;
        // The fee is what the wallet reported; check it against the inputs where we can.
        let coins: HashMap<(String, u32), Sats> = self
            .wallet
            .list_unspent(0)
            .await?
            .into_iter()
            .map(|u| ((u.txid, u.vout), u.amount))
            .collect();
        match tx::fee(&signed_tx, |op| {
            coins.get(&(op.txid.to_string(), op.vout)).copied()
        }) {
            Some(fee) if fee != funded.fee => {
                return Err(PayError::Tx(TxError::Signed(format!(
                    "its inputs minus outputs are {} sats, the wallet reported a fee of {} sats",
                    fee.0, funded.fee.0
                ))))
            }
            Some(_) => {}
            None => tracing::debug!("cannot check the fee: some inputs are not in listunspent"),
        }
        Ok(SignedPayment {
            txid: tx::txid(&signed_tx),
            raw_tx: tx::to_bytes(&signed_tx),
            network_fee: funded.fee,
        })
    }

    /// Logs a skip reason once per address at INFO/WARN, later at DEBUG.
    fn tell(&mut self, address: &PayoutAddress, kind: &'static str, line: impl Fn() -> String) {
        if self.told.insert((address.clone(), kind)) {
            if kind == "unpayable" {
                tracing::warn!("{}", line());
            } else {
                tracing::info!("{}", line());
            }
        } else {
            tracing::debug!("{}", line());
        }
    }
}

enum NewPayments {
    Made(Vec<String>),
    Paused(String),
}

fn running(message: String) -> RunSummary {
    RunSummary {
        state: PayoutProcessState::Running,
        message,
    }
}

fn pairs(outputs: &[PaymentOutput]) -> Vec<(String, Sats)> {
    outputs
        .iter()
        .map(|o| (o.address.0.clone(), o.amount))
        .collect()
}

/// The signed transaction recorded for an open payment.
fn recorded(p: &OpenPayment) -> Result<SignedPayment, PayError> {
    let id = p.payment_id;
    let (Some(txid), Some(raw)) = (p.txid, p.raw_tx.as_deref()) else {
        return Err(PayError::State(format!(
            "payment {id} is past signing but the pool has no signed transaction for it"
        )));
    };
    let raw_tx = hex::decode(raw)
        .map_err(|e| PayError::State(format!("payment {id}'s recorded transaction: {e}")))?;
    let decoded = tx::decode_bytes(&raw_tx)?;
    if tx::txid(&decoded) != txid {
        return Err(PayError::State(format!(
            "payment {id}'s recorded transaction has txid {}, recorded as {txid}",
            tx::txid(&decoded)
        )));
    }
    Ok(SignedPayment {
        txid,
        raw_tx,
        network_fee: p.network_fee,
    })
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
