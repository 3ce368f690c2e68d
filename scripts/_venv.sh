# Sourced by the scripts: bring uv if it is missing, then make .venv hold exactly what uv.lock pins for the extras
# the caller names. Set-up never resolves version ranges: `uv sync --locked` installs the lock as it is, and stops
# (naming the fix, `uv lock`) if pyproject.toml has changed since the lock was written.
#
# The caller sets:
#   SYNC_EXTRAS  the extras to install, e.g. "demo" or "test bench"
#   SYNC_INEXACT 1 to leave packages the lock does not ask for in place (the demo, so it does not uninstall the
#                test extras from a .venv that has them); otherwise .venv is made to match the lock exactly
# Python: $PYTHON if set, else the first Python >= 3.11 that uv finds.

source scripts/_uv.sh

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
