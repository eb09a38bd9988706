//! Gathers the [`Facts`] backend selection decides on: whether each iptables backend works
//! here (its binaries, and what `iptables-<backend> -L` says: a kernel without legacy
//! answers `can't initialize iptables table 'filter': Table does not exist`), where
//! Docker's rules live, and whether Docker runs its own nftables firewall backend.

use crate::backend::{daemon_json_selects_nftables, nft_tables_have_docker, Facts};
use crate::family::Family;
use crate::system::iptables::Backend;

/// Docker's configuration file.
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// Probes the host; runs only read-only commands.
pub fn facts() -> Facts {
    Facts {
        legacy_unusable: unusable(Backend::Legacy),
        nft_unusable: unusable(Backend::Nft),
        docker_rules_legacy: docker_rules(Backend::Legacy),
        docker_rules_nft: docker_rules(Backend::Nft),
        docker_nftables: docker_nftables(),
    }
}

fn run(program: &str, args: &[&str]) -> Option<std::process::Output> {
    duct::cmd(program, args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .ok()
}

/// Why `backend` cannot work here, if it cannot.
fn unusable(backend: Backend) -> Option<String> {
    for family in Family::ALL {
        for suffix in ["", "-save", "-restore"] {
            let name = format!("{}-{}{suffix}", family.command(), backend.name());
            if which::which(&name).is_err() {
                return Some(format!("`{name}` is not installed"));
            }
        }
    }
    let program = format!("iptables-{}", backend.name());
    match run(&program, &["-w", "5", "-n", "-L", "INPUT"]) {
        Some(out) if out.status.success() => None,
        Some(out) => Some(format!(
            "`{program} -L` says: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("(nothing)")
                .trim()
        )),
        None => Some(format!("`{program}` cannot be run")),
    }
}

/// The Docker-written rules (`-A DOCKER…` and jumps to Docker's chains) in `backend`'s
/// IPv4 ruleset; 0 when it cannot be read.
fn docker_rules(backend: Backend) -> usize {
    let Some(out) = run(&format!("iptables-{}-save", backend.name()), &[]) else {
        return 0;
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains("DOCKER"))
        .count()
}

/// How Docker's nftables firewall backend was recognised, if it runs.
fn docker_nftables() -> Option<String> {
    let json = std::fs::read_to_string(DAEMON_JSON).unwrap_or_default();
    if daemon_json_selects_nftables(&json) {
        return Some(format!(
            "{DAEMON_JSON} sets \"firewall-backend\": \"nftables\""
        ));
    }
    let out = run("nft", &["list", "tables"])?;
    nft_tables_have_docker(&String::from_utf8_lossy(&out.stdout))
        .then(|| "`nft list tables` shows Docker's docker-bridges tables".to_string())
}
