//! The man page and the shell completions, generated from the clap definitions: the man
//! page renders with `man -l` (written to target/tmp/iptables-docker.8, so that
//! `man ./target/tmp/iptables-docker.8` shows it after `cargo test`), and the bash
//! completion loads. Nothing here touches the host.

use std::path::PathBuf;
use std::process::Command;

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("iptables-docker")
}

fn generate(args: &[&str]) -> String {
    let out = Command::new(bin())
        .args(args)
        .output()
        .expect("run iptables-docker");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
#[ignore = "needs man-db's `man` (cargo test -- --include-ignored)"]
fn the_man_page_renders_and_says_what_each_command_changes() {
    let page = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("iptables-docker.8");
    std::fs::write(&page, generate(&["man"])).unwrap();
    assert!(
        which::which("man").is_ok(),
        "`man` is not installed (bash .ci/run installs man-db); nothing was proven"
    );
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "1000")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .output()
        .expect("run man");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "man -l failed: {err}");
    // Justified text: runs of spaces.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(err.trim().is_empty(), "man -l warned: {err}\n{text}");
    for needle in [
        "iptables-docker(8)",
        "SYNOPSIS",
        "COMMANDS",
        "iptables-docker start [OPTIONS]",
        "removes every other rule",
        "iptables-docker install [OPTIONS]",
        "stop and disable ufw/firewalld",
        "iptables-docker uninstall [OPTIONS]",
        "--purge",
        "Changes nothing",
        "EXIT STATUS",
        "RULES Rule SPEC",
        "iptables-docker allow from 203.0.113.0/24 to any port 22 proto tcp",
        "iptables-docker delete [OPTIONS] <N|SPEC>",
        "/etc/iptables-docker/config.toml",
        "CONFIGURATION",
        "keep_chains = [\"f2b-*\"]",
        "The commented default (templates/config.toml)",
        "action = \"limit\"",
        "port = [80, 443, \"8000-8100\"]",
        "interface = \"wg0\"",
        "direction = \"out\"",
        "policy = \"reject\"",
        "SEE ALSO",
        "uninstall.md",
        "iptables-docker snapshots",
        "iptables-docker rollback [OPTIONS] [SNAPSHOT]",
        "default when given without a value: 30",
    ] {
        assert!(
            text.contains(needle),
            "no `{needle}` in the man page:\n{text}"
        );
    }
    assert!(
        !text.contains("confirm-watchdog"),
        "hidden command shown:\n{text}"
    );
}

#[test]
fn the_bash_completion_loads_and_completes_subcommands() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("iptables-docker");
    std::fs::write(&script, generate(&["completions", "bash"])).unwrap();
    let out = Command::new("bash")
        .arg("--norc")
        .arg("-c")
        .arg(
            r#"set -e
source "$1"
complete -p iptables-docker
COMP_WORDS=(iptables-docker un); COMP_CWORD=1; COMP_LINE="iptables-docker un"; COMP_POINT=${#COMP_LINE}
_iptables__docker iptables-docker un iptables-docker
printf 'reply: %s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(&script)
        .output()
        .expect("run bash");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("-F _iptables__docker iptables-docker"),
        "{text}"
    );
    assert!(text.contains("reply: uninstall"), "{text}");
}

#[test]
fn completions_for_the_other_shells_are_generated() {
    for (shell, needle) in [
        ("zsh", "#compdef iptables-docker"),
        ("fish", "complete -c iptables-docker"),
    ] {
        let text = generate(&["completions", shell]);
        assert!(text.contains(needle), "{shell}:\n{text}");
        assert!(text.contains("uninstall"), "{shell}:\n{text}");
    }
}

/// README's exit-code table, `--help` and the man page list the same codes with the same
/// meanings, and the codes systemd names keep their LSB meanings.
#[test]
fn the_exit_codes_are_the_same_in_help_readme_and_man_page() {
    let help = generate(&["--help"]);
    let from_help: Vec<(String, String)> = help
        .lines()
        .skip_while(|l| !l.starts_with("Exit codes"))
        .skip(1)
        .filter_map(|l| {
            let (code, meaning) = l.trim().split_once("  ")?;
            Some((code.to_string(), meaning.trim().to_string()))
        })
        .collect();
    assert!(from_help.len() >= 10, "{help}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let man = generate(&["man"]);
    for (code, meaning) in &from_help {
        let row = format!("| {code} | {meaning} |");
        assert!(readme.contains(&row), "README.md lacks `{row}`");
        assert!(
            man.contains(&format!(".TP\n{code}\n")),
            "man page lacks {code}"
        );
    }
    for (code, lsb) in [
        ("4", "insufficient privilege"),
        ("5", "not installed"),
        ("6", "not configured"),
    ] {
        assert!(
            from_help.iter().any(|(c, m)| c == code && m.contains(lsb)),
            "{code} is not `{lsb}`: {help}"
        );
    }
}

/// The configuration examples README.md (and through it the man page) shows, and the
/// commented default, are configurations that load and render for both families.
#[test]
fn the_documented_configurations_load() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let blocks: Vec<&str> = readme
        .split("```toml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 2, "README lost its examples");
    let default = include_str!("../templates/config.toml");
    for text in blocks.into_iter().chain([default]) {
        let config =
            iptables_docker::config::Config::parse(text, std::path::Path::new("example.toml"))
                .unwrap_or_else(|e| {
                    panic!("a documented configuration does not load: {e}\n{text}")
                });
        for family in iptables_docker::family::Family::ALL {
            let template = iptables_docker::policy::Template::builtin();
            let facts = iptables_docker::ownership::DockerFacts::default();
            if let Err(e) = iptables_docker::policy::render(&config, &template, family, &facts) {
                panic!("a documented configuration does not render for {family}: {e}\n{text}");
            }
        }
    }
}
