//! One address family's pass through the pipeline, without side effects:
//! saved text → [`Ruleset`] → [`DockerOwnership`] → [`Policy`] → composed ruleset → the
//! tables that need to be written (and the text that writes or rolls them back).

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::compose::{changed_tables, compose};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::ownership::{classify, DockerOwnership};
use crate::policy::{self, Policy};
use crate::ruleset::{self, builtin_chains, Ruleset, Table};

/// What is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The host policy from the config.
    Start,
    /// The host open, Docker untouched.
    Stop,
}

/// Fingerprints recorded after an apply, per table: what we composed and what the kernel
/// then held. A table whose composition and kernel content still match these is unchanged
/// even when the kernel spells a rule differently from the template.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    tables: BTreeMap<String, (String, String)>,
}

impl Applied {
    pub fn parse(text: &str) -> Self {
        let tables = text
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                Some((
                    f.next()?.to_string(),
                    (f.next()?.to_string(), f.next()?.to_string()),
                ))
            })
            .collect();
        Applied { tables }
    }

    pub fn record(&mut self, desired: &Table, kernel: &Table) {
        self.tables.insert(
            desired.name.clone(),
            (desired.fingerprint(), kernel.fingerprint()),
        );
    }

    fn matches(&self, desired: &Table, kernel: &Table) -> bool {
        self.tables
            .get(&desired.name)
            .is_some_and(|(d, k)| *d == desired.fingerprint() && *k == kernel.fingerprint())
    }

    /// Whether the kernel still holds what the last apply loaded for this table.
    pub fn in_sync(&self, kernel: &Table) -> Option<bool> {
        self.tables
            .get(&kernel.name)
            .map(|(_, k)| *k == kernel.fingerprint())
    }
}

impl fmt::Display for Applied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, (d, k)) in &self.tables {
            writeln!(f, "{table} {d} {k}")?;
        }
        Ok(())
    }
}

/// The plan for one family.
#[derive(Debug, Clone)]
pub struct FamilyPlan {
    pub family: Family,
    pub current: Ruleset,
    pub ownership: DockerOwnership,
    pub policy: Policy,
    pub desired: Ruleset,
    /// Tables to write, in `desired` order.
    pub changed: Vec<String>,
}

/// What `iptables-restore` is given for a set of tables of a ruleset; a table missing
/// from it is given as empty (builtin chains, ACCEPT).
pub fn tables_text(ruleset: &Ruleset, names: &[String]) -> String {
    names
        .iter()
        .map(|name| match ruleset.table(name) {
            Some(t) => t.to_string(),
            None => empty_table(name).to_string(),
        })
        .collect()
}

fn empty_table(name: &str) -> Table {
    let text = std::iter::once(format!("*{name}"))
        .chain(
            builtin_chains(name)
                .iter()
                .map(|c| format!(":{c} ACCEPT [0:0]")),
        )
        .chain(std::iter::once("COMMIT\n".to_string()))
        .collect::<Vec<_>>()
        .join("\n");
    ruleset::parse(&text)
        .expect("an empty table parses")
        .tables
        .remove(0)
}

impl FamilyPlan {
    /// The input of the one `iptables-restore` that applies this plan.
    pub fn restore_text(&self) -> String {
        tables_text(&self.desired, &self.changed)
    }

    /// The input that puts the changed tables back as they were found.
    pub fn rollback_text(&self) -> String {
        tables_text(&self.current, &self.changed)
    }

    /// Rules running now that the composed ruleset no longer has (kept rules and policy
    /// rules already in place do not count).
    pub fn removed_rules(&self) -> usize {
        let mut wanted: HashMap<(&str, &str, &str), usize> = HashMap::new();
        for t in &self.desired.tables {
            for r in &t.rules {
                *wanted.entry((&t.name, &r.chain, &r.spec)).or_default() += 1;
            }
        }
        let mut removed = 0;
        for t in &self.current.tables {
            for r in &t.rules {
                match wanted.get_mut(&(t.name.as_str(), r.chain.as_str(), r.spec.as_str())) {
                    Some(n) if *n > 0 => *n -= 1,
                    _ => removed += 1,
                }
            }
        }
        removed
    }
}

/// Plans one family: `saved` is `iptables-save -c` output (`source` names it in errors).
pub fn plan(
    family: Family,
    saved: &str,
    source: &str,
    config: &Config,
    mode: Mode,
    external_interfaces: &[String],
    applied: &Applied,
) -> Result<FamilyPlan> {
    let current = ruleset::parse(saved).map_err(|e| {
        Error::failed(format!("cannot read {source}: {e}"))
            .hint("iptables-save output was not understood; nothing was changed")
    })?;
    let ownership = classify(&current, &config.keep_chains);
    let policy = match mode {
        Mode::Start => policy::render(config, family, &ownership.facts, external_interfaces)?,
        Mode::Stop => Policy::open(),
    };
    let desired = compose(&current, &ownership, &policy)
        .map_err(|m| Error::config(m).hint("rename the chain in the template"))?;
    let changed = changed_tables(&current, &desired)
        .into_iter()
        .filter(|name| {
            let kernel = current.table(name);
            let wanted = desired
                .table(name)
                .expect("changed tables are desired tables");
            !kernel.is_some_and(|k| applied.matches(wanted, k))
        })
        .collect();
    Ok(FamilyPlan {
        family,
        current,
        ownership,
        policy,
        desired,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_plan_on_the_result_changes_and_removes_nothing() {
        let config = Config::builtin();
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :ufw-input - [0:0]\n-A INPUT -j ufw-input\nCOMMIT\n";
        let first = plan(
            Family::V4,
            saved,
            "t",
            &config,
            Mode::Start,
            &[],
            &Applied::default(),
        )
        .unwrap();
        assert_eq!(first.changed, ["filter"]);
        assert_eq!(first.removed_rules(), 1);
        let again = first.desired.to_string();
        let second = plan(
            Family::V4,
            &again,
            "t",
            &config,
            Mode::Start,
            &[],
            &Applied::default(),
        )
        .unwrap();
        assert!(second.changed.is_empty());
        assert_eq!(second.removed_rules(), 0);
    }
}
