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

#[derive(Debug, Args)]
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
    /// Print the man page (roff, section 8) to stdout. Changes nothing.
    Man,
    /// Print the completion script for SHELL to stdout. Changes nothing.
    Completions {
        /// The shell to complete for
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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
