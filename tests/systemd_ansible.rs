//! The Ansible role on a real systemd: ansible-core from PyPI (`pip install --target`,
//! for the container's CPython 3.11, cached in target/ansible-site) runs inside the booted
//! Debian bookworm of tests/systemd (python3 added to its rootfs), connection local, with
//! the .deb from packaging/deb.sh. tests/systemd/ansible.sh says what it checks: twice
//! (changed=0 the second time), a changed variable, the uninstall variable; then the same
//! with the binary install method.

use std::path::PathBuf;
use std::process::Command;

fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (systemd-nspawn needs it)".into());
    }
    for tool in [
        "systemd-nspawn",
        "debootstrap",
        "nsenter",
        "flock",
        "timeout",
        "cargo-deb",
        "python3",
    ] {
        if which::which(tool).is_err() {
            return Some(format!(
                "`{tool}` is not installed (bash .ci/run installs it)"
            ));
        }
    }
    let pip = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output();
    if !pip.is_ok_and(|o| o.status.success()) {
        return Some("`python3 -m pip` does not work".into());
    }
    None
}

/// In CI (CI set) a missing prerequisite fails; elsewhere the test is skipped loudly.
fn ready() -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) if std::env::var_os("CI").is_some() => {
            panic!("systemd_ansible: CI must run the Ansible role test, but {reason}")
        }
        Some(reason) => {
            eprintln!("\n!!!!! SKIPPED systemd_ansible: {reason}. Nothing was proven. !!!!!\n");
            false
        }
    }
}

#[test]
fn the_role_applied_twice_changes_nothing_the_second_time_and_uninstalls() {
    if !ready() {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let site = root.join("target/ansible-site");
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
    let build = Command::new("timeout")
        .args(["600", "bash"])
        .arg(root.join("packaging/deb.sh"))
        .env("CARGO_TARGET_DIR", root.join("target/deb-build"))
        .output()
        .expect("run packaging/deb.sh");
    assert!(
        build.status.success(),
        "packaging/deb.sh failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = String::from_utf8_lossy(&build.stdout).trim().to_string();

    let out = Command::new("timeout")
        .args(["--kill-after=60", "900", "bash"])
        .arg(root.join("tests/systemd/ansible.sh"))
        .env("IPTD_DEB", &deb)
        .env("IPTD_BIN", assert_cmd::cargo::cargo_bin("iptables-docker"))
        .env("IPTD_ANSIBLE_SITE", &site)
        .env_remove("SSH_CONNECTION")
        .env_remove("XTABLES_LOCKFILE")
        .output()
        .expect("run tests/systemd/ansible.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = format!(
        "--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && stdout.contains("# all passed"),
        "tests/systemd/ansible.sh failed ({}):\n{report}",
        out.status
    );
    assert!(!stdout.contains("FAIL"), "{report}");
    for check in [
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
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok   - ") && l[7..].starts_with(check)),
            "no passing check `{check}`:\n{report}"
        );
    }
}
