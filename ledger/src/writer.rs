//! The group-commit writer: one std thread owns appends to the sled tree. It drains every
//! pending request, writes them as stored batches (one sled entry each, a few KiB), flushes
//! once, then acknowledges them all. Acknowledgement therefore always means durable.

use crate::error::LedgerError;
use crate::record::{
    batch_key, begin_batch, encode_head, finish_batch, push_record, HEAD_KEY, RECORD_HEADER_LEN,
};
use crate::{Appended, Head};
use pool_core::EVENT_SCHEMA_VERSION;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{oneshot, watch};

/// Most records drained into one commit (one flush).
const MAX_BATCH_RECORDS: usize = 16_384;
/// Largest stored batch (one sled value) the writer builds; a commit with more bytes is stored
/// as several consecutive batches, still with one flush. sled keeps up to 16 entries in a leaf
/// node and writes any node over 128 KiB (a quarter of its 512 KiB segment) as a separate blob
/// file (a file create, write and delete per rewrite), so stored batches are kept small enough
/// that a full leaf stays under that.
const MAX_BATCH_BYTES: usize = 6 * 1024;
/// Stored bytes of a record besides its event: header and hash.
const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + 32;

/// The encoded events of one append request (encoded by the caller, off the writer thread).
pub(crate) enum Events {
    One(Vec<u8>),
    Many(Vec<Vec<u8>>),
}

impl Events {
    fn as_slice(&self) -> &[Vec<u8>] {
        match self {
            Events::One(event) => std::slice::from_ref(event),
            Events::Many(events) => events,
        }
    }
}

/// Where each event of a request landed, in request order.
pub(crate) enum Acks {
    One(Appended),
    Many(Vec<Appended>),
}

/// The writer's answer to one request. It hands the encoded events back, so their buffers are
/// freed on the thread that allocated them (freeing on the writer thread contends on the
/// allocator's per-thread arena locks).
pub(crate) struct Answer {
    pub result: Result<Acks, LedgerError>,
    pub _events: Events,
}

/// Where the writer sends an append's outcome.
pub(crate) enum Reply {
    Async(oneshot::Sender<Answer>),
    Blocking(mpsc::SyncSender<Answer>),
}

impl Reply {
    fn send(self, result: Result<Acks, LedgerError>, events: Events) {
        let answer = Answer {
            result,
            _events: events,
        };
        // A caller that gave up waiting (dropped its receiver) needs no answer.
        match self {
            Reply::Async(tx) => {
                let _ = tx.send(answer);
            }
            Reply::Blocking(tx) => {
                let _ = tx.send(answer);
            }
        }
    }
}

pub(crate) enum Request {
    Append {
        events: Events,
        reply: Reply,
    },
    /// Finish what is queued before this, flush, stop.
    Shutdown {
        done: mpsc::SyncSender<()>,
    },
}

type Pending = Vec<(Events, Reply)>;

fn fail_all(appends: &mut Pending, err: &LedgerError) {
    for (events, reply) in appends.drain(..) {
        reply.send(Err(err.clone()), events);
    }
}

pub(crate) struct Writer {
    pub db: sled::Db,
    pub tree: sled::Tree,
    pub head_tree: sled::Tree,
    pub head: Option<Head>,
    pub head_tx: std::sync::Arc<watch::Sender<Option<Head>>>,
}

impl Writer {
    pub fn run(mut self, rx: mpsc::Receiver<Request>) {
        let mut failed: Option<String> = None;
        let mut appends: Pending = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut shutdowns = Vec::new();
            let mut records = 0usize;
            let mut next = Some(first);
            while let Some(req) = next.take() {
                match req {
                    Request::Append { events, reply } => {
                        records += events.as_slice().len();
                        appends.push((events, reply));
                    }
                    Request::Shutdown { done } => shutdowns.push(done),
                }
                // Stop draining at a shutdown: requests behind it are refused.
                if records < MAX_BATCH_RECORDS && shutdowns.is_empty() {
                    next = rx.try_recv().ok();
                }
            }
            if let Some(why) = &failed {
                fail_all(&mut appends, &LedgerError::Closed(why.clone()));
            } else if !appends.is_empty() {
                if let Err(e) = self.commit(&mut appends) {
                    failed = Some(e.to_string());
                }
            }
            if !shutdowns.is_empty() {
                let _ = self.db.flush();
                for done in shutdowns {
                    let _ = done.send(());
                }
                return;
            }
        }
        let _ = self.db.flush();
    }

    /// Writes all pending appends as one or more stored batches, flushes once, answers every
    /// caller.
    fn commit(&mut self, appends: &mut Pending) -> Result<(), LedgerError> {
        let first_seq = self.head.map_or(0, |h| h.seq + 1);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let bytes: usize = appends
            .iter()
            .flat_map(|(events, _)| events.as_slice().iter().map(|e| e.len() + RECORD_OVERHEAD))
            .sum();
        let mut batches: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut batch = begin_batch(bytes.min(MAX_BATCH_BYTES));
        let mut batch_first = first_seq;
        let mut prev = self.head.map_or([0; 32], |h| h.hash);
        let mut seq = first_seq;
        let mut acks: Vec<Acks> = Vec::with_capacity(appends.len());
        for (events, _) in appends.iter() {
            let mut many = match events {
                Events::One(_) => None,
                Events::Many(events) => Some(Vec::with_capacity(events.len())),
            };
            for event in events.as_slice() {
                if seq > batch_first
                    && batch.len() + event.len() + RECORD_OVERHEAD > MAX_BATCH_BYTES
                {
                    finish_batch(&mut batch, (seq - batch_first) as u32);
                    let left = bytes.saturating_sub(batch.len());
                    let next = begin_batch(left.min(MAX_BATCH_BYTES));
                    batches.push((batch_first, std::mem::replace(&mut batch, next)));
                    batch_first = seq;
                }
                // Event lengths were checked by the caller (`Ledger::encode`).
                let hash =
                    match push_record(&mut batch, &prev, seq, EVENT_SCHEMA_VERSION, time_ms, event)
                    {
                        Ok(hash) => hash,
                        Err(p) => {
                            fail_all(appends, &LedgerError::Encode(p.to_string()));
                            return Ok(());
                        }
                    };
                let appended = Appended { seq, hash };
                match &mut many {
                    None => acks.push(Acks::One(appended)),
                    Some(many) => many.push(appended),
                }
                prev = hash;
                seq += 1;
            }
            if let Some(many) = many {
                acks.push(Acks::Many(many));
            }
        }
        if seq == first_seq {
            // Only empty `append_batch` calls: nothing to write.
            for ((events, reply), acks) in appends.drain(..).zip(acks) {
                reply.send(Ok(acks), events);
            }
            return Ok(());
        }
        finish_batch(&mut batch, (seq - batch_first) as u32);
        batches.push((batch_first, batch));
        let head = Head {
            seq: seq - 1,
            hash: prev,
        };
        // Batches first, then the recorded head: sled recovers a prefix of its log, so after a
        // crash the recorded head never runs ahead of the stored chain. One flush covers both
        // trees (they share sled's log).
        let written = batches
            .into_iter()
            .try_for_each(|(first, batch)| self.tree.insert(batch_key(first), batch).map(|_| ()))
            .and_then(|()| {
                self.head_tree
                    .insert(HEAD_KEY, &encode_head(&head)[..])
                    .map(|_| ())
            })
            .and_then(|()| self.tree.flush().map(|_| ()));
        if let Err(e) = written {
            let err = LedgerError::from(e);
            fail_all(appends, &err);
            return Err(err);
        }
        self.head = Some(head);
        self.head_tx.send_replace(Some(head));
        for ((events, reply), acks) in appends.drain(..).zip(acks) {
            reply.send(Ok(acks), events);
        }
        Ok(())
    }
}
