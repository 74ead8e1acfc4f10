#!/usr/bin/env bash
# libFuzzer harnesses of tests/fuzz/, built with clang into $FUZZ_BUILD
# (default build/fuzz), for every parser a peer controls.
#
#   scripts/fuzz.sh --ci            build, replay tests/fuzz/crashes/, then
#                                   run each harness FUZZ_CI_SECONDS (10) on
#                                   its corpus; fails on any crash, leak or UB
#   scripts/fuzz.sh [SECONDS] [NAME...]
#                                   run longer (default 300 s each), keeping
#                                   what the fuzzer finds in $FUZZ_BUILD/corpus
#   scripts/fuzz.sh --merge [NAME...]
#                                   add to tests/fuzz/corpus/NAME the inputs of
#                                   $FUZZ_BUILD/corpus/NAME that add coverage
#
# The corpus in the repo (tests/fuzz/corpus/NAME) is only read: new inputs
# go to a folder under $FUZZ_BUILD. A crash is written to
# $FUZZ_BUILD/artifacts/NAME/; minimise it with
#   $FUZZ_BUILD/fuzz_NAME -minimize_crash=1 -runs=100000 CRASH
# Every run appends "date name seconds executions result" to
# $FUZZ_BUILD/executions.tsv; the script prints the running totals.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ALL=(head httpreq httpresp lambda select registry config mgmt rest buf invoke sigv4 template channels tlsrec jwt)
build=${FUZZ_BUILD:-build/fuzz}
ci=0
merge=0
seconds=300
names=()
for a in "$@"; do
	case "$a" in
	--ci) ci=1 ;;
	--merge) merge=1 ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	[0-9]*) seconds=$a ;;
	*) names+=("$a") ;;
	esac
done
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
[ $ci -eq 1 ] && seconds=${FUZZ_CI_SECONDS:-10}

CC=${FUZZ_CC:-$(command -v clang || command -v clang-14 || true)}
if [ -z "$CC" ]; then
	echo "fuzz: clang not found (scripts/install-deps.sh installs it)" >&2
	exit 1
fi

echo "fuzz: building with $CC in $build"
cmake -S tests/fuzz -B "$build" -DCMAKE_C_COMPILER="$CC" -DFZ_STRICT="${FUZZ_STRICT:-ON}" >/dev/null || exit 1
nice cmake --build "$build" -j"$(nproc)" >"$build/build.log" 2>&1 || {
	tail -40 "$build/build.log" >&2
	echo "fuzz: build failed (full log: $build/build.log)" >&2
	exit 1
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$build/executions.tsv
failed=()

# Inputs that once crashed: each must run clean now, except the open ones
# (tests/fuzz/crashes/OPEN), whose fix has not landed yet.
replay() {
	local name=$1 f files=()
	for f in tests/fuzz/crashes/"$name"/*; do
		[ -f "$f" ] || continue
		if grep -q "^$name/$(basename "$f")[[:space:]]" tests/fuzz/crashes/OPEN 2>/dev/null; then
			echo "fuzz: $name: open finding $(basename "$f") not replayed (tests/fuzz/crashes/OPEN)"
			continue
		fi
		files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	if ! "$build/fuzz_$name" "${files[@]}" >"$build/logs/$name.replay.log" 2>&1; then
		grep -m3 -E 'ERROR|runtime error|invariant' "$build/logs/$name.replay.log"
		echo "fuzz: $name: a saved crash input still fails ($build/logs/$name.replay.log)"
		return 1
	fi
}

run() {
	local name=$1 out rc execs dict=() corpus
	if [ $ci -eq 1 ]; then
		corpus=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-fuzz-$name.XXXXXX")
	else
		corpus=$build/corpus/$name
		mkdir -p "$corpus"
	fi
	mkdir -p "$build/artifacts/$name" tests/fuzz/corpus/"$name"
	[ -f tests/fuzz/dict/"$name".dict ] && dict=(-dict=tests/fuzz/dict/"$name".dict)
	out=$build/logs/$name.log
	nice "$build/fuzz_$name" -max_total_time="$seconds" -print_final_stats=1 \
		-timeout=10 -rss_limit_mb=1024 -max_len=${FUZZ_MAX_LEN:-6000} "${dict[@]}" \
		-artifact_prefix="$build/artifacts/$name/" \
		"$corpus" tests/fuzz/corpus/"$name" >"$out" 2>&1
	rc=$?
	[ $ci -eq 1 ] && rm -rf "$corpus"
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
	execs=${execs:-0}
	if [ $rc -eq 0 ]; then
		result=ok
	else
		result=FAIL
		grep -m5 -E 'ERROR|runtime error|invariant|SUMMARY|Test unit written' "$out"
	fi
	printf '%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$name" "$seconds" "$execs" "$result" >>"$log"
	printf 'fuzz: %-9s %-4s %12s executions in %s s (log: %s)\n' "$name" "$result" "$execs" "$seconds" "$out"
	[ $rc -eq 0 ]
}

mkdir -p "$build/logs"
if [ $merge -eq 1 ]; then
	for name in "${names[@]}"; do
		[ -d "$build/corpus/$name" ] || continue
		n=$(ls tests/fuzz/corpus/"$name" | wc -l)
		"$build/fuzz_$name" -merge=1 -max_len=${FUZZ_MAX_LEN:-6000} tests/fuzz/corpus/"$name" \
			"$build/corpus/$name" >"$build/logs/$name.merge.log" 2>&1 || {
			echo "fuzz: $name: merge failed ($build/logs/$name.merge.log)"; exit 1; }
		echo "fuzz: $name: corpus $n -> $(ls tests/fuzz/corpus/"$name" | wc -l) inputs"
	done
	exit 0
fi
for name in "${names[@]}"; do
	if [ ! -x "$build/fuzz_$name" ]; then
		echo "fuzz: no harness named $name (${ALL[*]})" >&2
		exit 2
	fi
	replay "$name" || { failed+=("$name"); continue; }
	run "$name" || failed+=("$name")
done

# Totals over every run recorded in this build folder.
awk -F'\t' '{ n[$2] += $4 } END { for (k in n) printf "fuzz: total %-9s %12d executions\n", k, n[k] }' "$log" | sort
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz: all harnesses ran clean"
