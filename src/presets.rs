//! Known rule owners (`keep = ["fail2ban", …]`): the chains and ipsets other programs on a
//! Docker host really use, so that their rules are kept without knowing their names; and
//! the processes that tell whether one runs, for `plan` and `status` to warn when its
//! chains are about to be, or were, removed.

use std::fmt;

use crate::config::Diagnostics;
use crate::ownership::glob_match;
use crate::ruleset::Ruleset;

/// One known owner of iptables rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The name written in `keep`.
    pub name: &'static str,
    /// Glob patterns of the user chains it creates, in any table.
    pub chains: &'static [&'static str],
    /// Glob patterns of the ipsets its rules match with `-m set --match-set` directly in
    /// builtin chains (no chain of its own).
    pub sets: &'static [&'static str],
    /// Process names (`/proc/PID/comm`, at most 15 characters) that show it runs.
    pub processes: &'static [&'static str],
}

/// The known owners. Sources:
/// - fail2ban: `action.d/iptables.conf` names its chain `f2b-<name>` and hooks it from
///   `INPUT` (or `chain = DOCKER-USER`); the `iptables-ipset*` actions match the set
///   `f2b-<name>` from the hooked chain directly. Daemon: `fail2ban-server`.
/// - libvirt ≥ 5.1: `src/network/network_iptables.c` creates `LIBVIRT_INP`, `LIBVIRT_OUT`,
///   `LIBVIRT_FWO`, `LIBVIRT_FWI`, `LIBVIRT_FWX` (filter) and `LIBVIRT_PRT` (nat, mangle).
///   Daemons: `libvirtd`, or `virtnetworkd` with the modular daemons.
/// - kubernetes: kube-proxy's `KUBE-*` chains (`KUBE-SERVICES`, `KUBE-FORWARD`,
///   `KUBE-SVC-…`, …; k3s's network policy controller writes `KUBE-ROUTER-*`), flannel's
///   `FLANNEL-FWD`/`FLANNEL-POSTRTG`, the CNI portmap and bridge plugins' `CNI-*`, Calico's
///   `cali-*`. Processes: `kubelet`, `kube-proxy`, `k3s-server`, `k3s-agent`.
/// - tailscale: `util/linuxfw` creates `ts-input`, `ts-forward` (filter) and
///   `ts-postrouting` (nat). Daemon: `tailscaled`.
/// - crowdsec: cs-firewall-bouncer's iptables mode creates `CROWDSEC_CHAIN` (and
///   `CROWDSEC_LOG`) matching the sets `crowdsec-blacklists*` / `crowdsec6-blacklists*`;
///   the older netfilter blocker matched those sets straight from `INPUT`. Daemon:
///   `crowdsec-firewall-bouncer` (`crowdsec-firewa` in comm).
pub const KNOWN: [Preset; 5] = [
    Preset {
        name: "fail2ban",
        chains: &["f2b-*"],
        sets: &["f2b-*"],
        processes: &["fail2ban-server"],
    },
    Preset {
        name: "libvirt",
        chains: &["LIBVIRT_*"],
        sets: &[],
        processes: &["libvirtd", "virtnetworkd"],
    },
    Preset {
        name: "kubernetes",
        chains: &["KUBE-*", "FLANNEL-*", "CNI-*", "cali-*"],
        sets: &["KUBE-*", "cali*"],
        processes: &["kubelet", "kube-proxy", "k3s-server", "k3s-agent"],
    },
    Preset {
        name: "tailscale",
        chains: &["ts-input", "ts-forward", "ts-postrouting"],
        sets: &[],
        processes: &["tailscaled"],
    },
    Preset {
        name: "crowdsec",
        chains: &["CROWDSEC_*"],
        sets: &["crowdsec-blacklists*", "crowdsec6-blacklists*"],
        processes: &["crowdsec-firewa"],
    },
];

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Preset {
    pub fn find(name: &str) -> Option<Preset> {
        KNOWN.into_iter().find(|p| p.name == name)
    }

    /// Whether `chain` is one of this owner's.
    pub fn owns_chain(&self, chain: &str) -> bool {
        self.chains.iter().any(|g| glob_match(g, chain))
    }
}

impl Diagnostics<'_> {
    pub(crate) fn presets(&mut self, names: &[toml::Spanned<String>]) -> Vec<Preset> {
        names
            .iter()
            .filter_map(|n| {
                let found = Preset::find(n.get_ref());
                if found.is_none() {
                    let known: Vec<&str> = KNOWN.iter().map(|p| p.name).collect();
                    self.push(
                        n.span(),
                        format!(
                            "unknown owner '{}' in keep (known: {}; keep_chains takes chain \
                             name patterns)",
                            n.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
                found
            })
            .collect()
    }
}

/// A known owner whose rules are not kept although it runs or its chains are (or were)
/// there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unkept {
    pub preset: Preset,
    /// Its chains in the ruleset, as `table/chain`: `start` removes them.
    pub chains: Vec<String>,
    /// Its chains the last apply removed, as `table/chain`.
    pub removed: Vec<String>,
    /// Whether one of its processes runs.
    pub running: bool,
}

impl fmt::Display for Unkept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.preset.name;
        let running = if self.running { " is running" } else { "" };
        if !self.chains.is_empty() {
            write!(
                f,
                "{name}{running}: start removes its chains {}",
                self.chains.join(", ")
            )?;
        } else if !self.removed.is_empty() {
            let removed = self.removed.join(", ");
            write!(
                f,
                "{name}{running}: the last apply removed its chains {removed}"
            )?;
        } else {
            write!(
                f,
                "{name} is running but its chains are not kept: start removes what it adds"
            )?;
        }
        write!(f, " (add \"{name}\" to `keep` in the configuration)")
    }
}

/// The known owners not in `keep` (nor kept by `keep_chains`) that run (`processes`: the
/// running process names), have chains in `ruleset`, or had chains in `removed` (`table
/// chain`, what the last apply removed).
pub fn unkept(
    ruleset: &Ruleset,
    removed: &[String],
    keep: &[Preset],
    keep_chains: &[String],
    processes: &[String],
) -> Vec<Unkept> {
    let unkept_chain = |preset: &Preset, chain: &str| {
        preset.owns_chain(chain) && !keep_chains.iter().any(|g| glob_match(g, chain))
    };
    KNOWN
        .into_iter()
        .filter(|p| !keep.contains(p))
        .filter_map(|preset| {
            let chains: Vec<String> = ruleset
                .tables
                .iter()
                .flat_map(|t| t.chains.iter().map(move |c| (&t.name, &c.name)))
                .filter(|(_, c)| unkept_chain(&preset, c))
                .map(|(t, c)| format!("{t}/{c}"))
                .collect();
            let removed: Vec<String> = removed
                .iter()
                .filter_map(|r| r.split_once(' '))
                .filter(|(_, c)| unkept_chain(&preset, c))
                .map(|(t, c)| format!("{t}/{c}"))
                .collect();
            let running = processes
                .iter()
                .any(|p| preset.processes.contains(&p.as_str()));
            (running || !chains.is_empty() || !removed.is_empty()).then_some(Unkept {
                preset,
                chains,
                removed,
                running,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::parse;

    #[test]
    fn finds_unkept_owners_by_chain_and_by_process() {
        let rs =
            parse("*filter\n:INPUT ACCEPT [0:0]\n:f2b-sshd - [0:0]\n:ts-input - [0:0]\nCOMMIT\n")
                .unwrap();
        let removed = [
            "nat ts-postrouting".to_string(),
            "filter KUBE-FORWARD".to_string(),
        ];
        let found = unkept(&rs, &removed, &[], &[], &["libvirtd".to_string()]);
        let names: Vec<&str> = found.iter().map(|u| u.preset.name).collect();
        assert_eq!(names, ["fail2ban", "libvirt", "kubernetes", "tailscale"]);
        assert_eq!(found[0].chains, ["filter/f2b-sshd"]);
        assert!(found[1].running && found[1].chains.is_empty());
        assert_eq!(
            found[2].to_string(),
            "kubernetes: the last apply removed its chains filter/KUBE-FORWARD (add \"kubernetes\" \
             to `keep` in the configuration)"
        );
        let kept = unkept(
            &rs,
            &[],
            &[Preset::find("tailscale").unwrap()],
            &["f2b-*".to_string()],
            &[],
        );
        assert!(kept.is_empty(), "{kept:?}");
    }
}
