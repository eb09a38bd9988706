//! One address family's pass through the pipeline, without side effects:
//! saved text → [`Ruleset`] → [`DockerFacts`] → [`Policy`] ([`Rendered`]) →
//! [`DockerOwnership`] → composed ruleset → the tables that need to be written (and the
//! text that writes or rolls them back).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::compose::{changed_tables, compose, survives_takeover, Takeover};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::ownership::{
    classify_keeping, is_docker_chain, is_our_rule, DockerFacts, DockerOwnership, Reason,
};
use crate::policy::{self, Policy, Template};
use crate::rule::target_of;
use crate::ruleset::{self, Rule, Ruleset, Table, TableName};

/// What is being applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The host policy from the config.
    Start,
    /// The host open, Docker untouched.
    Stop,
}

/// Fingerprints recorded after an apply, per table: what we composed and what the kernel
/// then held, plus the fingerprint of the apply's inputs (config, template, mode, …). A
/// table whose composition and kernel content still match these is unchanged even when
/// the kernel spells a rule differently from the template; and when the inputs and every
/// table's kernel content match, nothing needs to be parsed at all.
///
/// On iptables-legacy the record also holds the fingerprint of each table's binary image
/// as the kernel held it then (`crate::system::table_image`): when the inputs and every
/// image still match, nothing needs to be saved either.
///
/// On disk (`<state dir>/applied-v4`, `-v6`) it is TOML, like the install record:
/// `inputs = "…"`, a `[tables.NAME]` per table with `composed` and `kernel`, and on legacy
/// `[images]` with `NAME = "…"` per table the kernel has.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Applied {
    inputs: Option<String>,
    /// Docker's IPv4 filter FORWARD rules then (`crate::system::probe`), recorded with the
    /// images: while they match, the backend probe need not count them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    docker_forward: Option<usize>,
    #[serde(default)]
    tables: BTreeMap<TableName, AppliedTable>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    images: BTreeMap<String, String>,
}

/// One table's fingerprints after an apply ([`crate::ruleset::Table::fingerprint`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppliedTable {
    /// What the apply composed.
    pub composed: String,
    /// What the kernel held right after.
    pub kernel: String,
}

impl Applied {
    /// The record from its TOML text; empty (nothing recorded) when it does not parse, as
    /// a record from an older version: the next apply plans afresh and writes it anew.
    pub fn parse(text: &str) -> Self {
        toml::from_str(text).unwrap_or_default()
    }

    /// The TOML text of the record.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("an apply record serializes")
    }

    /// What an apply with `inputs` leaves: every table of `desired`, with the kernel's
    /// fingerprints (`kernel`, from `ruleset::text_fingerprints`).
    pub fn recorded(inputs: &str, desired: &Ruleset, kernel: &[(TableName, String)]) -> Self {
        let tables = desired
            .tables
            .iter()
            .filter_map(|t| {
                let (_, k) = kernel.iter().find(|(name, _)| *name == t.name)?;
                let table = AppliedTable {
                    composed: t.fingerprint(),
                    kernel: k.clone(),
                };
                Some((t.name, table))
            })
            .collect();
        Applied {
            tables,
            inputs: Some(inputs.to_string()),
            docker_forward: None,
            images: BTreeMap::new(),
        }
    }

    /// The record with the fingerprints of the kernel's table images, read under the same
    /// hold of the xtables lock as the tables' text (`(table, fingerprint)`, every table
    /// the kernel has; empty on nft), and Docker's FORWARD rules in those tables.
    pub fn with_images(
        mut self,
        images: Vec<(String, String)>,
        docker_forward: Option<usize>,
    ) -> Self {
        self.images = images.into_iter().collect();
        self.docker_forward = docker_forward.filter(|_| !self.images.is_empty());
        self
    }

    /// Docker's IPv4 filter FORWARD rules as recorded with the images.
    pub fn docker_forward(&self) -> Option<usize> {
        self.docker_forward
    }

    /// Whether the last apply was made with `inputs` and recorded table images to compare.
    pub fn has_images(&self, inputs: &str) -> bool {
        self.inputs.as_deref() == Some(inputs) && !self.images.is_empty()
    }

    /// Whether the kernel's tables, by the fingerprints of their images (`images`: every
    /// table it has), are what the last apply, made with the same `inputs`, left: then
    /// there is nothing to save and nothing to do.
    pub fn images_unchanged(&self, inputs: &str, images: &[(String, String)]) -> bool {
        self.has_images(inputs)
            && images.len() == self.images.len()
            && (images.iter()).all(|(name, image)| self.images.get(name) == Some(image))
    }

    fn matches(&self, desired: &Table, kernel: &Table) -> bool {
        self.tables.get(&desired.name).is_some_and(|t| {
            t.composed == desired.fingerprint() && t.kernel == kernel.fingerprint()
        })
    }

    /// Whether `saved` (iptables-save text) is exactly what the last apply, made with the
    /// same `inputs`, left: then there is nothing to do.
    pub fn unchanged_since(&self, inputs: &str, saved: &str) -> bool {
        self.inputs.as_deref() == Some(inputs)
            && ruleset::text_fingerprints(saved).is_some_and(|tables| {
                tables.len() == self.tables.len()
                    && tables
                        .iter()
                        .all(|(name, k)| self.tables.get(name).is_some_and(|t| t.kernel == *k))
            })
    }
}

/// The fingerprint of everything an apply's result depends on besides the running
/// ruleset: the binary (`binary`: its version and file identity, so a rebuilt binary
/// plans afresh), the mode, the configuration and the template's text.
pub fn inputs_fingerprint(
    binary: &str,
    mode: Mode,
    config: &Config,
    template: &Template,
) -> String {
    ruleset::fingerprint_of(&format!("{binary} {mode:?} {config:?} {}", template.source))
}

/// What must be read back from the kernel to know its fingerprint of `desired` once
/// written over `current` (`None`: the table did not run): `Some(chains)` when the kernel
/// will print `desired` as it is except, perhaps, the rules of `chains` (the chains holding
/// a rule that does not run in that chain now, in that order: a policy rule the template
/// may spell otherwise than iptables does); `None` when the whole table must be read back
/// (a chain `current` lacks, whose place in the kernel's order is the kernel's to choose,
/// or rules not grouped by chain). A kept rule is the kernel's own text, and iptables
/// prints again what it loaded from its own text (restoring Docker's rules byte for byte
/// relies on the same).
pub fn read_back_chains<'a>(current: Option<&Table>, desired: &'a Table) -> Option<Vec<&'a str>> {
    let empty = Table::empty(desired.name);
    let current = current.unwrap_or(&empty);
    let mut running = current.chains.iter();
    let in_order = desired
        .chains
        .iter()
        .all(|c| running.any(|r| r.name == c.name));
    let index: HashMap<&str, usize> = (desired.chains.iter().enumerate())
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut last = 0;
    let grouped = desired.rules.iter().all(|r| match index.get(&*r.chain) {
        Some(&i) if i >= last => {
            last = i;
            true
        }
        _ => false,
    });
    if !in_order || !grouped {
        return None;
    }
    let runs_now = |chain: &str| {
        let mut now = current.rules_of(chain).map(|r| &*r.spec);
        desired
            .rules_of(chain)
            .all(|r| now.any(|spec| spec == &*r.spec))
    };
    Some(
        desired
            .chains
            .iter()
            .map(|c| c.name.as_str())
            .filter(|c| !runs_now(c))
            .collect(),
    )
}

/// The plan for one family.
#[derive(Debug, Clone)]
pub struct FamilyPlan {
    pub family: Family,
    pub current: Ruleset,
    pub ownership: DockerOwnership,
    pub policy: Policy,
    pub desired: Ruleset,
    /// Tables to write, in `desired` order.
    pub changed: Vec<TableName>,
}

/// What `iptables-restore` is given for a set of tables of a ruleset; a table missing
/// from it is given as empty (builtin chains, ACCEPT).
pub fn tables_text(ruleset: &Ruleset, names: &[TableName]) -> String {
    names
        .iter()
        .map(|&name| match ruleset.table(name) {
            Some(t) => t.to_string(),
            None => Table::empty(name).to_string(),
        })
        .collect()
}

impl FamilyPlan {
    /// Skips the tables the apply record shows as done: the last apply composed exactly
    /// what this plan composes, and the kernel still holds what that apply left (which
    /// iptables may spell differently from the template). `start`, `status` and `plan`
    /// on the running ruleset all call this with the same record, so they agree.
    pub fn skip_applied(&mut self, applied: &Applied) {
        let (current, desired) = (&self.current, &self.desired);
        self.changed.retain(|&name| {
            let wanted = desired
                .table(name)
                .expect("changed tables are desired tables");
            !current
                .table(name)
                .is_some_and(|k| applied.matches(wanted, k))
        });
    }

    /// The input of an `iptables-restore` that replaces the changed tables whole with
    /// what this plan composed (legacy, when the kernel refuses the edit).
    pub fn restore_text(&self) -> String {
        tables_text(&self.desired, &self.changed)
    }

    /// The input of the one `iptables-restore --noflush` that applies this plan by
    /// editing the running tables ([`crate::transaction`]): the chains the policy declares
    /// are rewritten, every other kept rule is left alone.
    pub fn edit_text(&self) -> String {
        let policy_owns = |table: TableName, chain: &str| {
            self.policy
                .fragment
                .table(table)
                .and_then(|t| t.chain(chain))
                .is_some_and(|c| !c.is_builtin())
        };
        crate::transaction::edit_script(
            &self.current,
            &self.ownership,
            &self.desired,
            &self.changed,
            &policy_owns,
        )
    }

    /// The input that puts the changed tables back as they were found.
    pub fn rollback_text(&self) -> String {
        tables_text(&self.current, &self.changed)
    }

    /// What `start` (or `stop`) does with each running rule, table by table, in the order
    /// of `current`: the one account `plan --explain`, the apply summary and `status`
    /// share.
    pub fn fates(&self) -> Vec<(&Table, &Rule, Fate<'_>)> {
        let mut again: HashMap<(TableName, &str, &str), usize> = HashMap::new();
        for t in &self.policy.fragment.tables {
            for r in &t.rules {
                *again.entry((t.name, &r.chain, &r.spec)).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        for (t, own) in self.current.tables.iter().zip(&self.ownership.tables) {
            let desired = self.desired.table(t.name);
            // The table's chains the composed one no longer has: usually none, and then a
            // kept rule's target need not be read (tens of thousands of Docker's rules).
            let gone: HashSet<&str> = (t.chains.iter())
                .filter(|c| desired.and_then(|d| d.chain(&c.name)).is_none())
                .map(|c| c.name.as_str())
                .collect();
            let in_gone_chain = |r: &Rule| {
                !gone.is_empty()
                    && (gone.contains(&*r.chain)
                        || target_of(&r.spec).is_some_and(|c| gone.contains(c)))
            };
            for (r, reason) in t.rules.iter().zip(&own.rules) {
                let mut written_again = || match again.get_mut(&(t.name, &r.chain, &r.spec)) {
                    Some(n) if *n > 0 => {
                        *n -= 1;
                        true
                    }
                    _ => false,
                };
                let fate = match reason {
                    Some(reason) if self.policy.takes_over(t.name, &r.chain) => {
                        match survives_takeover(t, own, r, reason) {
                            Some(how) => Fate::SurvivesTakeover(reason, how),
                            None if written_again() => Fate::Policy,
                            None => Fate::TakenOver,
                        }
                    }
                    Some(_) if in_gone_chain(r) => Fate::Unreferenced,
                    Some(reason) if self.policy.writes_to(t.name, &r.chain) => {
                        Fate::KeptAhead(reason)
                    }
                    Some(reason) => Fate::Kept(reason),
                    None if written_again() => Fate::Policy,
                    None if is_our_rule(&r.spec) => Fate::OursBefore,
                    None => Fate::Removed,
                };
                out.push((t, r, fate));
            }
        }
        out
    }

    /// The non-builtin chains running now that the composed ruleset no longer has, as
    /// `table chain`.
    pub fn removed_chains(&self) -> Vec<String> {
        self.current
            .tables
            .iter()
            .flat_map(|t| {
                let desired = self.desired.table(t.name);
                t.chains
                    .iter()
                    .filter(move |c| {
                        !c.is_builtin() && desired.and_then(|d| d.chain(&c.name)).is_none()
                    })
                    .map(move |c| format!("{} {}", t.name, c.name))
            })
            .collect()
    }

    /// The running rules by whose they are and what start does with them.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for (_, rule, fate) in self.fates() {
            match fate {
                Fate::Kept(reason) | Fate::KeptAhead(reason)
                    if is_docker_owned(&rule.chain, reason) =>
                {
                    counts.docker += 1
                }
                Fate::Kept(_) | Fate::KeptAhead(_) | Fate::SurvivesTakeover(..) => {
                    counts.kept_on_request += 1
                }
                Fate::Policy => counts.ours += 1,
                _ => counts.removed += 1,
            }
        }
        counts
    }
}

/// The running rules of one family, counted by owner (see [`FamilyPlan::counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Docker's own rules, kept exactly.
    pub docker: usize,
    /// Kept on request: chains matching `keep_chains`, and the admin's rules in
    /// DOCKER-USER when the policy does not take it over.
    pub kept_on_request: usize,
    /// The policy's (iptables-docker's) rules, as the policy would write them.
    pub ours: usize,
    /// Rules `start` would remove (not Docker's, not kept, not the policy's).
    pub removed: usize,
}

/// Whether a kept rule is Docker's own, rather than kept on request: in a Docker chain
/// other than DOCKER-USER (whose rules are the admin's), a jump to a Docker chain, or
/// Docker's shape.
fn is_docker_owned(chain: &str, reason: &Reason) -> bool {
    match reason {
        Reason::Footprint(_) | Reason::DockerChain => true,
        Reason::JumpsTo(target) => is_docker_chain(target),
        Reason::InKeptChain => is_docker_chain(chain) && chain != "DOCKER-USER",
        Reason::KeepList(_)
        | Reason::Referenced { .. }
        | Reason::CreatedByUs
        | Reason::MatchesKeptSet(_) => false,
    }
}

/// What happens to one running rule (see [`FamilyPlan::fates`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate<'a> {
    /// Kept exactly as found, for this reason (Docker's, or kept on request).
    Kept(&'a Reason),
    /// The policy writes this same rule again: it is the policy's (ours).
    Policy,
    /// In a chain the policy takes over (DOCKER-USER with `[containers]`): replaced by the
    /// policy's rules.
    TakenOver,
    /// Kept exactly as found, in a builtin chain the policy also writes rules to: ahead of
    /// them (a fail2ban jump in INPUT is evaluated before the policy's ssh accept).
    KeptAhead(&'a Reason),
    /// In a chain the policy takes over, but kept: a jump to a kept chain (ahead of the
    /// policy's rules, in its original order) or Docker's RETURN (last).
    SurvivesTakeover(&'a Reason, Takeover),
    /// Kept by classification, but its chain is no longer reached once the rules that
    /// jumped to it are replaced: removed with the chain.
    Unreferenced,
    /// Ours (comment `iptables-docker`) from an earlier configuration: rendered anew,
    /// never kept.
    OursBefore,
    /// Not Docker's and not kept on request (ufw, fail2ban without keep_chains, old
    /// scripts): removed.
    Removed,
}

impl Fate<'_> {
    /// Whether the rule is gone after the apply (not kept and not written again).
    pub fn removes(self) -> bool {
        !matches!(
            self,
            Fate::Kept(_) | Fate::KeptAhead(_) | Fate::Policy | Fate::SurvivesTakeover(..)
        )
    }

    /// What `start` does: keep, policy (written again), replace or remove.
    pub fn verb(self) -> &'static str {
        match self {
            Fate::Kept(_) | Fate::KeptAhead(_) | Fate::SurvivesTakeover(..) => "keep",
            Fate::Policy => "policy",
            Fate::TakenOver => "replace",
            Fate::Unreferenced | Fate::OursBefore | Fate::Removed => "remove",
        }
    }

    /// Why, in a few words.
    pub fn why(self) -> String {
        match self {
            Fate::Kept(reason) => reason.to_string(),
            Fate::KeptAhead(reason) => {
                format!("{reason}; stays ahead of the policy's rules in this chain")
            }
            Fate::SurvivesTakeover(reason, Takeover::JumpFirst) => format!(
                "{reason}; the policy takes this chain over, this rule stays ahead of the \
                 policy's rules, in its original order"
            ),
            Fate::SurvivesTakeover(_, Takeover::DockerReturn) => {
                "Docker's RETURN; the policy takes this chain over, this rule stays last".into()
            }
            Fate::Policy => "the policy writes this same rule again".into(),
            Fate::TakenOver => "the policy takes this chain over".into(),
            Fate::Unreferenced => "its chain is no longer jumped to once the policy applies".into(),
            Fate::OursBefore => {
                "iptables-docker's own rule from an earlier configuration (rendered anew)".into()
            }
            Fate::Removed => "not Docker's and not kept on request (keep, keep_chains)".into(),
        }
    }
}

/// Plans one family: `saved` is `iptables-save -c` output (`source` names it in errors).
/// A pure function of the saved ruleset, the configuration and the template text; the
/// apply record plays no part ([`FamilyPlan::skip_applied`] is the one place it may).
pub fn plan(
    family: Family,
    saved: &str,
    source: &str,
    inputs: (&Config, &Template),
    mode: Mode,
) -> Result<FamilyPlan> {
    render_saved(family, saved, source, inputs, mode)?.compose()
}

/// The first half of [`plan`]: `saved` parsed, Docker's facts learned from it and the
/// policy rendered from them (the open policy for [`Mode::Stop`]); not yet classified
/// rule by rule, nor composed.
pub fn render_saved(
    family: Family,
    saved: &str,
    source: &str,
    (config, template): (&Config, &Template),
    mode: Mode,
) -> Result<Rendered> {
    let current = parse_saved(saved, source)?;
    let keep = (config.kept_chains(), config.kept_sets());
    render(family, current, keep, |facts| match mode {
        Mode::Start => policy::render(config, template, family, facts),
        Mode::Stop => Ok(Policy::open()),
    })
}

/// Parses `iptables-save` output; `source` names it in the error.
pub fn parse_saved(saved: &str, source: &str) -> Result<Ruleset> {
    ruleset::parse(saved).map_err(|e| {
        Error::failed(format!("cannot read {source}: {e}"))
            .hint("iptables-save output was not understood; nothing was changed")
    })
}

/// One family's running ruleset with Docker's facts learned from it and the policy made
/// from them: a plan before its rules are classified and composed. The policy can be
/// checked (`iptables-restore --test`) while [`Rendered::compose`] runs, as `start` does.
#[derive(Debug)]
pub struct Rendered {
    pub family: Family,
    pub current: Ruleset,
    pub facts: DockerFacts,
    pub policy: Policy,
    /// What is kept as Docker's rules are: chain patterns, set patterns.
    pub keep: (Vec<String>, Vec<String>),
}

/// Learns Docker's facts from `current` (one family) and makes the policy with `policy`
/// from them (a rendered template, or a fallback policy); `keep` (chain patterns, set
/// patterns) will be kept as Docker's rules are.
pub fn render(
    family: Family,
    current: Ruleset,
    keep: (Vec<String>, Vec<String>),
    policy: impl FnOnce(&DockerFacts) -> Result<Policy>,
) -> Result<Rendered> {
    let facts = DockerFacts::learn(&current);
    let policy = policy(&facts)?;
    Ok(Rendered {
        family,
        current,
        facts,
        policy,
        keep,
    })
}

impl Rendered {
    /// The plan: every rule classified ([`classify_keeping`]), the ruleset to load
    /// composed ([`compose`]) and the tables that change. Fails (a configuration error)
    /// when the policy declares a chain that is kept.
    pub fn compose(self) -> Result<FamilyPlan> {
        let (chains, sets) = &self.keep;
        let ownership = classify_keeping(&self.current, self.facts, chains, sets);
        let desired = compose(&self.current, &ownership, &self.policy)
            .map_err(|m| Error::config(m).hint("rename the chain in the template"))?;
        let changed = changed_tables(&self.current, &desired);
        Ok(FamilyPlan {
            family: self.family,
            current: self.current,
            ownership,
            policy: self.policy,
            desired,
            changed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_apply_record_round_trips_as_toml() {
        let desired = ruleset::parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n").unwrap();
        let kernel = ruleset::text_fingerprints("*filter\n:INPUT DROP [0:0]\nCOMMIT\n").unwrap();
        let applied = Applied::recorded("abc", &desired, &kernel);
        let text = applied.to_toml();
        assert!(
            text.contains("inputs = \"abc\"\n") && text.contains("[tables.filter]\n"),
            "{text}"
        );
        assert_eq!(Applied::parse(&text), applied);
        assert_eq!(
            Applied::parse("inputs 0123\nfilter a b\n"),
            Applied::default()
        );
    }

    #[test]
    fn table_images_match_only_with_the_same_inputs_and_every_table() {
        let desired = ruleset::parse("*filter\n:INPUT DROP [0:0]\nCOMMIT\n").unwrap();
        let kernel = ruleset::text_fingerprints("*filter\n:INPUT DROP [0:0]\nCOMMIT\n").unwrap();
        let image = |name: &str, f: &str| (name.to_string(), f.to_string());
        let images = vec![image("filter", "01"), image("nat", "02")];
        let applied = Applied::recorded("abc", &desired, &kernel).with_images(images, Some(3));
        let text = applied.to_toml();
        assert!(
            text.contains("[images]\nfilter = \"01\"\nnat = \"02\"\n"),
            "{text}"
        );
        assert_eq!(Applied::parse(&text), applied);
        assert_eq!(applied.docker_forward(), Some(3));
        let seen = [image("nat", "02"), image("filter", "01")];
        assert!(applied.images_unchanged("abc", &seen));
        assert!(!applied.images_unchanged("abd", &seen), "other inputs");
        assert!(!applied.images_unchanged("abc", &seen[..1]), "a table gone");
        let more = [seen[0].clone(), seen[1].clone(), image("raw", "03")];
        assert!(!applied.images_unchanged("abc", &more), "a table new");
        assert!(!applied.images_unchanged("abc", &[image("nat", "02"), image("filter", "0f")]));
        // Without images (nft, or none could be read) nothing is ever taken as unchanged.
        let none = Applied::recorded("abc", &desired, &kernel).with_images(Vec::new(), Some(3));
        assert!(!none.has_images("abc") && !none.images_unchanged("abc", &[]));
        assert_eq!(none.docker_forward(), None);
        assert!(!none.to_toml().contains("images"));
    }

    #[test]
    fn only_the_chains_holding_new_rules_are_read_back() {
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :DOCKER - [0:0]\n:ufw-input - [0:0]\n-A INPUT -j ufw-input\n\
            -A FORWARD -o docker0 -j DOCKER\n-A DOCKER -d 172.17.0.2/32 -j ACCEPT\nCOMMIT\n";
        let current = ruleset::parse(saved).unwrap();
        let plan_as = |mode| {
            let config = Config::builtin();
            plan(
                Family::V4,
                saved,
                "t",
                (&config, &Template::builtin()),
                mode,
            )
            .unwrap()
        };
        let (start, stop) = (plan_as(Mode::Start), plan_as(Mode::Stop));
        let filter = |p: &FamilyPlan| p.desired.table(TableName::Filter).unwrap().clone();
        let now = current.table(TableName::Filter);
        assert_eq!(read_back_chains(now, &filter(&start)), Some(vec!["INPUT"]));
        // stop keeps Docker's rules and drops ufw's: the kernel prints what it printed.
        let stopped = filter(&stop);
        assert_eq!(read_back_chains(now, &stopped), Some(vec![]));
        assert_eq!(
            stopped.fingerprint_with(&[]),
            ruleset::text_fingerprints(&stopped.to_string()).unwrap()[0].1
        );
        // A chain that does not run yet: its place is the kernel's to choose.
        let mut new_chain = filter(&stop);
        new_chain.chains.insert(3, new_chain.chains[3].clone());
        new_chain.chains[3].name = "AAA".into();
        assert_eq!(read_back_chains(now, &new_chain), None);
        // The fingerprint with a chain read back is the fingerprint of that text.
        let started = filter(&start);
        let read: Vec<String> = started
            .rules_of("INPUT")
            .map(|r| r.spec.to_string())
            .collect();
        assert_eq!(
            started.fingerprint_with(&[("INPUT", read)]),
            started.fingerprint()
        );
    }

    #[test]
    fn a_second_plan_on_the_result_changes_and_removes_nothing() {
        let config = Config::builtin();
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
            :ufw-input - [0:0]\n-A INPUT -j ufw-input\nCOMMIT\n";
        let first = plan(
            Family::V4,
            saved,
            "t",
            (&config, &Template::builtin()),
            Mode::Start,
        )
        .unwrap();
        assert_eq!(first.changed, [TableName::Filter]);
        assert_eq!(first.counts().removed, 1);
        let again = first.desired.to_string();
        let second = plan(
            Family::V4,
            &again,
            "t",
            (&config, &Template::builtin()),
            Mode::Start,
        )
        .unwrap();
        assert!(second.changed.is_empty());
        assert_eq!(second.counts().removed, 0);
    }
}
