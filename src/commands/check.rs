//! `check`: the validation `start` makes, without the running ruleset and without
//! changing anything — for editors, CI and a sysadmin before `systemctl reload`. The
//! configuration's values, the files' ownership, the template rendered for every family
//! the configuration manages and, as root, `iptables-restore --test` of each policy.

use crate::cli::Global;
use crate::config::Config;
use crate::error::Result;
use crate::family::Family;
use crate::ownership::DockerFacts;
use crate::policy::{self, Template};
use crate::report;
use crate::system::iptables::{Backend, Iptables};
use crate::system::lock::ChildLock;

use super::{load_config, managed_families, test_policy};

pub fn run(global: &Global) -> Result<()> {
    let config = load_config(global)?;
    let backend = match crate::system::is_root() {
        true => super::select_backend(global, &config, true, None)?.backend,
        false => Backend::Legacy, // not run: iptables-restore --test needs root
    };
    let tested = render_and_test(&config, backend)?;
    let source = config
        .path
        .as_ref()
        .map_or("the built-in configuration".to_string(), |p| {
            p.display().to_string()
        });
    if tested.is_empty() {
        report::info(format_args!(
            "{source}: ok (not tested with iptables-restore --test: that needs root)"
        ));
    } else {
        let families: Vec<String> = tested.iter().map(ToString::to_string).collect();
        report::info(format_args!(
            "{source}: ok ({} policy accepted by iptables-{}-restore --test)",
            families.join(" and "),
            backend.name()
        ));
    }
    Ok(())
}

/// Renders the policy of every family `config` manages (with no Docker facts yet) and, as
/// root, tests each with `iptables-restore --test` of `backend`; returns the families
/// tested.
pub(super) fn render_and_test(config: &Config, backend: Backend) -> Result<Vec<Family>> {
    let root = crate::system::is_root();
    let template = Template::load(config)?;
    let child_lock = ChildLock::new()?;
    let mut tested = Vec::new();
    for family in managed_families(config) {
        let policy = policy::render(config, &template, family, &DockerFacts::default())?;
        if root {
            let ipt = Iptables::new(family, backend, &child_lock)?;
            test_policy(&ipt, &policy)?;
            tested.push(family);
        }
    }
    Ok(tested)
}
