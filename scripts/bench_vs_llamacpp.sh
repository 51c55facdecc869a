#!/usr/bin/env bash
# Side-by-side CPU benchmark of Strata and llama.cpp on the same seeded random Pythia-160M-shaped
# GPT-NeoX model (12 layers, hidden 768, 12 heads, vocab 50304, max position 2048).
#
#   scripts/bench_vs_llamacpp.sh LLAMA_CPP_DIR [--quick] [--work DIR] [--out FILE] [options]
#   scripts/bench_vs_llamacpp.sh LLAMA_CPP_DIR --gguf FILE [--gguf FILE ...] [options]
#
# With --gguf, both engines run on the same given GGUF file(s) instead (for instance SmolLM2's
# Q4_1 file, or a model quantized by your llama.cpp's llama-quantize): Strata loads the file
# itself (block formats packed, 8-bit activations: its default path), and every row below is
# measured per file, labelled with the file's name.
#
# Needs the already-built Strata (build/launcher/strata, or $STRATA_BIN) and llama.cpp's CPU tools
# built by you in LLAMA_CPP_DIR/build/bin (llama-bench, llama-batched-bench, llama-server); this
# project never builds llama.cpp. The GGUF files are written by scripts/hf_to_gguf.py with the
# checkout's own gguf-py (LLAMA_CPP_DIR/gguf-py), from the very checkpoint Strata reads: the F32
# model as an F32 GGUF, the BF16 model as an F16 GGUF of the same weights (llama.cpp's CPU backend
# is compared at F16, the type its users run for 16-bit weights).
#
# Workloads (dtypes f32 and bf16, threads 1 and 2 unless said otherwise):
#   batch-1 decode   strata bench offline --batch 1 --prompt-len 128 --output-len 64   vs  llama-bench -n 64
#   batch-1 prefill  strata bench offline --batch 1 --prompt-len 512                   vs  llama-bench -p 512
#   batched decode   strata bench offline --batch B --prompt-len 128 --output-len 64   vs  llama-batched-bench
#                    -npp 128 -ntg 64 -npl B (S_TG t/s); B in 16 64, 2 threads, f32 (--batched-bf16: also bf16)
#   serving          strata serve  vs  llama-server -np C, both driven by `strata bench serve` (closed loop,
#                    C clients, 64-token prompts, 64 output tokens each); output tok/s, ITL p50, TTFT p50
#   tensor parallel  mpirun -np 2 strata ... --tp 2 --threads 1 (2 ranks x 1 thread) for the batch-1 and
#                    serving rows, against llama.cpp at 2 threads
#   memory/load      peak RSS and wall time of one process that loads the model and generates 16 tokens
# A final table (workload | Strata | llama.cpp | ratio = Strata / llama.cpp) goes to stdout; --out FILE
# also writes it as JSON. Progress and logs go to stderr and WORK/logs.
#
# Options:
#   --quick          short run: f32 only, 2 threads, batch 1 and 16, 16 clients, one repetition
#   --work DIR       where models, GGUFs and logs go (kept; models there are reused). Default: a
#                    fresh mktemp directory, removed at exit unless --keep
#   --out FILE       also write the results as JSON to FILE
#   --keep           keep the default mktemp work directory
#   --repeat N       measured repetitions per offline row, both sides (default 3; --quick 1)
#   --batched-bf16   batched decode rows also for bf16
#   --no-tp          skip the tensor-parallel rows
#   --no-serve       skip the serving rows
#   --timeout S      limit for each measured command (default 1800 s)
#   --gguf FILE      measure on this GGUF file (repeatable) instead of the generated GPT-NeoX models
#   --shape L,H,N,V  another model shape: layers, hidden, heads, vocab (e.g. 2,64,4,512 for a smoke
#                    test of this script; default Pythia-160M's 12,768,12,50304)
# Environment: STRATA_BIN, PYTHON (default /usr/bin/python3, needs numpy), MPIRUN (default mpirun),
# MPIRUN_FLAGS (default "--allow-run-as-root --oversubscribe").
#
# llama.cpp runs with its defaults except the shapes: threads, prompt/generation lengths, parallel
# slots and context size. Its defaults include an F16 KV cache (Strata's is the checkpoint's dtype)
# and mmap'ed weights. llama-bench reports the mean of its runs, Strata the median of its runs.
set -euo pipefail

die() {
  echo "bench_vs_llamacpp: error: $*" >&2
  exit 1
}
note() { echo "== $*" >&2; }
warn() { echo "bench_vs_llamacpp: warning: $*" >&2; }
usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

# ------------------------------------------------------------------------------------------------
# Arguments

LLAMA_DIR=""
QUICK=0
WORK=""
OUT=""
KEEP=0
REPEAT=""
BATCHED_BF16=0
DO_TP=1
DO_SERVE=1
CMD_TIMEOUT=1800
SHAPE=12,768,12,50304
GGUF_FILES=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --work) [[ $# -ge 2 ]] || die "--work needs a directory"; WORK="$2"; shift ;;
    --work=*) WORK="${1#*=}" ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a file"; OUT="$2"; shift ;;
    --out=*) OUT="${1#*=}" ;;
    --keep) KEEP=1 ;;
    --repeat) [[ $# -ge 2 ]] || die "--repeat needs a number"; REPEAT="$2"; shift ;;
    --repeat=*) REPEAT="${1#*=}" ;;
    --clients-64) ;;  # the default now; kept so that older command lines still work
    --batched-bf16) BATCHED_BF16=1 ;;
    --no-tp) DO_TP=0 ;;
    --no-serve) DO_SERVE=0 ;;
    --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; CMD_TIMEOUT="$2"; shift ;;
    --timeout=*) CMD_TIMEOUT="${1#*=}" ;;
    --gguf) [[ $# -ge 2 ]] || die "--gguf needs a file"; GGUF_FILES+=("$2"); shift ;;
    --gguf=*) GGUF_FILES+=("${1#*=}") ;;
    --shape) [[ $# -ge 2 ]] || die "--shape needs L,H,N,V"; SHAPE="$2"; shift ;;
    --shape=*) SHAPE="${1#*=}" ;;
    -h | --help) usage 0 ;;
    -*) echo "bench_vs_llamacpp: unknown option $1" >&2; usage 2 ;;
    *)
      [[ -z "$LLAMA_DIR" ]] || die "more than one LLAMA_CPP_DIR given ($LLAMA_DIR, $1)"
      LLAMA_DIR="$1"
      ;;
  esac
  shift
done
[[ -n "$LLAMA_DIR" ]] || usage 2
[[ -d "$LLAMA_DIR" ]] || die "LLAMA_CPP_DIR $LLAMA_DIR is not a directory"
LLAMA_DIR="$(cd "$LLAMA_DIR" && pwd)"
[[ "$CMD_TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout takes whole seconds"

if [[ $QUICK -eq 1 ]]; then
  DTYPES=(f32)
  THREADS=(2)
  BATCHES=(16)
  CLIENTS=(16)
  : "${REPEAT:=1}"
  PROMPTS_PER_CLIENT=2
else
  DTYPES=(f32 bf16)
  THREADS=(1 2)
  BATCHES=(16 64)
  CLIENTS=(16 64)
  : "${REPEAT:=3}"
  PROMPTS_PER_CLIENT=4
fi
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || die "--repeat takes a positive number"

# The model: Pythia-160M's shape by default. make-model's gpt_neox intermediate default is
# 4 * hidden (3072), as Pythia's.
[[ "$SHAPE" =~ ^[1-9][0-9]*,[1-9][0-9]*,[1-9][0-9]*,[1-9][0-9]*$ ]] || die "--shape takes L,H,N,V (four numbers)"
IFS=, read -r LAYERS HIDDEN HEADS VOCAB <<<"$SHAPE"
[[ $((HIDDEN % HEADS)) -eq 0 ]] || die "--shape: hidden must be a multiple of heads"
MAX_POSITION=2048
PROMPT_LEN=128     # batch-1 and batched decode
OUTPUT_LEN=64
PREFILL_LEN=512    # batch-1 prefill
SERVE_PROMPT=64    # serving: prompt and output tokens per request
SERVE_OUTPUT=64
SERVE_PAD=64       # llama-server context per slot beyond prompt + output

# ------------------------------------------------------------------------------------------------
# Tools

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STRATA="${STRATA_BIN:-$ROOT/build/launcher/strata}"
[[ -x "$STRATA" ]] || die "no Strata binary at $STRATA: build Strata first (scripts/build.sh) or set STRATA_BIN"
LLAMA_BENCH="$LLAMA_DIR/build/bin/llama-bench"
LLAMA_BATCHED="$LLAMA_DIR/build/bin/llama-batched-bench"
LLAMA_SERVER="$LLAMA_DIR/build/bin/llama-server"
missing=()
for b in "$LLAMA_BENCH" "$LLAMA_BATCHED" "$LLAMA_SERVER"; do
  [[ -x "$b" ]] || missing+=("$b")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  die "llama.cpp tools missing: ${missing[*]}
  Build llama.cpp's CPU tools yourself (this project does not build llama.cpp), e.g.
    cmake -S $LLAMA_DIR -B $LLAMA_DIR/build -DCMAKE_BUILD_TYPE=Release
    cmake --build $LLAMA_DIR/build -j --target llama-bench llama-batched-bench llama-server"
fi
GGUF_PY="$LLAMA_DIR/gguf-py"
[[ ${#GGUF_FILES[@]} -gt 0 || -f "$GGUF_PY/gguf/__init__.py" ]] ||
  die "no gguf-py in $LLAMA_DIR (expected $GGUF_PY/gguf/__init__.py)"
CONVERTER="$ROOT/scripts/hf_to_gguf.py"
[[ -f "$CONVERTER" ]] || die "missing $CONVERTER"

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x /usr/bin/python3 ]]; then PY=/usr/bin/python3; else PY="$(command -v python3 || true)"; fi
fi
[[ -n "$PY" ]] || die "python3 not found (set PYTHON)"
"$PY" -c 'import numpy' 2>/dev/null || die "$PY cannot import numpy (Debian: apt-get install python3-numpy; or set PYTHON)"
command -v timeout >/dev/null || die "coreutils' timeout is required"

MPIRUN="${MPIRUN:-mpirun}"
read -r -a MPIRUN_ARGS <<<"${MPIRUN_FLAGS:---allow-run-as-root --oversubscribe}"
if [[ $DO_TP -eq 1 ]] && ! command -v "$MPIRUN" >/dev/null; then
  warn "$MPIRUN not found: skipping the tensor-parallel rows"
  DO_TP=0
fi
TIME_V=""
if [[ -x /usr/bin/time ]] && /usr/bin/time -v true 2>/dev/null; then
  TIME_V=/usr/bin/time
else
  warn "GNU time (/usr/bin/time -v) not found: skipping the memory/load rows"
fi

# ------------------------------------------------------------------------------------------------
# Work directory, servers and cleanup

MADE_WORK=0
if [[ -z "$WORK" ]]; then
  WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench_vs_llamacpp.XXXXXX")"
  MADE_WORK=1
fi
mkdir -p "$WORK/logs"
WORK="$(cd "$WORK" && pwd)"
LOGS="$WORK/logs"
RESULTS="$WORK/results.tsv"
: >"$RESULTS"

SERVER_PIDS=()
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    [[ $i -eq 100 ]] && kill -KILL "$pid" 2>/dev/null
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid" 2>/dev/null; done
  SERVER_PIDS=()
  if [[ $MADE_WORK -eq 1 && $KEEP -eq 0 ]]; then
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# wait_http URL PID LOG: until URL answers 200 (the server is loaded), or the process is gone.
wait_http() {
  local url="$1" pid="$2" log="$3" i
  for i in $(seq 1 1200); do
    if ! kill -0 "$pid" 2>/dev/null; then
      warn "server exited before $url answered; last lines of $log:"
      tail -n 15 "$log" >&2 || true
      return 1
    fi
    if "$PY" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception:
    sys.exit(1)' "$url"; then
      return 0
    fi
    [[ $i -eq 1200 ]] && break
    sleep 0.5
  done
  warn "$url did not answer within 600 s (log: $log)"
  return 1
}

# start_server NAME CMD...: runs CMD in the background; its PID in SERVER_PID (and SERVER_PIDS).
SERVER_PID=""
start_server() {
  local name="$1"
  shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  SERVER_PID=$!
  SERVER_PIDS+=("$SERVER_PID")
}
stop_server() {
  local pid="$1" keep=() p
  # stderr off: bash reports a server that aborts at exit (llama-server's "terminate called
  # without an active exception" at SIGTERM) when it reaps it.
  stop_pid "$pid" 2>/dev/null
  for p in "${SERVER_PIDS[@]}"; do [[ "$p" == "$pid" ]] || keep+=("$p"); done
  SERVER_PIDS=("${keep[@]+"${keep[@]}"}")
}

# run NAME CMD...: CMD with stdout in LOGS/NAME.out and stderr in LOGS/NAME.err, under the timeout.
run() {
  local name="$1" rc=0
  shift
  timeout "$CMD_TIMEOUT" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    warn "$name failed (exit $rc): $*"
    tail -n 8 "$LOGS/$name.err" >&2 || true
  fi
  return $rc
}

# pyjson FILE EXPR: EXPR evaluated with d = FILE's JSON (the whole file, else its last JSON line).
pyjson() {
  "$PY" - "$1" "$2" <<'EOF'
import json, sys
text = open(sys.argv[1]).read().strip()
try:
    d = json.loads(text)
except ValueError:
    lines = [l for l in text.splitlines() if l.lstrip().startswith(("{", "["))]
    if not lines:
        sys.exit("no JSON in " + sys.argv[1])
    d = json.loads(lines[-1])
v = eval(sys.argv[2], {"d": d})
if v is None:
    sys.exit("no value for " + sys.argv[2])
print("%.6g" % v if isinstance(v, float) else v)
EOF
}

FAILED=0
# record WORKLOAD UNIT BETTER STRATA LLAMA (empty values: not measured).
record() {
  [[ -n "$4" && -n "$5" ]] || FAILED=$((FAILED + 1))
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"
  note "$(printf '%-36s strata %-10s llama.cpp %-10s %s' "$1" "${4:-n/a}" "${5:-n/a}" "$2")"
}

# ------------------------------------------------------------------------------------------------
# Machine

note "machine"
CPU_MODEL="$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)"
CPU_FLAGS="$(lscpu 2>/dev/null | sed -n 's/^Flags:[[:space:]]*//p' | tr ' ' '\n' | grep -E '^(avx2|avx512.*|amx.*)$' | sort | tr '\n' ' ' || true)"
NPROC="$(nproc)"
LLAMA_COMMIT="$(git -C "$LLAMA_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)"
STRATA_COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "CPU:        ${CPU_MODEL:-unknown}"
echo "ISA flags:  ${CPU_FLAGS:-none of avx2/avx512*/amx*}"
echo "cores:      $NPROC online; threads measured: ${THREADS[*]} (tensor parallel: 2 ranks x 1 thread)"
echo "strata:     $STRATA (commit $STRATA_COMMIT)"
echo "llama.cpp:  $LLAMA_DIR (commit $LLAMA_COMMIT)"
echo "work:       $WORK"
if [[ $NPROC -lt 2 ]]; then
  warn "fewer than 2 cores online: the 2-thread rows oversubscribe"
fi

# ------------------------------------------------------------------------------------------------
# Models: one seeded checkpoint per dtype for both sides.

declare -A MODEL GGUF
make_models() {
  local d torch_dtype outtype dir gguf
  for d in "${DTYPES[@]}"; do
    case "$d" in
      f32) torch_dtype=float32 outtype=f32 ;;
      bf16) torch_dtype=bfloat16 outtype=f16 ;;  # BF16 Strata vs an F16 GGUF of the same weights
    esac
    dir="$WORK/gpt_neox-${SHAPE//,/x}-$d"
    gguf="$dir-as-$outtype.gguf"
    if [[ ! -f "$dir/config.json" || ! -f "$dir/model.safetensors" || ! -f "$dir/tokenizer.json" ]]; then
      note "strata make-model $dir ($torch_dtype)"
      rm -rf "$dir" "$dir.tmp" "$gguf"
      "$STRATA" make-model "$dir.tmp" --family gpt_neox --layers "$LAYERS" --hidden "$HIDDEN" --heads "$HEADS" \
        --vocab "$VOCAB" --max-position "$MAX_POSITION" --dtype "$torch_dtype" --seed 1 >"$LOGS/make-model-$d.log" 2>&1 ||
        { cat "$LOGS/make-model-$d.log" >&2; die "strata make-model failed"; }
      mv "$dir.tmp" "$dir"
    fi
    if [[ ! -f "$gguf" || "$gguf" -ot "$dir/model.safetensors" ]]; then
      note "hf_to_gguf.py $dir -> $gguf"
      "$PY" "$CONVERTER" "$dir" --gguf-py "$GGUF_PY" --outtype "$outtype" --outfile "$gguf" >"$LOGS/convert-$d.log" 2>&1 ||
        { cat "$LOGS/convert-$d.log" >&2; die "GGUF conversion failed"; }
    fi
    MODEL[$d]="$dir"
    GGUF[$d]="$gguf"
  done
}
if [[ ${#GGUF_FILES[@]} -gt 0 ]]; then
  # The given files: one "dtype" per file, named after it; both engines read the same file.
  DTYPES=()
  for f in "${GGUF_FILES[@]}"; do
    [[ -f "$f" ]] || die "--gguf $f: no such file"
    label="$(basename "$f" .gguf)"
    label="${label//[^A-Za-z0-9_.-]/_}"
    DTYPES+=("$label")
    MODEL[$label]="$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"
    GGUF[$label]="${MODEL[$label]}"
  done
  BATCHED_BF16=1  # (the batched rows run for every file)
else
  make_models
fi

# ------------------------------------------------------------------------------------------------
# Offline rows

declare -A L  # llama.cpp results, reused by the tensor-parallel rows
llama_b1() {  # DTYPE THREADS: pp512 and tg64 from one llama-bench run
  local d="$1" t="$2" name="llama-bench-$1-t$2"
  [[ -n "${L[tg-$d-$t]+x}" ]] && return 0
  L[tg-$d-$t]=""
  L[pp-$d-$t]=""
  if run "$name" "$LLAMA_BENCH" -m "${GGUF[$d]}" -p "$PREFILL_LEN" -n "$OUTPUT_LEN" -t "$t" -r "$REPEAT" -o json; then
    L[tg-$d-$t]="$(pyjson "$LOGS/$name.out" "[r['avg_ts'] for r in d if r['n_gen'] == $OUTPUT_LEN and r['n_prompt'] == 0][0]" || true)"
    L[pp-$d-$t]="$(pyjson "$LOGS/$name.out" "[r['avg_ts'] for r in d if r['n_prompt'] == $PREFILL_LEN and r['n_gen'] == 0][0]" || true)"
  fi
}

# strata_b1 DTYPE THREADS TAG [LAUNCHER...]: sets S_TG and S_PP (empty on failure).
S_TG=""
S_PP=""
strata_b1() {
  local d="$1" t="$2" tag="$3"
  shift 3
  local extra=()
  [[ "$tag" == tp2 ]] && extra=(--tp 2)
  S_TG=""
  S_PP=""
  if run "strata-b1-decode-$d-$tag" "$@" "$STRATA" bench offline --model "${MODEL[$d]}" --batch 1 \
    --prompt-len "$PROMPT_LEN" --output-len "$OUTPUT_LEN" --threads "$t" --repeat "$REPEAT" "${extra[@]+"${extra[@]}"}" --json; then
    S_TG="$(pyjson "$LOGS/strata-b1-decode-$d-$tag.out" "d['decode_tokens_per_s']" || true)"
  fi
  if run "strata-b1-prefill-$d-$tag" "$@" "$STRATA" bench offline --model "${MODEL[$d]}" --batch 1 \
    --prompt-len "$PREFILL_LEN" --output-len 1 --threads "$t" --repeat "$REPEAT" "${extra[@]+"${extra[@]}"}" --json; then
    S_PP="$(pyjson "$LOGS/strata-b1-prefill-$d-$tag.out" "d['prefill_tokens_per_s']" || true)"
  fi
}

for d in "${DTYPES[@]}"; do
  for t in "${THREADS[@]}"; do
    note "batch-1 decode and prefill, $d, $t thread(s)"
    strata_b1 "$d" "$t" "t$t"
    llama_b1 "$d" "$t"
    record "decode b1 p$PROMPT_LEN+$OUTPUT_LEN $d t$t" "tok/s" higher "$S_TG" "${L[tg-$d-$t]}"
    record "prefill b1 p$PREFILL_LEN $d t$t" "tok/s" higher "$S_PP" "${L[pp-$d-$t]}"
  done
done

for d in "${DTYPES[@]}"; do
  [[ "$d" == f32 || $BATCHED_BF16 -eq 1 ]] || continue
  for b in "${BATCHES[@]}"; do
    [[ "$b" -gt 1 ]] || continue
    note "batched decode, batch $b, $d, 2 threads"
    s="" l=""
    name="strata-batch$b-$d"
    if run "$name" "$STRATA" bench offline --model "${MODEL[$d]}" --batch "$b" --prompt-len "$PROMPT_LEN" \
      --output-len "$OUTPUT_LEN" --threads 2 --repeat "$REPEAT" --json; then
      s="$(pyjson "$LOGS/$name.out" "d['decode_tokens_per_s']" || true)"
      admitted="$(pyjson "$LOGS/$name.out" "d['admitted_batch']" || echo 0)"
      [[ "$admitted" == "$b" ]] || warn "strata admitted only $admitted of $b sequences at once"
    fi
    name="llama-batched-$b-$d"
    if run "$name" "$LLAMA_BATCHED" -m "${GGUF[$d]}" -c $((b * (PROMPT_LEN + OUTPUT_LEN))) -b 2048 -ub 512 \
      -npp "$PROMPT_LEN" -ntg "$OUTPUT_LEN" -npl "$b" -t 2 --output-format jsonl; then
      # The JSONL line goes to stdout or (through the log) stderr, depending on the build.
      cat "$LOGS/$name.err" >>"$LOGS/$name.out"
      l="$(pyjson "$LOGS/$name.out" "d['speed_tg']" || true)"
    fi
    record "decode b$b p$PROMPT_LEN+$OUTPUT_LEN $d t2" "tok/s" higher "$s" "$l"
  done
done

# ------------------------------------------------------------------------------------------------
# Serving

# drive NAME URL CLIENTS: strata bench serve against URL; sets D_TPS, D_ITL, D_TTFT.
D_TPS="" D_ITL="" D_TTFT=""
drive() {
  local name="$1" url="$2" c="$3" n=$(($3 * PROMPTS_PER_CLIENT))
  D_TPS="" D_ITL="" D_TTFT=""
  if run "$name" "$STRATA" bench serve --url "$url" --concurrency "$c" --num-prompts "$n" \
    --prompt-len "$SERVE_PROMPT" --output-len "$SERVE_OUTPUT" --json; then
    local done_n
    done_n="$(pyjson "$LOGS/$name.out" "d['completed']" || echo 0)"
    [[ "$done_n" == "$n" ]] || { warn "$name: $done_n of $n requests completed"; return 0; }
    D_TPS="$(pyjson "$LOGS/$name.out" "d['output_tokens_per_s']" || true)"
    D_ITL="$(pyjson "$LOGS/$name.out" "d['itl_ms']['p50']" || true)"
    D_TTFT="$(pyjson "$LOGS/$name.out" "d['ttft_ms']['p50']" || true)"
  fi
}

# strata_serve NAME DTYPE CLIENTS [LAUNCHER...]: start, wait for /health/ready, drive, stop.
strata_serve() {
  local name="$1" d="$2" c="$3" port
  shift 3
  local extra=(--threads 2)
  [[ $# -gt 0 ]] && extra=(--tp 2 --threads 1)
  port="$(free_port)"
  D_TPS="" D_ITL="" D_TTFT=""
  start_server "$name" "$@" "$STRATA" serve --model "${MODEL[$d]}" --host 127.0.0.1 --port "$port" "${extra[@]}"
  local pid="$SERVER_PID"
  if wait_http "http://127.0.0.1:$port/health/ready" "$pid" "$LOGS/$name.log"; then
    drive "$name-load" "http://127.0.0.1:$port" "$c"
  fi
  stop_server "$pid"
}

# Greedy continuation of 1,2,3 from a running llama-server, to check both sides hold the same model.
llama_greedy() {
  "$PY" - "$1" <<'EOF'
import json, sys, urllib.request
body = {"prompt": [1, 2, 3], "n_predict": 16, "temperature": 0, "ignore_eos": True, "return_tokens": True,
        "cache_prompt": False}
req = urllib.request.Request(sys.argv[1] + "/completion", json.dumps(body).encode(), {"Content-Type": "application/json"})
print(",".join(str(t) for t in json.load(urllib.request.urlopen(req, timeout=120))["tokens"]))
EOF
}

declare -A LS  # llama.cpp serving results, reused by the tensor-parallel rows
llama_serve() {  # DTYPE CLIENTS
  local d="$1" c="$2" port name="llama-server-$1-c$2"
  [[ -n "${LS[tps-$d-$c]+x}" ]] && return 0
  port="$(free_port)"
  start_server "$name" "$LLAMA_SERVER" -m "${GGUF[$d]}" --host 127.0.0.1 --port "$port" -np "$c" \
    -c $((c * (SERVE_PROMPT + SERVE_OUTPUT + SERVE_PAD))) -t 2
  local pid="$SERVER_PID"
  D_TPS="" D_ITL="" D_TTFT=""
  if wait_http "http://127.0.0.1:$port/health" "$pid" "$LOGS/$name.log"; then
    if [[ "$c" == "${CLIENTS[0]}" ]]; then
      local lt st
      lt="$(llama_greedy "http://127.0.0.1:$port" 2>>"$LOGS/$name.log" || echo failed)"
      st="$(timeout "$CMD_TIMEOUT" "$STRATA" generate --model "${MODEL[$d]}" --prompt-ids 1,2,3 --max-tokens 16 \
        --ignore-eos --threads 2 --json 2>>"$LOGS/$name.log" |
        "$PY" -c 'import json, sys; print(",".join(map(str, json.load(sys.stdin)["tokens"])))' || echo failed)"
      if [[ "$lt" == "$st" ]]; then
        note "greedy check $d: strata and llama.cpp continue 1,2,3 alike ($st)"
      else
        warn "greedy check $d: strata $st, llama.cpp $lt (expected alike for f32; bf16 vs f16 may part at near-ties)"
      fi
    fi
    drive "$name-load" "http://127.0.0.1:$port" "$c"
  fi
  stop_server "$pid"
  LS[tps-$d-$c]="$D_TPS"
  LS[itl-$d-$c]="$D_ITL"
  LS[ttft-$d-$c]="$D_TTFT"
}

record_serve() {  # LABEL DTYPE CLIENTS (strata's D_* already set)
  local s_tps="$D_TPS" s_itl="$D_ITL" s_ttft="$D_TTFT"
  llama_serve "$2" "$3"
  record "serve $1 c$3 p$SERVE_PROMPT+$SERVE_OUTPUT $2" "out tok/s" higher "$s_tps" "${LS[tps-$2-$3]}"
  record "serve $1 c$3 $2 ITL p50" "ms" lower "$s_itl" "${LS[itl-$2-$3]}"
  record "serve $1 c$3 $2 TTFT p50" "ms" lower "$s_ttft" "${LS[ttft-$2-$3]}"
}

if [[ $DO_SERVE -eq 1 ]]; then
  for d in "${DTYPES[@]}"; do
    for c in "${CLIENTS[@]}"; do
      note "serving, $c clients, $d, 2 threads"
      strata_serve "strata-serve-$d-c$c" "$d" "$c"
      record_serve "t2" "$d" "$c"
    done
  done
fi

# ------------------------------------------------------------------------------------------------
# Tensor parallel: 2 ranks x 1 thread against llama.cpp at 2 threads.

if [[ $DO_TP -eq 1 ]]; then
  MPI=("$MPIRUN" -np 2 "${MPIRUN_ARGS[@]}")
  for d in "${DTYPES[@]}"; do
    note "tensor parallel (mpirun -np 2, --tp 2 --threads 1), $d"
    strata_b1 "$d" 1 tp2 "${MPI[@]}"
    llama_b1 "$d" 2
    record "decode b1 p$PROMPT_LEN+$OUTPUT_LEN $d tp2x1 vs t2" "tok/s" higher "$S_TG" "${L[tg-$d-2]}"
    record "prefill b1 p$PREFILL_LEN $d tp2x1 vs t2" "tok/s" higher "$S_PP" "${L[pp-$d-2]}"
    if [[ $DO_SERVE -eq 1 ]]; then
      c="${CLIENTS[0]}"
      strata_serve "strata-serve-tp2-$d-c$c" "$d" "$c" "${MPI[@]}"
      record_serve "tp2x1 vs t2" "$d" "$c"
    fi
  done
fi

# ------------------------------------------------------------------------------------------------
# Memory and load time: one process that loads the model and generates 16 tokens, default
# settings. Strata: `generate` (its default KV budget is reserved, not resident: pages fill as
# sequences grow); llama.cpp: `llama-bench -p 0 -n 16 -r 1` (llama-cli is not among the tools
# built; llama-bench loads the model, creates a context, runs one warm-up token and 16 generated
# tokens, close to what `generate` does). llama.cpp mmaps the GGUF by default, so the weights
# count in its RSS once touched, as Strata's copied weights do. Each side runs three times,
# alternating, and the medians are reported: on this VM a process's first touch of fresh memory
# costs a varying amount of system time (0.2 to 1.3 s for the same run).

# time_v NAME CMD...: sets T_RSS (MiB) and T_WALL (s) from GNU time -v.
T_RSS="" T_WALL=""
time_v() {
  local name="$1"
  shift
  T_RSS="" T_WALL=""
  if run "$name" "$TIME_V" -v "$@"; then
    read -r T_RSS T_WALL < <("$PY" - "$LOGS/$name.err" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1).split(":")
wall = sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
print("%.1f %.2f" % (rss, wall))
EOF
    ) || true
  fi
}

# median3 A B C
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

if [[ -n "$TIME_V" ]]; then
  for d in "${DTYPES[@]}"; do
    note "memory and load, $d"
    s_rss=() s_wall=() l_rss=() l_wall=()
    for i in 1 2 3; do
      time_v "strata-mem-$d-$i" "$STRATA" generate --model "${MODEL[$d]}" --prompt-ids 1,2,3 --max-tokens 16 \
        --ignore-eos --threads 2 --json
      s_rss+=("${T_RSS:-nan}") s_wall+=("${T_WALL:-nan}")
      time_v "llama-mem-$d-$i" "$LLAMA_BENCH" -m "${GGUF[$d]}" -p 0 -n 16 -r 1 -t 2 -o json
      l_rss+=("${T_RSS:-nan}") l_wall+=("${T_WALL:-nan}")
    done
    record "load+generate 16 $d peak RSS" "MiB" lower "$(median3 "${s_rss[@]}")" "$(median3 "${l_rss[@]}")"
    record "load+generate 16 $d wall time" "s" lower "$(median3 "${s_wall[@]}")" "$(median3 "${l_wall[@]}")"
  done
fi

# ------------------------------------------------------------------------------------------------
# Table and JSON

echo
"$PY" - "$RESULTS" "$OUT" "${CPU_MODEL:-unknown}" "$CPU_FLAGS" "$NPROC" "$LLAMA_COMMIT" "$STRATA_COMMIT" \
  "$QUICK" "$REPEAT" <<'EOF'
import json, sys
res, out, cpu, flags, nproc, lcommit, scommit, quick, repeat = sys.argv[1:10]
rows = []
for line in open(res):
    w, unit, better, s, l = line.rstrip("\n").split("\t")
    s = float(s) if s else None
    l = float(l) if l else None
    ratio = s / l if s is not None and l else None
    rows.append({"workload": w, "unit": unit, "better": better, "strata": s, "llamacpp": l, "ratio": ratio})
def fmt(v):
    return "n/a" if v is None else ("%.1f" % v if abs(v) >= 100 else "%.3g" % v)
wide = max([len("workload")] + [len(r["workload"]) + len(r["unit"]) + 3 for r in rows])
print("%-*s | %10s | %10s | %6s" % (wide, "workload", "Strata", "llama.cpp", "ratio"))
print("-" * wide + "-|-" + "-" * 10 + "-|-" + "-" * 10 + "-|-" + "-" * 6)
for r in rows:
    print("%-*s | %10s | %10s | %6s" % (wide, "%s (%s)" % (r["workload"], r["unit"]), fmt(r["strata"]),
                                         fmt(r["llamacpp"]), "n/a" if r["ratio"] is None else "%.2f" % r["ratio"]))
print("ratio = Strata / llama.cpp: above 1 is better for Strata in tok/s rows, below 1 in ms, MiB and s rows.")
if out:
    doc = {"cpu": {"model": cpu, "flags": flags.split(), "cores": int(nproc)},
           "llama_cpp_commit": lcommit, "strata_commit": scommit, "quick": quick == "1", "repeat": int(repeat),
           "rows": rows}
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("JSON written to " + out)
EOF

if [[ $FAILED -gt 0 ]]; then
  warn "$FAILED row(s) without a result on one side or both (logs in $LOGS)"
  [[ $MADE_WORK -eq 1 && $KEEP -eq 0 ]] && warn "rerun with --keep or --work DIR to keep the logs"
  exit 1
fi
