#!/usr/bin/env bash
# Set up .venv with the development tools and the optional extras, then run the tests.
#
# Usage: ./scripts/test.sh [PYTEST ARGS...]    (default: the whole suite, quietly)
# Tests on real data read ../shared/data (or $ANIMEREC_TEST_DATA) and skip when it is absent.
# Extras that fail to install (no wheel and no compiler, say) are reported and skipped, and
# the tests that need them skip too. ANIMEREC_TEST_EXTRAS overrides the list of extras
# (comma-separated); torch is left out by default because its wheels are gigabytes.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh

ensure_venv
pip_install() {
    "$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check "$@"
}

echo "Installing animerec with the dev extra into $VENV_DIR" >&2
pip_install -e ".[dev]"

if [ -n "${ANIMEREC_TEST_EXTRAS+set}" ]; then
    extras="$ANIMEREC_TEST_EXTRAS"
else
    extras="$("$VENV_PYTHON" - <<'PY'
import tomllib

with open("pyproject.toml", "rb") as handle:
    optional = tomllib.load(handle)["project"].get("optional-dependencies", {})
print(",".join(name for name in optional if name not in ("dev", "torch")))
PY
)"
fi
for extra in ${extras//,/ }; do
    if ! pip_install -e ".[$extra]"; then
        echo "warning: the $extra extra failed to install; tests that need it will skip" >&2
    fi
done

exec "$VENV_PYTHON" -m pytest -q "$@"
