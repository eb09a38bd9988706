//! Composition: the ruleset to load, made of Docker's chains and rules exactly as found
//! (text, relative order, counters), the chains the admin asked to keep, and the host
//! policy; and which of its tables differ from what runs now.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use crate::ownership::{DockerOwnership, Reason, TableOwnership, DOCKER_USER};
use crate::policy::Policy;
use crate::rule::target_of;
use crate::ruleset::{Chain, ChainPolicy, Counters, Rule, Ruleset, Table, TableName};

/// Why a kept rule stays in a chain the policy takes over (DOCKER-USER), where it goes,
/// or `None` when the policy's rules replace it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// A jump to a chain kept in its own right (`keep`/`keep_chains`, e.g. fail2ban's
    /// `-j f2b-odoo` in DOCKER-USER): kept in its original relative order, ahead of the
    /// policy's rules, so that a ban is enforced before the policy accepts.
    JumpFirst,
    /// The bare `-j RETURN` Docker ≤ 28.2.1 appends to DOCKER-USER (and appends again on
    /// every daemon start when it is missing): kept last, as Docker made it.
    DockerReturn,
}

/// What happens to the kept rule `rule` of `table` (kept for `reason`) when the policy owns
/// its chain.
pub fn survives_takeover(
    table: &Table,
    own: &TableOwnership,
    rule: &Rule,
    reason: &Reason,
) -> Option<Takeover> {
    if &*rule.spec == "-j RETURN" && &*rule.chain == DOCKER_USER {
        return Some(Takeover::DockerReturn);
    }
    if matches!(reason, Reason::MatchesKeptSet(_)) {
        return Some(Takeover::JumpFirst);
    }
    let target = target_of(&rule.spec)?;
    let index = table.chains.iter().position(|c| c.name == target)?;
    let kept_in_own_right = matches!(
        own.chains[index],
        Some(Reason::KeepList(_) | Reason::DockerChain)
    );
    (kept_in_own_right && target != &*rule.chain).then_some(Takeover::JumpFirst)
}

/// Builds the ruleset `start`/`stop` loads. Fails when the policy declares a chain that is
/// also kept from the running ruleset.
pub fn compose(
    current: &Ruleset,
    ownership: &DockerOwnership,
    policy: &Policy,
) -> Result<Ruleset, String> {
    let empty = TableOwnership::default();
    let names = Ruleset::table_names(&[current, &policy.fragment]);
    let composed = crate::ruleset::per_table(&names, |&name| {
        let index = current.tables.iter().position(|t| t.name == name);
        let missing = Table::empty(name);
        let (cur, own) = match index {
            Some(i) => (&current.tables[i], &ownership.tables[i]),
            None => (&missing, &empty),
        };
        compose_table(name, cur, own, policy.fragment.table(name))
    });
    // In table order: the first table's error is the one reported.
    Ok(Ruleset {
        tables: composed.into_iter().collect::<Result<_, _>>()?,
    })
}

const ZERO: Option<Counters> = Some(Counters {
    packets: 0,
    bytes: 0,
});

fn compose_table(
    name: TableName,
    cur: &Table,
    own: &TableOwnership,
    pol: Option<&Table>,
) -> Result<Table, String> {
    let pol_chain = |chain: &str| pol.and_then(|p| p.chain(chain));
    let owns = |chain: &str| pol_chain(chain).is_some_and(|c| !c.is_builtin());
    let by_chain = cur.rules_by_chain();
    let builtins = builtin_chains_of(name, cur, pol);
    let gone = gone_chains(cur, own, owns);
    let users = user_chains_of(name, cur, own, pol, owns, &gone, &by_chain)?;
    let is_gone = |r: &Rule| {
        !gone.is_empty()
            && (gone.contains(&&*r.chain) || target_of(&r.spec).is_some_and(|t| gone.contains(&t)))
    };

    // The kept rules of `chain`; of a chain the policy owns, those that survive the
    // takeover in the way `only` says.
    let kept = |chain: &str, only: Option<Takeover>| -> Vec<Rule> {
        (by_chain.get(chain).into_iter().flatten())
            .filter_map(|&i| Some((&cur.rules[i], own.rules[i].as_ref()?)))
            .filter(|(r, reason)| {
                !is_gone(r) && (only.is_none() || survives_takeover(cur, own, r, reason) == only)
            })
            .map(|(r, _)| Rule {
                counters: r.counters.or(ZERO),
                ..r.clone()
            })
            .collect()
    };
    let policy_rules = |chain: &str| -> Vec<Rule> {
        pol.into_iter()
            .flat_map(|p| p.rules_of(chain))
            .map(|r| Rule {
                counters: ZERO,
                ..r.clone()
            })
            .collect()
    };

    let mut rules = Vec::new();
    for chain in builtins.iter().chain(&users) {
        let start = rules.len();
        if owns(&chain.name) {
            rules.extend(kept(&chain.name, Some(Takeover::JumpFirst)));
            rules.extend(policy_rules(&chain.name));
            rules.extend(kept(&chain.name, Some(Takeover::DockerReturn)));
        } else {
            rules.extend(kept(&chain.name, None));
            rules.extend(policy_rules(&chain.name));
        }
        if name == TableName::Filter && chain.name == "FORWARD" && owns(DOCKER_USER) {
            jump_to_docker_user_first(&mut rules, start);
        }
    }
    Ok(Table {
        name,
        chains: builtins.into_iter().chain(users).collect(),
        rules,
    })
}

/// The builtin chains as they run (all ACCEPT when the table has none), with the
/// policy's chain policies.
fn builtin_chains_of(name: TableName, cur: &Table, pol: Option<&Table>) -> Vec<Chain> {
    let found = if cur.chains.is_empty() {
        Table::empty(name).chains
    } else {
        cur.chains
            .iter()
            .filter(|c| c.is_builtin())
            .cloned()
            .collect()
    };
    found
        .into_iter()
        .map(|mut chain| {
            let wanted = pol.and_then(|p| p.chain(&chain.name));
            let policy = wanted.and_then(|c| c.policy);
            if let Some(p) = policy.filter(|p| *p != ChainPolicy::Keep) {
                chain.policy = Some(p);
            }
            chain.counters = chain.counters.or(ZERO);
            chain
        })
        .collect()
}

/// The kept user chains still reached, then the policy's, sorted by name as
/// `iptables-save` lists them. Fails when the policy declares a kept chain.
fn user_chains_of(
    name: TableName,
    cur: &Table,
    own: &TableOwnership,
    pol: Option<&Table>,
    owns: impl Fn(&str) -> bool,
    gone: &[&str],
    by_chain: &HashMap<&str, Vec<usize>>,
) -> Result<Vec<Chain>, String> {
    let mut users: Vec<Chain> = cur
        .chains
        .iter()
        .zip(&own.chains)
        .filter(|(c, reason)| !c.is_builtin() && reason.is_some())
        .map(|(c, _)| Chain {
            counters: c.counters.or(ZERO),
            ..c.clone()
        })
        .collect();
    users.retain(|u| !gone.contains(&u.name.as_str()));
    drop_unreferenced(&mut users, cur, own, owns, by_chain);
    for chain in pol
        .iter()
        .flat_map(|p| &p.chains)
        .filter(|c| !c.is_builtin())
    {
        if users.iter().any(|u| u.name == chain.name) {
            if chain.name != DOCKER_USER {
                return Err(format!(
                    "the policy declares chain {} in table {name}, which is kept from the \
                     running ruleset (keep_chains?)",
                    chain.name
                ));
            }
        } else {
            users.push(Chain {
                counters: ZERO,
                ..chain.clone()
            });
        }
    }
    // iptables-save lists user chains by name; so do we, to compare like with like.
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

/// The chains we created (DOCKER-USER where Docker made none) that go, with every rule in
/// them or jumping to them, because the policy no longer owns them (`stop`).
fn gone_chains<'a>(
    cur: &'a Table,
    own: &TableOwnership,
    owns: impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    cur.chains
        .iter()
        .zip(&own.chains)
        .filter(|(c, r)| matches!(r, Some(Reason::CreatedByUs)) && !owns(&c.name))
        .map(|(c, _)| c.name.as_str())
        .collect()
}

/// A chain kept only because a kept rule jumps to it ([`Reason::Referenced`]) goes when no
/// kept chain reaches it any more, as when the policy takes over the chain that rule was
/// in (DOCKER-USER); else the next run would find it unreferenced and drop it then.
fn drop_unreferenced(
    users: &mut Vec<Chain>,
    cur: &Table,
    own: &TableOwnership,
    owns: impl Fn(&str) -> bool,
    by_chain: &HashMap<&str, Vec<usize>>,
) {
    let mut reached: Vec<String> = cur
        .chains
        .iter()
        .zip(&own.chains)
        .filter(|(c, reason)| {
            c.is_builtin()
                || reason
                    .as_ref()
                    .is_some_and(|r| !matches!(r, Reason::Referenced { .. }))
        })
        .map(|(c, _)| c.name.clone())
        .collect();
    let mut next = 0;
    while let Some(chain) = reached.get(next).cloned() {
        next += 1;
        for &i in by_chain.get(chain.as_str()).into_iter().flatten() {
            let (rule, Some(reason)) = (&cur.rules[i], &own.rules[i]) else {
                continue;
            };
            if owns(&chain) && survives_takeover(cur, own, rule, reason).is_none() {
                continue;
            }
            if let Some(target) = target_of(&rule.spec) {
                if !reached.iter().any(|r| r == target) {
                    reached.push(target.to_string());
                }
            }
        }
    }
    users.retain(|u| reached.contains(&u.name));
}

/// With the policy owning DOCKER-USER, `-A FORWARD -j DOCKER-USER` must be FORWARD's first
/// rule (Docker guarantees that too; a policy cannot work without it).
fn jump_to_docker_user_first(rules: &mut Vec<Rule>, forward_start: usize) {
    let jump = format!("-j {DOCKER_USER}");
    let existing = rules[forward_start..].iter().position(|r| *r.spec == *jump);
    let rule = match existing {
        Some(i) => rules.remove(forward_start + i),
        None => Rule {
            chain: "FORWARD".into(),
            spec: jump.into(),
            counters: Some(Counters::default()),
        },
    };
    rules.insert(forward_start, rule);
}

/// The names of the tables whose content (ignoring counters) differs between `current`
/// and `desired`. A table that does not run now and would be empty is not a change.
pub fn changed_tables(current: &Ruleset, desired: &Ruleset) -> Vec<TableName> {
    desired
        .tables
        .iter()
        .filter(|d| match current.table(d.name) {
            Some(c) => !c.same_content(d),
            None => !is_empty_table(d),
        })
        .map(|d| d.name)
        .collect()
}

fn is_empty_table(table: &Table) -> bool {
    table.rules.is_empty()
        && table
            .chains
            .iter()
            .all(|c| c.policy == Some(ChainPolicy::Accept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::classify;
    use crate::ruleset::parse;

    const CURRENT: &str = "*filter\n:INPUT ACCEPT [9:99]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:ufw-input - [0:0]\n\
        [1:2] -A INPUT -j ufw-input\n[3:4] -A FORWARD -j DOCKER-USER\n[5:6] -A FORWARD -o docker0 -j DOCKER\n\
        [0:0] -A DOCKER-USER -s 1.2.3.4/32 -j DROP\nCOMMIT\n";

    fn policy(text: &str) -> Policy {
        Policy {
            fragment: parse(text).unwrap(),
        }
    }

    #[test]
    fn keeps_docker_with_counters_and_adds_policy() {
        let current = parse(CURRENT).unwrap();
        let own = classify(&current, &[]);
        let pol = policy("*filter\n:INPUT DROP [0:0]\n:IPTD - [0:0]\n-A INPUT -i lo -j ACCEPT\n-A IPTD -j DROP\nCOMMIT\n");
        let out = compose(&current, &own, &pol).unwrap().to_string();
        assert_eq!(
            out,
            "*filter\n:INPUT DROP [9:99]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:IPTD - [0:0]\n\
             [0:0] -A INPUT -i lo -j ACCEPT\n[3:4] -A FORWARD -j DOCKER-USER\n\
             [5:6] -A FORWARD -o docker0 -j DOCKER\n[0:0] -A DOCKER-USER -s 1.2.3.4/32 -j DROP\n\
             [0:0] -A IPTD -j DROP\nCOMMIT\n"
        );
    }

    #[test]
    fn a_policy_owning_docker_user_replaces_its_rules_and_jumps_first() {
        let current = parse(&CURRENT.replace(
            "[3:4] -A FORWARD -j DOCKER-USER\n[5:6] -A FORWARD -o docker0 -j DOCKER\n",
            "[5:6] -A FORWARD -o docker0 -j DOCKER\n",
        ))
        .unwrap();
        let own = classify(&current, &[]);
        let pol = policy("*filter\n:DOCKER-USER - [0:0]\n-A DOCKER-USER -j RETURN\nCOMMIT\n");
        let out = compose(&current, &own, &pol).unwrap().to_string();
        assert!(out.contains(
            "[0:0] -A FORWARD -j DOCKER-USER\n[5:6] -A FORWARD -o docker0 -j DOCKER\n[0:0] -A DOCKER-USER -j RETURN\nCOMMIT"
        ), "{out}");
    }

    #[test]
    fn chains_reached_only_from_a_taken_over_docker_user_go_with_its_rules() {
        // Found by tests/properties.rs: they were kept once, then dropped by the next run;
        // and a policy chain that the old DOCKER-USER jumped to was refused as "kept".
        let current = parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER-USER - [0:0]\n:IPTD - [0:0]\n:ufw-user-forward - [0:0]\n\
             -A FORWARD -j DOCKER-USER\n-A DOCKER-USER -j ufw-user-forward\n\
             -A DOCKER-USER -j IPTD\n-A IPTD -j RETURN\n-A ufw-user-forward -j RETURN\n\
             COMMIT\n",
        )
        .unwrap();
        let pol = policy(
            "*filter\n:DOCKER-USER - [0:0]\n:IPTD - [0:0]\n-A DOCKER-USER -j IPTD\n\
             -A IPTD -j RETURN\nCOMMIT\n",
        );
        let once = compose(&current, &classify(&current, &[]), &pol).unwrap();
        assert!(!once.to_string().contains("ufw"), "{once}");
        let twice = compose(&once, &classify(&once, &[]), &pol).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn a_docker_user_we_created_goes_on_stop_and_keeps_jumps_meanwhile() {
        // Issue 11: ip6tables that Docker never touched kept `:DOCKER-USER`, its jump and a
        // RETURN after start + stop.
        let empty = parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :f2b-web - [0:0]\n-A f2b-web -j RETURN\nCOMMIT\n",
        )
        .unwrap();
        let keep = ["f2b-*".to_string()];
        let pol = policy(
            "*filter\n:DOCKER-USER - [0:0]\n\
             -A DOCKER-USER -m comment --comment iptables-docker -j DROP\nCOMMIT\n",
        );
        let started = compose(&empty, &classify(&empty, &keep), &pol).unwrap();
        assert!(started.to_string().contains(":DOCKER-USER"), "{started}");
        // fail2ban hooks the chain now that it exists; the next start keeps the jump first.
        let mut hooked = started.clone();
        hooked.tables[0].rules.insert(
            1,
            Rule {
                chain: DOCKER_USER.into(),
                spec: "-p tcp -j f2b-web".into(),
                counters: None,
            },
        );
        let again = compose(&hooked, &classify(&hooked, &keep), &pol).unwrap();
        let user: Vec<&str> = again.tables[0]
            .rules_of(DOCKER_USER)
            .map(|r| &*r.spec)
            .collect();
        assert_eq!(user[0], "-p tcp -j f2b-web", "{again}");
        let stopped = compose(&again, &classify(&again, &keep), &Policy::open()).unwrap();
        assert_eq!(stopped, empty_with_counters(&empty));
    }

    fn empty_with_counters(rs: &Ruleset) -> Ruleset {
        compose(rs, &classify(rs, &["f2b-*".to_string()]), &Policy::open()).unwrap()
    }

    #[test]
    fn composing_twice_is_composing_once() {
        let current = parse(CURRENT).unwrap();
        let pol = Policy::open();
        let once = compose(&current, &classify(&current, &[]), &pol).unwrap();
        let twice = compose(&once, &classify(&once, &[]), &pol).unwrap();
        assert_eq!(once, twice);
        assert!(changed_tables(&once, &twice).is_empty());
    }
}
