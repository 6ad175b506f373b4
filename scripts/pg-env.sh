#!/usr/bin/env bash
# Sourced by scripts/test.sh: makes sure a local PostgreSQL runs and exports MEDIAJOBS_TEST_PG,
# the admin URL the tests create their throw-away databases with.
set -euo pipefail

pg_url="${MEDIAJOBS_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
pg_ok() { psql "$1" -Atc 'select 1' >/dev/null 2>&1; }

if ! pg_ok "$pg_url"; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql 2>/dev/null); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do pg_ok "$pg_url" && break; sleep 1; done
  fi
fi
if ! pg_ok "$pg_url" && [ -z "${MEDIAJOBS_TEST_PG:-}" ] && command -v runuser >/dev/null 2>&1; then
  # A stock Debian cluster wants a password on TCP: give the postgres role one for the tests.
  runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 || true
  pg_url="postgres://postgres:postgres@127.0.0.1:5432/postgres"
fi
if ! pg_ok "$pg_url"; then
  echo "pg-env: no PostgreSQL reachable at $pg_url (set MEDIAJOBS_TEST_PG)" >&2
  exit 1
fi
export MEDIAJOBS_TEST_PG="$pg_url"
echo "pg-env: PostgreSQL ready ($(psql "$pg_url" -Atc 'show server_version'))"
