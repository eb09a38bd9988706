//! Gathers the [`Facts`] backend selection decides on: whether each iptables backend works
//! here (its binaries, and what `iptables-<backend> -S FORWARD` says: a kernel without
//! legacy answers `can't initialize iptables table 'filter': Table does not exist`), where
//! Docker's rules live, and whether Docker runs its own nftables firewall backend.

use std::path::Path;

use crate::backend::{daemon_json_selects_nftables, nft_tables_have_docker, Choice, Facts};
use crate::family::Family;
use crate::ruleset::{self, Ruleset, TableName};
use crate::system::iptables::Backend;

/// Docker's configuration file.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Probes the host for `choice`; runs only read-only commands. An explicit backend needs
/// no more than whether Docker runs its nftables firewall; `auto` also asks each backend
/// for its filter FORWARD chain, once: whether it answers and whether Docker's jumps are
/// there (a whole `iptables-save` of a host with 20,000 published ports takes ~150 ms).
/// `alongside`: set while we hold the xtables lock ourselves ([`Alongside`]).
pub fn facts(choice: Choice, alongside: Option<&Alongside<'_>>) -> Facts {
    let child_lock = alongside.map(|a| a.child_lock);
    if choice != Choice::Auto {
        return Facts {
            docker_nftables: docker_nftables(),
            ..Facts::default()
        };
    }
    // Three read-only commands that do not depend on each other, run at once: on legacy,
    // `-S FORWARD` (when no save counted for it) copies the whole filter table out of the
    // kernel (~20 ms at 20,000 published ports), which covers the other two.
    let (docker_nftables, (legacy_unusable, docker_rules_legacy), (nft_unusable, docker_rules_nft)) =
        std::thread::scope(|s| {
            let nft = s.spawn(|| forward_chain(Backend::Nft, child_lock, None));
            let docker = s.spawn(docker_nftables);
            let counted = alongside.and_then(|a| (a.legacy_forward)());
            let legacy = forward_chain(Backend::Legacy, child_lock, counted);
            (
                docker.join().expect("the nftables probe does not panic"),
                legacy,
                nft.join().expect("the iptables-nft probe does not panic"),
            )
        });
    Facts {
        legacy_unusable,
        nft_unusable,
        docker_rules_legacy,
        docker_rules_nft,
        docker_nftables,
    }
}

/// What the probe is given while the xtables lock is ours: the lock file the iptables
/// commands wait on instead (`XTABLES_LOCKFILE`), and Docker's IPv4 filter FORWARD rules
/// as counted in the `iptables-legacy-save` made at the same time
/// ([`docker_forward_rules`]; `None`: that save failed or held no filter table, so
/// `iptables-legacy -S FORWARD` is asked after all). On a large Docker host `-S FORWARD`
/// copies the whole filter table out of the kernel once more (~20 ms of CPU at 20,000
/// published ports).
pub struct Alongside<'a> {
    pub child_lock: &'a Path,
    pub legacy_forward: &'a dyn Fn() -> Option<usize>,
}

/// How many of the IPv4 filter FORWARD rules in `saved` (`iptables-save [-c]` text) name
/// a DOCKER chain, as [`forward_chain`] counts them in `-S FORWARD`; `None` when `saved`
/// has no filter table (the module not loaded: only `-S FORWARD` tells whether it can be).
pub fn docker_forward_rules(saved: &str) -> Option<usize> {
    let filter = ruleset::saved_table(saved, TableName::Filter)?;
    let counted = (filter.lines())
        .filter_map(ruleset::saved_rule)
        .filter(|(chain, spec)| is_docker_forward(chain, spec))
        .count();
    Some(counted)
}

/// [`docker_forward_rules`] of a parsed ruleset (what an apply composed, for its record).
pub fn docker_forward_rules_of(ruleset: &Ruleset) -> Option<usize> {
    let filter = ruleset.table(TableName::Filter)?;
    let rules = filter.rules.iter();
    Some(
        rules
            .filter(|r| is_docker_forward(&r.chain, &r.spec))
            .count(),
    )
}

/// Whether a rule (`-A chain spec`) is one of Docker's FORWARD rules: it names a DOCKER
/// chain.
fn is_docker_forward(chain: &str, spec: &str) -> bool {
    chain == "FORWARD" && spec.contains("DOCKER")
}

fn run(program: &str, args: &[&str], child_lock: Option<&Path>) -> Option<std::process::Output> {
    let mut cmd = duct::cmd(program, args);
    if let Some(lock) = child_lock {
        cmd = cmd.env("XTABLES_LOCKFILE", lock);
    }
    cmd.stdout_capture().stderr_capture().unchecked().run().ok()
}

/// Why `backend` cannot work here, if it cannot (its binaries missing, or what
/// `iptables-<backend> -S FORWARD` says: a kernel without legacy answers `can't initialize
/// iptables table 'filter': Table does not exist`); else how many of the IPv4 filter
/// FORWARD rules are Docker's (they name a DOCKER chain: every Docker version that writes
/// iptables rules jumps from FORWARD to DOCKER-USER and its other chains, see
/// ../shared/fixtures/docker). `counted`: that count, already made from a save.
fn forward_chain(
    backend: Backend,
    child_lock: Option<&Path>,
    counted: Option<usize>,
) -> (Option<String>, usize) {
    for family in Family::ALL {
        for suffix in ["", "-save", "-restore"] {
            let name = format!("{}-{}{suffix}", family.command(), backend.name());
            if which::which(&name).is_err() {
                return (Some(format!("`{name}` is not installed")), 0);
            }
        }
    }
    if let Some(docker) = counted {
        return (None, docker);
    }
    let program = format!("iptables-{}", backend.name());
    match run(&program, &["-w", "5", "-S", "FORWARD"], child_lock) {
        Some(out) if out.status.success() => {
            let docker = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with("-A ") && l.contains("DOCKER"))
                .count();
            (None, docker)
        }
        Some(out) => (
            Some(format!(
                "`{program} -S FORWARD` says: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .unwrap_or("(nothing)")
                    .trim()
            )),
            0,
        ),
        None => (Some(format!("`{program}` cannot be run")), 0),
    }
}

/// How Docker's nftables firewall backend was recognised, if it runs.
fn docker_nftables() -> Option<String> {
    let json = std::fs::read_to_string(DAEMON_JSON).unwrap_or_default();
    if daemon_json_selects_nftables(&json) {
        return Some(format!(
            "{DAEMON_JSON} sets \"firewall-backend\": \"nftables\""
        ));
    }
    let out = run("nft", &["list", "tables"], None)?;
    nft_tables_have_docker(&String::from_utf8_lossy(&out.stdout))
        .then(|| "`nft list tables` shows Docker's docker-bridges tables".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_dockers_forward_rules_in_a_save_with_or_without_counters() {
        let saved = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DOCKER\nCOMMIT\n\
            *filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:DOCKER-USER - [0:0]\n\
            [7:420] -A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n\
            -A FORWARD -o eth1 -j ACCEPT\n-A INPUT -j DOCKER-ISH\nCOMMIT\n";
        assert_eq!(docker_forward_rules(saved), Some(2));
        let no_filter = "*nat\n:PREROUTING ACCEPT [0:0]\n-A FORWARD -j DOCKER\nCOMMIT\n";
        assert_eq!(docker_forward_rules(no_filter), None);
        assert_eq!(docker_forward_rules(""), None);
        let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n";
        assert_eq!(docker_forward_rules(empty), Some(0));
    }
}
