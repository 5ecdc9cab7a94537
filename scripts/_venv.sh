# Shared by the scripts in this folder: create .venv when it is missing.
# Usage (sourced): ensure_venv; then use "$VENV_PYTHON".

VENV_DIR="${ANIMEREC_VENV:-.venv}"
VENV_PYTHON="$VENV_DIR/bin/python"

ensure_venv() {
    local python="${PYTHON:-python3}"
    if ! command -v "$python" >/dev/null 2>&1; then
        echo "error: $python not found; install Python 3.11 or newer, or set PYTHON" >&2
        exit 1
    fi
    if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
        echo "error: animerec needs Python 3.11 or newer; $python is $("$python" -V 2>&1)" >&2
        exit 1
    fi
    if [ ! -x "$VENV_PYTHON" ]; then
        echo "Creating $VENV_DIR with $("$python" -V 2>&1)" >&2
        # Debian's python3 lacks ensurepip unless python3-venv is installed; virtualenv from
        # pip works without it.
        if ! "$python" -m venv "$VENV_DIR" 2>/dev/null; then
            rm -rf "$VENV_DIR"
            "$python" -m pip install --quiet --user virtualenv
            "$python" -m virtualenv --quiet "$VENV_DIR"
        fi
    fi
    "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check --upgrade pip
}
