#!/usr/bin/env bash
# The container image and the compose stack, checked with podman, offline: build
# localhost/musit:dev from the host's release binary (MUSIT_BIN; the one
# scripts/release-smoke.sh built when present), run it as a user would
# (Tests/deploy/container.py), then compose.yaml's services profile (Tests/deploy/compose.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/containers.conf}
export MUSIT_TEST_AUDIO=${MUSIT_TEST_AUDIO:-$root/.build/test-audio}
if [ -z "${MUSIT_BIN:-}" ] && [ -x .build/release/musit-tui ]; then
    export MUSIT_BIN=$root/.build/release/musit-tui
fi
scripts/make-image.sh
python3 Tests/deploy/container.py
# The alert rules and Prometheus's configuration: valid, their unit tests green, and every
# metric they read exported by Musit.
promtool check config deploy/prometheus/prometheus.yml > /dev/null
promtool test rules deploy/prometheus/alerts_test.yml
python3 Tests/deploy/rules_metrics.py
# The compose stack: its files valid, the services profile under podman-compose beside a
# throwaway PostgreSQL, the dashboard's queries answered by a real Prometheus, the logs.
scripts/generate-dashboard.py --check
scripts/with-postgres.sh python3 Tests/deploy/compose.py
