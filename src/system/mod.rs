//! The thin layer that touches the host: processes, files, locks. Everything here is
//! small on purpose; the decisions are made by the pure modules.

pub mod host;
pub mod iptables;
pub mod lock;
pub mod pending;
pub mod state;
pub mod trust;

use crate::error::{Error, Kind, Result};

/// Fails unless running as root, naming the command that needs it.
pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(
            Error::new(Kind::NotRoot, format!("{what} must run as root"))
                .hint(format!("run it with sudo: sudo iptables-docker {what}")),
        )
    }
}

/// This binary's version and file identity (device, inode, size, mtime): what tells a
/// rebuilt or upgraded binary apart from the one that made the last apply.
pub fn binary_identity() -> String {
    use std::os::unix::fs::MetadataExt;
    let file = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| {
            format!(
                "{}:{}:{}:{}",
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime_nsec() + m.mtime() * 1_000_000_000
            )
        })
        .unwrap_or_default();
    format!("{} {file}", env!("CARGO_PKG_VERSION"))
}
