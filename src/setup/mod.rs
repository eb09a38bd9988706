//! Host setup: what `install` and `uninstall` share. The install record of the host as it
//! was ([`record`]), ufw and firewalld ([`firewalls`]), the `iptables`/`ip6tables`
//! alternatives, moving the rules between backends ([`rules`]), the files install owns
//! ([`files`]), and the undo journal: a [`Transaction`] journals each change before it is
//! made and, when a later step fails, takes every change back, newest first.

#![forbid(unsafe_code)]

pub mod files;
pub mod firewalls;
pub mod record;
pub mod rules;

use crate::cli::Global;
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::ruleset::ChainPolicy;
use crate::system::iptables::Backend;
use crate::system::{file, host};

use files::UNIT_NAME;
use record::{AlternativeRecord, Record, RecordDir, UfwRecord, UnitRecord};

/// The alternatives groups install switches.
pub const GROUPS: [&str; 2] = ["iptables", "ip6tables"];

/// What both install and uninstall need: a usable command line, root, systemd.
pub fn preflight(global: &Global, verb: &str) -> Result<()> {
    if global.config.is_some() {
        return Err(Error::config(format!(
            "{verb} always uses {}; --config is for start, stop, reload, status and plan",
            crate::config::DEFAULT_PATH
        ))
        .hint(format!(
            "copy your file to {} (install keeps an existing file) and run {verb} again",
            crate::config::DEFAULT_PATH
        )));
    }
    crate::system::require_root(verb)?;
    if !host::systemd_booted() {
        return Err(Error::environment(format!(
            "systemd is not running as PID 1 (no /run/systemd/system): {verb} manages a systemd unit"
        ))
        .hint("on a host without systemd, run `iptables-docker start` from your boot scripts instead"));
    }
    Ok(())
}

/// Points an alternatives group back to what was recorded; says so when it changed it.
pub fn restore_alternative(want: &AlternativeRecord) -> Result<Option<String>> {
    let Some(now) = host::alternative(&want.group) else {
        return Ok(None);
    };
    if now.auto == want.auto && (want.auto || now.current.as_deref() == Some(&want.value)) {
        return Ok(None);
    }
    if want.auto {
        host::auto_alternative(&want.group)?;
        Ok(Some(format!("{} back in automatic mode", want.group)))
    } else {
        host::set_alternative(&want.group, &want.value)?;
        Ok(Some(format!(
            "{} points to {} again",
            want.group, want.value
        )))
    }
}

/// One change made to the host, and how to take it back.
pub enum Undo {
    /// The record; and the whole state directory when the record created it.
    Record(Record, bool),
    Ufw(UfwRecord),
    Unit(&'static str, UnitRecord),
    Forward(Family, Backend, ChainPolicy),
    Rules(rules::Move),
    Alternative(AlternativeRecord),
    File {
        path: std::path::PathBuf,
        before: Option<Vec<u8>>,
        mode: u32,
        /// The highest directory writing it created (/etc/iptables-docker).
        created_dir: Option<std::path::PathBuf>,
    },
    Manifest(std::path::PathBuf, Option<Vec<u8>>),
    /// After the files are back: reload systemd, restart the old service if it ran.
    DaemonReload {
        restart: bool,
    },
    /// Before the files go back: the service as it was.
    Service {
        was_enabled: bool,
        was_active: bool,
    },
}

impl Undo {
    /// What putting it back means, for a message.
    fn describe(&self) -> String {
        match self {
            Undo::Record(..) => "removing the install record".into(),
            Undo::Ufw(_) => "putting ufw back".into(),
            Undo::Unit(unit, _) => format!("putting {unit} back"),
            Undo::Forward(family, ..) => format!("resetting the {family} FORWARD policy"),
            Undo::Rules(m) => format!(
                "moving the rules back from iptables-{} to iptables-{}",
                m.to.name(),
                m.from.name()
            ),
            Undo::Alternative(a) => format!("pointing {} back to {}", a.group, a.value),
            Undo::File { path, .. } | Undo::Manifest(path, _) => {
                format!("putting {} back", path.display())
            }
            Undo::DaemonReload { .. } => "reloading systemd".into(),
            Undo::Service { .. } => format!("stopping and disabling {UNIT_NAME}"),
        }
    }

    fn run(&self, records: &RecordDir) -> Result<()> {
        match self {
            Undo::Record(r, created_dir) => {
                records.remove(r)?;
                if *created_dir {
                    fs_err::remove_dir_all(&records.root)?;
                }
                Ok(())
            }
            Undo::Ufw(want) => match firewalls::ufw_state()? {
                Some(now) => firewalls::ufw_restore(&now, want).map(drop),
                None => Ok(()),
            },
            Undo::Unit(unit, want) => match firewalls::unit_record(unit)? {
                Some(now) => firewalls::unit_restore(unit, &now, want).map(drop),
                None => Ok(()),
            },
            Undo::Forward(family, backend, policy) => {
                rules::set_forward_policy(*family, *backend, *policy)
            }
            Undo::Rules(moved) => moved.undo(),
            Undo::Alternative(a) => restore_alternative(a).map(drop),
            Undo::File {
                path,
                before,
                mode,
                created_dir,
            } => files::put_back(path, before.as_deref(), *mode, created_dir.as_deref()),
            Undo::Manifest(path, before) => match before {
                Some(bytes) => file::write_private(path, &String::from_utf8_lossy(bytes)),
                None => file::remove_file(path).map(drop),
            },
            Undo::DaemonReload { restart } => {
                host::systemctl(&["daemon-reload"])?;
                if *restart {
                    host::systemctl(&["restart", UNIT_NAME])?;
                }
                Ok(())
            }
            Undo::Service {
                was_enabled,
                was_active,
            } => {
                if !was_active {
                    host::systemctl(&["stop", UNIT_NAME])?;
                    let _ = host::systemctl(&["reset-failed", UNIT_NAME]);
                }
                if !was_enabled {
                    host::systemctl(&["disable", "--quiet", UNIT_NAME])?;
                }
                Ok(())
            }
        }
    }
}

/// The changes one `install` made so far: each journalled (with how to take it back)
/// before it is made, and whether anything on the host changed at all.
#[derive(Default)]
pub struct Transaction {
    journal: Vec<Undo>,
    changed: bool,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Journals how to take back a change about to be made.
    pub fn journal(&mut self, undo: Undo) {
        self.journal.push(undo);
    }

    /// Notes that the host was changed ("nothing to change" no longer holds).
    pub fn changed(&mut self) {
        self.changed = true;
    }

    /// Whether anything on the host was changed.
    pub fn has_changed(&self) -> bool {
        self.changed
    }

    /// Takes every journalled change back, newest first, after `cause` stopped the
    /// install; the error says whether the host is as it was (else [`Kind::RollbackFailed`]).
    pub fn roll_back(self, records: &RecordDir, cause: Error) -> Error {
        let mut failures = Vec::new();
        for undo in self.journal.iter().rev() {
            if let Err(e) = undo.run(records) {
                failures.push(format!("{}: {e}", undo.describe()).replace('\n', " "));
            }
        }
        if failures.is_empty() {
            cause.context("install failed; everything it had changed was put back")
        } else {
            Error::new(
                Kind::RollbackFailed,
                format!(
                    "install failed ({cause}) and putting the host back failed too: {}",
                    failures.join("; ")
                ),
            )
            .hint("finish by hand with the steps in uninstall.md (\"Manual recovery\")")
        }
    }
}
