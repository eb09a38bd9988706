//! Failing closed: what `start` loads when the configuration or template cannot be used
//! and the kernel does not hold our policy (a boot, after `stop`, after a flush).
//!
//! - [`LastGood`]: the host policy of the last successful `start`/`reload`, per family,
//!   with the digests of the configuration and template it was rendered from and when it
//!   was applied. Kept as `<state dir>/last-good-v4` / `-v6` (0600) in this text form:
//!
//!   ```text
//!   # iptables-docker last good policy
//!   applied-at 1764532800
//!   config /etc/iptables-docker/config.toml 3f2a…
//!   template built-in 91c0…
//!   keep f2b-*
//!   *filter
//!   …
//!   COMMIT
//!   ```
//! - [`minimal`]: when there is no last good policy at all, INPUT DROP with loopback,
//!   established/related traffic, IPv6 neighbour discovery and SSH — from `[ssh]` when the
//!   configuration itself reads, else TCP port 22 from anywhere. FORWARD, OUTPUT and
//!   Docker's rules are left as they are.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use crate::config::Ssh;
use crate::family::Family;
use crate::policy::Policy;
use crate::ruleset::{self, ChainPolicy, Ruleset, TableName};
use crate::system::state::utc_iso8601;

/// The policy of the last successful apply of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastGood {
    /// Seconds since the Unix epoch.
    pub applied_at: u64,
    /// The configuration file (`built-in` when none) and the fingerprint of its text.
    pub config: (String, String),
    /// The template file (`built-in` when none) and the fingerprint of its text.
    pub template: (String, String),
    /// The configuration's `keep_chains` globs, so that a fallback keeps what it kept.
    pub keep_chains: Vec<String>,
    /// The rendered policy, as it was loaded.
    pub fragment: Ruleset,
}

impl LastGood {
    /// Reads the text form; `None` when it is not one (a damaged file is not used).
    pub fn parse(text: &str) -> Option<Self> {
        let mut applied_at = None;
        let (mut config, mut template) = (None, None);
        let mut keep_chains = Vec::new();
        let mut rules = String::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if !rules.is_empty() || line.starts_with('*') {
                rules.push_str(line);
                rules.push('\n');
                continue;
            }
            match words.as_slice() {
                ["applied-at", secs] => applied_at = secs.parse().ok(),
                ["config", path, fp] => config = Some((path.to_string(), fp.to_string())),
                ["template", path, fp] => template = Some((path.to_string(), fp.to_string())),
                ["keep", glob] => keep_chains.push(glob.to_string()),
                _ => {}
            }
        }
        let fragment = ruleset::parse(&rules).ok()?;
        (!fragment.tables.is_empty()).then_some(())?;
        Some(LastGood {
            applied_at: applied_at?,
            config: config?,
            template: template?,
            keep_chains,
            fragment,
        })
    }

    /// One line for messages: when, and from which files.
    pub fn describe(&self) -> String {
        format!(
            "the last good policy (applied {}, from {} {} and template {} {})",
            utc_iso8601(UNIX_EPOCH + Duration::from_secs(self.applied_at), false),
            self.config.0,
            self.config.1,
            self.template.0,
            self.template.1
        )
    }
}

impl fmt::Display for LastGood {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# iptables-docker last good policy")?;
        writeln!(f, "applied-at {}", self.applied_at)?;
        writeln!(f, "config {} {}", self.config.0, self.config.1)?;
        writeln!(f, "template {} {}", self.template.0, self.template.1)?;
        for glob in &self.keep_chains {
            writeln!(f, "keep {glob}")?;
        }
        write!(f, "{}", self.fragment)
    }
}

/// The documented minimal fail-closed policy for `family` (see the module doc). `ssh`:
/// the configuration's `[ssh]` when the configuration reads.
pub fn minimal(family: Family, ssh: Option<&Ssh>) -> Policy {
    let mut text = String::from("*filter\n:INPUT DROP [0:0]\n-A INPUT -i lo -j ACCEPT\n");
    if family == Family::V6 {
        for t in [1, 2, 3, 4, 133, 134, 135, 136] {
            text.push_str(&format!(
                "-A INPUT -p ipv6-icmp -m icmp6 --icmpv6-type {t} -j ACCEPT\n"
            ));
        }
    }
    text.push_str("-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n");
    let (port, from): (u16, Vec<String>) = match ssh {
        Some(ssh) => (
            ssh.port,
            ssh.allow_from
                .iter()
                .filter(|n| family.contains(n))
                .map(ToString::to_string)
                .collect(),
        ),
        None => (22, vec![String::new()]),
    };
    for net in from {
        let source = match net.as_str() {
            "" | "0.0.0.0/0" | "::/0" => String::new(),
            net => format!("-s {net} "),
        };
        text.push_str(&format!(
            "-A INPUT {source}-p tcp -m tcp --dport {port} -m comment --comment \
             \"iptables-docker: fail-closed\" -j ACCEPT\n"
        ));
    }
    text.push_str("COMMIT\n");
    Policy {
        fragment: ruleset::parse(&text).expect("the minimal policy parses"),
    }
}

/// Whether `current` (a family's running ruleset) still holds a host policy, judged by
/// the filter table's INPUT chain: a boot, `stop` or a flush leave it empty and ACCEPT.
pub fn holds_a_policy(current: &Ruleset) -> bool {
    current.table(TableName::Filter).is_some_and(|t| {
        t.rules_of("INPUT").next().is_some()
            || t.chain("INPUT")
                .is_some_and(|c| c.policy != Some(ChainPolicy::Accept))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn last_good_round_trips_and_rejects_damage() {
        let good = LastGood {
            applied_at: 1_764_532_800,
            config: ("/etc/iptables-docker/config.toml".into(), "00ff".into()),
            template: ("built-in".into(), "11ee".into()),
            keep_chains: vec!["f2b-*".into()],
            fragment: minimal(Family::V4, None).fragment,
        };
        let text = good.to_string();
        assert_eq!(LastGood::parse(&text), Some(good.clone()));
        assert_eq!(LastGood::parse(&text.replace("COMMIT\n", "")), None);
        assert_eq!(LastGood::parse("applied-at 1\n"), None);
        assert!(good.describe().contains("applied 2025-11-30T20:00:00Z"));
    }

    #[test]
    fn minimal_policy_drops_input_but_lo_established_and_ssh() {
        let v4 = minimal(Family::V4, None).fragment.to_string();
        assert!(v4.contains(":INPUT DROP"), "{v4}");
        assert!(v4.contains("-A INPUT -i lo -j ACCEPT"));
        assert!(v4.contains("--ctstate RELATED,ESTABLISHED -j ACCEPT"));
        assert!(v4.contains("-A INPUT -p tcp -m tcp --dport 22 -m comment"));
        assert!(!v4.contains("OUTPUT") && !v4.contains("FORWARD"));
        let mut ssh = Config::builtin().ssh;
        ssh.port = 2222;
        ssh.allow_from = vec![
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ];
        let v6 = minimal(Family::V6, Some(&ssh)).fragment.to_string();
        assert!(
            v6.contains("-A INPUT -s 2001:db8::/32 -p tcp -m tcp --dport 2222"),
            "{v6}"
        );
        assert!(!v6.contains("192.0.2.0"));
        assert!(v6.contains("--icmpv6-type 135 -j ACCEPT"));
    }

    #[test]
    fn an_empty_accepting_input_chain_holds_no_policy() {
        let parse = |t: &str| ruleset::parse(t).unwrap();
        let boot = parse("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A FORWARD -j DOCKER-USER\nCOMMIT\n");
        assert!(!holds_a_policy(&boot));
        assert!(!holds_a_policy(&Ruleset::default()));
        assert!(holds_a_policy(&minimal(Family::V4, None).fragment));
    }
}
