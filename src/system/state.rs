//! The state directory (`/var/lib/iptables-docker`, 0700): rotated 0600 snapshots of the
//! rulesets found before each apply, and the fingerprints of what the last apply loaded.

use std::os::unix::fs::MetadataExt;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::family::Family;
use crate::pipeline::Applied;
use crate::system::file;

pub const DEFAULT_DIR: &str = "/var/lib/iptables-docker";

/// How many snapshots are kept per family.
const KEEP_BACKUPS: usize = 10;

#[derive(Debug, Clone)]
pub struct StateDir {
    pub root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> Self {
        StateDir {
            root: root.to_path_buf(),
        }
    }

    /// Fails when the state directory exists but is not root's alone: snapshots in it are
    /// what a rollback loads.
    pub fn check_private(&self) -> Result<()> {
        match std::fs::metadata(&self.root) {
            Ok(meta) if meta.uid() != 0 || meta.mode() & 0o022 != 0 => Err(Error::failed(format!(
                "refusing the state directory {}: owned by uid {} with mode {:04o}; \
                     it must be root's and writable by root alone",
                self.root.display(),
                meta.uid(),
                meta.mode() & 0o7777
            ))
            .hint(format!(
                "chown root:root {0} && chmod 700 {0}",
                self.root.display()
            ))),
            _ => Ok(()),
        }
    }

    fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }

    fn applied_path(&self, family: Family) -> PathBuf {
        self.root.join(format!("applied-{}", family.tag()))
    }

    /// Saves the ruleset found before an apply and drops the oldest beyond the limit.
    pub fn write_backup(&self, family: Family, text: &str) -> Result<PathBuf> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let name = format!(
            "{:012}.{:09}-{}.rules",
            now.as_secs(),
            now.subsec_nanos(),
            family.tag()
        );
        let path = self.backups().join(name);
        file::write_private(&path, text)?;
        let mut mine = self.list_backups(Some(family));
        while mine.len() > KEEP_BACKUPS {
            fs_err::remove_file(mine.remove(0))?;
        }
        Ok(path)
    }

    /// Snapshots, oldest first.
    pub fn list_backups(&self, family: Option<Family>) -> Vec<PathBuf> {
        let suffix = family.map(|f| format!("-{}.rules", f.tag()));
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.backups())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.ends_with(".rules") && suffix.as_ref().is_none_or(|s| name.ends_with(s))
            })
            .collect();
        found.sort();
        found
    }

    /// What the last apply recorded for this family (empty if nothing or unreadable).
    pub fn applied(&self, family: Family) -> Applied {
        std::fs::read_to_string(self.applied_path(family))
            .map(|t| Applied::parse(&t))
            .unwrap_or_default()
    }

    pub fn record_applied(&self, family: Family, applied: &Applied) -> Result<()> {
        file::write_private(&self.applied_path(family), &applied.to_string())
    }
}
