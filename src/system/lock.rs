//! The xtables lock (`/run/xtables.lock`, or `$XTABLES_LOCKFILE`): held from the first
//! `iptables-save` to the last `iptables-restore`, so that Docker's `iptables --wait`
//! calls queue behind us and nothing they write in between is lost.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub const DEFAULT_PATH: &str = "/run/xtables.lock";

/// The private lock file our `iptables-save`/`-restore` children are pointed at
/// (`XTABLES_LOCKFILE`) while we hold the real one; removed when dropped.
#[derive(Debug)]
pub struct ChildLock(tempfile::NamedTempFile);

impl ChildLock {
    pub fn new() -> Result<Self> {
        tempfile::NamedTempFile::new().map(ChildLock).map_err(|e| {
            Error::environment(format!("cannot create a private lock file: {e}"))
                .hint("check that $TMPDIR (or /tmp) exists and is writable by root")
        })
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

/// The lock, held until dropped.
#[derive(Debug)]
pub struct XtablesLock {
    _file: File,
    pub path: PathBuf,
}

/// The lock file iptables itself uses in this environment.
pub fn lock_path() -> PathBuf {
    std::env::var_os("XTABLES_LOCKFILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

impl XtablesLock {
    /// Waits up to `wait` for the lock.
    pub fn acquire(wait: Duration) -> Result<Self> {
        let path = lock_path();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::environment(format!(
                    "cannot open the xtables lock {}: {e}",
                    path.display()
                ))
            })?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(XtablesLock { _file: file, path }),
                Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::environment(format!(
                        "another program has held the xtables lock {} for {}s",
                        path.display(),
                        wait.as_secs()
                    ))
                    .hint(
                        "find it with `fuser -v /run/xtables.lock`, or retry with --wait SECONDS",
                    ))
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::environment(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
}
