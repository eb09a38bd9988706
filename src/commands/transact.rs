//! The transaction `start`, `reload` and `stop` share, under the xtables lock: the lock
//! taken before the backend is chosen, each family found as the last apply left it (by its
//! table images on legacy, the nftables generation on nft: nothing read) or saved and
//! planned, its policy checked (`iptables-restore --test`) while its rules are classified
//! and composed, a snapshot of what runs, the changed tables written (one transaction per
//! family, the families at once), every family put back if a write fails, and the apply
//! record of what the kernel then holds.

use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use crate::backend::{Choice, Selection};
use crate::cli::Global;
use crate::config::Config;
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::pipeline::{self, Applied, Counts, FamilyPlan, Rendered};
use crate::policy::Policy;
use crate::report::{self, Level};
use crate::ruleset::{self, TableName};
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::nft_generation::Generation;
use crate::system::probe;
use crate::system::state::StateDir;
use crate::system::table_image;

use super::apply::Verb;
use super::{confirm, test_policy, write};

/// Reads one family's `iptables-save` text and renders its policy from Docker's facts in
/// it; the transaction classifies and composes it ([`super::finish`]) while the policy is
/// checked.
pub(super) type RenderOne<'a> = dyn Fn(Family, &str) -> Result<Rendered> + Sync + 'a;

/// The xtables lock, taken before the backend is chosen; the private lock file our
/// children wait on instead; and what iptables-legacy held while the backends were probed.
pub(super) struct Held {
    /// When the command asked for the lock (what "done in" counts from).
    since: Instant,
    lock: XtablesLock,
    child_lock: ChildLock,
    /// Each family as found on iptables-legacy, in family order, under the lock (`None`
    /// where iptables-legacy is not installed, or nft was asked for).
    legacy: Option<Vec<Result<Found>>>,
}

/// One family as found under the lock.
pub(super) enum Found {
    /// Its `iptables-save` text.
    Saved(String),
    /// As the last apply, made with the same inputs, left it, by `why` (on legacy every
    /// table's image, [`table_image`]; on nft the nftables generation, [`Generation`]):
    /// nothing was saved, and there is nothing to change. With the count of Docker's
    /// FORWARD rules recorded then, for the backend probe.
    AsLeft {
        docker_forward: Option<usize>,
        why: &'static str,
    },
}

/// Whether every iptables-legacy table of `family` is as the last apply with `inputs`
/// left it, by the fingerprints of the kernel's images of them (read only when that apply
/// recorded some): then [`Found::AsLeft`].
fn as_left(state: &StateDir, family: Family, inputs: &str) -> Option<Found> {
    let applied = state.applied(family);
    if !applied.has_images(inputs) {
        return None;
    }
    match table_image::fingerprints(family, |_| true) {
        Ok(images) => applied
            .images_unchanged(inputs, &images)
            .then(|| Found::AsLeft {
                docker_forward: applied.docker_forward(),
                why: "every table's kernel image is as the last apply left it",
            }),
        Err(e) => {
            report::debug(format_args!("{family}: {e}; saving instead"));
            None
        }
    }
}

/// The fingerprints of the kernel's images of the tables of `ipt`'s family that `wanted`
/// takes, for the apply record (`None` on nft, or when they cannot be read: the next start
/// saves).
fn images(ipt: &Iptables, wanted: impl Fn(&str) -> bool) -> Option<Images> {
    if ipt.backend != Backend::Legacy {
        return None;
    }
    (table_image::fingerprints(ipt.family, wanted))
        .inspect_err(|e| {
            report::debug(format_args!(
                "{}: {e}; no table images recorded",
                ipt.family
            ));
        })
        .ok()
}

/// Takes the xtables lock, then at once: chooses the backend (the probe's commands wait
/// on our child lock file; on iptables-legacy it counts Docker's FORWARD rules in the
/// IPv4 save below instead of asking `-S FORWARD`) and says it, runs `alongside`
/// (start's lockout guard), and saves `families` from iptables-legacy — the product's
/// default, saved next on most hosts (read-only; set aside when the choice is nft) —
/// unless a family's tables are as the last apply with `inputs` left them ([`as_left`]).
/// A refusal of `alongside` comes first.
pub(super) fn hold_and_select(
    global: &Global,
    (config, inputs): (&Config, &str),
    (state, families): (&StateDir, &[Family]),
    alongside: impl FnOnce() -> Result<()>,
) -> Result<(Selection, Held)> {
    let since = Instant::now();
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
    // The IPv4 save counts Docker's FORWARD rules for the probe, which would otherwise
    // copy the same filter table out of the kernel once more (`-S FORWARD`).
    let (counted, forward) = std::sync::mpsc::channel();
    let lock_path = child_lock.path();
    let (alongside, selection, legacy) = std::thread::scope(|s| {
        let probe = s.spawn(move || {
            let legacy_forward = || forward.recv().ok().flatten();
            let held = probe::Alongside {
                child_lock: lock_path,
                legacy_forward: &legacy_forward,
            };
            super::select_backend(global, config, true, Some(&held))
        });
        let saves = legacy.as_ref().map(|tools| {
            (tools.iter())
                .map(|ipt| {
                    let counted = (ipt.family == Family::V4).then(|| counted.clone());
                    s.spawn(move || {
                        let found = match as_left(state, ipt.family, inputs) {
                            Some(found) => Ok(found),
                            None => ipt.save(None).map(Found::Saved),
                        };
                        if let Some(counted) = counted {
                            let docker = match &found {
                                Ok(Found::Saved(text)) => probe::docker_forward_rules(text),
                                Ok(Found::AsLeft { docker_forward, .. }) => *docker_forward,
                                Err(_) => None,
                            };
                            // Unheard when the probe needs no count (a backend was named).
                            counted.send(docker).ok();
                        }
                        found
                    })
                })
                .collect::<Vec<_>>()
        });
        // Without an IPv4 save (or with none made) the probe asks `-S FORWARD` itself.
        drop(counted);
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
        since,
        lock,
        child_lock,
        legacy,
    };
    Ok((selection, held))
}

pub(super) fn say_backend(selection: &Selection) {
    report::info(format!(
        "backend: iptables-{} ({})",
        selection.backend.name(),
        selection.reason
    ));
}

/// What an apply covers: the backend, the families, the chains kept as Docker's are,
/// whether each policy is checked, and the `--confirm` window, if one was asked for.
pub(super) struct Scope<'a> {
    pub backend: Backend,
    pub families: Vec<Family>,
    pub keep_chains: &'a [String],
    /// Whether each family's policy is checked (`iptables-restore --test`) before anything
    /// is written; not `stop`'s open policy, which is ours and fixed.
    pub check_policy: bool,
    /// Whether the apply record holds the fingerprints of the kernel's table images (on
    /// legacy; [`Found::AsLeft`]): for `start` and `reload`, whose repeat with nothing
    /// changed then saves nothing; not for `stop`, whose repeat is rare, nor a fallback
    /// policy, so that neither pays for the copies (~1 µs per rule).
    pub record_images: bool,
    pub confirm: Option<confirm::Window<'a>>,
}

/// What an apply wrote.
pub(super) struct Done {
    /// The policy of each family planned.
    pub policies: Vec<(Family, Policy)>,
    /// With `--confirm`, when a family changed: the watchdog armed before the first write.
    pub armed: Option<confirm::Armed>,
}

/// Under the xtables lock (`held`, or taken now): plans every family of `scope` with
/// `render_one`, checks each policy (if the scope says so), snapshots, writes the
/// changed tables, rolls every family back if a write fails, and records what the kernel
/// holds then.
pub(super) fn transact(
    global: &Global,
    state: &StateDir,
    verb: Verb,
    scope: &Scope<'_>,
    inputs: &str,
    render_one: &RenderOne<'_>,
    held: Option<Held>,
) -> Result<Done> {
    let (started, lock, child_lock, saved) = match held {
        Some(h) => (h.since, h.lock, h.child_lock, h.legacy),
        None => {
            let started = Instant::now();
            let child_lock = ChildLock::new()?;
            let lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
            (started, lock, child_lock, None)
        }
    };
    let saved = saved.filter(|_| scope.backend == Backend::Legacy);
    let generation = nft_generation(scope.backend);
    let saved = saved.or_else(|| nft_as_left(state, inputs, generation.as_ref(), &scope.families));
    let tools = scope
        .families
        .iter()
        .map(|f| Iptables::new(*f, scope.backend, &child_lock))
        .collect::<Result<Vec<_>>>()?;
    let mut plans = plan_families(&tools, saved, state, render_one, scope, inputs)?;
    let arm = |snapshots: &[(Family, PathBuf)]| match scope.confirm {
        Some(window) if !snapshots.is_empty() => {
            confirm::arm(global, scope.backend, state, snapshots, window).map(Some)
        }
        _ => Ok(None),
    };
    let keep_chains = scope.keep_chains;
    let written = write_families(state, &mut plans, keep_chains, render_one, &arm, inputs)?;
    for (Planned { ipt, plan, .. }, (applied, counts)) in plans.iter().zip(&written.records) {
        state.record_applied(ipt.family, applied)?;
        if !plan.changed.is_empty() {
            state.record_removed_chains(ipt.family, &plan.removed_chains())?;
        }
        report(plan, counts);
    }
    if let Some(before) = &generation {
        let commits = plans.iter().map(|p| p.plan.changed.len()).sum();
        record_nft_generation(state, inputs, before, commits)?;
    }
    report::info(format_args!(
        "{}: done in {} ms",
        verb.name(),
        started.elapsed().as_millis()
    ));
    drop(lock);
    let policies = (plans.iter())
        .map(|Planned { plan, .. }| (plan.family, plan.policy.clone()))
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

/// On iptables-nft, the nftables generation before anything is read (`None` on legacy,
/// or when it cannot be read: then nothing is recorded).
fn nft_generation(backend: Backend) -> Option<Generation> {
    if backend != Backend::Nft {
        return None;
    }
    (Generation::read())
        .inspect_err(|e| report::debug(format_args!("{e}; the ruleset is read instead")))
        .ok()
}

/// Every family [`Found::AsLeft`] when the nftables generation (`now`) is the one the last
/// apply with `inputs` left: nothing in nftables was committed since.
fn nft_as_left(
    state: &StateDir,
    inputs: &str,
    now: Option<&Generation>,
    families: &[Family],
) -> Option<Vec<Result<Found>>> {
    let left = state.nft_generation()?;
    (left == format!("{inputs} {}", now?)).then(|| {
        let found = || Found::AsLeft {
            docker_forward: None,
            why: "the nftables generation is the one the last apply left",
        };
        families.iter().map(|_| Ok(found())).collect()
    })
}

/// Records the nftables generation this apply left when nothing but its own writes
/// (`commits`: iptables-nft commits each table of a restore on its own) came after
/// `before`; else forgets the last one (a write of someone else's may have come between
/// the read and ours).
fn record_nft_generation(
    state: &StateDir,
    inputs: &str,
    before: &Generation,
    commits: usize,
) -> Result<()> {
    let now = Generation::read().ok();
    let left = now.filter(|now| *now == before.after(commits));
    state.record_nft_generation(left.map(|now| format!("{inputs} {now}")).as_deref())
}

/// Given the snapshots just written, starts the `--confirm` watchdog if one is due.
type Arm<'a> = dyn Fn(&[(Family, PathBuf)]) -> Result<Option<confirm::Armed>> + 'a;

/// One family planned.
struct Planned<'a> {
    ipt: &'a Iptables,
    plan: FamilyPlan,
    /// The `iptables-save` text it was planned from.
    saved: String,
    /// On legacy, the fingerprints of the kernel's images of its tables, copied while it
    /// was planned ([`images`]): those of the tables the write leaves alone are recorded.
    images: Option<Images>,
}

/// `(table, fingerprint)` of the kernel's images of a family's tables ([`table_image`]).
type Images = Vec<(String, String)>;

/// The table every host policy writes (INPUT, FORWARD, OUTPUT): its image is copied after
/// the write, not while the family is planned.
const POLICY_TABLE: &str = "filter";

/// Plans every family not unchanged since the last apply, from its save (`saved`, when
/// the families were saved already: one per tool, in order), and, with `check`, checks
/// that each policy loads (`iptables-restore --test`), before anything is written. The
/// xtables lock is held. The checks run on a thread of their own, each from the moment
/// its policy is rendered, while that family is classified and composed and the next one
/// planned; so do the copies of a family's table images, from the moment it is saved.
fn plan_families<'a>(
    tools: &'a [Iptables],
    saved: Option<Vec<Result<Found>>>,
    state: &StateDir,
    render_one: &RenderOne<'_>,
    what: &Scope<'_>,
    inputs: &str,
) -> Result<Vec<Planned<'a>>> {
    let (check, copy) = (what.check_policy, what.record_images);
    std::thread::scope(|scope| {
        // The other families' saves run while the first is saved and planned (read-only;
        // the lock is held), instead of each after the family before it is planned.
        let later = (tools.iter().skip(1))
            .map(|ipt| {
                saved
                    .is_none()
                    .then(|| scope.spawn(move || ipt.save(None).map(Found::Saved)))
            })
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
                (None, None) => ipt.save(None).map(Found::Saved),
            };
            let checks = (ipt, check.then_some(&to_check));
            let copying = (copy && matches!(saved, Ok(Found::Saved(_))))
                .then(|| scope.spawn(move || images(ipt, |name| name != POLICY_TABLE)));
            match saved.and_then(|saved| plan_family(saved, state, render_one, checks, inputs)) {
                Ok(Some((plan, saved))) => plans.push((ipt, plan, saved, copying)),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(to_check);
        checker.join().expect("a policy check does not panic")?;
        let plans = (plans.into_iter())
            .map(|(ipt, plan, saved, copying)| Planned {
                ipt,
                plan,
                saved,
                images: copying.and_then(|c| c.join().expect("copying images does not panic")),
            })
            .collect();
        failed.map_or(Ok(plans), Err)
    })
}

/// One family's plan from its `iptables-save` text (`found`), with that text; `None` when
/// the family is unchanged since the last apply. With a checker (`checks`), the policy is
/// handed to it before the family is classified and composed.
fn plan_family<'a>(
    found: Found,
    state: &StateDir,
    render_one: &RenderOne<'_>,
    (ipt, checks): (&'a Iptables, Option<&Sender<(&'a Iptables, Policy)>>),
    inputs: &str,
) -> Result<Option<(FamilyPlan, String)>> {
    let saved = match found {
        Found::Saved(text) => Some(text),
        Found::AsLeft { why, .. } => {
            report::debug(format_args!("{}: {why}; nothing saved", ipt.family));
            None
        }
    };
    let Some(saved) =
        saved.filter(|saved| !state.applied(ipt.family).unchanged_since(inputs, saved))
    else {
        report::info(format_args!(
            "{}: unchanged since the last apply; nothing to change",
            ipt.family
        ));
        return Ok(None);
    };
    let rendered = render_one(ipt.family, &saved)?;
    if let Some(checks) = checks {
        // A send fails only once the checker has stopped at a refusal, reported then.
        checks.send((ipt, rendered.policy.clone())).ok();
    }
    let plan = super::finish(rendered, state)?;
    Ok(Some((plan, saved)))
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
/// nft planned again with `render_one` when the edit no longer applies), each read back once
/// written ([`read_back`]); the families' tables are the kernel's separate objects, and
/// the summary is counted meanwhile. If a write fails, puts back every family and
/// withdraws the watchdog (left armed when putting back failed: its rollback is one more
/// try).
fn write_families(
    state: &StateDir,
    plans: &mut [Planned<'_>],
    keep_chains: &[String],
    render_one: &RenderOne<'_>,
    arm: &Arm<'_>,
    inputs: &str,
) -> Result<Written> {
    let snapshot = StateDir::new_snapshot_name();
    let snapshots = (plans.iter())
        .filter(|p| !p.plan.changed.is_empty())
        .map(|Planned { ipt, saved, .. }| {
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
                .map(|p| tally(&p.plan, &p.saved))
                .collect::<Vec<_>>()
        });
        let writes = (plans.iter())
            .map(|planned| scope.spawn(move || write_one(planned, state, render_one)))
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
                    (plans[i].plan, plans[i].saved) = (plan, saved);
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
        .map(|((Planned { plan, .. }, (counts, saved)), read)| {
            let (written, images) = read?;
            let docker_forward = probe::docker_forward_rules_of(&plan.desired);
            let applied =
                applied(plan, saved?, &written, inputs).with_images(images, docker_forward);
            Ok((applied, counts))
        })
        .collect::<Result<_>>()?;
    Ok(Written { armed, records })
}

/// One family's write, if it changes, and then what the kernel holds of it
/// ([`read_back`], and on legacy its tables' [`images`]: of the tables it wrote copied
/// now, of the others as copied while it was planned). The plan that was written comes
/// back when nft had to plan again.
#[allow(clippy::type_complexity)]
fn write_one(
    planned: &Planned<'_>,
    state: &StateDir,
    render_one: &RenderOne<'_>,
) -> Result<(Option<(FamilyPlan, String)>, Result<Kernel>)> {
    let Planned { ipt, plan, .. } = planned;
    let replanned = if plan.changed.is_empty() {
        None
    } else {
        // Its policy was checked the first time.
        let replan = |saved: &str| super::finish(render_one(ipt.family, saved)?, state);
        write::apply(ipt, plan, &replan)?
    };
    // On nft, where a plan can change, there are no images.
    let changed = |name: &str| plan.changed.iter().any(|t| t.as_str() == name);
    let copied = |name: &str| (planned.images.iter().flatten()).any(|(n, _)| n == name);
    let (read, after) = std::thread::scope(|s| {
        let after = (planned.images.as_ref())
            .map(|_| s.spawn(|| images(ipt, |name| changed(name) || !copied(name))));
        let read = read_back(ipt, replanned.as_ref().map_or(plan, |(p, _)| p));
        let after = after.and_then(|a| a.join().expect("copying images does not panic"));
        (read, after)
    });
    let images = (planned.images.as_ref().zip(after))
        .map(|(before, after)| {
            let kept = before.iter().filter(|(name, _)| !changed(name)).cloned();
            kept.chain(after).collect()
        })
        .unwrap_or_default();
    Ok((replanned, read.map(|read| (read, images))))
}

/// What the summary and the apply record take from a plan and the `iptables-save` text
/// it was planned from, found while the kernel is written: the rules counted by owner, and
/// each table's fingerprint in that text.
fn tally(plan: &FamilyPlan, saved: &str) -> (Counts, Result<ReadBack>) {
    let fingerprints = ruleset::text_fingerprints(saved)
        .ok_or_else(|| Error::failed("cannot read back the ruleset"));
    (plan.counts(), fingerprints)
}

/// Puts the changed tables of every family written (or tried) back as they were found.
fn roll_back(plans: &[Planned<'_>], keep_chains: &[String], cause: Error) -> Error {
    let mut failures = Vec::new();
    for Planned { ipt, plan, .. } in plans.iter().rev() {
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

/// Fingerprints of tables as the kernel holds them, by table.
type ReadBack = Vec<(TableName, String)>;

/// What the kernel holds of a family once written: the written tables read back, and the
/// fingerprints of every table's image ([`images`]).
type Kernel = (ReadBack, Images);

/// The kernel's fingerprints of the tables `plan` changed, read back once written (the
/// xtables lock is still held). Of a written table, only the chains whose rules the
/// kernel may spell otherwise than the plan are read ([`pipeline::read_back_chains`]: on
/// a large Docker host, the policy's few chains instead of tens of thousands of Docker's
/// rules), else the whole table.
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
