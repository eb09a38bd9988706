//! `allow|deny|reject|limit SPEC`, `rules` and `delete N|SPEC`: the configuration's host
//! rules, edited in place. [`crate::rulespec`] parses the SPEC and splices the text; here
//! the edited text is validated by the configuration loader before the file is replaced
//! atomically, the diff is shown, and `--apply` runs `reload` itself (lock, lockout guard,
//! `--confirm`), putting the file back when that fails. An edit holds the configuration's
//! [`EditLock`] from reading the file to the end of its apply, so that edits made at the
//! same moment queue; with `--confirm` the rollback watchdog holds it too and puts the
//! file back itself when the change is not confirmed (its terminal may be gone by then).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use similar::TextDiff;

use crate::cli::{DeleteArgs, EditApply, Global, RuleArgs};
use crate::config::{self, Config};
use crate::error::{Error, Kind, Result};
use crate::host_rule::{Action, Rule};
use crate::report;
use crate::rulespec::{self, Shown, SpecError};
use crate::system::file;
use crate::system::lock::EditLock;
use crate::system::pending::FileEdit;

use super::{apply, confirm};

/// The commented default configuration: what a missing file is created from.
const DEFAULT_CONFIG: &str = include_str!("../../templates/config.toml");

/// One host rule of the configuration, in evaluation order.
struct Entry {
    /// Its number in `rules` (`None`: `[ssh]`, which `delete` cannot remove).
    number: Option<usize>,
    /// The array of tables it is in (`rule`, `allow`; `ssh`) and its index there.
    table: (&'static str, usize),
    rule: Rule,
}

/// The rules of `config` in evaluation order: the `[[rule]]` tables, `[ssh]`, the
/// `[[allow]]` tables; numbered from 1, `[ssh]` not.
fn entries(config: &Config) -> Vec<Entry> {
    let rules = config.rules.iter().cloned().enumerate();
    let mut out: Vec<Entry> = rules
        .map(|(index, rule)| Entry {
            number: Some(index + 1),
            table: ("rule", index),
            rule,
        })
        .collect();
    out.push(Entry {
        number: None,
        table: ("ssh", 0),
        rule: Rule::from_ssh(&config.ssh),
    });
    for (index, allow) in config.allow.iter().enumerate() {
        out.push(Entry {
            number: Some(config.rules.len() + index + 1),
            table: ("allow", index),
            rule: Rule::from_allow(allow),
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

fn edit_error(path: &Path, e: rulespec::EditError) -> Error {
    Error::config(format!("{}: {e}", path.display())).hint("nothing was changed")
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

/// `text` with `rule` appended, and the rule as the loader reads it back from there
/// (`+` for a `*` wildcard, …): what is compared with the rules already there. An error
/// when the text with it does not load.
fn with_rule(text: &str, path: &Path, rule: &Rule) -> Result<(String, Rule)> {
    let new = rulespec::append_rule(text, rule).map_err(|e| edit_error(path, e))?;
    let config = load_edited(&new, path).map_err(|e| {
        let first = text.lines().count() + 1;
        e.hint(format!(
            "the lines from {first} on are the rule as it would be appended, shown as \
             `{}`; {} was not changed",
            Shown(rule),
            path.display()
        ))
    })?;
    let read_back = config.rules.last().cloned().unwrap_or_else(|| rule.clone());
    Ok((new, read_back))
}

/// The edited text as the loader reads it: the one validation an edit must pass before
/// it is written.
fn load_edited(text: &str, path: &Path) -> Result<Config> {
    Config::parse(text, path).map_err(|e| {
        e.context("with this change the configuration would not load")
            .hint(format!("{} was not changed", path.display()))
    })
}

/// The rule of `entries` that is `rule`, whatever its description.
fn find<'a>(entries: &'a [Entry], rule: &Rule) -> Option<&'a Entry> {
    entries.iter().find(|e| rulespec::same_rule(&e.rule, rule))
}

/// `allow|deny|reject|limit SPEC`.
pub fn add(global: &Global, action: Action, args: &RuleArgs) -> Result<()> {
    let mut rule = rulespec::parse(action, &args.spec, &services()).map_err(bad_spec)?;
    if let Some(comment) = &args.comment {
        if !rule.description.is_empty() {
            let e = SpecError {
                word: "comment".into(),
                message: "given twice: as --comment and as `comment`".into(),
            };
            return Err(bad_spec(e));
        }
        rule.description = comment.clone();
    }
    let (path, lock) = begin(global, action.as_str(), &args.apply)?;
    let current = read_text(&path)?;
    let old = current.as_deref().unwrap_or(DEFAULT_CONFIG);
    let entries = entries(&parse_current(old, &path)?);
    let (new, read_back) = with_rule(old, &path, &rule)?;
    if let Some(same) = find(&entries, &read_back) {
        let which = same
            .number
            .map_or("[ssh]".to_string(), |n| format!("rule {n}"));
        println!(
            "{} already has this rule ({which}: {}); nothing changed",
            path.display(),
            Shown(&same.rule)
        );
        return Ok(());
    }
    let number = entries.iter().filter(|e| e.table.0 == "rule").count() + 1;
    let edit = Edit {
        shown: old,
        file: FileEdit {
            path: path.clone(),
            before: current.clone(),
            after: new,
        },
    };
    let what = format!("added rule {number}: {}", Shown(&read_back));
    edit.finish(global, &lock, &what, &args.apply)
}

/// What every edit (`verb`: allow, …, delete) starts with: root when it is to be applied
/// (checked before anything else), the configuration file's path, and its lock.
fn begin(global: &Global, verb: &str, apply: &EditApply) -> Result<(PathBuf, EditLock)> {
    if apply.apply {
        crate::system::require_root(&format!("{verb} … --apply"))?;
    }
    let path = config_path(global);
    let lock = EditLock::acquire(&path, Duration::from_secs(global.wait))?;
    Ok((path, lock))
}

/// What `rules` ends with: how to read the list, and where the kernel's view is.
const LIST_FOOTER: &str = "\
The first rule that matches a new connection decides. This is the file: `iptables-docker
status` shows what the kernel enforces (it says DIFFERS until `reload` applies an edit),
and the published container ports, which [containers] governs, not these rules.";

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
        let mut line = format!("{number} {}", Shown(&entry.rule));
        match entry.table.0 {
            "ssh" => line.push_str("  [ssh]"),
            "allow" => line.push_str("  [[allow]]"),
            _ => {}
        }
        if !entry.rule.description.is_empty() {
            line.push_str(&format!("  # {}", entry.rule.description));
        }
        println!("{line}");
    }
    let outbound = config.outbound.as_str();
    println!("outbound policy: {outbound} (new connections that no `out` rule matches)");
    println!("{LIST_FOOTER}");
    Ok(())
}

/// The rule `delete` names: `N`, or a SPEC (read back through the loader, as `add` does).
fn named<'a>(entries: &'a [Entry], words: &[String], old: &str, path: &Path) -> Result<&'a Entry> {
    let listed = "`iptables-docker rules` lists them with their numbers; nothing was changed";
    if let [n] = words {
        if n.bytes().all(|b| b.is_ascii_digit()) {
            // Too large for a number: no rule has it (said with the digits as given).
            let number = n.parse::<usize>().ok();
            let found = entries
                .iter()
                .find(|e| e.number.is_some() && e.number == number);
            return found.ok_or_else(|| {
                Error::failed(format!("there is no rule {n} in {}", path.display())).hint(listed)
            });
        }
    }
    let rule = rulespec::parse_with_action(words, &services()).map_err(bad_spec)?;
    let (_, read_back) = with_rule(old, path, &rule)?;
    let numbered: Vec<&Entry> = entries.iter().filter(|e| e.number.is_some()).collect();
    let found = numbered
        .into_iter()
        .find(|e| rulespec::same_rule(&e.rule, &read_back));
    found.ok_or_else(|| {
        let spec = Shown(&read_back);
        if find(entries, &read_back).is_some() {
            return Error::failed(format!(
                "`{spec}` is the [ssh] table of {}, which delete does not remove",
                path.display()
            ))
            .hint(
                "edit [ssh] (port, allow_from) in the file, or put a deny rule for the \
                 sources to shut out before it; nothing was changed",
            );
        }
        Error::failed(format!("no rule of {} is `{spec}`", path.display())).hint(listed)
    })
}

/// `delete N|SPEC`.
pub fn delete(global: &Global, args: &DeleteArgs) -> Result<()> {
    let (path, lock) = begin(global, "delete", &args.apply)?;
    let Some(old) = read_text(&path)? else {
        return Err(Error::failed(format!(
            "there is no configuration file at {}, so no rule to delete",
            path.display()
        )));
    };
    let entries = entries(&parse_current(&old, &path)?);
    let entry = named(&entries, &args.rule, &old, &path)?;
    let (key, index) = entry.table;
    let new = rulespec::remove_table(&old, key, index).map_err(|e| edit_error(&path, e))?;
    load_edited(&new, &path)?;
    let what = format!(
        "deleted rule {}: {}",
        entry.number.unwrap_or(0),
        Shown(&entry.rule)
    );
    let edit = Edit {
        shown: &old,
        file: FileEdit {
            path: path.clone(),
            before: Some(old.clone()),
            after: new,
        },
    };
    edit.finish(global, &lock, &what, &args.apply)
}

/// An edit of the configuration file, not yet written.
struct Edit<'a> {
    /// The old side of the diff: the file's text, or the commented default when there is
    /// no file yet.
    shown: &'a str,
    file: FileEdit,
}

impl Edit<'_> {
    /// Shows (the diff; not with `--quiet`), writes and (with `--apply`) applies the
    /// edit, `lock` held. The new text has been validated ([`load_edited`]) by then.
    fn finish(
        &self,
        global: &Global,
        lock: &EditLock,
        what: &str,
        apply: &EditApply,
    ) -> Result<()> {
        let path = &self.file.path;
        let before = match self.file.before {
            Some(_) => path.display().to_string(),
            None => "the commented default configuration".to_string(),
        };
        if report::enabled(report::Level::Info) {
            let diff = TextDiff::from_lines(self.shown, &self.file.after);
            let after = path.display().to_string();
            print!("{}", diff.unified_diff().header(&before, &after));
        }
        let mode = std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & 0o7777);
        file::write_atomic(path, self.file.after.as_bytes(), mode)?;
        if self.file.before.is_none() {
            report::info(format!(
                "created {} from the commented default",
                path.display()
            ));
        }
        report::info(what);
        if !apply.apply {
            report::info("not applied: `iptables-docker reload` applies it (or use --apply)");
            return Ok(());
        }
        if apply.confirm.is_some() {
            lock.share_with_children()?;
        }
        let window = apply.confirm.map(|seconds| confirm::Window {
            seconds,
            edit: Some(&self.file),
        });
        apply::run(global, apply::Verb::Reload, apply.force, window).or_else(|e| self.put_back(e))
    }

    /// After a failed `--apply`: the file as it was (none, if it was created). Not after a
    /// change that was not confirmed: the rollback watchdog has put the file back then, as
    /// its outcome (in the error) says.
    fn put_back(&self, e: Error) -> Result<()> {
        let path = self.file.path.display();
        if e.kind() == Kind::NotConfirmed {
            return Err(e);
        }
        let done = if self.file.undo()? {
            format!("not applied, {path} is put back as it was")
        } else {
            format!("not applied; {path} was changed by another program meanwhile, so it is left as it is")
        };
        Err(e.context(done))
    }
}
