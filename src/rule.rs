//! A read-only view of a rule's arguments (`-i docker0`, `! -o br-1`, `-j DOCKER`), used to
//! recognise what a rule matches without interpreting iptables' full grammar. Words borrow
//! from the rule text (only a quoted or escaped word is copied): classification reads
//! tens of thousands of rules on a large Docker host.

use std::borrow::Cow;

/// One option of a rule: its name (`-o`, `--dport`), whether it was negated with `!`, and
/// its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opt<'s> {
    pub name: &'s str,
    pub negated: bool,
    pub values: &'s [Cow<'s, str>],
}

impl<'s> Opt<'s> {
    pub fn first(&self) -> Option<&'s str> {
        self.values.first().map(|v| v.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    /// Index of the option's name in `words`; its values follow, up to `end`.
    name: usize,
    negated: bool,
    end: usize,
}

/// The options of one rule's spec, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleArgs<'a> {
    words: Vec<Cow<'a, str>>,
    slots: Vec<Slot>,
}

/// Splits a rule spec into words the way `iptables-save` quotes them: double quotes group
/// words, a backslash escapes the next character.
pub fn split_words(spec: &str) -> Vec<Cow<'_, str>> {
    if !spec.contains(['"', '\\', '\t']) {
        return spec
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(Cow::Borrowed)
            .collect();
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    word.push(next);
                }
                in_word = true;
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' if !quoted => {
                if in_word {
                    words.push(Cow::Owned(std::mem::take(&mut word)));
                    in_word = false;
                }
            }
            _ => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(Cow::Owned(word));
    }
    words
}

/// The target of a rule (`-j X` / `-g X`) read straight from its text, without copying:
/// targets are never quoted. Words inside quotes (a comment saying "-j") are skipped.
pub fn target_of(spec: &str) -> Option<&str> {
    jump(spec).map(|(_, target)| target)
}

/// Where the rule's `-j`/`-g` option starts (a byte offset into `spec`), and its target.
pub fn jump(spec: &str) -> Option<(usize, &str)> {
    let bytes = spec.as_bytes();
    let mut quoted = false;
    let mut start = None;
    let mut jump_at = None;
    let mut i = 0;
    while i <= bytes.len() {
        let b = bytes.get(i).copied();
        match b {
            Some(b'\\') => i += 1,
            Some(b'"') => quoted = !quoted,
            Some(b' ') | None if !quoted => {
                if let Some(s) = start.take() {
                    let word = &spec[s..i];
                    if let Some(at) = jump_at {
                        return Some((at, word));
                    }
                    jump_at = matches!(word, "-j" | "--jump" | "-g" | "--goto").then_some(s);
                }
            }
            _ => {
                if start.is_none() {
                    start = Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn is_option(word: &str) -> bool {
    word.len() > 1 && word.starts_with('-') && !word[1..].bytes().all(|b| b.is_ascii_digit())
}

impl<'a> RuleArgs<'a> {
    pub fn parse(spec: &'a str) -> Self {
        let words = split_words(spec);
        let mut slots: Vec<Slot> = Vec::new();
        let mut negate_next = false;
        for (i, word) in words.iter().enumerate() {
            if word == "!" {
                negate_next = true;
            } else if is_option(word) {
                slots.push(Slot {
                    name: i,
                    negated: std::mem::take(&mut negate_next),
                    end: i + 1,
                });
            } else if let Some(last) = slots.last_mut() {
                last.end = i + 1;
            }
        }
        RuleArgs { words, slots }
    }

    fn opt(&self, slot: &Slot) -> Opt<'_> {
        Opt {
            name: &self.words[slot.name],
            negated: slot.negated,
            values: &self.words[slot.name + 1..slot.end],
        }
    }

    /// Every option, in order.
    pub fn opts(&self) -> impl Iterator<Item = Opt<'_>> {
        self.slots.iter().map(|s| self.opt(s))
    }

    /// The first option with one of these names (e.g. `-j` / `--jump`).
    pub fn get(&self, names: &[&str]) -> Option<Opt<'_>> {
        self.slots
            .iter()
            .find(|s| names.contains(&self.words[s.name].as_ref()))
            .map(|s| self.opt(s))
    }

    /// The first value of an option, if present.
    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.get(names).and_then(|o| o.first())
    }

    pub fn has(&self, names: &[&str]) -> bool {
        self.get(names).is_some()
    }

    /// The rule's target: `-j X` or `-g X`.
    pub fn target(&self) -> Option<&str> {
        self.value(&["-j", "--jump", "-g", "--goto"])
    }

    pub fn in_iface(&self) -> Option<Opt<'_>> {
        self.get(&["-i", "--in-interface"])
    }

    pub fn out_iface(&self) -> Option<Opt<'_>> {
        self.get(&["-o", "--out-interface"])
    }

    pub fn source(&self) -> Option<&str> {
        self.value(&["-s", "--source"])
    }

    pub fn destination(&self) -> Option<&str> {
        self.value(&["-d", "--destination"])
    }

    pub fn protocol(&self) -> Option<&str> {
        self.value(&["-p", "--protocol"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_negation_targets_and_quotes() {
        let args = RuleArgs::parse(
            "-s 10.0.0.0/8 ! -o docker0 -m comment --comment \"hello \\\"x\\\" y\" -j MASQUERADE",
        );
        assert_eq!(args.source(), Some("10.0.0.0/8"));
        let out = args.out_iface().unwrap();
        assert!(out.negated);
        assert_eq!(out.values, ["docker0"]);
        assert_eq!(args.value(&["--comment"]), Some("hello \"x\" y"));
        assert_eq!(args.target(), Some("MASQUERADE"));
    }

    #[test]
    fn target_of_reads_the_text() {
        assert_eq!(target_of("-o docker0 -j DOCKER"), Some("DOCKER"));
        assert_eq!(target_of("-g f2b-sshd"), Some("f2b-sshd"));
        assert_eq!(target_of("-p tcp"), None);
        assert_eq!(
            target_of("-m comment --comment \"x -j NOPE\" -j LOG --log-prefix \"a -j b\""),
            Some("LOG")
        );
    }
}
