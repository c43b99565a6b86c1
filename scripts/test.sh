#!/usr/bin/env bash
# `make test`: every tier, as two pytest processes at once on this machine's cores.
#
#   shared: unit, integration, cluster, compat, slurm — in tier order, sharing this process's
#           SparkSessions (local[2], local-cluster[2,1,1024]) and prepared datasets across their tests;
#   apart:  scale, e2e, hosts — a session of its own for jobs on a million rows, and tiers whose
#           Spark clusters, Connect servers, notebooks and network namespaces are processes of
#           their own, on ports of their own.
#
# Much of each tier is waiting (JVMs starting, executors registering, timeouts being
# reached), so the two overlap. The apart stream's output is kept in a log and shown after
# the shared one's; either failing (or collecting nothing: pytest's status 5) fails the run.
# SPARKDL_TEST_SERIAL=1 runs the tiers one after another in one process instead.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}

if [[ "${SPARKDL_TEST_SERIAL:-0}" == "1" ]]; then
    exec "$PY" -m pytest -ra "$@"
fi

base=$(mktemp -d -t sparkdl-tests-XXXXXX)
apart=""
trap '[[ -n "$apart" ]] && kill "$apart" 2>/dev/null; rm -rf "$base"' EXIT
"$PY" -m pytest -ra --durations=15 -p no:cacheprovider --basetemp="$base/apart" tests/scale tests/e2e tests/hosts "$@" \
    > "$base/apart.log" 2>&1 &
apart=$!
"$PY" -m pytest -ra --durations=25 --basetemp="$base/shared" tests/unit tests/integration tests/cluster tests/compat tests/slurm "$@"
shared_status=$?
wait "$apart"
apart_status=$?
apart=""
echo
echo "================ scale, e2e and hosts tiers (run alongside the tiers above) ================"
cat "$base/apart.log"
echo "shared tiers: exit ${shared_status}; scale, e2e and hosts tiers: exit ${apart_status}"
[[ $shared_status -eq 0 && $apart_status -eq 0 ]]
