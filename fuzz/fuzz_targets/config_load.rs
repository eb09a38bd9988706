//! The TOML configuration loader.
//!
//! For any text: loading never panics, and a refusal names `file:line:col` inside the
//! file. For a configuration that loads: loading it again gives the same configuration,
//! and it renders (built-in template, both families) into a valid policy.
#![no_main]

use std::path::Path;

use iptables_docker::config::Config;
use iptables_docker::family::Family;
use iptables_docker::ownership::DockerFacts;
use iptables_docker::policy;
use libfuzzer_sys::fuzz_target;

const FILE: &str = "/etc/iptables-docker/fuzz.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(FILE);
    match Config::parse(text, path) {
        Err(e) => check_located(text, &e.to_string()),
        Ok(config) => {
            let again = Config::parse(text, path).expect("a config that loaded loads again");
            assert_eq!(again, config);
            let mut config = config;
            config.template = None; // never read a file named by the input
            for family in Family::ALL {
                if let Err(e) = policy::render(
                    &config,
                    &policy::Template::builtin(),
                    family,
                    &DockerFacts::default(),
                ) {
                    panic!("a config that loads does not render for {family}: {e}");
                }
            }
        }
    }
});

/// The first problem starts with `FILE:line:col: `, and line and col lie inside the text.
fn check_located(text: &str, message: &str) {
    let rest = message
        .strip_prefix(FILE)
        .and_then(|r| r.strip_prefix(':'))
        .unwrap_or_else(|| panic!("not located: {message}"));
    let mut parts = rest.splitn(3, ':');
    let line: usize = parts.next().and_then(|l| l.parse().ok()).expect("a line");
    let col: usize = parts.next().and_then(|c| c.parse().ok()).expect("a column");
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        (1..=lines.len()).contains(&line),
        "line {line} of {}: {message}",
        lines.len()
    );
    assert!(
        (1..=lines[line - 1].len() + 1).contains(&col),
        "column {col} past the end of line {line}: {message}"
    );
}
