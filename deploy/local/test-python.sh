#!/usr/bin/env bash
# The test suite on another Python than the project's 3.11, in a virtual environment of
# its own (.venv-<version>), from the same uv.lock:
#
#   deploy/local/test-python.sh 3.13 [pytest arguments]     (make test-python PY=3.13)
#
# It needs that Python on this machine already: Debian 12 ships 3.11 only, and uv's own
# Python builds are downloaded from GitHub, which this project does not rely on. It looks
# for `python<version>` on PATH, then in pyenv's versions; it fails, saying so, when there
# is none. Kafka and Postgres as for `make test` (`make infra`).
set -euo pipefail

# shellcheck source=deploy/local/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${1:?usage: $0 <python version, e.g. 3.13> [pytest arguments]}"
shift

find_python() {
  local found
  found="$(command -v "python$VERSION" 2>/dev/null || true)"
  # A pyenv shim answers for every version pyenv has, but runs only the selected ones.
  if [ -n "$found" ] && "$found" -c '' 2>/dev/null; then
    echo "$found"
    return
  fi
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for found in "$root"/versions/"$VERSION"*/bin/"python$VERSION"; do
    if [ -x "$found" ]; then
      echo "$found"
      return
    fi
  done
}

PYTHON="$(find_python)"
[ -n "$PYTHON" ] || die "no Python $VERSION on this machine (not on PATH, not in pyenv). Debian 12 packages only 3.11; install $VERSION another way (pyenv, a newer Debian's python3 package) and rerun"
say "test-python: $("$PYTHON" --version) ($PYTHON), environment .venv-$VERSION"

export UV_PROJECT_ENVIRONMENT="$ROOT/.venv-$VERSION" UV_PYTHON_DOWNLOADS=never
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
(cd "$ROOT" && uv sync --frozen --all-groups --quiet --python "$PYTHON") \
  || die "uv sync on Python $VERSION failed (a package without a build for it? see above)"
cd "$ROOT"
exec uv run --frozen --python "$PYTHON" pytest "$@"
