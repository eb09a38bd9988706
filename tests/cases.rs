//! The real-world cases of `../shared/cases` (fail2ban in DOCKER-USER, a WireGuard VPN on a
//! swarm host, an LXD bridge beside Docker) through real `start`, a second `start` and
//! `stop` in a throwaway namespace, each twice: with the case's own configuration and
//! `expect.txt`, and with the configuration the case calls for now (`tests/cases/NAME.toml`,
//! the VPN's forwarding and NAT, the LXD bridge trusted, the fail2ban preset) and the
//! expectations that adds (`tests/cases/NAME.expect`). After `stop` both families must be
//! exactly what was there before, less the rules the case says are removed.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use iptables_docker::ruleset::{Ruleset, Table};

fn cases_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/cases")
}

/// Expectation lines of `expect.txt` that the case wrote for the design of the day, and
/// that issue 11 changed, with why.
const SUPERSEDED: &[(&str, &str)] = &[(
    "keep filter -A DOCKER-USER -j RETURN",
    "case 02's Docker (28.x, DOCKER-FORWARD) made no RETURN; the policy no longer adds one \
     (it stayed behind after stop); a Docker <= 28.2.1 RETURN is kept last instead",
)];

/// `v6:filter` → (true, filter). An unknown table name is a broken expectation file.
fn table_of(word: &str) -> (bool, TableName) {
    let (v6, name) = match word.strip_prefix("v6:") {
        Some(t) => (true, t),
        None => (false, word),
    };
    (v6, name.parse().unwrap_or_else(|e| panic!("{e}")))
}

fn rule_lines(rs: &Ruleset, table: TableName) -> Vec<String> {
    rs.table(table)
        .map(|t| {
            t.rules
                .iter()
                .map(|r| format!("-A {} {}", r.chain, r.spec))
                .collect()
        })
        .unwrap_or_default()
}

/// A ruleset without counters and without tables that hold nothing (no rules, no user
/// chains, every policy ACCEPT): a table iptables-legacy once loaded but that is empty
/// is the same firewall as no table.
fn normalized(rs: &Ruleset) -> Ruleset {
    let tables = rs
        .tables
        .iter()
        .filter(|t| holds_something(t))
        .map(|t| {
            let mut t: Table = t.clone();
            t.chains.iter_mut().for_each(|c| c.counters = None);
            t.rules.iter_mut().for_each(|r| r.counters = None);
            t
        })
        .collect();
    Ruleset { tables }
}

struct Run {
    before: [Ruleset; 2],
    started: [Ruleset; 2],
    stopped: [Ruleset; 2],
    explain: String,
    again: String,
}

fn run_case(dir: &Path, config: Option<&Path>) -> Run {
    let file = |name: &str| dir.join(name);
    let ipset = file("v4.ipset");
    let v6 = file("v6.rules");
    let config_arg = match config {
        Some(c) => format!("--config '{}'", c.display()),
        None => String::new(),
    };
    let script = format!(
        r#"{ipset}
iptables-legacy-restore < '{v4}'
{v6}
dump() {{ echo "=== $1 4"; iptables-legacy-save | sed '/^#/d'; echo "=== $1 6"; ip6tables-legacy-save | sed '/^#/d'; }}
dump BEFORE
"$BIN" {config_arg} start > /run/work/out 2>&1 || {{ cat /run/work/out; exit 1; }}
dump START
echo "=== EXPLAIN"; "$BIN" {config_arg} plan --explain
if iptables-legacy -L f2b-odoo -n > /dev/null 2>&1; then
  iptables-legacy -I f2b-odoo 1 -s 203.0.113.99/32 -j REJECT --reject-with icmp-port-unreachable
fi
echo "=== AGAIN"; "$BIN" {config_arg} start
"$BIN" {config_arg} stop > /run/work/out 2>&1 || {{ cat /run/work/out; exit 1; }}
if iptables-legacy -L f2b-odoo -n > /dev/null 2>&1; then
  iptables-legacy -D f2b-odoo -s 203.0.113.99/32 -j REJECT --reject-with icmp-port-unreachable
fi
dump STOP
"#,
        ipset = ipset_restore_line(&ipset),
        v4 = file("v4.rules").display(),
        v6 = if v6.exists() {
            format!("ip6tables-legacy-restore < '{}'", v6.display())
        } else {
            String::new()
        },
    );
    let s = sections(&ok(netns_sh(&script, 120)));
    let pair = |phase: &str| {
        [
            parse(&s[&format!("{phase} 4")]),
            parse(&s[&format!("{phase} 6")]),
        ]
    };
    Run {
        before: pair("BEFORE"),
        started: pair("START"),
        stopped: pair("STOP"),
        explain: s["EXPLAIN"].clone(),
        again: s["AGAIN"].clone(),
    }
}

/// The kinds of expectation lines that check the started ruleset (`KIND TABLE …`).
const CHECKS: [&str; 6] = ["policy", "keep", "absent", "drop", "first", "before"];

/// Checks one expectation line; `None` when it holds (or is a note).
fn check_line(run: &Run, line: &str) -> Option<String> {
    let (kind, rest) = line.split_once(' ')?;
    if kind == "explain" {
        return (!run.explain.lines().any(|l| l == rest))
            .then(|| format!("plan --explain lacks: {rest}\n{}", run.explain));
    }
    if !CHECKS.contains(&kind) {
        return None; // a note ("note order …")
    }
    let (table, rest) = rest.split_once(' ')?;
    let (v6, table) = table_of(table);
    let family = usize::from(v6);
    let after = rule_lines(&run.started[family], table);
    let present = |rule: &str| after.iter().any(|r| r == rule);
    let ok = match kind {
        "policy" => {
            let (chain, policy) = rest.split_once(' ')?;
            let policy = policy.parse().unwrap_or_else(|e| panic!("{e}"));
            policy_of(&run.started[family], table, chain) == Some(policy)
        }
        "keep" => present(rest),
        "absent" => !present(rest),
        "drop" => {
            rule_lines(&run.before[family], table)
                .iter()
                .any(|r| r == rest)
                && !present(rest)
        }
        "first" => {
            let (chain, rule) = rest.split_once(' ')?;
            rules(&run.started[family], table, chain)
                .first()
                .map(String::as_str)
                == Some(rule)
        }
        "before" => {
            let (a, b) = rest.split_once(" ;; ")?;
            let at = |rule: &str| after.iter().position(|r| r == rule);
            matches!((at(a), at(b)), (Some(a), Some(b)) if a < b)
        }
        _ => unreachable!("CHECKS lists the kinds"),
    };
    (!ok).then(|| format!("after start: {line}\n--- {table}:\n{}", after.join("\n")))
}

/// What is wrong with `stopped` as the ruleset `stop` leaves after `before`: it must be
/// `before` with only rules and chains taken out (the others' order and text unchanged),
/// hold every rule `kept` lists (Docker's and the kept chains'), and nothing of ours.
fn stop_problem(before: &Ruleset, stopped: &Ruleset, kept: &[String]) -> Option<String> {
    let before = normalized(before);
    let stopped = normalized(stopped);
    for table in &stopped.tables {
        let Some(was) = before.table(table.name) else {
            return Some(format!("table {} was not there before", table.name));
        };
        let mut old = was.rules.iter();
        for rule in &table.rules {
            if !old.any(|r| r == rule) {
                return Some(format!(
                    "{}: -A {} {} is new or moved",
                    table.name, rule.chain, rule.spec
                ));
            }
        }
        for chain in &table.chains {
            if was.chain(&chain.name) != Some(chain) {
                return Some(format!(
                    "{}: chain {} is new or changed",
                    table.name, chain.name
                ));
            }
        }
    }
    let text = stopped.to_string();
    if text.contains("iptables-docker") {
        return Some(format!("a rule of ours is left:\n{text}"));
    }
    kept.iter()
        .find(|k| !text.lines().any(|l| l == k.as_str()))
        .map(|k| format!("{k} is gone"))
}

fn check_case(name: &str, updated: bool) {
    require_netns("cases", &[]);
    let dir = cases_dir().join(name);
    assert!(dir.is_dir(), "{} is missing", dir.display());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let (config, extra) = if updated {
        let extra = std::fs::read_to_string(repo.join(format!("{name}.expect"))).unwrap();
        (Some(repo.join(format!("{name}.toml"))), extra)
    } else {
        let c = dir.join("config.toml");
        (c.exists().then_some(c), String::new())
    };
    let run = run_case(&dir, config.as_deref());
    let published = std::fs::read_to_string(dir.join("expect.txt")).unwrap();
    let lines: Vec<&str> = published
        .lines()
        .filter(|l| !SUPERSEDED.iter().any(|(s, _)| s == l))
        .chain(extra.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let failures: Vec<String> = lines.iter().filter_map(|l| check_line(&run, l)).collect();
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n\n"));
    assert!(
        run.again.contains("IPv4: ") && run.again.contains("nothing to change"),
        "{name}: a second start (fail2ban banned meanwhile) changed something:\n{}",
        run.again
    );
    for (family, v6) in [(0, false), (1, true)] {
        // The case's `keep` rules that were there before: Docker's and the kept chains'
        // (the others are the policy's).
        let kept: Vec<String> = published
            .lines()
            .filter_map(|l| l.strip_prefix("keep ")?.split_once(' '))
            .filter(|(t, _)| table_of(t).0 == v6)
            .filter(|(t, rule)| {
                rule_lines(&run.before[family], table_of(t).1)
                    .iter()
                    .any(|r| r == rule)
            })
            .map(|(_, rule)| rule.to_string())
            .collect();
        let problem = stop_problem(&run.before[family], &run.stopped[family], &kept);
        assert!(
            problem.is_none(),
            "{name}: after stop, family {family}: {}",
            problem.unwrap()
        );
    }
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_02_fail2ban_in_docker_user_as_published() {
    check_case("02-fail2ban-docker-user", false);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_02_fail2ban_in_docker_user_with_the_preset() {
    check_case("02-fail2ban-docker-user", true);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_06_wireguard_vpn_as_published() {
    check_case("06-wireguard-vpn-on-swarm-host", false);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_06_wireguard_vpn_with_forwarding_and_nat_in_the_config() {
    check_case("06-wireguard-vpn-on-swarm-host", true);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_08_lxd_bridge_as_published() {
    check_case("08-lxd-bridge-docker-user", false);
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn case_08_lxd_bridge_trusted_with_its_nat_in_the_config() {
    check_case("08-lxd-bridge-docker-user", true);
}
