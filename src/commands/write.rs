//! How a family's plan reaches the kernel: as one `iptables-restore --noflush` edit of the
//! changed tables ([`crate::transaction`]), which touches no kept rule, on both backends.
//!
//! Legacy: the edit runs under the xtables lock that Docker's `iptables --wait` calls
//! queue behind, so the tables are as they were saved; libiptc still commits each table
//! whole (one replacement), keeping every rule's counters, and an edit is far cheaper than
//! reloading tens of thousands of Docker's rules from text (each rule parsed again). If
//! the kernel refuses the edit (a rule it deletes by its saved spelling does not match the
//! running one), the changed tables are replaced whole instead, as the plan composed them.
//!
//! nft: iptables-nft takes no lock, so the edit leaves every kept rule, and whatever Docker
//! adds meanwhile, alone; when it no longer applies (a rule it deletes has gone) the
//! kernel refuses all of it, and the family is saved and planned again, at most
//! [`ATTEMPTS`] times.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::family::Family;
use crate::pipeline::FamilyPlan;
use crate::report;
use crate::ruleset::{self, Ruleset, TableName};

use super::snapshots::PutBack;
use crate::system::iptables::{Backend, Iptables};

/// How many times an nft edit is planned and tried before giving up (with a pause of
/// 50 ms × the attempt number between tries: 0.5 s in all).
pub const ATTEMPTS: u32 = 5;

/// Runs `once` until it succeeds, at most [`ATTEMPTS`] times; says so (`family`: what
/// it writes) each time it tries again.
fn retrying(family: Family, mut once: impl FnMut() -> Result<()>) -> Result<()> {
    let mut attempt = 1;
    loop {
        match once() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < ATTEMPTS => {
                report::info(format!(
                    "{family}: the edit no longer applies ({e}); planning again (attempt {} of \
                     {ATTEMPTS})",
                    attempt + 1
                ));
                std::thread::sleep(Duration::from_millis(50 * u64::from(attempt)));
                attempt += 1;
            }
            Err(e) => {
                return Err(e.context(format!(
                    "the {ATTEMPTS} attempts to edit the running ruleset all failed (it kept \
                     changing, or the kernel refuses the edit)"
                )))
            }
        }
    }
}

/// Writes `plan`. On nft, `replan` plans again from a fresh save when the edit no longer
/// applies; the plan that was written then comes back, with the `iptables-save` text it
/// was planned from (`None`: `plan` itself was written).
pub fn apply(
    ipt: &Iptables,
    plan: &FamilyPlan,
    replan: &dyn Fn(&str) -> Result<FamilyPlan>,
) -> Result<Option<(FamilyPlan, String)>> {
    if ipt.backend == Backend::Legacy {
        return ipt
            .edit(&plan.edit_text())
            .or_else(|e| {
                report::info(format!(
                    "{}: the edit was refused ({e}); replacing tables {} whole instead",
                    ipt.family,
                    TableName::list(&plan.changed)
                ));
                ipt.restore(&plan.restore_text(), false)
            })
            .map(|()| None);
    }
    let mut replanned: Option<(FamilyPlan, String)> = None;
    let mut first = true;
    retrying(ipt.family, || {
        if !first {
            let saved = ipt.save(None)?;
            replanned = Some((replan(&saved)?, saved));
        }
        first = false;
        let plan = replanned.as_ref().map_or(plan, |(p, _)| p);
        if plan.changed.is_empty() {
            return Ok(());
        }
        ipt.edit(&plan.edit_text())
    })?;
    Ok(replanned)
}

/// Undoes a written `plan`. Legacy (still under the lock): its tables as they were found.
/// nft: what [`put_back`] does with the ruleset found before.
pub fn undo(ipt: &Iptables, plan: &FamilyPlan, keep_chains: &[String]) -> Result<()> {
    match ipt.backend {
        Backend::Legacy => ipt.restore(&plan.rollback_text(), false),
        Backend::Nft => put_back(ipt, &plan.current, keep_chains),
    }
}

/// Puts `before` back, with Docker's chains and rules as they are now
/// ([`crate::rollback::merge`]); only the tables that differ are written, saved and
/// merged afresh on each attempt.
pub fn put_back(ipt: &Iptables, before: &Ruleset, keep_chains: &[String]) -> Result<()> {
    retrying(ipt.family, || {
        let now = ruleset::parse(&ipt.save(None)?)
            .map_err(|e| Error::failed(format!("cannot read the running ruleset: {e}")))?;
        PutBack::new(now, before, keep_chains).apply(ipt)
    })
}
