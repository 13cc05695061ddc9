"""The ``pairrm`` oracle: llm-blender's PairRM (Jiang et al. 2023), loaded through transformers alone.

PairRM is a pairwise ranker on DeBERTa-v3-large. The llm-blender package that ships it no longer imports
with transformers 5, so this module reimplements its inference, with its parameter names so that both
published checkpoint formats load unchanged:

* **PairRM-hf** (``llm-blender/PairRM-hf``): a transformers folder — ``config.json`` (a DeBERTa-v2
  config, ``architectures: ["DebertaV2PairRM"]``, plus ``n_tasks`` and ``drop_out``), the weights
  (safetensors) and the tokenizer with the marker tokens added;
* **original** (``llm-blender/PairRM``): ``pytorch_model.bin`` with the same parameter names and a
  llm-blender ``RankerConfig`` as ``config.json`` (``ranker_type: pairranker``). Its backbone config and
  tokenizer come from ``backbone`` (microsoft/deberta-v3-large), with the four marker tokens appended
  in llm-blender's order, as its collator does.

Parameters: ``pretrained_model.*`` (a ``DebertaV2Model``) and ``head_layer`` =
``Sequential(Dropout, Linear(2H, H), Tanh, Dropout, Linear(H, n_tasks))``.

Input (llm-blender's ``CrossCompareCollator``, as in the PairRM-hf model card): three segments, each
tokenised with the tokenizer's own ``[CLS] … [SEP]``::

    [CLS] <|source|> prompt [SEP] [CLS] <|candidate1|> a [SEP] [CLS] <|candidate2|> b [SEP]

The prompt is truncated to ``source_max_length`` tokens and each response to ``candidate_max_length``
plus half of what the prompt left unused. The final hidden states at the three marker tokens give
``s1 = head([h_source; h_cand1])`` and ``s2 = head([h_source; h_cand2])``; the pair's logit is
``l(a, b) = mean over tasks of (s1 − s2)``, trained so that ``σ(l(a, b)) = P(a ≻ b)``.

Both orders (llm-blender's default ``[A,B]+[B,A]`` mode): ``logit = l(a, b) − l(b, a)``, which is what
``Blender.compare(..., return_logits=True)`` returns, and ``P(a ≻ b) = σ(logit / temperature)`` (oat's
PairRM oracle uses the same σ of that logit). One order: ``logit = l(a, b)``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import AutoConfig, DebertaV2Config, PreTrainedTokenizerBase
from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Model, DebertaV2PreTrainedModel

from oatlike.errors import ConfigError
from oatlike.models.loading import DTYPES, load_tokenizer
from oatlike.oracles.base import ModelOracle, OracleSite, bradley_terry
from oatlike.oracles.config import PairRMOracleConfig

SOURCE_MARKER = "<|source|>"
CANDIDATE1_MARKER = "<|candidate1|>"
CANDIDATE2_MARKER = "<|candidate2|>"
CANDIDATE_MARKER = "<|candidate|>"
MARKERS = (SOURCE_MARKER, CANDIDATE1_MARKER, CANDIDATE2_MARKER, CANDIDATE_MARKER)
"""The tokens llm-blender adds to the tokenizer, in the order it adds them."""


class PairRMModel(DebertaV2PreTrainedModel):
    """llm-blender's ``DebertaV2PairRM`` / ``CrossCompareReranker``: the same modules under the same names."""

    base_model_prefix = "pretrained_model"

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        hidden, dropout = config.hidden_size, getattr(config, "drop_out", 0.05)
        self.pretrained_model = DebertaV2Model(config)
        self.head_layer = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(2 * hidden, hidden),
            nn.Tanh(),
            nn.Dropout(dropout),
            nn.Linear(hidden, getattr(config, "n_tasks", 1)),
        )
        self.post_init()

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, marker_ids: tuple[int, int, int]
    ) -> torch.Tensor:
        """``[B]`` logit that the first candidate is better, for ``input_ids [B, T]`` with one of each marker.

        ``marker_ids`` are the token ids of ``<|source|>``, ``<|candidate1|>`` and ``<|candidate2|>``.
        """
        hidden = self.pretrained_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        rows = torch.arange(len(input_ids), device=input_ids.device)
        source, first, second = (hidden[rows, (input_ids == marker).int().argmax(dim=1)] for marker in marker_ids)
        first_scores = self.head_layer(torch.cat([source, first], dim=-1))
        second_scores = self.head_layer(torch.cat([source, second], dim=-1))
        return (first_scores - second_scores).mean(dim=-1)


def random_pairrm(
    tokenizer: PreTrainedTokenizerBase,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    initializer_range: float = 0.02,
    seed: int = 0,
) -> PairRMModel:
    """A randomly initialised PairRM of DeBERTa-v3's design on ``tokenizer`` (markers added), for tests and
    benchmarks where the real weights cannot be had."""
    _with_markers(tokenizer)
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=512,
        relative_attention=True,  # DeBERTa-v3's disentangled attention, as in deberta-v3-large
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=initializer_range,
    )
    # DeBERTa-v3's relative-position settings, read by DeBERTa-v2's modules when present
    config.position_buckets, config.norm_rel_ebd, config.share_att_key = 256, "layer_norm", True
    config.n_tasks, config.drop_out = 1, 0.05
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PairRMModel(config)


def _is_original_format(folder: Path) -> bool:
    config = folder / "config.json"
    return (folder / "pytorch_model.bin").is_file() and config.is_file() and "ranker_type" in config.read_text()


def _with_markers(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    missing = [m for m in MARKERS if m not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(missing)
    return tokenizer


def _load_original(folder: Path, backbone: str, dtype: str, key: str) -> tuple[PairRMModel, PreTrainedTokenizerBase]:
    """The original llm-blender checkpoint: a RankerConfig, ``pytorch_model.bin``, and the backbone's files."""
    ranker = json.loads((folder / "config.json").read_text())
    has_tokenizer = (folder / "tokenizer_config.json").is_file()
    tokenizer = _with_markers(load_tokenizer(str(folder) if has_tokenizer else backbone, key=f"{key}.backbone"))
    try:
        config = AutoConfig.from_pretrained(backbone)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{key}.backbone", f"cannot load the DeBERTa config of {backbone!r}: {error}") from None
    config.vocab_size = len(tokenizer)  # llm-blender resizes the embeddings to the tokenizer with markers
    config.n_tasks, config.drop_out = ranker.get("n_tasks", 1), ranker.get("drop_out", 0.05)
    model = PairRMModel(config)
    state_dict = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches
        detail = str(error).strip().splitlines()[-1].strip()
        raise ConfigError(f"{key}.model", f"{folder} does not fit backbone {backbone!r}: {detail}") from None
    if result.missing_keys:
        raise ConfigError(f"{key}.model", f"{folder} lacks PairRM weights, e.g. {result.missing_keys[0]}")
    torch.nn.Module.to(model, DTYPES[dtype])
    return model, tokenizer


def load_pairrm(
    name_or_path: str, backbone: str, dtype: str = "float32", key: str = "oracle"
) -> tuple[PairRMModel, PreTrainedTokenizerBase]:
    """PairRM and its tokenizer from a PairRM-hf folder or hub name, or an original-format folder."""
    folder = Path(name_or_path).expanduser()
    if folder.is_dir() and _is_original_format(folder):
        return _load_original(folder, backbone, dtype, key)
    if name_or_path.startswith((".", "/", "~")) and not folder.exists():
        raise ConfigError(f"{key}.model", f"no such folder {name_or_path!r}; give a PairRM folder or hub name")
    try:
        model = PairRMModel.from_pretrained(name_or_path, dtype=DTYPES[dtype])
    except (OSError, ValueError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{key}.model", f"cannot load PairRM from {name_or_path!r}: {detail}") from None
    tokenizer = load_tokenizer(name_or_path, key=f"{key}.model")
    missing = [m for m in MARKERS[:3] if m not in tokenizer.get_vocab()]
    if missing:
        raise ConfigError(f"{key}.model", f"the tokenizer of {name_or_path!r} lacks PairRM's {missing[0]} token")
    return model, tokenizer


class PairRMOracle(ModelOracle):
    name = "pairrm"

    def __init__(
        self,
        config: PairRMOracleConfig,
        model: PairRMModel,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(config, model, tokenizer, device)
        self.source_max_length = config.source_max_length
        self.candidate_max_length = config.candidate_max_length
        self.both_orders = config.both_orders
        source, first, second = (int(tokenizer.convert_tokens_to_ids(m)) for m in MARKERS[:3])  # type: ignore[arg-type]
        self.marker_ids = (source, first, second)
        # text that would tokenise to a marker or a separator must not reach the model
        self._reserved = [*MARKERS, *(t for t in (tokenizer.sep_token, tokenizer.cls_token) if t)]

    @classmethod
    def build(cls, config: PairRMOracleConfig, site: OracleSite) -> PairRMOracle:
        """Load ``oracle.model`` (either published format) onto the site's device."""
        model, tokenizer = load_pairrm(config.model, config.backbone, config.dtype, site.key)
        return cls(config, model, tokenizer, site.device)

    def _clean(self, text: str) -> str:
        for token in self._reserved:
            text = text.replace(token, " ")
        return text

    def encode_pair(self, prompt: str, first: str, second: str) -> list[int]:
        """Token ids of one comparison: source, candidate 1 and candidate 2 segments (see the module doc)."""
        encode = self.tokenizer.encode
        source = encode(SOURCE_MARKER + self._clean(prompt), max_length=self.source_max_length, truncation=True)
        room = (self.source_max_length + 2 * self.candidate_max_length - len(source)) // 2
        candidate1 = encode(CANDIDATE1_MARKER + self._clean(first), max_length=room, truncation=True)
        candidate2 = encode(CANDIDATE2_MARKER + self._clean(second), max_length=room, truncation=True)
        return source + candidate1 + candidate2

    @torch.inference_mode()
    def logits(self, prompts: list[str], firsts: list[str], seconds: list[str]) -> np.ndarray:
        """``[N]`` one-order logits ``l(first, second)`` in one forward pass (not counted)."""
        encoded = [self.encode_pair(p, a, b) for p, a, b in zip(prompts, firsts, seconds, strict=True)]
        width = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in encoded], device=self.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in encoded], device=self.device)
        return self.model(input_ids, mask, self.marker_ids).float().cpu().numpy().astype(np.float64)

    def _compare(self, prompts: list[str], responses_a: list[str], responses_b: list[str]) -> np.ndarray:
        if not self.both_orders:
            return bradley_terry(self.logits(prompts, responses_a, responses_b), self.temperature)
        both = self.logits(prompts + prompts, responses_a + responses_b, responses_b + responses_a)
        logit = both[: len(prompts)] - both[len(prompts) :]
        return bradley_terry(logit, self.temperature)
