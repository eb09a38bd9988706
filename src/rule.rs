//! A read-only view of a rule's arguments (`-i docker0`, `! -o br-1`, `-j DOCKER`), used to
//! recognise what a rule matches without interpreting iptables' full grammar.

/// One option of a rule: its name (`-o`, `--dport`), whether it was negated with `!`, and
/// its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub name: String,
    pub negated: bool,
    pub values: Vec<String>,
}

/// The options of one rule's spec, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleArgs {
    pub opts: Vec<Opt>,
}

/// Splits a rule spec into words the way `iptables-save` quotes them: double quotes group
/// words, a backslash escapes the next character.
pub fn split_words(spec: &str) -> Vec<String> {
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
                    words.push(std::mem::take(&mut word));
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
        words.push(word);
    }
    words
}

impl RuleArgs {
    pub fn parse(spec: &str) -> Self {
        let mut opts: Vec<Opt> = Vec::new();
        let mut negate_next = false;
        for word in split_words(spec) {
            if word == "!" {
                negate_next = true;
            } else if word.starts_with('-') && word.len() > 1 && !is_number(&word) {
                opts.push(Opt {
                    name: word,
                    negated: std::mem::take(&mut negate_next),
                    values: Vec::new(),
                });
            } else if let Some(last) = opts.last_mut() {
                last.values.push(word);
            }
        }
        RuleArgs { opts }
    }

    /// The first option with this name (either spelling, e.g. `-j` / `--jump`).
    pub fn get(&self, names: &[&str]) -> Option<&Opt> {
        self.opts.iter().find(|o| names.contains(&o.name.as_str()))
    }

    /// The first value of an option, if present.
    pub fn value(&self, names: &[&str]) -> Option<&str> {
        self.get(names)
            .and_then(|o| o.values.first())
            .map(String::as_str)
    }

    pub fn has(&self, names: &[&str]) -> bool {
        self.get(names).is_some()
    }

    /// The rule's target: `-j X` or `-g X`.
    pub fn target(&self) -> Option<&str> {
        self.value(&["-j", "--jump", "-g", "--goto"])
    }

    pub fn in_iface(&self) -> Option<&Opt> {
        self.get(&["-i", "--in-interface"])
    }

    pub fn out_iface(&self) -> Option<&Opt> {
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

fn is_number(word: &str) -> bool {
    word[1..].chars().all(|c| c.is_ascii_digit())
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
}
