//! `man` and `completions`: the man page and the shell completion scripts, generated from
//! the clap definitions (clap_mangen, clap_complete), so they never disagree with `--help`.
//! `install` writes them too ([`man_page`], [`completions`]); so does the Debian package.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::error::{Error, Result, EXIT_CODES};

/// The man page, section 8: the top-level help, then one section per command with what it
/// changes on the host and its options.
pub fn man_page() -> Vec<u8> {
    let cmd = Cli::command();
    let man = clap_mangen::Man::new(cmd.clone()).section("8");
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    man.render_title(&mut out).expect("render to memory");
    man.render_name_section(&mut out).expect("render to memory");
    man.render_synopsis_section(&mut out)
        .expect("render to memory");
    man.render_description_section(&mut out)
        .expect("render to memory");
    man.render_options_section(&mut out)
        .expect("render to memory");
    out.extend_from_slice(commands_section(&cmd).as_bytes());
    out.extend_from_slice(
        format!(
            ".SH RULES\n.nf\n{}\n.fi\n",
            roff_escape(crate::cli::RULE_SPEC_HELP)
        )
        .as_bytes(),
    );
    out.extend_from_slice(
        b".SH \"EXIT STATUS\"\nLSB meanings where the LSB has one (systemd names them, e.g. \
          status=6/NOTCONFIGURED); the LSB leaves 150\\(en199 to applications.\n",
    );
    for (code, meaning) in EXIT_CODES {
        out.extend_from_slice(format!(".TP\n{code}\n{}\n", roff_escape(meaning)).as_bytes());
    }
    out.extend_from_slice(configuration_section().as_bytes());
    out.extend_from_slice(
        b".SH FILES\n.TP\n/etc/iptables-docker/config.toml\nthe configuration\n\
          .TP\n/etc/iptables-docker/policy.rules.j2\nthe policy template\n\
          .TP\n/var/lib/iptables-docker/\nsnapshots, apply records, the install record\n",
    );
    out.extend_from_slice(
        b".SH \"SEE ALSO\"\nREADME.md (how it works, status --json, the policy template) and \
          uninstall.md (taking it off by hand), in /usr/share/doc/iptables-docker with the \
          Debian package, else in the source tree; iptables(8), iptables\\-save(8), \
          systemctl(1)\n",
    );
    man.render_version_section(&mut out)
        .expect("render to memory");
    out
}

/// The man page's COMMANDS section (roff): each visible subcommand of `cmd` with its usage,
/// its long help and its own options.
fn commands_section(cmd: &clap::Command) -> String {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let mut sub = sub
            .clone()
            .bin_name(format!("iptables-docker {}", sub.get_name()));
        sub.build();
        let usage = sub.render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ");
        out.push_str(&format!(".TP\n\\fB{}\\fR\n", roff_escape(usage)));
        let about = sub
            .get_long_about()
            .or(sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        out.push_str(&format!("{}\n", roff_escape(&about)));
        for arg in sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !a.is_hide_set() && a.get_id() != "help")
        {
            let values = arg
                .get_value_names()
                .filter(|_| arg.get_action().takes_values());
            let name = match (arg.get_long(), values) {
                (Some(long), Some(v)) => format!("--{long} {}", v[0]),
                (Some(long), None) => format!("--{long}"),
                (None, Some(v)) => v[0].to_string(),
                (None, None) => arg.get_id().to_string().to_uppercase(),
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            out.push_str(&format!(
                ".RS\n.TP\n\\fI{}\\fR\n{}\n.RE\n",
                roff_escape(&name),
                roff_escape(&help)
            ));
        }
    }
    out
}

/// The CONFIGURATION section: what the file is, the examples README.md shows (its ```toml
/// blocks, so the two never disagree), then the commented default, templates/config.toml,
/// which install puts in place.
fn configuration_section() -> String {
    const README: &str = include_str!("../../README.md");
    const DEFAULT: &str = include_str!("../../templates/config.toml");
    let literal = |text: &str| format!(".PP\n.nf\n{}\n.fi\n", roff_escape(text.trim_end()));
    let mut out = String::from(
        ".SH CONFIGURATION\n/etc/iptables\\-docker/config.toml (or \\-\\-config PATH), TOML. \
         Without it the built\\-in default applies: INPUT DROP; lo, established and related \
         traffic, ssh (tcp/22) from anywhere, ping and the ICMPv6 IPv6 needs, and everything \
         from Docker bridges accepted; OUTPUT ACCEPT; FORWARD left to Docker. Every problem \
         in the file is reported with file:line:col and nothing is applied (exit 6). The \
         file, the template and their directories must be root's and writable by root alone. \
         After editing: iptables\\-docker plan \\-\\-diff to see the change, then \
         iptables\\-docker reload (over SSH: reload \\-\\-confirm) or systemctl reload \
         iptables\\-docker. Host rules can also be edited from the command line, without an \
         editor: allow, deny, reject, limit, rules, delete (see RULES).\n.SS Examples\n",
    );
    for block in README.split("```toml\n").skip(1) {
        out += &literal(block.split("```").next().unwrap_or(""));
    }
    out += ".SS \"The commented default (templates/config.toml)\"\n";
    out += &literal(DEFAULT);
    out
}

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would be a request.
fn roff_escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .lines()
        .map(|l| {
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "iptables-docker", &mut out);
    out
}

fn print(bytes: &[u8]) -> Result<()> {
    std::io::stdout()
        .write_all(bytes)
        .map_err(|e| Error::failed(format!("cannot write to stdout: {e}")))
}

pub fn print_man() -> Result<()> {
    print(&man_page())
}

pub fn print_completions(shell: Shell) -> Result<()> {
    print(&completions(shell))
}
