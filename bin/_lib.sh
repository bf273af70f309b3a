# Shared by bin/run and bin/test (sourced, not run): messages, Python, the virtualenv.
# shellcheck shell=bash disable=SC2034,SC2015,SC2012
# (SC2034: ATLAS_EMBEDDED_PG* and RUNSERVER_ADDRPORT are read by the scripts that source
# this file.)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
VENV_PY="$VENV/bin/python"

say() { printf '==> %s\n' "$*" >&2; }
warn() { printf '==> WARNING: %s\n' "$*" >&2; }
die() {
    printf '==> ERROR: %s\n' "$*" >&2
    exit 1
}

# True when $1 is a Python interpreter of version 3.12 or newer.
python_ok() {
    [ -n "$1" ] && [ -x "$(command -v "$1" 2>/dev/null || true)" ] &&
        "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

# Prints the Python 3.12+ to build .venv with, preferring the version .python-version pins
# (3.12: the embedded PostgreSQL, pgserver, has no wheels for 3.13+): $ATLAS_PYTHON, pyenv
# (honouring .python-version), pyenv's install folder, python3.12 on PATH, then any newer
# Python 3 (pyenv's, python3.14, python3.13, python3).
find_python() {
    local candidate pyenv_root pinned
    local -a candidates=()
    if [ -n "${ATLAS_PYTHON:-}" ]; then
        python_ok "$ATLAS_PYTHON" || die "ATLAS_PYTHON=$ATLAS_PYTHON is not a Python 3.12+ interpreter."
        printf '%s\n' "$ATLAS_PYTHON"
        return
    fi
    pinned="$(tr -d '[:space:]' <"$ROOT/.python-version" 2>/dev/null || true)"
    pinned="${pinned:-3.12}"
    pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    if command -v pyenv >/dev/null 2>&1; then
        candidates+=("$(cd "$ROOT" && pyenv which "python$pinned" 2>/dev/null || true)")
        candidates+=("$(cd "$ROOT" && pyenv which python3 2>/dev/null || true)")
        pyenv_root="$(pyenv root 2>/dev/null || echo "$pyenv_root")"
    fi
    if [ -d "$pyenv_root/versions" ]; then
        # The pinned version first (newest patch release), even when pyenv is not on PATH.
        while IFS= read -r candidate; do
            candidates+=("$candidate")
        done < <(ls -1d "$pyenv_root/versions/$pinned"*/bin/python3 2>/dev/null | sort -rV)
    fi
    candidates+=("python$pinned" python3.12)
    if [ -d "$pyenv_root/versions" ]; then
        while IFS= read -r candidate; do
            candidates+=("$candidate")
        done < <(ls -1d "$pyenv_root"/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV)
    fi
    candidates+=(python3.14 python3.13 python3)
    for candidate in "${candidates[@]}"; do
        if python_ok "$candidate"; then
            command -v "$candidate"
            return
        fi
    done
    die "Atlas needs Python 3.12 or newer and none was found.
    Tried: pyenv (.python-version: $pinned), $pyenv_root/versions/3.1x, python3.12, python3.14,
    python3.13 and python3 on PATH.
    Install one (e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv'),
    or point ATLAS_PYTHON at one."
}

# ensure_venv REQUIREMENTS_FILE: creates .venv with Python 3.12+ when missing (or made by
# an older Python) and installs REQUIREMENTS_FILE, skipped when neither it nor any file it
# includes changed since the last install (a stamp file in .venv holds their hash).
ensure_venv() {
    local requirements="$1" python stamp digest
    if [ -x "$VENV_PY" ] && ! python_ok "$VENV_PY"; then
        warn "$VENV was made by $("$VENV_PY" --version 2>&1 || echo 'a broken Python'); recreating it."
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV_PY" ]; then
        python="$(find_python)"
        say "Creating the virtualenv $VENV with $python ($("$python" --version 2>&1))"
        "$python" -m venv "$VENV" ||
            die "Could not create $VENV. On Debian/Ubuntu install the venv module: apt-get install python3-venv (or python3.12-venv)."
    fi
    stamp="$VENV/.atlas-$(basename "$requirements").sha256"
    digest="$(
        cd "$ROOT" && "$VENV_PY" - "$requirements" <<'PY'
import hashlib, re, sys
from pathlib import Path

seen, digest = set(), hashlib.sha256(sys.version.encode())

def add(path):
    path = path.resolve()
    if path in seen:
        return
    seen.add(path)
    text = path.read_bytes()
    digest.update(str(path.name).encode() + b"\0" + text)
    for match in re.finditer(rb"^\s*-(?:r|c)\s*(\S+)", text, re.M):
        add(path.parent / match.group(1).decode())

add(Path(sys.argv[1]))
print(digest.hexdigest())
PY
    )"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$digest" ]; then
        say "Requirements ($(basename "$requirements")) unchanged since the last install; skipping pip."
        return
    fi
    say "Installing $(basename "$requirements") into $VENV"
    "$VENV_PY" -m pip install --disable-pip-version-check --quiet --upgrade pip ||
        warn "could not upgrade pip; continuing with $("$VENV_PY" -m pip --version 2>/dev/null || echo 'the bundled pip')"
    "$VENV_PY" -m pip install --disable-pip-version-check --quiet -r "$ROOT/$requirements" ||
        die "pip could not install $requirements (see the messages above)."
    printf '%s\n' "$digest" >"$stamp"
}

# decide_database [--create]: exports DATABASE_URL (see bin/_services.py) and sets
# ATLAS_EMBEDDED_PG / ATLAS_EMBEDDED_PG_STARTED.
decide_database() {
    local output line
    output="$(cd "$ROOT" && "$VENV_PY" bin/_services.py database --embedded-dir "$ROOT/.data/postgres" "$@")" ||
        die "No usable PostgreSQL (see above)."
    ATLAS_EMBEDDED_PG=0
    ATLAS_EMBEDDED_PG_STARTED=0
    while IFS= read -r line; do
        case "$line" in
            DATABASE_URL=*) export DATABASE_URL="${line#DATABASE_URL=}" ;;
            ATLAS_EMBEDDED_PG=*) ATLAS_EMBEDDED_PG="${line#ATLAS_EMBEDDED_PG=}" ;;
            ATLAS_EMBEDDED_PG_STARTED=*) ATLAS_EMBEDDED_PG_STARTED="${line#ATLAS_EMBEDDED_PG_STARTED=}" ;;
        esac
    done <<<"$output"
}

# decide_bind PORT: exports ATLAS_BIND, the address the development server listens on
# (atlas_site/devserver.py: 127.0.0.1 unless ATLAS_BIND names another, with a warning for one
# other machines can reach, refused there without keys of your own), and sets
# RUNSERVER_ADDRPORT for `manage.py runserver`.
decide_bind() {
    local host
    host="$(cd "$ROOT" && "$VENV_PY" atlas_site/devserver.py)" || die "Not starting Atlas (see above)."
    export ATLAS_BIND="$host"
    case "$host" in
        *:*) RUNSERVER_ADDRPORT="[$host]:$1" ;;
        *) RUNSERVER_ADDRPORT="$host:$1" ;;
    esac
}

stop_embedded_database() {
    if [ "${ATLAS_EMBEDDED_PG_STARTED:-0}" = 1 ]; then
        (cd "$ROOT" && "$VENV_PY" bin/_services.py stop-embedded "$ROOT/.data/postgres") || true
    fi
}
