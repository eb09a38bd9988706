//! Confirm or roll back: after `start --confirm`, the operator confirms on the terminal or
//! with `iptables-docker confirm`; a watchdog detached from the terminal (its own session)
//! puts the previous ruleset back at the deadline otherwise — with Docker's rules as they
//! are then, not as they were — and, when the apply followed an edit of the configuration
//! file (`allow … --apply --confirm`), that file as it was before the edit.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::Global;
use crate::error::{Error, Kind, Result};
use crate::fallback::LastGood;
use crate::family::Family;
use crate::ruleset;
use crate::system;
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::{ChildLock, XtablesLock};
use crate::system::pending::{self, FileEdit, Pending, Status};
use crate::system::state::StateDir;

use super::load_config;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

/// `iptables-docker confirm`.
pub fn confirm(global: &Global) -> Result<()> {
    system::require_root("confirm")?;
    match pending::confirm_all(&StateDir::new(&global.state_dir)) {
        0 => Err(Error::failed("nothing is waiting for a confirmation")
            .hint("it was confirmed already, or its deadline passed and it was rolled back")),
        _ => {
            println!("confirmed: the new ruleset stays");
            Ok(())
        }
    }
}

/// A `--confirm`: how long the operator has, and the edit of the configuration file that
/// a rollback undoes too (`allow … --apply --confirm`).
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub seconds: u64,
    pub edit: Option<&'a FileEdit>,
}

impl Window<'_> {
    /// A confirmation of the ruleset alone (`start|reload|rollback --confirm`).
    pub fn ruleset(seconds: u64) -> Self {
        Window {
            seconds,
            edit: None,
        }
    }
}

/// A `--confirm` apply made safe before the kernel changes: its pending record exists and
/// its watchdog runs (in its own session, so a terminal that dies takes neither along).
/// Whatever happens to the applying process from here on, the watchdog rolls back at the
/// deadline unless the change is confirmed.
pub struct Armed {
    pending: Pending,
    seconds: u64,
}

/// Records the pending apply with the snapshots it goes back to and starts the watchdog,
/// whose deadline is `window.seconds` from now until [`Armed::await_operator`] sets it
/// again once the new ruleset runs. Call it after the snapshots are written and before
/// the first table is.
pub fn arm(
    global: &Global,
    backend: Backend,
    state: &StateDir,
    snapshots: &[(Family, PathBuf)],
    window: Window<'_>,
) -> Result<Armed> {
    pending::clear_outcomes(state);
    let pending = Pending::create(state, snapshots, window.edit)?;
    let deadline = now_ms() + u128::from(window.seconds) * 1000;
    if let Err(e) = spawn_watchdog(global, backend, &pending.token, deadline) {
        pending.cancel();
        return Err(e);
    }
    Ok(Armed {
        pending,
        seconds: window.seconds,
    })
}

impl Armed {
    /// The apply wrote nothing (it failed and undid itself): no rollback is due.
    pub fn cancel(self) {
        self.pending.cancel();
    }

    /// The new ruleset runs: keeps `last_good` (per family) as the last good policy to
    /// be, starts the window, and waits for the operator or the watchdog's outcome.
    pub fn await_operator(
        self,
        global: &Global,
        state: &StateDir,
        last_good: &[(Family, LastGood)],
    ) -> Result<()> {
        for (family, good) in last_good {
            self.pending.record_last_good(*family, good)?;
        }
        let (seconds, pending) = (self.seconds, self.pending);
        let deadline = now_ms() + u128::from(seconds) * 1000;
        pending.set_deadline(deadline)?;
        eprintln!(
            "Type `yes` within {seconds} s to keep the new ruleset (or run `iptables-docker \
             confirm` from another session); otherwise the previous ruleset comes back."
        );
        let state_for_input = state.clone();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
                if matches!(line.trim(), "yes" | "y") {
                    pending::confirm_all(&state_for_input);
                    break;
                }
            }
        });
        let give_up = deadline + u128::from(global.wait) * 1000 + 30_000;
        loop {
            match pending.status() {
                Status::Confirmed => {
                    pending.settle_confirmed(state);
                    pending.clean_up();
                    println!("confirmed: the new ruleset stays");
                    return Ok(());
                }
                Status::RolledBack(outcome) => {
                    pending.clean_up();
                    return Err(Error::new(
                        Kind::NotConfirmed,
                        format!("not confirmed within {seconds} s: {outcome}"),
                    ));
                }
                Status::Waiting | Status::RollingBack if now_ms() < give_up => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => {
                    return Err(
                        Error::failed("the rollback watchdog did not report back").hint(
                            "check `iptables-docker status`; snapshots are in the state directory",
                        ),
                    )
                }
            }
        }
    }
}

fn spawn_watchdog(global: &Global, backend: Backend, token: &str, deadline: u128) -> Result<()> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--state-dir").arg(&global.state_dir);
    cmd.args([
        "--backend",
        backend.name(),
        "--wait",
        &global.wait.to_string(),
    ]);
    if let Some(config) = &global.config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["confirm-watchdog", token, &deadline.to_string()]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    system::new_session_on_exec(&mut cmd);
    cmd.spawn()
        .map(drop)
        .map_err(|e| Error::failed(format!("cannot start the rollback watchdog: {e}")))
}

/// The detached watchdog: waits until `deadline_ms`, then rolls back unless confirmed.
pub fn watchdog(global: &Global, token: &str, deadline_ms: u128) -> Result<()> {
    let state = StateDir::new(&global.state_dir);
    let pending = Pending::open(&state, token);
    while now_ms() < pending.deadline().unwrap_or(deadline_ms) {
        match pending.status() {
            Status::Waiting => std::thread::sleep(Duration::from_millis(100)),
            Status::Confirmed => {
                pending.settle_confirmed(&state);
                return Ok(());
            }
            _ => {
                pending.forget_edit();
                return Ok(());
            }
        }
    }
    if !pending.claim_rollback() {
        return Ok(());
    }
    let outcome = match roll_back(global, &pending) {
        Ok(()) => "the previous ruleset was put back".to_string(),
        Err(e) => format!("putting the previous ruleset back FAILED: {e}"),
    };
    let file = match pending.file_edit() {
        Ok(edit) => edit.map(|edit| undo_edit(&edit)),
        Err(e) => Some(format!("; putting the configuration file back FAILED: {e}")),
    };
    let outcome = format!("{outcome}{}", file.unwrap_or_default());
    system::syslog::warning(&format!(
        "a change made with --confirm was not confirmed in time: {outcome}"
    ));
    pending.finish_rollback(&outcome)
}

/// Puts the edited configuration file back (after the ruleset, whose rollback reads the
/// edited configuration: it loads, and an edit of rules changes neither the backend nor
/// the kept chains); what happened, as the end of the outcome.
fn undo_edit(edit: &FileEdit) -> String {
    let path = edit.path.display();
    match edit.undo() {
        Ok(true) if edit.before.is_some() => format!(", and {path} as it was"),
        Ok(true) => format!(", and {path}, which the edit created, removed"),
        Ok(false) => format!(
            "; {path} was changed again since the edit, so it was left as it is: \
             check it before the next reload"
        ),
        Err(e) => format!("; putting {path} back FAILED: {e}"),
    }
}

/// Puts each family's snapshot back, merged with Docker's rules as they are now.
fn roll_back(global: &Global, pending: &Pending) -> Result<()> {
    let config = load_config(global)?;
    let backend = super::select_backend(global, &config, true, None)?.backend;
    let child_lock = ChildLock::new()?;
    let _lock = XtablesLock::acquire(Duration::from_secs(global.wait))?;
    for (family, snapshot) in pending.snapshots()? {
        let ipt = Iptables::new(family, backend, &child_lock)?;
        let before = ruleset::parse(&fs_err::read_to_string(&snapshot)?)
            .map_err(|e| Error::failed(format!("cannot read the snapshot: {e}")))?;
        super::write::put_back(&ipt, &before, &config.kept_chains())?;
    }
    Ok(())
}
