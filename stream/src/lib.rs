//! Scale-out past one machine: Stratum **edges** publish the events they would append to the
//! ledger (accepted shares, jobs, block candidates and verdicts) to a replicated NATS JetStream
//! stream, and one **core** applies the stream to the ledger, in stream order, exactly once.
//!
//! - [`message`]: the versioned wire form of a batch (pure; the events in their own ledger
//!   encoding) and its id (`edge_id`, `boot_id`, `counter`), sent as `Nats-Msg-Id`.
//! - [`subjects`]: every subject the roles use, from one prefix.
//! - [`settings`]: the `[stream]` settings (stream name, servers, replicas, limits, windows).
//! - [`setup`]: connecting to the cluster and making sure the stream exists with the settings
//!   the pool needs (work-queue retention, `discard: new`, no age or size limit that can delete
//!   an unconsumed message, file storage, the replica count, the duplicate window).
//! - [`publisher`]: the edge's [`stratum::sink::EventSink`]: batches what the Stratum server
//!   submits (group commit: one batch in flight; whatever arrives meanwhile forms the next),
//!   publishes it with its id, and resolves the submitters only on the stream's publish ack.
//! - [`dedupe`]: the core's record of applied batch ids per edge boot, and its gap reports
//!   (pure).
//! - [`consumer`]: the core's durable pull consumer: decode, skip what was applied, append the
//!   batch's events behind a `StreamBatch` record in one ledger append, then acknowledge.
//! - [`control`]: what travels outside the ledger on plain NATS subjects: the core's ledger head
//!   (coinbase anchors) and bans to the edges, the edges' live connection statistics to the core.

pub mod consumer;
pub mod control;
pub mod core_control;
pub mod dedupe;
pub mod edge_control;
pub mod message;
pub mod publisher;
pub mod settings;
pub mod setup;
pub mod subjects;

pub use message::{BatchId, BatchMessage, MessageError, FORMAT_VERSION};
pub use settings::StreamSettings;
