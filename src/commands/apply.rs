//! `start`, `reload` and `stop`: hold the xtables lock, plan every family, validate the
//! policy, snapshot, write only the changed tables (one transaction per family), and put
//! everything back if any write fails. A `start` whose configuration or template cannot
//! be used fails closed ([`crate::fallback`]); a `reload` keeps what runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::backend::{Choice, Selection};
use crate::cli::Global;
use crate::config::{Config, Ssh};
use crate::error::{Error, Kind, Result};
use crate::fallback::{self, LastGood};
use crate::family::Family;
use crate::guard;
use crate::pipeline::{self, Applied, Counts, FamilyPlan, Mode};
use crate::policy::{Policy, Template};
use crate::report::{self, Level};
use crate::ruleset::{self, TableName};
use crate::system;
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::pending;
use crate::system::state::StateDir;

use super::{
    confirm, load_config, load_policy, managed_families, plan_running, test_policy, write,
};

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

/// Plans one family from its `iptables-save` text, the apply record already consulted;
/// hands a policy that needs `iptables-restore --test` to the [`Tester`] as soon as it is
/// rendered.
type PlanOne<'a> = dyn Fn(Family, &str, &Tester<'_>) -> Result<FamilyPlan> + Sync + 'a;

/// Where a rendered policy goes to be checked (`iptables-restore --test`) while its family
/// is composed; a no-op for a re-plan, whose policy was checked the first time.
type Tester<'a> = dyn Fn(&Policy) + 'a;

/// Applies `verb`; with `confirm: Some(window)`, waits for the operator and rolls back
/// without a confirmation.
pub fn run(
    global: &Global,
    verb: Verb,
    force: bool,
    confirm: Option<confirm::Window<'_>>,
) -> Result<()> {
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

/// The xtables lock, taken before the backend is chosen; the private lock file our
/// children wait on instead; and what iptables-legacy held while the backends were probed.
struct Held {
    lock: XtablesLock,
    child_lock: ChildLock,
    /// Each family's `iptables-legacy-save` text, in family order, saved under the lock
    /// (`None` where iptables-legacy is not installed, or nft was asked for).
    legacy: Option<Vec<Result<String>>>,
}

/// Takes the xtables lock, then at once: chooses the backend (the probe's commands wait
/// on our child lock file) and says it, runs `alongside` (start's lockout guard), and saves
/// `families` from iptables-legacy — the product's default, saved next on most hosts
/// (read-only; set aside when the choice is nft). A refusal of `alongside` comes first.
fn hold_and_select(
    global: &Global,
    config: &Config,
    families: &[Family],
    alongside: impl FnOnce() -> Result<()>,
) -> Result<(Selection, Held)> {
    let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
    let child_lock = ChildLock::new()?;
    let legacy = (global.backend.unwrap_or(config.backend) != Choice::Nft)
        .then(|| {
            (families.iter())
                .map(|f| Iptables::new(*f, Backend::Legacy, &child_lock))
                .collect::<Result<Vec<_>>>()
                .ok()
        })
        .flatten();
    let (alongside, selection, legacy) = std::thread::scope(|s| {
        let probe = s.spawn(|| super::select_backend(global, config, true, Some(&child_lock)));
        let saves = legacy.as_ref().map(|tools| {
            (tools.iter())
                .map(|ipt| s.spawn(move || ipt.save(None)))
                .collect::<Vec<_>>()
        });
        let alongside = alongside();
        let legacy = saves.map(|saves| {
            (saves.into_iter())
                .map(|save| save.join().expect("a save does not panic"))
                .collect()
        });
        let selection = probe.join().expect("the backend probe does not panic");
        (alongside, selection, legacy)
    });
    alongside?;
    let selection = selection?;
    say_backend(&selection);
    let held = Held {
        lock,
        child_lock,
        legacy,
    };
    Ok((selection, held))
}

fn say_backend(selection: &Selection) {
    report::info(format!(
        "backend: iptables-{} ({})",
        selection.backend.name(),
        selection.reason
    ));
}

/// The configured policy: validated, guarded, applied, remembered as the last good one.
fn apply_config(
    global: &Global,
    state: &StateDir,
    verb: Verb,
    force: bool,
    confirm: Option<confirm::Window<'_>>,
) -> Result<()> {
    let (config, template) = load_policy(load_config(global)?)?;
    let families = managed_families(&config);
    let guard = || {
        if force {
            return Ok(());
        }
        guard::check(&config, &guard::host_connections(&config))
    };
    let (selection, held) = hold_and_select(global, &config, &families, guard)?;
    check_docker_nftables(&selection, &config, Mode::Start)?;
    let inputs =
        pipeline::inputs_fingerprint(&system::binary_identity(), Mode::Start, &config, &template);
    let plan_one = |family, saved: &str, tester: &Tester<'_>| {
        plan_running(
            family,
            saved,
            (&config, &template),
            Mode::Start,
            state,
            tester,
        )
    };
    let kept = config.kept_chains();
    let scope = Scope {
        backend: selection.backend,
        families,
        keep_chains: &kept,
        confirm,
    };
    let done = transact(global, state, verb, &scope, &inputs, &plan_one, Some(held))?;
    let good = (done.policies.iter())
        .map(|(family, policy)| Ok((*family, last_good(&config, &template, policy)?)))
        .collect::<Result<Vec<_>>>()?;
    state.set_degraded(None)?;
    match done.armed {
        // Last good only once confirmed: an unconfirmed policy may be the lockout.
        Some(armed) => armed.await_operator(global, state, &good),
        None => {
            pending::clear_outcomes(state);
            for (family, good) in &good {
                state.record_last_good(*family, good)?;
            }
            Ok(())
        }
    }
}

fn last_good(config: &Config, template: &Template, policy: &Policy) -> Result<LastGood> {
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
        keep_chains: config.kept_chains(),
        fragment: policy.fragment.clone(),
    })
}

/// Plans `family` with a fixed `policy` (open, a last good or the minimal one), handed to
/// `tester` before it is composed.
fn plan_fixed(
    family: Family,
    saved: &str,
    keep: (&[String], &[String]),
    policy: &Policy,
    state: &StateDir,
    tester: &Tester<'_>,
) -> Result<FamilyPlan> {
    let source = format!("{}-save output", family.command());
    let current = pipeline::parse_saved(saved, &source)?;
    let mut plan = pipeline::plan_with(family, current, keep, |_| {
        tester(policy);
        Ok(policy.clone())
    })?;
    plan.skip_applied(&state.applied(family));
    Ok(plan)
}

/// `stop`: the host open, Docker untouched. Needs no valid configuration: when it does
/// not load, the families and kept chains of the last good policy are used (and the
/// backend from `--backend` or auto).
fn stop(global: &Global, state: &StateDir) -> Result<()> {
    let (config, families, keep, sets) = match load_config(global) {
        Ok(config) => {
            let families = managed_families(&config);
            let (keep, sets) = (config.kept_chains(), config.kept_sets());
            (config, families, keep, sets)
        }
        Err(_) => {
            let (families, keep) = fallback_scope(state);
            (Config::builtin(), families, keep, Vec::new())
        }
    };
    let (selection, held) = hold_and_select(global, &config, &families, || Ok(()))?;
    let inputs = pipeline::inputs_fingerprint(
        &system::binary_identity(),
        Mode::Stop,
        &Config::builtin(),
        &Template::builtin(),
    );
    // The open policy is ours and fixed: there is nothing in it to check.
    let open = Policy::open();
    let plan_one = |family, saved: &str, _: &Tester<'_>| {
        plan_fixed(family, saved, (&keep, &sets), &open, state, &|_| {})
    };
    let scope = Scope {
        backend: selection.backend,
        families,
        keep_chains: &keep,
        confirm: None,
    };
    transact(
        global,
        state,
        Verb::Stop,
        &scope,
        &inputs,
        &plan_one,
        Some(held),
    )?;
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
    // The configuration's [ssh] and backend when the file itself reads (the template failed).
    let config = Config::load(global.config.as_deref()).ok();
    let selection = super::select_backend(
        global,
        config.as_ref().unwrap_or(&Config::builtin()),
        true,
        None,
    )?;
    let ssh = config.map(|c| c.ssh);
    let child_lock = ChildLock::new()?;
    let mut bare = Vec::new();
    let mut said = Vec::new();
    for family in families {
        let ipt = Iptables::new(family, selection.backend, &child_lock)?;
        let current = pipeline::parse_saved(&ipt.save(None)?, "the running ruleset")?;
        if fallback::holds_a_policy(&current) {
            said.push(format!("{family}: the running policy is kept"));
        } else {
            bare.push(family);
        }
    }
    let fallbacks = fallback_policies(state, &bare, ssh.as_ref());
    if !fallbacks.is_empty() {
        say_backend(&selection);
        let text: String = fallbacks
            .iter()
            .map(|(_, p, _)| p.fragment.to_string())
            .collect();
        let inputs = ruleset::fingerprint_of(&format!("fallback {text}"));
        let plan_one = |family, saved: &str, tester: &Tester<'_>| {
            let (_, policy, _) = fallbacks
                .iter()
                .find(|(f, ..)| *f == family)
                .expect("a fallback per family");
            plan_fixed(family, saved, (&keep, &[]), policy, state, tester)
        };
        let scope = Scope {
            backend: selection.backend,
            families: bare,
            keep_chains: &keep,
            confirm: None,
        };
        transact(global, state, Verb::Start, &scope, &inputs, &plan_one, None)?;
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
             iptables-docker` (or `iptables-docker start`); `iptables-docker status` shows what \
             runs",
        ),
    )
}

/// Per family: the last good policy, else the minimal one, and a sentence naming it.
fn fallback_policies(
    state: &StateDir,
    families: &[Family],
    ssh: Option<&Ssh>,
) -> Vec<(Family, Policy, String)> {
    families
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
                fallback::minimal(family, ssh),
                "the minimal fail-closed policy (no last good policy is recorded: INPUT drops \
                 all but loopback, established connections and SSH)"
                    .to_string(),
            ),
        })
        .collect()
}

/// What an apply covers: the backend, the families, the chains kept as Docker's are, and
/// the `--confirm` window, if one was asked for.
struct Scope<'a> {
    backend: Backend,
    families: Vec<Family>,
    keep_chains: &'a [String],
    confirm: Option<confirm::Window<'a>>,
}

/// What an apply wrote.
struct Done {
    /// The policy of each family planned.
    policies: Vec<(Family, Policy)>,
    /// With `--confirm`, when a family changed: the watchdog armed before the first write.
    armed: Option<confirm::Armed>,
}

/// Under the xtables lock (`held`, or taken now): plans every family of `scope` with
/// `plan_one`, checks each policy with `iptables-restore --test`, snapshots, writes the
/// changed tables, rolls every family back if a write fails, and records what the kernel
/// holds then.
fn transact(
    global: &Global,
    state: &StateDir,
    verb: Verb,
    scope: &Scope<'_>,
    inputs: &str,
    plan_one: &PlanOne<'_>,
    held: Option<Held>,
) -> Result<Done> {
    let started = Instant::now();
    let (lock, child_lock, saved) = match held {
        Some(h) => (h.lock, h.child_lock, h.legacy),
        None => {
            let child_lock = ChildLock::new()?;
            let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
            (lock, child_lock, None)
        }
    };
    let saved = saved.filter(|_| scope.backend == Backend::Legacy);
    let tools = scope
        .families
        .iter()
        .map(|f| Iptables::new(*f, scope.backend, &child_lock))
        .collect::<Result<Vec<_>>>()?;
    let mut plans = plan_families(&tools, saved, state, plan_one, inputs)?;
    let arm = |snapshots: &[(Family, PathBuf)]| match scope.confirm {
        Some(window) if !snapshots.is_empty() => {
            confirm::arm(global, scope.backend, state, snapshots, window).map(Some)
        }
        _ => Ok(None),
    };
    let written = write_families(state, &mut plans, scope.keep_chains, plan_one, &arm, inputs)?;
    for ((ipt, plan, _), (applied, counts)) in plans.iter().zip(&written.records) {
        state.record_applied(ipt.family, applied)?;
        if !plan.changed.is_empty() {
            state.record_removed_chains(ipt.family, &plan.removed_chains())?;
        }
        report(plan, counts);
    }
    report::info(format_args!(
        "{}: done in {} ms",
        verb.name(),
        started.elapsed().as_millis()
    ));
    drop(lock);
    let policies = (plans.iter())
        .map(|(_, plan, _)| (plan.family, plan.policy.clone()))
        .collect();
    // The command ends with this apply, and freeing a large Docker host's rulesets one
    // string at a time (hundreds of thousands) takes longer than everything after the
    // write: the memory goes back at exit.
    std::mem::forget(plans);
    Ok(Done {
        policies,
        armed: written.armed,
    })
}

/// Given the snapshots just written, starts the `--confirm` watchdog if one is due.
type Arm<'a> = dyn Fn(&[(Family, PathBuf)]) -> Result<Option<confirm::Armed>> + 'a;

/// One family's tools, plan and the `iptables-save` text it was planned from.
type Planned<'a> = (&'a Iptables, FamilyPlan, String);

/// Plans every family not unchanged since the last apply, from its save (`saved`, when
/// the families were saved already: one per tool, in order), and checks that each policy
/// handed to the [`Tester`] loads (`iptables-restore --test`), before anything is
/// written. The xtables lock is held. The checks run on a thread of their own, each from
/// the moment its policy is rendered, while that family is composed and the next one
/// planned.
fn plan_families<'a>(
    tools: &'a [Iptables],
    saved: Option<Vec<Result<String>>>,
    state: &StateDir,
    plan_one: &PlanOne<'_>,
    inputs: &str,
) -> Result<Vec<Planned<'a>>> {
    std::thread::scope(|scope| {
        // The other families' saves run while the first is saved and planned (read-only;
        // the lock is held), instead of each after the family before it is planned.
        let later = (tools.iter().skip(1))
            .map(|ipt| saved.is_none().then(|| scope.spawn(move || ipt.save(None))))
            .collect::<Vec<_>>();
        let mut early = saved.map(Vec::into_iter);
        let (to_check, checks) = std::sync::mpsc::channel::<(&Iptables, Policy)>();
        // In family order: the first family's refusal is the one reported.
        let checker = scope.spawn(move || {
            (checks.into_iter()).try_for_each(|(ipt, policy)| test_policy(ipt, &policy))
        });
        let mut plans = Vec::new();
        let mut failed = None;
        for (ipt, save) in tools.iter().zip(std::iter::once(None).chain(later)) {
            let saved = match (early.as_mut().and_then(Iterator::next), save) {
                (Some(text), _) => text,
                (None, Some(save)) => save.join().expect("a save does not panic"),
                (None, None) => ipt.save(None),
            };
            // A send fails only once the checker has stopped at a refusal, reported below.
            let tester = |policy: &Policy| drop(to_check.send((ipt, policy.clone())));
            match saved.and_then(|saved| plan_family(ipt, saved, state, plan_one, &tester, inputs))
            {
                Ok(Some(planned)) => plans.push((ipt, planned.0, planned.1)),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(to_check);
        checker.join().expect("a policy check does not panic")?;
        failed.map_or(Ok(plans), Err)
    })
}

/// One family's plan from its `iptables-save` text `saved`, with that text; `None` when
/// the family is unchanged since the last apply.
fn plan_family(
    ipt: &Iptables,
    saved: String,
    state: &StateDir,
    plan_one: &PlanOne<'_>,
    tester: &Tester<'_>,
    inputs: &str,
) -> Result<Option<(FamilyPlan, String)>> {
    if state.applied(ipt.family).unchanged_since(inputs, &saved) {
        report::info(format_args!(
            "{}: unchanged since the last apply; nothing to change",
            ipt.family
        ));
        return Ok(None);
    }
    let plan = plan_one(ipt.family, &saved, tester)?;
    Ok(Some((plan, saved)))
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

/// What the writes left, per family planned (in order): the apply record of what the
/// kernel then holds, and the family's rules counted by owner (for the summary).
struct Written {
    armed: Option<confirm::Armed>,
    records: Vec<(Applied, Counts)>,
}

/// Snapshots every family that changes, hands the snapshots to `arm` (which starts the
/// `--confirm` watchdog, so that it runs before the kernel changes), then writes the
/// families at once, one transaction each on a thread of its own ([`write::apply`]: on
/// nft re-planned with `plan_one` when the edit no longer applies), each read back once
/// written ([`read_back`]); the families' tables are the kernel's separate objects, and
/// the summary is counted meanwhile. If a write fails, puts back every family and
/// withdraws the watchdog (left armed when putting back failed: its rollback is one more
/// try).
fn write_families(
    state: &StateDir,
    plans: &mut [Planned<'_>],
    keep_chains: &[String],
    plan_one: &PlanOne<'_>,
    arm: &Arm<'_>,
    inputs: &str,
) -> Result<Written> {
    let snapshot = StateDir::new_snapshot_name();
    let snapshots = (plans.iter())
        .filter(|(_, plan, _)| !plan.changed.is_empty())
        .map(|(ipt, _, saved)| {
            Ok((
                ipt.family,
                state.write_backup(&snapshot, ipt.family, saved)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let armed = arm(&snapshots)?;
    let (outcomes, mut tallies) = std::thread::scope(|scope| {
        let tallies = scope.spawn(|| {
            plans
                .iter()
                .map(|(_, p, s)| tally(p, s))
                .collect::<Vec<_>>()
        });
        let writes = (plans.iter())
            .map(|(ipt, plan, _)| scope.spawn(move || write_one(ipt, plan, plan_one)))
            .collect::<Vec<_>>();
        let outcomes = (writes.into_iter())
            .map(|w| w.join().expect("a write does not panic"))
            .collect::<Vec<_>>();
        (outcomes, tallies.join().expect("counting does not panic"))
    });
    let mut failed = None;
    let mut read = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok((replanned, chains)) => {
                if let Some((plan, saved)) = replanned {
                    tallies[i] = tally(&plan, &saved);
                    (plans[i].1, plans[i].2) = (plan, saved);
                }
                read.push(chains);
            }
            Err(e) => failed = failed.or(Some(e)),
        }
    }
    if let Some(err) = failed {
        let err = roll_back(plans, keep_chains, err);
        if err.kind() != Kind::RollbackFailed {
            if let Some(armed) = armed {
                armed.cancel();
            }
        }
        return Err(err);
    }
    let records = (plans.iter().zip(tallies).zip(read))
        .map(|(((_, plan, _), (counts, saved)), read)| {
            Ok((applied(plan, saved?, &read?, inputs), counts))
        })
        .collect::<Result<_>>()?;
    Ok(Written { armed, records })
}

/// One family's write, if it changes, and then what the kernel holds of it
/// ([`read_back`]). The plan that was written comes back when nft had to plan again.
#[allow(clippy::type_complexity)]
fn write_one(
    ipt: &Iptables,
    plan: &FamilyPlan,
    plan_one: &PlanOne<'_>,
) -> Result<(Option<(FamilyPlan, String)>, Result<ReadBack>)> {
    let replanned = if plan.changed.is_empty() {
        None
    } else {
        let replan = |saved: &str| plan_one(ipt.family, saved, &|_| {});
        write::apply(ipt, plan, &replan)?
    };
    let read = read_back(ipt, replanned.as_ref().map_or(plan, |(p, _)| p));
    Ok((replanned, read))
}

/// What the summary and the apply record take from a plan and the `iptables-save` text
/// it was planned from, found while the kernel is written: the rules counted by owner, and
/// each table's fingerprint in that text.
fn tally(plan: &FamilyPlan, saved: &str) -> (Counts, Result<Vec<(TableName, String)>>) {
    let fingerprints = ruleset::text_fingerprints(saved)
        .ok_or_else(|| Error::failed("cannot read back the ruleset"));
    (plan.counts(), fingerprints)
}

/// Puts the changed tables of every family written (or tried) back as they were found.
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

/// The kernel's fingerprints, per table, of the tables `plan` changed, read back once
/// written (the xtables lock is still held). Of a written table, only the chains whose
/// rules the kernel may spell otherwise than the plan are read
/// ([`pipeline::read_back_chains`]: on a large Docker host, the policy's few chains
/// instead of tens of thousands of Docker's rules), else the whole table.
type ReadBack = Vec<(TableName, String)>;

fn read_back(ipt: &Iptables, plan: &FamilyPlan) -> Result<ReadBack> {
    let mut kernel = Vec::new();
    for &name in &plan.changed {
        let desired = plan.desired.table(name);
        let chains = desired.and_then(|d| pipeline::read_back_chains(plan.current.table(name), d));
        if let (Some(desired), Some(chains)) = (desired, chains) {
            let read = (chains.into_iter())
                .map(|chain| Ok((chain, ipt.chain_rules(name.as_str(), chain)?)))
                .collect::<Result<Vec<_>>>()?;
            kernel.push((name, desired.fingerprint_with(&read)));
            continue;
        }
        let written = ruleset::text_fingerprints(&ipt.save(Some(name))?)
            .ok_or_else(|| Error::failed(format!("cannot read back table {name}")))?;
        kernel.extend(written);
    }
    Ok(kernel)
}

/// The apply record of `plan`: the tables it wrote as read back (`written`), the others
/// as the save it was planned from had them (`saved`, that save's fingerprints).
fn applied(plan: &FamilyPlan, saved: ReadBack, written: &ReadBack, inputs: &str) -> Applied {
    let mut kernel = saved;
    kernel.retain(|(t, _)| !plan.changed.contains(t));
    kernel.extend(written.iter().cloned());
    Applied::recorded(inputs, &plan.desired, &kernel)
}

/// "1 rule", "2 rules".
fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn report(plan: &FamilyPlan, counts: &Counts) {
    let written = if plan.changed.is_empty() {
        "nothing to change".to_string()
    } else {
        format!("replaced tables {}", TableName::list(&plan.changed))
    };
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
                .table(table.name)
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
