#!/bin/sh
# Install sense-license-agent @VERSION@ from this offline bundle: a virtual environment in
# $VENV (default /opt/sense-license-agent/venv), packages only from ./wheels, no network.
#   sh install.sh
#   VENV=$HOME/sla-venv PYTHON=python3.12 sh install.sh
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
VENV=${VENV:-/opt/sense-license-agent/venv}
PYTHON=${PYTHON:-python3}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "error: $PYTHON not found; install Python 3.10 to 3.13 or set PYTHON=/path/to/python3" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 13))'; then
    echo "error: $("$PYTHON" --version 2>&1): this bundle has wheels for CPython 3.10 to 3.13;" \
        "set PYTHON to one of those" >&2
    exit 2
fi

echo "creating the virtual environment $VENV"
"$PYTHON" -m venv "$VENV"
# Only the bundle: no index, no pip configuration of this machine, no cache.
PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 PIP_FIND_LINKS="$HERE/wheels" \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    "$VENV/bin/python" -m pip install --no-index --find-links "$HERE/wheels" \
    "sense-license-agent[prometheus]==@VERSION@"
"$VENV/bin/license-agent" --version
echo "installed: $VENV/bin/license-agent (try: $VENV/bin/license-agent demo)"
