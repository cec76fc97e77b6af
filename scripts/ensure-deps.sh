#!/usr/bin/env bash
# Install what building KalamDB needs on a Debian machine: a C/C++ toolchain and
# clang/libclang (librocksdb-sys generates its bindings with bindgen).
# With --postgresql, also PostgreSQL 15 (the benchmarks' comparison, `make bench`).
set -euo pipefail

missing=()
if [ "${1:-}" = "--postgresql" ] && [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
    missing+=(postgresql-15)
fi
command -v cc >/dev/null 2>&1 || missing+=(build-essential)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v clang >/dev/null 2>&1 || missing+=(clang)
# scripts/check-import-circles.py (make test)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if ! ls /usr/lib/llvm-*/lib/libclang*.so* /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1; then
    missing+=(libclang-dev)
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo (the Rust toolchain) is required; install it with rustup: https://rustup.rs" >&2
    exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "installing missing build prerequisites: ${missing[*]}"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "error: missing packages: ${missing[*]}" >&2
    echo "install them first, e.g.: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
