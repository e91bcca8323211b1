#!/usr/bin/env bash
# make image-test: builds the Dockerfile with podman from Debian's packages alone and runs the
# image for real on loopback. As root, on a Debian machine:
#   1. installs podman, runc and debootstrap if missing;
#   2. without debian:trixie-slim in podman's storage, makes it: debootstrap --variant=minbase
#      from the Debian mirror apt already uses, then podman import;
#   3. builds the image (--pull=never --network=host), Maven offline against a copy of the local
#      Maven repository that make filled;
#   4. runs it with --network=host on free loopback ports and checks: the example API answers,
#      a POST with a body, 503 when the queue is full, the HEALTHCHECK, a non-root user, and
#      SIGTERM (podman stop) finishing the request in flight and exiting 0 with no process left;
#   5. removes the container and the image; the base image and the two images of Debian's
#      packages (localhost/valve-image-test-cache) stay, so that later runs take well under
#      a minute.
# Every container and process it starts, it stops by ID (trap). Prints its steps with times.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CONTAINERS_CONF=$root/tools/containers.conf
base=docker.io/library/debian:trixie-slim
image=localhost/valve-image-test:$$
cache=localhost/valve-image-test-cache
started=$SECONDS

step() { printf '[image-test %3ds] %s\n' $((SECONDS - started)) "$*"; }
fail() { printf 'image-test: FAILED: %s\n' "$*" >&2; exit 1; }

container=""
images=()
work=$(mktemp -d /var/tmp/valve-image-test.XXXXXX)
pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$container" ]; then
    if [ "$status" -ne 0 ]; then
      echo "--- container log (last 40 lines) ---" >&2
      podman logs --tail 40 "$container" >&2 2>&1 || true
    fi
    podman rm --force --time 0 "$container" >/dev/null 2>&1 || true
    grep -sv 'systemd' "$work/podman.log" >&2 || true
  fi
  for name in "${images[@]}"; do podman rmi --force "$name" >/dev/null 2>&1 || true; done
  # debootstrap leaves /proc etc. mounted in the target if it fails half-way.
  if [ -d "$work/rootfs" ]; then
    findmnt -Rrno TARGET "$work/rootfs" 2>/dev/null | sort -r | while read -r mnt; do umount -l "$mnt" || true; done
  fi
  rm -rf --one-file-system "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || fail "must run as root (podman builds and runs images as root here)"

# 1. Tools.
missing=$(for p in podman runc debootstrap curl iproute2; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
done)
if [ -n "$missing" ]; then
  step "installing" $missing
  apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# 2. The base image, from Debian's own packages.
if podman image exists "$base"; then
  step "$base is in local storage"
else
  # The mirror of Debian's main archive that apt uses here (not the security archive).
  mirror=$(apt-get indextargets --format '$(ORIGIN) $(LABEL) $(RELEASE) $(REPO_URI)' |
    awk '$1 == "Debian" && $2 == "Debian" && $3 !~ /-/ { print $4; exit }')
  [ -n "$mirror" ] || fail "no Debian mirror in apt's sources (apt-get indextargets)"
  step "making $base: debootstrap --variant=minbase trixie from $mirror"
  debootstrap --variant=minbase trixie "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  # As Debian's -slim images: no documentation from packages installed later, no apt caches.
  cat >"$work/rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
  rm -rf "$work"/rootfs/var/lib/apt/lists/* "$work"/rootfs/var/cache/apt/*.bin
  tar -C "$work/rootfs" --numeric-owner -c . | podman import --change 'CMD ["bash"]' - "$base" >/dev/null 2>>"$work/podman.log"
  rm -rf --one-file-system "$work/rootfs"
  step "imported $base"
fi

# 3. The image. Maven runs offline against a copy of the local repository that `make jars`
# filled (a copy: Maven may write to its repository, and the build must not touch ours).
repository=${MAVEN_REPOSITORY:-$HOME/.m2/repository}
[ -d "$repository/io/helidon" ] || fail "$repository has no Helidon: run make jars first"
cp -a "$repository" "$work/m2"
build() { # name, then podman build's own arguments
  local name=$1
  shift
  step "building $name"
  podman build --pull=never --network=host --format docker \
    --volume "$work/m2:/root/.m2/repository" --build-arg MAVEN_ARGS=--offline \
    "$@" . >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; fail "podman build $name (log above)"; }
}
# The stages that only install Debian's packages are tagged, so that their layers stay cached
# for the next run (removing an image removes its untagged parents); the stage that builds
# valve is tagged too, so that removing it removes its layers.
for stage in build-base runtime-base; do
  before=$(podman image inspect --format '{{.Id}}' "$cache:$stage" 2>/dev/null || true)
  build "$cache:$stage" --target "$stage" --tag "$cache:$stage"
  # When the Dockerfile's packages changed, the image they replace goes.
  if [ -n "$before" ] && [ "$before" != "$(podman image inspect --format '{{.Id}}' "$cache:$stage")" ]; then
    podman rmi "$before" >/dev/null 2>&1 || true
  fi
done
images+=("$image-build")
build "$image-build" --target build --tag "$image-build"
images+=("$image")
build "$image" --tag "$image"
rm -rf "$work/m2"
step "built $image ($(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MiB", $1 / 1048576 }'))"

# 4. Run it on loopback: host networking (never -p, whose bridge leaves loopback), valve on
# 127.0.0.1, one worker and a queue of one so a third concurrent request finds it full.
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    [ -z "$(ss -Htln "sport = :$port")" ] && { echo "$port"; return; }
  done
  fail "no free port"
}
port=$(free_port)
admin=$(free_port)
[ "$port" != "$admin" ] || admin=$(free_port)
url=http://127.0.0.1:$port
admin_url=http://127.0.0.1:$admin
# podman 4.3 says on stderr, at run, stop and rm, that it cannot reach systemd to time the
# health check even when told not to (--health-interval=disable): kept in podman.log.
container=$(podman run --detach --network=host --health-interval=disable \
  -e VALVE_HOST=127.0.0.1 -e PORT="$port" -e VALVE_ADMIN_PORT="$admin" \
  -e VALVE_N_MAX=1 -e VALVE_QUEUE_MAX=1 "$image" 2>>"$work/podman.log")
step "running container ${container:0:12} on $url (admin $admin_url)"

# Ready: valve's readiness probe answers 200 once its first worker does.
for _ in $(seq 240); do
  [ "$(podman inspect --format '{{.State.Running}}' "$container")" = true ] || fail "the container exited"
  curl -fs -o /dev/null --max-time 2 "$admin_url/readyz" && break
  sleep 0.5
done
curl -fs -o /dev/null --max-time 2 "$admin_url/readyz" || fail "not ready after 120 s"
step "ready"

expect_contains() { # what, text, needle
  grep -qF -- "$3" <<<"$2" || fail "$1: expected '$3' in: $2"
}
# One request's body, then its status on a last line (000 when curl itself failed).
request() { curl -s --max-time 30 -w '\n%{http_code}' "$@" || true; }
status_of() { tail -n 1 <<<"$1"; }

out=$(request "$url/hello?name=image")
[ "$(status_of "$out")" = 200 ] || fail "GET /hello: $out"
expect_contains "GET /hello" "$out" '"Hello, image!"'
step "GET /hello: 200 $(head -n 1 <<<"$out")"

head -c 100000 /dev/zero >"$work/body"
out=$(request -X POST --data-binary @"$work/body" -H 'Content-Type: application/octet-stream' "$url/echo")
[ "$(status_of "$out")" = 200 ] || fail "POST /echo: $out"
expect_contains "POST /echo" "$out" '"bytes":[100000]'
step "POST /echo with 100000 bytes: 200 $(head -n 1 <<<"$out")"

# Queue full: one request holds the only worker, a second waits in the queue (queue_max 1),
# a third gets 503 at once.
metric() { curl -fs --max-time 2 "$admin_url/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
wait_metric() { # metric, value
  for _ in $(seq 100); do
    [ "$(metric "$1")" = "$2" ] && return
    sleep 0.1
  done
  fail "$1 did not reach $2 (is $(metric "$1"))"
}
request "$url/sleep?ms=4000" >"$work/slow1" &
pids+=($!)
wait_metric 'valve_workers{state="busy"}' 1.0
request "$url/sleep?ms=10" >"$work/slow2" &
pids+=($!)
wait_metric valve_queue_length 1.0
out=$(request -D "$work/headers" "$url/hello")
[ "$(status_of "$out")" = 503 ] || fail "third request with the queue full: $out"
grep -qi '^retry-after: 1' "$work/headers" || fail "503 without Retry-After: $(cat "$work/headers")"
expect_contains "503 body" "$out" "valve:"
wait "${pids[@]}" || true
pids=()
[ "$(status_of "$(cat "$work/slow1")")" = 200 ] || fail "the request holding the worker: $(cat "$work/slow1")"
[ "$(status_of "$(cat "$work/slow2")")" = 200 ] || fail "the queued request: $(cat "$work/slow2")"
[ "$(metric 'valve_errors_total{code="503",reason="queue_full"}')" = 1.0 ] || fail "queue_full not counted once"
step "queue full: 503 with Retry-After; the running and the queued request got 200"

# The image's HEALTHCHECK (run on demand: there is no systemd here to time it).
podman healthcheck run "$container" >/dev/null || fail "HEALTHCHECK: unhealthy"
step "HEALTHCHECK: healthy"

# Not root: every process in the container runs as the image's user.
users=$(podman top "$container" user | tail -n +2 | sort -u | tr '\n' ' ')
[ "$users" = "valve " ] || fail "processes run as: $users"
step "every process runs as user valve"

# SIGTERM: podman stop sends it (the image's STOPSIGNAL) and kills only after 30 s; valve must
# let the request in flight finish, stop its worker and exit 0 by itself. The host's pids of
# every process in the container:
hpids=$(podman top "$container" hpid | tail -n +2 | tr '\n' ' ')
[ "$(wc -w <<<"$hpids")" -ge 3 ] || fail "expected tini, java and a worker, got pids: $hpids"
request "$url/sleep?ms=2000" >"$work/in-flight" &
pids+=($!)
wait_metric 'valve_workers{state="busy"}' 1.0
podman stop --time 30 "$container" >/dev/null 2>>"$work/podman.log"
wait "${pids[@]}" || true
pids=()
[ "$(status_of "$(cat "$work/in-flight")")" = 200 ] || fail "the request in flight at SIGTERM: $(cat "$work/in-flight")"
code=$(podman inspect --format '{{.State.ExitCode}}' "$container")
[ "$code" = 0 ] || fail "exit status after SIGTERM: $code"
for pid in $hpids; do
  ! kill -0 "$pid" 2>/dev/null || fail "process $pid of the container is still running"
done
log=$(podman logs "$container" 2>&1)
grep -q '\[valve\] stopped$' <<<"$log" || fail "valve did not log that it stopped"
step "SIGTERM: the request in flight got 200, exit 0, all $(wc -w <<<"$hpids") processes gone"

# 5. Clean up (the trap does the same on any failure).
podman rm "$container" >/dev/null 2>>"$work/podman.log"
container=""
podman rmi "$image" "$image-build" >/dev/null
images=()
step "passed: container and images removed ($base and $cache stay for the next run)"
