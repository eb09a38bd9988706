//! The command line (clap). Each subcommand's help says what it changes on the host.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::backend::Choice;
use crate::system::state;

#[derive(Debug, Parser)]
#[command(
    name = "iptables-docker",
    version,
    about = "A host firewall for Docker hosts: keeps every Docker rule, replaces everything else \
             with your policy, in one atomic iptables-restore per address family.",
    after_help = exit_codes_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// The exit codes, one per line, for `--help` and the man page's EXIT STATUS.
pub fn exit_codes_help() -> String {
    let mut text =
        String::from("Exit codes (LSB meanings where the LSB has one; systemd names them):");
    for (code, meaning) in crate::error::EXIT_CODES {
        text.push_str(&format!("\n  {code:>3}  {meaning}"));
    }
    text
}

/// The rule SPEC of `allow|deny|reject|limit|delete`, with examples: their `--help` and
/// the man page's RULES section.
pub const RULE_SPEC_HELP: &str = "\
Rule SPEC (ufw's grammar where it fits). One SPEC is one [[rule]] table of the
configuration, added after the [[rule]] tables already there (before [ssh] and the
[[allow]] tables). The rules judge new connections to and from this host (INPUT,
OUTPUT) in that order, and the first that matches decides: a `deny` added after an
`allow` of the same traffic does not block it (delete the allow first). Published
container ports are not host rules: [containers] in the configuration governs them.
  PORTS[/tcp|/udp]          443/tcp, 80,443/tcp, 8000:8100/udp (or 8000-8100),
                            53 (tcp and udp), ssh (a name from /etc/services)
  from ADDR|any             sources: an address, a network, or a comma-separated list
                            (IPv4 or IPv6: the rule is then for that family only)
  to ADDR|any [port PORTS]  destinations, and the destination ports
  proto tcp|udp|any         default: tcp and udp with ports, every protocol without
  in|out [on IFACE]         after the action: incoming (INPUT, the default) or
                            outgoing (OUTPUT), and the interface the packet comes in
                            or goes out on (a trailing * is a wildcard: wg*)
  log                       after the action: log the new connections it matches
  comment TEXT              its description (or --comment TEXT)
A source port (from ADDR port P) is not supported. An identical rule that is already
there is not added again. The file keeps its comments and layout; the change is shown
as a diff. Unlike ufw, nothing changes in the kernel until `iptables-docker reload`,
or --apply here (needs root); over SSH add --confirm: unless you type `yes` in time,
both the ruleset and the file are put back, even if the session is gone.

Examples:
  iptables-docker allow 443/tcp --comment web
  iptables-docker allow from 203.0.113.0/24 to any port 22 proto tcp
  iptables-docker limit 22/tcp
  iptables-docker deny from 192.0.2.7
  iptables-docker reject out to any port 25 proto tcp
  iptables-docker allow in on wg0 53
  iptables-docker rules
  iptables-docker delete 2
  iptables-docker delete allow 443/tcp --apply --confirm";

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Configuration file [default: /etc/iptables-docker/config.toml; built-in policy if absent]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Where snapshots and apply records are kept
    #[arg(long, global = true, value_name = "DIR", env = "IPTABLES_DOCKER_STATE_DIR",
          default_value = state::DEFAULT_DIR)]
    pub state_dir: PathBuf,
    /// The iptables implementation to drive [default: the config's `backend`, else auto:
    /// legacy where the host provides it and Docker's rules are not in iptables-nft]
    #[arg(long, global = true, value_enum)]
    pub backend: Option<Choice>,
    /// Seconds to wait for the xtables lock
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 30)]
    pub wait: u64,
    /// Print nothing but errors (no line per action)
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print, per table, how many rules were kept, removed and loaded
    #[arg(long, short, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the host policy: keeps Docker's rules, removes every other rule (ufw, fail2ban,
    /// old scripts), loads the policy. Changes only the tables that differ; snapshots first.
    Start(ApplyArgs),
    /// Open the host (INPUT/OUTPUT accept), remove the policy and every non-Docker rule;
    /// Docker's rules and the FORWARD policy stay as they are.
    Stop,
    /// Same as start (re-reads the configuration).
    Reload(ApplyArgs),
    /// Keep the ruleset applied by `start --confirm` / `reload --confirm`: cancels its
    /// rollback; changes no rule.
    Confirm,
    /// Internal: waits for the confirmation of a `--confirm` apply and rolls it back
    /// without one. Started by start/reload, detached from the terminal.
    #[command(hide = true)]
    ConfirmWatchdog { token: String, deadline_ms: u128 },
    /// Say whether the firewall is on, and who can reach what: per family the host
    /// services, ping, trusted interfaces and published container ports with the sources
    /// allowed, read from the rules the kernel holds; backend, unit, config, last apply,
    /// newest snapshot, drift. Changes nothing. Exit 0 on, 3 off (host open), 154 drift,
    /// 155 split across backends.
    Status(StatusArgs),
    /// Validate the configuration and template as start would (values, file ownership,
    /// rendering; `iptables-restore --test` when run as root), for editors and CI. Changes
    /// nothing.
    Check,
    /// List the snapshots of the rulesets found before each apply (and rollback), named by
    /// the UTC time they were taken, oldest first. Changes nothing.
    Snapshots,
    /// Put a snapshot back (the newest without SNAPSHOT), merged with Docker's rules as they
    /// are now: containers started since keep theirs. Snapshots what runs first. `status`
    /// reports drift from the policy until the next start/reload.
    Rollback(RollbackArgs),
    /// Print what start would load (or stop, with --stop), or the difference to what runs.
    /// Changes nothing; with --input files it needs no root.
    Plan(PlanArgs),
    /// Set the host up: switch iptables to legacy, stop and disable ufw/firewalld, install
    /// the binary, unit, config, man page and bash completion, enable and start the
    /// service. Records what it changed.
    Install(InstallArgs),
    /// Undo install: stop and disable the service, remove unit, binary, man page and
    /// completion, put back what install recorded (alternatives, ufw/firewalld). Keeps the
    /// config unless --purge.
    Uninstall(UninstallArgs),
    /// Add a rule that accepts new connections (a `[[rule]]` of the configuration, after
    /// the rules already there): e.g. `allow 443/tcp`, `allow from 203.0.113.0/24 to any
    /// port 22 proto tcp`. Shows the change to the file; applies it only with --apply.
    #[command(after_help = RULE_SPEC_HELP)]
    Allow(RuleArgs),
    /// Add a rule that drops new connections (see `allow`): e.g. `deny from 192.0.2.7`.
    #[command(after_help = RULE_SPEC_HELP)]
    Deny(RuleArgs),
    /// Add a rule that refuses new connections with a TCP reset or an ICMP port-unreachable
    /// (see `allow`): e.g. `reject out to any port 25 proto tcp`.
    #[command(after_help = RULE_SPEC_HELP)]
    Reject(RuleArgs),
    /// Add a rule that accepts new connections but drops a source that opens 6 or more
    /// within 30 s, as ufw's limit (see `allow`): e.g. `limit 22/tcp`.
    #[command(after_help = RULE_SPEC_HELP)]
    Limit(RuleArgs),
    /// List the configuration's host rules, numbered, in evaluation order: the `[[rule]]`
    /// tables, `[ssh]` (not numbered), the `[[allow]]` tables. Changes nothing.
    Rules,
    /// Remove a rule from the configuration, by its number in `rules` or by its SPEC (e.g.
    /// `delete 3`, `delete allow 443/tcp`). Shows the change; applies it only with --apply.
    #[command(after_help = RULE_SPEC_HELP)]
    Delete(DeleteArgs),
    /// Print the man page (roff, section 8) to stdout. Changes nothing.
    Man,
    /// Print the completion script for SHELL to stdout. Changes nothing.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Applying an edit of the configuration: `--apply` reloads as `reload` does.
#[derive(Debug, Args)]
pub struct EditApply {
    /// Apply the edited configuration as `reload` does (lock, lockout guard, snapshot);
    /// if that fails or is not confirmed, the file is put back as it was
    #[arg(long)]
    pub apply: bool,
    /// With --apply: keep the new ruleset (and file) only if confirmed within SECONDS
    /// [default when given without a value: 30], as `reload --confirm`
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "30",
          requires = "apply")]
    pub confirm: Option<u64>,
    /// With --apply: apply even if the policy would not accept the SSH connection this
    /// runs over
    #[arg(long, requires = "apply")]
    pub force: bool,
}

/// `allow|deny|reject|limit SPEC… [--comment TEXT]` and how to apply the edit.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The rule, as ufw writes it: `443/tcp`, `80,443/tcp`, `8000:8100/udp`, `53` (tcp and
    /// udp), `ssh` (/etc/services); `[in|out [on IFACE]] [log] [proto tcp|udp|any] [from
    /// ADDR|any] [to ADDR|any [port PORTS]]`; ADDR may be a comma-separated list
    #[arg(required = true, value_name = "SPEC")]
    pub spec: Vec<String>,
    /// The rule's description (`description = "TEXT"`; ufw's `comment TEXT` works too)
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    #[command(flatten)]
    pub apply: EditApply,
}

/// `delete N|SPEC…` and how to apply the edit.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The rule's number in `iptables-docker rules`, or its SPEC with the action first
    /// (`allow 443/tcp`)
    #[arg(required = true, value_name = "N|SPEC")]
    pub rule: Vec<String>,
    #[command(flatten)]
    pub apply: EditApply,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Install even if the policy would not accept the SSH connection this runs over
    #[arg(long)]
    pub force: bool,
    /// Leave the files to the package manager (the Debian package's postinst): set the
    /// host up, reload systemd, enable and (re)start the packaged unit
    #[arg(long)]
    pub packaged: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Also remove the configuration and the state directory
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply even if the policy would not accept the SSH connection this runs over
    #[arg(long)]
    pub force: bool,
    /// Keep the new ruleset only if confirmed within SECONDS [default when given without a
    /// value: 30] (type `yes`, or run `iptables-docker confirm` from another session);
    /// otherwise put the previous one back, even if this terminal is gone
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "30")]
    pub confirm: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The snapshot: its name as `iptables-docker snapshots` lists it, or a unique prefix
    /// [default: the newest]
    pub snapshot: Option<String>,
    /// Keep the result only if confirmed within SECONDS [default when given without a value:
    /// 30] (type `yes`, or run `iptables-docker confirm`); otherwise put back what ran before
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "30")]
    pub confirm: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the report as JSON (schema version 1, described in README.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan against this iptables-save file (IPv4) instead of the running ruleset
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Plan against this ip6tables-save file (IPv6)
    #[arg(long, value_name = "FILE")]
    pub input6: Option<PathBuf>,
    /// Show the difference to the current ruleset instead of the whole result
    #[arg(long)]
    pub diff: bool,
    /// Say, for every rule, whether it is kept and why, or removed
    #[arg(long)]
    pub explain: bool,
    /// Plan `stop` instead of `start`
    #[arg(long)]
    pub stop: bool,
}
