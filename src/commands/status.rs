//! `status`: is the firewall on, and who can reach what. The exposure is read from the
//! ruleset the kernel holds ([`crate::exposure`]), per family; then the backend, the unit,
//! the configuration in use, the last apply, the newest snapshot, and warnings: drift from
//! the policy (with the differing rules), rules `start` would remove, rules in both
//! iptables backends. Text, or with `--json` the versioned document README.md describes.
//! Changes nothing. Exit code: 0 on, 3 off (the host is open), 154 drift, 155 split.

use std::path::Path;

use serde::Serialize;

use crate::cli::{Global, StatusArgs};
use crate::error::{Error, Kind, Result};
use crate::exposure::{self, Exposure, Reach};
use crate::family::Family;
use crate::pipeline::{Counts, FamilyPlan, Mode};
use crate::policy::Template;
use crate::ruleset::{Ruleset, TableName};
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::ChildLock;
use crate::system::state::{utc_iso8601, StateDir};
use crate::system::{self, host, pending};

use super::{load_config, managed_families, plan_running, test_policy};

/// The version of the `--json` document; bumped when a field changes meaning or goes.
pub const JSON_SCHEMA: u32 = 1;

/// What `iptables` on PATH resolves to, following the alternatives links.
fn iptables_backend() -> String {
    let Ok(mut path) = which::which("iptables") else {
        return "no `iptables` in PATH".to_string();
    };
    let mut hops = vec![path.display().to_string()];
    while let Ok(next) = std::fs::read_link(&path) {
        path = if next.is_absolute() {
            next
        } else {
            path.parent().unwrap_or(Path::new("/")).join(next)
        };
        hops.push(path.display().to_string());
        if hops.len() > 8 {
            break;
        }
    }
    hops.join(" -> ")
}

/// The rules in `iptables-save -c` text (`[packets:bytes] -A …`, or `-A …` without counters).
fn rule_count(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("-A ") || (l.starts_with('[') && l.contains("] -A ")))
        .count()
}

/// The firewall as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// The policy is loaded and is what the configuration renders.
    On,
    /// The policy is loaded, but the running ruleset differs from it.
    Drift,
    /// INPUT accepts new connections to every port: the host is open.
    Off,
    /// Rules live in both iptables-legacy and iptables-nft.
    Split,
}

impl State {
    fn headline(self) -> &'static str {
        match self {
            State::On => "ON: the host policy is loaded and matches the configuration",
            State::Drift => "ON, but the running ruleset DIFFERS from the policy (drift)",
            State::Off => "OFF: the host is open (INPUT accepts new connections to every port)",
            State::Split => {
                "SPLIT: rules live in both iptables-legacy and iptables-nft; packets traverse both"
            }
        }
    }

    fn error(self) -> Option<Error> {
        let (kind, message, hint) = match self {
            State::On => return None,
            State::Off => (
                Kind::Off,
                "the firewall is off: the host is open",
                "`systemctl start iptables-docker` (or `iptables-docker start`) loads the policy",
            ),
            State::Drift => (
                Kind::Drift,
                "the running ruleset is not what the policy would load",
                "`iptables-docker plan --diff` shows how; `systemctl reload iptables-docker` \
                 loads the configured policy — after a --confirm that was rolled back, the \
                 configuration still holds the rejected change: fix it first",
            ),
            State::Split => (
                Kind::Split,
                "rules live in both the iptables-legacy and the iptables-nft tables",
                "`iptables-docker install` moves the rules to one backend; then restart Docker",
            ),
        };
        Some(Error::new(kind, message).hint(hint))
    }
}

/// One family's part of the report.
#[derive(Debug, Serialize)]
struct FamilyReport {
    family: &'static str,
    #[serde(flatten)]
    exposure: Exposure,
    counts: Counts,
    /// Rules that differ from the policy: `- ` running but not in the policy's ruleset,
    /// `+ ` in it but not running; `table: -A CHAIN spec`.
    drift: Vec<String>,
    /// Rules in the other iptables backend's tables.
    other_backend_rules: usize,
    /// Non-Docker chains (`table chain`) the last apply that changed this family removed.
    removed_chains: Vec<String>,
    /// Known rule owners (fail2ban, …) that run, have chains here or had chains removed by
    /// the last apply without being kept (`keep`): one sentence each.
    unkept_owners: Vec<String>,
}

/// The `--json` document (schema [`JSON_SCHEMA`], README.md "status --json").
#[derive(Debug, Serialize)]
struct Report {
    schema: u32,
    state: State,
    exit_code: i32,
    backend: String,
    /// Why that backend: "set by --backend", or what auto found.
    backend_reason: String,
    /// Docker's own nftables firewall backend, when it runs, and how it was recognised.
    docker_firewall_backend: Option<String>,
    iptables_points_to: String,
    unit: Option<UnitReport>,
    config: Option<String>,
    template: Option<String>,
    last_apply: Option<String>,
    newest_snapshot: Option<String>,
    pending_confirmation: bool,
    /// The last change made with `--confirm` was not confirmed and its watchdog rolled it
    /// back while nobody waited for it (the terminal was gone); cleared by the next apply.
    last_rollback: Option<RollbackReport>,
    /// The configuration's error when it does not load (then `drift` is empty: unchecked).
    config_error: Option<String>,
    families: Vec<FamilyReport>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RollbackReport {
    /// UTC ISO 8601 time the watchdog finished the rollback.
    at: String,
    /// What the watchdog did, as it reported it.
    outcome: String,
}

#[derive(Debug, Serialize)]
struct UnitReport {
    active: String,
    enabled: String,
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// `- filter: -A INPUT …` / `+ …` lines for the tables that differ.
fn drift_lines(plan: &FamilyPlan) -> Vec<String> {
    let lines = |rs: &Ruleset, table: TableName| -> Vec<String> {
        rs.table(table)
            .map(|t| {
                t.rules
                    .iter()
                    .map(|r| format!("{table}: -A {} {}", r.chain, r.spec))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for &table in &plan.changed {
        let (now, want) = (lines(&plan.current, table), lines(&plan.desired, table));
        out.extend(
            now.iter()
                .filter(|l| !want.contains(l))
                .map(|l| format!("- {l}")),
        );
        out.extend(
            want.iter()
                .filter(|l| !now.contains(l))
                .map(|l| format!("+ {l}")),
        );
        let policies = |rs: &Ruleset| {
            rs.table(table)
                .map(|t| {
                    t.chains
                        .iter()
                        .filter_map(|c| {
                            Some(format!("{table}: :{} {}", c.name, c.policy.as_ref()?))
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let (pn, pw) = (policies(&plan.current), policies(&plan.desired));
        out.extend(
            pn.iter()
                .filter(|l| !pw.contains(l))
                .map(|l| format!("- {l}")),
        );
        out.extend(
            pw.iter()
                .filter(|l| !pn.contains(l))
                .map(|l| format!("+ {l}")),
        );
    }
    out
}

/// Reads and analyses every managed family.
fn families(
    global: &Global,
    config: &crate::config::Config,
    backend: Backend,
) -> Result<Vec<FamilyReport>> {
    let state = StateDir::new(&global.state_dir);
    let template = Template::load(config)?;
    let child_lock = ChildLock::new()?;
    let running = system::running_processes();
    let mut out = Vec::new();
    for family in managed_families(config) {
        let ipt = Iptables::new(family, backend, &child_lock)?;
        let saved = ipt.save(None)?;
        let other_backend_rules = Iptables::new(family, backend.other(), &child_lock)
            .and_then(|o| o.save(None))
            .map(|t| rule_count(&t))
            .unwrap_or(0);
        let plan = plan_running(family, &saved, (config, &template), Mode::Start, &state)?;
        test_policy(&ipt, &plan.policy)?;
        let exposure = exposure::analyse(
            family,
            &plan.current,
            &plan.ownership.facts,
            config.ssh.port,
        );
        out.push(FamilyReport {
            family: family_name(family),
            exposure,
            counts: plan.counts(),
            drift: drift_lines(&plan),
            unkept_owners: super::plan::unkept_owners(
                &plan,
                &state.removed_chains(family),
                config,
                &running,
            ),
            removed_chains: state.removed_chains(family),
            other_backend_rules: if rule_count(&saved) > 0 {
                other_backend_rules
            } else {
                0
            },
        });
    }
    Ok(out)
}

fn overall(families: &[FamilyReport]) -> State {
    if families.iter().any(|f| f.other_backend_rules > 0) {
        State::Split
    } else if families
        .iter()
        .any(|f| matches!(f.exposure.other_ports, Reach::Everyone { .. }))
    {
        State::Off
    } else if families.iter().any(|f| !f.drift.is_empty()) {
        State::Drift
    } else {
        State::On
    }
}

fn warnings(families: &[FamilyReport]) -> Vec<String> {
    let mut out = Vec::new();
    for f in families {
        if f.counts.removed > 0 {
            out.push(format!(
                "{}: {} running rule(s) are neither Docker's, kept on request, nor the policy's: \
                 `start` would remove them (`iptables-docker plan --explain`)",
                f.family, f.counts.removed
            ));
        }
        if !f.removed_chains.is_empty() {
            out.push(format!(
                "{}: the last apply removed non-Docker chains: {} (keep_chains keeps a chain)",
                f.family,
                f.removed_chains.join(", ")
            ));
        }
        if !f.drift.is_empty() {
            out.push(format!(
                "{}: the running ruleset differs from the policy in {} rule(s)",
                f.family,
                f.drift.len()
            ));
        }
        for owner in &f.unkept_owners {
            out.push(format!("{}: {owner}", f.family));
        }
        if f.other_backend_rules > 0 {
            out.push(format!(
                "{}: {} rule(s) also live in the other iptables backend's tables: packets \
                 traverse both rulesets",
                f.family, f.other_backend_rules
            ));
        }
        let unmodelled = f
            .exposure
            .published
            .iter()
            .flat_map(|p| &p.notes)
            .chain(f.exposure.services.iter().flat_map(|s| &s.notes))
            .filter(|n| n.contains("not modelled"))
            .count();
        if unmodelled > 0 {
            out.push(format!(
                "{}: {unmodelled} rule(s) use matches the report does not model; the entries \
                 they concern say which",
                f.family
            ));
        }
    }
    out
}

/// The report, and the configuration's error when it does not load: then the exposure is
/// still read from the kernel (with the built-in configuration's view of what to keep),
/// drift is not checked, and status exits with the configuration's code.
fn report(global: &Global) -> Result<(Report, Option<Error>)> {
    let (config, config_error) = match load_config(global) {
        Ok(config) => (config, None),
        Err(e) if e.kind() == Kind::Config => (crate::config::Config::builtin(), Some(e)),
        Err(e) => return Err(e),
    };
    let state_dir = StateDir::new(&global.state_dir);
    let selection = super::select_backend(global, &config, true, None)?;
    let mut families = families(global, &config, selection.backend)?;
    let mut warnings = Vec::new();
    if let Some(e) = &config_error {
        families.iter_mut().for_each(|f| f.drift.clear());
        warnings.push(format!(
            "the configuration does not load, so drift is not checked: {e}"
        ));
    }
    warnings.extend(self::warnings(&families));
    let state = overall(&families);
    let unit = host::systemd_booted()
        .then(|| host::unit_state("iptables-docker.service").ok())
        .flatten()
        .filter(|u| u.exists())
        .map(|u| UnitReport {
            active: u.active,
            enabled: u.file,
        });
    let exit_code = match (&config_error, state.error()) {
        (Some(e), _) => e.kind().exit_code(),
        (None, e) => e.map_or(0, |e| e.kind().exit_code()),
    };
    let report = Report {
        schema: JSON_SCHEMA,
        state,
        exit_code,
        backend: format!("iptables-{}", selection.backend.name()),
        backend_reason: selection.reason,
        docker_firewall_backend: selection
            .docker_nftables
            .map(|how| format!("nftables: {how}")),
        iptables_points_to: iptables_backend(),
        unit,
        config: config.path.as_ref().map(|p| p.display().to_string()),
        template: config.template.as_ref().map(|p| p.display().to_string()),
        last_apply: state_dir.last_apply().map(|t| utc_iso8601(t, false)),
        newest_snapshot: state_dir
            .list_backups(None)
            .pop()
            .map(|p| p.display().to_string()),
        pending_confirmation: pending::has_pending(&state_dir),
        last_rollback: pending::last_rollback(&state_dir).map(|(at, outcome)| RollbackReport {
            at: utc_iso8601(at, false),
            outcome,
        }),
        config_error: config_error.as_ref().map(ToString::to_string),
        warnings,
        families,
    };
    Ok((report, config_error))
}

pub fn run(global: &Global, args: &StatusArgs) -> Result<()> {
    system::require_root("status")?;
    if let Some(why) = StateDir::new(&global.state_dir).degraded() {
        // Said first, and whether or not the configuration loads now.
        let text = format!(
            "DEGRADED: the last start could not use the configuration and failed closed:\n{}",
            why.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        if args.json {
            eprint!("{text}");
        } else {
            print!("{text}");
        }
    }
    let (report, config_error) = report(global)?;
    if args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::failed(format!("cannot write JSON: {e}")))?;
        println!("{text}");
    } else {
        print!(
            "{}",
            render_text(&report, crate::report::enabled(crate::report::Level::Debug))
        );
    }
    match config_error.or(report.state.error()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn render_text(r: &Report, verbose: bool) -> String {
    let mut out = format!("iptables-docker: {}\n", r.state.headline());
    out += &format!(
        "backend: {} ({}); `iptables` is {}\n",
        r.backend, r.backend_reason, r.iptables_points_to
    );
    if let Some(docker) = &r.docker_firewall_backend {
        out += &format!(
            "Docker's firewall backend: {docker}; the host policy applies, published ports \
             are filtered by Docker's own tables ([containers] cannot apply)\n"
        );
    }
    out += &match &r.unit {
        Some(u) => format!(
            "unit: iptables-docker.service {}, {}\n",
            u.active, u.enabled
        ),
        None => "unit: iptables-docker.service not installed (or no systemd)\n".to_string(),
    };
    out += &format!(
        "config: {}; template: {}\n",
        r.config
            .as_deref()
            .unwrap_or("built-in default (no config file)"),
        r.template.as_deref().unwrap_or("built-in")
    );
    out += &format!(
        "last apply: {}; newest snapshot: {}\n",
        r.last_apply.as_deref().unwrap_or("never"),
        r.newest_snapshot.as_deref().unwrap_or("none")
    );
    if r.pending_confirmation {
        out += "an apply made with --confirm is waiting for `iptables-docker confirm`\n";
    }
    if let Some(r) = &r.last_rollback {
        out += &format!(
            "last change NOT CONFIRMED: made with --confirm, rolled back at {}: {}\n",
            r.at,
            r.outcome.trim_end()
        );
    }
    for f in &r.families {
        out += &family_text(f, verbose);
    }
    if !r.warnings.is_empty() {
        out += "\nwarnings:\n";
        for w in &r.warnings {
            out += &format!("  {w}\n");
        }
    }
    out
}

fn notes_text(notes: &[String]) -> String {
    notes.iter().map(|n| format!("      note: {n}\n")).collect()
}

fn family_text(f: &FamilyReport, verbose: bool) -> String {
    let e = &f.exposure;
    let name = if f.family == "ipv4" { "IPv4" } else { "IPv6" };
    let mut out = format!("\n{name} (INPUT policy {}):\n", e.input_policy);
    out += "  host services:\n";
    if e.services.is_empty() {
        out += "    none\n";
    }
    for s in &e.services {
        // `443/tcp`, as `iptables-docker rules` and ufw write it.
        let service = s
            .port
            .as_deref()
            .map_or(s.proto.clone(), |p| format!("{p}/{}", s.proto));
        let what = if s.description.is_empty() {
            String::new()
        } else {
            format!(" ({})", s.description)
        };
        out += &format!("    {service}{what}: {}\n", s.reach);
        out += &notes_text(&s.notes);
    }
    out += &format!("  every other port: {}\n", e.other_ports);
    out += &format!("  ping: {}\n", e.ping);
    out += &format!(
        "  trusted interfaces (everything accepted): {}\n",
        if e.trusted_interfaces.is_empty() {
            "none".to_string()
        } else {
            e.trusted_interfaces.join(", ")
        }
    );
    out += "  published container ports:\n";
    if e.published.is_empty() {
        out += "    none\n";
    }
    for p in &e.published {
        let host =
            p.host_address
                .as_deref()
                .unwrap_or(if f.family == "ipv4" { "0.0.0.0" } else { "::" });
        let bridge = p
            .bridge
            .as_deref()
            .map_or(String::new(), |b| format!(" on {b}"));
        out += &format!(
            "    {} {host}:{} -> {}:{}{bridge}: {}\n",
            p.proto, p.host_port, p.container_address, p.container_port, p.reach
        );
        out += &notes_text(&p.notes);
    }
    let c = &f.counts;
    out += &format!(
        "  rules: {} Docker's, {} kept on request, {} the policy's; {} start would remove\n",
        c.docker, c.kept_on_request, c.ours, c.removed
    );
    if !f.drift.is_empty() {
        out += "  differs from the policy (- running only, + policy only):\n";
        let shown = if verbose { f.drift.len() } else { 20 };
        for line in f.drift.iter().take(shown) {
            out += &format!("    {line}\n");
        }
        if f.drift.len() > shown {
            out += &format!("    … {} more (--verbose)\n", f.drift.len() - shown);
        }
    }
    out
}
