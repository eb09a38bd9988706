//! `status`: which backend `iptables` is, a loud warning when rules live in both the legacy
//! and the nft tables, whether the running ruleset is what the policy would load, what
//! is kept, and the newest snapshot. Changes nothing.

use std::path::{Path, PathBuf};

use crate::cli::Global;
use crate::error::{Error, Kind, Result};
use crate::pipeline::{self, Mode};
use crate::system::iptables::{Backend, Iptables};
use crate::system::pending;
use crate::system::state::StateDir;
use crate::system::{self, default_route_interfaces};

use super::{load_config, managed_families};

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
    let kind = hops
        .iter()
        .find_map(|h| {
            if h.contains("legacy") {
                Some("legacy")
            } else if h.contains("nft") {
                Some("nft")
            } else {
                None
            }
        })
        .unwrap_or("unknown");
    format!("{kind} ({})", hops.join(" -> "))
}

fn rule_count(text: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with("-A ") || l.starts_with('['))
        .count()
}

pub fn run(global: &Global) -> Result<()> {
    system::require_root("status")?;
    let config = load_config(global)?;
    let state = StateDir::new(&global.state_dir);
    let child_lock = tempfile::NamedTempFile::new()?;
    let external = default_route_interfaces();
    println!("iptables points to: {}", iptables_backend());

    let running = system::running_processes();
    let mut drift = Vec::new();
    for family in managed_families(&config) {
        let ipt = Iptables::new(family, global.backend, child_lock.path())?;
        let saved = ipt.save(None)?;
        let other = match global.backend {
            Backend::Legacy => Backend::Nft,
            Backend::Nft => Backend::Legacy,
        };
        if let Ok(other_ipt) = Iptables::new(family, other, child_lock.path()) {
            let other_rules = other_ipt.save(None).map(|t| rule_count(&t)).unwrap_or(0);
            if other_rules > 0 && rule_count(&saved) > 0 {
                println!(
                    "WARNING: {family}: {other_rules} rules also live in the {} tables: packets \
                     traverse both rulesets. Move them (iptables-docker install does) or flush them.",
                    other.name()
                );
            }
        }
        let source = format!("{}-save output", family.command());
        let plan = pipeline::plan(
            family,
            &saved,
            &source,
            &config,
            Mode::Start,
            &external,
            &state.applied(family),
        )?;
        for warning in super::plan::unkept_owners(&plan, &config, &running) {
            println!("WARNING: {family}: {warning}");
        }
        let docker = plan.ownership.kept_rules();
        let host = plan.current.rule_count() - docker;
        let sync = if plan.changed.is_empty() {
            "matches the policy".to_string()
        } else {
            drift.push(family);
            format!(
                "DIFFERS from the policy in tables {} (run `iptables-docker plan --diff`)",
                plan.changed.join(", ")
            )
        };
        println!("{family}: {docker} Docker rules kept, {host} host rules active; running ruleset {sync}");
    }
    if pending::has_pending(&state) {
        println!("an apply made with --confirm is waiting for `iptables-docker confirm`");
    }
    let newest: Option<PathBuf> = state.list_backups(None).pop();
    match newest {
        Some(p) => println!("newest snapshot: {}", p.display()),
        None => println!("newest snapshot: none"),
    }
    if drift.is_empty() {
        Ok(())
    } else {
        Err(Error::new(
            Kind::Drift,
            "the running ruleset is not what the policy would load",
        )
        .hint("`iptables-docker plan --diff` shows how; `systemctl reload iptables-docker` applies the policy"))
    }
}
