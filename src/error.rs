//! The one error type of iptables-docker: a sentence for the sysadmin, the context it
//! happened in, what to do about it, and the exit code it maps to.

#![forbid(unsafe_code)]

use std::fmt;

/// What kind of failure this is; each kind has its own documented exit code.
///
/// `start`, `stop` and `reload` are what systemd runs, so where the LSB init-script
/// conventions have a meaning (Linux Standard Base Core 5.0, "Init Script Actions") the code
/// is the LSB one, and `systemctl status` names it (`status=6/NOTCONFIGURED`). Outcomes the
/// LSB has no code for use the range it leaves to applications, 150–199. `status` follows
/// the LSB status codes: 0 on, 3 not running (the host is open), 4 unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed; the running firewall was left (or put back) as it was. LSB 1.
    Failed,
    /// The command line cannot be used (a rule SPEC with a word that is not allowed there;
    /// clap reports its own usage errors with the same code). LSB 2, "invalid or excess
    /// argument(s)".
    Usage,
    /// Not run as root. LSB 4, "user had insufficient privilege" (`NOPERMISSION`).
    NotRoot,
    /// A program it needs is missing (an iptables binary, update-alternatives). LSB 5,
    /// "program is not installed" (`NOTINSTALLED`).
    NotInstalled,
    /// The configuration or policy template is invalid; nothing was applied. LSB 6,
    /// "program is not configured" (`NOTCONFIGURED`).
    Config,
    /// `status`: the host policy is not loaded, the host is open. LSB status 3, "program is
    /// not running".
    Off,
    /// The host is not fit to run the command for a reason the LSB has no code for (the
    /// xtables lock held by another program, systemd not PID 1). Ours: 150.
    Environment,
    /// Applying would cut off the operator's own SSH connection (override with --force).
    /// Ours: 151.
    Lockout,
    /// `--confirm` was not confirmed in time; the previous ruleset was put back. Ours: 152.
    NotConfirmed,
    /// A rollback failed: the firewall is in an unknown state and needs a human. Ours: 153.
    RollbackFailed,
    /// `status`: the running ruleset is not what the policy would load. Ours: 154.
    Drift,
    /// `status`: rules live in both the iptables-legacy and the iptables-nft tables, so
    /// packets traverse two rulesets. Ours: 155.
    Split,
}

impl Kind {
    /// The process exit code for this kind (documented in README.md, `--help` and the man
    /// page, from [`EXIT_CODES`]).
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Usage => 2,
            Kind::Off => 3,
            Kind::NotRoot => 4,
            Kind::NotInstalled => 5,
            Kind::Config => 6,
            Kind::Environment => 150,
            Kind::Lockout => 151,
            Kind::NotConfirmed => 152,
            Kind::RollbackFailed => 153,
            Kind::Drift => 154,
            Kind::Split => 155,
        }
    }
}

/// Every exit code with its meaning, in order: the one table README.md, `--help` and the
/// man page show (the README copy is checked against it by `tests/docs.rs`).
pub const EXIT_CODES: &[(i32, &str)] = &[
    (
        0,
        "success; `status`: the policy is on and matches the configuration",
    ),
    (
        1,
        "failed; the running firewall was left, or put back, as it was (LSB: generic error)",
    ),
    (2, "usage error: bad command line (LSB: invalid argument)"),
    (
        3,
        "`status`: the firewall is off, the host is open (LSB: not running)",
    ),
    (4, "not run as root (LSB: insufficient privilege)"),
    (
        5,
        "a program it needs is missing, e.g. iptables-legacy (LSB: not installed)",
    ),
    (
        6,
        "configuration or template invalid; nothing was applied (LSB: not configured)",
    ),
    (
        150,
        "host not fit: the xtables lock held by another program, systemd not PID 1",
    ),
    (
        151,
        "refused: the policy would lock out the SSH session this runs over (--force)",
    ),
    (
        152,
        "--confirm was not confirmed in time; the previous ruleset was put back",
    ),
    (
        153,
        "a rollback failed: the firewall state is unknown (see uninstall.md)",
    ),
    (154, "`status`: the running ruleset differs from the policy"),
    (
        155,
        "`status`: rules in both iptables-legacy and iptables-nft",
    ),
];

/// The sentence (`Display`: the message, then `  hint: …`), its [`Kind`], and the error
/// it came from, if any (`std::error::Error::source`, for whoever wants the chain; the
/// message already says what it said).
#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
            source: None,
        }
    }

    /// Keeps the error this one came from.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(Kind::Failed, message)
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(Kind::Config, message)
    }

    pub fn environment(message: impl Into<String>) -> Self {
        Self::new(Kind::Environment, message)
    }

    /// A program this needs is not installed (LSB 5).
    pub fn not_installed(message: impl Into<String>) -> Self {
        Self::new(Kind::NotInstalled, message)
    }

    /// Adds what the sysadmin should do about it.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with where it happened ("context: message").
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        // fs-err already puts the path and the operation into the message.
        Error::failed(err.to_string()).with_source(err)
    }
}

/// Adds context to any fallible result, converting it into our [`Error`].
pub trait Context<T> {
    fn context(self, context: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_distinct_documented_code() {
        let kinds = [
            Kind::Failed,
            Kind::Usage,
            Kind::NotRoot,
            Kind::NotInstalled,
            Kind::Config,
            Kind::Off,
            Kind::Environment,
            Kind::Lockout,
            Kind::NotConfirmed,
            Kind::RollbackFailed,
            Kind::Drift,
            Kind::Split,
        ];
        let mut codes: Vec<i32> = kinds.iter().map(|k| k.exit_code()).collect();
        for code in &codes {
            assert!(
                EXIT_CODES.iter().any(|(c, _)| c == code),
                "{code} undocumented"
            );
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        // Codes systemd shows by name keep their LSB meaning.
        assert_eq!(Kind::Config.exit_code(), 6);
        assert_eq!(Kind::NotRoot.exit_code(), 4);
        assert_eq!(Kind::NotInstalled.exit_code(), 5);
    }
}
