//! Reading records back as stored, undecoded ([`crate::Ledger::read_raw_range`]): the bytes an
//! export carries (`obtc-pool ledger export`, the `ledger_export` RPC), which must be exactly
//! the bytes the chain hash covers, not a re-encoding of the decoded event. The walk is
//! [`crate::RecordIter`]'s: find the stored value holding the first wanted record, expand a
//! chunk to its format-1 image, walk values in key order; only the event is not decoded.

use crate::error::LedgerError;
use crate::read::Walk;
use crate::record::RawRecord;
use crate::Ledger;

impl Ledger {
    /// Durable records with `from <= seq < to_exclusive` as stored: schema version, time, the
    /// event's bytes (not decoded, so not checked to decode) and the stored chain hash (not
    /// checked either: [`Ledger::verify`] and the audit check the chain). Stops after the first
    /// error; a `from` below the ledger's base is [`Problem::Archived`](crate::Problem).
    pub fn read_raw_range(&self, from: u64, to_exclusive: u64) -> RawRecordIter {
        RawRecordIter(self.walk(from, to_exclusive))
    }
}

/// Stored records in sequence order; see [`Ledger::read_raw_range`].
pub struct RawRecordIter(Walk);

impl Iterator for RawRecordIter {
    type Item = Result<RawRecord, LedgerError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_with(|view| {
            Ok(RawRecord {
                seq: view.seq,
                version: view.version,
                time_ms: view.time_ms,
                event: view.event.to_vec(),
                hash: view.hash,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::export::canonical_bytes;
    use crate::record::{chain_hash, encode_event, GENESIS_PREV_HASH};
    use crate::{CompactOptions, Ledger, WriterOptions};
    use pool_core::event::{
        JobCreated, PaymentFailed, PayoutAddress, ShareAccepted, ShareWithWork, ShareWork,
        WorkerName,
    };
    use pool_core::{BlockId, Event, Target};

    /// Jobs, shares with their work (the chunks' work columns) and other events.
    fn event(i: u64) -> Event {
        let target = Target::from_compact(0x1d00ffff).unwrap();
        match i % 5 {
            0 => Event::JobCreated(JobCreated {
                job_id: i,
                height: 101,
                prev_hash: BlockId([3; 32]),
                coinbase1: vec![1, 0, 0, 0, 1, 0xff],
                coinbase2: vec![0xee; 40],
                merkle_branch: vec![[9; 32]],
                version: 0x2000_0000,
                bits: 0x207f_ffff,
                ntime: 1_700_000_000,
                anchor: None,
            }),
            4 => Event::PaymentFailed(PaymentFailed {
                payment_id: i,
                reason: format!("reason {i}"),
            }),
            _ => Event::ShareWithWork(ShareWithWork {
                share: ShareAccepted {
                    address: PayoutAddress("mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef".into()),
                    worker: WorkerName("rig".into()),
                    share_target: target,
                    weight: target.work(),
                    job_id: i - i % 5,
                    height: 101,
                    network_target: Target::from_compact(0x207fffff).unwrap(),
                    time_ms: 1_700_000_000_000 + i,
                },
                work: ShareWork {
                    extranonce1: vec![0xab, 0xcd, 0, 1],
                    extranonce2: (i as u32).to_be_bytes().to_vec(),
                    ntime: 1_700_000_001,
                    nonce: i as u32 * 7,
                    version: 0x2000_4000,
                },
            }),
        }
    }

    /// The raw records are the decoded ones' bytes and hashes, chain onto each other, in any
    /// range, before and after compaction.
    #[test]
    fn raw_records_are_the_stored_bytes_and_chain() {
        let dir = tempfile::tempdir().unwrap();
        let compaction = CompactOptions {
            background: false,
            chunk_records: 50,
            ..CompactOptions::default()
        };
        let ledger = Ledger::open_tuned(dir.path(), WriterOptions::default(), compaction).unwrap();
        for chunk in (0..300).collect::<Vec<u64>>().chunks(7) {
            ledger
                .append_batch_blocking(chunk.iter().map(|&i| event(i)).collect())
                .unwrap();
        }
        let check = |ledger: &Ledger| {
            let raw: Vec<_> = ledger
                .read_raw_range(0, u64::MAX)
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(raw.len(), 300);
            let mut prev = GENESIS_PREV_HASH;
            for (r, decoded) in raw.iter().zip(ledger.read_from(0)) {
                let decoded = decoded.unwrap();
                assert_eq!((r.seq, r.hash), (decoded.seq, decoded.hash));
                assert_eq!(r.event, encode_event(&decoded.event).unwrap());
                assert_eq!(chain_hash(&prev, &canonical_bytes(r)), r.hash);
                prev = r.hash;
            }
            let middle: Vec<_> = ledger.read_raw_range(45, 52).map(|r| r.unwrap()).collect();
            assert_eq!(middle, raw[45..52]);
            assert_eq!(ledger.read_raw_range(299, 1000).count(), 1);
            assert_eq!(ledger.read_raw_range(300, 1000).count(), 0);
        };
        check(&ledger);
        let compacted = ledger.compact().unwrap();
        assert!(compacted.chunks > 0, "{compacted:?}");
        check(&ledger);
        ledger.close_blocking();
    }
}
