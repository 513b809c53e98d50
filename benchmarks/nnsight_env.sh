#!/usr/bin/env bash
# Build benchmarks/.venv-nnsight: nnsight from PyPI on the same torch (the CPU build pinned in
# constraints.txt), transformers and tokenizers as the main venv, so trace_overhead.py compares
# our hooks and nnsight on the same kernels and weights.
# Usage: bash benchmarks/nnsight_env.sh   (idempotent; prints the venv's python on stdout)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
venv="${NNSIGHT_VENV:-$here/.venv-nnsight}"
main_py="${MAIN_PYTHON:-$root/.venv/bin/python}"
nnsight_version="${NNSIGHT_VERSION:-0.8.1}"

if [[ ! -x "$main_py" ]]; then
  echo "the main venv is missing ($main_py); run 'make install' first" >&2
  exit 1
fi
version_of() { "$main_py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
torch_version="$(version_of torch)"
transformers_version="$(version_of transformers)"
tokenizers_version="$(version_of tokenizers)"
stamp="$venv/.installed-nnsight$nnsight_version-torch$torch_version-tf$transformers_version"
if [[ -f "$stamp" ]]; then
  echo "$venv/bin/python"
  exit 0
fi

# pip on this machine warns about extra index folders that do not exist; drop those lines.
quiet_pip() {
  local log status
  log="$(mktemp)"
  status=0
  "$venv/bin/python" -m pip install --quiet --constraint "$root/constraints.txt" "$@" >"$log" 2>&1 || status=$?
  grep -v "^WARNING: Location 'file://" "$log" >&2 || true
  rm -f "$log"
  return "$status"
}

base_python="$("$main_py" -c 'import sys; print(sys._base_executable)')"
echo "creating $venv (nnsight $nnsight_version, torch $torch_version, transformers $transformers_version)" >&2
"$base_python" -m venv "$venv"
quiet_pip --upgrade pip
quiet_pip "torch==${torch_version%%+*}" \
  "transformers==$transformers_version" "tokenizers==$tokenizers_version" "nnsight==$nnsight_version"
"$venv/bin/python" - <<PY >&2
import nnsight, torch, transformers
from importlib.metadata import version
assert torch.__version__ == "$torch_version", (torch.__version__, "$torch_version")
assert transformers.__version__ == "$transformers_version", transformers.__version__
print("nnsight", version("nnsight"), "torch", torch.__version__, "transformers", transformers.__version__)
PY
touch "$stamp"
echo "$venv/bin/python"
