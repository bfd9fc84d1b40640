"""The frozen lower layers' output, computed once per training example and reused on every later exposure.

With ``train.lora_first_layer`` = k the decoder layers below k have no adapter and get no gradient, so an example's
hidden state entering layer k is the same on every epoch: :class:`FrozenLayers` computes it once (no autograd),
keeps it, and the trained model starts at layer k from it (``inputs_embeds``; the lower layers are swapped for
pass-throughs). A later step then computes 15 of SmolLM2's 30 layers forward instead of 30: on a 2-core AMX Xeon a
compiled step of one 181-token example took 0.18-0.21 s against 0.24 s (docs/cost.md).

Kept in memory up to ``train.frozen_cache_mib`` (one example of 181 tokens: 0.2 MiB in bf16); examples past it are
recomputed every step, as without the cache. Used by the train stage only (imported when it builds its trainer);
nothing is written.
"""

from __future__ import annotations

import copy

import torch


class PassThrough(torch.nn.Module):
    """Stands in for a frozen decoder layer inside the trained model: its input is the cached output already."""

    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


def usable(model, first_layer: int) -> str | None:
    """Why the frozen layers of ``model`` (a PEFT model) cannot be cached, or None when they can."""
    config = model.config
    if first_layer <= 0:
        return "every layer has adapters (train.lora_first_layer: 0)"
    if getattr(config, "attention_dropout", 0.0) or getattr(config, "hidden_dropout", 0.0):
        return "the base model has dropout: its frozen layers' output differs from step to step"
    decoder = model.get_decoder()
    if not (hasattr(decoder, "layers") and hasattr(decoder, "norm")):
        return f"{type(decoder).__name__} has no `layers` and `norm` to split at"
    return None


class FrozenLayers:
    """The decoder layers below ``first_layer``, moved out of ``model`` into a cache of their outputs.

    :meth:`embeds` gives a batch's hidden states entering ``first_layer`` (to pass as ``inputs_embeds``);
    :meth:`restore` puts the layers back.
    """

    def __init__(self, model, first_layer: int, max_bytes: int):
        self.decoder = model.get_decoder()
        self.layers = list(self.decoder.layers[:first_layer])
        # The model's own forward (embedding, rotary positions, causal mask) over the frozen layers alone, sharing
        # their weights; no final norm, as the layers above expect the residual stream.
        self.lower = copy.copy(self.decoder)
        self.lower._modules = dict(self.decoder._modules)
        self.lower.layers = torch.nn.ModuleList(self.layers)
        self.lower.norm = torch.nn.Identity()
        for i in range(first_layer):
            self.decoder.layers[i] = PassThrough()
        self.max_bytes = max_bytes
        self.cache: dict[bytes, object] = {}
        self.bytes = 0
        self.computed = 0  # examples whose frozen layers ran (a cache miss), for the benchmarks

    def restore(self) -> None:
        for i, layer in enumerate(self.layers):
            self.decoder.layers[i] = layer

    def hidden(self, ids):
        """The hidden state entering ``first_layer`` for one unpadded row of token ids."""
        key = ids.cpu().numpy().tobytes()
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with torch.no_grad():
            state = self.lower(input_ids=ids[None], use_cache=False).last_hidden_state[0]
        self.computed += 1
        if self.bytes + state.nbytes <= self.max_bytes:
            self.cache[key] = state
            self.bytes += state.nbytes
        return state

    def embeds(self, input_ids, attention_mask):
        """``inputs_embeds`` for a batch padded on the right (TRL's collator): each row's cached hidden state,
        zeros at the padding (which the causal mask keeps from every real position)."""
        states = [self.hidden(ids[mask.bool()]) for ids, mask in zip(input_ids, attention_mask)]
        out = states[0].new_zeros(*input_ids.shape, states[0].shape[-1])
        for row, (state, mask) in enumerate(zip(states, attention_mask)):
            if not bool(mask[: len(state)].all()):
                raise ValueError("train: the frozen-layer cache needs rows padded on the right")
            out[row, : len(state)] = state
        return out
