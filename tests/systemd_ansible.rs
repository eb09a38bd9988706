//! The Ansible role on a real systemd: ansible-core from PyPI (`pip install --target`,
//! for the container's CPython 3.11, cached in target/ansible-site) runs inside the booted
//! Debian bookworm of tests/systemd (python3 added to its rootfs), connection local, with
//! the .deb from packaging/deb.sh. tests/systemd/ansible.sh says what it checks: twice
//! (changed=0 the second time), a changed variable, the uninstall variable; then the same
//! with the binary install method.

mod common;

use std::process::Command;

use common::systemd::{build_deb, repo, require_systemd, run_systemd_script};

fn pip_works() -> bool {
    Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, cargo-deb and python3-pip (cargo test -- --include-ignored)"]
fn the_role_applied_twice_changes_nothing_the_second_time_and_uninstalls() {
    require_systemd("systemd_ansible", &["cargo-deb", "python3"]);
    assert!(
        pip_works(),
        "systemd_ansible cannot run: `python3 -m pip` does not work (bash .ci/run installs \
         python3-pip); nothing was proven"
    );
    let site = repo().join("target/ansible-site");
    if !site.join("ansible").is_dir() {
        let pip = Command::new("timeout")
            .args([
                "600", "python3", "-m", "pip", "install", "--quiet", "--target",
            ])
            .arg(&site)
            .args([
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--platform",
                "manylinux2014_x86_64",
                "--only-binary=:all:",
                "ansible-core>=2.16,<2.18",
            ])
            .output()
            .expect("run pip");
        assert!(
            pip.status.success(),
            "pip install ansible-core failed:\n{}",
            String::from_utf8_lossy(&pip.stderr)
        );
    }
    let deb = build_deb();
    let bin = assert_cmd::cargo::cargo_bin("iptables-docker");
    run_systemd_script(
        "ansible.sh",
        &[
            ("IPTD_DEB", deb.as_ref()),
            ("IPTD_BIN", bin.as_os_str()),
            ("IPTD_ANSIBLE_SITE", site.as_os_str()),
        ],
        &[
            "first run: no failure",
            "package installed",
            "service enabled and active",
            "config templated from iptables_allow_rules (desc/proto/port/from)",
            "the rules are in the kernel: 443/tcp",
            "ufw off",
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
