//! Property tests: any sequence of appends (singly and in batches, every event variant) reads
//! back identically, verifies, and survives a reopen and compaction into format-2 chunks.

mod ledger_support;

use ledger::{CompactOptions, Ledger, WriterOptions};
use ledger_support::arb_event;
use pool_core::Event;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn appends_read_back_identically_and_verify(
        groups in prop::collection::vec(prop::collection::vec(arb_event(), 1..6), 1..12),
        from in 0u64..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        let mut expected: Vec<Event> = Vec::new();
        for (i, group) in groups.into_iter().enumerate() {
            let first = expected.len() as u64;
            if i % 2 == 0 {
                for event in group {
                    let a = ledger.append_blocking(event.clone()).unwrap();
                    prop_assert_eq!(a.seq, expected.len() as u64);
                    expected.push(event);
                }
            } else {
                let appended = ledger.append_batch_blocking(group.clone()).unwrap();
                let seqs: Vec<u64> = appended.iter().map(|a| a.seq).collect();
                prop_assert_eq!(seqs, (first..first + group.len() as u64).collect::<Vec<_>>());
                expected.extend(group);
            }
        }
        let read: Vec<Event> = ledger.read_from(0).map(|r| r.unwrap().event).collect();
        prop_assert_eq!(&read, &expected);
        let tail: Vec<(u64, Event)> = ledger
            .read_from(from)
            .map(|r| r.map(|r| (r.seq, r.event)).unwrap())
            .collect();
        let want: Vec<(u64, Event)> = expected
            .iter()
            .cloned()
            .enumerate()
            .skip(from as usize)
            .map(|(i, e)| (i as u64, e))
            .collect();
        prop_assert_eq!(tail, want);
        let report = ledger.verify().unwrap();
        prop_assert_eq!(report.records, expected.len() as u64);
        let head = ledger.head();
        ledger.close_blocking();

        let reopened = Ledger::open(dir.path()).unwrap();
        prop_assert_eq!(reopened.head(), head);
        let again: Vec<Event> = reopened.read_from(0).map(|r| r.unwrap().event).collect();
        prop_assert_eq!(again, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Compaction re-stores any events (shares with and without work, jobs, every other
    /// variant) in chunks that read back and verify to the same records and hashes.
    #[test]
    fn any_events_read_back_identically_after_compaction(
        groups in prop::collection::vec(prop::collection::vec(arb_event(), 1..12), 1..16),
        chunk_records in 1u64..40,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = CompactOptions { background: false, chunk_records, ..CompactOptions::default() };
        let ledger = Ledger::open_tuned(dir.path(), WriterOptions::default(), options).unwrap();
        for group in groups {
            ledger.append_batch_blocking(group).unwrap();
        }
        let before: Vec<_> = ledger.read_from(0).map(Result::unwrap).collect();
        let verified = ledger.verify().unwrap();
        let report = ledger.compact().unwrap();
        prop_assert_eq!(report.refused, 0);
        // Every run of whole batches of at least `chunk_records` records is sealed: the first.
        prop_assert!(report.chunks > 0 || (before.len() as u64) < chunk_records, "{:?}", report);
        let after: Vec<_> = ledger.read_from(0).map(Result::unwrap).collect();
        prop_assert_eq!(&after, &before);
        let again = ledger.verify().unwrap();
        prop_assert_eq!(again.records, verified.records);
        prop_assert_eq!(again.head, verified.head);
    }
}

/// How an event's bytes are damaged before both decoders see them.
#[derive(Debug, Clone)]
enum Damage {
    None,
    Flip(usize, u8),
    Truncate(usize),
    Append(u8),
    SetTag(u32),
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        Just(Damage::None),
        (any::<usize>(), 1u8..=255).prop_map(|(i, x)| Damage::Flip(i, x)),
        any::<usize>().prop_map(Damage::Truncate),
        any::<u8>().prop_map(Damage::Append),
        (0u32..16).prop_map(Damage::SetTag),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `verify` checks events with an allocation-free walk of the v1 layout; it must accept
    /// exactly what the bincode decoder accepts, for intact and damaged bytes alike.
    #[test]
    fn event_check_agrees_with_the_decoder(event in arb_event(), damage in arb_damage()) {
        let mut bytes = ledger::record::encode_event(&event).unwrap();
        prop_assert!(ledger::record::check_event(1, &bytes).is_ok());
        match damage {
            Damage::None => {}
            Damage::Flip(i, x) => {
                let i = i % bytes.len();
                bytes[i] ^= x;
            }
            Damage::Truncate(n) => bytes.truncate(n % bytes.len()),
            Damage::Append(b) => bytes.push(b),
            Damage::SetTag(t) => bytes[..4].copy_from_slice(&t.to_le_bytes()),
        }
        let decoded = ledger::record::decode_event(1, &bytes);
        let checked = ledger::record::check_event(1, &bytes);
        prop_assert_eq!(checked.is_ok(), decoded.is_ok(), "{:?} vs {:?}", checked, decoded.map(|e| e.kind()));
    }

    #[test]
    fn event_check_agrees_with_the_decoder_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let decoded = ledger::record::decode_event(1, &bytes);
        let checked = ledger::record::check_event(1, &bytes);
        prop_assert_eq!(checked.is_ok(), decoded.is_ok());
    }
}

fn damaged(event: &Event, damage: &Damage) -> Vec<u8> {
    let mut bytes = ledger::record::encode_event(event).unwrap();
    match *damage {
        Damage::None => {}
        Damage::Flip(i, x) => {
            let i = i % bytes.len();
            bytes[i] ^= x;
        }
        Damage::Truncate(n) => bytes.truncate(n % bytes.len()),
        Damage::Append(b) => bytes.push(b),
        Damage::SetTag(t) => bytes[..4].copy_from_slice(&t.to_le_bytes()),
    }
    bytes
}

/// Variant indices the fast decoder builds itself (the others always go to bincode).
fn fast_variant(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && matches!(
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            0..=5 | 8..=10 | 13 | 14
        )
}

/// The fast decoder and bincode agree: the same event, or bincode refuses what the fast decoder
/// leaves to it; and the read path's decode (fast, falling back to bincode) answers exactly as
/// bincode does, errors included.
fn assert_fast_agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let reference = ledger::record::decode_v1_bincode(bytes);
    match ledger::decode::decode_v1_fast(bytes) {
        Some(fast) => prop_assert_eq!(reference.as_ref(), Ok(&fast)),
        None => prop_assert!(
            reference.is_err() || !fast_variant(bytes),
            "fast decoder refused a {:?} bincode decodes",
            reference.map(|e| e.kind())
        ),
    }
    prop_assert_eq!(ledger::record::decode_event(1, bytes), reference);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn fast_decoder_agrees_with_bincode(event in arb_event(), damage in arb_damage()) {
        let bytes = damaged(&event, &damage);
        if matches!(damage, Damage::None) {
            prop_assert_eq!(ledger::record::decode_event(1, &bytes).unwrap(), event);
        }
        assert_fast_agrees(&bytes)?;
    }

    #[test]
    fn fast_decoder_agrees_with_bincode_on_any_bytes(
        tag in 0u32..16,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = tag.to_le_bytes().to_vec();
        bytes.extend(body);
        assert_fast_agrees(&bytes)?;
    }

    /// Strings of arbitrary bytes (often not UTF-8) in a share: an error, never a panic.
    #[test]
    fn fast_decoder_refuses_what_bincode_refuses_in_strings(
        address in prop::collection::vec(any::<u8>(), 0..8),
        worker in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let mut bytes = 0u32.to_le_bytes().to_vec();
        for s in [&address, &worker] {
            bytes.extend((s.len() as u64).to_le_bytes());
            bytes.extend(s.iter().copied());
        }
        bytes.extend([7u8; 32 * 3 + 8 * 3]);
        assert_fast_agrees(&bytes)?;
        let utf8 = std::str::from_utf8(&address).is_ok() && std::str::from_utf8(&worker).is_ok();
        prop_assert_eq!(ledger::decode::decode_v1_fast(&bytes).is_some(), utf8);
    }
}

/// A length field far beyond the buffer is refused before anything is allocated.
#[test]
fn fast_decoder_refuses_huge_lengths() {
    for len in [u64::MAX, u64::MAX / 2, 1 << 40, 9] {
        let mut bytes = 0u32.to_le_bytes().to_vec();
        bytes.extend(len.to_le_bytes());
        bytes.extend(b"abcdefgh");
        assert!(ledger::decode::decode_v1_fast(&bytes).is_none());
        assert!(ledger::record::decode_event(1, &bytes).is_err());
    }
}
