//! The `[stream]` settings, already validated by the configuration loader.

use std::time::Duration;

/// How the pool reaches and uses the share stream (`[stream]` in the config file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// NATS server URLs (`nats://host:port`), any subset of the cluster; the client fails over.
    pub servers: Vec<String>,
    /// Optional NATS user and password.
    pub user: Option<String>,
    pub password: Option<String>,
    /// The JetStream stream's name (default `OBTC`).
    pub name: String,
    /// Every subject starts with this (default `obtc`; see [`crate::subjects`]).
    pub subject_prefix: String,
    /// Replicas of the stream (default 3: a publish ack means a quorum of 2 holds it).
    pub replicas: usize,
    /// The stream's size cap in bytes: when unconsumed messages fill it, the stream refuses
    /// new ones (`discard: new`) and edges stop acknowledging shares until the core catches up.
    /// Never a reason to delete a message.
    pub max_bytes: u64,
    /// The stream's duplicate window: a retried publish with the same `Nats-Msg-Id` inside it
    /// is dropped. An edge never retries a batch older than this (less a margin).
    pub duplicate_window: Duration,
    /// How long an edge waits for one publish ack before retrying (with the same id).
    pub ack_timeout: Duration,
    /// At most this many events in one batch message.
    pub max_batch_events: usize,
    /// The name of the core's durable consumer.
    pub consumer: String,
    /// How often edges publish their connection statistics and the core its head and bans.
    pub control_interval: Duration,
}

impl StreamSettings {
    /// Settings with every default, for these servers.
    pub fn new(servers: Vec<String>) -> StreamSettings {
        StreamSettings {
            servers,
            user: None,
            password: None,
            name: "OBTC".into(),
            subject_prefix: "obtc".into(),
            replicas: 3,
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            ack_timeout: Duration::from_secs(2),
            max_batch_events: 4096,
            consumer: "obtc-core".into(),
            control_interval: Duration::from_secs(2),
        }
    }

    pub fn subjects(&self) -> crate::subjects::Subjects {
        crate::subjects::Subjects::new(&self.subject_prefix)
    }
}
