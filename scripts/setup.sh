#!/usr/bin/env bash
# Set up this machine for cutover's tests and demo, then run a command:
#
#   scripts/setup.sh make check              # what `make test` does
#   scripts/setup.sh --demo make demo-run    # what `make demo` does
#
# On Debian as root it installs what is missing (Docker engine, busybox-static,
# nginx-light, git, python3-venv, chromium and chromium-driver for the dashboard's
# browser test; jq and shellcheck for the aws-smoke script's test; moto[server],
# cfn-lint, checkov, schemathesis and awscli from PyPI
# into a virtualenv; pebble, the ACME test server, with go install), starts dockerd when no engine answers, runs the command
# with every test dependency REQUIRED (a missing one fails its tests instead of
# skipping them), and at the end stops the dockerd it started, by its PID.
# With --demo it installs only what the demo needs (the Docker engine, git,
# curl): the test tools take minutes to install and the demo uses none.
# Not root, it prints exactly what to run and exits 1 when something is missing.
# A nested call (CUTOVER_SETUP_DONE=1) only runs the command.
set -euo pipefail

demo=0
if [ "${1:-}" = --demo ]; then demo=1; shift; fi
if [ "${CUTOVER_SETUP_DONE:-}" = 1 ]; then exec "$@"; fi
[ $# -gt 0 ] || { echo "usage: scripts/setup.sh [--demo] COMMAND [ARG]..." >&2; exit 2; }

say() { echo "setup: $*" >&2; }

# Python test tools live in their own virtualenv: Debian's python3 refuses
# system-wide pip installs (PEP 668).
tools="${CUTOVER_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/cutover-tools}"
export PATH="$tools/bin:/usr/local/go/bin:$PATH:/usr/sbin:/sbin"

command -v go >/dev/null 2>&1 || {
  say "the Go toolchain is not on PATH: install Go 1.26 or newer (https://go.dev/doc/install) and run again"
  exit 1
}

apt_need=()
command -v dockerd >/dev/null 2>&1 || apt_need+=(docker.io)
command -v docker >/dev/null 2>&1 || apt_need+=(docker.io)
command -v git >/dev/null 2>&1 || apt_need+=(git)
command -v curl >/dev/null 2>&1 || apt_need+=(curl) # make demo
py_need=0
pebble_need=0
if [ "$demo" = 0 ]; then
  [ -x /usr/bin/chromium ] || apt_need+=(chromium)                                      # dashboard browser test
  command -v chromedriver >/dev/null 2>&1 || apt_need+=(chromium-driver)
  [ -x /bin/busybox ] || apt_need+=(busybox-static)
  [ -x /usr/sbin/nginx ] || apt_need+=(nginx-light)
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || apt_need+=(haproxy) # bench: proxy comparison
  command -v wrk >/dev/null 2>&1 || apt_need+=(wrk)                                     # bench: load
  command -v sha256sum >/dev/null 2>&1 || apt_need+=(coreutils)
  [ -r /etc/ssl/certs/ca-certificates.crt ] || apt_need+=(ca-certificates)              # make image
  command -v jq >/dev/null 2>&1 || apt_need+=(jq)                                       # aws-smoke's test
  command -v shellcheck >/dev/null 2>&1 || apt_need+=(shellcheck)
  for t in moto_server cfn-lint checkov schemathesis; do command -v "$t" >/dev/null 2>&1 || py_need=1; done
  aws --version >/dev/null 2>&1 || py_need=1 # missing, or broken (awscli beside an older botocore)
  if [ "$py_need" = 1 ] && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_need+=(python3-venv)
  fi
  command -v pebble >/dev/null 2>&1 || pebble_need=1
fi
# Unique, in order.
mapfile -t apt_need < <(printf '%s\n' ${apt_need[@]+"${apt_need[@]}"} | awk 'NF && !seen[$0]++')

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# Pebble, Let's Encrypt's ACME test server (the proxy's ACME tests), is a Go
# program, installed with the Go toolchain into $tools/bin.
pebble_version=v2.10.3
pebble_install="GOBIN=$tools/bin go install github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version"

if [ "$(id -u)" != 0 ]; then
  missing=0
  if [ ${#apt_need[@]} -gt 0 ]; then
    say "missing Debian packages; run:  sudo apt-get update && sudo apt-get install -y ${apt_need[*]}"
    missing=1
  fi
  if [ "$pebble_need" = 1 ]; then
    say "missing pebble (the ACME test server); run:  $pebble_install"
    missing=1
  fi
  if [ "$py_need" = 1 ]; then
    say "missing moto_server/cfn-lint/checkov/schemathesis/aws; run:  python3 -m venv $tools && $tools/bin/pip install 'moto[server]' cfn-lint checkov schemathesis awscli"
    missing=1
  fi
  if [ $missing = 0 ] && ! engine_up; then
    say "no Docker engine answers; run:  sudo systemctl start docker && sudo usermod -aG docker $(id -un)  (then log in again)"
    missing=1
  fi
  [ $missing = 0 ] || { say "then run this command again"; exit 1; }
fi

if [ ${#apt_need[@]} -gt 0 ]; then
  say "installing ${apt_need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_need[@]}" >/dev/null
  hash -r
fi
if [ "$pebble_need" = 1 ]; then
  say "installing pebble $pebble_version into $tools/bin"
  mkdir -p "$tools/bin"
  GOBIN="$tools/bin" go install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version"
  hash -r
fi
if [ "$py_need" = 1 ]; then
  say "installing moto[server], cfn-lint, checkov, schemathesis and awscli into $tools"
  [ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
  # schemathesis 4.32 or later: it generates a pattern's $ as an end (\Z), where an
  # older one, through hypothesis' from_regex, could send "24h\n" as valid data
  "$tools/bin/pip" install -q 'moto[server]' cfn-lint checkov 'schemathesis>=4.32' awscli
  hash -r
fi

dockerd_pid=""
stop_dockerd() {
  [ -n "$dockerd_pid" ] || return 0
  say "stopping the dockerd this script started (pid $dockerd_pid)"
  kill -TERM "$dockerd_pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  kill -KILL "$dockerd_pid" 2>/dev/null || true
  dockerd_pid=""
}
trap stop_dockerd EXIT
trap 'exit 130' INT TERM

if ! engine_up; then
  log="${TMPDIR:-/tmp}/cutover-setup-dockerd.log"
  say "starting dockerd (log: $log)"
  dockerd >"$log" 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 60); do engine_up && break; kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
  engine_up || { say "dockerd did not answer within 60s:"; tail -20 "$log" >&2; exit 1; }
  export CUTOVER_SETUP_STARTED_DOCKERD=1
fi
if [ "$demo" = 0 ] && [ "${CUTOVER_REQUIRE_TOOLS:-1}" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  say "/usr/bin/chromium is missing after the install (the dashboard's browser test needs it): apt-get install -y chromium chromium-driver"
  exit 1
fi
say "docker engine $(docker version --format '{{.Server.Version}}'), $(go version | cut -d' ' -f3), git $(git --version | cut -d' ' -f3)"

# Every test dependency is required from here on: a missing one fails.
[ "$demo" = 1 ] || export CUTOVER_REQUIRE_DOCKER=1 CUTOVER_REQUIRE_AWS_TOOLS=1 CUTOVER_REQUIRE_TOOLS=1
export CUTOVER_SETUP_DONE=1
status=0
"$@" || status=$?
exit $status
