//! `allow|deny|reject|limit SPEC`, `rules` and `delete N|SPEC`: the configuration's host
//! rules, edited in place. [`crate::rulespec`] parses the SPEC and splices the text; here
//! the edited text is validated by the configuration loader before the file is replaced
//! atomically, the diff is shown, and `--apply` runs `reload` itself (lock, lockout guard,
//! `--confirm`), putting the file back when that fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use similar::TextDiff;

use crate::cli::{DeleteArgs, EditApply, Global, RuleArgs};
use crate::config::{self, Allow, Config, Proto};
use crate::error::{Error, Kind, Result};
use crate::report;
use crate::rulespec::{self, Action, RuleSpec, SpecError};
use crate::system::file;

use super::apply;

/// The commented default configuration: what a missing file is created from.
const DEFAULT_CONFIG: &str = include_str!("../../templates/config.toml");

/// One host rule of the configuration, in evaluation order.
struct Entry {
    /// Its number in `rules` (`None`: `[ssh]`, which `delete` cannot remove).
    number: Option<usize>,
    /// The array of tables it is in (`rule`, `allow`) and its index there.
    table: (&'static str, usize),
    spec: RuleSpec,
}

/// The rules of `config` in evaluation order: the `[[rule]]` tables, `[ssh]`, the
/// `[[allow]]` tables; numbered from 1, `[ssh]` not.
fn entries(config: &Config) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let next = |out: &[Entry]| Some(out.iter().filter(|e| e.number.is_some()).count() + 1);
    let ssh = Allow {
        description: String::new(),
        proto: Proto::Tcp,
        ports: config::Ports {
            first: config.ssh.port,
            last: config.ssh.port,
        },
        from: config.ssh.allow_from.clone(),
    };
    out.push(Entry {
        number: None,
        table: ("ssh", 0),
        spec: RuleSpec::from(&ssh),
    });
    for (index, allow) in config.allow.iter().enumerate() {
        out.push(Entry {
            number: next(&out),
            table: ("allow", index),
            spec: RuleSpec::from(allow),
        });
    }
    out
}

/// The file `--config` names, else the default path.
fn config_path(global: &Global) -> PathBuf {
    global
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH))
}

/// The text of /etc/services (empty when it is missing: service names are then unknown).
fn services() -> String {
    std::fs::read_to_string("/etc/services").unwrap_or_default()
}

fn bad_spec(e: SpecError) -> Error {
    Error::new(Kind::Usage, format!("bad rule: {e}"))
        .hint("`iptables-docker allow --help` shows the forms a rule takes; nothing was changed")
}

/// The configuration file's text, or `None` when there is none.
fn read_text(path: &Path) -> Result<Option<String>> {
    file::read_if_exists(path)?
        .map(|bytes| config::utf8(path, bytes))
        .transpose()
}

/// The configuration `text` of `path` as the loader reads it.
fn parse_current(text: &str, path: &Path) -> Result<Config> {
    Config::parse(text, path).map_err(|e| {
        e.context(format!(
            "{} does not load, so it is not edited",
            path.display()
        ))
    })
}

/// `allow|deny|reject|limit SPEC`.
pub fn add(global: &Global, action: Action, args: &RuleArgs) -> Result<()> {
    let mut spec = rulespec::parse(action, &args.spec, &services()).map_err(bad_spec)?;
    if let Some(comment) = &args.comment {
        if !spec.description.is_empty() {
            let e = SpecError {
                word: "comment".into(),
                message: "given twice: as --comment and as `comment`".into(),
            };
            return Err(bad_spec(e));
        }
        spec.description = comment.clone();
    }
    let path = config_path(global);
    let current = read_text(&path)?;
    let old = current.as_deref().unwrap_or(DEFAULT_CONFIG);
    let config = parse_current(old, &path)?;
    if let Some(same) = entries(&config).iter().find(|e| e.spec.same_rule(&spec)) {
        let which = same
            .number
            .map_or("[ssh]".to_string(), |n| format!("rule {n}"));
        println!(
            "{} already has this rule ({which}: {}); nothing changed",
            path.display(),
            same.spec
        );
        return Ok(());
    }
    let new = rulespec::append_rule(old, &spec).map_err(|e| edit_error(&path, e))?;
    let number = rulespec::count(&new, "rule").map_err(|e| edit_error(&path, e))?;
    let edit = Edit {
        path: &path,
        old,
        existed: current.is_some(),
        new,
    };
    edit.finish(global, &format!("added rule {number}: {spec}"), &args.apply)
}

fn edit_error(path: &Path, e: rulespec::EditError) -> Error {
    Error::config(format!("{}: {e}", path.display())).hint("nothing was changed")
}

/// `rules`.
pub fn list(global: &Global) -> Result<()> {
    let config = Config::load(global.config.as_deref())?;
    let source = config
        .path
        .as_ref()
        .map_or("the built-in default".to_string(), |p| {
            p.display().to_string()
        });
    println!("Host rules of {source}, in the order they are evaluated:");
    for entry in entries(&config) {
        let number = entry
            .number
            .map_or("    ".to_string(), |n| format!("{n:>3} "));
        let mut line = format!("{number} {}", entry.spec);
        match entry.table.0 {
            "ssh" => line.push_str("  [ssh]"),
            "allow" => line.push_str("  [[allow]]"),
            _ => {}
        }
        if !entry.spec.description.is_empty() {
            line.push_str(&format!("  # {}", entry.spec.description));
        }
        println!("{line}");
    }
    Ok(())
}

/// `delete N|SPEC`.
pub fn delete(global: &Global, args: &DeleteArgs) -> Result<()> {
    let path = config_path(global);
    let Some(old) = read_text(&path)? else {
        return Err(Error::failed(format!(
            "there is no configuration file at {}, so no rule to delete",
            path.display()
        )));
    };
    let config = parse_current(&old, &path)?;
    let entries = entries(&config);
    let entry = match args.rule.as_slice() {
        [n] if n.bytes().all(|b| b.is_ascii_digit()) => {
            let n: usize = n.parse().unwrap_or(0);
            entries
                .iter()
                .find(|e| e.number == Some(n))
                .ok_or_else(|| {
                    Error::failed(format!("there is no rule {n} in {}", path.display()))
                        .hint("`iptables-docker rules` lists them with their numbers")
                })?
        }
        words => {
            let spec = rulespec::parse_with_action(words, &services()).map_err(bad_spec)?;
            let found = entries
                .iter()
                .find(|e| e.number.is_some() && e.spec.same_rule(&spec));
            found.ok_or_else(|| {
                Error::failed(format!("no rule of {} is `{spec}`", path.display()))
                    .hint("`iptables-docker rules` lists them; nothing was changed")
            })?
        }
    };
    let (key, index) = entry.table;
    let new = rulespec::remove_table(&old, key, index).map_err(|e| edit_error(&path, e))?;
    let what = format!("deleted rule {}: {}", entry.number.unwrap_or(0), entry.spec);
    let edit = Edit {
        path: &path,
        old: &old,
        existed: true,
        new,
    };
    edit.finish(global, &what, &args.apply)
}

/// An edit of the configuration file, not yet written.
struct Edit<'a> {
    path: &'a Path,
    /// The file's text (the commented default when it does not exist).
    old: &'a str,
    existed: bool,
    new: String,
}

impl Edit<'_> {
    /// Validates, shows, writes and (with `--apply`) applies the edit.
    fn finish(&self, global: &Global, what: &str, apply: &EditApply) -> Result<()> {
        Config::parse(&self.new, self.path).map_err(|e| {
            e.context("with this change the configuration would not load")
                .hint(format!("{} was not changed", self.path.display()))
        })?;
        let before = if self.existed {
            self.path.display().to_string()
        } else {
            "the commented default configuration".to_string()
        };
        let diff = TextDiff::from_lines(self.old, &self.new);
        print!(
            "{}",
            diff.unified_diff()
                .header(&before, &self.path.display().to_string())
        );
        file::write_atomic(self.path, self.new.as_bytes(), self.mode())?;
        if !self.existed {
            report::info(format!(
                "created {} from the commented default",
                self.path.display()
            ));
        }
        report::info(what);
        if !apply.apply {
            report::info("not applied: `iptables-docker reload` applies it (or use --apply)");
            return Ok(());
        }
        let global = Global {
            config: Some(self.path.to_path_buf()),
            ..global.clone()
        };
        apply::run(&global, apply::Verb::Reload, apply.force, apply.confirm)
            .or_else(|e| self.put_back(e))
    }

    /// The mode of the file it replaces; 0644 for a new one.
    fn mode(&self) -> u32 {
        std::fs::metadata(self.path).map_or(0o644, |m| m.permissions().mode() & 0o7777)
    }

    /// After a failed `--apply`: the file as it was (none, if it was created).
    fn put_back(&self, e: Error) -> Result<()> {
        if self.existed {
            file::write_atomic(self.path, self.old.as_bytes(), self.mode())?;
        } else {
            file::remove_file(self.path)?;
        }
        Err(e.context(format!(
            "not applied, {} is put back as it was",
            self.path.display()
        )))
    }
}
