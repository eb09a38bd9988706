//! Test support: run a bash script inside a throwaway network namespace (with its own
//! mount and PID namespaces, a private tmpfs on /run so the xtables lock and our state are
//! private, and a PID 1 whose exit kills everything it started). Never the host's netns.

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod systemd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use iptables_docker::ruleset::{self, ChainPolicy, Ruleset, TableName};

/// The binary under test.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("iptables-docker")
}

/// `../shared/fixtures/docker`, beside the repository.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/docker")
}

/// Every `*.rules` fixture under [`fixtures_dir`], sorted; fails unless all (520 and
/// counting) are there.
pub fn fixture_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![fixtures_dir()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rules") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 500,
        "expected the 520 fixtures, found {}",
        files.len()
    );
    files
}

/// Runs `check` on every file, three at a time; panics listing every failure.
pub fn check_all(
    what: &str,
    files: &[PathBuf],
    check: impl Fn(usize, &Path) -> Result<(), String> + Sync,
) {
    let next = std::sync::Mutex::new(files.iter().enumerate());
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..3 {
            scope.spawn(|| loop {
                let Some((i, file)) = next.lock().unwrap().next() else {
                    break;
                };
                if let Err(why) = check(i, file) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {why}", file.display()));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    println!(
        "{what}: {}/{} passed",
        files.len() - failures.len(),
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
}

fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (network namespaces need it)".into());
    }
    for tool in [
        "unshare",
        "ip",
        "iptables-legacy-restore",
        "ip6tables-legacy-restore",
        "ipset",
        "strace",
    ] {
        if which::which(tool).is_err() {
            return Some(format!(
                "`{tool}` is not installed (bash .ci/run installs it)"
            ));
        }
    }
    if !fixtures_dir().is_dir() {
        return Some(format!("{} is missing", fixtures_dir().display()));
    }
    None
}

/// Fails the test unless the namespace suites can run here (root, the tools, `../shared`),
/// and, beyond those, `tools`. The suites that call it are `#[ignore]`d with the reason,
/// so that plain `cargo test` reads them as ignored; `cargo test -- --include-ignored`
/// (the README's command, which .ci/run calls) runs them, and there a missing
/// prerequisite is a failure, never an `ok`.
pub fn require_netns(suite: &str, tools: &[&str]) {
    let missing = missing_prerequisite().or_else(|| {
        tools
            .iter()
            .find(|t| which::which(t).is_err())
            .map(|t| format!("`{t}` is not installed (bash .ci/run installs it)"))
    });
    if let Some(reason) = missing {
        panic!("{suite} cannot run: {reason}; nothing was proven");
    }
}

/// What every namespace script starts with.
const PRELUDE: &str = r#"set -euo pipefail
mount -t tmpfs iptd-run /run
if [ -d /etc/iptables-docker ]; then mount -t tmpfs iptd-etc /etc/iptables-docker; fi
mkdir -p /run/iptd /run/work
export IPTABLES_DOCKER_STATE_DIR=/run/iptd
ip link set lo up
"#;

/// Runs `script` with bash in a fresh namespace; `$BIN` is the binary, `$FIXTURES` the
/// fixture directory, `$TESTS` this directory. Killed after `timeout_s`.
pub fn netns_sh(script: &str, timeout_s: u32) -> Output {
    let full = format!("{PRELUDE}{script}");
    Command::new("timeout")
        .args(["--kill-after=10", &timeout_s.to_string()])
        .args(["unshare", "--net", "--mount", "--propagation", "private"])
        .args(["--pid", "--fork", "--mount-proc", "bash", "-c", &full])
        .env("BIN", bin())
        .env("FIXTURES", fixtures_dir())
        .env(
            "TESTS",
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests"),
        )
        .env_remove("SSH_CONNECTION")
        .env_remove("XTABLES_LOCKFILE")
        .output()
        .expect("run unshare")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Panics with the script's output unless it exited 0.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "namespace script failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The shell line that loads a fixture's ipset companion first (`X.ipset` beside the
/// Docker 28.0.0 fixtures), or an empty string when `ipset` does not exist.
pub fn ipset_restore_line(ipset: &Path) -> String {
    if ipset.exists() {
        format!("ipset restore < '{}'", ipset.display())
    } else {
        String::new()
    }
}

/// Runs `script` with [`netns_sh`] (120 s) and returns its [`sections`]; an error when
/// the script fails, or when it printed a `=== FAILED` section (`step` names what failed).
pub fn netns_sections(
    script: &str,
    step: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let out = netns_sh(script, 120);
    if !out.status.success() {
        return Err(format!("setup failed: {}{}", stdout(&out), stderr(&out)));
    }
    let s = sections(&stdout(&out));
    match s.get("FAILED") {
        Some(failure) => Err(format!("{step} failed: {failure}")),
        None => Ok(s),
    }
}

/// Splits output into the sections that follow `=== NAME` marker lines.
pub fn sections(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut map = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("=== ") {
            current = Some(name.trim().to_string());
            map.insert(name.trim().to_string(), String::new());
        } else if let Some(name) = &current {
            let s = map.get_mut(name).unwrap();
            s.push_str(line);
            s.push('\n');
        }
    }
    map
}

pub fn parse(text: &str) -> Ruleset {
    ruleset::parse(text).unwrap_or_else(|e| panic!("unparsable save output: {e}\n{text}"))
}

/// Rules of one chain, as `-A CHAIN spec` strings.
pub fn rules(rs: &Ruleset, table: TableName, chain: &str) -> Vec<String> {
    rs.table(table)
        .map(|t| {
            t.rules_of(chain)
                .map(|r| format!("-A {} {}", r.chain, r.spec))
                .collect()
        })
        .unwrap_or_default()
}

pub fn policy_of(rs: &Ruleset, table: TableName, chain: &str) -> Option<ChainPolicy> {
    rs.table(table)?.chain(chain)?.policy
}

/// What a shell script under tests/ reported in the format of tests/common/checks.sh:
/// `ok N - WHAT` / `not ok N - WHAT` lines, then the plan `1..N` and `# P passed, F failed`.
#[derive(Debug, Default)]
pub struct Checks {
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    /// N of the plan line; `None` when the script printed none (it died before the end).
    pub plan: Option<usize>,
    /// Result lines whose number is not the next one (a second run's output mixed in).
    pub out_of_order: usize,
}

impl Checks {
    /// Reads `stdout`; lines of any other shape (indented details, headings, program
    /// output) are not results.
    pub fn read(stdout: &str) -> Checks {
        let mut checks = Checks::default();
        for line in stdout.lines() {
            let (ok, rest) = match line.strip_prefix("not ok ") {
                Some(rest) => (false, rest),
                None => match line.strip_prefix("ok ") {
                    Some(rest) => (true, rest),
                    None => {
                        let plan = line.strip_prefix("1..").and_then(|n| n.parse().ok());
                        checks.plan = plan.or(checks.plan);
                        continue;
                    }
                },
            };
            let Some((number, what)) = rest.split_once(" - ") else {
                continue;
            };
            let next = checks.passed.len() + checks.failed.len() + 1;
            if number.parse() != Ok(next) {
                checks.out_of_order += 1;
            }
            let list = if ok {
                &mut checks.passed
            } else {
                &mut checks.failed
            };
            list.push(what.to_string());
        }
        checks
    }

    /// Why these results are not a pass, or `None`: a failed check, no plan line, a plan
    /// that does not count the results, or a check of `required` that did not pass (a
    /// script that stopped checking it).
    pub fn problem(&self, required: &[&str]) -> Option<String> {
        let count = self.passed.len() + self.failed.len();
        if !self.failed.is_empty() {
            return Some(format!("failed checks:\n  {}", self.failed.join("\n  ")));
        }
        match self.plan {
            None => return Some("no plan line (1..N): the script stopped early".into()),
            Some(0) => return Some("the plan is 1..0: nothing was checked".into()),
            Some(n) if n != count || self.out_of_order > 0 => {
                return Some(format!("the plan says 1..{n}, the script reported {count}"))
            }
            Some(_) => {}
        }
        let missing: Vec<&str> = required
            .iter()
            .filter(|r| !self.passed.iter().any(|p| p.starts_with(**r)))
            .copied()
            .collect();
        (!missing.is_empty()).then(|| format!("checks that did not pass: {missing:?}"))
    }
}

/// Asserts that `script` (its `out`) passed: exit 0 and [`Checks::problem`] finds nothing
/// with `required`. Returns "N checks passed".
pub fn assert_checks_passed(script: &str, out: &Output, required: &[&str]) -> String {
    let stdout = stdout(out);
    let checks = Checks::read(&stdout);
    let problem = match checks.problem(required) {
        None if out.status.success() => None,
        None => Some(format!("it exited with {}", out.status)),
        problem => problem,
    };
    if let Some(problem) = problem {
        panic!(
            "{script}: {problem}\n--- stdout\n{stdout}\n--- stderr\n{}",
            stderr(out)
        );
    }
    format!("{} checks passed", checks.passed.len())
}

/// Whether a saved table holds anything: a rule, or a chain whose policy is not ACCEPT. A
/// table iptables-legacy once loaded but that holds nothing is the same firewall as no
/// table, so comparisons leave such tables out.
pub fn holds_something(table: &ruleset::Table) -> bool {
    !table.rules.is_empty()
        || table
            .chains
            .iter()
            .any(|c| c.policy != Some(ChainPolicy::Accept))
}
