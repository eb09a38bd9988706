//! `snapshots` and `rollback`: the rulesets found before each apply, listed by the UTC time
//! they were taken, and put back — merged with Docker's rules as they are now, the way an
//! unconfirmed `--confirm` apply is rolled back ([`crate::rollback::merge`]), so containers
//! started since keep their rules. `rollback --confirm` keeps the result only if confirmed.

use std::path::Path;
use std::time::Duration;

use crate::cli::{Global, RollbackArgs};
use crate::compose::changed_tables;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::ownership::classify;
use crate::pipeline::tables_text;
use crate::rollback;
use crate::ruleset::{self, TableName};
use crate::system;
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::state::StateDir;
use crate::transaction::edit_script;

use super::{confirm, load_config, managed_families};

/// `iptables-docker snapshots`: one line per snapshot, oldest first.
pub fn list(global: &Global) -> Result<()> {
    system::require_root("snapshots")?;
    let state = StateDir::new(&global.state_dir);
    let snapshots = state.snapshots();
    if snapshots.is_empty() {
        println!("no snapshots in {}", state.root.display());
    }
    for (name, files) in snapshots {
        let families: Vec<&str> = files.iter().map(|(f, _)| f.tag()).collect();
        println!(
            "{name}  {}  ({})",
            families.join(" "),
            files
                .first()
                .and_then(|(_, p)| p.parent())
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// What putting a snapshot back writes for one family: the snapshot merged with the
/// rules Docker (and `keep_chains`) hold now, and the tables that differ from `running`.
pub struct PutBack {
    running: ruleset::Ruleset,
    merged: ruleset::Ruleset,
    keep_chains: Vec<String>,
    pub changed: Vec<TableName>,
}

impl PutBack {
    /// Merges `snapshot` (one family's file) with `running` (iptables-save text).
    pub fn prepare(running: &str, snapshot: &Path, keep_chains: &[String]) -> Result<Self> {
        let parse = |text: &str, what: &str| {
            ruleset::parse(text).map_err(|e| Error::failed(format!("cannot read {what}: {e}")))
        };
        let running = parse(running, "the running ruleset")?;
        let before = parse(&fs_err::read_to_string(snapshot)?, "the snapshot")?;
        Ok(PutBack::new(running, &before, keep_chains))
    }

    /// Merges `before` with `running`.
    pub fn new(
        running: ruleset::Ruleset,
        before: &ruleset::Ruleset,
        keep_chains: &[String],
    ) -> Self {
        let merged = rollback::merge(before, &running, keep_chains);
        let changed = changed_tables(&running, &merged);
        PutBack {
            running,
            merged,
            keep_chains: keep_chains.to_vec(),
            changed,
        }
    }

    /// Writes the changed tables in one transaction: legacy replaces them (the caller
    /// holds the xtables lock), nft edits them around Docker's rules
    /// ([`crate::transaction`]).
    pub fn apply(&self, ipt: &Iptables) -> Result<()> {
        if self.changed.is_empty() {
            return Ok(());
        }
        match ipt.backend {
            Backend::Legacy => ipt.restore(&tables_text(&self.merged, &self.changed), false),
            Backend::Nft => {
                let own = classify(&self.running, &self.keep_chains);
                let edit = |_: TableName, _: &str| false;
                ipt.edit(&edit_script(
                    &self.running,
                    &own,
                    &self.merged,
                    &self.changed,
                    &edit,
                ))
            }
        }
    }

    /// Puts the changed tables back as they were running (on nft: with Docker's rules as
    /// they are by then).
    fn undo(&self, ipt: &Iptables) -> Result<()> {
        match ipt.backend {
            Backend::Legacy => ipt.restore(&tables_text(&self.running, &self.changed), false),
            Backend::Nft => super::write::put_back(ipt, &self.running, &self.keep_chains),
        }
    }
}

/// Finds the snapshot `wanted` names (its full name or a unique prefix; the newest when
/// `None`).
fn find(
    state: &StateDir,
    wanted: Option<&str>,
) -> Result<(String, Vec<(Family, std::path::PathBuf)>)> {
    let all = state.snapshots();
    let matching: Vec<_> = match wanted {
        None => all.into_iter().last().into_iter().collect(),
        Some(w) => {
            let w = w.trim_end_matches(".rules");
            let w = ["-v4", "-v6"]
                .iter()
                .find_map(|t| w.strip_suffix(t))
                .unwrap_or(w);
            let w = Path::new(w)
                .file_name()
                .map_or(w.into(), |n| n.to_string_lossy());
            all.into_iter()
                .filter(|(n, _)| n.starts_with(&*w))
                .collect()
        }
    };
    match matching.len() {
        1 => Ok(matching.into_iter().next().expect("one")),
        0 => Err(Error::failed(format!(
            "no snapshot {} in {}",
            wanted.unwrap_or("at all"),
            state.root.display()
        ))
        .hint("`iptables-docker snapshots` lists them")),
        n => Err(
            Error::failed(format!("{n} snapshots start with {}", wanted.unwrap_or("")))
                .hint("give more of the name (`iptables-docker snapshots`)"),
        ),
    }
}

/// `iptables-docker rollback [SNAPSHOT] [--confirm [SECONDS]]`.
pub fn rollback(global: &Global, args: &RollbackArgs) -> Result<()> {
    system::require_root("rollback")?;
    let config = load_config(global)?;
    let state = StateDir::new(&global.state_dir);
    state.check_private()?;
    let (name, files) = find(&state, args.snapshot.as_deref())?;
    let backend = super::select_backend(global, &config, true, None)?.backend;
    let child_lock = ChildLock::new()?;
    let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
    let families = managed_families(&config);
    let taken = StateDir::new_snapshot_name();
    let mut puts: Vec<(Iptables, PutBack)> = Vec::new();
    let mut before = Vec::new();
    for (family, path) in files.iter().filter(|(f, _)| families.contains(f)) {
        let ipt = Iptables::new(*family, backend, &child_lock)?;
        let running = ipt.save(None)?;
        let put = PutBack::prepare(&running, path, &config.kept_chains())?;
        if put.changed.is_empty() {
            println!(
                "{family}: already as in snapshot {name} (with Docker's rules as they are now)"
            );
            continue;
        }
        before.push((*family, state.write_backup(&taken, *family, &running)?));
        puts.push((ipt, put));
    }
    // With --confirm, the watchdog runs before the first table is written.
    let armed = match args.confirm {
        Some(seconds) if !before.is_empty() => Some(confirm::arm(
            global,
            backend,
            &state,
            &before,
            confirm::Window::ruleset(seconds),
        )?),
        _ => None,
    };
    if let Err(e) = put_all(&puts, &name, &taken) {
        if let Some(armed) = armed.filter(|_| e.kind() != crate::error::Kind::RollbackFailed) {
            armed.cancel();
        }
        return Err(e);
    }
    drop(lock);
    println!(
        "`iptables-docker status` now reports drift from the configured policy until the next \
         start/reload"
    );
    match armed {
        Some(armed) => armed.await_operator(global, &state, &[]),
        None => Ok(()),
    }
}

/// Writes each family's put-back in turn; if one fails, undoes those written.
fn put_all(puts: &[(Iptables, PutBack)], name: &str, taken: &str) -> Result<()> {
    for (written, (ipt, put)) in puts.iter().enumerate() {
        let family = ipt.family;
        if let Err(e) = put.apply(ipt) {
            let undo: Vec<String> = puts[..written]
                .iter()
                .filter_map(|(i, p)| p.undo(i).err().map(|e| e.to_string()))
                .collect();
            return Err(if undo.is_empty() {
                e.context(format!(
                    "rolling {family} back to snapshot {name} failed; every family is as it was"
                ))
            } else {
                Error::new(
                    crate::error::Kind::RollbackFailed,
                    format!(
                        "rolling back to {name} failed ({e}) and so did undoing it: {}",
                        undo.join("; ")
                    ),
                )
                .hint(format!(
                    "`iptables-docker rollback {taken}` puts back what ran before"
                ))
            });
        }
        println!(
            "{family}: snapshot {name} put back with Docker's rules as they are now; replaced tables {}",
            TableName::list(&put.changed)
        );
    }
    Ok(())
}
