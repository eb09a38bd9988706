//! `plan`: what start (or stop) would load, as a whole, as a diff, or rule by rule with
//! the reason each is kept. Reads files or the running ruleset; writes nothing.

use std::collections::HashMap;

use similar::TextDiff;

use crate::cli::{Global, PlanArgs};
use crate::config::Config;
use crate::error::Result;
use crate::family::Family;
use crate::guard;
use crate::pipeline::{self, FamilyPlan, Fate, Mode};
use crate::ruleset::{Ruleset, Table, TableName};
use crate::system::lock::ChildLock;
use crate::system::state::StateDir;
use crate::system::{self, iptables::Iptables};

use super::{load_config, load_policy, managed_families, plan_running, test_policy};

pub fn run(global: &Global, args: &PlanArgs) -> Result<()> {
    let (config, template) = load_policy(load_config(global)?)?;
    let mode = if args.stop { Mode::Stop } else { Mode::Start };
    let child_lock = ChildLock::new()?;
    let mut plans = Vec::new();
    // Offline (--input) plans touch nothing of this host, its netfilter tables included:
    // the policy is tested with `iptables-restore --test` only against the running host.
    let offline = args.input.is_some() || args.input6.is_some();
    if offline {
        // Offline: files from elsewhere, so no apply record of this host applies.
        for (family, file) in [(Family::V4, &args.input), (Family::V6, &args.input6)] {
            if let Some(path) = file {
                let text = fs_err::read_to_string(path)?;
                let source = path.display().to_string();
                plans.push(pipeline::plan(
                    family,
                    &text,
                    &source,
                    (&config, &template),
                    mode,
                )?);
            }
        }
    } else {
        system::require_root("plan")?;
        let state = StateDir::new(&global.state_dir);
        let backend = super::select_backend(global, &config, true, None)?.backend;
        for family in managed_families(&config) {
            let saved = Iptables::new(family, backend, &child_lock)?.save(None)?;
            plans.push(plan_running(
                family,
                &saved,
                (&config, &template),
                mode,
                &state,
            )?);
        }
    }
    if !args.stop {
        warn_lockout(&config);
    }
    let tested = match system::is_root() && !offline {
        true => Some(super::select_backend(global, &config, true, None)?.backend),
        false => None,
    };
    for plan in plans {
        let family = plan.family;
        if let Some(backend) = tested {
            let ipt = Iptables::new(family, backend, &child_lock)?;
            test_policy(&ipt, &plan.policy)?;
        } else if !args.stop {
            let why = if offline {
                "an offline plan does not touch this host's firewall; `iptables-docker check` tests it"
            } else {
                "that needs root"
            };
            eprintln!(
                "iptables-docker: note: the {family} policy was not tested with \
                 iptables-restore --test ({why})"
            );
        }
        println!("# {family}: {}", summary(&plan));
        for warning in unkept_owners(&plan, &[], &config, &system::running_processes()) {
            println!("# WARNING: {warning}");
        }
        if args.explain {
            let origins = crate::policy::rule_origins(&config, plan.family);
            print!("{}", explain(&plan, &origins));
        } else if args.diff {
            print!("{}", diff(&plan));
        } else {
            print!("{}", without_counters(&plan.desired));
        }
    }
    Ok(())
}

/// What start and reload would refuse without --force: said on stderr, not an error.
fn warn_lockout(config: &Config) {
    let cut = guard::locked_out(config, &guard::host_connections(config));
    if !cut.is_empty() {
        eprintln!(
            "iptables-docker: warning: this policy would not accept new SSH connections from \
             {}; start and reload refuse it without --force",
            guard::describe(&cut)
        );
    }
}

fn summary(plan: &FamilyPlan) -> String {
    if plan.changed.is_empty() {
        "nothing to change".to_string()
    } else {
        format!("tables to write: {}", TableName::list(&plan.changed))
    }
}

/// The known owners (fail2ban, …) whose chains this plan removes, or that run without
/// being kept; one sentence each.
/// `removed`: the chains the last apply removed (`table chain`; none for `plan`).
pub(super) fn unkept_owners(
    plan: &FamilyPlan,
    removed: &[String],
    config: &Config,
    running: &[String],
) -> Vec<String> {
    crate::presets::unkept(
        &plan.current,
        removed,
        &config.keep,
        &config.keep_chains,
        running,
    )
    .iter()
    .map(ToString::to_string)
    .collect()
}

fn table_text(table: &Table) -> String {
    let mut t = table.clone();
    t.chains.iter_mut().for_each(|c| c.counters = None);
    t.rules.iter_mut().for_each(|r| r.counters = None);
    t.to_string()
}

fn without_counters(ruleset: &Ruleset) -> String {
    ruleset.tables.iter().map(table_text).collect()
}

/// A unified diff, per changed table, of the current table against the desired one.
fn diff(plan: &FamilyPlan) -> String {
    let mut out = String::new();
    for &name in &plan.changed {
        let before = plan.current.table(name).map(table_text).unwrap_or_default();
        let after = plan.desired.table(name).map(table_text).unwrap_or_default();
        let diff = TextDiff::from_lines(&before, &after);
        out.push_str(
            &diff
                .unified_diff()
                .header(&format!("current {name}"), &format!("planned {name}"))
                .to_string(),
        );
    }
    out
}

/// Every current chain and rule with what start does with it and why, then the rules the
/// policy adds.
/// `origins`: where the policy's rule lines come from ([`crate::policy::rule_origins`]).
fn explain(plan: &FamilyPlan, origins: &HashMap<(String, String), String>) -> String {
    let mut out = String::new();
    for (table, own) in plan.current.tables.iter().zip(&plan.ownership.tables) {
        for (chain, reason) in table.chains.iter().zip(&own.chains) {
            let kept = plan
                .desired
                .table(table.name)
                .is_some_and(|t| t.chain(&chain.name).is_some());
            match reason {
                _ if chain.is_builtin() => {}
                Some(_) if plan.policy.takes_over(table.name, &chain.name) => {
                    out.push_str(&format!(
                        "replace {} chain {}  # the policy takes it over\n",
                        table.name, chain.name
                    ))
                }
                Some(reason) if kept => out.push_str(&format!(
                    "keep    {} chain {}  # {reason}\n",
                    table.name, chain.name
                )),
                Some(_) => out.push_str(&format!(
                    "remove  {} chain {}  # no longer jumped to once the policy applies\n",
                    table.name, chain.name
                )),
                None => out.push_str(&format!(
                    "remove  {} chain {}  # not Docker's and not kept on request (keep, keep_chains)\n",
                    table.name, chain.name
                )),
            }
        }
    }
    let mut again: HashMap<(TableName, &str, &str), usize> = HashMap::new();
    for (table, rule, fate) in plan.fates() {
        if fate == Fate::Policy {
            *again
                .entry((table.name, &rule.chain, &rule.spec))
                .or_default() += 1;
        }
        out.push_str(&format!(
            "{:<7} {} -A {} {}  # {}\n",
            fate.verb(),
            table.name,
            rule.chain,
            rule.spec,
            fate.why()
        ));
    }
    for table in &plan.policy.fragment.tables {
        for rule in &table.rules {
            match again.get_mut(&(table.name, &*rule.chain, &*rule.spec)) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    let key = (rule.chain.to_string(), rule.spec.to_string());
                    let from = origins
                        .get(&key)
                        .map_or(String::new(), |o| format!(": {o}"));
                    out.push_str(&format!(
                        "add     {} -A {} {}  # the policy{from}\n",
                        table.name, rule.chain, rule.spec
                    ))
                }
            }
        }
    }
    out
}
