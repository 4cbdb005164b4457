#!/usr/bin/env bash
# Install handpose and its pinned dependencies into the venv whose python is $1 (CPU-only torch).
# With --dev as $2, also the development extra (pytest, playwright: `make test`).
set -euo pipefail
PY="${1:-.venv/bin/python}"
EXTRA=""
if [[ "${2:-}" == "--dev" ]]; then
    EXTRA="[dev]"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
quiet_pip() {  # pip, with its output shown only when it fails
    if ! "$PY" -m pip install --disable-pip-version-check "$@" >"$log" 2>&1; then
        grep -v "is ignored: it is neither a file nor a directory" "$log" >&2
        echo "setup: 'pip install $*' failed (output above)." >&2
        exit 1
    fi
}
# torch first, alone and pinned, so that nothing can pull a multi-GB CUDA build in its place.
# Set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu on machines whose PyPI serves CUDA builds.
if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
    echo "setup: installing torch==2.13.0 (CPU build)"
    quiet_pip ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi
echo "setup: installing handpose${EXTRA} and its pinned dependencies into $(dirname "$(dirname "$PY")")"
quiet_pip -e ".${EXTRA}"
"$PY" -m pip check
