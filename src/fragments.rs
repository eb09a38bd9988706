//! Drop-in fragments: `rules.d/*.rules` beside the configuration
//! (`/etc/iptables-docker/rules.d/`), `iptables-restore` text merged into the host policy
//! for what the configuration cannot say. `NAME.v4.rules` is for IPv4 only,
//! `NAME.v6.rules` for IPv6 only, any other `NAME.rules` for both; files are merged in
//! name order, each rule after the template's rules of its chain.
//!
//! A fragment may add rules to builtin chains (declared `:INPUT - [0:0]`, or not at all)
//! and declare chains of its own; it may not set a builtin chain's policy (the
//! configuration does), touch Docker's chains, or declare a chain twice. Every rule is
//! marked with the comment `iptables-docker: rules.d/NAME` so that `stop` removes it even
//! where it looks like one of Docker's.

use std::path::{Path, PathBuf};

use crate::config::parse_cidr;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::ownership::{is_docker_chain, OWN_MARK};
use crate::policy::comment_filter;
use crate::rule::jump;
use crate::ruleset::{self, Ruleset, TableName};

/// The directory holding the fragments for a configuration file (`None`: the default).
pub fn dir_for(config: Option<&Path>) -> PathBuf {
    config
        .and_then(Path::parent)
        .unwrap_or(Path::new("/etc/iptables-docker"))
        .join("rules.d")
}

/// One validated fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub path: PathBuf,
    /// `None`: both families.
    pub family: Option<Family>,
    /// Its tables, rules marked ours, builtin chains declared with `-`.
    pub ruleset: Ruleset,
}

impl Fragment {
    pub fn applies_to(&self, family: Family) -> bool {
        self.family.is_none_or(|f| f == family)
    }
}

/// Reads every `*.rules` file of `dir`, in name order; a missing directory is no
/// fragments. Errors name the file and line.
pub fn load_dir(dir: &Path) -> Result<Vec<Fragment>> {
    let entries = match fs_err::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::config(e.to_string())),
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rules"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = fs_err::read_to_string(&path).map_err(|e| Error::config(e.to_string()))?;
            parse(&text, &path)
        })
        .collect()
}

fn family_of(path: &Path) -> Option<Family> {
    let name = path.file_name()?.to_string_lossy();
    if name.ends_with(".v4.rules") {
        Some(Family::V4)
    } else if name.ends_with(".v6.rules") {
        Some(Family::V6)
    } else {
        None
    }
}

/// Parses and checks one fragment; `path` names it in errors and in its rules' mark.
pub fn parse(text: &str, path: &Path) -> Result<Fragment> {
    let file = path.display().to_string();
    let located = |line: usize, message: String| {
        let shown = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
        Error::config(format!("{file}:{line}: {message}\n  | {shown}"))
            .hint("fix or remove the fragment; nothing was applied")
    };
    let family = family_of(path);
    let (augmented, origin) = declare_builtins(text, family).map_err(|(l, m)| located(l, m))?;
    let mut ruleset = ruleset::parse(&augmented)
        .map_err(|e| located(origin.get(e.line - 1).copied().unwrap_or(1), e.message))?;
    let name = path
        .file_name()
        .map_or(file.clone(), |n| n.to_string_lossy().into_owned());
    let mark = comment_filter(format!("{OWN_MARK}: rules.d/{name}"));
    for table in &mut ruleset.tables {
        for rule in &mut table.rules {
            rule.spec = marked(&rule.spec, &mark).into();
        }
    }
    Ok(Fragment {
        path: path.to_path_buf(),
        family,
        ruleset,
    })
}

/// `spec` with `mark` (`-m comment --comment … `) before its target, where iptables-save
/// prints a comment match added last.
fn marked(spec: &str, mark: &str) -> String {
    match jump(spec) {
        Some((at, _)) => format!("{}{mark}{}", &spec[..at], &spec[at..]),
        None if spec.is_empty() => mark.trim_end().to_string(),
        None => format!("{spec} {}", mark.trim_end()),
    }
}

/// The fragment text with `:CHAIN - [0:0]` declared after each `*table` line for every
/// builtin chain the block does not declare, and for each line of the result the line of
/// the fragment it came from. Refuses a builtin chain's policy, Docker's chains and
/// unknown tables, with the fragment's line number.
fn declare_builtins(
    text: &str,
    family: Option<Family>,
) -> std::result::Result<(String, Vec<usize>), (usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut origin = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let number = index + 1;
        let line = line.trim_end_matches('\r');
        let mut push = |text: &str| {
            out.push_str(text);
            out.push('\n');
            origin.push(number);
        };
        push(line);
        if let Some(decl) = line.strip_prefix(':') {
            let mut words = decl.split(' ');
            let name = words.next().unwrap_or("");
            let policy = words.next().unwrap_or("-");
            if is_docker_chain(name) {
                return Err((number, format!("chain {name} is Docker's; a fragment may not touch it (published ports: [containers] in the configuration)")));
            }
            if policy != "-" {
                return Err((number, format!("a fragment may not set the policy of chain {name} (the configuration does); write ':{name} - [0:0]'")));
            }
        } else if line.starts_with("-A ") || line.starts_with('[') {
            let chain = line.split(' ').find(|w| !w.starts_with('[') && *w != "-A");
            if let Some(chain) = chain.filter(|c| is_docker_chain(c)) {
                return Err((
                    number,
                    format!("chain {chain} is Docker's; a fragment may not add rules to it"),
                ));
            }
            address_family(line, family).map_err(|m| (number, m))?;
        }
        let Some(table) = line.strip_prefix('*') else {
            continue;
        };
        let builtins = table
            .parse::<TableName>()
            .map_err(|m| (number, m))?
            .builtin_chains();
        let block = lines[index + 1..]
            .iter()
            .take_while(|l| l.trim_end() != "COMMIT");
        let declared: Vec<&str> = block
            .filter_map(|l| l.strip_prefix(':'))
            .filter_map(|d| d.split(' ').next())
            .collect();
        for chain in builtins.iter().filter(|c| !declared.contains(c)) {
            push(&format!(":{chain} - [0:0]"));
        }
    }
    Ok((out, origin))
}

/// Checks that the addresses of a rule line (`-s`, `-d`) belong to `family`; a fragment
/// for both families may name none (`iptables-restore` would refuse it in one of them).
fn address_family(line: &str, family: Option<Family>) -> std::result::Result<(), String> {
    let words: Vec<&str> = line.split(' ').collect();
    for pair in words.windows(2) {
        if !matches!(pair[0], "-s" | "-d" | "--source" | "--destination") {
            continue;
        }
        let Some(net) = pair[1].split(',').next().and_then(|a| parse_cidr(a).ok()) else {
            continue;
        };
        match family {
            Some(f) if !f.contains(&net) => {
                return Err(format!("{} is not an {f} address", pair[1]));
            }
            None => {
                return Err(format!(
                    "{} belongs to one family; put the rule in NAME.v4.rules or NAME.v6.rules",
                    pair[1]
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Merges the fragments for `family` into `policy`: their chains are added (a chain may be
/// declared once across the template and all fragments, builtin chains aside), their rules
/// follow the policy's rules of the same chain.
pub fn merge(policy: &mut Ruleset, fragments: &[Fragment], family: Family) -> Result<()> {
    for fragment in fragments.iter().filter(|f| f.applies_to(family)) {
        for table in &fragment.ruleset.tables {
            let target = match policy.tables.iter().position(|t| t.name == table.name) {
                Some(i) => &mut policy.tables[i],
                None => {
                    policy.tables.push(crate::ruleset::Table {
                        name: table.name,
                        chains: Vec::new(),
                        rules: Vec::new(),
                    });
                    policy.tables.last_mut().expect("just pushed")
                }
            };
            for chain in &table.chains {
                match target.chain(&chain.name) {
                    Some(_) if chain.is_builtin() => {}
                    Some(_) => {
                        return Err(Error::config(format!(
                            "{}: chain {} in table {} is declared twice (by the policy or \
                             another fragment)",
                            fragment.path.display(),
                            chain.name,
                            table.name
                        ))
                        .hint("rename the chain; nothing was applied"))
                    }
                    None => target.chains.push(chain.clone()),
                }
            }
            for rule in &table.rules {
                let after = target.rules.iter().rposition(|r| r.chain == rule.chain);
                let at = after.map_or(target.rules.len(), |i| i + 1);
                target.rules.insert(at, rule.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::ChainPolicy;

    fn parse_text(text: &str) -> Result<Fragment> {
        parse(text, Path::new("/etc/iptables-docker/rules.d/vpn.v4.rules"))
    }

    #[test]
    fn rules_are_marked_and_builtins_declared() {
        let f = parse_text(
            "# a VPN\n*nat\n-A POSTROUTING -s 10.8.0.0/24 -o eth0 -j MASQUERADE\nCOMMIT\n\
             *filter\n:VPN - [0:0]\n-A FORWARD -i wg0 -j VPN\n-A VPN -p udp -m udp --dport 53\nCOMMIT\n",
        )
        .unwrap();
        assert_eq!(f.family, Some(Family::V4));
        let text = f.ruleset.to_string();
        assert!(text.contains(
            "-A POSTROUTING -s 10.8.0.0/24 -o eth0 -m comment --comment \"iptables-docker: rules.d/vpn.v4.rules\" -j MASQUERADE\n"
        ), "{text}");
        assert!(text.contains(":FORWARD - [0:0]\n"), "{text}");
        assert!(text.contains(
            "-A VPN -p udp -m udp --dport 53 -m comment --comment \"iptables-docker: rules.d/vpn.v4.rules\"\n"
        ), "{text}");
    }

    #[test]
    fn errors_name_file_and_line() {
        for (text, line, what) in [
            (
                "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
                2,
                "may not set the policy",
            ),
            ("*filter\n-A DOCKER-USER -j DROP\nCOMMIT\n", 2, "Docker's"),
            (
                "*filter\n\n-A NOPE -j DROP\nCOMMIT\n",
                3,
                "does not declare",
            ),
            ("*flter\nCOMMIT\n", 1, "unknown table"),
            ("*filter\n-A INPUT -j ACCEPT\n", 1, "no COMMIT"),
            (
                "*filter\n-A INPUT -s fd00::/8 -j ACCEPT\nCOMMIT\n",
                2,
                "not an IPv4 address",
            ),
        ] {
            let err = parse_text(text).unwrap_err().to_string();
            let want = format!("/etc/iptables-docker/rules.d/vpn.v4.rules:{line}: ");
            assert!(
                err.starts_with(&want) && err.contains(what),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn merging_appends_after_the_policy_rules_and_refuses_a_chain_twice() {
        let mut policy = ruleset::parse(
            "*filter\n:INPUT DROP [0:0]\n:X - [0:0]\n-A INPUT -i lo -j ACCEPT\n-A X -j RETURN\nCOMMIT\n",
        )
        .unwrap();
        let f = parse_text("*filter\n-A INPUT -i wg0 -j ACCEPT\nCOMMIT\n").unwrap();
        merge(&mut policy, std::slice::from_ref(&f), Family::V4).unwrap();
        let rules: Vec<&str> = policy.tables[0].rules.iter().map(|r| &*r.chain).collect();
        assert_eq!(rules, ["INPUT", "INPUT", "X"]);
        assert_eq!(
            policy.tables[0].chain("INPUT").unwrap().policy,
            Some(ChainPolicy::Drop)
        );
        merge(&mut policy, &[f], Family::V6).unwrap();
        assert_eq!(
            policy.tables[0].rules.len(),
            3,
            "a v4 fragment is not merged into v6"
        );
        let twice = parse_text("*filter\n:X - [0:0]\nCOMMIT\n").unwrap();
        let err = merge(&mut policy, &[twice], Family::V4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("declared twice"), "{err}");
    }
}
