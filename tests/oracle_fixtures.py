"""What the oracle tests build for themselves: a scripted OpenAI-compatible server, tiny PairRM checkpoints,
a small reward model trained on task data, and `oatlike serve-oracle` in a subprocess.

Nothing here reaches the internet: models and tokenizers are built from configs and trained locally.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "oatlike"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ scripted chat server


@dataclass
class Reply:
    """What the scripted server answers to one chat request."""

    content: str | None = "Preferred: A"
    status: int = 200
    delay_seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 5})


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ScriptedChatServer:
    """A small OpenAI-compatible chat server (stdlib) whose replies a test scripts, on loopback.

    ``script(request_number, body) -> Reply`` decides each ``/v1/chat/completions`` reply; ``/v1/models``
    lists ``models``. Every request is recorded (path, headers, body), with the most in flight at once.
    """

    def __init__(self, script: Callable[[int, dict], Reply], models: tuple[str, ...] = ("judge",)) -> None:
        self.script = script
        self.models = models
        self.requests: list[Request] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.models_status = 200
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                server._record(self, {})
                if self.path.rstrip("/").endswith("/models"):
                    status = server.models_status
                    self._send(
                        status, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]}
                    )
                else:
                    self._send(404, {"error": "no route"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                number = server._record(self, body)
                with server._lock:
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                try:
                    reply = server.script(number, body)
                    time.sleep(reply.delay_seconds)
                    if reply.status != 200:
                        self._send(reply.status, {"error": {"message": f"scripted status {reply.status}"}})
                        return
                    message = {"role": "assistant", "content": reply.content}
                    choice = {"index": 0, "message": message, "finish_reason": "stop"}
                    self._send(
                        200,
                        {
                            "id": f"chat-{number}",
                            "object": "chat.completion",
                            "choices": [choice],
                            "usage": reply.usage,
                        },
                    )
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _record(self, handler: BaseHTTPRequestHandler, body: dict) -> int:
        with self._lock:
            self.requests.append(Request(handler.path, dict(handler.headers), body))
            return sum(1 for r in self.requests if r.path.endswith("/chat/completions"))

    @property
    def chats(self) -> list[Request]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def __enter__(self) -> ScriptedChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


_SHOWN = re.compile(
    r"\[(?:User request|Text)\]\n(.*)\n\n"
    r"\[(?:Response|Summary) A\]\n(.*)\n\n\[(?:Response|Summary) B\]\n(.*)\n\nExplain",
    re.DOTALL,
)


def shown_pair(body: dict) -> tuple[str, str, str]:
    """``(prompt, first, second)`` as a built-in template (helpfulness, summarization) showed them to the judge."""
    match = _SHOWN.search(body["messages"][-1]["content"])
    assert match is not None, body["messages"][-1]["content"][:300]
    return match.group(1), match.group(2), match.group(3)


def utility_judge(task: Any) -> Callable[[int, dict], Reply]:
    """A scripted judge that prefers the response of higher task utility (ties: the first shown)."""

    def script(number: int, body: dict) -> Reply:
        prompt, first, second = shown_pair(body)
        better = "A" if task.utility(prompt, first) >= task.utility(prompt, second) else "B"
        return Reply(f"Response {better} gets the sum right.\nPreferred: {better}")

    return script


# -------------------------------------------------------------------------------------- tiny PairRM


def tiny_deberta_tokenizer(folder: Path) -> Any:
    """A DeBERTa-v3-style tokenizer (Unigram, Metaspace, ``[CLS] … [SEP]``) trained locally, saved to ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="[UNK]")
    corpus = [
        f"sort {a} {b} {a + b}: the sum of {a} and {b} is {a + b}, a short summary" for a in range(40) for b in range(9)
    ]
    tokenizer.train_from_iterator(corpus, trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        cls_token="[CLS]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        mask_token="[MASK]",
    )
    wrapped.save_pretrained(folder)
    return wrapped


def tiny_pairrm_checkpoints(root: Path, seed: int = 0) -> dict[str, Path]:
    """A randomly initialised tiny PairRM in both published formats, and the backbone folder the original needs.

    ``hf``: like llm-blender/PairRM-hf (DeBERTa-v2 config with ``n_tasks``/``drop_out`` and the marker ids,
    safetensors, tokenizer with the markers); ``original``: like llm-blender/PairRM (``pytorch_model.bin`` and
    a RankerConfig); ``backbone``: the DeBERTa config and tokenizer without markers (microsoft/deberta-v3-large's role).
    """
    from transformers import PreTrainedTokenizerFast

    from oatlike.oracles.pairrm import MARKERS, random_pairrm

    backbone = root / "backbone"
    tiny_deberta_tokenizer(backbone)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(backbone)
    # large random weights, so that states differ between positions and the head sees differences
    model = random_pairrm(tokenizer, initializer_range=0.5, seed=seed)  # adds the markers in llm-blender's order
    backbone_config = model.config.to_dict()
    for key in ("n_tasks", "drop_out", "architectures"):
        backbone_config.pop(key, None)
    (backbone / "config.json").write_text(json.dumps(backbone_config, indent=2))
    hf = root / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    hf_config = json.loads((hf / "config.json").read_text())
    ids = tokenizer.convert_tokens_to_ids(list(MARKERS))
    hf_config.update(
        architectures=["DebertaV2PairRM"],
        source_prefix_id=ids[0],
        cand1_prefix_id=ids[1],
        cand2_prefix_id=ids[2],
        cand_prefix_id=ids[3],
        sep_token_id=tokenizer.sep_token_id,
    )
    (hf / "config.json").write_text(json.dumps(hf_config, indent=2))
    original = root / "original"
    original.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), original / "pytorch_model.bin")
    ranker = {
        "ranker_type": "pairranker",
        "model_type": "deberta",
        "model_name": "microsoft/deberta-v3-large",
        "n_tasks": 1,
        "drop_out": 0.05,
        "source_maxlength": 1224,
        "candidate_maxlength": 412,
    }
    (original / "config.json").write_text(json.dumps(ranker, indent=2))
    return {"hf": hf, "original": original, "backbone": backbone}


# ---------------------------------------------------------------------------------- a reward model


@torch.no_grad()
def policy_samples(policy: Path, prompts: list[str], k: int, seed: int, max_new_tokens: int = 8) -> list[list[str]]:
    """``k`` responses per prompt from the causal LM in ``policy``, at temperature 1 as the actor samples."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(policy)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(policy).eval()
    samples: list[list[str]] = []
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for start in range(0, len(prompts), 256):
            chunk = prompts[start : start + 256]
            batch = tokenizer(chunk, padding=True, return_tensors="pt")
            output = model.generate(
                **batch,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=k,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            texts = tokenizer.batch_decode(output[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            samples += [texts[i * k : (i + 1) * k] for i in range(len(chunk))]
    return samples


def train_reward_model(
    policy: Path,
    task: Any,
    out: Path,
    steps: int = 2000,
    samples_per_prompt: int = 8,
    prompts_per_step: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    max_new_tokens: int = 8,
    hard_negatives: int = 0,
    max_prompts: int | None = None,
) -> Path:
    """A reward model for ``task``: the policy's backbone with a scalar head, trained on the policy's own samples.

    Data: ``samples_per_prompt`` responses of the policy (temperature 1, as the actor samples) to every
    training prompt, ``hard_negatives`` answers from :func:`ordered_wrong_content` (sorting only: what a
    policy optimising a reward model trained on its samples alone learns to write), and the best response,
    labelled by the task's utility; the loss is Bradley–Terry on every pair of distinct utilities within a
    prompt (prompts whose candidates all tie are dropped). ``max_prompts`` keeps the first training prompts
    only (the sampling is most of the build's time).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rng, negatives_rng = random.Random(seed), random.Random(seed)
    prompts = [item.text for item in task.split("train")][:max_prompts]
    data = []
    for prompt, sampled in zip(
        prompts, policy_samples(policy, prompts, samples_per_prompt, seed, max_new_tokens), strict=True
    ):
        sampled += [ordered_wrong_content(task, prompt, negatives_rng) for _ in range(hard_negatives)]
        responses = list(dict.fromkeys([*sampled, task.best_response(prompt)]))
        utilities = [task.utility(prompt, r) for r in responses]
        if len(set(utilities)) > 1:
            data.append((prompt, responses, torch.tensor(utilities)))
    tokenizer = AutoTokenizer.from_pretrained(policy)
    tokenizer.padding_side = "right"
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    order: list[int] = []
    for _ in range(steps):
        if len(order) < prompts_per_step:
            order += rng.sample(range(len(data)), len(data))
        batch = [data[order.pop()] for _ in range(prompts_per_step)]
        texts = [prompt + response for prompt, responses, _ in batch for response in responses]
        rewards = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits[:, 0]
        loss, pairs, offset = rewards.new_zeros(()), 0.0, 0
        for _, responses, utilities in batch:
            r = rewards[offset : offset + len(responses)]
            offset += len(responses)
            better = (utilities[:, None] > utilities[None, :]).float()
            loss = loss - (torch.nn.functional.logsigmoid(r[:, None] - r[None, :]) * better).sum()
            pairs += float(better.sum())
        optimizer.zero_grad()
        (loss / pairs).backward()
        optimizer.step()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def ordered_wrong_content(task: Any, prompt: str, rng: random.Random) -> str:
    """A sorting answer in order but with the wrong numbers: the sorted list with one number replaced,
    dropped or inserted."""
    numbers = sorted(task.numbers(prompt))
    index, kind = rng.randrange(len(numbers)), rng.randrange(3)
    if kind == 0:
        numbers[index] = rng.randrange(0, 21)
    elif kind == 1 and len(numbers) > 1:
        numbers.pop(index)
    else:
        numbers.insert(index, numbers[index] if rng.random() < 0.5 else rng.randrange(0, 10))
    return " " + " ".join(map(str, sorted(numbers)))


def cached_reward_model(cache_dir: Path, policy: Path, task: Any, **recipe: Any) -> Path:
    """:func:`train_reward_model` once per (policy, task, recipe), kept under ``cache_dir/reward_models``."""
    import hashlib

    key = json.dumps({"policy": policy.name, "task": task.name, "recipe": recipe, "version": 1}, sort_keys=True)
    folder = cache_dir / "reward_models" / f"rm-{task.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    if not (folder / "config.json").exists():
        partial = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
        train_reward_model(policy, task, partial, **recipe)
        partial.rename(folder)  # complete or absent: an interrupted build is redone
    return folder


@torch.no_grad()
def pairwise_accuracy(
    reward_model: Path, policy: Path, task: Any, samples_per_prompt: int = 8, seed: int = 1000, max_new_tokens: int = 8
) -> tuple[float, int]:
    """``(accuracy, pairs)``: how often the reward model ranks two of the policy's samples to a held-out
    prompt as their utilities do, over all sample pairs of distinct utility."""
    from oatlike.oracles.base import build_oracle
    from oatlike.oracles.config import RewardModelOracleConfig

    oracle = build_oracle(RewardModelOracleConfig(model=str(reward_model)))
    prompts = [item.text for item in task.split("eval")]
    correct = total = 0
    for prompt, sampled in zip(
        prompts, policy_samples(policy, prompts, samples_per_prompt, seed, max_new_tokens), strict=True
    ):
        responses = list(dict.fromkeys(sampled))
        utilities = [task.utility(prompt, r) for r in responses]
        rewards = oracle.rewards([prompt] * len(responses), responses)
        for i, j in ((i, j) for i in range(len(responses)) for j in range(len(responses))):
            if utilities[i] > utilities[j]:
                total += 1
                correct += int(rewards[i] > rewards[j])
    return correct / max(total, 1), total


# ------------------------------------------------------------------------------ serve-oracle process


@dataclass
class ServedOracle:
    url: str
    process: subprocess.Popen
    log: Path

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=30) as reply:
            return json.loads(reply.read())


@contextmanager
def served_oracle(tmp: Path, *overrides: str, start_timeout: float = 600) -> Iterator[ServedOracle]:
    """``oatlike serve-oracle`` in a subprocess (its own session, so it can be killed with its Ray)."""
    port = free_port()
    log = tmp / "serve-oracle.log"
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(BIN), "serve-oracle", f"serve.port={port}", *overrides],
            cwd=tmp,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    served = ServedOracle(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while "oatlike: serving" not in log.read_text():
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"serve-oracle did not start:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield served
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen, kill: bool = False) -> None:
    """Stop ``process``: SIGTERM (Serve and Ray shut down gracefully) or SIGKILL of its whole session.

    Ray's helper processes share the driver's process group, so whatever outlives the driver is killed too.
    """
    if process.poll() is None:
        if kill:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
