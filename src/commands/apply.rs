//! `start`, `reload` and `stop`: what each applies and how it fails. `start` and `reload`
//! apply the configured policy (guarded against locking the admin out, remembered as the
//! last good one once it runs, or confirmed), `stop` the open one; the transaction they
//! share is [`super::transact`]. A `start` whose configuration or template cannot be used
//! fails closed ([`crate::fallback`]); a `reload` keeps what runs.

use crate::backend::Selection;
use crate::cli::Global;
use crate::config::{Config, Ssh};
use crate::error::{Error, Kind, Result};
use crate::fallback::{self, LastGood};
use crate::family::Family;
use crate::guard;
use crate::pipeline::{self, Mode, Rendered};
use crate::policy::{Policy, Template};
use crate::report;
use crate::ruleset;
use crate::system;
use crate::system::iptables::Iptables;
use crate::system::lock::ChildLock;
use crate::system::pending;
use crate::system::state::StateDir;

use super::transact::{hold_and_select, say_backend, transact, Scope};
use super::{confirm, load_config, load_policy, managed_families, render_running};

/// Which apply command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Reload,
    Stop,
}

impl Verb {
    pub(super) fn name(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Reload => "reload",
            Verb::Stop => "stop",
        }
    }
}

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
    let inputs =
        pipeline::inputs_fingerprint(&system::binary_identity(), Mode::Start, &config, &template);
    let (selection, held) = hold_and_select(global, (&config, &inputs), (state, &families), guard)?;
    check_docker_nftables(&selection, &config, Mode::Start)?;
    let render_one =
        |family, saved: &str| render_running(family, saved, (&config, &template), Mode::Start);
    let kept = config.kept_chains();
    let scope = Scope {
        backend: selection.backend,
        families,
        keep_chains: &kept,
        check_policy: true,
        record_images: true,
        confirm,
    };
    let done = transact(
        global,
        state,
        verb,
        &scope,
        &inputs,
        &render_one,
        Some(held),
    )?;
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

/// Reads `family` (`saved`, its `iptables-save` text) for a fixed `policy` (open, a last
/// good or the minimal one); `keep`: chain patterns, set patterns.
fn render_fixed(
    family: Family,
    saved: &str,
    keep: (&[String], &[String]),
    policy: &Policy,
) -> Result<Rendered> {
    let source = format!("{}-save output", family.command());
    let current = pipeline::parse_saved(saved, &source)?;
    let keep = (keep.0.to_vec(), keep.1.to_vec());
    pipeline::render(family, current, keep, |_| Ok(policy.clone()))
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
    let inputs = pipeline::inputs_fingerprint(
        &system::binary_identity(),
        Mode::Stop,
        &Config::builtin(),
        &Template::builtin(),
    );
    let (selection, held) =
        hold_and_select(global, (&config, &inputs), (state, &families), || Ok(()))?;
    let open = Policy::open();
    let render_one = |family, saved: &str| render_fixed(family, saved, (&keep, &sets), &open);
    let scope = Scope {
        backend: selection.backend,
        families,
        keep_chains: &keep,
        // The open policy is ours and fixed: there is nothing in it to check.
        check_policy: false,
        record_images: false,
        confirm: None,
    };
    transact(
        global,
        state,
        Verb::Stop,
        &scope,
        &inputs,
        &render_one,
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
        let render_one = |family, saved: &str| {
            let (_, policy, _) = fallbacks
                .iter()
                .find(|(f, ..)| *f == family)
                .expect("a fallback per family");
            render_fixed(family, saved, (&keep, &[]), policy)
        };
        let scope = Scope {
            backend: selection.backend,
            families: bare,
            keep_chains: &keep,
            check_policy: true,
            record_images: false,
            confirm: None,
        };
        transact(
            global,
            state,
            Verb::Start,
            &scope,
            &inputs,
            &render_one,
            None,
        )?;
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
