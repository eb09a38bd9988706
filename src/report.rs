//! The one reporter: every line iptables-docker logs about what it does goes through here,
//! at a syslog level (RFC 5424: 3 error, 4 warning, 6 info, 7 debug). `--quiet` keeps
//! errors only, the default adds info (a line per action), `--verbose` adds debug (a line
//! per table). Under systemd, when the stream is the journal (`JOURNAL_STREAM` names it,
//! systemd.exec(5)), each line starts with its `<N>` level prefix, which journald reads as
//! the priority and strips (sd-daemon(3)); on a terminal the line is plain.
//!
//! What a command prints as its answer (`status`, `plan`, `snapshots`, the confirmation
//! prompt) is output, not a log line: those commands print it themselves.

#![forbid(unsafe_code)]

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// How important a line is (syslog's numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 3,
    Info = 6,
    Debug = 7,
}

static THRESHOLD: AtomicU8 = AtomicU8::new(Level::Info as u8);
static STDOUT_JOURNAL: AtomicBool = AtomicBool::new(false);
static STDERR_JOURNAL: AtomicBool = AtomicBool::new(false);

/// Sets the level from `--quiet` / `--verbose` and whether stdout and stderr are the
/// journal (from [`crate::system::journal_streams`]).
pub fn init(quiet: bool, verbose: bool, journal: (bool, bool)) {
    let threshold = match (quiet, verbose) {
        (true, _) => Level::Error,
        (false, false) => Level::Info,
        (false, true) => Level::Debug,
    };
    THRESHOLD.store(threshold as u8, Ordering::Relaxed);
    STDOUT_JOURNAL.store(journal.0, Ordering::Relaxed);
    STDERR_JOURNAL.store(journal.1, Ordering::Relaxed);
}

/// Whether lines at `level` are shown.
pub fn enabled(level: Level) -> bool {
    level as u8 <= THRESHOLD.load(Ordering::Relaxed)
}

/// The line as written: with the `<N>` prefix when the stream is the journal.
fn line(level: Level, journal: bool, msg: impl Display) -> String {
    if journal {
        format!("<{}>{msg}", level as u8)
    } else {
        msg.to_string()
    }
}

/// A line per action, on stdout (not with `--quiet`).
pub fn info(msg: impl Display) {
    if enabled(Level::Info) {
        println!(
            "{}",
            line(Level::Info, STDOUT_JOURNAL.load(Ordering::Relaxed), msg)
        );
    }
}

/// Detail, on stdout (with `--verbose`).
pub fn debug(msg: impl Display) {
    if enabled(Level::Debug) {
        println!(
            "{}",
            line(Level::Debug, STDOUT_JOURNAL.load(Ordering::Relaxed), msg)
        );
    }
}

/// The error a command ends with, on stderr (always).
pub fn error(msg: impl Display) {
    eprintln!(
        "{}",
        line(Level::Error, STDERR_JOURNAL.load(Ordering::Relaxed), msg)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_journal_prefixes() {
        assert_eq!(line(Level::Info, true, "x"), "<6>x");
        assert_eq!(line(Level::Error, true, "e"), "<3>e");
        assert_eq!(line(Level::Debug, false, "d"), "d");
        init(true, false, (false, false));
        assert!(enabled(Level::Error) && !enabled(Level::Info));
        init(false, true, (false, false));
        assert!(enabled(Level::Debug));
        init(false, false, (false, false));
        assert!(enabled(Level::Info) && !enabled(Level::Debug));
    }
}
