//! `start`, `reload` and `stop`: hold the xtables lock, plan every family, validate the
//! policy, snapshot, write only the changed tables (one `iptables-restore` per family),
//! and put everything back if any write fails. A `start` whose configuration or template
//! cannot be used fails closed ([`crate::fallback`]); a `reload` keeps what runs.

use std::time::{Duration, Instant};

use std::path::PathBuf;

use crate::cli::Global;
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::fallback::{self, LastGood};
use crate::family::Family;
use crate::guard;
use crate::ownership::DockerFacts;
use crate::pipeline::{self, Applied, FamilyPlan, Mode};
use crate::policy::{self, Policy, Template};
use crate::report::{self, Level};
use crate::ruleset;
use crate::system;
use crate::system::iptables::Iptables;
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::state::StateDir;

use super::{confirm, load_config, load_policy, managed_families, test_policy};

/// Which apply command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Reload,
    Stop,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Reload => "reload",
            Verb::Stop => "stop",
        }
    }
}

/// Applies `verb`; with `confirm: Some(seconds)`, waits for the operator and rolls back
/// without a confirmation.
pub fn run(global: &Global, verb: Verb, force: bool, confirm: Option<u64>) -> Result<()> {
    system::require_root(verb.name())?;
    let state = StateDir::new(&global.state_dir);
    state.check_private()?;
    match verb {
        Verb::Stop => stop(global, &state),
        Verb::Start | Verb::Reload => match apply_config(global, &state, verb, force, confirm) {
            Err(e) if e.kind() == Kind::Config && verb == Verb::Start => {
                fail_closed(global, &state, e)
            }
            Err(e) if e.kind() == Kind::Config => {
                Err(e.context("reload refused, the running policy is kept"))
            }
            other => other,
        },
    }
}

/// The configured policy: validated, guarded, applied, remembered as the last good one.
fn apply_config(
    global: &Global,
    state: &StateDir,
    verb: Verb,
    force: bool,
    confirm: Option<u64>,
) -> Result<()> {
    let (config, template) = load_policy(load_config(global)?)?;
    if !force {
        guard::check(&config, &guard::host_connections(&config))?;
    }
    let inputs =
        pipeline::inputs_fingerprint(&system::binary_identity(), Mode::Start, &config, &template);
    let render = |family, facts: &DockerFacts| policy::render(&config, &template, family, facts);
    let families = managed_families(&config);
    let done = transact(
        global,
        state,
        verb,
        &families,
        &inputs,
        &config.keep_chains,
        &render,
    )?;
    for plan in &done.plans {
        state.record_last_good(plan.family, &last_good(&config, &template, plan)?)?;
    }
    state.set_degraded(None)?;
    match confirm {
        Some(seconds) if !done.snapshots.is_empty() => {
            confirm::await_operator(global, state, &done.snapshots, seconds)
        }
        _ => Ok(()),
    }
}

fn last_good(config: &Config, template: &Template, plan: &FamilyPlan) -> Result<LastGood> {
    let config_file = match &config.path {
        Some(path) => (
            path.display().to_string(),
            ruleset::fingerprint_of(&fs_err::read_to_string(path)?),
        ),
        None => ("built-in".to_string(), "-".to_string()),
    };
    let template_name = match &config.template {
        Some(path) => path.display().to_string(),
        None => "built-in".to_string(),
    };
    Ok(LastGood {
        applied_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        config: config_file,
        template: (template_name, ruleset::fingerprint_of(&template.source)),
        keep_chains: config.keep_chains.clone(),
        fragment: plan.policy.fragment.clone(),
    })
}

/// `stop`: the host open, Docker untouched. Needs no valid configuration: when it does
/// not load, the families and kept chains of the last good policy are used.
fn stop(global: &Global, state: &StateDir) -> Result<()> {
    let (families, keep) = match load_config(global) {
        Ok(config) => (managed_families(&config), config.keep_chains),
        Err(_) => fallback_scope(state),
    };
    let inputs = pipeline::inputs_fingerprint(
        &system::binary_identity(),
        Mode::Stop,
        &Config::builtin(),
        &Template::builtin(),
    );
    let open = |_, _: &DockerFacts| Ok(Policy::open());
    transact(global, state, Verb::Stop, &families, &inputs, &keep, &open)?;
    state.set_degraded(None)
}

/// Without a usable configuration: IPv4, IPv6 when the kernel has it and a last good
/// IPv6 policy exists (or none exists at all), and the kept chains of the last good policy.
fn fallback_scope(state: &StateDir) -> (Vec<Family>, Vec<String>) {
    let v4 = state.last_good(Family::V4);
    let v6 = std::path::Path::new("/proc/net/if_inet6").exists()
        && (state.last_good(Family::V6).is_some() || v4.is_none());
    let families = Family::ALL
        .into_iter()
        .filter(|f| *f == Family::V4 || v6)
        .collect();
    (families, v4.map(|g| g.keep_chains).unwrap_or_default())
}

/// `start` could not use the configuration (`cause`). Families whose kernel tables still
/// hold a policy keep it; the others get the last good policy, or the minimal one, composed
/// with Docker's rules as they are now. Fails with `cause` and what is active either way.
fn fail_closed(global: &Global, state: &StateDir, cause: Error) -> Result<()> {
    let (families, keep) = fallback_scope(state);
    // The configuration's [ssh] when the file itself reads (the template failed).
    let ssh = Config::load(global.config.as_deref()).ok().map(|c| c.ssh);
    let child_lock = ChildLock::new()?;
    let mut bare = Vec::new();
    let mut said = Vec::new();
    for family in families {
        let ipt = Iptables::new(family, global.backend, &child_lock)?;
        let current = pipeline::parse_saved(&ipt.save(None)?, "the running ruleset")?;
        if fallback::holds_a_policy(&current) {
            said.push(format!("{family}: the running policy is kept"));
        } else {
            bare.push(family);
        }
    }
    let fallbacks: Vec<(Family, Policy, String)> = bare
        .iter()
        .map(|&family| match state.last_good(family) {
            Some(good) => (
                family,
                Policy {
                    fragment: good.fragment.clone(),
                },
                good.describe(),
            ),
            None => (
                family,
                fallback::minimal(family, ssh.as_ref()),
                "the minimal fail-closed policy (no last good policy is recorded: INPUT drops \
                 all but loopback, established connections and SSH)"
                    .to_string(),
            ),
        })
        .collect();
    if !fallbacks.is_empty() {
        let text: String = fallbacks
            .iter()
            .map(|(_, p, _)| p.fragment.to_string())
            .collect();
        let inputs = ruleset::fingerprint_of(&format!("fallback {text}"));
        let pick = |family, _: &DockerFacts| {
            let found = fallbacks.iter().find(|(f, ..)| *f == family);
            Ok(found.expect("a fallback per family").1.clone())
        };
        transact(global, state, Verb::Start, &bare, &inputs, &keep, &pick)?;
        said.extend(
            fallbacks
                .iter()
                .map(|(f, _, what)| format!("{f}: {what} is active")),
        );
    }
    let summary = said.join("; ");
    state.set_degraded(Some(&format!("{cause}\n{summary}\n")))?;
    Err(
        Error::new(cause.kind(), format!("{cause}\nfailing closed: {summary}")).hint(
            "fix the file, check it with `iptables-docker check`, then `systemctl restart \
         iptables-docker` (or `iptables-docker start`); `iptables-docker status` shows what runs",
        ),
    )
}

/// What an apply wrote.
struct Done {
    plans: Vec<FamilyPlan>,
    /// The snapshots taken of the families that changed.
    snapshots: Vec<(Family, std::path::PathBuf)>,
}

/// Under the xtables lock: plans `families` with the policy `make` gives, checks each
/// policy with `iptables-restore --test`, snapshots, writes the changed tables, rolls every
/// family back if a write fails, and records what the kernel holds then.
fn transact(
    global: &Global,
    state: &StateDir,
    verb: Verb,
    families: &[Family],
    inputs: &str,
    keep_chains: &[String],
    make: &dyn Fn(Family, &DockerFacts) -> Result<Policy>,
) -> Result<Done> {
    let started = Instant::now();
    let child_lock = ChildLock::new()?;
    let tools = families
        .iter()
        .map(|f| Iptables::new(*f, global.backend, &child_lock))
        .collect::<Result<Vec<_>>>()?;
    let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
    let plans = plan_families(&tools, state, keep_chains, make, inputs)?;
    let snapshots = write_families(state, &plans)?;
    for (ipt, plan, saved) in &plans {
        record_applied(state, ipt, plan, saved, inputs)?;
        if !plan.changed.is_empty() {
            state.record_removed_chains(ipt.family, &plan.removed_chains())?;
        }
        report(plan);
    }
    report::info(format_args!(
        "{}: done in {} ms",
        verb.name(),
        started.elapsed().as_millis()
    ));
    drop(lock);
    Ok(Done {
        plans: plans.into_iter().map(|(_, plan, _)| plan).collect(),
        snapshots,
    })
}

/// One family's tools, plan and the `iptables-save` text it was planned from.
type Planned<'a> = (&'a Iptables, FamilyPlan, String);

/// Plans every family not unchanged since the last apply (the apply record skips the
/// tables the last apply left as they are, as `status` and `plan` do), and checks that
/// each policy loads (`iptables-restore --test`). The xtables lock is held.
fn plan_families<'a>(
    tools: &'a [Iptables],
    state: &StateDir,
    keep_chains: &[String],
    make: &dyn Fn(Family, &DockerFacts) -> Result<Policy>,
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
        let source = format!("{}-save output", ipt.family.command());
        let current = pipeline::parse_saved(&saved, &source)?;
        let mut plan = pipeline::plan_with(ipt.family, current, keep_chains, |facts| {
            make(ipt.family, facts)
        })?;
        plan.skip_applied(&applied);
        test_policy(ipt, &plan.policy)?;
        plans.push((ipt, plan, saved));
    }
    Ok(plans)
}

/// Snapshots every family that changes, then writes them one `iptables-restore` each;
/// if one fails, puts back those written. The snapshots written, per family.
fn write_families(state: &StateDir, plans: &[Planned<'_>]) -> Result<Vec<(Family, PathBuf)>> {
    let mut snapshots = Vec::new();
    let snapshot = StateDir::new_snapshot_name();
    for (ipt, plan, saved) in plans {
        if !plan.changed.is_empty() {
            snapshots.push((
                ipt.family,
                state.write_backup(&snapshot, ipt.family, saved)?,
            ));
        }
    }
    for (done, (ipt, plan, _)) in plans.iter().enumerate() {
        if plan.changed.is_empty() {
            continue;
        }
        if let Err(err) = ipt.restore(&plan.restore_text(), false) {
            return Err(roll_back(&plans[..=done], err));
        }
    }
    Ok(snapshots)
}

/// Puts the changed tables of every family written so far back as they were found.
fn roll_back(plans: &[Planned<'_>], cause: Error) -> Error {
    let mut failures = Vec::new();
    for (ipt, plan, _) in plans.iter().rev() {
        if !plan.changed.is_empty() {
            if let Err(e) = ipt.restore(&plan.rollback_text(), false) {
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
