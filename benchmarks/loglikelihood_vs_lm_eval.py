"""oversight vs lm-evaluation-harness 0.4.x: same task YAML, same weights, same threads.

For each task YAML in ``benchmarks/task_yaml`` this runs, one after the other,

* ``lm_eval --model hf`` from its own venv (``benchmarks/.venv-lmeval``, built by
  ``benchmarks/lm_eval_env.sh`` on first use) once per ``--lm-eval-batch-sizes`` entry, and
* ``oversight eval --model hf:DIR --task the.yaml --no-cache`` from the main venv,

each as a subprocess timed end to end (process start, imports, model load, data loading,
scoring, writing). Both get the same ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` and run from
the repository root (the YAMLs' ``data_files`` are relative to it). A "startup" probe per
side (imports plus loading the same model, nothing scored) gives the time excluding
startup as ``wall - startup``. The probes run first, so oversight's timed runs read the
tokenizer it saves on a model directory's first load (see ``oversight.models.fast_tokenizer``;
the first load takes as long as lm-eval's), as any later run on that model does.

It then prints a table of wall times and ratios (end to end; excluding startup; the
"scoring" phase as each tool's own progress bar reports it, to the second; CPU seconds),
and checks exactness: per-choice loglikelihoods from lm-eval's ``--log_samples``
(``filtered_resps``) against oversight's ``samples.jsonl`` (``loglikelihoods``), matched
by ``doc_id``, within 1e-4; the prompts both built; and both tools' accuracies. Logs,
outputs and ``summary.json`` go under ``--out``; the exit status is 1 when exactness fails.

Usage (from anywhere; needs ``make install`` for the main venv)::

    .venv/bin/python benchmarks/loglikelihood_vs_lm_eval.py            # 300 docs per task
    .venv/bin/python benchmarks/loglikelihood_vs_lm_eval.py --quick    # 40 docs per task
    .venv/bin/python benchmarks/loglikelihood_vs_lm_eval.py --threads 1 --lm-eval-batch-sizes 1,16
    .venv/bin/python benchmarks/loglikelihood_vs_lm_eval.py --report benchmarks/out/<run>

On a shared machine the load average before and after each run is recorded and CPU
seconds (user + sys of the subprocess) are reported next to wall seconds. With more
threads than idle cores OpenMP slows small operations many-fold, unevenly between the
two tools: on a busy machine ``--threads 1`` gives the steadier comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TASK_DIR = HERE / "task_yaml"
MAIN_VENV = ROOT / ".venv"
LM_EVAL_ENV_SCRIPT = HERE / "lm_eval_env.sh"
DEFAULT_LIMIT = 300
QUICK_LIMIT = 40
TOLERANCE = 1e-4


@dataclass
class Timing:
    wall_s: float
    cpu_s: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    returncode: int


@dataclass
class SideResult:
    name: str  # "lm-eval bs=1", "oversight"
    timing: Timing
    scoring_s: float | None = None  # the tool's own progress bar over the model calls
    loglikelihoods: dict[int, list[float]] = field(default_factory=dict)
    prompts: dict[int, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- subprocesses
def run_timed(cmd: list[str], env: dict[str, str], log: Path) -> Timing:
    """Run ``cmd`` from the repo root with output to ``log``; wall and CPU seconds."""
    load_before = os.getloadavg()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - start
    usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    timing = Timing(wall, cpu, load_before, os.getloadavg(), proc.returncode)
    if proc.returncode != 0:
        tail = "".join(log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"command failed (exit {proc.returncode}): {' '.join(cmd)}\nlog: {log}\n{tail}")
    return timing


LM_EVAL_BAR = re.compile(r"Running loglikelihood requests: 100%\|[^|]*\|\s*(\d+)/(\d+) \[([\d:]+)<")
OVERSIGHT_BAR = re.compile(r"(\d+)/(\d+) (\d+:\d\d:\d\d) eta")


def _clock_seconds(text: str) -> float:
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def scoring_seconds(log: Path, pattern: re.Pattern[str]) -> float | None:
    """Elapsed time of the last finished progress bar in a log (whole seconds), if any."""
    text = log.read_text(encoding="utf-8", errors="replace")
    done = [m for m in pattern.finditer(text) if m.group(1) == m.group(2)]
    return _clock_seconds(done[-1].group(3)) if done else None


def bench_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def lm_eval_python() -> Path:
    out = subprocess.run(
        ["bash", str(LM_EVAL_ENV_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip().splitlines()
    return Path(out[-1])


def default_model_dir(main_python: Path) -> Path:
    code = "from oversight.models.default import default_model_dir; print(default_model_dir())"
    out = subprocess.run([str(main_python), "-c", code], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


STARTUP_PROBES = {
    # Imports the CLI pulls in and builds the model object exactly as the CLI does.
    "lm-eval": (
        "import lm_eval.evaluator, lm_eval.tasks\n"
        "from lm_eval.models.huggingface import HFLM\n"
        "lm = HFLM(pretrained={model!r}, dtype='float32', device='cpu', batch_size=1)\n"
        "import torch; print('threads', torch.get_num_threads())\n"
    ),
    "oversight": (
        "import oversight.cli\n"
        "from oversight.models.registry import load_model\n"
        "m = load_model('hf:' + {model!r})\n"
        "import torch; print('threads', torch.get_num_threads())\n"
    ),
}


def source_revision() -> str:
    """The commit of the oversight tree being measured (``+dirty`` when src/ has uncommitted changes),
    so that a figure can always be traced to the engine that produced it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "--short", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "src").strip())
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def startup_probe(side: str, python: Path, model: Path, env: dict[str, str], log: Path) -> Timing:
    code = STARTUP_PROBES[side].format(model=str(model))
    return run_timed([str(python), "-c", code], env, log)


# ---------------------------------------------------------------- one run per side
def run_lm_eval(
    python: Path, model: Path, task: str, limit: int, batch_size: int, env: dict[str, str], out: Path
) -> SideResult:
    out.mkdir(parents=True, exist_ok=True)
    lm_eval = python.parent / "lm_eval"
    cmd = [
        str(lm_eval), "--model", "hf",
        "--model_args", f"pretrained={model},dtype=float32",
        "--device", "cpu",
        "--tasks", task,
        "--include_path", str(TASK_DIR.relative_to(ROOT)),
        "--limit", str(limit),
        "--batch_size", str(batch_size),
        "--log_samples",
        "--output_path", str(out),
    ]
    timing = run_timed(cmd, env, out / "log.txt")
    samples = sorted(out.rglob(f"samples_{task}_*.jsonl"))
    results = sorted(out.rglob("results_*.json"))
    if not samples or not results:
        raise SystemExit(f"lm-eval wrote no samples/results for {task} under {out}")
    side = SideResult(f"lm-eval bs={batch_size}", timing, scoring_seconds(out / "log.txt", LM_EVAL_BAR))
    with samples[-1].open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            doc_id = int(rec["doc_id"])
            side.loglikelihoods[doc_id] = [float(r[0]) for r in rec["filtered_resps"]]
            side.prompts[doc_id] = rec["arguments"]["gen_args_0"]["arg_0"]
    res = json.loads(results[-1].read_text(encoding="utf-8"))["results"][task]
    side.metrics = {k.split(",")[0]: float(v) for k, v in res.items() if k.endswith(",none") and "stderr" not in k}
    return side


def run_oversight(
    python: Path, model: Path, yaml_path: Path, task: str, limit: int, env: dict[str, str], out: Path
) -> SideResult:
    if out.exists():
        for f in out.iterdir():  # a fresh run, never a resumed one
            f.unlink()
    cmd = [
        str(python.parent / "oversight"), "eval",
        "--model", f"hf:{model}",
        "--task", str(yaml_path.relative_to(ROOT)),
        "--limit", str(limit),
        "--no-cache",
        "--out", str(out),
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}.log.txt"
    timing = run_timed(cmd, env, log)
    side = SideResult("oversight", timing, scoring_seconds(log, OVERSIGHT_BAR))
    with (out / "samples.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if rec["task"] != task:
                continue
            side.loglikelihoods[int(rec["doc_id"])] = [float(x) for x in rec["loglikelihoods"]]
            side.prompts[int(rec["doc_id"])] = rec["prompt"]
    metrics = json.loads((out / "results.json").read_text(encoding="utf-8"))["tasks"][task]["metrics"]
    side.metrics = {k: float(v["value"]) for k, v in metrics.items()}
    return side


# ---------------------------------------------------------------- comparison
@dataclass
class Exactness:
    docs_compared: int
    choices_compared: int
    max_abs_diff: float
    argmax_disagreements: int
    prompt_mismatches: int
    missing_docs: int


def compare(ref: SideResult, got: SideResult) -> Exactness:
    worst, n_choices, disagree, prompts, missing = 0.0, 0, 0, 0, 0
    for doc_id, ref_lls in ref.loglikelihoods.items():
        lls = got.loglikelihoods.get(doc_id)
        if lls is None or len(lls) != len(ref_lls):
            missing += 1
            continue
        n_choices += len(lls)
        worst = max(worst, *(abs(a - b) for a, b in zip(ref_lls, lls, strict=True)))
        disagree += int(_argmax(ref_lls) != _argmax(lls))
        prompts += int(ref.prompts.get(doc_id) != got.prompts.get(doc_id))
    missing += len(set(got.loglikelihoods) - set(ref.loglikelihoods))
    return Exactness(len(ref.loglikelihoods), n_choices, worst, disagree, prompts, missing)


def _argmax(xs: list[float]) -> int:
    return max(range(len(xs)), key=lambda i: xs[i])


# ---------------------------------------------------------------- reporting
def _fmt_load(t: Timing) -> str:
    return f"{t.load_before[0]:.1f}->{t.load_after[0]:.1f}"


def print_report(summary: dict) -> bool:
    """The tables, from a ``summary.json`` dict; True when exactness and accuracies hold."""
    startup = summary["startup"]
    print()
    print(f"oversight {summary.get('revision', 'unknown')}  threads={summary['threads']}  "
          f"limit={summary['limit']}  cpus={summary.get('cpus')}  "
          "startup (imports + model load, nothing scored): "
          + ", ".join(f"{k} {v['wall_s']:.1f}s" for k, v in startup.items()))
    header = (f"{'task':<34} {'docs':>5} {'reqs':>5} {'side':<14} {'wall s':>7} {'cpu s':>7} "
              f"{'wall-startup':>12} {'scoring s':>9} {'load1':>9} {'ratio':>6} "
              f"{'ex-startup':>10} {'scoring':>7} {'cpu':>6}")
    print(header)
    print("-" * len(header))
    for row in summary["tasks"]:
        *lm_sides, ov = row["sides"]
        ov_t = ov["timing"]
        ov_net = ov_t["wall_s"] - startup["oversight"]["wall_s"]
        for side in [*lm_sides, ov]:
            t = side["timing"]
            is_ov = side is ov
            net = t["wall_s"] - startup["oversight" if is_ov else "lm-eval"]["wall_s"]
            ratio = "" if is_ov else f"{t['wall_s'] / ov_t['wall_s']:.2f}x"
            ratio_net = "" if is_ov else f"{net / ov_net:.2f}x" if ov_net > 0 else "n/a"
            ratio_cpu = "" if is_ov else f"{t['cpu_s'] / ov_t['cpu_s']:.2f}x"
            score, ov_score = side.get("scoring_s"), ov.get("scoring_s")
            ratio_score = ("" if is_ov or not score or not ov_score else f"{score / ov_score:.2f}x")
            load = f"{t['load_before'][0]:.1f}->{t['load_after'][0]:.1f}"
            print(f"{row['task']:<34} {row['docs']:>5} {row['requests']:>5} {side['name']:<14} "
                  f"{t['wall_s']:>7.1f} {t['cpu_s']:>7.1f} {net:>12.1f} "
                  f"{score if score is not None else float('nan'):>9.0f} "
                  f"{load:>9} {ratio:>6} {ratio_net:>10} {ratio_score:>7} {ratio_cpu:>6}")
    print()
    print("exactness (oversight vs each lm-eval run; per-choice loglikelihood, matched by doc_id):")
    header = (f"{'task':<34} {'vs':<14} {'choices':>7} {'max |dll|':>11} {'argmax diff':>11} "
              f"{'prompt diff':>11} {'missing':>7} {'acc lm-eval':>11} {'acc ovs':>8} "
              f"{'acc_norm lm':>11} {'acc_norm ovs':>12}")
    print(header)
    print("-" * len(header))
    ok = True
    for row in summary["tasks"]:
        *lm_sides, ov = row["sides"]
        ovm = ov["metrics"]
        for side, ex in zip(lm_sides, row["exactness"], strict=True):
            m = side["metrics"]
            good = (ex["max_abs_diff"] <= TOLERANCE and ex["missing_docs"] == 0
                    and ex["prompt_mismatches"] == 0
                    and all(math.isclose(m[k], ovm.get(k, math.nan), abs_tol=1e-9)
                            for k in ("acc", "acc_norm") if k in m))
            ok &= good
            print(f"{row['task']:<34} {side['name']:<14} {ex['choices_compared']:>7} "
                  f"{ex['max_abs_diff']:>11.2e} {ex['argmax_disagreements']:>11} "
                  f"{ex['prompt_mismatches']:>11} {ex['missing_docs']:>7} "
                  f"{m.get('acc', math.nan):>11.4f} {ovm.get('acc', math.nan):>8.4f} "
                  f"{m.get('acc_norm', math.nan):>11.4f} {ovm.get('acc_norm', math.nan):>12.4f}"
                  f"  {'OK' if good else 'MISMATCH'}")
    print()
    rows = summary["tasks"]
    wall_ov = sum(r["sides"][-1]["timing"]["wall_s"] for r in rows)
    cpu_ov = sum(r["sides"][-1]["timing"]["cpu_s"] for r in rows)
    for k, side in enumerate(rows[0]["sides"][:-1]):
        wall_lm = sum(r["sides"][k]["timing"]["wall_s"] for r in rows)
        cpu_lm = sum(r["sides"][k]["timing"]["cpu_s"] for r in rows)
        print(f"all tasks, wall: {side['name']} {wall_lm:.1f}s vs oversight {wall_ov:.1f}s -> "
              f"{wall_lm / wall_ov:.2f}x   (cpu: {cpu_lm:.1f}s vs {cpu_ov:.1f}s -> {cpu_lm / cpu_ov:.2f}x)")
    print(f"exactness within {TOLERANCE:g} and equal accuracies: {'yes' if ok else 'NO'}")
    return ok


def read_summary(run_dir: Path) -> dict:
    """An earlier run's summary, with scoring times read from its logs where it lacks them."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    for row in summary["tasks"]:
        for side in row["sides"]:
            if side.get("scoring_s") is None:
                if side["name"] == "oversight":
                    log, bar = run_dir / row["task"] / "oversight.log.txt", OVERSIGHT_BAR
                else:
                    bs = side["name"].split("=")[-1]
                    log, bar = run_dir / row["task"] / f"lm_eval_bs{bs}" / "log.txt", LM_EVAL_BAR
                side["scoring_s"] = scoring_seconds(log, bar) if log.exists() else None
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, help="transformers model directory (default: oversight's default model, converted)")
    p.add_argument("--tasks", nargs="*", type=Path, help="task YAMLs (default: benchmarks/task_yaml/*.yaml)")
    p.add_argument("--limit", type=int, default=None,
                   help=f"documents per task (default {DEFAULT_LIMIT}; a YAML's metadata.bench_limit may lower it)")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_LIMIT} documents per task")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads for both sides")
    p.add_argument("--lm-eval-batch-sizes", default="1,16", help="comma-separated lm-eval --batch_size values")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/out/<timestamp>)")
    p.add_argument("--no-startup-probe", action="store_true", help="skip timing imports + model load alone")
    p.add_argument("--report", type=Path, metavar="DIR", help="only print the tables of an earlier run's DIR/summary.json")
    args = p.parse_args(argv)
    if args.report is not None:
        return 0 if print_report(read_summary(args.report)) else 1

    limit = args.limit or (QUICK_LIMIT if args.quick else DEFAULT_LIMIT)
    batch_sizes = [int(b) for b in args.lm_eval_batch_sizes.split(",") if b.strip()]
    out = (args.out or HERE / "out" / datetime.now().strftime("%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    main_python = MAIN_VENV / "bin" / "python"
    if not main_python.exists():
        raise SystemExit(f"{main_python} is missing; run `make install` first")
    lm_python = lm_eval_python()
    model = (args.model or default_model_dir(main_python)).resolve()
    yamls = [y.resolve() for y in (args.tasks or sorted(TASK_DIR.glob("*.yaml")))]
    env = bench_env(args.threads)
    revision = source_revision()
    print(f"oversight {revision}\nmodel {model}\nlm-eval venv {lm_python.parent.parent}\nout {out}\nload average at start "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    if os.getloadavg()[0] >= 1.0:
        print("note: the machine is busy, so wall times are noisy (compare the cpu columns)"
              + (", and with more threads than free cores OpenMP can slow small operations "
                 "many-fold (try --threads 1)" if args.threads > 1 else ""), flush=True)

    startup: dict[str, Timing] = {}
    if not args.no_startup_probe:
        for side, py in (("lm-eval", lm_python), ("oversight", main_python)):
            startup[side] = startup_probe(side, py, model, env, out / f"startup-{side}.log.txt")
            print(f"startup {side}: {startup[side].wall_s:.1f}s", flush=True)
    else:
        startup = {s: Timing(0.0, 0.0, (0, 0, 0), (0, 0, 0), 0) for s in ("lm-eval", "oversight")}

    rows = []
    for yaml_path in yamls:
        task = _task_name(yaml_path)
        task_limit = _task_limit(yaml_path, limit)
        lm_sides = []
        for bs in batch_sizes:
            side = run_lm_eval(lm_python, model, task, task_limit, bs, env, out / task / f"lm_eval_bs{bs}")
            print(f"{task}: {side.name} {side.timing.wall_s:.1f}s (load {_fmt_load(side.timing)})", flush=True)
            lm_sides.append(side)
        ov = run_oversight(main_python, model, yaml_path, task, task_limit, env, out / task / "oversight")
        print(f"{task}: oversight {ov.timing.wall_s:.1f}s (load {_fmt_load(ov.timing)})", flush=True)
        rows.append({
            "task": task,
            "docs": len(ov.loglikelihoods),
            "requests": sum(len(v) for v in ov.loglikelihoods.values()),
            "lm_eval": lm_sides,
            "oversight": ov,
            "exactness": [compare(s, ov) for s in lm_sides],
        })

    summary = {
        "model": str(model), "revision": revision, "threads": args.threads, "limit": limit, "cpus": os.cpu_count(),
        "startup": {k: asdict(v) for k, v in startup.items()},
        "tasks": [
            {
                "task": r["task"], "docs": r["docs"], "requests": r["requests"],
                "sides": [
                    {"name": s.name, "timing": asdict(s.timing), "scoring_s": s.scoring_s, "metrics": s.metrics}
                    for s in [*r["lm_eval"], r["oversight"]]
                ],
                "exactness": [
                    {"vs": s.name, **asdict(e)} for s, e in zip(r["lm_eval"], r["exactness"], strict=True)
                ],
            }
            for r in rows
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    ok = print_report(summary)
    print(f"\nsummary: {out / 'summary.json'}")
    return 0 if ok else 1


def _task_name(yaml_path: Path) -> str:
    for line in yaml_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("task:"):
            return line.split(":", 1)[1].strip().strip("'\"")
    raise SystemExit(f"{yaml_path} has no top-level `task:` key")


def _task_limit(yaml_path: Path, limit: int) -> int:
    """``limit``, or the YAML's lower ``metadata: {bench_limit: N}`` (for costly tasks)."""
    found = re.search(r"^\s+bench_limit:\s*(\d+)\s*$", yaml_path.read_text(encoding="utf-8"), re.M)
    return min(limit, int(found.group(1))) if found else limit


if __name__ == "__main__":
    sys.exit(main())
