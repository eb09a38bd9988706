//! `install`: sets the host up for iptables-docker, reversibly and without a reboot.
//! Preflight (root, systemd, the backend's binaries), the lockout guard, a once-only
//! record of the host as it was, ufw/firewalld off, the rules moved to the backend and
//! `iptables` pointed at it, the files installed, the service enabled and started. Each
//! change is journalled first; if any step fails, the journal puts everything back.
//! Run again, it upgrades binary and unit and changes nothing else.

pub(super) mod files;
pub(super) mod firewalls;
pub(super) mod record;
pub(super) mod rules;

use std::path::Path;
use std::time::Duration;

use crate::cli::{Global, InstallArgs};
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::guard;
use crate::system::host;
use crate::system::iptables::Backend;

use files::{Action, Manifest, UNIT, UNIT_NAME};
use record::{AlternativeRecord, Record, RecordDir, UfwRecord, UnitRecord};

/// The alternatives groups install switches.
pub(super) const GROUPS: [&str; 2] = ["iptables", "ip6tables"];

fn say(msg: impl std::fmt::Display) {
    if super::normal() {
        println!("install: {msg}");
    }
}

/// What both install and uninstall need: a usable command line, root, systemd.
pub(super) fn preflight(global: &Global, verb: &str) -> Result<()> {
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

/// The other backend.
pub(super) fn opposite(backend: Backend) -> Backend {
    match backend {
        Backend::Legacy => Backend::Nft,
        Backend::Nft => Backend::Legacy,
    }
}

/// Every `iptables-<backend>`, `-save`, `-restore` (and ip6tables) must exist.
fn require_binaries(backend: Backend) -> Result<()> {
    for family in rules::families() {
        for suffix in ["", "-save", "-restore"] {
            let name = format!("{}-{}{suffix}", family.command(), backend.name());
            if which::which(&name).is_err() {
                return Err(Error::not_installed(format!(
                    "`{name}` was not found: iptables-docker --backend {0} needs the \
                     iptables-{0} commands",
                    backend.name()
                ))
                .hint(host::package_hint(&host::os_release(), backend)));
            }
        }
    }
    Ok(())
}

/// One change made, and how to take it back.
enum Undo {
    /// The record; and the whole state directory when the record created it.
    Record(Record, bool),
    Ufw(UfwRecord),
    Unit(&'static str, UnitRecord),
    Forward(crate::family::Family, Backend, String),
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
                rules::set_forward_policy(*family, *backend, policy)
            }
            Undo::Rules(moved) => moved.undo(),
            Undo::Alternative(a) => restore_alternative(a).map(drop),
            Undo::File {
                path,
                before,
                mode,
                created_dir,
            } => {
                match before {
                    Some(bytes) => host::write_atomic(path, bytes, *mode)?,
                    None => drop(host::remove_file(path)?),
                }
                // Another file of ours in it goes back later in the journal.
                match created_dir {
                    Some(dir) => files::remove_empty_dirs(path, dir).map_err(|e| {
                        Error::failed(format!("cannot remove {}: {e}", dir.display()))
                    }),
                    None => Ok(()),
                }
            }
            Undo::Manifest(path, before) => match before {
                Some(bytes) => host::write_atomic(path, bytes, 0o600),
                None => host::remove_file(path).map(drop),
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

/// Points an alternatives group back to what was recorded; says so when it changed it.
pub(super) fn restore_alternative(want: &AlternativeRecord) -> Result<Option<String>> {
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

/// Runs the journal backwards; the error says whether the host is as it was.
fn roll_back(journal: Vec<Undo>, records: &RecordDir, cause: Error) -> Error {
    let mut failures = Vec::new();
    for undo in journal.iter().rev() {
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

pub fn run(global: &Global, args: &InstallArgs) -> Result<()> {
    preflight(global, "install")?;
    let target = global.backend;
    if args.packaged && target != Backend::Legacy {
        return Err(Error::environment(
            "the Debian package's unit drives iptables-legacy; --backend nft needs `install` without --packaged",
        ));
    }
    require_binaries(target)?;
    let config = Config::load(None)?;
    if !args.force {
        guard::check(&config, std::env::var("SSH_CONNECTION").ok().as_deref())?;
    }
    let binary = fs_err::read("/proc/self/exe")?;
    let records = RecordDir::new(&global.state_dir);
    let mut journal = Vec::new();
    let mut changed = false;
    // The package's files are dpkg's: none written here.
    let assets = if args.packaged {
        Vec::new()
    } else {
        files::assets(target, binary)
    };
    match steps(
        global,
        &assets,
        args.packaged,
        &records,
        &mut journal,
        &mut changed,
    ) {
        Ok(advice) => {
            if changed {
                say(
                    "done: iptables-docker.service is active with the host policy (`iptables-docker \
                     status`); `iptables-docker uninstall` undoes this install (uninstall.md)",
                );
            } else {
                say(format!(
                    "nothing to change: iptables-docker is installed and up to date \
                     (iptables-{}, {UNIT_NAME} active)",
                    target.name()
                ));
            }
            for line in advice {
                say(line);
            }
            Ok(())
        }
        Err(cause) => Err(roll_back(journal, &records, cause)),
    }
}

/// The host as it is now, before install changes anything.
fn capture(target: Backend, assets: &[files::Asset]) -> Result<Record> {
    Ok(Record {
        backend: target.name().to_string(),
        iptables_was: host::command_backend("iptables").map(|b| b.name().to_string()),
        alternatives: GROUPS
            .iter()
            .filter_map(|g| {
                let alt = host::alternative(g)?;
                Some(AlternativeRecord {
                    group: g.to_string(),
                    auto: alt.auto,
                    value: alt.current?,
                })
            })
            .collect(),
        ufw: firewalls::ufw_state()?,
        firewalld: firewalls::unit_record(firewalls::FIREWALLD_UNIT)?,
        created: assets
            .iter()
            .filter(|a| !a.path.exists())
            .map(|a| a.path.clone())
            .collect(),
        snapshots: Vec::new(),
    })
}

/// Both backends' rulesets, for the record.
fn snapshots() -> Result<Vec<(String, String)>> {
    let lock = rules::child_lock()?;
    let mut found = Vec::new();
    for backend in [Backend::Legacy, Backend::Nft] {
        for family in rules::families() {
            if let Some(ipt) = rules::tool(family, backend, &lock) {
                let name = format!("{}-{}.rules", backend.name(), family.tag());
                found.push((name, ipt.save(None)?));
            }
        }
    }
    Ok(found)
}

fn steps(
    global: &Global,
    assets: &[files::Asset],
    packaged: bool,
    records: &RecordDir,
    journal: &mut Vec<Undo>,
    changed: &mut bool,
) -> Result<Vec<String>> {
    let target = global.backend;
    let mut advice = Vec::new();

    // The record of the host as it was: written once.
    match records.read()? {
        Some(r) if r.backend() != Some(target) => {
            return Err(Error::environment(format!(
                "iptables-docker is installed for iptables-{}, not iptables-{}",
                r.backend,
                target.name()
            ))
            .hint("run `iptables-docker uninstall` first to change backends"));
        }
        Some(_) => {}
        None => {
            let created_dir = !records.root.exists();
            let record = records.write(capture(target, assets)?, &snapshots()?)?;
            say(format!(
                "recorded the host as it is in {} (snapshots in {})",
                records.path().display(),
                records.snapshot_dir().display()
            ));
            journal.push(Undo::Record(record, created_dir));
            *changed = true;
        }
    }

    // ufw and firewalld off, before the move: they take their rules out of the backend
    // they wrote them to. Their teardown sets FORWARD to ACCEPT; a DROP is kept.
    let current = host::command_backend("iptables");
    let forward = match current {
        Some(b) => rules::forward_policies(b)?,
        None => Vec::new(),
    };
    let mut stopped = false;
    if let Some(now) = firewalls::ufw_state()? {
        journal.push(Undo::Ufw(now));
        for line in firewalls::ufw_off(&now)? {
            say(line);
            stopped = true;
        }
    }
    if let Some(now) = firewalls::unit_record(firewalls::FIREWALLD_UNIT)? {
        journal.push(Undo::Unit(firewalls::FIREWALLD_UNIT, now));
        for line in firewalls::unit_off(firewalls::FIREWALLD_UNIT, &now)? {
            say(line);
            stopped = true;
        }
    }
    *changed |= stopped;
    if let (Some(backend), true) = (current, stopped) {
        for (family, after) in rules::forward_policies(backend)? {
            let before = forward.iter().find(|(f, _)| *f == family).map(|(_, p)| p);
            if let Some(before) = before.filter(|p| **p != after && after == "ACCEPT") {
                journal.push(Undo::Forward(family, backend, after.clone()));
                rules::set_forward_policy(family, backend, before)?;
                say(format!(
                    "kept the {family} FORWARD policy {before} (stopping the firewall manager had set it to ACCEPT)"
                ));
            }
        }
    }

    // The rules to the target backend, and `iptables` pointed at it: no reboot.
    if current != Some(target) {
        let moved = rules::move_rules(opposite(target), target, Duration::from_secs(global.wait))?;
        if !moved.is_empty() {
            say(format!(
                "moved {} from iptables-{} to iptables-{} in one restore per family; the {} tables are empty now",
                moved.summary(),
                moved.from.name(),
                moved.to.name(),
                moved.from.name()
            ));
            if host::unit_state("docker.service").is_ok_and(|s| s.active()) {
                advice.push(format!(
                    "Docker is running: its rules now live in iptables-{} and keep working. Restart \
                     it when convenient (`systemctl restart docker`) so that it re-creates them \
                     through the new backend: a rule it wrote while the backend was switching may \
                     have been lost.",
                    target.name()
                ));
            }
            journal.push(Undo::Rules(moved));
        }
        for group in GROUPS {
            let Some(alt) = host::alternative(group) else {
                continue;
            };
            let Some(choice) = alt.choice_for(group, target) else {
                return Err(Error::not_installed(format!(
                    "iptables-{} is not registered as an alternative for `{group}`",
                    target.name()
                ))
                .hint(host::package_hint(&host::os_release(), target)));
            };
            if alt.current.as_deref() != Some(choice) || alt.auto {
                if let Some(current) = &alt.current {
                    journal.push(Undo::Alternative(AlternativeRecord {
                        group: group.to_string(),
                        auto: alt.auto,
                        value: current.clone(),
                    }));
                }
                host::set_alternative(group, choice)?;
                say(format!("{group} now points to {choice}"));
                *changed = true;
            }
        }
        for command in GROUPS {
            let now = host::command_backend(command);
            if now.is_some_and(|b| b != target) || (command == "iptables" && now.is_none()) {
                return Err(Error::environment(format!(
                    "`{command}` does not use iptables-{} after switching the alternatives",
                    target.name()
                ))
                .hint(format!(
                    "point `{command}` at {command}-{} by hand (alternatives or a symlink), then run install again",
                    target.name()
                )));
            }
        }
    }

    install_files(global, assets, packaged, journal, changed)?;
    Ok(advice)
}

/// The binary, unit, config and template; then the service enabled and (re)started.
/// `packaged`: dpkg has just written the files (an install or an upgrade): systemd is
/// reloaded and a running service restarted.
fn install_files(
    global: &Global,
    assets: &[files::Asset],
    packaged: bool,
    journal: &mut Vec<Undo>,
    changed: &mut bool,
) -> Result<()> {
    let service = host::unit_state(UNIT_NAME)?;
    journal.push(Undo::DaemonReload {
        restart: service.active(),
    });
    let mut manifest = Manifest::read(&global.state_dir);
    let manifest_before = manifest.clone();
    let mut replaced_code = packaged;
    for asset in assets {
        let path = asset.path.as_path();
        let current = files::read(path)?;
        let action = files::decide(asset, current.as_deref(), manifest.0.get(path).copied());
        match action {
            Action::Create | Action::Replace => {
                journal.push(Undo::File {
                    path: path.to_path_buf(),
                    before: current,
                    mode: asset.mode,
                    created_dir: files::first_missing_dir(path),
                });
                host::write_atomic(path, &asset.content, asset.mode)?;
                manifest
                    .0
                    .insert(path.to_path_buf(), files::hash(&asset.content));
                replaced_code |= path == Path::new(files::BIN) || path == Path::new(UNIT);
                *changed = true;
                say(format!(
                    "{} {}",
                    if action == Action::Create {
                        "installed"
                    } else {
                        "updated"
                    },
                    path.display()
                ));
            }
            Action::Unchanged => {
                manifest
                    .0
                    .insert(path.to_path_buf(), files::hash(&asset.content));
            }
            Action::Keep => say(format!(
                "kept {}: it was edited (or there before install), so it is not replaced",
                path.display()
            )),
        }
    }
    if manifest != manifest_before {
        let path = Manifest::path(&global.state_dir);
        journal.push(Undo::Manifest(path.clone(), files::read(&path)?));
        manifest.write(&global.state_dir)?;
    }

    if replaced_code {
        host::systemctl(&["daemon-reload"])?;
    }
    journal.push(Undo::Service {
        was_enabled: service.enabled(),
        was_active: service.active(),
    });
    if !service.enabled() {
        host::systemctl(&["enable", "--quiet", UNIT_NAME])?;
        say(format!(
            "{UNIT_NAME} enabled (starts before the network at boot)"
        ));
        *changed = true;
    }
    let verb = if !service.active() {
        Some("start")
    } else if replaced_code {
        Some("restart")
    } else {
        None
    };
    if let Some(verb) = verb {
        host::systemctl(&[verb, UNIT_NAME]).map_err(|e| {
            let log = host::unit_log(UNIT_NAME);
            Error::failed(format!("{UNIT_NAME} did not {verb}: {e}\n{log}"))
                .hint("fix what its log above says (`journalctl -u iptables-docker`), then run install again")
        })?;
        say(format!("{UNIT_NAME} {verb}ed: the host policy is loaded"));
        *changed = true;
    }
    Ok(())
}
