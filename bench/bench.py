#!/usr/bin/env python3
"""The iptables-docker benchmark driver. Run it through bench/run.sh, never directly: it
loads rulesets with iptables-legacy-restore and must run in a throwaway network, mount
and PID namespace with a private /run (run.sh sets that up and this script checks it).

For each series (a Docker shape, a backend) and size N it loads a Docker-shaped ruleset
(gen.py) and measures, in the same run, R times each, interleaved (median reported):
  (b) floor: bare `iptables-<backend>-save -c` + `iptables-<backend>-restore -c` of that
      ruleset, for both families (every table)
  (t) tight floor of start: the same save, then a restore of only the tables `start`
      changes (found in an untimed first cycle by comparing saves before and after)
  (a) `iptables-docker start` from the "before" state (Docker + ufw rules, no apply record)
  (s) bare `iptables-<backend>-save -c` of the started ruleset, both families
  (c) `iptables-docker start` again, nothing changed
  (u) tight floor of stop: save, then a restore of only the tables `stop` changes
  (d) `iptables-docker stop` from the started state
then, in more (untimed) cycles, the kernel table replacements of each command (strace
count of IPT_SO_SET_REPLACE / IP6T_SO_SET_REPLACE; legacy only: iptables-nft writes
through netlink) and our process's peak RSS (VmHWM).
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
FAMILY_COMMANDS = {"v4": "iptables", "v6": "ip6tables"}


def tools(backend):
    """{family: (save, restore)} of `backend` (legacy, nft)."""
    return {fam: (f"{cmd}-{backend}-save", f"{cmd}-{backend}-restore")
            for fam, cmd in FAMILY_COMMANDS.items()}


def split_tables(text):
    """{table: its iptables-save text, `*name` to COMMIT} of a save, in order."""
    out, name, lines = {}, None, []
    for line in text.splitlines(keepends=True):
        if line.startswith("*"):
            name, lines = line[1:].strip(), [line]
        elif name is not None:
            lines.append(line)
            if line.strip() == "COMMIT":
                out[name] = "".join(lines)
                name = None
    return out


def without_counters(table_text):
    return re.sub(r"\[\d+:\d+\]", "[0:0]", table_text)


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
    def __init__(self, binary, work, state_dir, backend="legacy", shape="28"):
        self.backend = backend
        self.shape = shape
        self.tools = tools(backend)
        self.bin = binary
        self.work = work
        self.state_dir = state_dir
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")}
        self.env["IPTABLES_DOCKER_STATE_DIR"] = state_dir

    # --- ruleset handling --------------------------------------------------------------

    def generate(self, n):
        d = os.path.join(self.work, f"{self.shape}-{self.backend}-{n}")
        os.makedirs(d, exist_ok=True)
        self.before = {}
        for fam in FAMILY_COMMANDS:
            path = os.path.join(d, f"before.{fam}.rules")
            with open(path, "w") as f:
                subprocess.run([sys.executable, os.path.join(HERE, "gen.py"),
                                "--ports", str(n), "--family", fam, "--shape", self.shape],
                               stdout=f, check=True)
            self.before[fam] = path
        self.dir = d

    def reset(self):
        """The "before" state: the generated rulesets, no apply record (not timed)."""
        for fam, (_, restore) in self.tools.items():
            Child([restore, "-w"], stdin=self.before[fam])
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def rule_counts(self):
        counts = {}
        for fam, (save, _) in self.tools.items():
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

    def floor(self, changed=None):
        """(b): bare save + restore of the running ruleset, each family; with `changed`
        ({family: [table]}), the restore is given only those tables of the save (the
        tight floor: (t) before start, (u) before stop). Timed: the two processes (the
        tables are cut out of the save between them, untimed)."""
        total = 0.0
        for fam, (save, restore) in self.tools.items():
            dump = os.path.join(self.dir, f"floor.{fam}")
            total += Child([save, "-c"], stdout=dump).seconds
            if changed is not None:
                tables = changed.get(fam, [])
                if not tables:
                    continue
                with open(dump) as f:
                    saved = split_tables(f.read())
                with open(dump, "w") as f:
                    f.write("".join(saved[t] for t in tables if t in saved))
            total += Child([restore, "-c", "-w"], stdin=dump).seconds
        return total

    def saved_tables(self):
        """{family: {table: save text without counters}} of the running ruleset."""
        out = {}
        for fam, (save, _) in self.tools.items():
            dump = os.path.join(self.dir, f"state.{fam}")
            Child([save], stdout=dump)
            with open(dump) as f:
                out[fam] = {t: without_counters(x) for t, x in split_tables(f.read()).items()}
        return out

    def changed_by(self, verb):
        """{family: [table]} that `verb` changes from the running state (it is run)."""
        before = self.saved_tables()
        self.ours(verb)
        after = self.saved_tables()
        return {fam: [t for t in after[fam] if before[fam].get(t) != after[fam][t]]
                for fam in after}

    def bare_save(self):
        total = 0.0
        for fam, (save, _) in self.tools.items():
            total += Child([save, "-c"], stdout=os.path.join(self.dir, f"save.{fam}")).seconds
        return total

    def label(self):
        return f"Docker {self.shape} shape, iptables-{self.backend}"

    def argv(self, verb):
        """Legacy runs as a host runs it by default (`auto`, which probes both backends and
        takes legacy); nft is named (auto would refuse: the legacy series left Docker's
        rules in the legacy tables of this namespace)."""
        if self.backend == "legacy":
            return [self.bin, verb]
        return [self.bin, "--backend", self.backend, verb]

    def ours(self, verb, log=None):
        c = Child(self.argv(verb), stdout=log, env=self.env)
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
        for fam, (save, restore) in self.tools.items():
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
             "-e", "inject=exit_group:delay_enter=300000"] + self.argv(verb),
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


class Quiet:
    """Before each cycle, waits (up to `max_wait` seconds, and `budget` seconds over the
    whole run, so that a full run stays within its time on a busy machine) until other
    processes use under 25 % of the CPUs; returns the load seen last."""

    def __init__(self, max_wait, budget):
        self.max_wait = max_wait
        self.left = budget

    def __call__(self, log):
        t0 = time.monotonic()
        busy = wait_quiet(min(self.max_wait, self.left), log)
        self.left = max(0.0, self.left - (time.monotonic() - t0))
        return busy


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


KEYS = ("b", "t", "a", "s", "c", "u", "d")


def timed_cycles(b, runs, log, waiter, changed):
    """R interleaved cycles from the "before" state: (b), (t), (a), (s), (c), (u), (d)."""
    samples = {k: [] for k in KEYS}
    tree_rss = {k: 0 for k in ("a", "c", "d")}
    said = {"a": os.path.join(b.dir, "start.out"), "c": os.path.join(b.dir, "again.out")}
    background = []
    for i in range(runs):
        b.reset()
        background.append(waiter(log))
        samples["b"].append(b.floor())
        samples["t"].append(b.floor(changed["start"]))
        for key, verb in (("a", "start"), ("s", None), ("c", "start"), ("u", None),
                          ("d", "stop")):
            if key == "s":
                samples["s"].append(b.bare_save())
                continue
            if key == "u":
                samples["u"].append(b.floor(changed["stop"]))
                continue
            r = b.ours(verb, log=said.get(key))
            samples[key].append(r.seconds)
            tree_rss[key] = max(tree_rss[key], r.maxrss_kib)
        log(f"  run {i + 1}/{runs}: " + ", ".join(
            f"{k}={samples[k][-1] * 1000:.0f}ms" for k in KEYS))
    texts = {}
    for key, path in said.items():
        with open(path) as f:
            texts[key] = f.read().strip()
    return samples, tree_rss, background, texts


def instrumented(b):
    """Untimed: kernel table replacements (legacy) and our process's peak RSS."""
    b.reset()
    repl = None
    if b.backend == "legacy":
        repl = {"b": b.floor_replacements()}
        repl["a"] = b.replacements(b.argv("start"), env=b.env)
        repl["c"] = b.replacements(b.argv("start"), env=b.env)
        repl["d"] = b.replacements(b.argv("stop"), env=b.env)
        b.reset()
    rss = {"a": b.peak_rss_kib("start")}
    after_start = b.rule_counts()
    rss["c"] = b.peak_rss_kib("start")
    rss["d"] = b.peak_rss_kib("stop")
    return repl, rss, after_start


def measure(b, n, runs, log, waiter):
    per_port = 4 if b.shape == "28" else 3
    log(f"{b.label()} N={n}: generating and loading ({per_port * n} Docker rules per IPv4 "
        "ruleset)")
    b.generate(n)
    b.reset()
    counts = b.rule_counts()
    # The tables each verb changes, from an untimed cycle (the tight floors restore those).
    changed = {"start": b.changed_by("start")}
    changed["stop"] = b.changed_by("stop")
    samples, tree_rss, background, said = timed_cycles(b, runs, log, waiter, changed)
    log(f"{b.label()} N={n}: counting table replacements and peak RSS (untimed)")
    repl, rss, after_start = instrumented(b)
    kept = all(after_start.get(k, 0) == v for k, v in counts.items()
               if k[1] in ("nat", "raw"))
    return {
        "n": n,
        "rules": counts,
        "changed": changed,
        "docker_tables_intact": kept,
        "start_said": said["a"],
        "again_said": said["c"],
        "med": {k: median_ms(v) for k, v in samples.items()},
        # Each cycle's own ratio (the two were measured seconds apart), then the median:
        # moves less with the machine's speed over the run than the ratio of medians.
        "paired": {f"{x}/{y}": statistics.median(p / q for p, q in zip(samples[x], samples[y]))
                   for x, y in (("a", "t"), ("c", "s"), ("d", "u"))},
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


def header(w, series, runs, info, git):
    w("# iptables-docker benchmark results")
    w("")
    w(f"Generated by `bash bench/run.sh` on {time.strftime('%Y-%m-%d %H:%M %Z')}"
      f" ({git}); median of {runs[0]} runs per cell on iptables-legacy, {runs[1]} on "
      "iptables-nft, the compared commands interleaved in each cycle.")
    w("")
    w(f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, kernel "
      f"{info['kernel']}, {info['iptables']}.")
    w("")
    loads = [x for _, rs in series for r in rs for x in r["background"]]
    busy = sum(1 for x in loads if x > 0.25)
    w(f"Background CPU load before each cycle: median {statistics.median(loads):.0%}, "
      f"max {max(loads):.0%} of all CPUs"
      + (f" — **{busy} of {len(loads)} cycles ran while other processes kept more than 25 % "
         "of the CPUs busy: timings are unreliable, run again on a quiet machine**."
         if busy else " (quiet)."))
    w("")
    w("Ruleset per size N: N published ports on one container plus Docker's fixed chains, "
      "plus 24 ufw rules in filter that `start` removes; IPv6 carries Docker's base chains "
      "and the ufw rules. Docker 28 shape: 4 rules per port (raw guard, nat DNAT + hairpin "
      "MASQUERADE, filter ACCEPT), DOCKER-FORWARD/-BRIDGE/-CT. Docker 20.10 shape: 3 rules "
      "per port (no raw guard), FORWARD → DOCKER-USER/-ISOLATION/DOCKER. See bench/README.md.")
    w("")
    w("Columns: (b) save + restore of every table (the old floor); (t) save + restore of "
      "only the tables `start` changes (the tight floor); (a) `start`; save: bare save; "
      "(c) `start` again, nothing changed; (u) save + restore of only the tables `stop` "
      "changes; (d) `stop`. Each save/restore figure covers both families. On iptables-nft "
      "the floors are the same commands with iptables-nft-save/-restore: a restore replaces "
      "the tables it is given (flush and reload), whereas `start` writes one "
      "`iptables-nft-restore --noflush` edit of the changed tables.")
    w("")


def series_tables(w, label, results):
    w(f"## {label}")
    w("")
    changed = results[-1]["changed"]
    w("Tables changed (from the untimed first cycle): start "
      + ", ".join(f"{f}: {'+'.join(t) or 'none'}" for f, t in changed["start"].items())
      + "; stop " + ", ".join(f"{f}: {'+'.join(t) or 'none'}"
                              for f, t in changed["stop"].items()) + ".")
    w("")
    w("| N ports | rules v4 | (b) | (t) | (a) start | a/b | **a/t** | save | (c) again | "
      "**c/save** | (u) | (d) stop | d/b | **d/u** |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        m = r["med"]
        rules = sum(v for k, v in r["rules"].items() if k[0] == "v4")
        w(f"| {r['n']:,} | {rules:,} | {fmt(m['b'])} | {fmt(m['t'])} | {fmt(m['a'])} | "
          f"{m['a'] / m['b']:.2f} | {m['a'] / m['t']:.2f} | {fmt(m['s'])} | {fmt(m['c'])} | "
          f"{m['c'] / m['s']:.2f} | {fmt(m['u'])} | {fmt(m['d'])} | {m['d'] / m['b']:.2f} | "
          f"{m['d'] / m['u']:.2f} |")
    w("")
    w("Paired (the median of each cycle's own ratio, less moved by the machine's speed "
      "over the run; the targets are judged on the ratios of medians above): " + "; ".join(
          f"N = {r['n']:,}: a/t {r['paired']['a/t']:.2f}, c/save {r['paired']['c/s']:.2f}, "
          f"d/u {r['paired']['d/u']:.2f}" for r in results) + ".")
    w("")
    w("Spread (min–max, ms), replacements and memory:")
    w("")
    w("| N ports | " + " | ".join(KEYS) + " | SET_REPLACE b/a/c/d | peak RSS a / c / d | "
      "process-tree max RSS |")
    w("|---:|" + "---:|" * (len(KEYS) + 3))
    for r in results:
        p, t = r["repl"], r["rss"]
        repl = f"{p['b']}/{p['a']}/{p['c']}/{p['d']}" if p else "– (netlink)"
        w(f"| {r['n']:,} | " + " | ".join(
            f"{r['min'][k]:.0f}–{r['max'][k]:.0f}" for k in KEYS)
          + f" | {repl} | {t['a'] / 1024:.1f} / {t['c'] / 1024:.1f} / {t['d'] / 1024:.1f} MiB"
          f" | {max(r['tree_rss'].values()) / 1024:.1f} MiB |")
    w("")


def series_targets(w, label, results, at):
    """PASS/MISS rows of one series at N = `at` (or its largest size)."""
    by_n = {r["n"]: r for r in results}
    big = by_n.get(at) or max(results, key=lambda r: r["n"])
    m = big["med"]
    verdicts = []

    def target(name, ok, detail):
        verdicts.append(ok)
        w(f"| {label} | {name} | {detail} | **{'PASS' if ok else 'MISS'}** |")

    n = f"N = {big['n']:,}"
    paired = big["paired"]
    target(f"{n}: (a) ≤ 1.25 × (t)", m["a"] / m["t"] <= 1.25,
           f"{m['a'] / m['t']:.2f} (paired {paired['a/t']:.2f})")
    target(f"{n}: (c) ≤ 1.1 × bare save", m["c"] / m["s"] <= 1.1,
           f"{m['c'] / m['s']:.2f} (paired {paired['c/s']:.2f})")
    target(f"{n}: (d) ≤ 1.25 × (u)", m["d"] / m["u"] <= 1.25,
           f"{m['d'] / m['u']:.2f} (paired {paired['d/u']:.2f})")
    if big["repl"]:
        target(f"{n}: (c) makes 0 table replacements", big["repl"]["c"] == 0,
               f"{big['repl']['c']}")
    peak = max(big["rss"].values()) / 1024
    target(f"{n}: peak RSS ≤ 64 MiB", peak <= 64, f"{peak:.1f} MiB")
    larger = sorted(x for x in by_n if x > big["n"])
    if larger:
        top = by_n[larger[-1]]
        scale = top["n"] / big["n"]
        worst = max(top["med"][x] / big["med"][x] / scale for x in "acd")
        target(f"linear: per-port cost of a, c, d at N = {top['n']:,} ≤ 1.25 × at {n}",
               worst <= 1.25, f"{worst:.2f} (worst of a, c, d)")
    return all(verdicts)


def report(series, runs, info, git, at):
    out = []
    w = out.append
    header(w, series, runs, info, git)
    for label, results in series:
        series_tables(w, label, results)
    w(f"## Targets (issue 13, judged at N = {at:,} where measured)")
    w("")
    w("| series | target | measured | verdict |")
    w("|---|---|---|---|")
    ok = all([series_targets(w, label, results, at) for label, results in series])
    w("")
    intact = all(r["docker_tables_intact"] for _, rs in series for r in rs)
    w("Correctness checks of the run: "
      + ("Docker's nat and raw tables were left with every rule after `start` in every "
         "series" if intact else "**Docker rules went missing from nat/raw after start**")
      + ".")
    for label, results in series:
        big = max(results, key=lambda r: r["n"])
        w("")
        w(f"{label}, N = {big['n']:,}: (a) `start` said, then (c) `start` again:")
        w("")
        w("```")
        w(big["start_said"])
        w(big["again_said"])
        w("```")
    return "\n".join(out) + "\n", ok and intact


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sizes", default="20000,50000", help="legacy series sizes")
    ap.add_argument("--nft-sizes", default="20000", help="nft series sizes ('' for none)")
    ap.add_argument("--shapes", default="28,20.10", help="legacy series shapes")
    ap.add_argument("--nft-shapes", default="28", help="nft series shapes")
    ap.add_argument("--nft-runs", type=int, default=3)
    ap.add_argument("--at", type=int, default=20000, help="the size targets are judged at")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", required=True)
    ap.add_argument("--git", default="?")
    ap.add_argument("--quiet-wait", type=float, default=20)
    ap.add_argument("--quiet-budget", type=float, default=120)
    a = ap.parse_args()
    check_sandbox()
    # We are PID 1 of the namespace, which ignores signals it has no handler for; make
    # `kill` work (the namespace, and everything started in it, dies with us).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _: sys.exit(128 + n))
    sizes = lambda text: sorted(int(s) for s in text.split(",") if s.strip())
    shapes = lambda text: [s.strip() for s in text.split(",") if s.strip()]
    # Legacy first: the nft series name their backend, legacy runs as `auto`, which would
    # refuse once Docker's rules are in both backends' tables.
    plan = [(shape, "legacy", sizes(a.sizes), a.runs) for shape in shapes(a.shapes)]
    plan += [(shape, "nft", sizes(a.nft_sizes), a.nft_runs) for shape in shapes(a.nft_shapes)]
    plan = [p for p in plan if p[2]]
    if min(a.runs, a.nft_runs) < 1 or not plan:
        die("need at least one size and one run")
    work = "/run/iptd-bench"
    os.makedirs(work, exist_ok=True)
    log = lambda s: print(f"[bench {time.strftime('%H:%M:%S')}] {s}", file=sys.stderr,
                          flush=True)
    waiter = Quiet(a.quiet_wait, a.quiet_budget)
    series = []
    for shape, backend, ns, runs in plan:
        b = Bench(os.path.abspath(a.bin), work, "/run/iptd", backend, shape)
        series.append((b.label(), [measure(b, n, runs, log, waiter) for n in ns]))
    text, ok = report(series, (a.runs, a.nft_runs), machine(), a.git, a.at)
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    log(f"wrote {a.out}; all targets {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
