//! The operator's pause of payouts (`payouts_pause` / `payouts_resume`): while it is set the
//! payment lane refuses every new `PaymentPrepared` (open payments are carried to the end), and
//! the payout process, which sees it in `payout_state`, prepares none.
//!
//! It survives a restart: `payouts-pause.json` in the ledger's directory, `{"paused": null}` or
//! `{"paused": {"reason": ..., "since_ms": ...}}`, replaced durably on every change
//! ([`super::snapshot::write_file`]) before the change takes effect. A file that cannot be read
//! stops the start (starting unpaused against the operator's word would be worse).

use anyhow::Context;
use payout::api::operator::PauseInfo;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file name in the ledger's directory.
pub const PAUSE_FILE: &str = "payouts-pause.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct PauseFile {
    paused: Option<PauseInfo>,
}

/// The pause in force and its file.
#[derive(Debug)]
pub struct Pause {
    path: PathBuf,
    /// Held while the file is replaced, so the file and this always agree.
    state: Mutex<Option<PauseInfo>>,
}

impl Pause {
    /// Reads `dir`'s pause file (none: not paused).
    pub fn load(dir: &Path) -> anyhow::Result<Pause> {
        let path = dir.join(PAUSE_FILE);
        let paused = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: PauseFile = serde_json::from_slice(&bytes).with_context(|| {
                    format!(
                        "the payout pause file {} is damaged (fix or delete it: deleting it \
                         resumes payouts)",
                        path.display()
                    )
                })?;
                file.paused
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read the payout pause file {}", path.display())
                })
            }
        };
        if let Some(p) = &paused {
            tracing::warn!(reason = %p.reason, "payouts are paused by the operator (payouts_resume lifts it)");
        }
        Ok(Pause {
            path,
            state: Mutex::new(paused),
        })
    }

    /// The pause in force, if any.
    pub fn get(&self) -> Option<PauseInfo> {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Pauses payouts (blocking: writes the file). A pause in force is kept as it is (its
    /// reason and time); the reply says whether anything changed.
    pub fn pause(&self, reason: &str, now_ms: u64) -> std::io::Result<(PauseInfo, bool)> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = state.as_ref() {
            return Ok((p.clone(), false));
        }
        let info = PauseInfo {
            reason: reason.to_owned(),
            since_ms: now_ms,
        };
        self.write(Some(&info))?;
        *state = Some(info.clone());
        Ok((info, true))
    }

    /// Lifts the pause (blocking: writes the file); false when payouts were not paused.
    pub fn resume(&self) -> std::io::Result<bool> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.is_none() {
            return Ok(false);
        }
        self.write(None)?;
        *state = None;
        Ok(true)
    }

    fn write(&self, paused: Option<&PauseInfo>) -> std::io::Result<()> {
        let file = PauseFile {
            paused: paused.cloned(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        super::snapshot::write_file(&self.path, |out: &mut dyn Write| {
            out.write_all(&text)?;
            out.write_all(b"\n")
        })
    }
}

impl super::Live {
    /// Pauses payouts. Taken in the payment lane's turn, so once this returns no prepare can
    /// still be on its way into the ledger.
    pub async fn pause_payouts(
        &self,
        reason: &str,
        now_ms: u64,
    ) -> std::io::Result<(PauseInfo, bool)> {
        let _turn = self.lane.lock().await;
        // A small file's write and fsync, a few times in a pool's life: inline.
        let paused = self.pause().pause(reason, now_ms)?;
        if paused.1 {
            tracing::warn!(reason, "payouts paused by the operator");
        }
        Ok(paused)
    }

    /// Lifts the pause; false when payouts were not paused.
    pub async fn resume_payouts(&self) -> std::io::Result<bool> {
        let _turn = self.lane.lock().await;
        let resumed = self.pause().resume()?;
        if resumed {
            tracing::warn!("payouts resumed by the operator");
        }
        Ok(resumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_is_kept_in_its_file_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let pause = Pause::load(dir.path()).unwrap();
        assert_eq!(pause.get(), None);
        assert!(!pause.resume().unwrap());
        let (info, changed) = pause.pause("wallet audit", 1_000).unwrap();
        assert!(changed);
        assert_eq!(info.reason, "wallet audit");
        // A second pause keeps the first.
        let (again, changed) = pause.pause("other", 2_000).unwrap();
        assert!(!changed);
        assert_eq!(again, info);
        let loaded = Pause::load(dir.path()).unwrap();
        assert_eq!(loaded.get(), Some(info));
        assert!(loaded.resume().unwrap());
        assert_eq!(Pause::load(dir.path()).unwrap().get(), None);
        std::fs::write(dir.path().join(PAUSE_FILE), "{not json").unwrap();
        let err = Pause::load(dir.path()).unwrap_err();
        assert!(format!("{err:#}").contains("damaged"), "{err:#}");
    }
}
