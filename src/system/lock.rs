//! The locks: the xtables lock (`/run/xtables.lock`, or `$XTABLES_LOCKFILE`), held from
//! the first `iptables-save` to the last `iptables-restore`, so that Docker's `iptables
//! --wait` calls queue behind us and nothing they write in between is lost; and the
//! [`EditLock`] of the configuration file, so that `allow`/`delete` edits queue.
//!
//! Both are `flock(2)` (on the xtables lock as iptables takes it) through rustix's safe
//! wrapper (already in the dependency tree via tempfile): std's `File::try_lock` would
//! need Rust 1.89, above the rust-version (Debian 13's 1.85).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
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
        if lock_within(&file, &path, wait)? {
            return Ok(XtablesLock { _file: file, path });
        }
        Err(Error::environment(format!(
            "another program has held the xtables lock {} for {}s",
            path.display(),
            wait.as_secs()
        ))
        .hint(format!(
            "find it with `fuser -v {}`, or retry with --wait SECONDS",
            path.display()
        )))
    }
}

/// Takes an exclusive `flock(2)` on `file` (opened from `path`), retrying for up to
/// `wait`; false when another holder kept it all that time.
fn lock_within(file: &File, path: &Path, wait: Duration) -> Result<bool> {
    let start = Instant::now();
    loop {
        match flock(file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(true),
            Err(Errno::WOULDBLOCK) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(Errno::WOULDBLOCK) => return Ok(false),
            Err(e) => {
                return Err(Error::environment(format!(
                    "cannot lock {}: {e}",
                    path.display()
                )))
            }
        }
    }
}

/// The lock of an edit of the configuration file (`allow`, `delete`): held from reading
/// the file to writing it back and, with `--apply`, until the apply is done (confirmed or
/// rolled back), so that edits queue instead of overwriting each other. It is `flock(2)`
/// on the directory that holds the file: the file itself is replaced by a rename at each
/// write, so a lock on it would not outlive the first edit.
#[derive(Debug)]
pub struct EditLock {
    dir: File,
}

impl EditLock {
    /// Waits up to `wait` for the lock of the configuration file `config`; makes its
    /// directory when missing, as writing the file would.
    pub fn acquire(config: &Path, wait: Duration) -> Result<Self> {
        let dir = match config.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let cannot = |e: std::io::Error| {
            Error::failed(format!("cannot lock the directory {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(cannot)?;
        let file = File::open(dir).map_err(cannot)?;
        if lock_within(&file, dir, wait)? {
            return Ok(EditLock { dir: file });
        }
        Err(Error::failed(format!(
            "another edit of {} has held its lock (on {}) for {}s",
            config.display(),
            dir.display(),
            wait.as_secs()
        ))
        .hint(
            "an `--apply --confirm` keeps it until it is confirmed or rolled back: \
             `iptables-docker confirm`, or wait and retry (--wait SECONDS); nothing was changed",
        ))
    }

    /// Lets the processes started from now on hold the lock too (the descriptor is kept
    /// across exec): the `--confirm` watchdog then keeps it until it has confirmed or
    /// rolled back, even when this process is gone with its terminal.
    pub fn share_with_children(&self) -> Result<()> {
        rustix::io::fcntl_setfd(&self.dir, rustix::io::FdFlags::empty())
            .map_err(|e| Error::failed(format!("cannot share the edit lock: {e}")))
    }
}
