#!/usr/bin/env bash
# One short GPU check of recops (run on the lent CUDA machine from the repository root).
#   device: bash scripts/gpu_check.sh            (.whl carried; $OUT set by the device tool)
#   dry run here: PY=.venv/bin/python SKIP_WHEELS=1 GPU_CHECK_SMALL=1 OUT=/tmp/gpu_dry bash scripts/gpu_check.sh
# Parts: 0 environment, 1 unit tests (models, training, evaluation, Recommender, item index),
# 2 `recops train` SASRec on the built-in synthetic data, 3 `recops bench scale`,
# 4 Recommender serving on CUDA against the CPU (full product and int8 index).
# PARTS="train_fixed bench_scale serve_cuda" runs only those (setup and env always run).
# Each part runs under `set -euo pipefail` in its own subshell; a failing part does not stop the next.
set -uo pipefail

export OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
PY=${PY:-python3}
SMALL=${GPU_CHECK_SMALL:-0}
ROOT=$(pwd)
export USERNAME=me RECOPS_HOME=${RECOPS_HOME:-/tmp/rh} PYTHONUNBUFFERED=1 PYTEST_DISABLE_PLUGIN_AUTOLOAD=1
mkdir -p "$RECOPS_HOME"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

if [ "$SMALL" = 1 ]; then
  EPOCHS=2; GRID=100k:10k; STEPS=1; SERVE_ITEMS=300000; SERVE_EVENTS=50000
else
  EPOCHS=20; GRID=100k:10k,1M:100k,1M:1M; STEPS=5; SERVE_ITEMS=1000000; SERVE_EVENTS=200000
fi

part() {  # part NAME COMMAND...: run in a subshell with strict mode, report rc and seconds
  local name=$1 t0 rc
  shift
  echo
  echo "===== $name ====="
  t0=$(date +%s%N)
  (set -euo pipefail; "$@")
  rc=$?
  echo "===== $name: rc=$rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms ====="
  return 0
}

setup() {
  if [ "${SKIP_WHEELS:-0}" = 1 ]; then echo "wheels not installed (SKIP_WHEELS=1)"; return; fi
  if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    # the pinned set (constraints.txt), pandas included: the image's pandas 3.0.6 segfaults in
    # recops.data.columnar.read_parquet (pandas 3.0 reads the Arrow table after to_pandas(self_destruct=True))
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  fi
}

env_info() {
  nvidia-smi || echo "(no nvidia-smi)"
  "$PY" - <<'EOF'
import importlib, importlib.metadata as md, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device:", torch.cuda.get_device_name(0), "capability", torch.cuda.get_device_capability(0))
for name in ("numpy", "pandas", "pyarrow", "numba", "pydantic", "typer", "rich", "optuna", "sqlalchemy", "pytest"):
    try:
        m = importlib.import_module(name)
        print(f"{name} {md.version(name)}  ({m.__file__})")
    except Exception as e:
        print(f"{name}: MISSING ({type(e).__name__}: {e})")
import recops.cli.main  # noqa: F401  (every CLI import resolves)
print("recops CLI imports ok; train.device auto ->", __import__("recops.training.train", fromlist=["x"]).resolve_device("auto"))
EOF
}

unit_tests() {
  "$PY" -m pytest -q -ra --tb=short -p no:randomly -p no:cacheprovider -o addopts="" --durations=5 \
    tests/unit/test_auto_max_len.py tests/unit/test_baselines.py tests/unit/test_chunked_ce.py \
    tests/unit/test_ranking.py tests/unit/test_metrics.py tests/unit/test_item_index.py \
    tests/unit/test_warm_start.py tests/unit/test_tune.py tests/unit/test_write_run.py \
    tests/unit/test_usable_cpus.py tests/unit/test_config.py tests/unit/test_trending.py \
    tests/unit/test_served_log.py 2>&1 | tee "$OUT/pytest.log"
}

train_fixed() {  # the same command as the CPU figure: fixed epochs, seconds per epoch
  "$PY" -m recops train -d synthetic -m sasrec --epochs "$EPOCHS" --out "$RECOPS_HOME/runs/sasrec-fixed"
  cp "$RECOPS_HOME/runs/sasrec-fixed/metrics.json" "$OUT/train_fixed_metrics.json"
}

train_default() {  # default epochs (early stopping), the quality figure
  if [ "$SMALL" = 1 ]; then set -- --epochs 3; fi
  "$PY" -m recops train -d synthetic -m sasrec "$@" --out "$RECOPS_HOME/runs/sasrec-default"
}

bench_scale() {
  "$PY" -m recops bench scale --grid "$GRID" --steps "$STEPS" --json > "$OUT/scale.json"
  "$PY" - "$OUT/scale.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print("machine", d["machine"])
keys = ("loss", "train_seconds_per_step", "train_seconds_per_1m_events", "epoch_seconds_extrapolated",
        "gpu_peak_mb", "eval_seconds_per_1000", "model_load_seconds", "serve_path", "serve_p50_ms",
        "serve_p99_ms", "serve_full_p50_ms", "peak_rss_mb")
for p in d["points"]:
    print(f'{p["target_events"]}:{p["target_items"]}', {k: p.get(k) for k in keys})
EOF
}

serve_cuda() {  # Recommender on CUDA (bf16 autocast, full product) against the CPU paths
  "$PY" - "$RECOPS_HOME/runs/sasrec-fixed/checkpoint.pt" "$SERVE_EVENTS" "$SERVE_ITEMS" <<'EOF'
import sys, time, json
import numpy as np, torch
from recops.serving.recommender import Recommender
from recops.training.checkpoint import Checkpoint

def p(lat, q): return round(float(np.percentile(np.asarray(lat) * 1000, q)), 3)

def latencies(rec, sessions, warm=20):
    out = []
    for i, s in enumerate(sessions):
        t = time.perf_counter(); rec.recommend(s, k=10)
        if rec.model.output_embeddings().is_cuda: torch.cuda.synchronize()
        if i >= warm: out.append(time.perf_counter() - t)
    return out

def compare(name, ckpt, sessions):
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    recs = {"cpu_full": Recommender(ckpt, "cpu", quantized=False), f"{dev}_default": Recommender(ckpt, dev)}
    if len(ckpt.vocab) >= 200_000:
        recs["cpu_int8"] = Recommender(ckpt, "cpu")
    res = {"items": len(ckpt.vocab)}
    answers = {}
    for key, rec in recs.items():
        lat = latencies(rec, sessions)
        res[key] = {"p50_ms": p(lat, 50), "p99_ms": p(lat, 99), "int8_index": rec.index is not None}
        answers[key] = [[item for item, _ in rec.recommend(s, k=10).items] for s in sessions[20:]]
    for key in answers:
        if key != "cpu_full":
            pairs = list(zip(answers[key], answers["cpu_full"]))
            res[key]["same_top10_list_as_cpu_full"] = f"{sum(a == b for a, b in pairs)}/{len(pairs)}"
            res[key]["mean_top10_overlap_with_cpu_full"] = round(
                float(np.mean([len(set(a) & set(b)) / 10 for a, b in pairs])), 4)
    if torch.cuda.is_available():  # batched scoring on the GPU: 256 sessions per call
        rec = recs[f"{dev}_default"]
        batch = (sessions * 2)[:256]
        rec.recommend_batch(batch, k=10); torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(5): rec.recommend_batch(batch, k=10)
        torch.cuda.synchronize()
        res["cuda_batch256_ms_per_session"] = round((time.perf_counter() - t) / 5 / 256 * 1000, 4)
    print(name, json.dumps(res, indent=1))
    return res

results = {}
path, events, items = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ckpt = Checkpoint.load(path)
# the trained 800-item synthetic model: sessions from its own vocabulary
rng = np.random.default_rng(0)
vocab = list(ckpt.vocab.items)
sessions = [list(rng.choice(vocab, size=rng.integers(2, 15))) for _ in range(220)]
results["trained_synthetic"] = compare("trained synthetic SASRec", ckpt, sessions)

# an untrained SASRec over a large catalogue (as bench scale builds it)
from recops.config import load_config
from recops.data import build_interactions, leave_one_out_split
from recops.data.interactions import ItemVocab
from recops.data.synthetic import generate_sessions, scale_config
from recops.models import build_model
from recops.training.train import seed_everything
import tempfile, os
t0 = time.perf_counter()
frame = generate_sessions(scale_config(events, items))
with tempfile.TemporaryDirectory() as tmp:
    f = os.path.join(tmp, "e.parquet"); frame.to_parquet(f, index=False)
    from recops.data.sources import load_events
    inter = build_interactions(load_events(f"parquet:{f}"), ItemVocab(tuple(range(1, items + 1))))
split = leave_one_out_split(inter)
config = load_config()
seed_everything(0)
model = build_model("sasrec", config.sasrec, inter.n_items, split.train)
big = Checkpoint.from_model(model, "sasrec", inter.vocab, data_fingerprint=inter.fingerprint)
print(f"large-catalogue checkpoint built in {time.perf_counter() - t0:.1f} s")
sessions = [inter.vocab.decode(h[-20:]) for h in split.test.inputs[:220]]
results["untrained_large"] = compare(f"untrained SASRec, {items} items", big, sessions)
json.dump(results, open(os.path.join(os.environ["OUT"], "serve_cuda.json"), "w"), indent=1)
EOF
}

echo "gpu_check start $(date -u +%FT%TZ)  small=$SMALL"
part setup setup
export PYTHONPATH=/tmp/site:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}
part env env_info
PARTS=${PARTS:-unit_tests train_fixed train_default bench_scale serve_cuda}
for name in unit_tests train_fixed train_default bench_scale serve_cuda; do
  case " $PARTS " in *" $name "*) part "$name" "$name" ;; esac
done
echo "gpu_check end $(date -u +%FT%TZ)"
