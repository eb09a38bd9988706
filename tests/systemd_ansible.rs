//! The Ansible role on a real systemd: ansible-core from PyPI (`pip install --target`,
//! for the containers' CPython, cached in target/ansible-site-VERSION) with the .deb from
//! packaging/deb.sh, in Debian machines booted under systemd-nspawn (tests/systemd).
//! Each script's header says what it checks:
//! - tests/systemd/ansible.sh, on Debian 12 and on 13: connection local inside one
//!   machine; the role installs (service active, policy loaded, ufw off), a reboot keeps
//!   the policy, a second run changes nothing, a changed variable reloads, the uninstall
//!   variable puts the host back; then the binary method.
//! - tests/systemd/fleet.sh (Debian 12): rolling mode over SSH, three hosts and a
//!   controller on a private bridge: one host at a time, changed=0 again, check mode, a
//!   policy that locks the controller out (refused; forced: rolled back, the play stops at
//!   the first host).
//!
//! The three run concurrently (their machines are separate), which keeps CI time down.

mod common;

use std::ffi::OsStr;

use common::systemd::{ansible_site, build_deb, require_systemd, run_systemd_script};

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, cargo-deb and python3-pip (cargo test -- --include-ignored)"]
fn the_role_installs_survives_a_reboot_changes_nothing_again_and_uninstalls_on_debian_12() {
    role_story("bookworm", "3.11");
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, cargo-deb and python3-pip (cargo test -- --include-ignored)"]
fn the_role_installs_survives_a_reboot_changes_nothing_again_and_uninstalls_on_debian_13() {
    role_story("trixie", "3.13");
}

/// tests/systemd/ansible.sh on `suite`, whose CPython is `python` (ansible-core is
/// installed for it).
fn role_story(suite: &str, python: &str) {
    let name = format!("systemd_ansible ({suite})");
    require_systemd(&name, &["cargo-deb", "python3"]);
    let site = ansible_site(&name, python);
    let deb = build_deb();
    let bin = assert_cmd::cargo::cargo_bin("iptables-docker");
    run_systemd_script(
        "ansible.sh",
        &[
            ("IPTD_DEB", deb.as_ref()),
            ("IPTD_BIN", bin.as_os_str()),
            ("IPTD_ANSIBLE_SITE", site.as_os_str()),
            ("IPTD_SUITE", OsStr::new(suite)),
        ],
        &[
            "first run: no failure",
            "package installed",
            "service enabled and active",
            "config templated from iptables_allow_rules (desc/proto/port/from)",
            "the rules are in the kernel: 443/tcp",
            "ufw off",
            "after reboot: service active",
            "after reboot: the policy is in the kernel",
            "after reboot: ufw still off",
            "second run: changed=0",
            "  handler ran",
            "  the new rule is in the kernel",
            "uninstall run: no failure",
            "purged: ufw, alternatives, Docker's rules in nft, files as before the role",
            "uninstall again: changed=0",
            "binary: first run no failure",
            "binary: rules in the kernel",
            "binary: second run changed=0",
            "binary: purged: as before the role",
            "binary: uninstall again changed=0",
        ],
    );
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, cargo-deb and python3-pip (cargo test -- --include-ignored)"]
fn a_policy_rolls_over_three_hosts_one_at_a_time_and_stops_at_a_host_that_stops_answering() {
    // unshare and ip: the bridge, in a network namespace of the script's own.
    require_systemd(
        "systemd_ansible fleet",
        &["cargo-deb", "python3", "unshare", "ip"],
    );
    let site = ansible_site("systemd_ansible fleet", "3.11");
    let deb = build_deb();
    run_systemd_script(
        "fleet.sh",
        &[
            ("IPTD_DEB", deb.as_ref()),
            ("IPTD_ANSIBLE_SITE", site.as_os_str()),
        ],
        &[
            "the controller reaches h1 over SSH",
            "good policy: the play succeeds",
            "  h1 changed, nothing failed",
            "  h3: the policy is in the kernel",
            "  h3: the running ruleset is the policy",
            "  h3: nothing waits for a confirmation",
            "  one at a time: h1 confirmed before h2 applies",
            "  one at a time: h2 confirmed before h3 applies",
            "  after a new SSH connection",
            "  and the health check",
            "second run: h1 changed=0",
            "second run: h2 changed=0",
            "second run: h3 changed=0",
            "  h1: its plan --diff reported",
            "  h3: its plan --diff reported",
            "  h3: ruleset, config and state exactly as before",
            "refused: the play fails",
            "  refusing to apply",
            "forced: the play fails",
            "  why: no new SSH connection",
            "  and what h1 did: rolled back",
            "  and put its config back",
            "  h1: ruleset and config as before",
            "  the play stopped before h2",
            "  the play stopped before h3",
            "  h2: exactly as before",
            "  h3: exactly as before",
            "  h1 answers a new SSH connection",
            "  h2 answers a new SSH connection",
            "  h3 answers a new SSH connection",
            "after the rollback: h1 changed=0",
        ],
    );
}
