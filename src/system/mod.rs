//! The thin layer that touches the host: processes, files, locks. Everything here is
//! small on purpose; the decisions are made by the pure modules.

pub mod file;
pub mod host;
pub mod iptables;
pub mod lock;
pub mod nft_generation;
pub mod pending;
pub mod probe;
pub mod process;
pub mod state;
pub mod syslog;
pub mod table_image;
pub mod trust;

use crate::error::{Error, Kind, Result};

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes `cmd` start in a new session (`setsid`), without a controlling terminal, so that
/// it survives the operator's terminal going away (SIGHUP).
pub fn new_session_on_exec(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only setsid, which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}

/// Restores the default SIGPIPE disposition, so that a closed pipe
/// (`iptables-docker plan | head`) ends the program quietly, as other Unix tools do.
pub fn default_sigpipe() {
    // SAFETY: resetting a signal disposition to its default; called before any thread
    // starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether stdout and stderr are the journal: `JOURNAL_STREAM` ("DEVICE:INODE", set by
/// systemd, systemd.exec(5)) names the stream, and the descriptor is that stream.
pub fn journal_streams() -> (bool, bool) {
    let Some(named) = std::env::var("JOURNAL_STREAM").ok() else {
        return (false, false);
    };
    let is = |fd: std::os::fd::BorrowedFd<'_>| {
        rustix::fs::fstat(fd).is_ok_and(|st| format!("{}:{}", st.st_dev, st.st_ino) == named)
    };
    use std::os::fd::AsFd;
    (is(std::io::stdout().as_fd()), is(std::io::stderr().as_fd()))
}

/// Fails unless running as root, naming the command that needs it.
pub fn require_root(what: &str) -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        Err(
            Error::new(Kind::NotRoot, format!("{what} must run as root"))
                .hint(format!("run it with sudo: sudo iptables-docker {what}")),
        )
    }
}

/// The names (`/proc/PID/comm`, at most 15 characters) of the processes running now, for
/// telling whether a known rule owner (fail2ban, libvirt, …) runs.
pub fn running_processes() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect();
    names.sort();
    names.dedup();
    names
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
