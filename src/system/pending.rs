//! The confirm-or-rollback handshake, as files in `<state>/confirm/`. An apply made with
//! `--confirm` leaves `pending-<token>` (listing the snapshots to go back to); whoever
//! renames it first wins: `iptables-docker confirm` to `confirmed-<token>`, the watchdog
//! at the deadline to `rollback-<token>`. The watchdog then writes `outcome-<token>`.
//!
//! An apply that follows an edit of the configuration file (`allow … --apply --confirm`)
//! also records the edit ([`FileEdit`]): a line `config <path>` in `pending-<token>`, the
//! text it wrote in `after-<token>` and, when the file existed, the text it replaced in
//! `before-<token>`. The rollback puts that file back too, so that an unconfirmed rule
//! does not return with the next reload or boot.
//!
//! The record and the watchdog exist before the kernel is changed; the apply then writes
//! `deadline-<token>` (milliseconds since the epoch: the window starts once the new
//! ruleset runs) and the policy it loaded as candidates for the last good policy,
//! `good-v4-<token>` / `good-v6-<token>`. Whoever sees the confirmation first moves them
//! to `<state>/last-good-*` ([`Pending::settle_confirmed`]); a rollback removes them, so
//! the last good policy is never one that was not confirmed. `outcome-<token>` stays
//! when nobody waited for it (the terminal was gone): `status` reports it
//! ([`last_rollback`]) until the next apply clears it ([`clear_outcomes`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::fallback::LastGood;
use crate::family::Family;
use crate::system::file;
use crate::system::state::StateDir;

#[derive(Debug, Clone)]
pub struct Pending {
    dir: PathBuf,
    pub token: String,
}

/// An edit of the configuration file that a rollback undoes with the ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEdit {
    pub path: PathBuf,
    /// The text it replaced; `None` when the edit created the file.
    pub before: Option<String>,
    /// The text it wrote.
    pub after: String,
}

impl FileEdit {
    /// Puts the file back as it was before the edit (removes it when the edit created it,
    /// keeps the mode it has now) — unless it has changed since the edit: then it is left
    /// alone and the answer is false.
    pub fn undo(&self) -> Result<bool> {
        let now = file::read_if_exists(&self.path)?;
        if now.as_deref() != Some(self.after.as_bytes()) {
            return Ok(false);
        }
        match &self.before {
            Some(text) => {
                let mode = std::fs::metadata(&self.path)
                    .map_or(0o644, |m| m.permissions().mode() & 0o7777);
                file::write_atomic(&self.path, text.as_bytes(), mode)?;
            }
            None => {
                file::remove_file(&self.path)?;
            }
        }
        Ok(true)
    }
}

/// Which side won, or none yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Waiting,
    Confirmed,
    /// The watchdog is rolling back.
    RollingBack,
    /// The watchdog has rolled back; what it reported.
    RolledBack(String),
}

/// The tag of the `pending-<token>` line that names the edited configuration file.
const CONFIG: &str = "config";

fn corrupt(path: &Path, e: impl std::fmt::Display) -> crate::error::Error {
    crate::error::Error::failed(format!("cannot read {}: {e}", path.display()))
}

fn confirm_dir(state: &StateDir) -> PathBuf {
    state.root.join("confirm")
}

impl Pending {
    fn path(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}-{}", self.token))
    }

    /// Records a new pending apply with the snapshots it would go back to and the edit of
    /// the configuration file it follows, if any.
    pub fn create(
        state: &StateDir,
        snapshots: &[(Family, PathBuf)],
        edit: Option<&FileEdit>,
    ) -> Result<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let token = format!("{}-{}", now.as_millis(), std::process::id());
        let mut text: String = snapshots
            .iter()
            .map(|(f, p)| format!("{} {}\n", f.tag(), p.display()))
            .collect();
        let pending = Pending {
            dir: confirm_dir(state),
            token,
        };
        if let Some(edit) = edit {
            text.push_str(&format!("{CONFIG} {}\n", edit.path.display()));
            file::write_private(&pending.path("after"), &edit.after)?;
            if let Some(before) = &edit.before {
                file::write_private(&pending.path("before"), before)?;
            }
        }
        file::write_private(&pending.path("pending"), &text)?;
        Ok(pending)
    }

    pub fn open(state: &StateDir, token: &str) -> Self {
        Pending {
            dir: confirm_dir(state),
            token: token.to_string(),
        }
    }

    /// The lines recorded at creation (read from whichever stage the file is in), each
    /// split into its tag and its path.
    fn records(&self) -> Result<Vec<(String, PathBuf)>> {
        let path = ["pending", "rollback"]
            .iter()
            .map(|s| self.path(s))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.path("pending"));
        let text = fs_err::read_to_string(path)?;
        Ok(text
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(tag, path)| (tag.to_string(), PathBuf::from(path)))
            .collect())
    }

    /// The snapshots recorded at creation.
    pub fn snapshots(&self) -> Result<Vec<(Family, PathBuf)>> {
        let records = self.records()?;
        Ok(records
            .into_iter()
            .filter_map(|(tag, path)| {
                let family = Family::ALL.into_iter().find(|f| f.tag() == tag)?;
                Some((family, path))
            })
            .collect())
    }

    /// The edit of the configuration file recorded at creation, if any.
    pub fn file_edit(&self) -> Result<Option<FileEdit>> {
        let records = self.records()?;
        let Some((_, path)) = records.into_iter().find(|(tag, _)| tag == CONFIG) else {
            return Ok(None);
        };
        let text = |stage: &str| -> Result<Option<String>> {
            file::read_if_exists(&self.path(stage))?
                .map(|bytes| String::from_utf8(bytes).map_err(|e| corrupt(&self.path(stage), e)))
                .transpose()
        };
        let after = text("after")?.ok_or_else(|| corrupt(&self.path("after"), "missing"))?;
        Ok(Some(FileEdit {
            path,
            before: text("before")?,
            after,
        }))
    }

    /// The watchdog's claim at the deadline; false when the operator confirmed first.
    pub fn claim_rollback(&self) -> bool {
        std::fs::rename(self.path("pending"), self.path("rollback")).is_ok()
    }

    pub fn finish_rollback(&self, outcome: &str) -> Result<()> {
        file::write_private(&self.path("outcome"), outcome)?;
        let _ = std::fs::remove_file(self.path("rollback"));
        self.forget_edit();
        Ok(())
    }

    /// Removes what only matters while undecided: the recorded edit of the configuration
    /// file, the deadline and the last good candidates not moved into place.
    pub fn forget_edit(&self) {
        for stage in ["before", "after", "deadline", "good-v4", "good-v6"] {
            let _ = std::fs::remove_file(self.path(stage));
        }
    }

    /// Starts the window: the deadline, in milliseconds since the Unix epoch.
    pub fn set_deadline(&self, deadline_ms: u128) -> Result<()> {
        file::write_private(&self.path("deadline"), &deadline_ms.to_string())
    }

    /// The deadline set by [`Pending::set_deadline`], if any.
    pub fn deadline(&self) -> Option<u128> {
        std::fs::read_to_string(self.path("deadline"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn candidate(&self, family: Family) -> PathBuf {
        self.path(&format!("good-{}", family.tag()))
    }

    /// Keeps `good` as the last good policy of `family` to be, once confirmed.
    pub fn record_last_good(&self, family: Family, good: &LastGood) -> Result<()> {
        file::write_private(&self.candidate(family), &good.to_string())
    }

    /// After the confirmation: the last good candidates become the last good policy (each
    /// moved by whoever comes first), and the undecided records go.
    pub fn settle_confirmed(&self, state: &StateDir) {
        for family in Family::ALL {
            let _ = std::fs::rename(self.candidate(family), state.last_good_path(family));
        }
        self.forget_edit();
    }

    /// Withdraws a record whose apply wrote nothing (it failed and undid itself): the
    /// watchdog, finding it gone, ends without a rollback.
    pub fn cancel(&self) {
        if std::fs::rename(self.path("pending"), self.path("cancelled")).is_ok() {
            let _ = std::fs::remove_file(self.path("cancelled"));
        }
        self.forget_edit();
    }

    pub fn status(&self) -> Status {
        if self.path("pending").exists() {
            Status::Waiting
        } else if self.path("confirmed").exists() {
            Status::Confirmed
        } else if let Ok(outcome) = std::fs::read_to_string(self.path("outcome")) {
            Status::RolledBack(outcome)
        } else {
            Status::RollingBack
        }
    }

    /// Removes what is left of this handshake once both sides are done.
    pub fn clean_up(&self) {
        for stage in ["confirmed", "outcome"] {
            let _ = std::fs::remove_file(self.path(stage));
        }
        self.forget_edit();
    }
}

/// Confirms every pending apply; returns how many there were.
pub fn confirm_all(state: &StateDir) -> usize {
    let dir = confirm_dir(state);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names
        .iter()
        .filter_map(|n| n.strip_prefix("pending-"))
        .filter(|token| {
            let pending = Pending::open(state, token);
            let won = std::fs::rename(pending.path("pending"), pending.path("confirmed")).is_ok();
            if won {
                pending.settle_confirmed(state);
            }
            won
        })
        .count()
}

/// The `outcome-<token>` files in `<state>/confirm`.
fn outcomes(state: &StateDir) -> Vec<PathBuf> {
    std::fs::read_dir(confirm_dir(state))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("outcome-"))
        .map(|e| e.path())
        .collect()
}

/// The newest rollback nobody waited for: when the watchdog finished it, and its outcome.
pub fn last_rollback(state: &StateDir) -> Option<(std::time::SystemTime, String)> {
    outcomes(state)
        .into_iter()
        .filter_map(|path| {
            let when = std::fs::metadata(&path).ok()?.modified().ok()?;
            Some((when, std::fs::read_to_string(&path).ok()?))
        })
        .max_by_key(|(when, _)| *when)
}

/// Forgets the rollbacks [`last_rollback`] reports, once a later apply has run.
pub fn clear_outcomes(state: &StateDir) {
    for path in outcomes(state) {
        let _ = std::fs::remove_file(path);
    }
}

/// Whether an apply made with `--confirm` is waiting for its confirmation.
pub fn has_pending(state: &StateDir) -> bool {
    std::fs::read_dir(confirm_dir(state))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("pending-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_is_recorded_with_the_handshake_and_undone_only_if_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join("state"));
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "new\n").unwrap();
        let edit = FileEdit {
            path: path.clone(),
            before: Some("old\n".into()),
            after: "new\n".into(),
        };
        let snapshot = (Family::V4, dir.path().join("snap v4"));
        let pending =
            Pending::create(&state, std::slice::from_ref(&snapshot), Some(&edit)).unwrap();
        assert_eq!(pending.snapshots().unwrap(), [snapshot]);
        assert_eq!(pending.file_edit().unwrap().as_ref(), Some(&edit));
        assert!(pending.claim_rollback());
        assert_eq!(pending.file_edit().unwrap().as_ref(), Some(&edit));
        assert!(edit.undo().unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        // Changed since (by hand, or undone already): left alone.
        assert!(!edit.undo().unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old\n");
        pending.finish_rollback("done").unwrap();
        assert_eq!(pending.status(), Status::RolledBack("done".into()));
        let created = FileEdit {
            before: None,
            ..edit
        };
        std::fs::write(&path, "new\n").unwrap();
        assert!(created.undo().unwrap());
        assert!(!path.exists());
        let plain = Pending::create(&state, &[], None).unwrap();
        assert_eq!(plain.file_edit().unwrap(), None);
    }

    fn good(applied_at: u64) -> LastGood {
        LastGood {
            applied_at,
            config: ("built-in".into(), "-".into()),
            template: ("built-in".into(), "-".into()),
            keep_chains: Vec::new(),
            fragment: crate::ruleset::parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n").unwrap(),
        }
    }

    #[test]
    fn the_last_good_candidate_is_kept_only_once_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join("state"));
        state.record_last_good(Family::V4, &good(1)).unwrap();
        let rolled = Pending::create(&state, &[], None).unwrap();
        rolled.record_last_good(Family::V4, &good(2)).unwrap();
        assert!(rolled.claim_rollback());
        rolled.finish_rollback("put back").unwrap();
        assert_eq!(state.last_good(Family::V4), Some(good(1)));
        assert_eq!(
            last_rollback(&state).map(|(_, o)| o).as_deref(),
            Some("put back")
        );
        clear_outcomes(&state);
        assert_eq!(last_rollback(&state), None);

        let kept = Pending::open(&state, &format!("{}-x", rolled.token));
        file::write_private(&kept.path("pending"), "").unwrap();
        kept.record_last_good(Family::V4, &good(3)).unwrap();
        assert_eq!(confirm_all(&state), 1);
        assert_eq!(state.last_good(Family::V4), Some(good(3)));
        assert!(!kept.candidate(Family::V4).exists());
    }
}
