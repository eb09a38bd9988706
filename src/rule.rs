//! A read-only view of a rule's arguments (`-i docker0`, `! -o br-1`, `-j DOCKER`), used to
//! recognise what a rule matches without interpreting iptables' full grammar. Words borrow
//! from the rule text (only a quoted or escaped word is copied): classification reads
//! tens of thousands of rules on a large Docker host.

#![forbid(unsafe_code)]

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

/// The words of a rule spec, read the way `iptables-save` quotes them: spaces and tabs
/// separate words, double quotes group them, a backslash escapes the next character. A
/// word without quotes or escapes borrows from the spec. The one tokenizer of rule text.
#[derive(Debug, Clone)]
pub struct Words<'a> {
    rest: &'a str,
}

/// The words of `spec` ([`Words`]).
pub fn words(spec: &str) -> Words<'_> {
    Words { rest: spec }
}

impl<'a> Iterator for Words<'a> {
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let start = self.rest.trim_start_matches([' ', '\t']);
        if start.is_empty() {
            self.rest = start;
            return None;
        }
        // The common word, neither quoted nor escaped, found byte by byte (all four
        // delimiters are ASCII): this runs over every word of every saved rule.
        let plain = start
            .bytes()
            .position(|b| matches!(b, b' ' | b'\t' | b'"' | b'\\'));
        match plain.map(|i| (i, start.as_bytes()[i])) {
            None => {
                self.rest = "";
                return Some(Cow::Borrowed(start));
            }
            Some((i, b' ' | b'\t')) => {
                self.rest = &start[i + 1..];
                return Some(Cow::Borrowed(&start[..i]));
            }
            Some(_) => {}
        }
        let mut owned: Option<String> = None;
        let mut quoted = false;
        let mut chars = start.char_indices();
        let mut end = start.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let word = owned.get_or_insert_with(|| start[..i].to_string());
                    if let Some((_, next)) = chars.next() {
                        word.push(next);
                    }
                }
                '"' => {
                    owned.get_or_insert_with(|| start[..i].to_string());
                    quoted = !quoted;
                }
                ' ' | '\t' if !quoted => {
                    end = i;
                    break;
                }
                _ => {
                    if let Some(word) = owned.as_mut() {
                        word.push(c);
                    }
                }
            }
        }
        let word = match owned {
            Some(word) => Cow::Owned(word),
            None => Cow::Borrowed(&start[..end]),
        };
        self.rest = match chars.next() {
            Some((i, _)) => &start[i..],
            None => "",
        };
        Some(word)
    }
}

/// The words of a rule spec, collected ([`Words`]).
pub fn split_words(spec: &str) -> Vec<Cow<'_, str>> {
    words(spec).collect()
}

/// The target of a rule (`-j X` / `-g X`), borrowed from its text (targets are never
/// quoted). Words inside quotes (a comment saying "-j") are not options.
pub fn target_of(spec: &str) -> Option<&str> {
    jump(spec).map(|(_, target)| target)
}

/// Where the rule's `-j`/`-g` option starts (a byte offset into `spec`), and its target.
/// Classification and composition ask this of every rule, several times.
pub fn jump(spec: &str) -> Option<(usize, &str)> {
    let bytes = spec.as_bytes();
    if memchr::memchr2(b'"', b'\\', bytes).is_some() {
        return jump_in_words(spec);
    }
    // Neither quotes nor escapes: a word is what lies between blanks, and only a word
    // that starts with '-' can be the option.
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let word_at = |at: usize| {
        let len = bytes[at..]
            .iter()
            .position(blank)
            .unwrap_or(bytes.len() - at);
        &spec[at..at + len]
    };
    for at in memchr::memchr_iter(b'-', bytes) {
        if at > 0 && !blank(&bytes[at - 1]) {
            continue;
        }
        let option = word_at(at);
        if matches!(option, "-j" | "--jump" | "-g" | "--goto") {
            let rest = at + option.len();
            let next = rest + bytes[rest..].iter().position(|b| !blank(b))?;
            return Some((at, word_at(next)));
        }
    }
    None
}

/// [`jump`] for a spec with quotes or escapes, read word by word.
fn jump_in_words(spec: &str) -> Option<(usize, &str)> {
    let mut words = words(spec);
    while let Some(word) = words.next() {
        if let Cow::Borrowed(option @ ("-j" | "--jump" | "-g" | "--goto")) = word {
            let at = option.as_ptr() as usize - spec.as_ptr() as usize;
            return match words.next()? {
                Cow::Borrowed(target) => Some((at, target)),
                Cow::Owned(_) => None,
            };
        }
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
    fn words_honour_quotes_escapes_and_tabs() {
        let w = |s| {
            split_words(s)
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        assert_eq!(w("  -i  eth0\t-j X "), ["-i", "eth0", "-j", "X"]);
        assert_eq!(w("--comment \"a b\" x"), ["--comment", "a b", "x"]);
        assert_eq!(w("a\\ b \"\" c"), ["a b", "", "c"]);
        assert_eq!(w("p\"q r\"s"), ["pq rs"]);
        assert!(matches!(
            words("-j DOCKER").nth(1),
            Some(Cow::Borrowed("DOCKER"))
        ));
    }

    #[test]
    fn jump_reads_plain_specs_as_the_word_reader_does() {
        for spec in [
            "-o docker0 -j DOCKER",
            "-d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
            "-i\t-j\t\tRETURN",
            "  -g  f2b-sshd ",
            "-m set --match-set x-j src -j DROP",
            "-s 10.0.0.0/8 -p tcp --dport 1-9 --jump LOG --log-level 4",
            "-j",
            "-j ",
            "-p tcp",
            "",
        ] {
            assert_eq!(jump(spec), jump_in_words(spec), "{spec:?}");
        }
    }

    #[test]
    fn target_of_reads_the_text() {
        assert_eq!(target_of("-o docker0 -j DOCKER"), Some("DOCKER"));
        assert_eq!(target_of("-g f2b-sshd"), Some("f2b-sshd"));
        assert_eq!(target_of("-p tcp"), None);
        assert_eq!(target_of("-j"), None);
        assert_eq!(
            target_of("-m comment --comment \"x -j NOPE\" -j LOG --log-prefix \"a -j b\""),
            Some("LOG")
        );
    }
}
