#!/usr/bin/env bash
# Runs each cargo-fuzz target for SECONDS (default 600), one after the other.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      (targets: ruleset_parse config_load; default both)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The stable toolchain is driven with
# RUSTC_BOOTSTRAP=1 for the nightly flags cargo-fuzz passes (sanitizer, coverage).
# Corpora grow in fuzz/corpus/<target>/ (seeded from fuzz/seeds/ and, for the parser,
# from ../shared/fixtures/docker when it is there); a crash, timeout or OOM is written to
# fuzz/artifacts/<target>/ and the log to fuzz/logs/<target>.log. Not part of CI.
# Exits non-zero if any target found something.
set -uo pipefail
cd "$(dirname "$0")" || exit

seconds="${1:-600}"
shift || true
targets=(ruleset_parse config_load)
[ "$#" -gt 0 ] && targets=("$@")
export RUSTC_BOOTSTRAP=1

mkdir -p logs
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target"
done
fixtures=../../shared/fixtures/docker
if [ -d "$fixtures" ]; then
  find "$fixtures" -name '*.rules' -exec cp -n -t corpus/ruleset_parse {} +
fi

cargo fuzz build || exit 1
failed=()
for target in "${targets[@]}"; do
  dict=dict/ruleset.dict
  [ "$target" = config_load ] && dict=dict/config.dict
  echo "== $target: ${seconds}s"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -dict="$dict" -print_final_stats=1 >"logs/$target.log" 2>&1; then
    failed+=("$target")
    echo "!! $target found a problem: see fuzz/logs/$target.log and fuzz/artifacts/$target/"
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' \
    "logs/$target.log" | sed 's/^/   /'
  grep -E '^(#[0-9]+[[:space:]]+DONE|==[0-9]+== ERROR|SUMMARY)' "logs/$target.log" | tail -3 | sed 's/^/   /'
  echo "   corpus: $(find "corpus/$target" -type f | wc -l) inputs"
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "problems found by: ${failed[*]}"
  exit 1
fi
echo "no crash, timeout or OOM in ${#targets[@]} targets x ${seconds}s"
