//! Sealing a prefix of the ledger into an archive ([`ledger::archive`]) and dropping it from the
//! ledger: the safe cut, the projection snapshot at the cut, and the base snapshot.
//!
//! - **The safe cut**: `min(requested, Projection::horizon())` of the projection at the head,
//!   rounded down to a stored value boundary; never at or below the ledger's base.
//! - **The snapshot at the cut**: the projection that has applied record `cut - 1`, built from
//!   the base snapshot (or from record 0) and the records up to the cut, as a
//!   `live-projection.bin` image ([`super::snapshot`]); the archive holds it, and an audit
//!   checks it against its own replay.
//! - **The drop** ([`drop_sealed`]): only once the archive was read back and verified, and only
//!   when the live snapshot (`live-projection.bin`) is at or past the cut (so a restart needs no
//!   dropped record); it first writes the snapshot at the cut beside the ledger as
//!   `archive-base.<cut>.bin` (the way back if the live snapshot is lost, and where the next
//!   archive's replay starts), then [`ledger::Ledger::drop_prefix`].

use super::snapshot;
use super::{Applied, Live};
use anyhow::{bail, Context};
use ledger::archive::{self, ArchiveHeader};
use ledger::{Base, Ledger};
use payout::api::{ArchiveReply, ArchiveRequest};
use projections::{Projection, ProjectionConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The base snapshot's file in the ledger directory: the projection at record `base - 1`.
pub fn base_snapshot_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("archive-base.{base}.bin"))
}

/// A sealed (written and verified) archive.
pub struct Sealed {
    pub header: ArchiveHeader,
    pub requested: u64,
    pub horizon: u64,
    pub values: u64,
    pub file_bytes: u64,
    pub out: PathBuf,
    /// The projection at the cut.
    pub at_cut: Applied,
    /// Its snapshot image (what the archive holds).
    pub image: Vec<u8>,
}

/// The cut an archive of `requested` gets: at most the horizon, rounded down to a stored value
/// boundary. Errs when that leaves nothing to archive.
pub fn safe_cut(ledger: &Ledger, requested: u64, horizon: u64) -> anyhow::Result<u64> {
    let first = ledger.base()?.map_or(0, |b| b.seq);
    let Some(head) = ledger.head() else {
        bail!("the ledger is empty: nothing to archive");
    };
    let wanted = requested.min(horizon).min(head.seq + 1);
    let cut = ledger.value_boundary(wanted)?.unwrap_or(first);
    if cut <= first {
        bail!(
            "nothing to archive: the ledger starts at record {first} and the safe cut is {cut} \
             (requested {requested}, horizon {horizon}: records from the horizon on may still be \
             needed; the cut is rounded down to a stored value boundary)"
        );
    }
    Ok(cut)
}

/// The projection that has applied every record below `cut`: from the base snapshot (or an
/// empty projection at record 0) and the records from the base.
pub fn projection_at(
    ledger: &Ledger,
    cut: u64,
    config: &ProjectionConfig,
) -> anyhow::Result<Applied> {
    let mut applied = match ledger.base()? {
        None => Applied::new(config.clone()),
        Some(base) => {
            let path = base_snapshot_path(ledger.dir(), base.seq);
            super::follower::load_snapshot(ledger, config, &path).map_err(|why| {
                anyhow::anyhow!(
                    "the projection at the ledger's base {} is needed ({}): {why}",
                    base.seq,
                    path.display()
                )
            })?
        }
    };
    let from = applied.projection.next_seq();
    for record in ledger.read_range(from, cut) {
        applied.apply(Some(ledger), &record.context("reading the ledger")?)?;
    }
    if applied.projection.next_seq() != cut {
        bail!(
            "the ledger ends at {} before the cut {cut}",
            applied.projection.next_seq()
        );
    }
    Ok(applied)
}

fn image_of(applied: &Applied) -> anyhow::Result<Vec<u8>> {
    let header = applied
        .snapshot_header()
        .context("an empty projection has no snapshot")?;
    Ok(snapshot::image(&header, &applied.projection.snapshot()?))
}

/// Seals the records below the safe cut of `requested` into the new file `out`, then reads the
/// file back and checks it. Blocking.
pub fn seal(
    ledger: &Ledger,
    requested: u64,
    horizon: u64,
    config: &ProjectionConfig,
    out: &Path,
) -> anyhow::Result<Sealed> {
    if out.exists() {
        bail!("{} exists: an archive is never overwritten", out.display());
    }
    let cut = safe_cut(ledger, requested, horizon)?;
    let at_cut = projection_at(ledger, cut, config)?;
    let image = image_of(&at_cut)?;
    let header = archive::write(ledger, cut, &image, out)
        .with_context(|| format!("writing the archive {}", out.display()))?;
    let verified = archive::verify(out)
        .with_context(|| format!("the archive {} does not read back", out.display()))?;
    if verified.header != header || verified.snapshot != image {
        bail!(
            "the archive {} reads back other than it was written",
            out.display()
        );
    }
    Ok(Sealed {
        header,
        requested,
        horizon,
        values: verified.values,
        file_bytes: verified.file_len,
        out: out.to_path_buf(),
        at_cut,
        image,
    })
}

/// Whether the live snapshot (`live-projection.bin`) is at or past the cut and reflects this
/// ledger; `Err` says why not.
fn live_snapshot_covers(ledger: &Ledger, header: &ArchiveHeader) -> Result<u64, String> {
    let file = snapshot::read(ledger.dir()).map_err(|e| e.to_string())?;
    let seq = file.header.seq;
    if seq + 1 < header.cut {
        return Err(format!(
            "the live snapshot reflects record {seq}, before the cut {}",
            header.cut
        ));
    }
    let hash = if seq + 1 == header.cut {
        header.last_hash
    } else {
        ledger
            .read_range(seq, seq + 1)
            .next()
            .ok_or_else(|| format!("the ledger has no record {seq}"))?
            .map_err(|e| e.to_string())?
            .hash
    };
    if hash != file.header.hash {
        return Err(format!(
            "the live snapshot's record {seq} is not this ledger's"
        ));
    }
    Ok(seq)
}

/// Drops the sealed prefix from the ledger (see the module docs). The live snapshot must
/// already be at or past the cut. Blocking.
pub fn drop_sealed(ledger: &Ledger, sealed: &Sealed) -> anyhow::Result<Base> {
    let header = &sealed.header;
    if ledger.base()?.map_or(0, |b| b.seq) != header.first_seq {
        bail!("the ledger's base moved since the archive was sealed");
    }
    live_snapshot_covers(ledger, header).map_err(|why| {
        anyhow::anyhow!("not dropping the prefix: a restart would need it ({why})")
    })?;
    let path = base_snapshot_path(ledger.dir(), header.cut);
    snapshot::write_file(&path, |out| out.write_all(&sealed.image))
        .with_context(|| format!("writing the base snapshot {}", path.display()))?;
    let base = ledger.drop_prefix(header.cut)?;
    if base.prev_hash != header.last_hash {
        bail!("the dropped prefix ends on another record than the archive's last");
    }
    // Older base snapshots are of no further use.
    if header.first_seq > 0 {
        let _ = std::fs::remove_file(base_snapshot_path(ledger.dir(), header.first_seq));
    }
    Ok(base)
}

/// The projection at the head on a stopped pool: the live snapshot and the tail, else a replay
/// from the base (or 0).
pub fn projection_at_head(ledger: &Ledger) -> anyhow::Result<Applied> {
    let path = snapshot::path_in(ledger.dir());
    // The pool's settings are the snapshot's (every chain preset has the default maturity).
    let config = snapshot::read_at(&path)
        .ok()
        .and_then(|f| Projection::from_snapshot(f.projection()).ok())
        .map_or_else(ProjectionConfig::default, |p| p.config().clone());
    let mut applied = match super::follower::load_snapshot(ledger, &config, &path) {
        Ok(applied) => applied,
        Err(why) => {
            tracing::info!("replaying the ledger for its projection ({why})");
            let end = ledger.head().map_or(0, |h| h.seq + 1);
            return projection_at(ledger, end, &config);
        }
    };
    for record in ledger.read_from(applied.projection.next_seq()) {
        applied.apply(Some(ledger), &record.context("reading the ledger")?)?;
    }
    Ok(applied)
}

/// On a stopped pool: makes sure the live snapshot is at or past the cut, writing `at_head`'s
/// when it is not.
pub fn ensure_live_snapshot(
    ledger: &Ledger,
    sealed: &Sealed,
    at_head: &Applied,
) -> anyhow::Result<()> {
    if live_snapshot_covers(ledger, &sealed.header).is_ok() {
        return Ok(());
    }
    let header = at_head.snapshot_header().context("an empty projection")?;
    snapshot::write(ledger.dir(), &header, &at_head.projection.snapshot()?)
        .context("writing the live snapshot")
}

/// The reply describing a sealed archive.
pub fn reply(sealed: &Sealed, dropped: Option<Base>, ms: u64) -> ArchiveReply {
    ArchiveReply {
        out: sealed.out.display().to_string(),
        first_seq: sealed.header.first_seq,
        cut: sealed.header.cut,
        requested: sealed.requested,
        horizon: sealed.horizon,
        records: sealed.header.records(),
        values: sealed.values,
        file_bytes: sealed.file_bytes,
        last_hash: hex::encode(sealed.header.last_hash),
        dropped: dropped.is_some(),
        base: dropped.map(|b| b.seq),
        ms,
    }
}

impl Live {
    /// The running pool's archive: seal below the safe cut into `request.out`, and with
    /// `request.drop` write the live snapshot and drop the prefix. One at a time. Blocking work
    /// runs off the async workers.
    pub async fn archive(
        self: &Arc<Self>,
        request: ArchiveRequest,
    ) -> anyhow::Result<ArchiveReply> {
        let _one = self.archiving.lock().await;
        let live = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let (horizon, config) = {
                let state = live.read();
                (
                    state.projection.horizon(),
                    state.projection.config().clone(),
                )
            };
            let out = PathBuf::from(&request.out);
            let sealed = seal(&live.ledger, request.before, horizon, &config, &out)?;
            let dropped = if request.drop {
                live.snapshot_now()?;
                Some(drop_sealed(&live.ledger, &sealed)?)
            } else {
                None
            };
            let reply = reply(&sealed, dropped, started.elapsed().as_millis() as u64);
            tracing::info!(
                out = %reply.out,
                first_seq = reply.first_seq,
                cut = reply.cut,
                requested = reply.requested,
                horizon = reply.horizon,
                bytes = reply.file_bytes,
                dropped = reply.dropped,
                ms = reply.ms,
                "ledger archive sealed"
            );
            Ok(reply)
        })
        .await
        .context("the archive task stopped")?
    }
}

/// Automatic archiving (`[ledger] archive_dir`, `retain_records`): every `check_secs`, when the
/// live ledger holds more than twice `retain_records` records, seals all but the last
/// `retain_records` (lowered to the safe cut) into `archive_dir/ledger-<first seq>-<unix
/// ms>.archive` and drops them. A failure (nothing below the safe cut, a full disk) is logged
/// and tried again at the next check. File names sort in chain order; a file left by a crash
/// between sealing and dropping holds records still in the ledger and is superseded by the
/// next archive with the same first seq.
pub fn spawn_retention(
    live: Arc<Live>,
    retention: crate::config::Retention,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = Duration::from_secs(retention.check_secs);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.cancelled() => break,
            }
            let Some(head) = live.ledger.head() else {
                continue;
            };
            let base = match live.ledger.base() {
                Ok(b) => b.map_or(0, |b| b.seq),
                Err(e) => {
                    tracing::warn!("retention: cannot read the ledger's base: {e}");
                    continue;
                }
            };
            let held = head.seq + 1 - base;
            if held <= retention.retain_records.saturating_mul(2) {
                continue;
            }
            if let Err(e) = std::fs::create_dir_all(&retention.archive_dir) {
                tracing::warn!(
                    dir = %retention.archive_dir.display(),
                    "retention: cannot create the archive directory: {e}"
                );
                continue;
            }
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let out = retention
                .archive_dir
                .join(format!("ledger-{base:020}-{ms}.archive"));
            let request = ArchiveRequest {
                before: head.seq + 1 - retention.retain_records,
                out: out.display().to_string(),
                drop: true,
            };
            if let Err(e) = live.archive(request).await {
                tracing::warn!("retention: no archive this time: {e:#}");
            }
        }
    })
}
