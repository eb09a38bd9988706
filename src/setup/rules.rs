//! Moving the iptables rules from one backend to the other without a reboot: nft →
//! legacy on install (Docker's rules, written through iptables-nft until now), back on
//! uninstall. Per family the source's tables are loaded into the target in one
//! `iptables-restore`, then the source's tables are emptied, so that packets never
//! traverse two rulesets. If any step fails, both backends are put back as found.

use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::family::Family;
use crate::ruleset::{self, ChainPolicy, Ruleset, Table, TableName};
use crate::system::host;
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::{ChildLock, XtablesLock};

/// The families of this kernel (IPv6 only when it has IPv6).
pub fn families() -> Vec<Family> {
    let v6 = std::path::Path::new("/proc/net/if_inet6").exists();
    Family::ALL
        .into_iter()
        .filter(|f| *f == Family::V4 || v6)
        .collect()
}

/// The save/restore pair, or `None` when this backend's binaries are not installed.
pub fn tool(family: Family, backend: Backend, lock: &ChildLock) -> Option<Iptables> {
    Iptables::new(family, backend, lock).ok()
}

fn parse(text: &str, ipt: &Iptables) -> Result<Ruleset> {
    ruleset::parse(text).map_err(|e| {
        Error::failed(format!(
            "cannot read {}-save output: {e}",
            ipt.family.command()
        ))
    })
}

/// Rules or user chains: something a packet could meet.
fn has_rules(rs: &Ruleset) -> bool {
    rs.tables
        .iter()
        .any(|t| !t.rules.is_empty() || t.chains.iter().any(|c| !c.is_builtin()))
}

/// Anything but empty tables with ACCEPT policies.
fn has_content(rs: &Ruleset) -> bool {
    has_rules(rs)
        || rs.tables.iter().any(|t| {
            t.chains
                .iter()
                .any(|c| c.policy.is_some_and(|p| p != ChainPolicy::Accept))
        })
}

/// `iptables-restore` input that empties every table of `rs` (ACCEPT policies).
pub fn emptied(rs: &Ruleset) -> String {
    rs.tables
        .iter()
        .map(|t| Table::empty(t.name).to_string())
        .collect()
}

/// One family moved: what to restore to put both backends back.
#[derive(Debug)]
struct Moved {
    from: Iptables,
    to: Iptables,
    from_text: String,
    /// The target as found, plus emptied copies of the tables the move created there.
    to_undo: String,
    rules: usize,
}

/// What a move did, to report it and to undo it.
#[derive(Debug)]
pub struct Move {
    pub from: Backend,
    pub to: Backend,
    moved: Vec<Moved>,
    _lock: ChildLock,
}

impl Move {
    pub fn is_empty(&self) -> bool {
        self.moved.is_empty()
    }

    /// "12 IPv4 and 3 IPv6 rules".
    pub fn summary(&self) -> String {
        self.moved
            .iter()
            .map(|m| format!("{} {}", m.rules, m.from.family))
            .collect::<Vec<_>>()
            .join(" and ")
            + " rules"
    }

    /// Puts both backends back as they were before the move.
    pub fn undo(&self) -> Result<()> {
        let _lock = XtablesLock::acquire(Duration::from_secs(30))?;
        restore_back(&self.moved)
    }
}

fn restore_back(moved: &[Moved]) -> Result<()> {
    let mut failures = Vec::new();
    for m in moved.iter().rev() {
        for (ipt, text) in [(&m.to, &m.to_undo), (&m.from, &m.from_text)] {
            if let Err(e) = ipt.restore(text, false) {
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::failed(failures.join("; ")))
    }
}

/// Moves every rule of `from` into `to`, family by family, holding the xtables lock.
/// Refuses, before changing anything, when both backends hold rules for one family.
/// `snapshots`: where the install record keeps both rulesets as found (for the hints).
pub fn move_rules(from: Backend, to: Backend, wait: Duration, snapshots: &Path) -> Result<Move> {
    let lock = ChildLock::new()?;
    let _xtables = XtablesLock::acquire(wait)?;
    let mut planned = Vec::new();
    for family in families() {
        if let Some(step) = plan_family(family, (from, to), &lock, snapshots)? {
            planned.push(step);
        }
    }
    let result = load_then_empty(&planned);
    // Undoing a family that was not touched yet is harmless: it restores what is there.
    let done: Vec<Moved> = planned.into_iter().map(|(m, _)| m).collect();
    match result {
        Ok(()) => Ok(Move {
            from,
            to,
            moved: done,
            _lock: lock,
        }),
        Err(cause) => Err(move_failed(
            (from, to),
            cause,
            restore_back(&done),
            snapshots,
        )),
    }
}

/// One family's move, with the text that empties its source afterwards; `None` when the
/// source has nothing to move.
fn plan_family(
    family: Family,
    (from, to): (Backend, Backend),
    lock: &ChildLock,
    snapshots: &Path,
) -> Result<Option<(Moved, String)>> {
    let Some(src) = tool(family, from, lock) else {
        return Ok(None); // no binaries, so no rules
    };
    let from_text = src.save(None)?;
    let from_rs = parse(&from_text, &src)?;
    if !has_content(&from_rs) {
        return Ok(None);
    }
    let dst = Iptables::new(family, to, lock)?;
    let to_text = dst.save(None)?;
    let to_rs = parse(&to_text, &dst)?;
    if has_rules(&to_rs) {
        return Err(Error::failed(format!(
            "both iptables-{} and iptables-{} hold {family} rules: packets traverse both \
             rulesets, and moving one onto the other would lose rules",
            from.name(),
            to.name()
        ))
        .hint(format!(
            "compare `{c}-{f}-save` and `{c}-{t}-save`, empty the one you do not need \
             (its rules are also in the snapshots of {s}/), and run this again",
            c = family.command(),
            f = from.name(),
            t = to.name(),
            s = snapshots.display()
        )));
    }
    let created = Ruleset {
        tables: from_rs
            .tables
            .iter()
            .filter(|t| to_rs.table(t.name).is_none())
            .cloned()
            .collect(),
    };
    let moved = Moved {
        from: src,
        to: dst,
        to_undo: format!("{to_text}{}", emptied(&created)),
        from_text,
        rules: from_rs.rule_count(),
    };
    Ok(Some((moved, emptied(&from_rs))))
}

/// Loads every family's rules into the target, then empties every source.
fn load_then_empty(planned: &[(Moved, String)]) -> Result<()> {
    for (m, _) in planned {
        m.to.restore(&m.from_text, false)?;
    }
    for (m, empty) in planned {
        m.from.restore(empty, false)?;
    }
    Ok(())
}

/// The error of a failed move, after `undo` tried to put both backends back.
fn move_failed(
    (from, to): (Backend, Backend),
    cause: Error,
    undo: Result<()>,
    snapshots: &Path,
) -> Error {
    match undo {
        Ok(()) => cause.context(format!(
            "moving the rules from iptables-{} to iptables-{} failed; both were put back",
            from.name(),
            to.name()
        )),
        Err(undo) => Error::new(
            crate::error::Kind::RollbackFailed,
            format!(
                "moving the rules from iptables-{} to iptables-{} failed ({cause}) and \
                 putting them back failed too: {undo}",
                from.name(),
                to.name()
            ),
        )
        .hint(format!(
            "restore the snapshots in {}/ by hand (uninstall.md)",
            snapshots.display()
        )),
    }
}

/// The FORWARD policy of each family's filter table in `backend`.
pub fn forward_policies(backend: Backend) -> Result<Vec<(Family, ChainPolicy)>> {
    let lock = ChildLock::new()?;
    let mut found = Vec::new();
    for family in families() {
        let Some(ipt) = tool(family, backend, &lock) else {
            continue;
        };
        let rs = parse(&ipt.save(Some(TableName::Filter))?, &ipt)?;
        if let Some(policy) = rs
            .table(TableName::Filter)
            .and_then(|t| t.chain("FORWARD"))
            .and_then(|c| c.policy)
        {
            found.push((family, policy));
        }
    }
    Ok(found)
}

/// Sets the FORWARD policy of one family's filter table in `backend`.
pub fn set_forward_policy(family: Family, backend: Backend, policy: ChainPolicy) -> Result<()> {
    let cmd = format!("{}-{}", family.command(), backend.name());
    let args = [
        "-w",
        "-t",
        TableName::Filter.as_str(),
        "-P",
        "FORWARD",
        policy.as_str(),
    ];
    host::run(&cmd, &args).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_tables_keep_only_builtin_chains_with_accept() {
        let rs = ruleset::parse(
            "*filter\n:INPUT DROP [1:2]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:DOCKER - [0:0]\n\
             -A FORWARD -j DOCKER\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n\
             :OUTPUT DROP [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n",
        )
        .unwrap();
        assert!(has_rules(&rs));
        let empty = emptied(&rs);
        assert_eq!(
            empty,
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n\
             *nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
        );
        let empty = ruleset::parse(&empty).unwrap();
        assert!(!has_content(&empty));
        let policy_only = ruleset::parse("*filter\n:FORWARD DROP [0:0]\nCOMMIT\n").unwrap();
        assert!(has_content(&policy_only) && !has_rules(&policy_only));
    }
}
