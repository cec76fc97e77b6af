#!/usr/bin/env bash
# Build the real docker/Dockerfile with podman and check the image as its users use it.
#
#   make image-check          (this script; about 45 minutes cold, a release build inside
#                              the image; under 5 minutes when only our crates changed)
#
# 1. Installs podman and friends when missing (Debian), with the settings this machine kind
#    needs in a containers.conf of its own (CONTAINERS_CONF): runc (crun refuses hybrid
#    cgroups) and ulimits within the host's hard limit.
# 2. Makes the FROM images when missing, since no registry can be reached here:
#    debian:bookworm-slim from mmdebstrap (with the host's extra CA certificates: egress goes
#    through an intercepting proxy), rust:1-bookworm from it plus the host's Rust toolchain
#    (docker/base/rust-bookworm.Containerfile). Both tagged docker.io/library/... so the
#    Dockerfile is the one real Docker users build.
# Measured on this machine kind (2 cores): ~20 min with the dependencies cached, 281 s of
# build after a one-line change in kalamdb-core, 156 MB image (docs/adr/0012).
# 3. Builds docker/Dockerfile (--format docker keeps HEALTHCHECK), then checks: /health,
#    the README quickstart's SQL through the published port, a flush whose Parquet file lands
#    in the named volume, the process runs as the non-root user, HEALTHCHECK healthy,
#    `podman stop` with a long statement running -> exit 0 within podman's default 10 s grace
#    (PID 1, no --init), a new container on the same volume sees every row, an arbitrary uid
#    in group 0 runs on a new volume, and docker-compose (docker/docker-compose.yml) through
#    the podman socket. Prints times and the image size.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${KALAMDB_IMAGE_STATE:-$HOME/.cache/kalamdb-image}"
IMAGE="${KALAMDB_IMAGE:-localhost/kalamdb:check}"
PORT="${KALAMDB_IMAGE_PORT:-18080}"
VOLUME=kalamdb-image-check
NAME=kalamdb-image-check
PASSWORD=image-check-secret
# KALAMDB_IMAGE_PROFILE=dist checks the published image's smaller binary (ADR 0012; the build
# then takes about an hour here).
mkdir -p "$STATE"

step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }
fail() { echo "image-check: FAILED: $*" >&2; exit 1; }

tools() {
    local missing=()
    for t in podman buildah runc mmdebstrap docker-compose slirp4netns fuse-overlayfs newuidmap; do
        command -v "$t" >/dev/null || missing+=("$t")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" -eq 0 ] || fail "missing ${missing[*]}: run as root or install podman buildah runc uidmap slirp4netns fuse-overlayfs mmdebstrap docker-compose"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            podman buildah runc uidmap slirp4netns fuse-overlayfs mmdebstrap docker-compose >/dev/null
    fi
    local nofile
    nofile="$(ulimit -Hn)"
    cat > "$STATE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
    export CONTAINERS_CONF="$STATE/containers.conf"
}

base_images() {
    if ! podman image exists docker.io/library/debian:bookworm-slim; then
        step "making debian:bookworm-slim (mmdebstrap)"
        mmdebstrap --variant=minbase --include=ca-certificates \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
            --customize-hook='chroot "$1" update-ca-certificates' \
            --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
            bookworm - 2>"$STATE/mmdebstrap.log" \
            | podman import --change 'CMD ["bash"]' - docker.io/library/debian:bookworm-slim >/dev/null
    fi
    if ! podman image exists docker.io/library/rust:1-bookworm; then
        step "making rust:1-bookworm (host toolchain)"
        local toolchain="$HOME/.rustup/toolchains/stable-x86_64-unknown-linux-gnu"
        [ -d "$toolchain" ] || fail "no stable toolchain at $toolchain"
        podman build --format docker --build-context rustup="$toolchain" \
            --build-context cargobin="$HOME/.cargo/bin" \
            -f docker/base/rust-bookworm.Containerfile -t docker.io/library/rust:1-bookworm docker/base
    fi
}

sql_as() {
    curl -fsS -u "$1" -H 'content-type: application/json' \
        --data-binary "$(python3 -c 'import json,sys; print(json.dumps({"sql": sys.argv[1]}))' "$2")" \
        "http://127.0.0.1:$PORT/v1/api/sql"
}
curl_sql() { sql_as "root:$PASSWORD" "$1"; }

wait_health() {
    for _ in $(seq 1 150); do
        curl -fsS "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"status":"ok"' && return 0
        sleep 0.2
    done
    podman logs "$NAME" >&2 || true
    fail "/health did not answer on port $PORT"
}

run_container() {
    # Root comes in as root's loopback rule does not apply: the published port is not
    # loopback inside the container, so the password is the way in (as for every user).
    # No systemd here to schedule the HEALTHCHECK (podman would log an error per container):
    # the check calls `podman healthcheck run`, which runs the image's command on demand.
    podman run -d --name "$NAME" --health-interval=disable -p "127.0.0.1:$PORT:8080" -v "$VOLUME:/data" \
        -e KALAMDB_ROOT_PASSWORD="$PASSWORD" "$IMAGE" >/dev/null
    wait_health
}

stop_container() {
    local started status
    started=$(date +%s.%N)
    podman stop -t "${GRACE:-40}" "$NAME" >/dev/null
    status="$(podman inspect -f '{{.State.ExitCode}}' "$NAME")"
    printf 'stopped in %.1f s, exit status %s\n' "$(echo "$(date +%s.%N) - $started" | bc)" "$status"
    [ "$status" = 0 ] || { podman logs "$NAME" | tail -20 >&2; fail "exit status $status after SIGTERM"; }
    podman rm "$NAME" >/dev/null
}

check() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    step "run"
    run_container
    echo "health: $(curl -fsS "http://127.0.0.1:$PORT/health")"
    # The image has no shell: look at the server process from the host.
    local pid uid nspid
    pid="$(podman inspect -f '{{.State.Pid}}' "$NAME")"
    uid="$(awk '/^Uid:/{print $2}' "/proc/$pid/status")"
    nspid="$(awk '/^NSpid:/{print $NF}' "/proc/$pid/status")"
    [ "$uid" != 0 ] || fail "the server runs as root"
    [ "$nspid" = 1 ] || fail "the server is not PID 1 in its container (NSpid $nspid)"
    echo "server: $(cat "/proc/$pid/comm"), uid $uid, PID 1 in the container"
    if podman exec "$NAME" sh -c true >/dev/null 2>&1; then fail "the image has a shell"; fi
    echo "no shell in the image"
    step "the README quickstart through the published port"
    curl_sql "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY DEFAULT SNOWFLAKE_ID(), body TEXT NOT NULL, created_at TIMESTAMP DEFAULT NOW()); CREATE USER 'alice' WITH PASSWORD 'alice-pw' ROLE user; CREATE USER 'bob' WITH PASSWORD 'bob-pw' ROLE user" >/dev/null
    sql_as alice:alice-pw "INSERT INTO app.notes (body) VALUES ('buy milk'), ('call mom')" >/dev/null
    sql_as bob:bob-pw "INSERT INTO app.notes (body) VALUES ('bob was here')" >/dev/null
    sql_as alice:alice-pw "SELECT body FROM app.notes ORDER BY id" | grep -q '"rows":\[\["buy milk"\],\["call mom"\]\]' \
        || fail "alice's rows"
    echo "alice sees her 2 rows, not bob's"
    step "flush into the volume"
    curl_sql "STORAGE FLUSH TABLE app.notes WAIT" | grep -q completed || fail "flush did not complete"
    local parquet
    parquet="$(find "$(podman volume inspect -f '{{.Mountpoint}}' "$VOLUME")" -name '*.parquet' | head -1)"
    [ -n "$parquet" ] || fail "no Parquet file in the volume"
    echo "segment in the volume: ${parquet#*/_data/}"
    step "healthcheck"
    podman healthcheck run "$NAME" >/dev/null || fail "HEALTHCHECK unhealthy"
    echo "healthy"
    step "stop (SIGTERM to PID 1) with a statement running, podman's default 10 s grace"
    # A statement that runs for minutes: the stop must not wait for it past the server's
    # shutdown timeout (8 s), or podman kills the server (exit 137).
    curl -s -u "root:$PASSWORD" -H 'content-type: application/json' \
        --data-binary '{"sql":"SELECT count(*) FROM generate_series(1, 3000000) a, generate_series(1, 3000000) b"}' \
        "http://127.0.0.1:$PORT/v1/api/sql" >/dev/null 2>&1 &
    local long=$!
    sleep 1
    GRACE=10 stop_container
    wait "$long" 2>/dev/null || true
    step "a new container on the same volume"
    run_container
    sql_as bob:bob-pw "INSERT INTO app.notes (body) VALUES ('again')" >/dev/null
    sql_as alice:alice-pw "SELECT body FROM app.notes ORDER BY id" | grep -q '"rows":\[\["buy milk"\],\["call mom"\]\]' \
        || fail "alice's rows in a new container"
    sql_as bob:bob-pw "SELECT count(*) FROM app.notes" | grep -q '\[\[2\]\]' || fail "bob's rows in a new container"
    echo "every row in a new container on the same volume (flushed and hot)"
    stop_container
    podman volume rm -f "$VOLUME" >/dev/null
    step "an arbitrary uid in group 0 on a new volume (as OpenShift runs images)"
    podman run -d --name "$NAME" --health-interval=disable --user 12345:0 -p "127.0.0.1:$PORT:8080" \
        -v "$VOLUME:/data" -e KALAMDB_ROOT_PASSWORD="$PASSWORD" "$IMAGE" >/dev/null
    wait_health
    curl_sql "CREATE SHARED TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t VALUES (1); STORAGE FLUSH TABLE t WAIT" \
        | grep -q completed || fail "uid 12345: flush"
    echo "uid 12345 (group 0) writes and flushes"
    stop_container
    podman volume rm -f "$VOLUME" >/dev/null
}

compose() {
    step "docker-compose against the podman socket"
    local sock="$STATE/podman.sock"
    rm -f "$sock"
    podman system service --time=0 "unix://$sock" >"$STATE/podman-service.log" 2>&1 &
    SERVICE_PID=$!
    trap 'kill "${SERVICE_PID:-}" 2>/dev/null || true' EXIT
    for _ in $(seq 1 50); do [ -S "$sock" ] && break; sleep 0.1; done
    export DOCKER_HOST="unix://$sock"
    # docker-compose names the image kalamdb:latest; podman's Docker API reads that name as
    # docker.io/library/kalamdb:latest.
    podman tag "$IMAGE" localhost/kalamdb:latest docker.io/library/kalamdb:latest
    # Every docker-compose command interpolates the file, so each needs the password.
    export KALAMDB_ROOT_PASSWORD="$PASSWORD" KALAMDB_PORT="$PORT"
    local dc=(docker-compose -p kalamdbcheck -f docker/docker-compose.yml)
    "${dc[@]}" up -d --no-build
    wait_health
    curl_sql "SELECT 1" >/dev/null || { "${dc[@]}" down -v; fail "compose: SQL"; }
    "${dc[@]}" ps
    "${dc[@]}" down -v
    echo "compose: up, SQL, down"
}

main() {
    local t0
    t0=$(date +%s)
    tools
    base_images
    step "build docker/Dockerfile"
    local b0
    b0=$(date +%s)
    podman build --format docker --build-arg CARGO_PROFILE="${KALAMDB_IMAGE_PROFILE:-release}" \
        -f docker/Dockerfile -t "$IMAGE" .
    echo "build: $(( $(date +%s) - b0 )) s"
    check
    compose
    step "done"
    podman image inspect -f 'image size: {{.Size}} bytes' "$IMAGE"
    podman images "$IMAGE"
    echo "image-check passed in $(( $(date +%s) - t0 )) s"
}

main "$@"
