//! The confirm-or-rollback handshake, as files in `<state>/confirm/`. An apply made with
//! `--confirm` leaves `pending-<token>` (listing the snapshots to go back to); whoever
//! renames it first wins: `iptables-docker confirm` to `confirmed-<token>`, the watchdog
//! at the deadline to `rollback-<token>`. The watchdog then writes `outcome-<token>`.

use std::path::PathBuf;

use crate::error::Result;
use crate::family::Family;
use crate::system::file;
use crate::system::state::StateDir;

#[derive(Debug, Clone)]
pub struct Pending {
    dir: PathBuf,
    pub token: String,
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

fn confirm_dir(state: &StateDir) -> PathBuf {
    state.root.join("confirm")
}

impl Pending {
    fn path(&self, stage: &str) -> PathBuf {
        self.dir.join(format!("{stage}-{}", self.token))
    }

    /// Records a new pending apply with the snapshots it would go back to.
    pub fn create(state: &StateDir, snapshots: &[(Family, PathBuf)]) -> Result<Self> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let token = format!("{}-{}", now.as_millis(), std::process::id());
        let text: String = snapshots
            .iter()
            .map(|(f, p)| format!("{} {}\n", f.tag(), p.display()))
            .collect();
        let pending = Pending {
            dir: confirm_dir(state),
            token,
        };
        file::write_private(&pending.path("pending"), &text)?;
        Ok(pending)
    }

    pub fn open(state: &StateDir, token: &str) -> Self {
        Pending {
            dir: confirm_dir(state),
            token: token.to_string(),
        }
    }

    /// The snapshots recorded at creation (read from whichever stage the file is in).
    pub fn snapshots(&self) -> Result<Vec<(Family, PathBuf)>> {
        let path = ["pending", "rollback"]
            .iter()
            .map(|s| self.path(s))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.path("pending"));
        let text = fs_err::read_to_string(path)?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let (tag, path) = l.split_once(' ')?;
                let family = Family::ALL.into_iter().find(|f| f.tag() == tag)?;
                Some((family, PathBuf::from(path)))
            })
            .collect())
    }

    /// The watchdog's claim at the deadline; false when the operator confirmed first.
    pub fn claim_rollback(&self) -> bool {
        std::fs::rename(self.path("pending"), self.path("rollback")).is_ok()
    }

    pub fn finish_rollback(&self, outcome: &str) -> Result<()> {
        file::write_private(&self.path("outcome"), outcome)?;
        let _ = std::fs::remove_file(self.path("rollback"));
        Ok(())
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
            std::fs::rename(pending.path("pending"), pending.path("confirmed")).is_ok()
        })
        .count()
}

/// Whether an apply made with `--confirm` is waiting for its confirmation.
pub fn has_pending(state: &StateDir) -> bool {
    std::fs::read_dir(confirm_dir(state))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("pending-"))
}
