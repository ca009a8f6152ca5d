//! Property tests: any sequence of appends (singly and in batches, every event variant) reads
//! back identically, verifies, and survives a reopen.

mod ledger_support;

use ledger::Ledger;
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
