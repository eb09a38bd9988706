//! `install`: sets the host up for iptables-docker, reversibly and without a reboot.
//! Preflight (root, systemd, the backend's binaries), the policy validated as `start`
//! would, the lockout guard (the host's established SSH sessions), a once-only
//! record of the host as it was, ufw off (its rules left in place), the rules moved to the
//! backend and `iptables` pointed at it, the files installed, the service enabled and
//! started (its policy replaces ufw's in one restore), firewalld off: INPUT is never open
//! on the way. Each
//! change is journalled first ([`Transaction`]); if any step fails, the journal puts
//! everything back. Run again, it upgrades binary and unit and changes nothing else.

use std::path::Path;
use std::time::Duration;

use crate::backend::{Choice, Selection};
use crate::cli::{Global, InstallArgs};
use crate::error::{Error, Result};
use crate::guard;
use crate::hash::stable_hash;
use crate::report;
use crate::ruleset::ChainPolicy;
use crate::setup::files::{self, Action, Manifest, UNIT, UNIT_NAME};
use crate::setup::record::{AlternativeRecord, Record, RecordDir};
use crate::setup::{firewalls, preflight, rules, Transaction, Undo, GROUPS};
use crate::system::iptables::Backend;
use crate::system::lock::ChildLock;
use crate::system::{file, host};

fn say(msg: impl std::fmt::Display) {
    report::info(format_args!("install: {msg}"));
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

pub fn run(global: &Global, args: &InstallArgs) -> Result<()> {
    preflight(global, "install")?;
    // The same validation as start, before anything on the host changes.
    let config = super::load_config(global)?;
    let selection = super::select_backend(global, &config, false, None)?;
    let target = selection.backend;
    // The package's unit runs a plain `start`, which decides the backend again from the
    // config (auto by default): only a command-line choice would not carry over to it.
    if args.packaged && global.backend.is_some_and(|c| c != Choice::Auto) {
        return Err(Error::environment(
            "the Debian package's unit runs `iptables-docker start` without --backend; set \
             `backend` in /etc/iptables-docker/config.toml instead of --backend",
        ));
    }
    require_binaries(target)?;
    super::check::render_and_test(&config, target)?;
    if !args.force {
        guard::check(&config, &guard::host_connections(&config))?;
    }
    let binary = fs_err::read("/proc/self/exe")?;
    let records = RecordDir::new(&global.state_dir);
    let mut tx = Transaction::new();
    // The package's files are dpkg's: none written here.
    let assets = if args.packaged {
        Vec::new()
    } else {
        files::assets(target, binary)
    };
    match steps(
        global,
        &selection,
        &assets,
        args.packaged,
        &records,
        &mut tx,
    ) {
        Ok(advice) => {
            let backend = format!("iptables-{} ({})", target.name(), selection.reason);
            if tx.has_changed() {
                say(format!("backend: {backend}"));
                say(
                    "done: iptables-docker.service is active with the host policy (`iptables-docker \
                     status`); `iptables-docker uninstall` undoes this install (uninstall.md)",
                );
            } else {
                say(format!(
                    "nothing to change: iptables-docker is installed and up to date \
                     ({backend}, {UNIT_NAME} active)"
                ));
            }
            for line in advice {
                say(line);
            }
            Ok(())
        }
        Err(cause) => Err(tx.roll_back(&records, cause)),
    }
}

/// The host as it is now, before install changes anything.
fn capture(selection: &Selection, assets: &[files::Asset]) -> Result<Record> {
    Ok(Record {
        backend: selection.backend,
        backend_reason: Some(selection.reason.clone()),
        iptables_was: host::command_backend("iptables"),
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
    let lock = ChildLock::new()?;
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
    selection: &Selection,
    assets: &[files::Asset],
    packaged: bool,
    records: &RecordDir,
    tx: &mut Transaction,
) -> Result<Vec<String>> {
    let target = selection.backend;
    record_host(selection, assets, records, tx)?;
    let current = host::command_backend("iptables");
    ufw_off(tx)?;
    let mut advice = Vec::new();
    // The rules to the target backend, and `iptables` pointed at it: no reboot.
    if current != Some(target) {
        advice.extend(move_rules(
            target,
            Duration::from_secs(global.wait),
            records,
            tx,
        )?);
        point_alternatives(target, tx)?;
        check_commands(target)?;
    }
    install_files(global, assets, packaged, tx)?;
    firewalld_off(target, tx)?;
    Ok(advice)
}

/// The record of the host as it was: written once.
fn record_host(
    selection: &Selection,
    assets: &[files::Asset],
    records: &RecordDir,
    tx: &mut Transaction,
) -> Result<()> {
    match records.read()? {
        Some(r) if r.backend != selection.backend => Err(Error::environment(format!(
            "iptables-docker is installed for iptables-{}, not iptables-{}",
            r.backend.name(),
            selection.backend.name()
        ))
        .hint("run `iptables-docker uninstall` first to change backends")),
        Some(_) => Ok(()),
        None => {
            let created_dir = !records.root.exists();
            let record = records.write(capture(selection, assets)?, &snapshots()?)?;
            say(format!(
                "recorded the host as it is in {} (snapshots in {})",
                records.path().display(),
                records.snapshot_dir().display()
            ));
            tx.journal(Undo::Record(record, created_dir));
            tx.changed();
            Ok(())
        }
    }
}

/// ufw off first, without its teardown: its rules keep the host closed (moved along with
/// Docker's when the backend changes) until the service's start replaces them in one
/// restore, so that INPUT is never open.
fn ufw_off(tx: &mut Transaction) -> Result<()> {
    if let Some(now) = firewalls::ufw_state()? {
        tx.journal(Undo::Ufw(now));
        for line in firewalls::ufw_off(&now)? {
            say(line);
            tx.changed();
        }
    }
    Ok(())
}

/// firewalld stopped, disabled and masked once the policy is loaded, so that the host is
/// never without a firewall. Its teardown may set FORWARD to ACCEPT (a DROP is kept) or
/// flush the filter table (iptables backend): the policy is then reloaded.
fn firewalld_off(backend: Backend, tx: &mut Transaction) -> Result<()> {
    let Some(now) = firewalls::unit_record(firewalls::FIREWALLD_UNIT)? else {
        return Ok(());
    };
    let forward = rules::forward_policies(backend)?;
    tx.journal(Undo::Unit(firewalls::FIREWALLD_UNIT, now));
    let done = firewalls::unit_off(firewalls::FIREWALLD_UNIT, &now)?;
    if done.is_empty() {
        return Ok(());
    }
    tx.changed();
    done.into_iter().for_each(say);
    for (family, after) in rules::forward_policies(backend)? {
        let before = forward.iter().find(|(f, _)| *f == family).map(|(_, p)| *p);
        if let Some(before) = before.filter(|p| *p != after && after == ChainPolicy::Accept) {
            tx.journal(Undo::Forward(family, backend, after));
            rules::set_forward_policy(family, backend, before)?;
            say(format!(
                "kept the {family} FORWARD policy {before} (stopping firewalld had set it to ACCEPT)"
            ));
        }
    }
    host::systemctl(&["reload", UNIT_NAME])
}

/// Moves the other backend's rules into `target`; the advice to print at the end.
fn move_rules(
    target: Backend,
    wait: Duration,
    records: &RecordDir,
    tx: &mut Transaction,
) -> Result<Option<String>> {
    let moved = rules::move_rules(target.other(), target, wait, &records.snapshot_dir())?;
    if moved.is_empty() {
        return Ok(None);
    }
    say(format!(
        "moved {} from iptables-{} to iptables-{} in one restore per family; the {} tables are empty now",
        moved.summary(),
        moved.from.name(),
        moved.to.name(),
        moved.from.name()
    ));
    let advice = host::unit_state("docker.service")
        .is_ok_and(|s| s.active())
        .then(|| {
            format!(
                "Docker is running: its rules now live in iptables-{} and keep working. Restart \
                 it when convenient (`systemctl restart docker`) so that it re-creates them \
                 through the new backend: a rule it wrote while the backend was switching may \
                 have been lost.",
                target.name()
            )
        });
    tx.journal(Undo::Rules(moved));
    Ok(advice)
}

/// Points the `iptables` and `ip6tables` alternatives at `target`'s binaries.
fn point_alternatives(target: Backend, tx: &mut Transaction) -> Result<()> {
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
                tx.journal(Undo::Alternative(AlternativeRecord {
                    group: group.to_string(),
                    auto: alt.auto,
                    value: current.clone(),
                }));
            }
            host::set_alternative(group, choice)?;
            say(format!("{group} now points to {choice}"));
            tx.changed();
        }
    }
    Ok(())
}

/// Fails unless `iptables` (and `ip6tables`, where present) use `target` now.
fn check_commands(target: Backend) -> Result<()> {
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
    Ok(())
}

/// The binary, unit, config and template; then the service enabled and (re)started.
/// `packaged`: dpkg has just written the files (an install or an upgrade): systemd is
/// reloaded and a running service restarted.
fn install_files(
    global: &Global,
    assets: &[files::Asset],
    packaged: bool,
    tx: &mut Transaction,
) -> Result<()> {
    let service = host::unit_state(UNIT_NAME)?;
    tx.journal(Undo::DaemonReload {
        restart: service.active(),
    });
    let replaced_code = write_assets(&global.state_dir, assets, tx)? || packaged;
    if replaced_code {
        host::systemctl(&["daemon-reload"])?;
    }
    tx.journal(Undo::Service {
        was_enabled: service.enabled(),
        was_active: service.active(),
    });
    if !service.enabled() {
        host::systemctl(&["enable", "--quiet", UNIT_NAME])?;
        say(format!(
            "{UNIT_NAME} enabled (starts before the network at boot)"
        ));
        tx.changed();
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
        tx.changed();
    }
    Ok(())
}

/// Writes the assets that are missing or still as install wrote them, and the manifest of
/// their hashes; true when the binary or the unit was replaced.
fn write_assets(state_dir: &Path, assets: &[files::Asset], tx: &mut Transaction) -> Result<bool> {
    let mut manifest = Manifest::read(state_dir);
    let manifest_before = manifest.clone();
    let mut replaced_code = false;
    for asset in assets {
        let path = asset.path.as_path();
        let current = file::read_if_exists(path)?;
        let action = files::decide(asset, current.as_deref(), manifest.0.get(path).copied());
        match action {
            Action::Create | Action::Replace => {
                tx.journal(Undo::File {
                    path: path.to_path_buf(),
                    before: current,
                    mode: asset.mode,
                    created_dir: files::first_missing_dir(path),
                });
                file::write_atomic(path, &asset.content, asset.mode)?;
                manifest
                    .0
                    .insert(path.to_path_buf(), stable_hash(&asset.content));
                replaced_code |= path == Path::new(files::BIN) || path == Path::new(UNIT);
                tx.changed();
                let verb = if action == Action::Create {
                    "installed"
                } else {
                    "updated"
                };
                say(format!("{verb} {}", path.display()));
            }
            Action::Unchanged => {
                manifest
                    .0
                    .insert(path.to_path_buf(), stable_hash(&asset.content));
            }
            Action::Keep => say(format!(
                "kept {}: it was edited (or there before install), so it is not replaced",
                path.display()
            )),
        }
    }
    if manifest != manifest_before {
        let path = Manifest::path(state_dir);
        tx.journal(Undo::Manifest(path.clone(), file::read_if_exists(&path)?));
        manifest.write(state_dir)?;
    }
    Ok(replaced_code)
}
