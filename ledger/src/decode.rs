//! Builds [`pool_core::Event`]s straight from their v1 bincode bytes, without serde: the hot
//! read path (`read_from`, replays) decodes every record, and bincode spends most of its time
//! there on serde's byte-at-a-time visit of the 32-byte targets, works and block ids.
//!
//! The layout is the one [`crate::validate`] walks (bincode 1 with fixed-width little-endian
//! integers, no trailing bytes): a `u32` variant index, then the fields in declaration order;
//! a `String` is a `u64` length then UTF-8 bytes; a `[u8; 32]` (targets and works big-endian,
//! block ids and txids raw) is 32 bytes; a `Vec` is a `u64` length then its items; an
//! `Option` a `u8` tag (0 none, 1 some) then the value; newtypes are their inner value. Only
//! the variants a replay meets by the million (shares, with or without their work), and the
//! simple ones beside them, are decoded here; every other variant, and any bytes this decoder
//! does not accept, go to bincode, so a failure always carries bincode's own error. The tests
//! below and `tests/ledger_props.rs` check that this decoder and bincode agree on arbitrary
//! events and on damaged bytes.

use pool_core::event::{
    BlockFound, BlockMatured, BlockOrphaned, BlockReinstated, BlockRejected, JobCreated,
    LedgerAnchor, PaymentConfirmed, PaymentFailed, PaymentSent, PayoutAddress, ShareAccepted,
    ShareWithWork, ShareWork, WorkerName,
};
use pool_core::{BlockId, Event, Sats, Target, Work};

/// A read position in event bytes; every read is bounded by what is left, so a length field
/// can never make it allocate more than the buffer holds.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Some(a)
    }

    #[inline]
    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }

    #[inline]
    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }

    #[inline]
    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// A `Vec<u8>`: a `u64` length then the bytes.
    #[inline]
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u64()?).ok()?;
        self.take(n).map(<[u8]>::to_vec)
    }

    /// A `Vec<[u8; 32]>`: a `u64` count then the arrays, bounded by the buffer first.
    #[inline]
    fn arrays32(&mut self) -> Option<Vec<[u8; 32]>> {
        let n = usize::try_from(self.u64()?).ok()?;
        let bytes = self.take(n.checked_mul(32)?)?;
        let mut out = Vec::with_capacity(n);
        for item in bytes.chunks_exact(32) {
            let mut a = [0u8; 32];
            a.copy_from_slice(item);
            out.push(a);
        }
        Some(out)
    }

    #[inline]
    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.u64()?).ok()?;
        // Bounded by the buffer before anything is allocated.
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    #[inline]
    fn target(&mut self) -> Option<Target> {
        self.array().map(Target::from_be_bytes)
    }

    #[inline]
    fn work(&mut self) -> Option<Work> {
        // Work is stored as its 256-bit value, big-endian, like a target.
        self.target().map(|t| Work::from_u256(t.as_u256()))
    }

    #[inline]
    fn block_id(&mut self) -> Option<BlockId> {
        self.array().map(BlockId)
    }

    /// `value` if every byte was consumed (bincode rejects trailing bytes).
    #[inline]
    fn finish<T>(&self, value: T) -> Option<T> {
        self.rest.is_empty().then_some(value)
    }
}

/// The fields of a `ShareAccepted`, on their own (variant 0) or inside a `ShareWithWork`.
#[inline]
fn share(r: &mut Reader<'_>) -> Option<ShareAccepted> {
    Some(ShareAccepted {
        address: PayoutAddress(r.string()?),
        worker: WorkerName(r.string()?),
        share_target: r.target()?,
        weight: r.work()?,
        job_id: r.u64()?,
        height: r.u64()?,
        network_target: r.target()?,
        time_ms: r.u64()?,
    })
}

/// The event encoded in `bytes` at schema version 1, if it is of a variant this decoder knows
/// and the bytes are valid; `None` means "ask bincode" (another variant, or bytes bincode will
/// refuse). Whenever this returns `Some(event)`, bincode decodes the same bytes to `event`.
pub fn decode_v1_fast(bytes: &[u8]) -> Option<Event> {
    let mut r = Reader { rest: bytes };
    let event = match r.u32()? {
        0 => Event::ShareAccepted(share(&mut r)?),
        1 => Event::BlockFound(BlockFound {
            height: r.u64()?,
            block_id: r.block_id()?,
            reward: Sats(r.u64()?),
            network_target: r.target()?,
            finder: PayoutAddress(r.string()?),
            worker: WorkerName(r.string()?),
            time_ms: r.u64()?,
        }),
        2 => Event::BlockRejected(BlockRejected {
            height: r.u64()?,
            block_id: r.block_id()?,
            reason: r.string()?,
            finder: PayoutAddress(r.string()?),
            worker: WorkerName(r.string()?),
            time_ms: r.u64()?,
        }),
        3 => Event::BlockOrphaned(BlockOrphaned {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        4 => Event::BlockReinstated(BlockReinstated {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        5 => Event::BlockMatured(BlockMatured {
            block_id: r.block_id()?,
            height: r.u64()?,
        }),
        8 => Event::PaymentSent(PaymentSent {
            payment_id: r.u64()?,
            txid: r.block_id()?,
            network_fee: Sats(r.u64()?),
        }),
        9 => Event::PaymentConfirmed(PaymentConfirmed {
            payment_id: r.u64()?,
            txid: r.block_id()?,
            height: r.u64()?,
        }),
        10 => Event::PaymentFailed(PaymentFailed {
            payment_id: r.u64()?,
            reason: r.string()?,
        }),
        13 => Event::JobCreated(JobCreated {
            job_id: r.u64()?,
            height: r.u64()?,
            prev_hash: r.block_id()?,
            coinbase1: r.bytes()?,
            coinbase2: r.bytes()?,
            merkle_branch: r.arrays32()?,
            version: r.u32()?,
            bits: r.u32()?,
            ntime: r.u32()?,
            // An `Option`: a `u8` tag, 0 none, 1 some (bincode refuses any other tag).
            anchor: match r.byte()? {
                0 => None,
                1 => Some(LedgerAnchor {
                    seq: r.u64()?,
                    hash: r.array()?,
                }),
                _ => return None,
            },
        }),
        14 => Event::ShareWithWork(ShareWithWork {
            share: share(&mut r)?,
            work: ShareWork {
                extranonce1: r.bytes()?,
                extranonce2: r.bytes()?,
                ntime: r.u32()?,
                nonce: r.u32()?,
                version: r.u32()?,
            },
        }),
        // PayoutRuleSet, PaymentPrepared, BlockCandidate, PaymentSigned (rare), and variants
        // added after this decoder.
        _ => return None,
    };
    r.finish(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{decode_event, decode_v1_bincode, encode_event};
    use pool_core::event::{
        NetworkFeePayer, PaymentOutput, PaymentPrepared, PaymentSigned, PayoutRule, PayoutScheme,
    };

    fn id(n: u8) -> BlockId {
        BlockId([n; 32])
    }

    fn every_variant() -> Vec<Event> {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        vec![
            Event::ShareAccepted(ShareAccepted {
                address: PayoutAddress("bcrt1qminer".into()),
                worker: WorkerName("rïg 1".into()),
                share_target: t,
                weight: t.work(),
                job_id: 7,
                height: 101,
                network_target: Target::MAX,
                time_ms: 1_700_000_000_000,
            }),
            Event::BlockFound(BlockFound {
                height: 101,
                block_id: id(1),
                reward: Sats(5_000_000_000),
                network_target: t,
                finder: PayoutAddress("bcrt1qfinder".into()),
                worker: WorkerName(String::new()),
                time_ms: 1,
            }),
            Event::BlockRejected(BlockRejected {
                height: 102,
                block_id: id(2),
                reason: "high-hash".into(),
                finder: PayoutAddress("a".into()),
                worker: WorkerName("w".into()),
                time_ms: 2,
            }),
            Event::BlockOrphaned(BlockOrphaned {
                block_id: id(3),
                height: 3,
            }),
            Event::BlockReinstated(BlockReinstated {
                block_id: id(4),
                height: 4,
            }),
            Event::BlockMatured(BlockMatured {
                block_id: id(5),
                height: 5,
            }),
            Event::PayoutRuleSet(PayoutRule {
                scheme: PayoutScheme::Pplns {
                    window_numerator: 2,
                    window_denominator: 1,
                },
                fee_bps: 100,
                fee_address: PayoutAddress("fee".into()),
                network_fee_payer: NetworkFeePayer::Miners,
            }),
            Event::PaymentPrepared(PaymentPrepared {
                payment_id: 9,
                outputs: vec![PaymentOutput {
                    address: PayoutAddress("a".into()),
                    amount: Sats(10),
                }],
            }),
            Event::PaymentSent(PaymentSent {
                payment_id: 9,
                txid: id(6),
                network_fee: Sats(200),
            }),
            Event::PaymentConfirmed(PaymentConfirmed {
                payment_id: 9,
                txid: id(6),
                height: 110,
            }),
            Event::PaymentFailed(PaymentFailed {
                payment_id: 10,
                reason: "dropped".into(),
            }),
            Event::BlockCandidate(pool_core::event::BlockCandidate {
                height: 111,
                block_id: id(7),
                reward: Sats(625_000_000),
                network_target: t,
                finder: PayoutAddress("bcrt1qfinder".into()),
                worker: WorkerName("rig".into()),
                time_ms: 3,
                block: vec![1, 2, 3, 0xff],
            }),
            Event::PaymentSigned(PaymentSigned {
                payment_id: 9,
                txid: id(6),
                raw_tx: vec![2, 0, 0, 0],
                network_fee: Sats(200),
            }),
            job(None),
            job(Some(LedgerAnchor {
                seq: 41,
                hash: [0xab; 32],
            })),
            share_with_work(),
        ]
    }

    fn job(anchor: Option<LedgerAnchor>) -> Event {
        Event::JobCreated(JobCreated {
            job_id: 3,
            height: 102,
            prev_hash: id(8),
            coinbase1: vec![1, 0, 0, 0, 1, 0xaa],
            coinbase2: vec![0xff; 70],
            merkle_branch: vec![[1; 32], [2; 32], [3; 32]],
            version: 0x2000_0000,
            bits: 0x207f_ffff,
            ntime: 1_700_000_000,
            anchor,
        })
    }

    fn share_with_work() -> Event {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        Event::ShareWithWork(ShareWithWork {
            share: ShareAccepted {
                address: PayoutAddress("bcrt1qminer".into()),
                worker: WorkerName("rig".into()),
                share_target: t,
                weight: t.work(),
                job_id: 3,
                height: 102,
                network_target: Target::MAX,
                time_ms: 1_700_000_000_123,
            },
            work: ShareWork {
                extranonce1: vec![0xde, 0xad, 0xbe, 0xef],
                extranonce2: vec![0, 0, 0, 0, 0, 0, 0, 7],
                ntime: 1_700_000_001,
                nonce: 0x1234_5678,
                version: 0x2000_6000,
            },
        })
    }

    #[test]
    fn hot_variants_decode_fast_and_the_rest_fall_back_to_bincode() {
        for event in every_variant() {
            let bytes = encode_event(&event).unwrap();
            let fast = decode_v1_fast(&bytes);
            match event {
                Event::PayoutRuleSet(_)
                | Event::PaymentPrepared(_)
                | Event::BlockCandidate(_)
                | Event::PaymentSigned(_) => assert_eq!(fast, None),
                _ => assert_eq!(fast.as_ref(), Some(&event), "{}", event.kind()),
            }
            assert_eq!(decode_event(1, &bytes).unwrap(), event);
            assert_eq!(decode_v1_bincode(&bytes).unwrap(), event);
            assert_eq!(crate::record::check_event(1, &bytes), Ok(()));
        }
    }

    /// Every prefix and every one-byte extension of the new variants' bytes, and every value of
    /// the anchor's `Option` tag: the fast decoder, the validation walk and bincode agree.
    #[test]
    fn job_and_share_with_work_damaged_bytes_agree_with_bincode() {
        for event in [
            job(None),
            job(Some(LedgerAnchor {
                seq: 1,
                hash: [7; 32],
            })),
            share_with_work(),
        ] {
            let bytes = encode_event(&event).unwrap();
            let mut cases: Vec<Vec<u8>> = (0..bytes.len()).map(|n| bytes[..n].to_vec()).collect();
            cases.push([bytes.as_slice(), &[0]].concat());
            if let Event::JobCreated(j) = &event {
                // The anchor's tag is the byte after version, bits, ntime.
                let at = bytes.len() - if j.anchor.is_some() { 41 } else { 1 };
                for tag in 0..=255u8 {
                    let mut b = bytes.clone();
                    b[at] = tag;
                    cases.push(b);
                }
            }
            for b in cases {
                let reference = decode_v1_bincode(&b);
                match decode_v1_fast(&b) {
                    Some(fast) => assert_eq!(reference.as_ref(), Ok(&fast)),
                    None => assert!(reference.is_err(), "fast refused what bincode decodes"),
                }
                assert_eq!(
                    crate::record::check_event(1, &b).is_ok(),
                    reference.is_ok(),
                    "{} bytes of {}",
                    b.len(),
                    event.kind()
                );
            }
        }
    }

    /// The work's layout by hand: the share's fields as in variant 0, then the extranonces
    /// (`u64` length, bytes), ntime, nonce, version (`u32` little-endian).
    #[test]
    fn share_with_work_layout_by_hand() {
        let Event::ShareWithWork(sw) = share_with_work() else {
            unreachable!()
        };
        let share_bytes = encode_event(&Event::ShareAccepted(sw.share.clone())).unwrap();
        let mut bytes = 14u32.to_le_bytes().to_vec();
        bytes.extend(&share_bytes[4..]);
        for b in [&sw.work.extranonce1, &sw.work.extranonce2] {
            bytes.extend((b.len() as u64).to_le_bytes());
            bytes.extend(b);
        }
        for v in [sw.work.ntime, sw.work.nonce, sw.work.version] {
            bytes.extend(v.to_le_bytes());
        }
        assert_eq!(
            bytes,
            encode_event(&Event::ShareWithWork(sw.clone())).unwrap()
        );
        assert_eq!(decode_v1_fast(&bytes), Some(Event::ShareWithWork(sw)));
    }

    /// The layout spelled out by hand, independently of bincode: targets big-endian.
    #[test]
    fn share_layout_by_hand() {
        let mut bytes = 0u32.to_le_bytes().to_vec();
        for s in ["addr", "w1"] {
            bytes.extend((s.len() as u64).to_le_bytes());
            bytes.extend(s.as_bytes());
        }
        let mut target = [0u8; 32];
        target[31] = 0xff; // big-endian: the value 255
        let mut weight = [0u8; 32];
        weight[0] = 1; // 2^248
        bytes.extend(target);
        bytes.extend(weight);
        bytes.extend(5u64.to_le_bytes());
        bytes.extend(6u64.to_le_bytes());
        bytes.extend([0xffu8; 32]);
        bytes.extend(7u64.to_le_bytes());
        let Some(Event::ShareAccepted(s)) = decode_v1_fast(&bytes) else {
            panic!("not a share");
        };
        assert_eq!(s.address.0, "addr");
        assert_eq!(s.worker.0, "w1");
        assert_eq!(s.share_target.to_be_bytes(), target);
        assert_eq!(s.weight.as_u256(), Target::from_be_bytes(weight).as_u256());
        assert_eq!((s.job_id, s.height, s.time_ms), (5, 6, 7));
        assert_eq!(s.network_target, Target::MAX);
        assert_eq!(
            decode_v1_bincode(&bytes).unwrap(),
            Event::ShareAccepted(s.clone())
        );
        // One byte short, one byte over, and a non-UTF-8 worker: refused, like bincode.
        for bad in [
            bytes[..bytes.len() - 1].to_vec(),
            [bytes.as_slice(), &[0]].concat(),
            {
                let mut b = bytes.clone();
                b[4 + 8 + 4 + 8] = 0xff;
                b
            },
        ] {
            assert_eq!(decode_v1_fast(&bad), None);
            assert!(decode_v1_bincode(&bad).is_err());
            assert!(decode_event(1, &bad).is_err());
        }
    }
}
