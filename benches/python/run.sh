#!/usr/bin/env bash
# Cross-language reference benchmark: Python asyncio task-pool libraries.
#
# Usage (from the repo root):
#   bash benches/python/run.sh [--out FILE] [bench.py args...]
#
#   --out FILE   also write the markdown report to FILE (must come first)
#   everything else is forwarded to bench.py, e.g. --quick, --n 50000,
#   --rounds 3, --limits 100,1000 (see `bench.py --help`).
#
# Creates (or reuses) a venv at target/python-bench-venv and installs the
# pinned library versions into it from PyPI. Override the interpreter with
# PYTHON=/path/to/python3 (needs Python >= 3.11 for concurrent_tasks 1.18.0).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/../.." && pwd)"
venv="$repo_root/target/python-bench-venv"
python="${PYTHON:-python3}"

out=""
if [[ $# -gt 0 ]]; then
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "run.sh: --out needs a file name" >&2; exit 2; }
           out="$2"; shift 2 ;;
    --out=*) out="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
fi

"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || {
  echo "run.sh: $python is $("$python" -V 2>&1); Python >= 3.11 is required" >&2; exit 1; }

mkdir -p "$repo_root/target"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "run.sh: creating venv $venv" >&2
  "$python" -m venv "$venv"
fi
echo "run.sh: installing pinned libraries into $venv" >&2
# typing_extensions: asyncio-taskpool 1.2.0 imports it at module load but its
# wheel metadata does not declare it (ModuleNotFoundError without it).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  "asyncio-pool==0.6.0" "asyncio-taskpool==1.2.0" "concurrent_tasks==1.18.0" \
  "typing_extensions==4.12.2" >&2

cpu="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1 || true)"
if [[ -z "$cpu" ]]; then
  cpu="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n1 || true)"
fi
ncpu="$(nproc 2>/dev/null || echo '?')"

report() {
  echo "## Python asyncio task-pool benchmark"
  echo
  echo "- Python: $("$venv/bin/python" -c 'import platform; print(platform.python_implementation(), platform.python_version())')"
  echo "- CPU: ${cpu:-unknown} (${ncpu} logical CPUs)"
  echo "- OS: $(uname -sr)"
  echo "- Date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "- Command: \`bash benches/python/run.sh${out:+ --out $out}${*:+ $*}\`"
  "$venv/bin/python" "$script_dir/bench.py" "$@"
}

if [[ -n "$out" ]]; then
  mkdir -p "$(dirname "$out")"
  report "$@" | tee "$out"
else
  report "$@"
fi
