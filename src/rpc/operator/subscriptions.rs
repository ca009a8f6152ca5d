//! The WebSocket subscriptions (`subscribe_blocks`, `subscribe_block_status`,
//! `subscribe_payments`): each forwards the follower's notifications of its kind
//! (`crate::live::events`) as `Notification<T>` with the record's seq and hash. No params, no
//! token. A subscriber that falls [`CAPACITY`](crate::live::events::CAPACITY) notifications
//! behind, or whose connection takes no message for [`SEND_TIMEOUT`], is dropped: its
//! subscription ends with an error notification saying why, and the pool logs it. The follower
//! never waits for a subscriber.

use crate::live::events::LiveEvent;
use crate::rpc::context::RpcContext;
use jsonrpsee::core::server::{PendingSubscriptionSink, SubscriptionMessage};
use jsonrpsee::core::SubscriptionResult;
use jsonrpsee::server::SendTimeoutError;
use jsonrpsee::RpcModule;
use payout::api::operator::{
    NOTIFY_BLOCKS, NOTIFY_BLOCK_STATUS, NOTIFY_PAYMENTS, SUBSCRIBE_BLOCKS, SUBSCRIBE_BLOCK_STATUS,
    SUBSCRIBE_PAYMENTS, UNSUBSCRIBE_BLOCKS, UNSUBSCRIBE_BLOCK_STATUS, UNSUBSCRIBE_PAYMENTS,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// How long one notification may wait for a slow connection before the subscriber is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Blocks,
    BlockStatus,
    Payments,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Blocks => SUBSCRIBE_BLOCKS,
            Kind::BlockStatus => SUBSCRIBE_BLOCK_STATUS,
            Kind::Payments => SUBSCRIBE_PAYMENTS,
        }
    }

    /// The notification's JSON if `event` is of this kind.
    fn message(self, event: &LiveEvent) -> Result<Option<SubscriptionMessage>, serde_json::Error> {
        let raw = match (self, event) {
            (Kind::Blocks, LiveEvent::Block(n)) => serde_json::value::to_raw_value(n)?,
            (Kind::BlockStatus, LiveEvent::BlockStatus(n)) => serde_json::value::to_raw_value(n)?,
            (Kind::Payments, LiveEvent::Payment(n)) => serde_json::value::to_raw_value(n)?,
            _ => return Ok(None),
        };
        Ok(Some(raw.into()))
    }
}

pub fn register(module: &mut RpcModule<RpcContext>) -> anyhow::Result<()> {
    for (kind, subscribe, notify, unsubscribe) in [
        (
            Kind::Blocks,
            SUBSCRIBE_BLOCKS,
            NOTIFY_BLOCKS,
            UNSUBSCRIBE_BLOCKS,
        ),
        (
            Kind::BlockStatus,
            SUBSCRIBE_BLOCK_STATUS,
            NOTIFY_BLOCK_STATUS,
            UNSUBSCRIBE_BLOCK_STATUS,
        ),
        (
            Kind::Payments,
            SUBSCRIBE_PAYMENTS,
            NOTIFY_PAYMENTS,
            UNSUBSCRIBE_PAYMENTS,
        ),
    ] {
        module.register_subscription(
            subscribe,
            notify,
            unsubscribe,
            move |_params, pending, ctx, _extensions| forward(kind, pending, ctx),
        )?;
    }
    Ok(())
}

async fn forward(
    kind: Kind,
    pending: PendingSubscriptionSink,
    ctx: Arc<RpcContext>,
) -> SubscriptionResult {
    // Subscribed before the accept: nothing applied after the reply is missed.
    let mut events = ctx.live.subscribe_events();
    let sink = pending.accept().await?;
    tracing::debug!(subscription = kind.name(), "RPC subscription opened");
    loop {
        let event = tokio::select! {
            _ = sink.closed() => return Ok(()),
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(
                    subscription = kind.name(),
                    missed,
                    "RPC subscriber dropped: it fell behind the ledger"
                );
                return Err(format!(
                    "{}: dropped: this subscriber fell {missed} notifications behind (subscribe \
                     again and read what was missed with the list methods)",
                    kind.name()
                )
                .into());
            }
            Err(RecvError::Closed) => return Ok(()),
        };
        let Some(message) = kind.message(&event)? else {
            continue;
        };
        match sink.send_timeout(message, SEND_TIMEOUT).await {
            Ok(()) => {}
            Err(SendTimeoutError::Closed(_)) => return Ok(()),
            Err(SendTimeoutError::Timeout(_)) => {
                tracing::warn!(
                    subscription = kind.name(),
                    "RPC subscriber dropped: its connection took no notification for {} s",
                    SEND_TIMEOUT.as_secs()
                );
                return Err(format!(
                    "{}: dropped: the connection took no notification for {} s",
                    kind.name(),
                    SEND_TIMEOUT.as_secs()
                )
                .into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::live::{Live, SnapshotPolicy};
    use jsonrpsee::core::EmptyServerParams;
    use ledger::Ledger;
    use payout::api::operator::{BlockStatusChange, Notification, PaymentInfo};
    use pool_core::event::{BlockFound, PaymentOutput, PaymentPrepared, PayoutAddress, WorkerName};
    use pool_core::{BlockId, Event, Sats, Target};
    use projections::PaymentStatus;
    use std::path::Path;
    use std::time::Instant;

    const CONFIG: &str = r#"
[chain]
preset = "bsv-regtest"
[node]
url = "http://127.0.0.1:18332"
user = "u"
password = "p"
[pool]
payout_address = "mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX"
[ledger]
data_dir = "data"
"#;

    /// An RPC module over a live projection of a fresh ledger in `dir`.
    fn module(dir: &Path) -> (RpcModule<RpcContext>, Arc<Live>) {
        let config = Config::from_text(CONFIG, dir).unwrap();
        let ledger = Ledger::open(&dir.join("ledger")).unwrap();
        let live = Arc::new(Live::open(ledger, config.chain, SnapshotPolicy::default()).unwrap());
        let context = RpcContext {
            live: live.clone(),
            bans: Arc::new(stratum::ban::BanStore::new(Default::default())),
            config: Arc::new(config),
            started: Instant::now(),
        };
        let mut module = RpcModule::new(context);
        register(&mut module).unwrap();
        (module, live)
    }

    fn prepared(id: u64) -> Event {
        Event::PaymentPrepared(PaymentPrepared {
            payment_id: id,
            outputs: vec![PaymentOutput {
                address: PayoutAddress("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX".into()),
                amount: Sats(1_000),
            }],
        })
    }

    #[tokio::test]
    async fn each_subscription_gets_its_kind_once_applied() {
        let dir = tempfile::tempdir().unwrap();
        let (module, live) = module(dir.path());
        let mut payments = module
            .subscribe_unbounded(SUBSCRIBE_PAYMENTS, EmptyServerParams::new())
            .await
            .unwrap();
        let mut statuses = module
            .subscribe_unbounded(SUBSCRIBE_BLOCK_STATUS, EmptyServerParams::new())
            .await
            .unwrap();
        let found = Event::BlockFound(BlockFound {
            height: 101,
            block_id: BlockId([1; 32]),
            reward: Sats(600),
            network_target: Target::MAX,
            finder: PayoutAddress("mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX".into()),
            worker: WorkerName("w".into()),
            time_ms: 3_000,
        });
        live.ledger()
            .append_batch_blocking(vec![prepared(0), found])
            .unwrap();
        assert_eq!(live.catch_up().unwrap(), 2);
        let (p, _) = payments
            .next::<Notification<PaymentInfo>>()
            .await
            .unwrap()
            .unwrap();
        assert_eq!((p.ledger.seq, p.item.status), (0, PaymentStatus::Prepared));
        let (b, _) = statuses
            .next::<Notification<BlockStatusChange>>()
            .await
            .unwrap()
            .unwrap();
        assert_eq!((b.ledger.seq, b.item.event.as_str()), (1, "found"));
    }

    /// A subscriber that does not keep up is dropped (its subscription ends) and the follower
    /// never waited for it.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (module, live) = module(dir.path());
        let mut payments = module
            .subscribe_unbounded(SUBSCRIBE_PAYMENTS, EmptyServerParams::new())
            .await
            .unwrap();
        let n = crate::live::events::CAPACITY as u64 + 10;
        live.ledger()
            .append_batch_blocking((0..n).map(prepared).collect())
            .unwrap();
        // This (only) thread applies everything: the subscription's task cannot run meanwhile.
        assert_eq!(live.catch_up().unwrap(), n);
        let next = tokio::time::timeout(
            Duration::from_secs(10),
            payments.next::<Notification<PaymentInfo>>(),
        )
        .await
        .expect("the subscription ends");
        assert!(next.is_none(), "dropped, not served: {next:?}");
    }
}
