//! The typed model of an `iptables-save` dump (tables, chains, rules, counters) and its
//! parser and serializer.
//!
//! The model keeps every rule's text verbatim, so that `parse` followed by `to_string`
//! gives back the input byte for byte (comment lines aside, which carry no rules).

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::hash::StableHasher;

/// A netfilter table of the iptables family, as `iptables-save` names it (`*filter`) and
/// `-t` takes it. These five are all the kernel's `ip_tables`/`ip6_tables` and
/// iptables-nft know (iptables(8), TABLES).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum TableName {
    Filter,
    Nat,
    Mangle,
    Raw,
    Security,
}

impl TableName {
    /// Every table, in the order of iptables(8).
    pub const ALL: [TableName; 5] = [
        TableName::Filter,
        TableName::Nat,
        TableName::Mangle,
        TableName::Raw,
        TableName::Security,
    ];

    /// The name as iptables spells it (`filter`).
    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Filter => "filter",
            TableName::Nat => "nat",
            TableName::Mangle => "mangle",
            TableName::Raw => "raw",
            TableName::Security => "security",
        }
    }

    /// The table's builtin chains, in the order `iptables-save` prints them.
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            TableName::Filter | TableName::Security => &["INPUT", "FORWARD", "OUTPUT"],
            TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            TableName::Raw => &["PREROUTING", "OUTPUT"],
        }
    }

    /// `names` as a list for people: `filter, nat`.
    pub fn list(names: &[TableName]) -> String {
        let names: Vec<&str> = names.iter().map(|t| t.as_str()).collect();
        names.join(", ")
    }

    /// Whether `chain` is one of the table's builtin chains.
    pub fn is_builtin(self, chain: &str) -> bool {
        self.builtin_chains().contains(&chain)
    }
}

impl std::str::FromStr for TableName {
    type Err = String;

    /// Errors: the message names the unknown table and the five known ones.
    fn from_str(name: &str) -> Result<Self, String> {
        TableName::ALL
            .into_iter()
            .find(|t| t.as_str() == name)
            .ok_or_else(|| {
                format!("unknown table '{name}' (iptables has filter, nat, mangle, raw, security)")
            })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy of a builtin chain, as `iptables-save` spells it (`:INPUT DROP [0:0]`) and
/// `iptables -P` takes it: ACCEPT or DROP (the only two iptables(8) allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainPolicy {
    Accept,
    Drop,
    /// `-` on a builtin chain, which `iptables-restore` reads as "keep the running policy".
    /// `iptables-save` never writes it; a policy template or fragment may.
    Keep,
}

impl ChainPolicy {
    /// The word iptables uses (`ACCEPT`, `DROP`, `-`).
    pub fn as_str(self) -> &'static str {
        match self {
            ChainPolicy::Accept => "ACCEPT",
            ChainPolicy::Drop => "DROP",
            ChainPolicy::Keep => "-",
        }
    }
}

impl std::str::FromStr for ChainPolicy {
    type Err = String;

    /// `ACCEPT`, `DROP` or `-`; errors name the word found.
    fn from_str(word: &str) -> Result<Self, String> {
        match word {
            "ACCEPT" => Ok(ChainPolicy::Accept),
            "DROP" => Ok(ChainPolicy::Drop),
            "-" => Ok(ChainPolicy::Keep),
            _ => Err(format!("unknown chain policy '{word}' (ACCEPT or DROP)")),
        }
    }
}

impl fmt::Display for ChainPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ChainPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Packet and byte counters, `[packets:bytes]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// A chain declaration: `:NAME POLICY [p:b]` (builtin) or `:NAME - [p:b]` (user chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    /// `Some` for a builtin chain, `None` for a user chain (`-` in the text).
    pub policy: Option<ChainPolicy>,
    pub counters: Option<Counters>,
}

impl Chain {
    pub fn is_builtin(&self) -> bool {
        self.policy.is_some()
    }
}

/// One `-A CHAIN …` line. `spec` is everything after `-A CHAIN `, verbatim.
///
/// The texts are shared (`Arc<str>`): a rule kept as found is the same text in the
/// running ruleset and in the one composed from it, and the rules of a chain share its
/// name, so a large Docker host's ruleset is not copied string by string to be composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: Arc<str>,
    pub spec: Arc<str>,
    pub counters: Option<Counters>,
}

/// One `*table … COMMIT` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: TableName,
    pub chains: Vec<Chain>,
    pub rules: Vec<Rule>,
}

impl Table {
    /// The table as the kernel has it before anything is loaded into it: its builtin
    /// chains ([`TableName::builtin_chains`]) with policy ACCEPT and counters `[0:0]`, no rules.
    pub fn empty(name: TableName) -> Table {
        Table {
            name,
            chains: name
                .builtin_chains()
                .iter()
                .map(|c| Chain {
                    name: c.to_string(),
                    policy: Some(ChainPolicy::Accept),
                    counters: Some(Counters::default()),
                })
                .collect(),
            rules: Vec::new(),
        }
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    pub fn rules_of<'a>(&'a self, chain: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| *r.chain == *chain)
    }

    /// The positions in `rules` of each chain's rules, in order, found in one pass: for
    /// code that walks a large table chain by chain ([`Table::rules_of`] reads the whole
    /// table for each chain).
    pub fn rules_by_chain(&self) -> HashMap<&str, Vec<usize>> {
        let mut by_chain: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, rule) in self.rules.iter().enumerate() {
            by_chain.entry(&*rule.chain).or_default().push(i);
        }
        by_chain
    }

    /// The position in `chains` of each rule's chain (`None`: a chain the table does not
    /// declare), in rule order, found in one pass: a chain's rules, one after the other,
    /// share its name's text, so a lookup is made only where the chain changes.
    pub fn chain_of_each_rule(&self) -> Vec<Option<usize>> {
        let by_name: HashMap<&str, usize> = (self.chains.iter().enumerate())
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        let mut last: Option<(&Arc<str>, Option<usize>)> = None;
        (self.rules.iter())
            .map(|r| match last {
                Some((chain, at)) if Arc::ptr_eq(chain, &r.chain) => at,
                _ => {
                    let at = by_name.get(&*r.chain).copied();
                    last = Some((&r.chain, at));
                    at
                }
            })
            .collect()
    }

    /// The same table without counters: what "unchanged" is judged on.
    pub fn same_content(&self, other: &Table) -> bool {
        self.name == other.name
            && self.chains.len() == other.chains.len()
            && self.rules.len() == other.rules.len()
            && self
                .chains
                .iter()
                .zip(&other.chains)
                .all(|(a, b)| a.name == b.name && a.policy == b.policy)
            && self
                .rules
                .iter()
                .zip(&other.rules)
                .all(|(a, b)| a.chain == b.chain && a.spec == b.spec)
    }

    /// A stable fingerprint of the content (no counters), recorded after an apply.
    pub fn fingerprint(&self) -> String {
        self.fingerprint_with(&[])
    }

    /// The fingerprint of this table with the rules of some chains replaced:
    /// `read_back` gives, per chain, its rule specs as the kernel spells them, in order.
    /// With replacements, the table's rules must be grouped by chain in chain order (as
    /// `iptables-save` prints them); [`Table::fingerprint`] when `read_back` is empty.
    pub fn fingerprint_with(&self, read_back: &[(&str, Vec<String>)]) -> String {
        let mut fp = Fingerprint::new(self.name.as_str());
        for c in &self.chains {
            fp.chain(&c.name, c.policy.map_or("-", ChainPolicy::as_str));
        }
        if read_back.is_empty() {
            for r in &self.rules {
                fp.rule(&r.chain, &r.spec);
            }
            return fp.finish();
        }
        let by_chain = self.rules_by_chain();
        for c in &self.chains {
            match read_back.iter().find(|(name, _)| *name == c.name) {
                Some((_, specs)) => specs.iter().for_each(|spec| fp.rule(&c.name, spec)),
                None => (by_chain.get(c.name.as_str()).into_iter().flatten())
                    .for_each(|&i| fp.rule(&self.rules[i].chain, &self.rules[i].spec)),
            }
        }
        fp.finish()
    }
}

/// A table's content without counters, hashed with [`StableHasher`] (fields fed one by
/// one, so that it can be computed from the model or straight from the text).
struct Fingerprint(StableHasher);

impl Fingerprint {
    fn new(table: &str) -> Self {
        let mut h = StableHasher::new();
        h.feed(table.as_bytes());
        Fingerprint(h)
    }

    fn chain(&mut self, name: &str, policy: &str) {
        self.0.feed(name.as_bytes());
        self.0.feed(policy.as_bytes());
    }

    fn rule(&mut self, chain: &str, spec: &str) {
        self.0.feed(chain.as_bytes());
        self.0.feed(spec.as_bytes());
    }

    fn finish(self) -> String {
        format!("{:016x}", self.0.finish())
    }
}

/// `f` of every item, in order, each on a thread of its own: a family's tables are
/// independent, and on a large Docker host classifying or composing nat, filter and raw
/// one after the other leaves the other cores idle. A panic is passed on as it is.
pub fn per_table<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let f = &f;
        let handles = (items.iter())
            .map(|item| scope.spawn(move || f(item)))
            .collect::<Vec<_>>();
        (handles.into_iter())
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// A fingerprint of any text (64 bit, hex).
pub fn fingerprint_of(text: &str) -> String {
    Fingerprint::new(text).finish()
}

/// The fingerprint of every table of an `iptables-save` text, read line by line without
/// building the model (the same values [`Table::fingerprint`] gives for the parsed text).
/// `None` if the text is not in the form `iptables-save` writes; then parse it.
pub fn text_fingerprints(text: &str) -> Option<Vec<(TableName, String)>> {
    let mut out = Vec::new();
    let mut open: Option<(TableName, Fingerprint)> = None;
    // Lines are found with memchr (SIMD): this runs over the whole dump on every start.
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for end in ends {
        let line = &text[start..end];
        start = end + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            open = Some((name.parse().ok()?, Fingerprint::new(name)));
            continue;
        }
        let (name, fp) = open.as_mut()?;
        if line == "COMMIT" {
            out.push((*name, std::mem::replace(fp, Fingerprint::new("")).finish()));
            open = None;
        } else if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split(' ');
            fp.chain(parts.next()?, parts.next()?);
        } else {
            let (chain, spec) = saved_rule(line)?;
            fp.rule(chain, spec);
        }
    }
    open.is_none().then_some(out)
}

/// The chain and spec of a rule line as `iptables-save [-c]` writes it
/// (`[packets:bytes] -A CHAIN spec`); `None` for any other line.
pub fn saved_rule(line: &str) -> Option<(&str, &str)> {
    let rule = match line.strip_prefix('[') {
        Some(rest) => rest.get(rest.find(']')? + 2..)?,
        None => line,
    };
    let rest = rule.strip_prefix("-A ")?;
    Some(match memchr::memchr(b' ', rest.as_bytes()) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    })
}

/// The `*table … COMMIT` block of `table` in an `iptables-save` text, found without
/// reading the other tables' lines; `None` when the text has no such table.
pub fn saved_table(text: &str, table: TableName) -> Option<&str> {
    let header = format!("*{table}\n");
    let start = memchr::memmem::find_iter(text.as_bytes(), header.as_bytes())
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')?;
    let block = &text[start..];
    Some(&block[..block.find("\nCOMMIT").map_or(block.len(), |end| end + 1)])
}

/// A whole `iptables-save` dump for one address family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    pub tables: Vec<Table>,
}

impl Ruleset {
    pub fn table(&self, name: TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn rule_count(&self) -> usize {
        self.tables.iter().map(|t| t.rules.len()).sum()
    }

    /// The names of the tables of all `rulesets`, each once, in order of first appearance.
    pub fn table_names(rulesets: &[&Ruleset]) -> Vec<TableName> {
        let mut names = Vec::new();
        for table in rulesets.iter().flat_map(|rs| &rs.tables) {
            if !names.contains(&table.name) {
                names.push(table.name);
            }
        }
        names
    }
}

/// A syntax error in an `iptables-save` text, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn parse_counters(text: &str) -> Option<Counters> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let (p, b) = inner.split_once(':')?;
    Some(Counters {
        packets: p.parse().ok()?,
        bytes: b.parse().ok()?,
    })
}

/// A chain declaration of `table`. `-` is a user chain's policy word, and on a builtin
/// chain (restore input) [`ChainPolicy::Keep`].
fn parse_chain(table: TableName, decl: &str) -> Result<Chain, String> {
    let mut parts = decl.split(' ');
    let name = parts.next().filter(|n| !n.is_empty());
    let policy = parts.next();
    let counters = parts.next();
    let (Some(name), Some(policy)) = (name, policy) else {
        return Err(format!(
            "chain declaration ':{decl}' needs a name and a policy"
        ));
    };
    if parts.next().is_some() {
        return Err(format!("unexpected text after chain declaration ':{decl}'"));
    }
    let counters = match counters {
        None => None,
        Some(c) => Some(parse_counters(c).ok_or_else(|| format!("bad counters '{c}'"))?),
    };
    let policy: ChainPolicy = policy.parse()?;
    if policy != ChainPolicy::Keep && !table.is_builtin(name) {
        return Err(format!(
            "':{decl}': only builtin chains of table {table} have a policy"
        ));
    }
    Ok(Chain {
        name: name.to_string(),
        policy: (policy != ChainPolicy::Keep || table.is_builtin(name)).then_some(policy),
        counters,
    })
}

/// One rule line; `previous`, the rule before it in its table, whose chain name it shares
/// when it is in the same chain (rules come chain by chain).
fn parse_rule(line: &str, previous: Option<&Rule>) -> Result<Rule, String> {
    let (counters, rest) = if line.starts_with('[') {
        let (c, rest) = line
            .split_once(' ')
            .ok_or_else(|| format!("counters without a rule: '{line}'"))?;
        let counters = parse_counters(c).ok_or_else(|| format!("bad counters '{c}'"))?;
        (Some(counters), rest)
    } else {
        (None, line)
    };
    let rest = rest
        .strip_prefix("-A ")
        .ok_or_else(|| format!("expected '-A CHAIN …', found '{line}'"))?;
    let (chain, spec) = rest.split_once(' ').unwrap_or((rest, ""));
    if chain.is_empty() {
        return Err(format!("rule without a chain name: '{line}'"));
    }
    let chain = match previous {
        Some(p) if *p.chain == *chain => Arc::clone(&p.chain),
        _ => chain.into(),
    };
    Ok(Rule {
        chain,
        spec: spec.into(),
        counters,
    })
}

/// Parses `iptables-save` (or `-c`) output. Comment and blank lines are skipped.
///
/// A text of well-formed `*table … COMMIT` blocks, each table once, is parsed a table
/// per thread (the blocks are found by a scan of the lines that start with `*` or read
/// `COMMIT`); any other text, line by line in one pass, which finds its first error.
/// Either way the result, and the first error with its line number, are the same.
pub fn parse(text: &str) -> Result<Ruleset, ParseError> {
    let Some(blocks) = table_blocks(text).filter(|b| b.len() > 1) else {
        return parse_from(text, 0);
    };
    let parsed = per_table(&blocks, |&(before, block)| parse_from(block, before));
    let mut ruleset = Ruleset::default();
    for table in parsed {
        ruleset.tables.extend(table?.tables);
    }
    Ok(ruleset)
}

/// The `*table … COMMIT` blocks of `text`, each with the number of lines before it;
/// `None` unless the text is only such blocks, comments and blank lines, each table
/// once.
fn table_blocks(text: &str) -> Option<Vec<(usize, &str)>> {
    let mut blocks = Vec::new();
    let mut names = Vec::new();
    let mut open: Option<(usize, usize)> = None;
    let (mut start, mut number) = (0, 0);
    let ends = memchr::memchr_iter(b'\n', text.as_bytes()).chain(std::iter::once(text.len()));
    for end in ends {
        let line = text[start..end].trim_end_matches('\r');
        match (line.as_bytes().first(), open) {
            (Some(b'*'), None) => {
                names.push(line);
                open = Some((start, number));
            }
            (Some(b'*'), Some(_)) => return None,
            (_, Some((from, before))) if line == "COMMIT" => {
                blocks.push((before, &text[from..end]));
                open = None;
            }
            (_, None) if !(line.trim().is_empty() || line.starts_with('#')) => return None,
            _ => {}
        }
        (start, number) = (end + 1, number + 1);
    }
    names.sort_unstable();
    names.dedup();
    (open.is_none() && names.len() == blocks.len()).then_some(blocks)
}

/// [`parse`] of `text`, one line after the other; `before` lines precede it (for the
/// line numbers of errors).
fn parse_from(text: &str, before: usize) -> Result<Ruleset, ParseError> {
    let mut ruleset = Ruleset::default();
    let mut open: Option<(Table, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        // `lines` takes one `\r` before `\n` as part of the line end; take any more too,
        // or a rule would keep one and write it out as a line end ("x\r\r\n" ≠ "x\r\n").
        let line = line.trim_end_matches('\r');
        let number = before + index + 1;
        let err = |message: String| ParseError {
            line: number,
            message,
        };
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            if let Some((table, start)) = &open {
                return Err(err(format!(
                    "table '{}' opened at line {start} has no COMMIT before '*{name}'",
                    table.name
                )));
            }
            let name: TableName = name.parse().map_err(err)?;
            if ruleset.table(name).is_some() {
                return Err(err(format!("table '{name}' appears twice")));
            }
            let table = Table {
                name,
                chains: Vec::new(),
                rules: Vec::new(),
            };
            open = Some((table, number));
            continue;
        }
        let Some((table, _)) = open.as_mut() else {
            return Err(err(format!("'{line}' is outside any '*table' block")));
        };
        if line == "COMMIT" {
            let (table, _) = open.take().expect("a table is open");
            ruleset.tables.push(table);
        } else if let Some(decl) = line.strip_prefix(':') {
            let chain = parse_chain(table.name, decl).map_err(err)?;
            if table.chain(&chain.name).is_some() {
                return Err(err(format!("chain '{}' declared twice", chain.name)));
            }
            table.chains.push(chain);
        } else {
            let rule = parse_rule(line, table.rules.last()).map_err(err)?;
            // Rules come chain by chain: most have the chain of the rule before.
            let same = table
                .rules
                .last()
                .is_some_and(|r| Arc::ptr_eq(&r.chain, &rule.chain));
            if !same && table.chain(&rule.chain).is_none() {
                return Err(err(format!(
                    "rule for chain '{}', which table '{}' does not declare",
                    rule.chain, table.name
                )));
            }
            table.rules.push(rule);
        }
    }
    if let Some((table, start)) = open {
        return Err(ParseError {
            line: start,
            message: format!("table '{}' has no COMMIT", table.name),
        });
    }
    Ok(ruleset)
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}:{}]", self.packets, self.bytes)
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let policy = self.policy.map_or("-", ChainPolicy::as_str);
        write!(f, ":{} {policy}", self.name)?;
        if let Some(c) = self.counters {
            write!(f, " {c}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = self.counters {
            write!(f, "{c} ")?;
        }
        write!(f, "-A {}", self.chain)?;
        if !self.spec.is_empty() {
            write!(f, " {}", self.spec)?;
        }
        Ok(())
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "*{}", self.name)?;
        for chain in &self.chains {
            writeln!(f, "{chain}")?;
        }
        for rule in &self.rules {
            writeln!(f, "{rule}")?;
        }
        writeln!(f, "COMMIT")
    }
}

impl fmt::Display for Ruleset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.tables.iter().try_for_each(|t| write!(f, "{t}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_counters_negation_and_quotes() {
        let text = "*filter\n:INPUT DROP [3:180]\n:f2b-sshd - [0:0]\n\
            [1:60] -A INPUT ! -i lo -m comment --comment \"a \\\"quoted\\\" one\" -j f2b-sshd\n\
            [0:0] -A f2b-sshd\nCOMMIT\n";
        assert_eq!(parse(text).unwrap().to_string(), text);
    }

    #[test]
    fn text_fingerprints_match_the_model() {
        let text = "# x\n*filter\n:INPUT DROP [3:180]\n:f2b - [0:0]\n\
            [1:60] -A INPUT ! -i lo -j f2b\n-A f2b\nCOMMIT\n*raw\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let model: Vec<(TableName, String)> = parse(text)
            .unwrap()
            .tables
            .iter()
            .map(|t| (t.name, t.fingerprint()))
            .collect();
        assert_eq!(text_fingerprints(text), Some(model));
        assert_eq!(text_fingerprints("*filter\n-A INPUT\n"), None);
    }

    #[test]
    fn skips_comments() {
        let text =
            "# Generated by iptables-save\n*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n# Completed\n";
        assert_eq!(
            parse(text).unwrap().to_string(),
            "*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"
        );
    }

    #[test]
    fn stray_carriage_returns_end_lines() {
        // Found by fuzz/ (ruleset_parse): serializing was not a fixed point.
        let text = "*filter\r\r\n:INPUT ACCEPT\r\n-A INPUT -j ACCEPT\t\r\r\nCOMMIT\r";
        let once = parse(text).unwrap().to_string();
        assert_eq!(
            once,
            "*filter\n:INPUT ACCEPT\n-A INPUT -j ACCEPT\t\nCOMMIT\n"
        );
        assert_eq!(parse(&once).unwrap().to_string(), once);
    }

    #[test]
    fn rejects_malformed_input_with_line_numbers() {
        let cases = [
            ("-A INPUT -j ACCEPT\n", 1, "outside"),
            (
                "*filter\n:INPUT ACCEPT\n-A FORWARD -j DROP\nCOMMIT\n",
                3,
                "does not declare",
            ),
            ("*filter\n:INPUT ACCEPT [x:1]\nCOMMIT\n", 2, "bad counters"),
            ("*filter\n:INPUT ACCEPT\n", 1, "no COMMIT"),
            ("*filter\nCOMMIT\n*filter\nCOMMIT\n", 3, "twice"),
            ("*filter\nCOMMIT\n*nta\nCOMMIT\n", 3, "unknown table 'nta'"),
            (
                "*raw\n:OUTPUT REJECT [0:0]\nCOMMIT\n",
                2,
                "unknown chain policy 'REJECT'",
            ),
            ("*raw\n:x ACCEPT [0:0]\nCOMMIT\n", 2, "only builtin chains"),
            (
                "*filter\n:INPUT ACCEPT\n-I INPUT -j DROP\nCOMMIT\n",
                3,
                "expected '-A",
            ),
            // Several tables (parsed a table per thread): the first error, its line.
            (
                "# x\n*raw\nCOMMIT\n\n*nat\n:PREROUTING ACCEPT\n-A INPUT -j DROP\nCOMMIT\n\
                 *filter\n:INPUT ACCEPT [x:1]\nCOMMIT\n",
                7,
                "does not declare",
            ),
            ("*raw\nCOMMIT\n*nat\nCOMMIT\n-A X\n", 5, "outside"),
            ("*raw\nCOMMIT\n*nat\n*filter\nCOMMIT\n", 4, "no COMMIT"),
            ("*raw\nCOMMIT\n*nat\nCOMMIT\n*raw\nCOMMIT\n", 5, "twice"),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn several_tables_parse_as_in_one_pass() {
        let text = "# Generated\n*raw\n:PREROUTING ACCEPT [1:2]\n-A PREROUTING -j DROP\nCOMMIT\n\
            # Completed\n\n*nat\n:PREROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n\
            -A PREROUTING -j DOCKER\nCOMMIT\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n";
        assert_eq!(table_blocks(text).map(|b| b.len()), Some(3));
        assert_eq!(parse(text).unwrap(), parse_from(text, 0).unwrap());
    }
}
