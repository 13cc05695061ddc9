"""Per-sequence response log-probs: vectorised code against a plain per-token loop."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from oatlike.engines.hf import cut_at_eos, left_pad
from oatlike.models.sequences import model_sequence_logps, pack_sequences, sequence_logps

PAD, EOS = 0, 2


def loop_logps(logits: torch.Tensor, ids: torch.Tensor, response_positions: list[list[int]]) -> torch.Tensor:
    """Sum over response positions t of log softmax(logits[t - 1])[ids[t]], one token at a time."""
    out = []
    for row, positions in enumerate(response_positions):
        total = 0.0
        for t in positions:
            total += torch.log_softmax(logits[row, t - 1].double(), dim=-1)[ids[row, t]].item()
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def layout(prompts, responses, side):
    """ids, response mask and response positions for a batch padded on ``side``."""
    width = max(len(p) + len(r) for p, r in zip(prompts, responses, strict=True)) + 1
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(ids)
    positions = []
    for row, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        seq = p + r
        start = 0 if side == "right" else width - len(seq)
        ids[row, start : start + len(seq)] = torch.tensor(seq)
        mask[row, start + len(p) : start + len(seq)] = 1
        positions.append(list(range(start + len(p), start + len(seq))))
    return ids, mask, positions


def test_matches_loop_with_right_and_left_padding_and_eos():
    torch.manual_seed(0)
    prompts = [[1, 5, 6], [1, 7], [1, 8, 9, 10]]
    responses = [[11, 12, EOS], [13, 14, 15, 16], [17, EOS]]  # EOS counts when it belongs to the response
    for side in ("right", "left"):
        ids, mask, positions = layout(prompts, responses, side)
        logits = torch.randn(ids.shape[0], ids.shape[1], 20)
        got = sequence_logps(logits, ids, mask)
        torch.testing.assert_close(got.double(), loop_logps(logits, ids, positions), atol=1e-5, rtol=0)


def test_padding_and_prompt_tokens_do_not_count():
    torch.manual_seed(1)
    ids, mask, _positions = layout([[1, 5]], [[6, EOS]], "right")
    logits = torch.randn(1, ids.shape[1], 20)
    base = sequence_logps(logits, ids, mask)
    scrambled = logits.clone()
    scrambled[0, 0] = torch.randn(20)  # predicts the prompt token 5: must not matter
    scrambled[0, -1] = torch.randn(20)  # predicts past the end: must not matter
    torch.testing.assert_close(sequence_logps(scrambled, ids, mask), base)


def test_half_precision_logits_are_summed_in_fp32():
    torch.manual_seed(2)
    ids, mask, _ = layout([[1, 3]], [[4, 5, 6, EOS]], "right")
    logits = torch.randn(1, ids.shape[1], 20)
    got = sequence_logps(logits.bfloat16(), ids, mask)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, sequence_logps(logits.bfloat16().float(), ids, mask))


def test_pack_sequences_layout():
    packed = pack_sequences([[1, 5], [1]], [[6, EOS], [7, 8, 9]], pad_token_id=PAD)
    assert packed.input_ids.tolist() == [[1, 5, 6, EOS], [1, 7, 8, 9]]
    assert packed.response_mask.tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    assert packed.response_lengths.tolist() == [2, 3]
    packed = pack_sequences([[1, 5, 6]], [[EOS]], pad_token_id=PAD)
    assert packed.attention_mask.tolist() == [[1, 1, 1, 1]]


def test_model_logps_of_padded_batch_equal_each_sequence_alone(tiny_untrained):
    model = AutoModelForCausalLM.from_pretrained(tiny_untrained).eval()
    prompts = [[1, 40, 41, 42], [1, 50], [1, 60, 61]]
    responses = [[70, 71, EOS], [72, 73, 74, 75, 76], [77]]
    with torch.no_grad():
        batched = model_sequence_logps(model, pack_sequences(prompts, responses, PAD))
        alone = torch.cat(
            [
                model_sequence_logps(model, pack_sequences([p], [r], PAD))
                for p, r in zip(prompts, responses, strict=True)
            ]
        )
        logits = model(torch.tensor([prompts[1] + responses[1]])).logits
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=0)
    positions = [list(range(len(prompts[1]), len(prompts[1]) + len(responses[1])))]
    torch.testing.assert_close(
        alone[1:2].double(), loop_logps(logits, torch.tensor([prompts[1] + responses[1]]), positions), atol=1e-4, rtol=0
    )


def test_generation_helpers():
    ids, attention = left_pad([[1, 2, 3], [4]], pad_token_id=PAD)
    assert ids.tolist() == [[1, 2, 3], [PAD, PAD, 4]]
    assert attention.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert cut_at_eos([5, 6, EOS, PAD, PAD], {EOS}) == ([5, 6, EOS], True)
    assert cut_at_eos([5, 6, 7], {EOS}) == ([5, 6, 7], False)
    assert cut_at_eos([EOS, 5], {EOS}) == ([EOS], True)
