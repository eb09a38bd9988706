#!/usr/bin/env python3
"""Generates a Docker-shaped iptables-restore ruleset with N published ports.

Two shapes, for one container (172.17.0.2 on docker0) publishing a port range P:P
(`docker run -p 10000-29999:10000-29999`):

--shape 28 (default): the heaviest per-port footprint Docker 28.x writes on the legacy
backend (userland-proxy=false):

  raw    -A PREROUTING -d 172.17.0.2/32 ! -i docker0 -p tcp -m tcp --dport P -j DROP
  nat    -A DOCKER ! -i docker0 -p tcp -m tcp --dport P -j DNAT --to-destination 172.17.0.2:P
  nat    -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport P -j MASQUERADE
  filter -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport P -j ACCEPT

(per-port raw guards as Docker 28.0/28.1 wrote them; nat/filter chains as 28.2 writes them,
see shared/fixtures/docker/moby-v28.*-portmap*.rules), i.e. 4 rules per port, plus Docker's
fixed chains and jumps, plus some ufw-like rules in filter INPUT that `start` must remove.

--shape 20.10: what Docker 20.10 (Debian bookworm's docker.io) writes, 3 rules per port and
no raw table rules, in its chain layout (FORWARD jumps straight to DOCKER-USER,
DOCKER-ISOLATION-STAGE-1 and DOCKER, with RETURN rules; nat DOCKER starts with
`-i docker0 -j RETURN`; see shared/fixtures/docker/moby-v27era-*.rules, the same layout);
raw (and IPv6 nat) are there but empty, so that loading this shape replaces every table
the other shape loaded:

  nat    -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport P -j MASQUERADE
  nat    -A DOCKER ! -i docker0 -p tcp -m tcp --dport P -j DNAT --to-destination 172.17.0.2:P
  filter -A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport P -j ACCEPT
Every line is spelled the way iptables-legacy-save prints it, so that a save of the loaded
ruleset gives back this text (counters aside).

Usage: gen.py --ports N [--family v4|v6] [--shape 28|20.10] [--base 10000]
"""

import argparse
import sys

UFW_CHAINS = [
    "ufw-after-input", "ufw-after-logging-input", "ufw-before-input",
    "ufw-reject-input", "ufw-track-input", "ufw-user-input", "ufw-user-limit",
    "ufw-user-limit-accept",
]


def ufw_rules(v6):
    """Rules a ufw-managed host carries in INPUT; start removes all of them."""
    icmp = ["-p ipv6-icmp -m icmp6 --icmpv6-type 128 -j ACCEPT"] if v6 else [
        "-p icmp -m icmp --icmp-type 8 -j ACCEPT"]
    rules = [
        ("INPUT", "-j ufw-before-input"),
        ("INPUT", "-j ufw-after-input"),
        ("INPUT", "-j ufw-after-logging-input"),
        ("INPUT", "-j ufw-reject-input"),
        ("INPUT", "-j ufw-track-input"),
        ("ufw-before-input", "-i lo -j ACCEPT"),
        ("ufw-before-input", "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("ufw-before-input", "-m conntrack --ctstate INVALID -j DROP"),
    ] + [("ufw-before-input", r) for r in icmp] + [
        ("ufw-before-input", "-j ufw-user-input"),
        ("ufw-after-input", "-p udp -m udp --dport 137 -j DROP"),
        ("ufw-after-input", "-p udp -m udp --dport 138 -j DROP"),
        ("ufw-after-input", "-p tcp -m tcp --dport 139 -j DROP"),
        ("ufw-after-input", "-p tcp -m tcp --dport 445 -j DROP"),
        ("ufw-after-logging-input",
         '-m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "'),
        ("ufw-track-input", "-p tcp -m conntrack --ctstate NEW -j ACCEPT"),
        ("ufw-track-input", "-p udp -m conntrack --ctstate NEW -j ACCEPT"),
        ("ufw-user-input", "-p tcp -m tcp --dport 22 -j ACCEPT"),
        ("ufw-user-input", "-p tcp -m tcp --dport 80 -j ACCEPT"),
        ("ufw-user-input", "-p tcp -m tcp --dport 443 -j ACCEPT"),
        ("ufw-user-input", "-p tcp -m tcp --dport 2222 -m conntrack --ctstate NEW -j ufw-user-limit"),
        ("ufw-user-limit",
         '-m limit --limit 3/min -j LOG --log-prefix "[UFW LIMIT BLOCK] "'),
        ("ufw-user-limit", "-j REJECT --reject-with "
         + ("icmp6-port-unreachable" if v6 else "icmp-port-unreachable")),
        ("ufw-user-limit-accept", "-j ACCEPT"),
    ]
    return rules


def table(name, builtins, users, rules):
    out = [f"*{name}"]
    out += [f":{c} ACCEPT [0:0]" for c in builtins]
    out += [f":{c} - [0:0]" for c in sorted(users)]
    # iptables-save prints rules chain by chain: builtins in order, then user chains by name.
    order = list(builtins) + sorted(users)
    by_chain = {c: [] for c in order}
    for chain, spec in rules:
        by_chain[chain].append(f"-A {chain} {spec}")
    for c in order:
        out += by_chain[c]
    out.append("COMMIT")
    return "\n".join(out) + "\n"


CTR, BR = "172.17.0.2", "docker0"


def per_port(ports):
    """The rules both shapes write per published port: nat hairpin MASQUERADE, nat DNAT,
    filter ACCEPT."""
    hairpin = [("POSTROUTING",
                f"-s {CTR}/32 -d {CTR}/32 -p tcp -m tcp --dport {p} -j MASQUERADE")
               for p in ports]
    dnat = [("DOCKER",
             f"! -i {BR} -p tcp -m tcp --dport {p} -j DNAT --to-destination {CTR}:{p}")
            for p in ports]
    accept = [("DOCKER",
               f"-d {CTR}/32 ! -i {BR} -o {BR} -p tcp -m tcp --dport {p} -j ACCEPT")
              for p in ports]
    return hairpin, dnat, accept


def v4_28(ports):
    ctr, br = CTR, BR
    hairpin, dnat, accept = per_port(ports)
    raw = [("PREROUTING", f"-d {ctr}/32 ! -i {br} -p tcp -m tcp --dport {p} -j DROP")
           for p in ports]
    nat = [
        ("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        ("OUTPUT", "-m addrtype --dst-type LOCAL -j DOCKER"),
        ("POSTROUTING", f"-o {br} -m addrtype --src-type LOCAL -j MASQUERADE"),
        ("POSTROUTING", f"-s 172.17.0.0/16 ! -o {br} -j MASQUERADE"),
    ]
    nat += hairpin + dnat
    filt = [("FORWARD", "-j DOCKER-USER"), ("FORWARD", "-j DOCKER-FORWARD")]
    filt += accept
    filt += docker_filter_fixed(br)
    filt += ufw_rules(False)
    return (
        table("raw", ["PREROUTING", "OUTPUT"], [], raw)
        + table("filter", ["INPUT", "FORWARD", "OUTPUT"], DOCKER_FILTER_CHAINS + UFW_CHAINS, filt)
        + table("nat", ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], ["DOCKER"], nat)
    )


DOCKER_2010_FILTER_CHAINS = [
    "DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER",
]


def v4_2010(ports):
    br = BR
    hairpin, dnat, accept = per_port(ports)
    nat = [
        ("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        ("OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER"),
        ("POSTROUTING", f"-s 172.17.0.0/16 ! -o {br} -j MASQUERADE"),
    ]
    nat += hairpin + [("DOCKER", f"-i {br} -j RETURN")] + dnat
    filt = [
        ("FORWARD", "-j DOCKER-USER"),
        ("FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        ("FORWARD", f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("FORWARD", f"-o {br} -j DOCKER"),
        ("FORWARD", f"-i {br} ! -o {br} -j ACCEPT"),
        ("FORWARD", f"-i {br} -o {br} -j ACCEPT"),
    ]
    filt += accept
    filt += [
        ("DOCKER-ISOLATION-STAGE-1", f"-i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2"),
        ("DOCKER-ISOLATION-STAGE-1", "-j RETURN"),
        ("DOCKER-ISOLATION-STAGE-2", f"-o {br} -j DROP"),
        ("DOCKER-ISOLATION-STAGE-2", "-j RETURN"),
        ("DOCKER-USER", "-j RETURN"),
    ]
    filt += ufw_rules(False)
    return (
        table("raw", ["PREROUTING", "OUTPUT"], [], [])
        + table("filter", ["INPUT", "FORWARD", "OUTPUT"], DOCKER_2010_FILTER_CHAINS + UFW_CHAINS,
                filt)
        + table("nat", ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], ["DOCKER"], nat)
    )


def v6_2010():
    """ip6tables as Docker 20.10 leaves it without IPv6 networks: the filter chains it
    creates for both families, plus the same ufw rules (no nat DOCKER chain)."""
    filt = [
        ("FORWARD", "-j DOCKER-USER"),
        ("FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        ("DOCKER-ISOLATION-STAGE-1", "-j RETURN"),
        ("DOCKER-ISOLATION-STAGE-2", "-j RETURN"),
        ("DOCKER-USER", "-j RETURN"),
    ] + ufw_rules(True)
    return (
        table("raw", ["PREROUTING", "OUTPUT"], [], [])
        + table("filter", ["INPUT", "FORWARD", "OUTPUT"], DOCKER_2010_FILTER_CHAINS + UFW_CHAINS,
                filt)
        + table("nat", ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], [], [])
    )


DOCKER_FILTER_CHAINS = [
    "DOCKER", "DOCKER-BRIDGE", "DOCKER-CT", "DOCKER-FORWARD",
    "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER",
]


def docker_filter_fixed(br):
    return [
        ("DOCKER", f"! -i {br} -o {br} -j DROP"),
        ("DOCKER-BRIDGE", f"-o {br} -j DOCKER"),
        ("DOCKER-CT", f"-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"),
        ("DOCKER-FORWARD", "-j DOCKER-CT"),
        ("DOCKER-FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        ("DOCKER-FORWARD", "-j DOCKER-BRIDGE"),
        ("DOCKER-FORWARD", f"-i {br} -j ACCEPT"),
        ("DOCKER-ISOLATION-STAGE-1", f"-i {br} ! -o {br} -j DOCKER-ISOLATION-STAGE-2"),
        ("DOCKER-ISOLATION-STAGE-2", f"-o {br} -j DROP"),
    ]


def v6_28():
    """ip6tables as Docker 28.2 leaves it when no network has IPv6 (moby-v28.2-iptabler-
    init-proxy.v6.rules, plus DOCKER-USER), with the same ufw rules."""
    nat = [
        ("PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER"),
        ("OUTPUT", "! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER"),
    ]
    filt = [
        ("FORWARD", "-j DOCKER-USER"),
        ("FORWARD", "-j DOCKER-FORWARD"),
        ("DOCKER-FORWARD", "-j DOCKER-CT"),
        ("DOCKER-FORWARD", "-j DOCKER-ISOLATION-STAGE-1"),
        ("DOCKER-FORWARD", "-j DOCKER-BRIDGE"),
    ] + ufw_rules(True)
    return (
        table("raw", ["PREROUTING", "OUTPUT"], [], [])
        + table("filter", ["INPUT", "FORWARD", "OUTPUT"], DOCKER_FILTER_CHAINS + UFW_CHAINS, filt)
        + table("nat", ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], ["DOCKER"], nat)
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, required=True)
    ap.add_argument("--family", choices=["v4", "v6"], default="v4")
    ap.add_argument("--shape", choices=["28", "20.10"], default="28")
    ap.add_argument("--base", type=int, default=10000)
    a = ap.parse_args()
    if not 0 <= a.ports or a.base + a.ports > 65536:
        sys.exit("ports out of range")
    ports = range(a.base, a.base + a.ports)
    if a.shape == "28":
        sys.stdout.write(v4_28(ports) if a.family == "v4" else v6_28())
    else:
        sys.stdout.write(v4_2010(ports) if a.family == "v4" else v6_2010())


if __name__ == "__main__":
    main()
