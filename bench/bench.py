#!/usr/bin/env python3
"""The iptables-docker benchmark driver. Run it through bench/run.sh, never directly: it
loads rulesets with iptables-legacy-restore and must run in a throwaway network, mount
and PID namespace with a private /run (run.sh sets that up and this script checks it).

For each size N it loads a Docker-shaped ruleset (gen.py) and measures, in the same run,
R times each (median reported):
  (b) floor: bare `iptables-legacy-save -c` + `iptables-legacy-restore -c` of that ruleset,
      for both families
  (a) `iptables-docker start` from the "before" state (Docker + ufw rules, no apply record)
  (s) bare `iptables-legacy-save -c` of the started ruleset, both families
  (c) `iptables-docker start` again, nothing changed
  (d) `iptables-docker stop` from the started state
then, in one more (untimed) cycle, the kernel table replacements of each command (strace
count of IPT_SO_SET_REPLACE / IP6T_SO_SET_REPLACE) and our process's peak RSS (VmHWM).
"""

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = {
    "v4": ("iptables-legacy-save", "iptables-legacy-restore"),
    "v6": ("ip6tables-legacy-save", "ip6tables-legacy-restore"),
}


def die(msg):
    sys.exit(f"bench: {msg}")


def check_sandbox():
    """Refuses to run in the machine's own network or mount namespace (run.sh records
    those before it unshares), in a network namespace with any interface but lo, or
    without a private /run."""
    for kind, var in (("net", "IPTD_BENCH_OUTER_NET"), ("mnt", "IPTD_BENCH_OUTER_MNT")):
        outer = os.environ.get(var)
        if not outer or os.readlink(f"/proc/self/ns/{kind}") == outer:
            die(f"refusing to run: not in a private {kind} namespace (use bench/run.sh)")
    with open("/proc/net/dev") as f:
        devs = [l.split(":")[0].strip() for l in f.readlines()[2:]]
    if any(d != "lo" for d in devs):
        die(f"refusing to run: the network namespace has interfaces {devs}")
    if not os.path.ismount("/run"):
        die("refusing to run: /run is not a private mount")


class Child:
    """One process run: wall time (perf_counter around spawn..reap) and the rusage of the
    reaped process tree (ru_maxrss covers the child and the children it waited for)."""

    def __init__(self, argv, stdin=None, stdout=None, env=None):
        fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
        fout = open(stdout, "wb") if stdout else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(argv, stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                                 env=env)
            err = p.stderr.read()
            _, status, ru = os.wait4(p.pid, 0)
            self.seconds = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
        finally:
            for f in (fin, fout):
                if hasattr(f, "close"):
                    f.close()
        self.rc = p.returncode
        self.maxrss_kib = ru.ru_maxrss
        self.stderr = err.decode(errors="replace")
        if self.rc != 0:
            die(f"{' '.join(argv)} exited {self.rc}: {self.stderr.strip()}")


class Bench:
    def __init__(self, binary, work, state_dir):
        self.bin = binary
        self.work = work
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")}
        self.env["IPTABLES_DOCKER_STATE_DIR"] = state_dir

    # --- ruleset handling --------------------------------------------------------------

    def generate(self, n):
        d = os.path.join(self.work, str(n))
        os.makedirs(d, exist_ok=True)
        self.before = {}
        for fam in FAMILIES:
            path = os.path.join(d, f"before.{fam}.rules")
            with open(path, "w") as f:
                subprocess.run([sys.executable, os.path.join(HERE, "gen.py"),
                                "--ports", str(n), "--family", fam], stdout=f, check=True)
            self.before[fam] = path
        self.dir = d

    def reset(self):
        """The "before" state: the generated rulesets, no apply record (not timed)."""
        for fam, (_, restore) in FAMILIES.items():
            Child([restore, "-w"], stdin=self.before[fam])
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def rule_counts(self):
        counts = {}
        for fam, (save, _) in FAMILIES.items():
            out = os.path.join(self.dir, f"count.{fam}")
            Child([save], stdout=out)
            table = None
            with open(out) as f:
                for line in f:
                    if line.startswith("*"):
                        table = line[1:].strip()
                    elif line.startswith("-A "):
                        counts[(fam, table)] = counts.get((fam, table), 0) + 1
        return counts

    # --- the measured commands -------------------------------------------------------------

    def floor(self):
        """(b): bare save + restore of the running ruleset, each family."""
        total = 0.0
        for fam, (save, restore) in FAMILIES.items():
            dump = os.path.join(self.dir, f"floor.{fam}")
            total += Child([save, "-c"], stdout=dump).seconds
            total += Child([restore, "-c", "-w"], stdin=dump).seconds
        return total

    def bare_save(self):
        total = 0.0
        for fam, (save, _) in FAMILIES.items():
            total += Child([save, "-c"], stdout=os.path.join(self.dir, f"save.{fam}")).seconds
        return total

    def ours(self, verb, log=None):
        c = Child([self.bin, verb], stdout=log, env=self.env)
        return c

    # --- instrumented runs (untimed) --------------------------------------------------------

    def replacements(self, argv, env=None, stdin=None):
        """Kernel table replacements made by argv and its children (strace -f)."""
        trace = os.path.join(self.dir, "strace.out")
        Child(["strace", "-f", "-qq", "-o", trace, "-e", "trace=setsockopt"] + argv,
              stdin=stdin, env=env)
        with open(trace) as f:
            return sum(1 for line in f if "SO_SET_REPLACE" in line)

    def floor_replacements(self):
        n = 0
        for fam, (save, restore) in FAMILIES.items():
            dump = os.path.join(self.dir, f"floor.{fam}")
            Child([save, "-c"], stdout=dump)
            n += self.replacements([restore, "-c", "-w"], stdin=dump)
        return n

    def peak_rss_kib(self, verb):
        """VmHWM of our own process (not its iptables children): strace holds the process
        at exit_group for 300 ms, while its memory is still mapped, and we sample
        /proc/PID/status until it is gone; VmHWM only grows, so the last sample is the peak."""
        p = subprocess.Popen(
            ["strace", "-qq", "-o", "/dev/null", "-e", "trace=exit_group",
             "-e", "inject=exit_group:delay_enter=300000", self.bin, verb],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.env)
        hwm = None
        deadline = time.monotonic() + 600
        while p.poll() is None and time.monotonic() < deadline:
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    kids = f.read().split()
            except OSError:
                kids = []
            for kid in kids:
                try:
                    with open(f"/proc/{kid}/status") as f:
                        status = f.read()
                except OSError:
                    continue
                m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
                if m and re.search(r"^Name:\s+iptables-docker$", status, re.M):
                    hwm = max(hwm or 0, int(m.group(1)))
            time.sleep(0.002)
        err = p.stderr.read().decode(errors="replace")
        if p.wait() != 0:
            die(f"{verb} under strace failed: {err.strip()}")
        if hwm is None:
            die(f"could not sample the peak RSS of {verb}")
        return hwm


def cpu_busy(interval=0.5):
    """The fraction of all CPUs busy over `interval` (from /proc/stat; the PID namespace
    does not hide other processes' CPU time)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return sum(v[:8]), idle
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_quiet(max_wait, log, threshold=0.25):
    """Waits (up to max_wait seconds) until other processes use under `threshold` of the
    CPUs; returns the load seen last. Cycles measured on a busy machine are flagged."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    told = False
    while busy > threshold and time.monotonic() < deadline:
        if not told:
            log(f"  other processes keep {busy:.0%} of the CPUs busy; waiting up to "
                f"{max_wait:.0f}s for them")
            told = True
        time.sleep(1)
        busy = cpu_busy()
    return busy


def median_ms(xs):
    return statistics.median(xs) * 1000.0


def measure(b, n, runs, log, max_wait):
    log(f"N={n}: generating and loading ({4 * n} Docker rules per IPv4 ruleset)")
    b.generate(n)
    b.reset()
    counts = b.rule_counts()
    samples = {k: [] for k in ("b", "a", "s", "c", "d")}
    tree_rss = {k: 0 for k in ("a", "c", "d")}
    start_log = os.path.join(b.dir, "start.out")
    again_log = os.path.join(b.dir, "again.out")
    background = []
    for i in range(runs):
        b.reset()
        background.append(wait_quiet(max_wait, log))
        samples["b"].append(b.floor())
        r = b.ours("start", log=start_log)
        samples["a"].append(r.seconds)
        tree_rss["a"] = max(tree_rss["a"], r.maxrss_kib)
        samples["s"].append(b.bare_save())
        r = b.ours("start", log=again_log)
        samples["c"].append(r.seconds)
        tree_rss["c"] = max(tree_rss["c"], r.maxrss_kib)
        r = b.ours("stop")
        samples["d"].append(r.seconds)
        tree_rss["d"] = max(tree_rss["d"], r.maxrss_kib)
        log(f"  run {i + 1}/{runs}: " + ", ".join(
            f"{k}={samples[k][-1] * 1000:.0f}ms" for k in ("b", "a", "s", "c", "d")))
    with open(start_log) as f:
        start_said = f.read().strip()
    with open(again_log) as f:
        again_said = f.read().strip()

    log(f"N={n}: counting table replacements and peak RSS (untimed)")
    b.reset()
    repl = {"b": b.floor_replacements()}
    repl["a"] = b.replacements([b.bin, "start"], env=b.env)
    after_start = b.rule_counts()
    repl["c"] = b.replacements([b.bin, "start"], env=b.env)
    repl["d"] = b.replacements([b.bin, "stop"], env=b.env)
    rss = {}
    b.reset()
    rss["a"] = b.peak_rss_kib("start")
    rss["c"] = b.peak_rss_kib("start")
    rss["d"] = b.peak_rss_kib("stop")

    kept = all(after_start.get(k, 0) == v for k, v in counts.items()
               if k[1] in ("nat", "raw"))
    return {
        "n": n,
        "rules": counts,
        "docker_tables_intact": kept,
        "start_said": start_said,
        "again_said": again_said,
        "med": {k: median_ms(v) for k, v in samples.items()},
        "min": {k: min(v) * 1000 for k, v in samples.items()},
        "max": {k: max(v) * 1000 for k, v in samples.items()},
        "repl": repl,
        "rss": rss,
        "tree_rss": tree_rss,
        "background": background,
    }


def machine():
    def first(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"
    ver = subprocess.run(["iptables-legacy", "--version"], capture_output=True,
                         text=True).stdout.strip()
    mem = first("/proc/meminfo", "MemTotal")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": first("/proc/cpuinfo", "model name"),
        "kernel": platform.release(),
        "iptables": ver,
        "memory": mem,
    }


def fmt(x, digits=0):
    return f"{x:.{digits}f}"


def report(results, runs, info, git):
    big = max(results, key=lambda r: r["n"])
    by_n = {r["n"]: r for r in results}
    out = []
    w = out.append
    w("# iptables-docker benchmark results")
    w("")
    w(f"Generated by `bash bench/run.sh` on {time.strftime('%Y-%m-%d %H:%M %Z')}"
      f" ({git}); median of {runs} runs per cell.")
    w("")
    w(f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel "
      f"{info['kernel']}, {info['iptables']}.")
    w("")
    loads = [x for r in results for x in r["background"]]
    busy = sum(1 for x in loads if x > 0.25)
    w(f"Background CPU load before each cycle: median {statistics.median(loads):.0%}, "
      f"max {max(loads):.0%} of all CPUs"
      + (f" — **{busy} of {len(loads)} cycles ran while other processes kept more than 25 % "
         "of the CPUs busy: timings are unreliable, run again on a quiet machine**."
         if busy else " (quiet)."))
    w("")
    w("Ruleset per size N: N published ports on one container, 4 Docker rules per port "
      "(raw guard, nat DNAT + hairpin MASQUERADE, filter ACCEPT) plus Docker's fixed "
      "chains, plus 24 ufw rules in filter that `start` removes; IPv6 carries Docker's "
      "base chains and the ufw rules. See bench/README.md.")
    w("")
    w("## Times (ms, median)")
    w("")
    w("| N ports | rules v4 | (b) floor: save+restore | (a) start | bare save | "
      "(c) start again | (d) stop | a/b | c/save | d/b |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m = r["med"]
        rules = sum(v for k, v in r["rules"].items() if k[0] == "v4")
        w(f"| {r['n']:,} | {rules:,} | {fmt(m['b'])} | {fmt(m['a'])} | {fmt(m['s'])} | "
          f"{fmt(m['c'])} | {fmt(m['d'])} | {m['a'] / m['b']:.2f} | "
          f"{m['c'] / m['s']:.2f} | {m['d'] / m['b']:.2f} |")
    w("")
    w("Spread (min–max, ms):")
    w("")
    w("| N ports | (b) | (a) | save | (c) | (d) |")
    w("|---:|---:|---:|---:|---:|---:|")
    for r in results:
        w(f"| {r['n']:,} | " + " | ".join(
            f"{r['min'][k]:.0f}–{r['max'][k]:.0f}" for k in ("b", "a", "s", "c", "d")) + " |")
    w("")
    w("## Kernel table replacements and memory")
    w("")
    w("| N ports | SET_REPLACE (b) | (a) start | (c) start again | (d) stop | "
      "peak RSS start | start again | stop | process-tree max RSS |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        p, t = r["repl"], r["rss"]
        tree = max(r["tree_rss"].values())
        w(f"| {r['n']:,} | {p['b']} | {p['a']} | {p['c']} | {p['d']} | "
          f"{t['a'] / 1024:.1f} MiB | {t['c'] / 1024:.1f} MiB | {t['d'] / 1024:.1f} MiB | "
          f"{tree / 1024:.1f} MiB |")
    w("")
    w("Peak RSS is our own process (VmHWM); the process-tree figure also covers the "
      "iptables-legacy-save/restore children (`ru_maxrss` of the reaped tree).")
    w("")
    w("## Linearity (ms per 1,000 ports)")
    w("")
    w("| N ports | (b) | (a) | (c) | (d) |")
    w("|---:|---:|---:|---:|---:|")
    for r in results:
        k = r["n"] / 1000
        w(f"| {r['n']:,} | " + " | ".join(f"{r['med'][x] / k:.1f}" for x in "bacd") + " |")
    w("")

    m = big["med"]
    verdicts = []

    def target(name, ok, detail):
        verdicts.append(ok)
        w(f"| {name} | {detail} | **{'PASS' if ok else 'MISS'}** |")

    w(f"## Targets (N = {big['n']:,})")
    w("")
    w("| target | measured | verdict |")
    w("|---|---|---|")
    target("(a)/(b) ≤ 0.8", m["a"] / m["b"] <= 0.8, f"{m['a'] / m['b']:.2f}")
    target("(c) ≤ 1.2 × bare save", m["c"] / m["s"] <= 1.2, f"{m['c'] / m['s']:.2f}")
    target("(c) makes 0 table replacements", big["repl"]["c"] == 0,
           f"{big['repl']['c']}")
    peak = max(big["rss"].values()) / 1024
    target("peak RSS ≤ 64 MiB", peak <= 64, f"{peak:.1f} MiB")
    pair = sorted(n for n in by_n if n < big["n"])
    if pair:
        half = by_n[pair[-1]]
        scale = big["n"] / half["n"]
        worst = max(big["med"][x] / half["med"][x] / scale for x in "acd")
        target("linear in N: per-port cost of a, c, d at the largest size ≤ 1.25 × "
               f"at N = {half['n']:,}", worst <= 1.25, f"{worst:.2f} (worst of a, c, d)")
    w("")
    w("Correctness checks of the run: "
      + ("Docker's nat and raw tables were left with every rule after `start` at every "
         "size" if all(r["docker_tables_intact"] for r in results)
         else "**Docker rules went missing from nat/raw after start**")
      + f". At N = {big['n']:,}, (a) `start` said:")
    w("")
    w("```")
    w(big["start_said"])
    w("```")
    w("")
    w("and (c) `start` again said:")
    w("")
    w("```")
    w(big["again_said"])
    w("```")
    return "\n".join(out) + "\n", all(verdicts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="1000,10000,20000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--git", default="?")
    ap.add_argument("--quiet-wait", type=float, default=60)
    a = ap.parse_args()
    check_sandbox()
    # We are PID 1 of the namespace, which ignores signals it has no handler for; make
    # `kill` work (the namespace, and everything started in it, dies with us).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _: sys.exit(128 + n))
    sizes = sorted(int(s) for s in a.sizes.split(",") if s.strip())
    if a.runs < 1 or not sizes:
        die("need at least one size and one run")
    work = "/run/iptd-bench"
    os.makedirs(work, exist_ok=True)
    b = Bench(os.path.abspath(a.bin), work, "/run/iptd")
    log = lambda s: print(f"[bench {time.strftime('%H:%M:%S')}] {s}", file=sys.stderr,
                          flush=True)
    results = [measure(b, n, a.runs, log, a.quiet_wait) for n in sizes]
    text, ok = report(results, a.runs, machine(), a.git)
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    log(f"wrote {a.out}; all targets {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
