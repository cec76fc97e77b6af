#!/usr/bin/env bash
# Check and unit-test the Prometheus alert rules in docs/alerts with promtool, installing
# Debian's prometheus package (which ships promtool) when it is missing and we are root.
set -euo pipefail
cd "$(dirname "$0")/../docs/alerts"
if ! command -v promtool >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing promtool (Debian package prometheus)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    else
        echo "error: promtool not found; install the prometheus package (it ships promtool)" >&2
        exit 1
    fi
fi
promtool check rules kalamdb-rules.yml
promtool test rules kalamdb-rules.test.yml
