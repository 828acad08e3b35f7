#!/usr/bin/env bash
# PostgreSQL server binaries for the audit store's tests (engine/audit/postgres/pgtest
# runs its own throwaway server: initdb + pg_ctl as the postgres user). Idempotent.
set -euo pipefail
if command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
# Debian keeps the server binaries off the PATH; pgtest looks in /usr/lib/postgresql/*/bin.
ls /usr/lib/postgresql/*/bin/initdb
id postgres >/dev/null
