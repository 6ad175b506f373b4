#!/usr/bin/env bash
# The container image's final stage (Dockerfile), also run by CI (scripts/container-check.sh):
# the runtime packages only, and a dedicated system user `mediajobs` (uid/gid 10001, which
# the Dockerfile's USER names) owning the data dir.
# Usage: scripts/container-runtime.sh DATA_DIR
set -euo pipefail
here="$(dirname "$0")"
data="${1:?usage: scripts/container-runtime.sh DATA_DIR}"

"$here/setup.sh" --runtime
if ! id -u mediajobs >/dev/null 2>&1; then
  ids=()
  if ! getent passwd 10001 >/dev/null && ! getent group 10001 >/dev/null; then
    groupadd --system --gid 10001 mediajobs
    ids=(--uid 10001 --gid 10001)
  else
    ids=(--user-group)   # a host that has 10001 taken (CI machines): any free id
  fi
  useradd --system "${ids[@]}" --home-dir "$data" --no-create-home \
          --shell /usr/sbin/nologin mediajobs
fi
mkdir -p "$data"
chown mediajobs:mediajobs "$data"
chmod 0750 "$data"
