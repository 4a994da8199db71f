# The frame every recipe shares, sourced once its options have their defaults:
#
#   scale=cpu; stage=0; stop_stage=6; beam=16; references=0   # each option's variable, with its default
#   flags="references"                                        # the options that take no value (set to 1)
#   . recipes/common/stages.sh "$@"
#
# --some-name VALUE sets the variable some_name (dashes become underscores); an option whose variable
# the recipe did not set, or one missing its value, stops the recipe with one line. Then defines:
#   PY        the Python ($PYTHON, else .venv/bin/python)
#   run ARGS  `lmplug ARGS`, the command echoed to stderr first
#   step N    true when stage N is within [stage, stop_stage]

while [ $# -gt 0 ]; do
  _opt=${1#--}; _var=${_opt//-/_}
  if [ "$_opt" = "$1" ] || ! [[ $_var =~ ^[a-z][a-z0-9_]*$ ]] || ! declare -p "$_var" > /dev/null 2>&1; then
    echo "unknown option $1 (see the usage block at the top of $0)" >&2; exit 2
  fi
  case " ${flags:-} " in
    *" $_var "*) printf -v "$_var" '%s' 1; shift; continue;;
  esac
  if [ $# -lt 2 ]; then echo "option $1: expected a value, found none (see the usage block at the top of $0)" >&2; exit 2; fi
  printf -v "$_var" '%s' "$2"; shift 2
done
unset _opt _var

PY=${PYTHON:-.venv/bin/python}
run() { echo "+ lmplug $*" >&2; "$PY" -m lmplug "$@"; }
step() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
