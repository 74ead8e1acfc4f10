#!/usr/bin/env bash
# The modules' dependency graph, read from the object files' symbols: for
# each .o of the gateway (build/, plain variant), the gw_* symbols it uses
# and the module that defines them. Prints each module's dependencies, the
# cycles (strongly connected groups of more than one module), whether the
# graph is acyclic, and its layers (0: the leaves; a module's layer is one
# more than its highest dependency's). Build first.
#   scripts/deps.sh [BUILD_DIR] [-v]   (-v: the symbols behind each edge)
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
verbose=0
for a in "$@"; do
  case "$a" in
    -v) verbose=1 ;;
    *) build=$a ;;
  esac
done
objs=$(ls "$build"/CMakeFiles/gwcore.dir/src/*.o "$build"/CMakeFiles/gwcore.dir/mgmt-api/*.o \
          "$build"/CMakeFiles/wsgate.dir/src/main.c.o 2>/dev/null) || true
if [ -z "$objs" ]; then
  echo "deps.sh: no object files under $build (build first)" >&2
  exit 2
fi
for o in $objs; do
  m=$(basename "$o" .c.o)
  # Defined (any section) and undefined gw_* symbols; static ones are local
  # (lower-case type) and never cross a module.
  nm "$o" | awk -v m="$m" '
    $1 == "U" && $2 ~ /^gw_/ { print m, "U", $2; next }
    NF == 3 && $2 ~ /^[A-Z]$/ && $3 ~ /^gw_/ { print m, "D", $3 }'
done | python3 -c '
import sys, collections
verbose = sys.argv[1] == "1"
defs, uses = {}, collections.defaultdict(set)
mods = set()
for line in sys.stdin:
    m, k, s = line.split()
    mods.add(m)
    if k == "D":
        defs[s] = m
    else:
        uses[m].add(s)
edges = collections.defaultdict(lambda: collections.defaultdict(list))
for m, ss in uses.items():
    for s in sorted(ss):
        d = defs.get(s)
        if d and d != m:
            edges[m][d].append(s)
mods = sorted(mods)
print("module dependencies (module -> modules whose gw_* symbols it uses):")
for m in mods:
    print("  %-16s -> %s" % (m, " ".join(sorted(edges[m])) or "(none)"))
    if verbose:
        for d in sorted(edges[m]):
            print("      %s: %s" % (d, " ".join(edges[m][d])))
# Tarjan: strongly connected components.
index, low, on, stack, sccs, n = {}, {}, set(), [], [], [0]
sys.setrecursionlimit(10000)
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1
    stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        sccs.append(sorted(c))
for v in mods:
    if v not in index:
        visit(v)
comp = {v: i for i, c in enumerate(sccs) for v in c}
cycles = [c for c in sccs if len(c) > 1]
if cycles:
    print("cycles:")
    for c in cycles:
        print("  {" + ", ".join(c) + "}")
        for a in c:
            for b in sorted(edges[a]):
                if b in c:
                    print("      %s -> %s: %s" % (a, b, " ".join(edges[a][b])))
    print("acyclic: no (%d cycle%s; layers below count each cycle as one node)"
          % (len(cycles), "" if len(cycles) == 1 else "s"))
else:
    print("acyclic: yes")
# Layers over the condensation (Tarjan emits components dependencies-first).
layer = {}
for i, c in enumerate(sccs):
    deps = {comp[w] for v in c for w in edges[v]} - {i}
    layer[i] = 1 + max((layer[d] for d in deps), default=-1)
by = collections.defaultdict(list)
for i, c in enumerate(sccs):
    by[layer[i]].append("{" + ",".join(c) + "}" if len(c) > 1 else c[0])
print("layers (0 = leaves):")
for l in sorted(by):
    print("  %2d: %s" % (l, " ".join(sorted(by[l]))))
sys.exit(1 if cycles else 0)
' "$verbose"
