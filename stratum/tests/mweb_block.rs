//! Litecoin MWEB blocks from real templates (the workspace's `testdata/litecoin-mweb.json`): Litecoin Core
//! 0.21.2.1 regtest's `getblocktemplate` at the first MWEB block (432, with a peg-in) and the next
//! (433), each with the block the node accepted by `submitblock` and returned by `getblock HASH 0`.
//! Those blocks were assembled by hand with the coinbase this pool builds (version 1, scriptSig
//! `height || "/mweb-proof/"`, the coinbase value to `OP_TRUE`, the witness commitment) and
//! nonce 0, so a job with the pool tag `/mweb-pr` and extranonces `oo` and `f/` must rebuild them
//! byte for byte: the HogEx last among the transactions, then `0x01 || mweb`.

use pool_core::chain::Chain;
use pool_core::merkle::root_from_branch;
use pool_core::pow::{scrypt_header, MatrixCache};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use stratum::job::{BlockTemplate, Job, JobBook, JobConfig, JobError};
use stratum::session::{Session, SessionConfig, SessionOutput};

struct Case {
    template: Value,
    block: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let all: Value =
        serde_json::from_str(include_str!("../../testdata/litecoin-mweb.json")).unwrap();
    all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            template: c["template"].clone(),
            block: hex::decode(c["block"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

/// The pool's settings that reproduce the hand-built coinbase: `"/mweb-pr" || "oo" || "f/"` is
/// the `/mweb-proof/` the node saw.
fn config(chain: Chain) -> JobConfig {
    let mut config = JobConfig::new(chain.params(), b"/mweb-pr", vec![0x51]);
    config.extranonce1_size = 2;
    config.extranonce2_size = 2;
    config
}

fn sha256d(b: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(b)).into()
}

fn build(template: &Value, chain: Chain) -> Result<Job, JobError> {
    let template = BlockTemplate::from_value(template.clone())?;
    Job::build(
        &template,
        &config(chain),
        1,
        true,
        None,
        &MatrixCache::new(1),
    )
}

#[test]
fn jobs_from_real_mweb_templates_rebuild_the_blocks_the_node_accepted() {
    for case in cases() {
        let height = case.template["height"].as_u64().unwrap();
        let job = build(&case.template, Chain::LitecoinRegtest).unwrap();
        assert!(job.has_mweb(), "{height}");
        let txs = case.template["transactions"].as_array().unwrap();
        assert_eq!(job.transaction_count(), txs.len() + 1);

        // The header: the merkle root over the coinbase txid and the template's txids, the
        // HogEx's included, is the one the node accepted.
        let mut coinbase = job.coinb1.clone();
        coinbase.extend_from_slice(b"oof/");
        coinbase.extend_from_slice(&job.coinb2);
        let root = root_from_branch(&sha256d(&coinbase), &job.merkle_branch);
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&job.version.to_le_bytes());
        header[4..36].copy_from_slice(&job.prev_hash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&job.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&job.nbits.to_le_bytes());
        assert_eq!(&header[..], &case.block[..80], "header at {height}");
        assert!(
            job.block_target.is_met_by(&scrypt_header(&header)),
            "{height}"
        );

        let block = job.block_bytes(&header, b"oo", b"f/");
        assert_eq!(hex::encode(&block), hex::encode(&case.block), "{height}");
        // The block ends with the HogEx (locktime, then nothing: its MWEB part is null) and
        // the extension block behind its OptionalPtr byte.
        let mweb = hex::decode(case.template["mweb"].as_str().unwrap()).unwrap();
        let hogex = hex::decode(txs.last().unwrap()["data"].as_str().unwrap()).unwrap();
        let tail = [hogex.as_slice(), &[0x01], &mweb].concat();
        assert!(block.ends_with(&tail), "{height}");
    }
}

#[test]
fn a_solved_share_on_an_mweb_job_is_a_block_candidate_with_the_extension_block() {
    let case = &cases()[0];
    let chain = Chain::LitecoinRegtest;
    let template = BlockTemplate::from_value(case.template.clone()).unwrap();
    let mut book = JobBook::default();
    let job = book
        .add_template(&template, &config(chain), None, &MatrixCache::new(1))
        .unwrap();
    let session_config = Arc::new(SessionConfig::new(chain.params(), 2));
    let mut session = Session::new(session_config, b"oo".to_vec(), 0);
    let now_ms = u64::from(job.ntime) * 1000;
    let mut send = |line: String| session.handle_line(&line, now_ms, &book);
    let _ = send(json!({"id":1,"method":"mining.subscribe","params":[]}).to_string());
    let address = "rltc1qfnddy46tz2y77a5kffzqfyj3l9p6p66rserjxp";
    let SessionOutput::Send(lines) =
        send(json!({"id":2,"method":"mining.authorize","params":[address]}).to_string())
    else {
        panic!("authorize")
    };
    assert!(lines[0].contains("true"), "{lines:?}");
    let submit = json!({"id":3,"method":"mining.submit",
        "params":[address, job.notify.job_id, hex::encode(b"f/"), format!("{:08x}", job.ntime), "00000000"]});
    let SessionOutput::ShareAccepted(accepted) = send(submit.to_string()) else {
        panic!("the node's nonce is a share")
    };
    let candidate = accepted.block.expect("the node's nonce is a block");
    assert_eq!(hex::encode(&candidate.block), hex::encode(&case.block));
    assert_eq!(candidate.height, 432);
}

#[test]
fn an_mweb_template_on_a_chain_without_mweb_gives_no_work() {
    for case in cases() {
        let template = BlockTemplate::from_value(case.template.clone()).unwrap();
        let mut book = JobBook::default();
        let e = book
            .add_template(
                &template,
                &config(Chain::BitcoinRegtest),
                None,
                &MatrixCache::new(1),
            )
            .unwrap_err();
        assert_eq!(e, JobError::MwebOnChainWithoutMweb("bitcoin-regtest"));
        assert!(e.to_string().contains("no work is given"), "{e}");
        assert!(book.current().is_none());
    }
}

#[test]
fn hogex_and_extension_block_come_together() {
    let case = &cases()[1];
    let mut no_mweb = case.template.clone();
    no_mweb.as_object_mut().unwrap().remove("mweb");
    assert_eq!(
        build(&no_mweb, Chain::LitecoinRegtest).unwrap_err(),
        JobError::HogExWithoutMweb
    );
    // Block 433's only transaction is the HogEx: without it, the witness commitment is the
    // empty block's, and the extension block has nothing to follow.
    let mut no_hogex = case.template.clone();
    no_hogex["transactions"] = json!([]);
    no_hogex
        .as_object_mut()
        .unwrap()
        .remove("default_witness_commitment");
    assert_eq!(
        build(&no_hogex, Chain::LitecoinRegtest).unwrap_err(),
        JobError::MwebWithoutHogEx
    );
    let mut odd = case.template.clone();
    odd["mweb"] = json!("0");
    assert!(matches!(
        build(&odd, Chain::LitecoinRegtest),
        Err(JobError::BadField { field: "mweb", .. })
    ));
    // Litecoin sends `mweb` among its rules (not required with `!`); either way it is known.
    let mut required = case.template.clone();
    required["rules"] = json!(["csv", "!segwit", "taproot", "!mweb"]);
    assert!(build(&required, Chain::LitecoinRegtest).is_ok());
}
