//! Real packets: the shell scenarios under tests/packets and tests/docker build hosts from
//! namespaces, veth and a docker0 bridge (and, for the second, a real dockerd), and count
//! PASS/FAIL over real TCP/UDP connections. Each runs in private namespaces and checks,
//! afterwards, that the machine's own network state is unchanged (exit 99 otherwise).

mod common;

use std::process::Command;

fn run_scenario(script: &str, closing: &str, needs: &[&str]) {
    if !common::netns_ready(script) {
        return;
    }
    for tool in needs {
        if which::which(tool).is_err() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{script}: CI must run it, but `{tool}` is missing (bash .ci/run installs it)"
            );
            eprintln!(
                "\n!!!!! SKIPPED {script}: `{tool}` is not installed. Nothing was proven. !!!!!\n"
            );
            return;
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(script);
    let out = Command::new("timeout")
        .args(["--kill-after=20", "600", "bash"])
        .arg(&path)
        .env("BIN", common::bin())
        .env_remove("SSH_CONNECTION")
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary = stdout
        .lines()
        .find(|l| l.starts_with(closing))
        .unwrap_or_else(|| panic!("{script}: no summary line\n{stdout}\n{stderr}"));
    println!("{summary}");
    assert!(
        out.status.success() && summary.ends_with(" 0 failed"),
        "{script} ({}):\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

#[test]
fn published_ports_host_services_and_egress_with_real_packets() {
    run_scenario(
        "tests/packets/published-ports.sh",
        "packets:",
        &["curl", "python3", "busybox"],
    );
}

#[test]
fn a_real_dockerd_stays_filtered_across_restarts_and_is_restored_by_stop() {
    run_scenario(
        "tests/docker/firewall.sh",
        "dockerd:",
        &[
            "dockerd",
            "containerd",
            "docker",
            "curl",
            "python3",
            "busybox",
        ],
    );
}

#[test]
fn every_entry_of_status_json_is_what_real_connections_find() {
    run_scenario(
        "tests/packets/status-exposure.sh",
        "status:",
        &["curl", "python3", "busybox"],
    );
}
