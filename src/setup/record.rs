//! The install record, `<state dir>/install-record.toml` (0600, directory 0700): what the
//! first `install` found before changing anything — alternatives, ufw and firewalld,
//! which of our files already existed — with 0600 snapshots of both backends' rulesets in
//! `<state dir>/install/`. Written once, never overwritten; `uninstall` puts it back and
//! only then removes it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::system::file;
use crate::system::iptables::Backend;

/// An alternatives group as it was (`update-alternatives --display`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlternativeRecord {
    pub group: String,
    /// Automatic mode; otherwise manual, pointing at `value`.
    pub auto: bool,
    pub value: String,
}

/// ufw as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UfwRecord {
    /// `ENABLED=yes` in /etc/ufw/ufw.conf (what `ufw enable` sets; read at boot).
    pub enabled: bool,
    /// `ufw status`: active.
    pub active: bool,
    /// `systemctl is-enabled ufw.service`.
    pub unit_enabled: bool,
    /// `systemctl is-active ufw.service`.
    #[serde(default)]
    pub unit_active: bool,
}

/// A systemd service (firewalld) as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub enabled: bool,
    pub active: bool,
    pub masked: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The iptables backend iptables-docker was installed for: "legacy" or "nft".
    pub backend: Backend,
    /// Why that backend: "set by --backend", or what auto found (e.g. that
    /// iptables-legacy cannot work on this kernel).
    #[serde(default)]
    pub backend_reason: Option<String>,
    /// The backend the `iptables` command used before: "legacy", "nft", or absent.
    pub iptables_was: Option<Backend>,
    #[serde(default)]
    pub alternatives: Vec<AlternativeRecord>,
    /// Absent when ufw is not installed.
    pub ufw: Option<UfwRecord>,
    /// Absent when there is no firewalld.service.
    pub firewalld: Option<UnitRecord>,
    /// The files install created (they did not exist before it).
    #[serde(default)]
    pub created: Vec<PathBuf>,
    /// Snapshots of the legacy and nft rulesets as install found them.
    #[serde(default)]
    pub snapshots: Vec<PathBuf>,
}

/// Where the record and its snapshots live.
#[derive(Debug, Clone)]
pub struct RecordDir {
    pub root: PathBuf,
}

const HEADER: &str =
    "# Written once by the first `iptables-docker install`: the host as it was before.\n\
                      # `iptables-docker uninstall` puts this back, then removes this file.\n";

impl RecordDir {
    pub fn new(state_dir: &Path) -> Self {
        RecordDir {
            root: state_dir.to_path_buf(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.root.join("install-record.toml")
    }

    pub fn snapshot_dir(&self) -> PathBuf {
        self.root.join("install")
    }

    /// The record, if one was written.
    pub fn read(&self) -> Result<Option<Record>> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(Error::failed(format!(
                    "cannot read {}: {e}",
                    path.display()
                )))
            }
        };
        toml::from_str(&text).map(Some).map_err(|e| {
            Error::failed(format!("{} is damaged: {}", path.display(), e.message()))
                .hint("restore it from a backup, or follow the manual steps in uninstall.md")
        })
    }

    /// Writes the snapshots (name, text) and then the record naming them. On failure
    /// nothing is left behind.
    pub fn write(&self, mut record: Record, snapshots: &[(String, String)]) -> Result<Record> {
        if self.path().exists() {
            return Err(Error::failed(format!(
                "{} exists already: an install record is never overwritten",
                self.path().display()
            )));
        }
        let mut written = Vec::new();
        let result = (|| -> Result<()> {
            for (name, text) in snapshots {
                let path = self.snapshot_dir().join(name);
                let _ = std::fs::remove_file(&path); // a leftover of an earlier install
                file::write_private_new(&path, text)?;
                written.push(path);
            }
            record.snapshots = written.clone();
            let text = toml::to_string(&record)
                .map_err(|e| Error::failed(format!("cannot serialize the install record: {e}")))?;
            file::write_private_new(&self.path(), &format!("{HEADER}{text}"))
        })();
        match result {
            Ok(()) => Ok(record),
            Err(e) => {
                written.iter().for_each(|p| drop(std::fs::remove_file(p)));
                Err(e.context("cannot write the install record"))
            }
        }
    }

    /// Removes the record and its snapshots.
    pub fn remove(&self, record: &Record) -> Result<()> {
        for path in record.snapshots.iter().chain([&self.path()]) {
            file::remove_file(path)?;
        }
        let _ = std::fs::remove_dir(self.snapshot_dir());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let records = RecordDir::new(&dir.path().join("state"));
        assert_eq!(records.read().unwrap(), None);
        let record = Record {
            backend: Backend::Legacy,
            backend_reason: Some("auto: iptables-legacy works here (the default)".into()),
            iptables_was: Some(Backend::Nft),
            alternatives: vec![AlternativeRecord {
                group: "iptables".into(),
                auto: true,
                value: "/usr/sbin/iptables-nft".into(),
            }],
            ufw: Some(UfwRecord {
                enabled: true,
                active: true,
                unit_enabled: true,
                unit_active: true,
            }),
            firewalld: None,
            created: vec!["/usr/local/sbin/iptables-docker".into()],
            snapshots: vec![],
        };
        let snaps = [("nft-v4.rules".to_string(), "*filter\nCOMMIT\n".to_string())];
        let written = records.write(record.clone(), &snaps).unwrap();
        assert_eq!(
            written.snapshots,
            vec![records.snapshot_dir().join("nft-v4.rules")]
        );
        assert_eq!(records.read().unwrap(), Some(written.clone()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode(&records.path()), 0o600);
        assert_eq!(mode(&records.root), 0o700);
        // A second write fails and leaves the first record as it was.
        assert!(records.write(record, &[]).is_err());
        assert_eq!(records.read().unwrap(), Some(written.clone()));
        records.remove(&written).unwrap();
        assert_eq!(records.read().unwrap(), None);
        assert!(!records.snapshot_dir().exists());
    }
}
