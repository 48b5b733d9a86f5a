"""BERT's encoder as numpy arithmetic, for the bundled sentence-embedding model.

Kept apart from :mod:`smallhold.runtime.embeddings`, which owns files, tokenising and batching:
this module is only the forward pass, as ``transformers`` computes it (word + position +
token-type embeddings, LayerNorm, post-norm encoder layers with multi-head attention and erf
GELU), plus sentence-transformers' mean pooling and L2 normalisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float32]


# Abramowitz & Stegun 7.1.26: erfc(z) = (a1 t + ... + a5 t^5) e^{-z²}, t = 1 / (1 + p z), z >= 0,
# with |error| <= 1.5e-7. The coefficients below are pre-scaled for z = |x| / sqrt(2) and by 1/2.
_ERF_P = np.float32(0.3275911 / math.sqrt(2))
_ERF_A = tuple(
    np.float32(c / 2) for c in (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
)
_SCORES_BUDGET = 4 * 1024 * 1024  # attention scores computed at once (16 MB of float32)
_FFN_ROWS = 2048  # tokens per feed-forward block (12 MB for the 1536-wide intermediate)
_CHUNK = 65536  # elements per pass: the dozen temporaries stay in cache, ~10x faster than whole


def gelu(x: Array) -> Array:
    """BERT's exact GELU, ``x * Φ(x)``, to within 1e-6 of the erf formula.

    Written as ``max(x, 0) - |x| * Φ(-|x|)``, so the tail ``Φ(-|x|) = erfc(|x|/√2) / 2`` is
    computed directly (no cancellation in ``1 + erf`` for negative inputs).
    """
    src = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    out: Array = np.empty_like(src)
    for start in range(0, src.size, _CHUNK):
        xs, res = src[start : start + _CHUNK], out[start : start + _CHUNK]
        absx = np.abs(xs)
        t = absx * _ERF_P
        t += np.float32(1)
        np.reciprocal(t, out=t)
        tail = t * _ERF_A[4]
        for coeff in reversed(_ERF_A[:4]):
            tail += coeff
            tail *= t
        gauss = np.multiply(absx, absx, out=t)
        gauss *= np.float32(-0.5)
        np.exp(gauss, out=gauss)
        tail *= gauss
        tail *= absx
        np.maximum(xs, np.float32(0), out=res)
        res -= tail
    return out.reshape(np.shape(x))


def layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: Array = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return out


@dataclass(frozen=True)
class _Layer:
    qkv_w: Array  # (hidden, 3*hidden), query part pre-scaled by 1/sqrt(head_dim)
    qkv_b: Array
    out_w: Array
    out_b: Array
    ln1: tuple[Array, Array]
    up_w: Array
    up_b: Array
    down_w: Array
    down_b: Array
    ln2: tuple[Array, Array]


class Bert:
    """The encoder's weights, laid out for ``x @ W`` on (tokens, hidden) matrices."""

    def __init__(self, tensors: Mapping[str, Array], config: Mapping[str, Any]) -> None:
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        t = tensors
        self.word = t["embeddings.word_embeddings.weight"]
        self.position = t["embeddings.position_embeddings.weight"]
        self.token_type = t["embeddings.token_type_embeddings.weight"]
        self.ln = (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
        scale = np.float32(1 / math.sqrt(self.hidden // self.heads))
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            qkv_w = np.concatenate([t[att + f"self.{n}.weight"] for n in ("query", "key", "value")])
            qkv_b = np.concatenate([t[att + f"self.{n}.bias"] for n in ("query", "key", "value")])
            qkv_w[: self.hidden] *= scale  # fold the attention scale into the query projection
            qkv_b[: self.hidden] *= scale
            self.layers.append(_Layer(
                qkv_w=np.ascontiguousarray(qkv_w.T), qkv_b=qkv_b,
                out_w=np.ascontiguousarray(t[att + "output.dense.weight"].T),
                out_b=t[att + "output.dense.bias"],
                ln1=(t[att + "output.LayerNorm.weight"], t[att + "output.LayerNorm.bias"]),
                up_w=np.ascontiguousarray(t[p + "intermediate.dense.weight"].T),
                up_b=t[p + "intermediate.dense.bias"],
                down_w=np.ascontiguousarray(t[p + "output.dense.weight"].T),
                down_b=t[p + "output.dense.bias"],
                ln2=(t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"]),
            ))

    def encode(self, ids: NDArray[np.int64], mask: NDArray[np.bool_]) -> Array:
        """Last hidden states, (batch, seq, hidden), for a right-padded batch of token ids."""
        batch, seq = ids.shape
        x = self.word[ids] + self.position[:seq] + self.token_type[0]
        x = layer_norm(x.reshape(batch * seq, self.hidden), *self.ln, self.eps)
        # Padding keys get a huge negative score, so softmax gives them exactly zero weight.
        key_bias = np.where(mask, np.float32(0), np.float32(-1e30))[:, None, None, :]
        for layer in self.layers:
            x = self._layer(x, layer, batch, seq, key_bias)
        return x.reshape(batch, seq, self.hidden)

    def _layer(self, x: Array, w: _Layer, batch: int, seq: int, key_bias: Array) -> Array:
        head_dim = self.hidden // self.heads
        qkv = (x @ w.qkv_w + w.qkv_b).reshape(batch, seq, 3, self.heads, head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # each (batch, heads, seq, head_dim)
        context = np.empty((batch, seq, self.heads, head_dim), dtype=np.float32)
        # Bounded memory: 32 texts of 256 tokens would need 100 MB of scores at once.
        step = max(1, _SCORES_BUDGET // (self.heads * seq * seq))
        for i in range(0, batch, step):
            part = slice(i, i + step)
            scores = q[part] @ k[part].transpose(0, 1, 3, 2) + key_bias[part]
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context[part] = (scores @ v[part]).transpose(0, 2, 1, 3)
        flat = context.reshape(batch * seq, self.hidden)
        x = layer_norm(x + flat @ w.out_w + w.out_b, *w.ln1, self.eps)
        ffn = np.empty_like(x)
        for i in range(0, len(x), _FFN_ROWS):
            ffn[i : i + _FFN_ROWS] = gelu(x[i : i + _FFN_ROWS] @ w.up_w + w.up_b) @ w.down_w
        return layer_norm(x + ffn + w.down_b, *w.ln2, self.eps)


def mean_pool_normalise(hidden: Array, mask: NDArray[np.bool_]) -> Array:
    weights = mask.astype(np.float32)[:, :, None]
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.maximum(weights.sum(axis=1), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    out: Array = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return out
