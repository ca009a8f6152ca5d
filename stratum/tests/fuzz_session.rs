//! No input may panic: raw byte streams (split at any byte, oversized, invalid UTF-8, any JSON)
//! through the line framer and the session state machine. Also: the framer's lines do not depend
//! on how the stream was split, and every line the session produces is one JSON object.

use pool_core::chain::Chain;
use pool_core::pow::MatrixCache;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::sync::Arc;
use stratum::codec::LineFramer;
use stratum::job::{BlockTemplate, JobBook, JobConfig};
use stratum::session::{Session, SessionConfig, SessionOutput};
use stratum::vardiff::VardiffConfig;

const ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const MAX_LINE: usize = 512;

fn book() -> (JobBook, Arc<SessionConfig>) {
    let chain = Chain::BsvRegtest.params();
    let template = BlockTemplate::from_value(json!({
        "version": 0x2000_0000u32,
        "previousblockhash": "62cb5ce485af08d24ebdca678df5643250ae068fa3ab2798d0283dd337f3ab06",
        "transactions": [],
        "coinbasevalue": 5_000_000_000u64,
        "bits": "207fffff",
        "curtime": 1_795_572_408u32,
        "height": 200,
    }))
    .unwrap();
    let mut book = JobBook::new(4);
    let cfg = JobConfig::new(chain, b"/fuzz/", vec![0x51]);
    book.add_template(&template, &cfg, None, &MatrixCache::new(1))
        .unwrap();
    let mut session_config = SessionConfig::new(chain, 4);
    session_config.vardiff = VardiffConfig {
        initial_difficulty: 1e-9,
        min_difficulty: 1e-12,
        ..VardiffConfig::default()
    };
    (book, Arc::new(session_config))
}

/// Checks a line the session wants to send.
fn check_line(line: &str) {
    assert!(line.ends_with('\n'), "{line:?}");
    let v: Value = serde_json::from_str(line).expect("session lines are JSON");
    assert!(v.is_object());
}

fn check_output(out: SessionOutput) -> bool {
    match out {
        SessionOutput::Send(lines) => lines.iter().for_each(|l| check_line(l)),
        SessionOutput::ShareRejected { reply, .. } => check_line(&reply),
        SessionOutput::ShareAccepted(a) => {
            check_line(&a.reply);
            check_line(&a.failure_reply());
            a.follow_up.iter().for_each(|l| check_line(l));
            if let Some(b) = &a.block {
                assert!(b.block.starts_with(&b.header));
            }
        }
        SessionOutput::Disconnect { lines, .. } => {
            lines.iter().for_each(|l| check_line(l));
            return false;
        }
    }
    true
}

/// Feeds `stream` in chunks of the given sizes; returns the lines the framer produced and
/// whether it failed (oversize).
fn run_stream(
    stream: &[u8],
    cuts: &[usize],
    session: Option<(&mut Session, &JobBook)>,
) -> (Vec<Vec<u8>>, bool) {
    let mut framer = LineFramer::new(MAX_LINE);
    let mut lines = Vec::new();
    let mut session = session;
    let mut rest = stream;
    let mut cut_iter = cuts.iter().cycle();
    let mut now = 0u64;
    while !rest.is_empty() {
        let n = (*cut_iter.next().unwrap_or(&1)).clamp(1, rest.len());
        framer.feed(&rest[..n]);
        rest = &rest[n..];
        loop {
            match framer.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= MAX_LINE);
                    assert!(!line.contains(&b'\n'));
                    lines.push(line.to_vec());
                    if let Some((s, book)) = session.as_mut() {
                        now += 7;
                        if !check_output(s.handle_bytes(line, now, book)) {
                            return (lines, false);
                        }
                    }
                }
                Ok(None) => break,
                Err(_) => return (lines, true),
            }
        }
    }
    (lines, false)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[0-9a-fA-Fx]{0,12}".prop_map(Value::String),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z.\\-]{0,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const METHODS: [&str; 8] = [
    "mining.subscribe",
    "mining.authorize",
    "mining.configure",
    "mining.suggest_difficulty",
    "mining.extranonce.subscribe",
    "mining.submit",
    "mining.get_transactions",
    "",
];

/// Requests shaped like Stratum's, with any params; submits often close to valid.
fn request_line() -> impl Strategy<Value = String> {
    let hex8 = "[0-9a-f]{8}";
    let submit = (
        prop_oneof![Just(format!("{ADDRESS}.w")), ".{0,8}"],
        prop_oneof![Just("1".to_string()), "[0-9a-z]{0,4}"],
        prop_oneof![hex8.prop_map(String::from), "[0-9a-fz]{0,10}"],
        prop_oneof![Just("6b0642b8".to_string()), hex8.prop_map(String::from)],
        hex8,
        prop::option::of(prop_oneof![
            hex8.prop_map(String::from),
            Just("1fffe000".to_string())
        ]),
    )
        .prop_map(|(w, j, e, t, n, v)| {
            let mut p = vec![json!(w), json!(j), json!(e), json!(t), json!(n)];
            if let Some(v) = v {
                p.push(json!(v));
            }
            json!({"id": 1, "method": "mining.submit", "params": p}).to_string()
        });
    let any_request = (
        json_value(),
        prop::sample::select(METHODS.to_vec()),
        prop::collection::vec(json_value(), 0..6),
    )
        .prop_map(|(id, m, p)| json!({"id": id, "method": m, "params": p}).to_string());
    prop_oneof![
        3 => submit,
        3 => any_request,
        1 => json_value().prop_map(|v| v.to_string()),
        1 => ".{0,64}",
    ]
}

fn handshake() -> Vec<u8> {
    let auth =
        json!({"id": 2, "method": "mining.authorize", "params": [format!("{ADDRESS}.w"), "x"]});
    format!(
        "{}\n{}\n{}\n",
        r#"{"id":0,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#,
        r#"{"id":1,"method":"mining.subscribe","params":["fuzz"]}"#,
        auth
    )
    .into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes, split anywhere: the framer never panics, never yields a line over the
    /// limit, and yields the same lines however the stream is split.
    #[test]
    fn framer_lines_do_not_depend_on_the_split(
        stream in prop::collection::vec(prop_oneof![any::<u8>(), Just(b'\n'), Just(b'\r')], 0..2048),
        cuts in prop::collection::vec(1usize..300, 1..20),
    ) {
        let (whole, whole_failed) = run_stream(&stream, &[stream.len().max(1)], None);
        let (split, split_failed) = run_stream(&stream, &cuts, None);
        let (bytewise, bytewise_failed) = run_stream(&stream, &[1], None);
        prop_assert_eq!(whole_failed, split_failed);
        prop_assert_eq!(whole_failed, bytewise_failed);
        if !whole_failed {
            prop_assert_eq!(&whole, &split);
            prop_assert_eq!(&whole, &bytewise);
        }
    }

    /// Raw bytes (invalid UTF-8, oversized lines, junk) through framer and session.
    #[test]
    fn raw_bytes_never_panic_the_session(
        stream in prop::collection::vec(any::<u8>(), 0..4096),
        cuts in prop::collection::vec(1usize..700, 1..10),
        handshake_first in any::<bool>(),
    ) {
        let (book, config) = book();
        let mut session = Session::new(config, vec![0xde, 0xad, 0xbe, 0xef], 0);
        let mut bytes = if handshake_first { handshake() } else { Vec::new() };
        bytes.extend_from_slice(&stream);
        run_stream(&bytes, &cuts, Some((&mut session, &book)));
    }

    /// Any JSON as a block template, and templates with fields replaced by any JSON: a clear
    /// error or a job, never a panic.
    #[test]
    fn any_template_json_never_panics_the_job_builder(
        whole in json_value(),
        field in prop::sample::select(vec![
            "version", "previousblockhash", "transactions", "coinbasevalue", "bits", "curtime",
            "mintime", "height", "default_witness_commitment", "rules", "mweb",
        ]),
        replacement in json_value(),
        tx in (".{0,8}", "[0-9a-f]{0,70}", prop::option::of("[0-9a-f]{62,66}")),
    ) {
        let chain = Chain::ObtcRegtest.params();
        let cfg = JobConfig::new(chain, b"/fuzz/", vec![0x51]);
        let cache = MatrixCache::new(1);
        if let Ok(t) = BlockTemplate::from_value(whole) {
            let _ = stratum::job::Job::build(&t, &cfg, 1, true, None, &cache);
        }
        let mut t = json!({
            "version": 0x2000_0000u32,
            "previousblockhash": "62cb5ce485af08d24ebdca678df5643250ae068fa3ab2798d0283dd337f3ab06",
            "transactions": [{"data": tx.0, "txid": tx.1, "hash": tx.2}],
            "coinbasevalue": 5_000_000_000u64,
            "bits": "207fffff",
            "curtime": 1_795_572_408u32,
            "height": 200,
        });
        t[field] = replacement;
        if let Ok(t) = BlockTemplate::from_value(t) {
            let mut book = JobBook::new(2);
            let _ = book.add_template(&t, &cfg, None, &cache);
        }
    }

    /// Stratum-shaped requests with any params, after a handshake or not, split anywhere.
    #[test]
    fn any_json_request_never_panics_the_session(
        requests in prop::collection::vec(request_line(), 1..40),
        cuts in prop::collection::vec(1usize..200, 1..10),
        handshake_first in any::<bool>(),
    ) {
        let (book, config) = book();
        let mut session = Session::new(config, vec![0xde, 0xad, 0xbe, 0xef], 0);
        let mut bytes = if handshake_first { handshake() } else { Vec::new() };
        for r in &requests {
            bytes.extend_from_slice(r.as_bytes());
            bytes.push(b'\n');
        }
        run_stream(&bytes, &cuts, Some((&mut session, &book)));
        if handshake_first {
            prop_assert!(session.is_authorized());
        }
    }
}
