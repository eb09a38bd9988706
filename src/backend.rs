//! Which iptables backend to manage, and why: the `backend` setting (`auto`, `legacy`,
//! `nft`; `--backend` overrides the config) decided against what the host provides and
//! where Docker's rules live. Pure: the facts come from [`crate::system::probe`].
//!
//! `auto` takes iptables-legacy where the kernel and the packages provide it (the
//! product's default) and iptables-nft otherwise — Linux ≥ 6.17 builds the legacy tables
//! only with `CONFIG_NETFILTER_XTABLES_LEGACY`, RHEL ships no iptables-legacy
//! (`../shared/notes/platform-2026.md`) — and follows Docker: never a policy in one backend
//! while Docker's rules live in the other.

use serde::Deserialize;

use crate::error::{Error, Kind, Result};
use crate::system::iptables::Backend;

/// The `backend` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    #[default]
    Auto,
    Legacy,
    Nft,
}

/// What the host says, gathered by [`crate::system::probe::facts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Why iptables-legacy cannot work here (its binaries missing, or the kernel has no
    /// legacy tables: what `iptables-legacy` said); `None` when it works (or not probed:
    /// an explicit choice is taken as it is).
    pub legacy_unusable: Option<String>,
    /// Why iptables-nft cannot work here; `None` when it works.
    pub nft_unusable: Option<String>,
    /// Docker's rules found in each backend's IPv4 filter FORWARD chain (its jumps to
    /// DOCKER-USER and its other chains); probed only for `auto`.
    pub docker_rules_legacy: usize,
    pub docker_rules_nft: usize,
    /// Docker's own nftables firewall backend, and how it was recognised.
    pub docker_nftables: Option<String>,
}

/// The backend to manage, and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub backend: Backend,
    pub reason: String,
    /// How Docker's own nftables firewall backend was recognised, when it runs.
    pub docker_nftables: Option<String>,
}

/// Decides `choice` (`origin`: where it was set, e.g. "--backend") against `facts`.
/// With `follow_docker` false (install, which moves Docker's rules itself), `auto` only
/// asks what the host provides.
pub fn select(
    choice: Choice,
    origin: &str,
    facts: &Facts,
    follow_docker: bool,
) -> Result<Selection> {
    // An explicit choice is taken as it is: a binary it lacks is reported, with the
    // package to install, by whoever runs it first.
    let explicit = |backend: Backend| {
        Ok(Selection {
            backend,
            reason: format!("set by {origin}"),
            docker_nftables: facts.docker_nftables.clone(),
        })
    };
    match choice {
        Choice::Legacy => return explicit(Backend::Legacy),
        Choice::Nft => return explicit(Backend::Nft),
        Choice::Auto => {}
    }
    let pick = |backend: Backend, reason: String| {
        Ok(Selection {
            backend,
            reason,
            docker_nftables: facts.docker_nftables.clone(),
        })
    };
    match (&facts.legacy_unusable, &facts.nft_unusable) {
        (Some(legacy), Some(nft)) => {
            return Err(Error::new(
                Kind::NotInstalled,
                format!("neither iptables backend works here: legacy: {legacy}; nft: {nft}"),
            )
            .hint("install the `iptables` package"))
        }
        (Some(why), None) => {
            return pick(
                Backend::Nft,
                format!("auto: iptables-legacy cannot work here ({why})"),
            )
        }
        (None, Some(_)) => {
            return pick(
                Backend::Legacy,
                "auto: iptables-legacy works here; iptables-nft does not".into(),
            )
        }
        (None, None) => {}
    }
    let (legacy, nft) = (facts.docker_rules_legacy, facts.docker_rules_nft);
    if !follow_docker || facts.docker_nftables.is_some() || nft == 0 {
        let docker = if legacy > 0 && follow_docker {
            ", where Docker's rules are"
        } else {
            " (the default)"
        };
        return pick(
            Backend::Legacy,
            format!("auto: iptables-legacy works here{docker}"),
        );
    }
    if legacy > 0 {
        return Err(Error::new(Kind::Split, format!(
            "Docker's rules live in both iptables-legacy and iptables-nft (FORWARD jumps to \
             Docker's chains: {legacy} and {nft}): whichever backend the policy goes to, the \
             other's rules see every packet"
        ))
        .hint("point `iptables` at one backend and restart Docker (`iptables-docker install` does the first), or choose with --backend"));
    }
    pick(
        Backend::Nft,
        format!(
            "auto: Docker's rules live in iptables-nft ({nft} rules in FORWARD; `iptables` \
             points there); `iptables-docker install` moves them to legacy"
        ),
    )
}

/// Whether `/etc/docker/daemon.json` text selects Docker's nftables firewall backend
/// (`"firewall-backend": "nftables"`, Docker ≥ 29).
pub fn daemon_json_selects_nftables(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("firewall-backend")?.as_str().map(|s| s == "nftables"))
        .unwrap_or(false)
}

/// Whether `nft list tables` output has Docker's nftables tables (`ip docker-bridges`,
/// `ip6 docker-bridges`).
pub fn nft_tables_have_docker(text: &str) -> bool {
    text.lines()
        .any(|l| l.split_whitespace().last() == Some("docker-bridges"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_KERNEL: &str =
        "can't initialize iptables table `filter': Table does not exist (do you need to insmod?)";

    fn facts(legacy: usize, nft: usize) -> Facts {
        Facts {
            docker_rules_legacy: legacy,
            docker_rules_nft: nft,
            ..Facts::default()
        }
    }

    #[test]
    fn auto_takes_legacy_where_it_works_and_follows_docker() {
        let pick = |f: &Facts| select(Choice::Auto, "config", f, true).map(|s| s.backend);
        assert_eq!(pick(&facts(0, 0)).unwrap(), Backend::Legacy);
        assert_eq!(pick(&facts(12, 0)).unwrap(), Backend::Legacy);
        assert_eq!(pick(&facts(0, 18)).unwrap(), Backend::Nft);
        assert!(pick(&facts(3, 18)).is_err());
        let gone = Facts {
            legacy_unusable: Some(NO_KERNEL.into()),
            ..facts(0, 18)
        };
        let s = select(Choice::Auto, "config", &gone, true).unwrap();
        assert_eq!(s.backend, Backend::Nft);
        assert!(s.reason.contains("Table does not exist"), "{}", s.reason);
        // install moves Docker's rules itself: only what the host provides counts.
        assert_eq!(
            select(Choice::Auto, "c", &facts(0, 18), false)
                .unwrap()
                .backend,
            Backend::Legacy
        );
    }

    #[test]
    fn an_explicit_backend_is_taken_as_it_is() {
        let gone = Facts {
            legacy_unusable: Some(NO_KERNEL.into()),
            docker_rules_nft: 18,
            ..Facts::default()
        };
        let s = select(Choice::Legacy, "--backend", &gone, true).unwrap();
        assert_eq!(
            (s.backend, s.reason.as_str()),
            (Backend::Legacy, "set by --backend")
        );
        let s = select(Choice::Nft, "--backend", &gone, true).unwrap();
        assert_eq!(s.backend, Backend::Nft);
    }

    #[test]
    fn recognises_dockers_nftables_backend() {
        assert!(daemon_json_selects_nftables(
            r#"{ "firewall-backend": "nftables" }"#
        ));
        assert!(!daemon_json_selects_nftables(
            r#"{ "firewall-backend": "iptables" }"#
        ));
        assert!(!daemon_json_selects_nftables("not json"));
        assert!(nft_tables_have_docker(
            "table ip nat\ntable ip docker-bridges\ntable ip6 docker-bridges\n"
        ));
        assert!(!nft_tables_have_docker("table ip filter\n"));
    }
}
