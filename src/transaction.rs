//! The write: one `iptables-restore --noflush` transaction per family that *edits* the
//! running tables instead of reloading them, so that a rule Docker writes between our
//! `iptables-nft-save` and our restore is never lost (iptables-nft takes no xtables lock
//! that could hold Docker back), and so that on iptables-legacy (under the lock) Docker's
//! rules are never parsed and loaded again.
//!
//! The transaction, per changed table: sets the builtin chains' policies; declares the
//! chains the target owns outright (a declaration creates or flushes the chain) and writes
//! their rules; deletes, by their spec, exactly the rules of `now` that are not kept;
//! flushes and deletes the chains the target no longer has (never a kept Docker chain);
//! and inserts the target's other rules at their places around the kept rules. A kept
//! chain is never flushed. If anything it deletes has gone meanwhile, the kernel refuses
//! the whole transaction (on legacy: that table's part) and nothing of it changes: the
//! caller plans again (nft) or replaces the changed tables whole (legacy, under the lock).

use std::collections::HashMap;
use std::fmt::Write;

use crate::ownership::{DockerOwnership, TableOwnership};
use crate::ruleset::{Chain, Rule, Ruleset, Table, TableName};

/// The `iptables-restore --noflush` input that turns the `tables` of `now` (with its
/// classification `own`) into those of `target`, touching no kept rule that `target` has
/// at the same place. `rewrites(table, chain)` names the kept chains `target` owns all
/// the same (DOCKER-USER under a `[containers]` policy): they are flushed and rewritten.
pub fn edit_script(
    now: &Ruleset,
    own: &DockerOwnership,
    target: &Ruleset,
    tables: &[TableName],
    rewrites: &dyn Fn(TableName, &str) -> bool,
) -> String {
    let empty_own = TableOwnership::default();
    let mut out = String::new();
    for &name in tables {
        let found = now.tables.iter().position(|t| t.name == name);
        let empty = Table::empty(name);
        let (cur, cur_own) =
            found.map_or((&empty, &empty_own), |i| (&now.tables[i], &own.tables[i]));
        let wanted = target.table(name).unwrap_or(&empty);
        let rewrites = |chain: &str| rewrites(name, chain);
        edit_table(&mut out, cur, cur_own, wanted, &rewrites);
    }
    out
}

/// How the transaction treats one chain of the target.
#[derive(PartialEq)]
enum Treatment {
    /// Declared (created, or flushed if it exists) and written whole.
    Rewrite,
    /// Edited in place around its kept rules: builtin chains, kept chains.
    Edit,
}

fn treatment(
    cur: &Table,
    own: &TableOwnership,
    chain: &Chain,
    rewrites: &dyn Fn(&str) -> bool,
) -> Treatment {
    if chain.is_builtin() {
        return Treatment::Edit;
    }
    let kept = cur
        .chains
        .iter()
        .zip(&own.chains)
        .any(|(c, reason)| c.name == chain.name && reason.is_some());
    if kept && !rewrites(&chain.name) {
        Treatment::Edit
    } else {
        Treatment::Rewrite
    }
}

fn edit_table(
    out: &mut String,
    cur: &Table,
    own: &TableOwnership,
    wanted: &Table,
    rewrites: &dyn Fn(&str) -> bool,
) {
    let _ = writeln!(out, "*{}", wanted.name);
    let rewritten: Vec<&str> = wanted
        .chains
        .iter()
        .filter(|c| treatment(cur, own, c, rewrites) == Treatment::Rewrite)
        .map(|c| c.name.as_str())
        .collect();
    for chain in &wanted.chains {
        match chain.policy {
            Some(policy) if cur.chain(&chain.name).and_then(|c| c.policy) != Some(policy) => {
                let _ = writeln!(out, ":{} {policy} [0:0]", chain.name);
            }
            Some(_) => {}
            None if rewritten.contains(&chain.name.as_str()) => {
                let _ = writeln!(out, ":{} - [0:0]", chain.name);
            }
            None => {}
        }
    }
    let gone: Vec<&str> = cur
        .chains
        .iter()
        .filter(|c| !c.is_builtin() && wanted.chain(&c.name).is_none())
        .map(|c| c.name.as_str())
        .collect();
    // Each chain's rules found in one pass over each table (a Docker host's table holds
    // tens of thousands of rules, in a few chains).
    let (cur_by_chain, wanted_by_chain) = (cur.rules_by_chain(), wanted.rules_by_chain());
    fn rules_of<'i>(by_chain: &'i HashMap<&str, Vec<usize>>, chain: &str) -> &'i [usize] {
        by_chain.get(chain).map_or(&[], Vec::as_slice)
    }
    let mut inserts = String::new();
    for chain in wanted
        .chains
        .iter()
        .filter(|c| !rewritten.contains(&c.name.as_str()))
    {
        let at = (
            rules_of(&cur_by_chain, &chain.name),
            rules_of(&wanted_by_chain, &chain.name),
        );
        let edit = edit_chain(cur, own, &chain.name, wanted, at);
        for rule in edit.deletes {
            let _ = writeln!(out, "-D {} {}", chain.name, rule.spec);
        }
        inserts.push_str(&edit.inserts);
    }
    for chain in &gone {
        let _ = writeln!(out, "-F {chain}");
    }
    for chain in &gone {
        let _ = writeln!(out, "-X {chain}");
    }
    out.push_str(&inserts);
    for rule in wanted
        .rules
        .iter()
        .filter(|r| rewritten.contains(&&*r.chain))
    {
        let _ = writeln!(out, "-A {} {}", rule.chain, rule.spec);
    }
    out.push_str("COMMIT\n");
}

/// What edits one chain in place.
struct ChainEdit<'a> {
    /// Rules of `now` to delete, by spec: those not kept, and kept ones the target has
    /// elsewhere in the chain (moved, as `-j DOCKER-USER` to the top) or not at all.
    deletes: Vec<&'a Rule>,
    /// `-I CHAIN N` / `-A CHAIN` lines that put the target's other rules in place.
    inserts: String,
}

/// Matches the kept rules of `chain` in order against the target's rules (`at`: the
/// positions of the chain's rules in `cur` and in `wanted`): a target rule
/// equal to the next kept rule stays untouched; one equal to a later kept rule moves that
/// rule; any other is inserted at its place (`-I` at its 1-based position while untouched
/// rules follow it, `-A` after the last, so that Docker's concurrent appends cannot make
/// the position invalid).
fn edit_chain<'a>(
    cur: &'a Table,
    own: &TableOwnership,
    chain: &str,
    wanted: &Table,
    at: (&[usize], &[usize]),
) -> ChainEdit<'a> {
    let mut deletes = Vec::new();
    let mut kept: Vec<&Rule> = Vec::new();
    for &i in at.0 {
        match own.rules[i] {
            Some(_) => kept.push(&cur.rules[i]),
            None => deletes.push(&cur.rules[i]),
        }
    }
    let mut remaining: HashMap<&str, usize> = HashMap::with_capacity(kept.len());
    for rule in &kept {
        *remaining.entry(&*rule.spec).or_default() += 1;
    }
    let mut moved = vec![false; kept.len()];
    let mut matched = vec![false; kept.len()];
    let targets: Vec<&Rule> = at.1.iter().map(|&i| &wanted.rules[i]).collect();
    let mut untouched = vec![false; targets.len()];
    let mut next = 0;
    for (i, rule) in targets.iter().enumerate() {
        while next < kept.len() && moved[next] {
            next += 1;
        }
        let spec = &*rule.spec;
        let left = remaining.get(spec).copied().unwrap_or(0);
        if left == 0 {
            continue;
        }
        remaining.insert(spec, left - 1);
        if &*kept[next].spec == spec {
            untouched[i] = true;
            matched[next] = true;
            next += 1;
        } else {
            let later = (next..kept.len())
                .find(|&k| !moved[k] && &*kept[k].spec == spec)
                .expect("a remaining kept rule lies ahead");
            moved[later] = true;
        }
    }
    // Moved kept rules are deleted here and inserted at their new place below; kept rules
    // neither matched nor moved are not in the target at all.
    deletes.extend(
        kept.iter()
            .zip(&matched)
            .filter(|(_, m)| !**m)
            .map(|(r, _)| *r),
    );
    let last_untouched = untouched.iter().rposition(|u| *u);
    let mut inserts = String::new();
    for (i, rule) in targets.iter().enumerate() {
        if untouched[i] {
            continue;
        }
        if last_untouched.is_some_and(|last| last > i) {
            let _ = writeln!(inserts, "-I {chain} {} {}", i + 1, rule.spec);
        } else {
            let _ = writeln!(inserts, "-A {chain} {}", rule.spec);
        }
    }
    ChainEdit { deletes, inserts }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ownership::classify;
    use crate::ruleset::parse;

    fn script(now: &str, target: &str, rewrites: &dyn Fn(TableName, &str) -> bool) -> String {
        let now = parse(now).unwrap();
        let target = parse(target).unwrap();
        let own = classify(&now, &[]);
        let tables: Vec<TableName> = target.tables.iter().map(|t| t.name).collect();
        edit_script(&now, &own, &target, &tables, rewrites)
    }

    const NOW: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:ufw-input - [0:0]\n\
        -A INPUT -j ufw-input\n-A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j DOCKER-USER\n\
        -A DOCKER -d 172.17.0.2/32 -j ACCEPT\n-A DOCKER-USER -j RETURN\n-A ufw-input -j RETURN\nCOMMIT\n";

    #[test]
    fn deletes_foreign_rules_by_spec_and_never_flushes_a_docker_chain() {
        let target = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:IPTD - [0:0]\n\
            -A INPUT -i lo -j ACCEPT\n-A INPUT -j IPTD\n-A FORWARD -o docker0 -j DOCKER\n\
            -A FORWARD -j DOCKER-USER\n-A DOCKER -d 172.17.0.2/32 -j ACCEPT\n\
            -A DOCKER-USER -j RETURN\n-A IPTD -j DROP\nCOMMIT\n";
        assert_eq!(
            script(NOW, target, &|_, _| false),
            "*filter\n:INPUT DROP [0:0]\n:IPTD - [0:0]\n-D INPUT -j ufw-input\n-F ufw-input\n\
             -X ufw-input\n-A INPUT -i lo -j ACCEPT\n-A INPUT -j IPTD\n-A IPTD -j DROP\nCOMMIT\n"
        );
    }

    #[test]
    fn a_taken_over_docker_user_is_rewritten_and_its_jump_moved_first() {
        let target = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:ufw-input - [0:0]\n\
            -A INPUT -j ufw-input\n-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER\n\
            -A DOCKER -d 172.17.0.2/32 -j ACCEPT\n-A DOCKER-USER -j DROP\n-A ufw-input -j RETURN\nCOMMIT\n";
        let out = script(NOW, target, &|t, c| {
            t == TableName::Filter && c == "DOCKER-USER"
        });
        assert_eq!(
            out,
            "*filter\n:DOCKER-USER - [0:0]\n:ufw-input - [0:0]\n-D INPUT -j ufw-input\n\
             -D FORWARD -j DOCKER-USER\n-A INPUT -j ufw-input\n-I FORWARD 1 -j DOCKER-USER\n\
             -A DOCKER-USER -j DROP\n-A ufw-input -j RETURN\nCOMMIT\n"
        );
    }

    #[test]
    fn foreign_rules_come_back_between_the_kept_ones() {
        // A rollback: ufw's rules around Docker's in FORWARD, policy chains gone.
        let now = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:IPTD - [0:0]\n-A INPUT -j IPTD\n-A FORWARD -o docker0 -j DOCKER\n\
            -A FORWARD -o br-1 -j DOCKER\n-A IPTD -j DROP\nCOMMIT\n";
        let target = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:ufw-fw - [0:0]\n-A INPUT -j ufw-fw\n-A FORWARD -j ufw-fw\n\
            -A FORWARD -o docker0 -j DOCKER\n-A FORWARD -j LOG\n-A FORWARD -o br-1 -j DOCKER\n\
            -A FORWARD -j ufw-fw\n-A ufw-fw -j RETURN\nCOMMIT\n";
        assert_eq!(
            script(now, target, &|_, _| false),
            "*filter\n:INPUT ACCEPT [0:0]\n:ufw-fw - [0:0]\n-D INPUT -j IPTD\n-F IPTD\n-X IPTD\n\
             -A INPUT -j ufw-fw\n-I FORWARD 1 -j ufw-fw\n-I FORWARD 3 -j LOG\n-A FORWARD -j ufw-fw\n\
             -A ufw-fw -j RETURN\nCOMMIT\n"
        );
    }

    #[test]
    fn a_table_that_does_not_run_yet_is_created() {
        let target = "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A PREROUTING -j NOTRACK\nCOMMIT\n";
        assert_eq!(
            script(NOW, target, &|_, _| false),
            "*raw\n-A PREROUTING -j NOTRACK\nCOMMIT\n"
        );
    }
}
