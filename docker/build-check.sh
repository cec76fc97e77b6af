#!/usr/bin/env bash
# Run the Dockerfile's steps on a Debian machine without Docker (no Docker engine runs here).
#
#   docker/build-check.sh build        apt packages of the build stage + the release build
#   docker/build-check.sh entrypoint   start the binary as the image does: only environment
#                                      variables, an empty data dir, 0.0.0.0; check /health
#                                      and the HEALTHCHECK command; SIGTERM; require exit 0
#   docker/build-check.sh all          both
#
# KALAMDB_BIN selects the binary for `entrypoint` (default: the release build).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kalamdb-target}"

build() {
    # Build stage: clang/libclang for librocksdb-sys, then the release binary.
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang libclang-dev >/dev/null
    else
        ./scripts/ensure-deps.sh
    fi
    CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --locked -p kalamdb-server
}

entrypoint() {
    local bin="${KALAMDB_BIN:-$TARGET_DIR/release/kalamdb-server}"
    [ -x "$bin" ] || { echo "no binary at $bin (run: $0 build)" >&2; exit 1; }
    local data port pid
    data="$(mktemp -d)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    # Exactly the image's environment: nothing else, no config file in the working directory.
    (cd "$data" && exec env -i PATH=/usr/bin:/bin \
        KALAMDB_SERVER_HOST=0.0.0.0 KALAMDB_SERVER_PORT="$port" KALAMDB_DATA_DIR="$data/data" \
        KALAMDB_ROOT_PASSWORD=build-check "$bin") >"$data/server.log" 2>&1 &
    pid=$!
    local ok=""
    for _ in $(seq 1 300); do
        if body="$(health "$port" 2>/dev/null)" && [[ "$body" == *'"status":"ok"'* ]]; then ok=1; break; fi
        sleep 0.1
    done
    if [ -z "$ok" ]; then
        echo "entrypoint: /health did not answer" >&2; cat "$data/server.log" >&2; kill -9 "$pid" 2>/dev/null; exit 1
    fi
    echo "entrypoint: /health answered: $body"
    # The image's HEALTHCHECK command, with the image's environment.
    if ! env -i KALAMDB_SERVER_HOST=0.0.0.0 KALAMDB_SERVER_PORT="$port" "$bin" --health-check; then
        echo "entrypoint: --health-check failed" >&2; kill -9 "$pid" 2>/dev/null; exit 1
    fi
    echo "entrypoint: --health-check (the HEALTHCHECK) exited 0"
    kill -TERM "$pid"
    local status=0
    wait "$pid" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "entrypoint: exit status $status after SIGTERM" >&2; cat "$data/server.log" >&2; exit 1
    fi
    echo "entrypoint: stopped cleanly on SIGTERM"
    rm -rf "$data"
}

# GET /health with bash's /dev/tcp (no curl needed on the build machine).
health() {
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'GET /health HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    local resp
    resp="$(cat <&3)"
    exec 3>&-
    [[ "$resp" == "HTTP/1."?" 200"* ]] || return 1
    printf '%s' "${resp##*$'\r\n\r\n'}"
}

case "${1:-all}" in
    build) build ;;
    entrypoint) entrypoint ;;
    all) build; entrypoint ;;
    *) echo "usage: $0 [build|entrypoint|all]" >&2; exit 2 ;;
esac
