//! `status --json` and `plan --diff` plan the same way (one pure plan; the apply record may only
//! skip tables the last apply left as they are), so they name the same tables to write —
//! on every Docker-written fixture host, after `start`, after drift (a rule added by
//! hand), and after a configuration change. Each host is a throwaway namespace.

mod common;

use std::path::Path;

use common::*;

const FAMILIES: [&str; 2] = ["IPv4", "IPv6"];

/// The tables `status --json` says differ, per family (`IPv4`/`IPv6`): the tables its
/// drift lines (`- table: -A …`, `+ table: -A …`) name, sorted.
fn status_tables(json: &str, family: &str) -> Option<Vec<String>> {
    let report: serde_json::Value = serde_json::from_str(json).ok()?;
    let entry = report["families"]
        .as_array()?
        .iter()
        .find(|f| f["family"].as_str() == Some(&family.to_lowercase()))?;
    let mut tables: Vec<String> = entry["drift"]
        .as_array()?
        .iter()
        .filter_map(|line| {
            let table = line.as_str()?.get(2..)?.split(':').next()?;
            Some(table.to_string())
        })
        .collect();
    tables.sort();
    tables.dedup();
    Some(tables)
}

/// The tables `plan --diff` would write, per family, from its `# FAMILY: …` lines.
fn plan_tables(out: &str, family: &str) -> Option<Vec<String>> {
    let rest = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {family}: ")))?;
    let mut tables: Vec<String> = match rest.strip_prefix("tables to write: ") {
        Some(tables) => tables.split(", ").map(|t| t.trim().to_string()).collect(),
        None if rest.starts_with("nothing to change") => Vec::new(),
        None => return None,
    };
    tables.sort();
    Some(tables)
}

/// One fixture host: start, then status and plan --diff after each phase; the tables
/// they name must agree, and be what the phase implies.
fn check(file: &Path) -> Result<(), String> {
    let v6 = file.to_string_lossy().ends_with(".v6.rules");
    let (p, addr, fixture_family) = if v6 {
        ("ip6tables", "2001:db8::1", "IPv6")
    } else {
        ("iptables", "192.0.2.1", "IPv4")
    };
    let ipset = file.with_extension("ipset");
    let script = format!(
        r#"F='{file}'
{ipset_load}
{p}-legacy-restore < "$F"
"$BIN" start > /run/work/out 2>&1 || {{ echo "=== FAILED"; cat /run/work/out; exit 0; }}
printf '[[allow]]\nport = 8080\n' > /run/work/changed.toml
phase() {{
  set +e
  echo "=== STATUS $1"; "$BIN" status --json "${{@:2}}"
  echo "=== PLAN $1"; "$BIN" plan --diff "${{@:2}}" 2>&1
  set -e
}}
phase started
{p}-legacy -I INPUT 1 -s {addr} -j ACCEPT
phase drifted
phase reconfigured --config /run/work/changed.toml
"#,
        file = file.display(),
        ipset_load = ipset_restore_line(&ipset),
    );
    let s = netns_sections(&script, "start")?;
    for phase in ["started", "drifted", "reconfigured"] {
        let (status, plan) = (&s[&format!("STATUS {phase}")], &s[&format!("PLAN {phase}")]);
        for family in FAMILIES {
            let said = status_tables(status, family)
                .ok_or(format!("{phase}: no {family} line in status:\n{status}"))?;
            let planned = plan_tables(plan, family)
                .ok_or(format!("{phase}: no {family} line in plan --diff:\n{plan}"))?;
            if said != planned {
                return Err(format!(
                    "{phase}, {family}: status says {said:?}, plan --diff {planned:?}\n\
                     --- status\n{status}--- plan --diff\n{plan}"
                ));
            }
            let expected_filter = match phase {
                "started" => false,
                "drifted" => family == fixture_family,
                _ => true,
            };
            if said.iter().any(|t| t == "filter") != expected_filter
                || (phase == "started" && !said.is_empty())
            {
                return Err(format!(
                    "{phase}, {family}: both name {said:?}, which is not what {phase} implies\n\
                     --- status\n{status}"
                ));
            }
        }
    }
    Ok(())
}

#[test]
#[ignore = "needs root, network namespaces and ../shared (cargo test -- --include-ignored)"]
fn status_and_plan_diff_agree_on_every_fixture_host_after_start_drift_and_reconfiguration() {
    require_netns("status_plan", &[]);
    let files = fixture_files();
    check_all("status/plan --diff", &files, |_, file| check(file));
}

#[test]
fn the_table_lists_are_read_from_both_outputs() {
    let status = r#"{"schema": 1, "families": [
        {"family": "ipv4", "drift": ["- nat: -A X -j Y", "+ filter: -A INPUT -j Z", "- filter: -A A"]},
        {"family": "ipv6", "drift": []}]}"#;
    assert_eq!(status_tables(status, "IPv4").unwrap(), ["filter", "nat"]);
    assert_eq!(status_tables(status, "IPv6").unwrap(), Vec::<String>::new());
    let plan = "# IPv4: tables to write: nat, filter\n--- a\n# IPv6: nothing to change\n";
    assert_eq!(plan_tables(plan, "IPv4").unwrap(), ["filter", "nat"]);
    assert_eq!(plan_tables(plan, "IPv6").unwrap(), Vec::<String>::new());
    assert_eq!(plan_tables("", "IPv4"), None);
}
