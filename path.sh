# path.sh — make the dmha environment ready; sourced by run.sh, steps/*.sh and tests/run.sh.
#
# On first use it creates a project virtualenv (.venv, or $DMHA_VENV) and installs the pinned
# requirements and the dmha package into it; a stamp keyed on the requirement files makes every
# later source cost nothing. It then puts utils/ and steps/ on PATH, the repo on PYTHONPATH.
#
# Environment knobs:
#   DMHA_VENV=<dir>        use/create the virtualenv there instead of <repo>/.venv
#   DMHA_NO_VENV=1         use the current python3 as it is (you installed the requirements yourself)
#   DMHA_EXTRA_REQS=<file> also install this requirements file (tests/run.sh passes requirements-test.txt)

DMHA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DMHA_ROOT

_dmha_setup_env() {
  local venv="${DMHA_VENV:-$DMHA_ROOT/.venv}"
  local py=python3
  if [ "${DMHA_NO_VENV:-0}" != "1" ]; then
    if [ ! -x "$venv/bin/python" ]; then
      echo "path.sh: creating virtualenv $venv" >&2
      python3 -m venv "$venv" || { echo "path.sh: ERROR: could not create $venv (install python3-venv)" >&2; return 1; }
    fi
    py="$venv/bin/python"
    export VIRTUAL_ENV="$venv"
    case ":$PATH:" in *":$venv/bin:"*) ;; *) export PATH="$venv/bin:$PATH" ;; esac
  fi
  local reqs=("$DMHA_ROOT/requirements.txt")
  [ -n "${DMHA_EXTRA_REQS:-}" ] && reqs+=("$DMHA_EXTRA_REQS")
  local key
  key=$(cat "${reqs[@]}" "$DMHA_ROOT/pyproject.toml" | cksum | cut -d' ' -f1)
  local stamp="${VIRTUAL_ENV:-$DMHA_ROOT}/.dmha-installed-$key"
  [ "${DMHA_NO_VENV:-0}" = "1" ] && return 0
  if [ ! -f "$stamp" ]; then
    echo "path.sh: installing requirements into $venv (once; later runs skip this)" >&2
    local req_args=()
    local r
    for r in "${reqs[@]}"; do req_args+=(-r "$r"); done
    # A torch >= 2.1 already in the venv (e.g. a CUDA build on a GPU server) is kept.
    if "$py" -c 'import sys, torch; v=tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(0 if v >= (2, 1) else 1)' 2>/dev/null; then
      grep -v '^torch==' "$DMHA_ROOT/requirements.txt" > "$venv/.reqs-no-torch.txt"
      req_args=("${req_args[@]/#$DMHA_ROOT\/requirements.txt/$venv/.reqs-no-torch.txt}")
    fi
    if ! "$py" -m pip install -q "${req_args[@]}" >&2 || ! "$py" -m pip install -q --no-deps -e "$DMHA_ROOT" >&2; then
      echo "path.sh: ERROR: pip install into $venv failed (see above); fix it and source path.sh again" >&2
      return 1
    fi
    touch "$stamp"
  fi
}
_dmha_setup_env || { unset -f _dmha_setup_env; return 1 2>/dev/null || exit 1; }
unset -f _dmha_setup_env

case ":$PATH:" in *":$DMHA_ROOT/utils:"*) ;; *) export PATH="$DMHA_ROOT/utils:$DMHA_ROOT/steps:$PATH" ;; esac
export PYTHONPATH="$DMHA_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export LC_ALL=C
export PYTHONUNBUFFERED=1
