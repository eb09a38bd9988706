//! The xtables lock (`/run/xtables.lock`, or `$XTABLES_LOCKFILE`): held from the first
//! `iptables-save` to the last `iptables-restore`, so that Docker's `iptables --wait`
//! calls queue behind us and nothing they write in between is lost.
//!
//! The lock is `flock(2)` on that file, as iptables takes it, through rustix's safe
//! wrapper (already in the dependency tree via tempfile): std's `File::try_lock` would
//! need Rust 1.89, above the rust-version (Debian 13's 1.85).

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

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
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(XtablesLock { _file: file, path }),
                Err(Errno::WOULDBLOCK) if start.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Errno::WOULDBLOCK) => {
                    return Err(Error::environment(format!(
                        "another program has held the xtables lock {} for {}s",
                        path.display(),
                        wait.as_secs()
                    ))
                    .hint(format!(
                        "find it with `fuser -v {}`, or retry with --wait SECONDS",
                        path.display()
                    )))
                }
                Err(e) => {
                    return Err(Error::environment(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )))
                }
            }
        }
    }
}
