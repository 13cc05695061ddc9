"""Prompt + response sequences for one forward pass, and their per-sequence log-probabilities.

``s(y|x) = sum_{t in response} log pi(y_t | x, y_<t)`` over response tokens only: prompt and padding
positions are masked out; an EOS token that belongs to the response (the model emitted it, or the data
appended it) counts (docs/algorithms.md §0). The input of every DAP loss, of the engines' ``score`` (the
weight-sync probe, explorers' candidate log-probs) and of the warm start's SFT loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probs of the response tokens of each sequence.

    Args:
        logits: ``[B, T, V]`` next-token logits, position ``t`` predicting token ``t + 1``.
        input_ids: ``[B, T]`` token ids (prompt, response, padding on either side).
        response_mask: ``[B, T]`` 1 where the token at that position belongs to the response.

    Returns:
        ``[B]`` float32 summed log-probabilities. Computed in fp32 whatever the logits' dtype.
    """
    labels = input_ids[:, 1:]
    mask = response_mask[:, 1:].to(torch.float32)
    token_logps = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(-1)


@dataclass
class PackedSequences:
    """Prompt+response sequences collated for one forward pass (right padding)."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T]
    response_lengths: torch.Tensor  # [B] number of response tokens (the mask's row sums)

    def to(self, device: torch.device | str) -> PackedSequences:
        """The same sequences with the model inputs on ``device`` (lengths stay where they are)."""
        return PackedSequences(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.response_mask.to(device),
            self.response_lengths,
        )


def pack_sequences(prompt_ids: list[list[int]], response_ids: list[list[int]], pad_token_id: int) -> PackedSequences:
    """Concatenate each prompt with its response and right-pad the batch."""
    if len(prompt_ids) != len(response_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(response_ids)} responses")
    lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids, strict=True)]
    batch, width = len(lengths), max(lengths)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    response_mask = torch.zeros((batch, width), dtype=torch.long)
    for row, (prompt, response) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        end = len(prompt) + len(response)
        input_ids[row, :end] = torch.tensor(prompt + response, dtype=torch.long)
        attention_mask[row, :end] = 1
        response_mask[row, len(prompt) : end] = 1
    return PackedSequences(input_ids, attention_mask, response_mask, response_mask.sum(-1))


def model_sequence_logps(model: torch.nn.Module, packed: PackedSequences) -> torch.Tensor:
    """``[B]`` summed response log-probs of ``packed`` under ``model`` (a causal LM)."""
    logits = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, use_cache=False).logits
    return sequence_logps(logits, packed.input_ids, packed.response_mask)


def model_logps_and_features(
    model: torch.nn.Module, packed: PackedSequences, position: str = "eos"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``([B] summed response log-probs, [B, H] features)`` of ``packed`` under ``model``, in one pass.

    The feature is the last entry of the HF ``hidden_states`` tuple (the final decoder layer after the
    final norm, the LM head's input) at the last non-padding token (``position="eos"``: the EOS when the
    response has one), or at position −1 of the right-padded batch (``"last"``; a pad for short rows).
    """
    output = model(
        input_ids=packed.input_ids,
        attention_mask=packed.attention_mask,
        use_cache=False,
        output_hidden_states=True,
    )
    logps = sequence_logps(output.logits, packed.input_ids, packed.response_mask)
    hidden = output.hidden_states[-1]
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if position == "eos":
        last = packed.attention_mask.sum(-1) - 1
    else:
        last = torch.full_like(rows, hidden.shape[1] - 1)
    return logps, hidden[rows, last.to(hidden.device)].float()
