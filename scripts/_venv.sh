# Sourced by the scripts: bring uv if it is missing, then make .venv hold exactly what uv.lock pins for the extras
# the caller names. Set-up never resolves version ranges: `uv sync --locked` installs the lock as it is, and stops
# (naming the fix, `uv lock`) if pyproject.toml has changed since the lock was written.
#
# The caller sets:
#   SYNC_EXTRAS  the extras to install, e.g. "demo" or "test bench"
#   SYNC_INEXACT 1 to leave packages the lock does not ask for in place (the demo, so it does not uninstall the
#                test extras from a .venv that has them); otherwise .venv is made to match the lock exactly
# Python: $PYTHON if set, else the first Python >= 3.11 that uv finds.

# The oldest uv that reads this lock format; older ones on PATH are ignored in favour of the pinned bootstrap.
UV_MIN_VERSION="0.8.0"
# The uv installed from PyPI (into .uv/, not the user's Python) when none fits is on PATH.
UV_PINNED_VERSION="0.13.9"

_uv_fits() {
  local v
  v="$("$1" --version 2>/dev/null | awk '{print $2}')" || return 1
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$UV_MIN_VERSION" "$v" | sort -V | head -n1)" = "$UV_MIN_VERSION" ]
}

_find_uv() {
  if [ -n "${UV:-}" ] && _uv_fits "$UV"; then return 0; fi
  if command -v uv >/dev/null 2>&1 && _uv_fits "$(command -v uv)"; then UV="$(command -v uv)"; return 0; fi
  if [ -x .uv/bin/uv ] && _uv_fits .uv/bin/uv; then UV="$PWD/.uv/bin/uv"; return 0; fi
  local py="${PYTHON:-python3}"
  echo "set-up: uv >= $UV_MIN_VERSION not found; installing uv $UV_PINNED_VERSION into .uv/ (from PyPI)" >&2
  rm -rf .uv
  "$py" -m venv .uv
  # (the machine's pip config may list local mirrors that are absent: drop those warnings, keep real errors)
  .uv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_PINNED_VERSION" \
    2> >(grep -v "^WARNING: Location" >&2)
  UV="$PWD/.uv/bin/uv"
}

_find_uv
export UV

# _sync_env DIR ARGS...: make the environment DIR hold what uv.lock pins for ARGS (extras, groups).
_sync_env() {
  local dir="$1"; shift
  local args=(sync --locked "$@")
  if [ -n "${PYTHON:-}" ]; then args+=(--python "$PYTHON"); fi
  # (UV_PROJECT_ENVIRONMENT set by the caller's shell would send .venv elsewhere: the scripts name it)
  env -u VIRTUAL_ENV UV_PROJECT_ENVIRONMENT="$PWD/$dir" "$UV" "${args[@]}"
}

_extras=()
for _e in ${SYNC_EXTRAS:-}; do _extras+=(--extra "$_e"); done
if [ "${SYNC_INEXACT:-0}" = 1 ]; then _extras+=(--inexact); fi
_sync_env .venv "${_extras[@]}"
unset _e _extras
export VIRTUAL_ENV="$PWD/.venv"
export PATH="$PWD/.venv/bin:$PATH"
