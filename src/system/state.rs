//! The state directory (`/var/lib/iptables-docker`, 0700): rotated 0600 snapshots of the
//! rulesets found before each apply, the fingerprints of what the last apply loaded, the
//! last good policy per family (`last-good-v4`/`-v6`, [`LastGood`]), on iptables-nft the
//! nftables generation the last apply left (`nft-generation`) and, while `start` runs on
//! a fallback policy, why (`degraded`). Every file 0600.

use std::os::unix::fs::MetadataExt;

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::fallback::LastGood;
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

    /// A new snapshot's name: the UTC time to the microsecond, ISO 8601 basic format
    /// (`20261130T190405.123456Z`: sorts by time, no `:` for shells and scp). The files of
    /// one snapshot, one per family, share it.
    pub fn new_snapshot_name() -> String {
        utc_iso8601(SystemTime::now(), true)
    }

    /// Saves the ruleset found before an apply as `<backups>/<snapshot>-<family>.rules` and
    /// drops the oldest beyond the limit.
    pub fn write_backup(&self, snapshot: &str, family: Family, text: &str) -> Result<PathBuf> {
        let name = format!("{snapshot}-{}.rules", family.tag());
        let path = self.backups().join(name);
        file::write_private(&path, text)?;
        let mut mine = self.list_backups(Some(family));
        while mine.len() > KEEP_BACKUPS {
            fs_err::remove_file(mine.remove(0))?;
        }
        Ok(path)
    }

    /// The snapshots, oldest first: each name with its files, one per family.
    pub fn snapshots(&self) -> Vec<(String, Vec<(Family, PathBuf)>)> {
        let mut out: Vec<(String, Vec<(Family, PathBuf)>)> = Vec::new();
        for path in self.list_backups(None) {
            let file = path.file_name().unwrap_or_default().to_string_lossy();
            let Some((name, family)) = Family::ALL.into_iter().find_map(|f| {
                let name = file.strip_suffix(&format!("-{}.rules", f.tag()))?;
                Some((name.to_string(), f))
            }) else {
                continue;
            };
            match out.last_mut() {
                Some((last, files)) if *last == name => files.push((family, path)),
                _ => out.push((name, vec![(family, path)])),
            }
        }
        out
    }

    /// Snapshot files, oldest first.
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

    /// When the last apply (start, reload or stop that changed or checked the ruleset)
    /// finished: the newest of the apply records' modification times.
    pub fn last_apply(&self) -> Option<SystemTime> {
        Family::ALL
            .iter()
            .filter_map(|f| {
                std::fs::metadata(self.applied_path(*f))
                    .ok()?
                    .modified()
                    .ok()
            })
            .max()
    }

    /// What the last apply recorded for this family (empty if nothing or unreadable).
    pub fn applied(&self, family: Family) -> Applied {
        std::fs::read_to_string(self.applied_path(family))
            .map(|t| Applied::parse(&t))
            .unwrap_or_default()
    }

    /// `<state>/last-good-v4` or `-v6`.
    pub fn last_good_path(&self, family: Family) -> PathBuf {
        self.root.join(format!("last-good-{}", family.tag()))
    }

    /// The last good policy of `family`; `None` when there is none or it is damaged.
    pub fn last_good(&self, family: Family) -> Option<LastGood> {
        let text = std::fs::read_to_string(self.last_good_path(family)).ok()?;
        LastGood::parse(&text)
    }

    pub fn record_last_good(&self, family: Family, good: &LastGood) -> Result<()> {
        file::write_private(&self.last_good_path(family), &good.to_string())
    }

    fn degraded_path(&self) -> PathBuf {
        self.root.join("degraded")
    }

    /// Why a fallback policy is running (the error and which policy), if one is.
    pub fn degraded(&self) -> Option<String> {
        std::fs::read_to_string(self.degraded_path()).ok()
    }

    /// Records (`Some`) or clears (`None`) that a fallback policy is running.
    pub fn set_degraded(&self, why: Option<&str>) -> Result<()> {
        write_or_remove(&self.degraded_path(), why)
    }

    fn nft_generation_path(&self) -> PathBuf {
        self.root.join("nft-generation")
    }

    /// What the last apply on iptables-nft left: its inputs' fingerprint and the nftables
    /// generation then (`"INPUTS BOOT NETNS ID"`, `crate::system::nft_generation`).
    pub fn nft_generation(&self) -> Option<String> {
        std::fs::read_to_string(self.nft_generation_path()).ok()
    }

    /// Records (`Some`) or forgets (`None`) what the last apply on iptables-nft left.
    pub fn record_nft_generation(&self, left: Option<&str>) -> Result<()> {
        write_or_remove(&self.nft_generation_path(), left)
    }

    pub fn record_applied(&self, family: Family, applied: &Applied) -> Result<()> {
        file::write_private(&self.applied_path(family), &applied.to_toml())
    }

    fn removed_chains_path(&self, family: Family) -> PathBuf {
        self.root.join(format!("removed-chains-{}", family.tag()))
    }

    /// Records the non-Docker chains (`table chain`, one a line) an apply that changed
    /// the ruleset removed, for `status` to name.
    pub fn record_removed_chains(&self, family: Family, chains: &[String]) -> Result<()> {
        let text: String = chains.iter().map(|c| format!("{c}\n")).collect();
        file::write_private(&self.removed_chains_path(family), &text)
    }

    /// What [`Self::record_removed_chains`] recorded last (empty if nothing).
    pub fn removed_chains(&self, family: Family) -> Vec<String> {
        std::fs::read_to_string(self.removed_chains_path(family))
            .map(|t| t.lines().map(ToString::to_string).collect())
            .unwrap_or_default()
    }
}

/// Writes `text` to `path` (0600), or removes `path` (gone already is fine) for `None`.
fn write_or_remove(path: &Path, text: Option<&str>) -> Result<()> {
    match text {
        Some(text) => file::write_private(path, text),
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        },
    }
}

/// `time` in UTC, ISO 8601: `2026-11-30T19:04:05Z`, or with `basic` the compact form with
/// microseconds used in file names, `20261130T190405.123456Z`. Civil date from days since
/// the epoch: H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (`civil_from_days`).
pub fn utc_iso8601(time: SystemTime, basic: bool) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    if basic {
        format!(
            "{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}.{:06}Z",
            since.subsec_micros()
        )
    } else {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_times_in_iso_8601() {
        let t = UNIX_EPOCH + Duration::new(1_796_063_333, 732_831_448);
        assert_eq!(utc_iso8601(t, false), "2026-11-30T18:28:53Z");
        assert_eq!(utc_iso8601(t, true), "20261130T182853.732831Z");
        assert_eq!(utc_iso8601(UNIX_EPOCH, false), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_iso8601(leap, false), "2000-02-29T00:00:00Z");
    }
}
