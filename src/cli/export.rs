//! `obtc-pool ledger export --data DIR|--rpc URL --out FILE` (see [`super::ledger`]): writes
//! the export to `FILE.partial` and renames it to FILE once complete, so a file named FILE is
//! always a whole export. FILE is never overwritten.
//!
//! From a running pool the pages of `ledger_export` are fetched in order until the head the
//! first page reported: the export is the ledger up to that head, as a stopped pool's would be.

use crate::audit::export::{
    header, open_archives, write_archives, write_ledger_with_archives, write_line,
};
use anyhow::Context;
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClientBuilder;
use ledger::{Head, Ledger};
use payout::api::operator::{LedgerExportPage, MAX_EXPORT_LIMIT, METHOD_LEDGER_EXPORT};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// A page's reply may hold up to the server's page byte limit, plus the JSON-RPC frame.
const MAX_REPLY_BYTES: u32 = 64 << 20;

pub fn run(
    data: Option<PathBuf>,
    rpc: Option<String>,
    archives: &[PathBuf],
    out: &Path,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !out.exists(),
        "{} exists: the export never overwrites a file",
        out.display()
    );
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let started = Instant::now();
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let written = match (data, rpc) {
        (Some(dir), None) => {
            let ledger = Ledger::open_read_only(&dir)?;
            write_ledger_with_archives(&ledger, archives, &mut writer)
                .map(|w| (w.first_seq, w.records, w.head))
        }
        (None, Some(url)) => export_running(&url, archives, &mut writer),
        _ => Err(anyhow::anyhow!(
            "give --data DIR (a stopped pool) or --rpc URL"
        )),
    };
    let written = written.and_then(|w| {
        let file = writer.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(w)
    });
    let (first_seq, records, head) = match written {
        Ok(w) => w,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context(format!("exporting to {}", out.display())));
        }
    };
    std::fs::rename(&partial, out)
        .with_context(|| format!("renaming {} to {}", partial.display(), out.display()))?;
    let bytes = std::fs::metadata(out).map_or(0, |m| m.len());
    match head {
        Some(h) => println!(
            "exported records {first_seq}..={} ({records} records, {bytes} bytes) to {} in {:.1} \
             s; head seq {} hash {}",
            h.seq,
            out.display(),
            started.elapsed().as_secs_f64(),
            h.seq,
            hex::encode(h.hash)
        ),
        None => println!("exported an empty ledger (0 records) to {}", out.display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// Pages `ledger_export` of the pool at `url` into `out` up to the head of the first page, after
/// the records of `archives` (which must end where the pool's live ledger starts).
fn export_running(
    url: &str,
    archives: &[PathBuf],
    out: &mut impl Write,
) -> anyhow::Result<(u64, u64, Option<Head>)> {
    let client = HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(300))
        .max_response_size(MAX_REPLY_BYTES)
        .build(url)
        .with_context(|| format!("the pool's RPC at {url}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let fetch = |from: Option<u64>| -> anyhow::Result<LedgerExportPage> {
        runtime
            .block_on(client.request(
                METHOD_LEDGER_EXPORT,
                jsonrpsee::rpc_params![from, MAX_EXPORT_LIMIT],
            ))
            .with_context(|| format!("{METHOD_LEDGER_EXPORT} from {from:?} at {url}"))
    };
    let first = fetch(None)?;
    let head = match &first.ledger {
        Some(h) => Some(Head {
            seq: h.seq,
            hash: crate::audit::source::hash32(&h.hash)
                .with_context(|| format!("the pool's head hash {:?}", h.hash))?,
        }),
        None => None,
    };
    let live = first.header.first_seq;
    let live_prev = crate::audit::source::hash32(&first.header.prev_hash)
        .with_context(|| format!("the page's prev_hash {:?}", first.header.prev_hash))?;
    let readers = open_archives(archives)?;
    let headers: Vec<_> = readers.iter().map(|(_, r)| *r.header()).collect();
    // The archives must join onto the pool's live ledger as `ledger verify --archive` proves
    // for a stopped one; the pool's first page gives its base (the RPC reads no earlier record).
    if !headers.is_empty() {
        let base = Some(ledger::Base {
            seq: live,
            prev_hash: live_prev,
        });
        ledger::archive::check_join(&headers, base, |_| None)
            .map_err(|e| anyhow::anyhow!("ledger verification FAILED: {e}"))?;
    }
    let (first_seq, prev_hash) = match headers.first() {
        Some(h) => (h.first_seq, h.prev_hash),
        None => (live, live_prev),
    };
    let end = head.map_or(live, |h| h.seq + 1);
    let header = header(first_seq, prev_hash, head.filter(|h| h.seq >= first_seq));
    write_line(out, &header)?;
    write_archives(readers, out)?;
    let mut next = live;
    let mut page = first;
    loop {
        anyhow::ensure!(
            page.header.first_seq == next,
            "{METHOD_LEDGER_EXPORT} answered a page from record {} where {next} was asked",
            page.header.first_seq
        );
        for record in page.records {
            if next >= end {
                break;
            }
            anyhow::ensure!(
                record.seq == next,
                "{METHOD_LEDGER_EXPORT} answered record {} where {next} was due",
                record.seq
            );
            write_line(out, &record)?;
            next += 1;
        }
        if next >= end {
            break;
        }
        let Some(from) = page.next else {
            anyhow::bail!(
                "{METHOD_LEDGER_EXPORT} ended at record {next} before the head {} it reported",
                end - 1
            );
        };
        anyhow::ensure!(
            from == next,
            "{METHOD_LEDGER_EXPORT} said the next page is from {from}, not {next}"
        );
        page = fetch(Some(from))?;
    }
    out.flush()?;
    Ok((
        first_seq,
        next - first_seq,
        head.filter(|h| h.seq >= first_seq),
    ))
}
