//! The scrypt difficulty convention in the session: on a scrypt preset difficulty 1 is a target
//! 65,536 times Bitcoin's difficulty-1 target, in everything the session sends
//! (`mining.set_difficulty`), takes (`mining.suggest_difficulty`) and clamps to (vardiff bounds,
//! the block threshold); a share's weight stays the work of its target.

use pool_core::chain::{Chain, ChainParams};
use pool_core::event::ShareAccepted;
use pool_core::pow::MatrixCache;
use pool_core::{DifficultyUnit, Target};
use serde_json::{json, Value};
use std::sync::Arc;
use stratum::job::{BlockTemplate, JobBook, JobConfig};
use stratum::session::{Session, SessionConfig, SessionOutput, ShareRejection};
use stratum::vardiff::VardiffConfig;

/// A P2PKH address with version byte 111: valid on both bsv-regtest and litecoin-regtest.
const ADDRESS: &str = "mzBc4XEFSdzCDcTxAgf6EZXgsZWpztRhef";
const CURTIME: u32 = 1_795_572_408;
const SCALE: f64 = 65_536.0;

fn template(prev: &str) -> BlockTemplate {
    BlockTemplate::from_value(json!({
        "version": 0x2000_0000u32,
        "previousblockhash": prev,
        "transactions": [],
        "coinbasevalue": 5_000_000_000u64,
        "bits": "207fffff",
        "curtime": CURTIME,
        "height": 200,
    }))
    .unwrap()
}

fn prev(n: u64) -> String {
    format!("{n:064x}")
}

/// bsv-regtest (SHA-256d) read in the scrypt unit: the same hashes as bsv-regtest, so a session
/// on it and one on bsv-regtest see the same shares and differ only in the unit.
fn bsv_regtest_in_the_scrypt_unit() -> &'static ChainParams {
    Box::leak(Box::new(ChainParams {
        difficulty_unit: DifficultyUnit::Scrypt,
        ..Chain::BsvRegtest.params().clone()
    }))
}

/// A job book on `chain` (whose proof of work hashes the shares) with the given block threshold.
fn book(chain: &'static ChainParams, block_target: Option<Target>) -> (JobBook, JobConfig) {
    let mut config = JobConfig::new(chain, b"/t/", vec![0x51]);
    config.pool_block_target = block_target;
    let mut book = JobBook::new(4);
    book.add_template(&template(&prev(1)), &config, None, &MatrixCache::new(1))
        .unwrap();
    (book, config)
}

fn session(chain: &'static ChainParams, vardiff: VardiffConfig) -> Session {
    let mut config = SessionConfig::new(chain, 4);
    config.vardiff = vardiff;
    Session::new(Arc::new(config), vec![1, 2, 3, 4], 0)
}

fn vardiff(initial: f64, min: f64, max: f64) -> VardiffConfig {
    VardiffConfig {
        initial_difficulty: initial,
        min_difficulty: min,
        max_difficulty: max,
        ..VardiffConfig::default()
    }
}

fn sent(s: &mut Session, line: &str, book: &JobBook) -> Vec<String> {
    match s.handle_line(line, 1_000, book) {
        SessionOutput::Send(l) => l,
        other => panic!("{line}: {other:?}"),
    }
}

/// Subscribes and authorizes; returns the lines the authorization sent (the first work).
fn ready(s: &mut Session, book: &JobBook) -> Vec<String> {
    sent(
        s,
        r#"{"id":1,"method":"mining.subscribe","params":[]}"#,
        book,
    );
    let auth = json!({"id":2,"method":"mining.authorize","params":[format!("{ADDRESS}.w"),"x"]});
    let out = sent(s, &auth.to_string(), book);
    assert_eq!(parse(&out[0])["result"], true, "{out:?}");
    out
}

fn parse(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

/// The difficulty a `mining.set_difficulty` line carries, read exactly (`str::parse`; serde_json's
/// default float parsing may be one ulp off).
fn line_difficulty(line: &str) -> Option<f64> {
    let number = line
        .strip_prefix(r#"{"id":null,"method":"mining.set_difficulty","params":["#)?
        .strip_suffix("]}\n")?;
    Some(number.parse().unwrap())
}

/// The difficulties of the `mining.set_difficulty` lines among `lines`.
fn set_difficulties(lines: &[String]) -> Vec<f64> {
    lines.iter().filter_map(|l| line_difficulty(l)).collect()
}

fn submit(nonce: u32) -> String {
    json!({"id": 9, "method": "mining.submit", "params": [
        format!("{ADDRESS}.w"), "1", "00000000", format!("{CURTIME:08x}"), format!("{nonce:08x}"),
    ]})
    .to_string()
}

fn suggest(d: f64) -> String {
    json!({"id": 3, "method": "mining.suggest_difficulty", "params": [d]}).to_string()
}

/// The first accepted share from nonce `start` on (bounded).
fn first_accepted(s: &mut Session, book: &JobBook, start: u32) -> ShareAccepted {
    for nonce in start..start + 1_000 {
        match s.handle_line(&submit(nonce), 5_000, book) {
            SessionOutput::ShareAccepted(a) => return a.event,
            SessionOutput::ShareRejected {
                reason: ShareRejection::LowDifficulty,
                ..
            } => continue,
            other => panic!("{other:?}"),
        }
    }
    panic!("no share in 1,000 nonces");
}

/// What a session's output shows, with every `mining.set_difficulty` divided by `scale` (so a
/// scrypt-unit session's output reads as the Bitcoin one's), and the accepted share if any.
fn shown(out: SessionOutput, scale: f64) -> (Vec<String>, Option<ShareAccepted>) {
    let (lines, share) = match out {
        SessionOutput::Send(lines) => (lines, None),
        SessionOutput::ShareRejected { reply, .. } => (vec![reply], None),
        SessionOutput::ShareAccepted(a) => {
            let mut lines = vec![a.reply.clone()];
            lines.extend(a.follow_up.iter().cloned());
            (lines, Some(a.event))
        }
        SessionOutput::Disconnect { lines, reason } => panic!("disconnected: {reason} {lines:?}"),
    };
    let lines = lines
        .into_iter()
        .map(|l| match line_difficulty(&l) {
            Some(d) => format!("set_difficulty {}", d / scale),
            None => l,
        })
        .collect();
    (lines, share)
}

#[test]
fn a_scrypt_session_reads_every_difficulty_65536_times_easier() {
    // The same miner (same hashes) against a Bitcoin-unit and a scrypt-unit session whose
    // settings are the same difficulties in each unit: every set_difficulty differs by exactly
    // 65,536 (the scale is a power of two, so the floats do too), every share is judged at the
    // same target and weighs the same work, through suggest_difficulty, vardiff retargets up and
    // down, the block-threshold clamp and the idle rule.
    let (mut book, job_config) = book(Chain::BsvRegtest.params(), Some(Target::DIFF1));
    let cache = MatrixCache::new(1);
    let bitcoin_vardiff = vardiff(2f64.powi(-30), 2f64.powi(-40), 2f64.powi(20));
    let scrypt_vardiff = vardiff(
        bitcoin_vardiff.initial_difficulty * SCALE,
        bitcoin_vardiff.min_difficulty * SCALE,
        bitcoin_vardiff.max_difficulty * SCALE,
    );
    let mut bitcoin = session(Chain::BsvRegtest.params(), bitcoin_vardiff);
    let mut scrypt = session(bsv_regtest_in_the_scrypt_unit(), scrypt_vardiff);
    let b = shown(SessionOutput::Send(ready(&mut bitcoin, &book)), 1.0);
    let s = shown(SessionOutput::Send(ready(&mut scrypt, &book)), SCALE);
    assert_eq!(b, s);
    assert_eq!(b.0[1], format!("set_difficulty {}", 2f64.powi(-30)));

    let (mut accepted, mut difficulties) = (0, Vec::new());
    // Suggested above the pool's block threshold (difficulty 1 in Bitcoin's unit, 65,536 in
    // scrypt's): both clamp to it, each in its unit.
    for (i, (line_b, line_s)) in [
        (suggest(4.0), suggest(4.0 * SCALE)),
        (suggest(2f64.powi(-26)), suggest(2f64.powi(-26) * SCALE)),
    ]
    .iter()
    .enumerate()
    {
        let b = shown(bitcoin.handle_line(line_b, 1_000, &book), 1.0);
        let s = shown(scrypt.handle_line(line_s, 1_000, &book), SCALE);
        assert_eq!(b, s);
        if i == 0 {
            assert_eq!(b.0[1], "set_difficulty 1", "the threshold, in each unit");
        }
    }
    // ~1,000 hashes a simulated second at 1 share in 64: vardiff raises the difficulty; a pause
    // of minutes then lowers it (the idle rule, run by new jobs).
    let mut now_ms = 1_000;
    for nonce in 0..40_000u32 {
        now_ms += 1;
        if nonce == 30_000 {
            now_ms += 600_000;
        }
        if nonce % 5_000 == 0 {
            let job = book
                .add_template(
                    &template(&prev(2 + u64::from(nonce))),
                    &job_config,
                    None,
                    &cache,
                )
                .unwrap();
            let b = shown(SessionOutput::Send(bitcoin.on_job(&job, now_ms)), 1.0);
            let s = shown(SessionOutput::Send(scrypt.on_job(&job, now_ms)), SCALE);
            assert_eq!(b, s, "job at nonce {nonce}");
        }
        let job = book.current().unwrap().id;
        let line = json!({"id": 9, "method": "mining.submit", "params": [
            format!("{ADDRESS}.w"), format!("{job:x}"), "00000000", format!("{CURTIME:08x}"),
            format!("{nonce:08x}"),
        ]})
        .to_string();
        let b = shown(bitcoin.handle_line(&line, now_ms, &book), 1.0);
        let s = shown(scrypt.handle_line(&line, now_ms, &book), SCALE);
        assert_eq!(b, s, "nonce {nonce}");
        if let Some(share) = &b.1 {
            accepted += 1;
            assert_eq!(share.weight, share.share_target.work());
        }
        assert_eq!(scrypt.difficulty(), bitcoin.difficulty() * SCALE);
        if difficulties.last() != Some(&bitcoin.difficulty()) {
            difficulties.push(bitcoin.difficulty());
        }
    }
    assert!(accepted > 20, "{accepted} shares");
    let first = difficulties[0];
    assert!(
        difficulties.iter().any(|&d| d > first) && difficulties.windows(2).any(|w| w[1] < w[0]),
        "retargets up and down: {difficulties:?}"
    );
}

#[test]
fn on_litecoin_regtest_set_difficulty_carries_the_scrypt_number() {
    // Real scrypt hashing. The share target of scrypt difficulty d is Bitcoin's target of the
    // same number times 65,536, i.e. Bitcoin's target of d / 65,536.
    let chain = Chain::LitecoinRegtest.params();
    assert_eq!(chain.difficulty_unit, DifficultyUnit::Scrypt);
    let d = 2f64.powi(-15);
    let (book, _) = book(chain, Some(Target::DIFF1));
    let mut s = session(chain, vardiff(d, 2f64.powi(-20), 1e12));
    let out = ready(&mut s, &book);
    assert_eq!(set_difficulties(&out), vec![d], "{out:?}");
    assert_eq!(s.difficulty(), d);

    let share = first_accepted(&mut s, &book, 0);
    let bitcoin_same_number = Target::from_difficulty(d).unwrap();
    assert_eq!(
        share.share_target.as_u256(),
        bitcoin_same_number.as_u256() << 16
    );
    assert_eq!(
        share.share_target,
        Target::from_difficulty(d / SCALE).unwrap()
    );
    assert_eq!(
        share.share_target,
        DifficultyUnit::Scrypt.target(d).unwrap()
    );
    // Weight: the work of the share's target (about 65,536 times less than at Bitcoin's number).
    assert_eq!(share.weight, share.share_target.work());
    let ratio = bitcoin_same_number.work().as_difficulty() / share.weight.as_difficulty();
    assert!((ratio / SCALE - 1.0).abs() < 1e-3, "{ratio}");
}

#[test]
fn on_litecoin_regtest_suggest_difficulty_and_the_bounds_are_in_the_scrypt_unit() {
    let chain = Chain::LitecoinRegtest.params();
    // No pool threshold: the network's regtest target (bits 207fffff) is Bitcoin difficulty
    // 0xffff / (0x7fffff * 2^24), about 4.66e-10, and scrypt difficulty 65,536 times that.
    let (book, _) = book(chain, None);
    let network = DifficultyUnit::Scrypt.difficulty(&book.current().unwrap().block_target);
    let bitcoin_network = book.current().unwrap().block_target.difficulty();
    assert_eq!(network, bitcoin_network * SCALE);
    assert!((3.0e-5..3.1e-5).contains(&network), "{network}");

    let mut s = session(chain, vardiff(2e-6, 1e-6, 1.0));
    ready(&mut s, &book);
    // Honoured as given, in the unit.
    let out = sent(&mut s, &suggest(1e-5), &book);
    assert_eq!(set_difficulties(&out), vec![1e-5]);
    // Below the minimum: the minimum, in the unit.
    let out = sent(&mut s, &suggest(1e-9), &book);
    assert_eq!(set_difficulties(&out), vec![1e-6]);
    // Above the network difficulty: the network difficulty in the unit (not Bitcoin's number).
    let out = sent(&mut s, &suggest(0.5), &book);
    assert_eq!(set_difficulties(&out), vec![network]);
    assert_eq!(s.difficulty(), network);

    // The pool's block threshold clamps in the unit too: Bitcoin difficulty 1 is 65,536 here.
    let (book, _) = self::book(chain, Some(Target::DIFF1));
    let mut s = session(chain, vardiff(1.0, 1e-6, 1e12));
    ready(&mut s, &book);
    let out = sent(&mut s, &suggest(1e9), &book);
    assert_eq!(set_difficulties(&out), vec![SCALE]);
}

#[test]
fn on_bitcoin_presets_the_unit_is_bitcoins() {
    for chain in [Chain::BsvRegtest, Chain::ObtcRegtest, Chain::BitcoinMain] {
        assert_eq!(chain.params().difficulty_unit, DifficultyUnit::Bitcoin);
    }
    for chain in [
        Chain::LitecoinMain,
        Chain::LitecoinTest,
        Chain::LitecoinRegtest,
    ] {
        assert_eq!(chain.params().difficulty_unit, DifficultyUnit::Scrypt);
    }
    // bsv-regtest's share target of difficulty d is Bitcoin's.
    let chain = Chain::BsvRegtest.params();
    let (book, _) = book(chain, Some(Target::DIFF1));
    let d = 2f64.powi(-30);
    let mut s = session(chain, vardiff(d, 2f64.powi(-40), 1.0));
    assert_eq!(set_difficulties(&ready(&mut s, &book)), vec![d]);
    let share = first_accepted(&mut s, &book, 0);
    assert_eq!(share.share_target, Target::from_difficulty(d).unwrap());
}
