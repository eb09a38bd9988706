//! One module per subcommand; each takes the parsed CLI and does its work through the
//! pure pipeline and the thin [`crate::system`] layer.

#![forbid(unsafe_code)]

mod apply;
mod check;
mod confirm;
pub(crate) mod docs;
mod install;
mod plan;
mod rules;
mod snapshots;
mod status;
mod transact;
mod uninstall;
mod write;

use crate::backend::{self, Selection};
use crate::cli::{ApplyArgs, Cli, Command, Global};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::host_rule::Action;
use crate::pipeline::{self, FamilyPlan, Mode, Rendered};
use crate::policy::{Policy, Template};
use crate::report;
use crate::system::iptables::Iptables;
use crate::system::state::StateDir;
use crate::system::{probe, trust};

pub fn run(cli: Cli) -> Result<()> {
    let global = &cli.global;
    report::init(
        global.quiet,
        global.verbose,
        crate::system::journal_streams(),
    );
    match &cli.command {
        Command::Start(args) => apply_with(global, apply::Verb::Start, args),
        Command::Reload(args) => apply_with(global, apply::Verb::Reload, args),
        Command::Stop => apply::run(global, apply::Verb::Stop, true, None),
        Command::Check => check::run(global),
        Command::Confirm => confirm::confirm(global),
        Command::ConfirmWatchdog { token, deadline_ms } => {
            confirm::watchdog(global, token, *deadline_ms)
        }
        Command::Status(args) => status::run(global, args),
        Command::Snapshots => snapshots::list(global),
        Command::Rollback(args) => snapshots::rollback(global, args),
        Command::Plan(args) => plan::run(global, args),
        Command::Install(args) => install::run(global, args),
        Command::Uninstall(args) => uninstall::run(global, args),
        Command::Allow(args) => rules::add(global, Action::Allow, args),
        Command::Deny(args) => rules::add(global, Action::Deny, args),
        Command::Reject(args) => rules::add(global, Action::Reject, args),
        Command::Limit(args) => rules::add(global, Action::Limit, args),
        Command::Rules => rules::list(global),
        Command::Delete(args) => rules::delete(global, args),
        Command::Man => docs::print_man(),
        Command::Completions { shell } => docs::print_completions(*shell),
    }
}

/// `start` or `reload` with its arguments.
fn apply_with(global: &Global, verb: apply::Verb, args: &ApplyArgs) -> Result<()> {
    let window = args.confirm.map(confirm::Window::ruleset);
    apply::run(global, verb, args.force, window)
}

/// The families the configuration manages: IPv4, and IPv6 unless `ipv6 = false` or the
/// kernel has no IPv6.
fn managed_families(config: &Config) -> Vec<Family> {
    let ipv6 = config.ipv6 && std::path::Path::new("/proc/net/if_inet6").exists();
    Family::ALL
        .into_iter()
        .filter(|f| *f == Family::V4 || ipv6)
        .collect()
}

/// The backend to manage, decided from `--backend`, else the config's `backend`, else
/// auto, against what the host provides ([`crate::backend::select`]). `follow_docker`:
/// whether auto also goes where Docker's rules are (not for install, which moves them).
/// `held`: our children's lock file, when we hold the xtables lock already.
fn select_backend(
    global: &Global,
    config: &Config,
    follow_docker: bool,
    held: Option<&probe::Alongside<'_>>,
) -> Result<Selection> {
    let (choice, origin) = match (global.backend, &config.path) {
        (Some(choice), _) => (choice, "--backend".to_string()),
        (None, Some(path)) => (config.backend, format!("`backend` in {}", path.display())),
        (None, None) => (config.backend, "default".to_string()),
    };
    let facts = probe::facts(choice, held);
    backend::select(choice, &origin, &facts, follow_docker)
}

/// The one validation every command shares (`start`, `reload`, `plan`, `status`,
/// `check`, `install`, `rollback`): the configuration parsed and checked value by value,
/// the file, the template and their directories root's alone ([`trust`]); warnings (an
/// interface that does not exist yet) printed to stderr. Rendering and [`test_policy`]
/// follow per family.
fn load_config(global: &Global) -> Result<Config> {
    let config = Config::load(global.config.as_deref())?;
    if let Some(path) = &config.path {
        trust::check(path, "configuration")?;
    }
    if let Some(path) = &config.template {
        trust::check(path, "policy template")?;
    }
    for fragment in &config.fragments {
        trust::check(&fragment.path, "rule fragment")?;
    }
    let present: Vec<String> = std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for warning in config.warnings(&present) {
        eprintln!("iptables-docker: warning: {warning}");
    }
    Ok(config)
}

/// `iptables-restore --test` of a family's rendered policy: what the kernel would refuse
/// (an unknown target, a bad match) is a configuration error found before anything is
/// written.
fn test_policy(ipt: &Iptables, policy: &Policy) -> Result<()> {
    if policy.fragment.tables.is_empty() {
        return Ok(());
    }
    ipt.restore(&policy.fragment.to_string(), true)
        .map_err(|e| {
            Error::config(format!("the {} policy does not load: {e}", ipt.family))
                .hint("fix the configuration or template; nothing was applied")
        })
}

/// The configuration and its template, each read once for the whole run.
fn load_policy(config: Config) -> Result<(Config, Template)> {
    let template = Template::load(&config)?;
    Ok((config, template))
}

/// Plans one family of the running ruleset as `start` does: [`render_running`], then
/// [`finish`].
fn plan_running(
    family: Family,
    saved: &str,
    inputs: (&Config, &Template),
    mode: Mode,
    state: &StateDir,
) -> Result<FamilyPlan> {
    finish(render_running(family, saved, inputs, mode)?, state)
}

/// One family of the running ruleset (`saved`, its `iptables-save` text) read, with its
/// policy rendered ([`pipeline::render_saved`]).
fn render_running(
    family: Family,
    saved: &str,
    inputs: (&Config, &Template),
    mode: Mode,
) -> Result<Rendered> {
    let source = format!("{}-save output", family.command());
    pipeline::render_saved(family, saved, &source, inputs, mode)
}

/// The plan of a rendered family of the running ruleset: classified and composed, then
/// the apply record in `state` skips the tables the last apply left as they are.
fn finish(rendered: Rendered, state: &StateDir) -> Result<FamilyPlan> {
    let mut plan = rendered.compose()?;
    plan.skip_applied(&state.applied(plan.family));
    Ok(plan)
}
