//! `uninstall`: undoes `install`. Stops and disables the service (which opens the host
//! and keeps Docker's rules), moves the rules back to the backend `iptables` used before,
//! puts back what the install record says (alternatives, ufw, firewalld), removes the unit
//! and the binary; the configuration too with `--purge`. Re-runnable: when a step fails,
//! the others still run, and the record and the binary stay so that it can run again.

use std::path::Path;
use std::time::Duration;

use crate::cli::{Global, UninstallArgs};
use crate::error::{Error, Result};
use crate::report;
use crate::system::{file, host};

use crate::setup::files::{self, Manifest, BIN, UNIT, UNIT_NAME};
use crate::setup::record::{Record, RecordDir};
use crate::setup::{firewalls, preflight, restore_alternative, rules};

fn say(msg: impl std::fmt::Display) {
    report::info(format_args!("uninstall: {msg}"));
}

pub fn run(global: &Global, args: &UninstallArgs) -> Result<()> {
    preflight(global, "uninstall")?;
    let records = RecordDir::new(&global.state_dir);
    let record = records.read()?;
    let service = host::unit_state(UNIT_NAME)?;
    let installed =
        record.is_some() || service.exists() || Path::new(UNIT).exists() || Path::new(BIN).exists();
    if !installed {
        say("iptables-docker is not installed: nothing to undo");
        if args.purge {
            purge(global)?;
        }
        return Ok(());
    }
    stop_service(&service)?;

    let mut failures = Vec::new();
    match &record {
        Some(record) => restore(global, record, &mut failures),
        None => say(format!(
            "no install record in {}: alternatives, ufw and firewalld are left as they are \
             (uninstall.md says how to check them)",
            records.path().display()
        )),
    }
    if !failures.is_empty() {
        return Err(Error::failed(format!(
            "uninstall did not finish: {}",
            failures.join("; ")
        ))
        .hint("fix the cause and run `iptables-docker uninstall` again (the record and the binary are kept for that), or finish by hand with uninstall.md"));
    }
    remove_files(global, args, record.as_ref(), &records)?;
    say("done: iptables-docker is uninstalled");
    Ok(())
}

/// Stops (the host opens, Docker's rules stay) and disables the service.
fn stop_service(service: &host::UnitState) -> Result<()> {
    if service.active() {
        host::systemctl(&["stop", UNIT_NAME]).map_err(|e| {
            Error::failed(format!(
                "{UNIT_NAME} did not stop: {e}\n{}",
                host::unit_log(UNIT_NAME)
            ))
            .hint("nothing else was changed; fix what the log says and run uninstall again, or see uninstall.md")
        })?;
        say(format!(
            "{UNIT_NAME} stopped: the host is open, Docker's rules are kept"
        ));
    }
    if service.enabled() {
        host::systemctl(&["disable", "--quiet", UNIT_NAME])?;
        say(format!("{UNIT_NAME} disabled"));
    }
    Ok(())
}

/// The unit, the record, the manifest, the man page and completion, the binary; the
/// configuration too with `--purge` (else says why each is kept).
fn remove_files(
    global: &Global,
    args: &UninstallArgs,
    record: Option<&Record>,
    records: &RecordDir,
) -> Result<()> {
    if file::remove_file(Path::new(UNIT))? {
        say(format!("removed {UNIT}"));
    }
    host::systemctl(&["daemon-reload"])?;
    let _ = host::systemctl(&["reset-failed", UNIT_NAME]);
    if let Some(record) = record {
        records.remove(record)?;
        say(format!(
            "removed the install record {}",
            records.path().display()
        ));
    }
    file::remove_file(&Manifest::path(&global.state_dir))?;
    if args.purge {
        purge(global)?;
    } else {
        for path in [crate::config::DEFAULT_PATH, files::TEMPLATE] {
            if Path::new(path).exists() {
                let origin = match record {
                    Some(r) if r.created.iter().any(|c| c == Path::new(path)) => {
                        "install created it"
                    }
                    Some(_) => "it was there before install",
                    None => "yours",
                };
                say(format!("kept {path} ({origin}; --purge removes it)"));
            }
        }
    }
    for (path, top) in files::DOC_DIRS {
        if file::remove_file(Path::new(path))? {
            say(format!("removed {path}"));
        }
        files::remove_empty_dirs(Path::new(path), Path::new(top))
            .map_err(|e| Error::failed(format!("cannot remove {top}: {e}")))?;
    }
    if file::remove_file(Path::new(BIN))? {
        say(format!("removed {BIN}"));
    }
    Ok(())
}

/// Rules back to the backend `iptables` used before, then alternatives, ufw, firewalld.
fn restore(global: &Global, record: &Record, failures: &mut Vec<String>) {
    let mut fail = |what: &str, e: Error| failures.push(format!("{what}: {e}"));
    let mut rules_back = true;
    if let (Some(was), installed) = (record.iptables_was, record.backend) {
        if was != installed && host::command_backend("iptables") != Some(was) {
            match rules::move_rules(
                installed,
                was,
                Duration::from_secs(global.wait),
                &RecordDir::new(&global.state_dir).snapshot_dir(),
            ) {
                Ok(moved) if moved.is_empty() => {}
                Ok(moved) => say(format!(
                    "moved the remaining {} back from iptables-{} to iptables-{}",
                    moved.summary(),
                    installed.name(),
                    was.name()
                )),
                Err(e) => {
                    rules_back = false;
                    fail("moving the rules back", e);
                }
            }
        }
    }
    if rules_back {
        for alt in &record.alternatives {
            match restore_alternative(alt) {
                Ok(Some(line)) => say(line),
                Ok(None) => {}
                Err(e) => fail(&format!("restoring the {} alternative", alt.group), e),
            }
        }
    }
    if let Some(want) = &record.firewalld {
        let result = firewalls::unit_record(firewalls::FIREWALLD_UNIT).and_then(|now| match now {
            Some(now) => firewalls::unit_restore(firewalls::FIREWALLD_UNIT, &now, want),
            None => Ok(Vec::new()),
        });
        match result {
            Ok(done) => done.into_iter().for_each(say),
            Err(e) => fail("restoring firewalld", e),
        }
    }
    if let Some(want) = &record.ufw {
        let result = firewalls::ufw_state().and_then(|now| match now {
            Some(now) => firewalls::ufw_restore(&now, want),
            None => Ok(Vec::new()),
        });
        match result {
            Ok(done) => done.into_iter().for_each(say),
            Err(e) => fail("restoring ufw", e),
        }
    }
}

/// `--purge`: the configuration install manages and the whole state directory.
fn purge(global: &Global) -> Result<()> {
    for path in [crate::config::DEFAULT_PATH, files::TEMPLATE] {
        if file::remove_file(Path::new(path))? {
            say(format!("removed {path}"));
        }
    }
    if let Some(dir) = Path::new(crate::config::DEFAULT_PATH).parent() {
        if std::fs::remove_dir(dir).is_ok() {
            say(format!("removed {}", dir.display()));
        }
    }
    if global.state_dir.exists() {
        fs_err::remove_dir_all(&global.state_dir)?;
        say(format!(
            "removed {} (snapshots and apply records)",
            global.state_dir.display()
        ));
    }
    Ok(())
}
