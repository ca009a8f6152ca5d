//! The wire form of a batch: what an edge publishes and the core decodes (pure, no I/O).
//!
//! A message's payload is one format byte ([`FORMAT_VERSION`], now 1), then the bincode
//! encoding (the ledger's: little-endian, fixed-width integers, `u64` lengths) of
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `edge_id` | u16 | the edge's `[edge] id` |
//! | `boot_id` | u64 | random per edge process start |
//! | `counter` | u64 | 1, 2, 3, … per boot, in sealing order |
//! | `sealed_ms` | u64 | Unix ms when the edge sealed the batch |
//! | `schema` | u16 | the event schema version of the events ([`pool_core::event::EVENT_SCHEMA_VERSION`]) |
//! | `events` | Vec of Event | the events, each in its ledger encoding (docs/ledger.md), in order |
//!
//! The message's `Nats-Msg-Id` header is [`BatchId::msg_id`]. A reader refuses a format or
//! schema it does not know, rather than guess.

use pool_core::event::{Event, EVENT_SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The payload format this build writes (the payload's first byte).
pub const FORMAT_VERSION: u8 = 1;

/// A batch's id: unique per edge, per boot, per batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BatchId {
    pub edge_id: u16,
    pub boot_id: u64,
    pub counter: u64,
}

impl BatchId {
    /// The `Nats-Msg-Id` header: `e{edge_id}-b{boot_id as 16 hex digits}-c{counter}`.
    pub fn msg_id(&self) -> String {
        format!("e{}-b{:016x}-c{}", self.edge_id, self.boot_id, self.counter)
    }

    /// The edge boot this batch belongs to.
    pub fn boot(&self) -> (u16, u64) {
        (self.edge_id, self.boot_id)
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg_id())
    }
}

/// One batch as published.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMessage {
    pub id: BatchId,
    pub sealed_ms: u64,
    pub events: Vec<Event>,
}

/// The fields in wire order (see the module docs).
#[derive(Serialize, Deserialize)]
struct Wire<E> {
    edge_id: u16,
    boot_id: u64,
    counter: u64,
    sealed_ms: u64,
    schema: u16,
    events: E,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("empty message")]
    Empty,
    #[error("message format {0} is not known to this build (it reads format {FORMAT_VERSION})")]
    UnknownFormat(u8),
    #[error(
        "event schema {0} is not known to this build (it reads schema {EVENT_SCHEMA_VERSION})"
    )]
    UnknownSchema(u16),
    #[error("the message does not decode: {0}")]
    Decode(String),
    #[error("{0} bytes follow the batch")]
    Trailing(usize),
}

impl BatchMessage {
    /// The payload to publish.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            edge_id: self.id.edge_id,
            boot_id: self.id.boot_id,
            counter: self.id.counter,
            sealed_ms: self.sealed_ms,
            schema: EVENT_SCHEMA_VERSION,
            events: &self.events,
        };
        let mut out = vec![FORMAT_VERSION];
        bincode::serialize_into(&mut out, &wire).expect("events always encode");
        out
    }

    /// Reads a payload back; refuses unknown formats and schemas, and trailing bytes.
    pub fn decode(payload: &[u8]) -> Result<BatchMessage, MessageError> {
        let (&format, body) = payload.split_first().ok_or(MessageError::Empty)?;
        if format != FORMAT_VERSION {
            return Err(MessageError::UnknownFormat(format));
        }
        let mut reader = body;
        let wire: Wire<Vec<Event>> = bincode::deserialize_from(&mut reader)
            .map_err(|e| MessageError::Decode(e.to_string()))?;
        if !reader.is_empty() {
            return Err(MessageError::Trailing(reader.len()));
        }
        if wire.schema != EVENT_SCHEMA_VERSION {
            return Err(MessageError::UnknownSchema(wire.schema));
        }
        Ok(BatchMessage {
            id: BatchId {
                edge_id: wire.edge_id,
                boot_id: wire.boot_id,
                counter: wire.counter,
            },
            sealed_ms: wire.sealed_ms,
            events: wire.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pool_core::event::{BlockOrphaned, PaymentFailed};
    use pool_core::BlockId;

    fn batch() -> BatchMessage {
        BatchMessage {
            id: BatchId {
                edge_id: 2,
                boot_id: 0x0123_4567_89ab_cdef,
                counter: 42,
            },
            sealed_ms: 1_700_000_000_000,
            events: vec![
                Event::BlockOrphaned(BlockOrphaned {
                    block_id: BlockId([7; 32]),
                    height: 9,
                }),
                Event::PaymentFailed(PaymentFailed {
                    payment_id: 3,
                    reason: "r".into(),
                }),
            ],
        }
    }

    #[test]
    fn a_batch_round_trips_and_carries_each_event_in_its_ledger_encoding() {
        let b = batch();
        let bytes = b.encode();
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(&bytes[1..3], &2u16.to_le_bytes());
        assert_eq!(&bytes[3..11], &0x0123_4567_89ab_cdefu64.to_le_bytes());
        assert_eq!(&bytes[11..19], &42u64.to_le_bytes());
        assert_eq!(&bytes[19..27], &1_700_000_000_000u64.to_le_bytes());
        assert_eq!(&bytes[27..29], &EVENT_SCHEMA_VERSION.to_le_bytes());
        assert_eq!(&bytes[29..37], &2u64.to_le_bytes());
        let first = bincode::serialize(&b.events[0]).unwrap();
        assert_eq!(&bytes[37..37 + first.len()], &first[..]);
        assert_eq!(BatchMessage::decode(&bytes), Ok(b));
    }

    #[test]
    fn unknown_formats_schemas_and_garbage_are_refused() {
        let mut bytes = batch().encode();
        assert_eq!(BatchMessage::decode(&[]), Err(MessageError::Empty));
        bytes[0] = 2;
        assert_eq!(
            BatchMessage::decode(&bytes),
            Err(MessageError::UnknownFormat(2))
        );
        bytes[0] = FORMAT_VERSION;
        bytes[27] = 0xff;
        assert!(matches!(
            BatchMessage::decode(&bytes),
            Err(MessageError::UnknownSchema(_))
        ));
        let mut long = batch().encode();
        long.push(0);
        assert_eq!(BatchMessage::decode(&long), Err(MessageError::Trailing(1)));
        assert!(matches!(
            BatchMessage::decode(&[1, 2, 3]),
            Err(MessageError::Decode(_))
        ));
    }

    #[test]
    fn the_msg_id_names_edge_boot_and_counter() {
        assert_eq!(batch().id.msg_id(), "e2-b0123456789abcdef-c42");
    }
}
