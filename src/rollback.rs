//! What "put back the previous ruleset" means once time has passed: the ruleset found
//! before an apply, but with Docker's chains and rules (and the kept chains) as they are
//! *now* — Docker may have started containers meanwhile, and those rules must survive.

#![forbid(unsafe_code)]

use crate::ownership::{classify, TableOwnership};
use crate::ruleset::{Chain, Rule, Ruleset, Table};

/// Merges `before` (the snapshot) with `now`: every rule and chain that classification
/// keeps comes from `now`, everything else from `before`. In a builtin chain, the kept
/// rules of `now` take the place of the first kept rule of `before` (or go first), so
/// e.g. ufw's jump ahead of Docker's stays ahead of it. The FORWARD policy is Docker's:
/// taken from `now`.
pub fn merge(before: &Ruleset, now: &Ruleset, keep_chains: &[String]) -> Ruleset {
    let own_before = classify(before, keep_chains);
    let own_now = classify(now, keep_chains);
    let empty_own = TableOwnership::default();
    let tables = Ruleset::table_names(&[before, now])
        .into_iter()
        .map(|name| {
            let lookup = |rs: &Ruleset, own: &[TableOwnership]| {
                rs.tables
                    .iter()
                    .position(|t| t.name == name)
                    .map(|i| (rs.tables[i].clone(), own[i].clone()))
            };
            let (b, ob) = lookup(before, &own_before.tables)
                .unwrap_or_else(|| (Table::empty(name), empty_own.clone()));
            let (n, on) = lookup(now, &own_now.tables)
                .unwrap_or_else(|| (Table::empty(name), empty_own.clone()));
            merge_table(&b, &ob, &n, &on)
        })
        .collect();
    Ruleset { tables }
}

fn merge_table(b: &Table, ob: &TableOwnership, n: &Table, on: &TableOwnership) -> Table {
    let builtins = merged_builtins(b, n);
    let kept_now: Vec<&Chain> = n
        .chains
        .iter()
        .zip(&on.chains)
        .filter(|(c, r)| !c.is_builtin() && r.is_some())
        .map(|(c, _)| c)
        .collect();
    let mut users: Vec<Chain> = kept_now.iter().map(|c| (*c).clone()).collect();
    for (c, r) in b.chains.iter().zip(&ob.chains) {
        if !c.is_builtin() && r.is_none() && !users.iter().any(|u| u.name == c.name) {
            users.push(c.clone());
        }
    }
    users.sort_by(|x, y| x.name.cmp(&y.name));

    let kept_rules = |t: &Table, o: &TableOwnership, chain: &str, kept: bool| -> Vec<Rule> {
        t.rules
            .iter()
            .zip(&o.rules)
            .filter(|(r, reason)| &*r.chain == chain && reason.is_some() == kept)
            .map(|(r, _)| r.clone())
            .collect()
    };
    let mut rules = Vec::new();
    for chain in &builtins {
        let docker_now = kept_rules(n, on, &chain.name, true);
        let mut placed = false;
        for (r, reason) in b.rules.iter().zip(&ob.rules) {
            if *r.chain != *chain.name {
                continue;
            }
            match reason {
                Some(_) if !placed => {
                    rules.extend(docker_now.iter().cloned());
                    placed = true;
                }
                Some(_) => {}
                None => rules.push(r.clone()),
            }
        }
        if !placed {
            let at = rules.len() - kept_rules(b, ob, &chain.name, false).len();
            rules.splice(at..at, docker_now);
        }
    }
    for chain in &users {
        if kept_now.iter().any(|c| c.name == chain.name) {
            rules.extend(n.rules_of(&chain.name).cloned());
        } else {
            rules.extend(b.rules_of(&chain.name).cloned());
        }
    }
    Table {
        name: n.name,
        chains: builtins.into_iter().chain(users).collect(),
        rules,
    }
}

/// The builtin chains of the snapshot `b`, with the FORWARD policy of `n` (Docker's).
fn merged_builtins(b: &Table, n: &Table) -> Vec<Chain> {
    // A table the snapshot does not have was not loaded: all its policies were ACCEPT.
    let before = if b.chains.is_empty() {
        Table::empty(n.name).chains
    } else {
        b.chains
            .iter()
            .filter(|c| c.is_builtin())
            .cloned()
            .collect()
    };
    before
        .into_iter()
        .map(|c| match n.chain(&c.name) {
            Some(now) if c.name == "FORWARD" => Chain {
                policy: now.policy,
                ..c
            },
            _ => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::parse;

    #[test]
    fn the_old_host_rules_come_back_with_todays_docker_rules() {
        let before = parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:ufw-fw - [0:0]\n\
             -A INPUT -j ufw-fw\n-A FORWARD -j ufw-fw\n-A FORWARD -o docker0 -j DOCKER\n\
             -A FORWARD -j LOG\n-A DOCKER -d 10.0.0.2/32 -j ACCEPT\n-A ufw-fw -j RETURN\nCOMMIT\n",
        )
        .unwrap();
        let now = parse(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:IPTD - [0:0]\n\
             -A INPUT -i lo -j ACCEPT\n-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -o br-1 -j DOCKER\n\
             -A DOCKER -d 10.0.0.2/32 -j ACCEPT\n-A DOCKER -d 10.0.0.3/32 -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        let merged = merge(&before, &now, &[]).to_string();
        assert_eq!(
            merged,
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:ufw-fw - [0:0]\n\
             -A INPUT -j ufw-fw\n-A FORWARD -j ufw-fw\n-A FORWARD -o docker0 -j DOCKER\n\
             -A FORWARD -o br-1 -j DOCKER\n-A FORWARD -j LOG\n\
             -A DOCKER -d 10.0.0.2/32 -j ACCEPT\n-A DOCKER -d 10.0.0.3/32 -j ACCEPT\n\
             -A ufw-fw -j RETURN\nCOMMIT\n"
        );
    }
}
