//! The operator's read replies (`payout::api::operator`), built from one [`Applied`] (the
//! projection and the head it reflects, read under one lock) so every figure and the ledger head
//! beside it belong together. Pure: the RPC methods parse and check their params, take the lock
//! and call these.

use super::views::ledger_head;
use super::Applied;
use crate::config::{Config, ExtraAmount};
use payout::api::operator::{
    BlockDetail, BlockState, BlockSummary, BlocksPage, Credit, ExtraOutputInfo, MinerBalance,
    PaymentInfo, PaymentOutputInfo, PaymentsPage, PoolInfo, Versions,
};
use pool_core::event::PayoutAddress;
use pool_core::{BlockId, Sats};
use projections::{BlockEntry, BlockLife, PaymentDetailView};

pub fn block_state(life: BlockLife) -> BlockState {
    match life {
        BlockLife::Pending => BlockState::Pending,
        BlockLife::Immature => BlockState::Immature,
        BlockLife::Matured => BlockState::Matured,
        BlockLife::Orphaned => BlockState::Orphaned,
        BlockLife::Rejected => BlockState::Rejected,
    }
}

pub fn block_life(state: BlockState) -> BlockLife {
    match state {
        BlockState::Pending => BlockLife::Pending,
        BlockState::Immature => BlockLife::Immature,
        BlockState::Matured => BlockLife::Matured,
        BlockState::Orphaned => BlockLife::Orphaned,
        BlockState::Rejected => BlockLife::Rejected,
    }
}

pub fn block_summary(e: BlockEntry) -> BlockSummary {
    BlockSummary {
        block_id: e.block_id,
        height: e.height,
        status: block_state(e.life),
        reward: e.reward,
        finder: e.finder,
        worker: e.worker.0,
        time_ms: e.time_ms,
        seq: e.seq,
        verdict_seq: e.verdict_seq,
    }
}

/// The node's network name of a preset (`obtc-main` -> `main`, `bsv-regtest` -> `regtest`).
fn network_name(preset: &str) -> &str {
    preset.rsplit('-').next().unwrap_or(preset)
}

/// `pool_info`: the settings as loaded, the rule in force and the ledger's base.
pub fn pool_info(state: &Applied, config: &Config, ledger_base: u64) -> PoolInfo {
    let (rule, rule_seq) = state.projection.rule_in_force_with_seq();
    let chain = config.chain;
    PoolInfo {
        ledger: ledger_head(state.head),
        chain: chain.name.to_owned(),
        network: network_name(chain.name).to_owned(),
        pow: chain.pow.name().to_owned(),
        difficulty_unit: chain.difficulty_unit,
        coinbase_maturity: chain.coinbase_maturity,
        rule,
        rule_seq,
        payout_address: config.pool.payout.address.0.clone(),
        extra_outputs: config
            .pool
            .extra_outputs
            .iter()
            .map(|o| {
                let (sats, bps) = match o.amount {
                    ExtraAmount::Sats(s) => (Some(s), None),
                    ExtraAmount::BasisPoints(b) => (None, Some(b)),
                };
                ExtraOutputInfo {
                    address: o.address.address.0.clone(),
                    sats,
                    bps,
                }
            })
            .collect(),
        stratum: config.stratum.listen.to_string(),
        ledger_base,
        versions: Versions {
            pool: env!("CARGO_PKG_VERSION").to_owned(),
            event_schema: pool_core::EVENT_SCHEMA_VERSION,
            snapshot: projections::SNAPSHOT_VERSION,
        },
    }
}

/// `miner_balance` (`None`: the pool never saw the address).
pub fn miner_balance(state: &Applied, address: &PayoutAddress) -> Option<MinerBalance> {
    let b = state.projection.balance(address)?;
    Some(MinerBalance {
        ledger: ledger_head(state.head),
        address: address.clone(),
        immature: b.immature,
        payable: b.payable,
        in_flight: b.in_flight,
        paid: b.paid,
        debt: b.debt,
        network_fees: b.network_fees,
    })
}

/// `blocks_list`: newest first; `next_before` is set only when older blocks remain.
pub fn blocks_page(
    state: &Applied,
    status: Option<BlockState>,
    limit: u32,
    before: Option<u64>,
) -> BlocksPage {
    let limit = limit as usize;
    let mut entries =
        state
            .projection
            .block_entries(status.map(block_life), before, limit.saturating_add(1));
    let more = entries.len() > limit;
    entries.truncate(limit);
    let next_before = if more {
        entries.last().map(|e| e.seq)
    } else {
        None
    };
    BlocksPage {
        ledger: ledger_head(state.head),
        blocks: entries.into_iter().map(block_summary).collect(),
        next_before,
    }
}

/// `block_get` (`None`: no record of the block).
pub fn block_detail(state: &Applied, id: &BlockId) -> Option<BlockDetail> {
    let d = state.projection.block_detail(id)?;
    let judged = matches!(
        d.entry.life,
        BlockLife::Immature | BlockLife::Matured | BlockLife::Orphaned
    );
    Some(BlockDetail {
        ledger: ledger_head(state.head),
        rule: judged.then(|| d.rule.clone()),
        rule_seq: if judged { d.rule_seq } else { None },
        fee: d.fee,
        fee_address: judged.then(|| d.fee_address.clone()),
        credits: d
            .credits
            .into_iter()
            .map(|(address, amount)| Credit { address, amount })
            .collect(),
        reject_reason: d.reject_reason,
        block: block_summary(d.entry),
    })
}

pub fn payment_info(state: &Applied, d: PaymentDetailView) -> PaymentInfo {
    let total = d
        .outputs
        .iter()
        .fold(0u64, |sum, (_, amount, _)| sum.saturating_add(amount.0));
    PaymentInfo {
        payment_id: d.payment_id,
        status: d.status,
        txid: d.txid,
        outputs: d
            .outputs
            .into_iter()
            .map(|(address, amount, deducted)| PaymentOutputInfo {
                address,
                amount,
                deducted,
            })
            .collect(),
        total: Sats(total),
        network_fee: d.network_fee,
        prepared_ms: state.prepared_times.get(&d.payment_id).copied(),
        last_seq: d.last_seq,
        confirmed_height: d.confirmed_height,
        failure_reason: d.failure_reason,
    }
}

/// `payments_list`: newest first (`None`: `address` was never seen).
pub fn payments_page(
    state: &Applied,
    address: Option<&PayoutAddress>,
    limit: u32,
    before: Option<u64>,
) -> Option<PaymentsPage> {
    let limit = limit as usize;
    let mut details = state
        .projection
        .payment_details(address, before, limit.saturating_add(1))?;
    let more = details.len() > limit;
    details.truncate(limit);
    let next_before = if more {
        details.last().map(|d| d.payment_id)
    } else {
        None
    };
    Some(PaymentsPage {
        ledger: ledger_head(state.head),
        payments: details
            .into_iter()
            .map(|d| payment_info(state, d))
            .collect(),
        next_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::Record;
    use pool_core::event::{
        BlockCandidate, BlockFound, PaymentOutput, PaymentPrepared, ShareAccepted, WorkerName,
    };
    use pool_core::{Event, Target};
    use projections::{PaymentStatus, Projection, ProjectionConfig};

    fn record(seq: u64, event: Event) -> Record {
        Record {
            seq,
            version: 1,
            time_ms: 10_000 + seq,
            event,
            hash: [seq as u8; 32],
        }
    }

    fn applied(events: Vec<Event>) -> Applied {
        let mut state = Applied {
            projection: Projection::new(ProjectionConfig::default()),
            head: None,
            prepared_times: Default::default(),
        };
        for (seq, e) in events.into_iter().enumerate() {
            state.apply(None, &record(seq as u64, e)).unwrap();
        }
        state
    }

    fn addr(s: &str) -> PayoutAddress {
        PayoutAddress(s.into())
    }

    fn share(a: &str) -> Event {
        Event::ShareAccepted(ShareAccepted {
            address: addr(a),
            worker: WorkerName("w".into()),
            share_target: Target::MAX,
            weight: Target::MAX.work(),
            job_id: 1,
            height: 100,
            network_target: Target::MAX,
            time_ms: 1_000,
        })
    }

    fn block(id: u8, height: u64) -> [Event; 2] {
        [
            Event::BlockCandidate(BlockCandidate {
                height,
                block_id: BlockId([id; 32]),
                reward: Sats(600),
                network_target: Target::MAX,
                finder: addr("a"),
                worker: WorkerName("w".into()),
                time_ms: 2_000,
                block: vec![],
            }),
            Event::BlockFound(BlockFound {
                height,
                block_id: BlockId([id; 32]),
                reward: Sats(600),
                network_target: Target::MAX,
                finder: addr("a"),
                worker: WorkerName("w".into()),
                time_ms: 3_000,
            }),
        ]
    }

    #[test]
    fn pages_carry_the_head_and_a_cursor_only_when_more_remain() {
        let mut events = vec![share("a"), share("b")];
        for i in 1..=3 {
            events.extend(block(i, 100 + u64::from(i)));
        }
        let state = applied(events);
        let head = ledger_head(state.head);
        assert_eq!(head.as_ref().unwrap().seq, 7);
        let page = blocks_page(&state, None, 2, None);
        assert_eq!(page.ledger, head);
        assert_eq!(page.blocks.len(), 2);
        assert_eq!(page.blocks[0].height, 103);
        assert_eq!(page.next_before, Some(page.blocks[1].seq));
        let last = blocks_page(&state, None, 2, page.next_before);
        assert_eq!(last.blocks.len(), 1);
        assert_eq!(last.blocks[0].height, 101);
        assert_eq!(last.next_before, None);
        // Exactly a page: no cursor.
        assert_eq!(blocks_page(&state, None, 3, None).next_before, None);
        assert!(blocks_page(&state, Some(BlockState::Pending), 3, None)
            .blocks
            .is_empty());

        let d = block_detail(&state, &BlockId([1; 32])).unwrap();
        assert_eq!(d.block.status, BlockState::Immature);
        assert_eq!(d.block.verdict_seq, Some(3));
        assert_eq!(d.rule_seq, None);
        let credited: u64 = d.credits.iter().map(|c| c.amount.0).sum();
        assert_eq!(credited + d.fee.0, 600);
        let bal = miner_balance(&state, &addr("b")).unwrap();
        assert_eq!(bal.ledger, head);
        assert!(bal.immature.0 > 0);
        assert!(miner_balance(&state, &addr("nobody")).is_none());
    }

    #[test]
    fn payments_carry_their_prepare_time_and_total() {
        let state = applied(vec![Event::PaymentPrepared(PaymentPrepared {
            payment_id: 4,
            outputs: vec![
                PaymentOutput {
                    address: addr("a"),
                    amount: Sats(10),
                },
                PaymentOutput {
                    address: addr("b"),
                    amount: Sats(20),
                },
            ],
        })]);
        let page = payments_page(&state, None, 10, None).unwrap();
        let p = &page.payments[0];
        assert_eq!(
            (p.payment_id, p.status, p.total, p.prepared_ms, p.last_seq),
            (4, PaymentStatus::Prepared, Sats(30), Some(10_000), 0)
        );
        assert!(payments_page(&state, Some(&addr("c")), 10, None).is_none());
        assert_eq!(
            payments_page(&state, Some(&addr("b")), 10, None)
                .unwrap()
                .payments
                .len(),
            1
        );
        assert!(payments_page(&state, None, 10, Some(4))
            .unwrap()
            .payments
            .is_empty());
    }

    #[test]
    fn network_names() {
        assert_eq!(network_name("obtc-main"), "main");
        assert_eq!(network_name("bitcoin-test"), "test");
        assert_eq!(network_name("bsv-regtest"), "regtest");
    }

    #[test]
    fn pool_info_names_the_difficulty_unit() {
        for (preset, unit, shown) in [
            (
                "litecoin-regtest",
                pool_core::DifficultyUnit::Scrypt,
                "scrypt",
            ),
            ("bsv-regtest", pool_core::DifficultyUnit::Bitcoin, "bitcoin"),
        ] {
            let text = format!(
                "[chain]\npreset = \"{preset}\"\n[node]\nkind = \"synthetic\"\n\
                 [pool]\npayout_address = \"mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX\"\n\
                 [ledger]\ndata_dir = \"data\"\n"
            );
            let config = Config::from_text(&text, std::path::Path::new(".")).unwrap();
            let info = pool_info(&applied(Vec::new()), &config, 0);
            assert_eq!(info.difficulty_unit, unit);
            let json = serde_json::to_value(&info).unwrap();
            assert_eq!(json["difficulty_unit"], shown);
        }
    }
}
