# parse_options.sh — Kaldi-style option parsing; source it after defining the option variables.
#
#   stage=0; stop_stage=100; use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . utils/parse_options.sh
#
# Semantics (those of Kaldi's parse_options.sh):
#   --foo-bar VALUE / --foo_bar VALUE / --foo-bar=VALUE  set the EXISTING variable foo_bar;
#                         an option with no such variable is an error naming it.
#   a variable whose current value is true/false only takes true or false.
#   a variable whose current value is a whole number (stage=0, nj=4) only takes a whole number,
#   and one whose value is a decimal number (max_bad_frac=0.05) only takes a number: a typo such as
#   `--stage abc` stops the script with one line instead of reaching `[ "$stage" -le 0 ]`.
#   Options whose default is empty but that take a number are checked after parsing with
#   `po_require_int NAME...` / `po_require_number NAME...` (defined here, kept after parsing):
#   an empty value passes, anything else must be a whole / decimal number.
#   --config FILE         source FILE (shell assignments such as foo_bar=3) at that point —
#                         unless the script declares its own variable `config` before sourcing
#                         this file (run.sh does: there --config names the model's YAML), in which
#                         case --config is an ordinary option that sets it.
#   --help, -h            print $help_message and exit 0.
#   Parsing stops at the first argument that does not start with "--" (or after "--");
#   the remaining positional arguments are left in "$@".

_po_die() { echo "$0: $*" >&2; exit 1; }
_po_int_re='^[0-9]+$'
_po_num_re='^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'

# po_require_int NAME... / po_require_number NAME...: each named variable is empty or a number.
_po_require() {  # <regex> <what> NAME...
  local _re=$1 _what=$2 _n
  shift 2
  for _n in "$@"; do
    [ -z "${!_n}" ] || [[ "${!_n}" =~ $_re ]] || \
      { echo "$0: option --${_n//_/-} takes $_what, got '${!_n}'" >&2; exit 1; }
  done
}
po_require_int() { _po_require "$_po_int_re" "a whole number" "$@"; }
po_require_number() { _po_require "$_po_num_re" "a number" "$@"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if [ -n "${help_message:-}" ]; then printf '%s\n' "$help_message"; else echo "Usage: $0 [options]"; fi
      exit 0 ;;
    --) shift; break ;;
    --config|--config=*)
      if [ -n "${config+set}" ]; then
        if [ "$1" = --config ]; then
          [ $# -ge 2 ] || _po_die "option --config needs a value"
          config="$2"; shift 2
        else
          config="${1#--config=}"; shift
        fi
        continue
      fi
      if [ "$1" = --config ]; then
        [ $# -ge 2 ] || _po_die "option --config needs a file argument"
        _po_val="$2"; shift 2
      else
        _po_val="${1#--config=}"; shift
      fi
      [ -f "$_po_val" ] || _po_die "config file '$_po_val' not found (given with --config)"
      # shellcheck disable=SC1090
      . "$_po_val" || _po_die "error while sourcing config file '$_po_val'"
      ;;
    --?*)
      _po_opt="${1#--}"
      if [[ "$_po_opt" == *=* ]]; then
        _po_val="${_po_opt#*=}"; _po_opt="${_po_opt%%=*}"; shift
      else
        [ $# -ge 2 ] || _po_die "option --$_po_opt needs a value"
        _po_val="$2"; shift 2
      fi
      _po_name="${_po_opt//-/_}"
      [[ "$_po_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || _po_die "invalid option --$_po_opt"
      if [ -z "${!_po_name+set}" ]; then
        _po_die "unknown option --$_po_opt (see $0 --help)"
      fi
      _po_old="${!_po_name}"
      if [ "$_po_old" = true ] || [ "$_po_old" = false ]; then
        [ "$_po_val" = true ] || [ "$_po_val" = false ] || \
          _po_die "option --$_po_opt takes true or false, got '$_po_val'"
      elif [[ "$_po_old" =~ $_po_int_re ]]; then
        [[ "$_po_val" =~ $_po_int_re ]] || _po_die "option --$_po_opt takes a whole number, got '$_po_val'"
      elif [[ "$_po_old" =~ $_po_num_re ]]; then
        [[ "$_po_val" =~ $_po_num_re ]] || _po_die "option --$_po_opt takes a number, got '$_po_val'"
      fi
      printf -v "$_po_name" '%s' "$_po_val"
      ;;
    *) break ;;
  esac
done
unset _po_opt _po_val _po_name _po_old
unset -f _po_die
true
