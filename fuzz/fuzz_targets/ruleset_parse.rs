//! The iptables-save parser, and the pure pipeline stages that consume what it accepts.
//!
//! For any text the parser accepts, serializing and parsing again gives the same model, and
//! serializing is a fixed point (`to_string` of the re-parsed model is the first
//! `to_string` byte for byte). For such a ruleset shaped as iptables-save writes them:
//! - classification keeps every rule of a `DOCKER*` chain (bar the ones marked as ours)
//!   and every `DOCKER*` user chain;
//! - composing with the open (`stop`) policy, or one that takes over DOCKER-USER, then
//!   composing the result again, gives the same ruleset, and no table would be rewritten.
//!
//! Nothing may panic, whatever the input.
#![no_main]

use iptables_docker::compose::{changed_tables, compose};
use iptables_docker::ownership::{classify, is_docker_chain, DockerOwnership, OWN_MARK};
use iptables_docker::policy::Policy;
use iptables_docker::rule::RuleArgs;
use iptables_docker::ruleset::{self, ChainPolicy, Ruleset};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(parsed) = ruleset::parse(&text) else {
        return;
    };

    let once = parsed.to_string();
    let again = ruleset::parse(&once)
        .unwrap_or_else(|e| panic!("serialized text does not parse: {e}\n{once}"));
    assert_eq!(again, parsed, "parse(serialize(x)) != x for\n{once}");
    assert_eq!(again.to_string(), once, "serializing is not a fixed point");

    if as_iptables_save_writes_it(&parsed) {
        check_pipeline(&parsed);
    }
});

/// The pipeline's promises hold for what `iptables-save` writes. The parser refuses
/// unknown tables and policy words and a policy on a user chain; beyond that it accepts
/// `-` on a builtin chain (restore input, never in a save).
fn as_iptables_save_writes_it(rs: &Ruleset) -> bool {
    rs.tables
        .iter()
        .all(|t| t.chains.iter().all(|c| c.policy != Some(ChainPolicy::Keep)))
}

fn check_pipeline(rs: &Ruleset) {
    let keep = ["f2b-*".to_string()];
    let own = classify(rs, &keep);
    assert_eq!(own.tables.len(), rs.tables.len());
    for (table, to) in rs.tables.iter().zip(&own.tables) {
        assert_eq!(to.chains.len(), table.chains.len());
        assert_eq!(to.rules.len(), table.rules.len());
        for (chain, reason) in table.chains.iter().zip(&to.chains) {
            if !chain.is_builtin() && is_docker_chain(&chain.name) {
                assert!(reason.is_some(), "Docker chain {} dropped", chain.name);
            }
        }
        for (rule, reason) in table.rules.iter().zip(&to.rules) {
            let ours = RuleArgs::parse(&rule.spec)
                .value(&["--comment"])
                .is_some_and(|c| c.starts_with(OWN_MARK));
            let in_user_docker_chain = is_docker_chain(&rule.chain)
                && table.chain(&rule.chain).is_some_and(|c| !c.is_builtin());
            if in_user_docker_chain && !ours {
                assert!(reason.is_some(), "Docker rule dropped: {rule}");
            }
        }
    }

    // `stop`'s open policy, and a start policy that takes over DOCKER-USER and jumps from
    // it to a chain of its own.
    let taking_over = Policy {
        fragment: ruleset::parse(
            "*filter\n:INPUT DROP [0:0]\n:DOCKER-USER - [0:0]\n:IPTD - [0:0]\n\
             -A DOCKER-USER -m comment --comment iptables-docker -j IPTD\n\
             -A DOCKER-USER -j RETURN\n-A IPTD -j RETURN\nCOMMIT\n",
        )
        .expect("the policy parses"),
    };
    for policy in [Policy::open(), taking_over] {
        compose_twice(rs, &own, &keep, &policy);
    }
}

fn compose_twice(rs: &Ruleset, own: &DockerOwnership, keep: &[String], policy: &Policy) {
    if jumps_to_a_missing_policy_chain(rs, policy) {
        return;
    }
    let Ok(first) = compose(rs, own, policy) else {
        return;
    };
    let text = first.to_string();
    let reparsed = ruleset::parse(&text)
        .unwrap_or_else(|e| panic!("composed ruleset does not parse: {e}\n{text}"));
    assert_eq!(reparsed, first, "composed ruleset does not round-trip");
    let second = compose(&first, &classify(&first, keep), policy)
        .unwrap_or_else(|e| panic!("composing the composed ruleset failed: {e}"));
    assert_eq!(second, first, "composing twice differs from composing once");
    assert!(changed_tables(&first, &second).is_empty());
}

/// A rule jumping to a chain its table does not declare, which the policy then adds: the
/// kernel refuses such a jump, so iptables-save never writes one, and the composed ruleset
/// would read as keeping the policy's chain.
fn jumps_to_a_missing_policy_chain(rs: &Ruleset, policy: &Policy) -> bool {
    rs.tables.iter().any(|t| {
        t.rules.iter().any(|r| {
            RuleArgs::parse(&r.spec).target().is_some_and(|target| {
                t.chain(target).is_none() && policy.takes_over(t.name, target)
            })
        })
    })
}
