//! `start`, `reload` and `stop`: hold the xtables lock, plan every family, validate the
//! policy, snapshot, write only the changed tables (one `iptables-restore` per family),
//! and put everything back if any write fails.

use std::time::{Duration, Instant};

use std::path::PathBuf;

use crate::backend::Selection;
use crate::cli::Global;

use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::guard;
use crate::pipeline::{self, Applied, FamilyPlan, Mode};
use crate::policy::Template;
use crate::report::{self, Level};
use crate::ruleset;
use crate::system;
use crate::system::iptables::Iptables;
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::state::StateDir;

use super::{confirm, load_policy, load_trusted_config, managed_families, plan_running, write};

/// Applies `mode`; with `confirm: Some(seconds)`, waits for the operator and rolls back
/// without a confirmation.
/// `verb` is the command as typed (`start`, `reload`, `stop`): what errors and the log
/// say.
pub fn run(
    global: &Global,
    verb: &str,
    mode: Mode,
    force: bool,
    confirm: Option<u64>,
) -> Result<()> {
    system::require_root(verb)?;
    let started = Instant::now();
    let (config, template) = load_policy(load_trusted_config(global)?)?;
    if !force {
        guard::check(&config, std::env::var("SSH_CONNECTION").ok().as_deref())?;
    }
    let selection = super::select_backend(global, &config, true)?;
    check_docker_nftables(&selection, &config, mode)?;
    report::info(format!(
        "backend: iptables-{} ({})",
        selection.backend.name(),
        selection.reason
    ));
    let child_lock = ChildLock::new()?;
    let tools = managed_families(&config)
        .into_iter()
        .map(|f| Iptables::new(f, selection.backend, &child_lock))
        .collect::<Result<Vec<_>>>()?;
    let state = StateDir::new(&global.state_dir);
    state.check_private()?;

    let inputs = pipeline::inputs_fingerprint(&system::binary_identity(), mode, &config, &template);

    let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
    let policy = (&config, &template);
    let mut plans = plan_families(&tools, &state, policy, mode, &inputs)?;
    let snapshots = write_families(&state, &mut plans, policy, mode)?;
    for (ipt, plan, saved) in &plans {
        record_applied(&state, ipt, plan, saved, &inputs)?;
        if !plan.changed.is_empty() {
            state.record_removed_chains(ipt.family, &plan.removed_chains())?;
        }
        report(plan);
    }
    report::info(format_args!(
        "{verb}: done in {} ms",
        started.elapsed().as_millis()
    ));
    drop(lock);
    match confirm {
        Some(seconds) if !snapshots.is_empty() => {
            confirm::await_operator(global, selection.backend, &state, &snapshots, seconds)
        }
        _ => Ok(()),
    }
}

/// One family's tools, plan and the `iptables-save` text it was planned from.
type Planned<'a> = (&'a Iptables, FamilyPlan, String);

/// Plans every family not unchanged since the last apply, and checks that each policy
/// loads (`iptables-restore --test`). The xtables lock is held.
fn plan_families<'a>(
    tools: &'a [Iptables],
    state: &StateDir,
    policy: (&Config, &Template),
    mode: Mode,
    inputs: &str,
) -> Result<Vec<Planned<'a>>> {
    let mut plans = Vec::new();
    for ipt in tools {
        let saved = ipt.save(None)?;
        let applied = state.applied(ipt.family);
        if applied.unchanged_since(inputs, &saved) {
            report::info(format_args!(
                "{}: unchanged since the last apply; nothing to change",
                ipt.family
            ));
            continue;
        }
        let plan = plan_running(ipt.family, &saved, policy, mode, state)?;
        if !plan.policy.fragment.tables.is_empty() {
            ipt.restore(&plan.policy.fragment.to_string(), true)
                .map_err(|e| {
                    Error::config(format!("the {} policy does not load: {e}", ipt.family))
                        .hint("fix the configuration or template; nothing was applied")
                })?;
        }
        plans.push((ipt, plan, saved));
    }
    Ok(plans)
}

/// Under Docker's own nftables firewall backend there is no DOCKER-USER chain to hold the
/// `[containers]` allow-list: `start` refuses it and says what to do; the host policy
/// alone applies as usual.
fn check_docker_nftables(selection: &Selection, config: &Config, mode: Mode) -> Result<()> {
    let Some(how) = &selection.docker_nftables else {
        return Ok(());
    };
    if mode == Mode::Start && config.containers.is_some() {
        return Err(Error::config(format!(
            "Docker runs its nftables firewall backend ({how}): it writes no iptables rules \
             and has no DOCKER-USER chain, so the [containers] section cannot filter published \
             ports"
        ))
        .hint(
            "remove the [containers] section (the host policy still applies), or run Docker \
             with \"firewall-backend\": \"iptables\" in /etc/docker/daemon.json",
        ));
    }
    report::info(format!(
        "note: Docker runs its nftables firewall backend ({how}); the host policy applies, \
         published ports are Docker's to filter"
    ));
    Ok(())
}

/// Snapshots every family that changes, then writes them one transaction each
/// ([`write::apply`]: on nft re-planned from `policy` when the edit no longer applies);
/// if one fails, puts back those written. The snapshots written, per family.
fn write_families(
    state: &StateDir,
    plans: &mut [Planned<'_>],
    policy: (&Config, &Template),
    mode: Mode,
) -> Result<Vec<(Family, PathBuf)>> {
    let mut snapshots = Vec::new();
    let snapshot = StateDir::new_snapshot_name();
    for (ipt, plan, saved) in plans.iter() {
        if !plan.changed.is_empty() {
            snapshots.push((
                ipt.family,
                state.write_backup(&snapshot, ipt.family, saved)?,
            ));
        }
    }
    for done in 0..plans.len() {
        let (ipt, plan, saved) = &mut plans[done];
        if plan.changed.is_empty() {
            continue;
        }
        let replan = |saved: &str| plan_running(ipt.family, saved, policy, mode, state);
        if let Err(err) = write::apply(ipt, plan, saved, &replan) {
            return Err(roll_back(&plans[..=done], &policy.0.kept_chains(), err));
        }
    }
    Ok(snapshots)
}

/// Puts the changed tables of every family written so far back as they were found.
fn roll_back(plans: &[Planned<'_>], keep_chains: &[String], cause: Error) -> Error {
    let mut failures = Vec::new();
    for (ipt, plan, _) in plans.iter().rev() {
        if !plan.changed.is_empty() {
            if let Err(e) = write::undo(ipt, plan, keep_chains) {
                failures.push(e.to_string());
            }
        }
    }
    if failures.is_empty() {
        cause.context("applying the new ruleset failed; the previous ruleset was put back")
    } else {
        Error::new(
            Kind::RollbackFailed,
            format!(
                "applying the new ruleset failed ({cause}) and putting the previous one back \
                 failed too: {}",
                failures.join("; ")
            ),
        )
        .hint("`iptables-docker rollback` puts the newest snapshot back (`iptables-docker snapshots` lists them; by hand: uninstall.md)")
    }
}

/// Records what the kernel holds now: the tables this apply wrote are read back, the
/// others are as `saved` had them (the xtables lock is still held).
fn record_applied(
    state: &StateDir,
    ipt: &Iptables,
    plan: &FamilyPlan,
    saved: &str,
    inputs: &str,
) -> Result<()> {
    let unreadable = |what: &str| Error::failed(format!("cannot read back {what}"));
    let mut kernel = ruleset::text_fingerprints(saved).ok_or_else(|| unreadable("the ruleset"))?;
    for name in &plan.changed {
        let written = ruleset::text_fingerprints(&ipt.save(Some(name))?)
            .ok_or_else(|| unreadable(&format!("table {name}")))?;
        kernel.retain(|(t, _)| t != name);
        kernel.extend(written);
    }
    state.record_applied(
        ipt.family,
        &Applied::recorded(inputs, &plan.desired, &kernel),
    )
}

/// "1 rule", "2 rules".
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn report(plan: &FamilyPlan) {
    let written = if plan.changed.is_empty() {
        "nothing to change".to_string()
    } else {
        format!("replaced tables {}", plan.changed.join(", "))
    };
    let counts = plan.counts();
    report::info(format_args!(
        "{}: kept {} and {} on request; removed {}; {written}",
        plan.family,
        plural(counts.docker, "Docker rule"),
        plural(counts.kept_on_request, "rule"),
        plural(counts.removed, "other rule"),
    ));
    if report::enabled(Level::Debug) {
        for (table, own) in plan.current.tables.iter().zip(&plan.ownership.tables) {
            let kept = own.kept_rules();
            let loaded = plan
                .policy
                .fragment
                .table(&table.name)
                .map_or(0, |t| t.rules.len());
            report::debug(format_args!(
                "{} {}: kept {}, replaced {} with {}{}",
                plan.family,
                table.name,
                plural(kept, "rule"),
                plural(table.rules.len() - kept, "other rule"),
                plural(loaded, "policy rule"),
                if plan.changed.contains(&table.name) {
                    ""
                } else {
                    " (unchanged)"
                }
            ));
        }
    }
}
