//! The one error type of iptables-docker: a sentence for the sysadmin, the context it
//! happened in, what to do about it, and the exit code it maps to.

use std::fmt;

/// What kind of failure this is; each kind has its own documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed; the running firewall was left (or put back) as it was.
    Failed,
    /// The configuration or policy template is invalid; nothing was applied.
    Config,
    /// The host is not fit to run the command (not root, a binary is missing, lock busy).
    Environment,
    /// Applying would cut off the operator's own SSH connection (override with --force).
    Lockout,
    /// A rollback failed: the firewall is in an unknown state and needs a human.
    RollbackFailed,
    /// `--confirm` was not confirmed in time; the previous ruleset was put back.
    NotConfirmed,
    /// `status`: the running ruleset is not what the policy would load.
    Drift,
}

impl Kind {
    /// The process exit code for this kind (documented in README.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Failed => 1,
            Kind::Config => 3,
            Kind::Environment => 4,
            Kind::Lockout => 5,
            Kind::RollbackFailed => 6,
            Kind::NotConfirmed => 7,
            Kind::Drift => 8,
        }
    }
}

#[derive(Debug)]
pub struct Error {
    kind: Kind,
    message: String,
    hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            hint: None,
        }
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

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        // fs-err already puts the path and the operation into the message.
        Error::failed(err.to_string())
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
