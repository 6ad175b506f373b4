#!/usr/bin/env bash
# Sourced by scripts/test.sh (and used by scripts/chaos.sh): a second local PostgreSQL cluster
# that the cluster tests and the chaos harness may restart under load without touching the
# one every other test uses. Made once with Debian's postgresql-common (trust auth on
# loopback, port 5433), started when it is not running. Exports MEDIAJOBS_CHAOS_PG (its admin
# URL) and MEDIAJOBS_CHAOS_PG_CLUSTER ("VERSION NAME", for pg_ctlcluster).
set -euo pipefail

chaos_name=mediajobs_chaos
chaos_port="${MEDIAJOBS_CHAOS_PG_PORT:-5433}"
chaos_ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
if [ -z "$chaos_ver" ] || ! command -v pg_createcluster >/dev/null 2>&1; then
  echo "pg-chaos: needs Debian's postgresql-common (pg_createcluster) and a PostgreSQL server" >&2
  exit 1
fi
if ! pg_lsclusters -h | awk -v n="$chaos_name" '$2 == n' | grep -q .; then
  echo "pg-chaos: creating cluster $chaos_ver/$chaos_name on port $chaos_port"
  pg_createcluster "$chaos_ver" "$chaos_name" -p "$chaos_port" \
    -o listen_addresses=localhost -o max_connections=300 -o fsync=off \
    -- -A trust >/dev/null
fi
chaos_port="$(pg_lsclusters -h | awk -v n="$chaos_name" '$2 == n {print $3}')"
if ! pg_lsclusters -h | awk -v n="$chaos_name" '$2 == n {print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "$chaos_ver" "$chaos_name" start
fi
export MEDIAJOBS_CHAOS_PG="postgres://postgres@127.0.0.1:$chaos_port/postgres"
export MEDIAJOBS_CHAOS_PG_CLUSTER="$chaos_ver $chaos_name"
for _ in $(seq 1 30); do
  psql "$MEDIAJOBS_CHAOS_PG" -Atc 'select 1' >/dev/null 2>&1 && break
  sleep 1
done
psql "$MEDIAJOBS_CHAOS_PG" -Atc 'select 1' >/dev/null
echo "pg-chaos: cluster $MEDIAJOBS_CHAOS_PG_CLUSTER ready on port $chaos_port"
