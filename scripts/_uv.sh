# Sourced by the scripts (and .ci/run): sets UV to a uv that reads this repository's uv.lock, installing a pinned
# uv from PyPI into .uv/ (its own virtualenv, not the user's Python) when none on PATH fits.
# Python for that bootstrap: $PYTHON if set, else python3.

# The uv that wrote uv.lock (lock format revision 5). An older uv on PATH may not read it (or may rewrite it), so
# it is passed over for this one, installed from PyPI into .uv/. Raise both when the lock is written by a newer uv.
UV_PINNED_VERSION="0.13.9"
UV_MIN_VERSION="$UV_PINNED_VERSION"

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

