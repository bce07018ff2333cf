"""Decoding a `Seq2SeqTransformer`: greedy, beam search with GNMT's length penalty, and `translate` for strings.

Notebook 04 (section 8) builds one beam-search step as an exercise (`beam_step`) and draws the
beam; the functions here run it for a whole batch of sentences. Every search runs the encoder
once, then the decoder one position at a time with `Seq2SeqTransformer.decode_next`'s cache
(`use_cache=False` re-reads the whole prefix every step: the same result, slower, the reference
the cache is tested against).

Imports: the model (`course_utils.transformer`) and the batching of `course_utils.translation`
(`pad_batch`); neither imports this module.
"""

from __future__ import annotations

from typing import Sequence

import torch

from course_utils.checks import check_int, check_number, check_tensor
from course_utils.transformer import Seq2SeqTransformer, TransformerConfig, check_ids
from course_utils.translation import pad_batch

__all__ = ["greedy_decode", "beam_step", "length_penalty", "beam_search", "translate"]


def _strip(ids: Sequence[int], config: TransformerConfig) -> list[int]:
    """Token ids after BOS up to (not including) the first EOS; padding removed."""
    out = []
    for i in ids:
        if i == config.eos_id:
            break
        if i not in (config.pad_id, config.bos_id):
            out.append(int(i))
    return out


def _max_new(fn: str, src: torch.Tensor, max_new_tokens: int | None) -> int:
    """The decoding length cap: max_new_tokens, or 1.5 x the source length + 10 when None."""
    if max_new_tokens is None:
        return int(1.5 * src.shape[1]) + 10
    return check_int(fn, "max_new_tokens", max_new_tokens)


@torch.no_grad()
def greedy_decode(
    model: Seq2SeqTransformer, src: torch.Tensor, max_new_tokens: int | None = None, use_cache: bool = True
) -> list[list[int]]:
    """Translate a batch by always taking the most probable next token. src (B, S) -> B lists of ids (no BOS/EOS).

    The encoder runs once; at every step the decoder scores the next token and we keep the
    argmax. use_cache=False re-reads the whole prefix every step (same result, slower: the
    reference the cache is tested against). Finished rows receive padding until all are done.
    """
    check_ids("greedy_decode", "src", src)
    config = model.config
    was_training = model.training
    model.eval()
    memory, src_mask = model.encode(src)
    ys = torch.full((src.shape[0], 1), config.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
    cache: list = []
    for _ in range(_max_new("greedy_decode", src, max_new_tokens)):
        logits = (
            model.decode_next(ys, memory, src_mask, cache)
            if use_cache
            else model.decode(ys, memory, src_mask, last_only=True)
        )  # (B, V) the next token's scores
        nxt = logits.argmax(dim=-1).masked_fill(done, config.pad_id)  # (B,)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == config.eos_id
        if done.all():
            break
    model.train(was_training)
    return [_strip(row.tolist(), config) for row in ys]


def length_penalty(length: torch.Tensor | int, alpha: float = 0.6) -> torch.Tensor | float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016). Scores log P(Y) / lp(Y) compare lengths fairly.

    A sum of log-probabilities only falls as a sentence grows, so raw scores prefer short
    outputs; alpha = 0 switches the correction off, alpha = 1 divides by (roughly) the length.

    >>> length_penalty(1, 0.6)
    1.0
    """
    check_number("length_penalty", "alpha", alpha, low=0)
    return ((5 + length) / 6) ** alpha


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):
    """One step of beam search: extend every beam by every token, keep the `beam_size` best.

    scores (K,) or (B, K): log P of each beam so far. log_probs (K, V) or (B, K, V): log p(next | beam).
    A candidate's score is scores[k] + log_probs[k, v] (probabilities multiply, so logs add).
    Returns (new_scores, parent beam, token), each (beam_size,) or (B, beam_size), best first.

    >>> s, parent, tok = beam_step(torch.tensor([0.0, -1.0]), torch.tensor([[-2.0, -0.1], [-0.2, -3.0]]), 2)
    >>> s, parent, tok
    (tensor([-0.1000, -1.2000]), tensor([0, 1]), tensor([1, 0]))
    """
    check_tensor("beam_step", "scores", scores, shape="(K,) or (B, K)")
    check_tensor("beam_step", "log_probs", log_probs, shape="(K, V) or (B, K, V)")
    batched = scores.dim() == 2
    if scores.dim() not in (1, 2) or log_probs.dim() != scores.dim() + 1 or log_probs.shape[:-1] != scores.shape:
        raise ValueError(
            f"beam_step: expected scores (K,) with log_probs (K, V), or (B, K) with (B, K, V); got "
            f"{tuple(scores.shape)} and {tuple(log_probs.shape)}"
        )
    if not batched:
        scores, log_probs = scores[None], log_probs[None]
    B, K, V = log_probs.shape
    check_int("beam_step", "beam_size", beam_size, low=1, high=K * V)
    total = scores[..., None] + log_probs  # (B, K, V) log P(beam + token)
    best, flat = total.reshape(B, K * V).topk(beam_size, dim=-1)  # (B, beam_size) over all K*V candidates
    parent, token = flat // V, flat % V  # which beam, which token
    return (best, parent, token) if batched else (best[0], parent[0], token[0])


@torch.no_grad()
def beam_search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_new_tokens: int | None = None,
    trace: bool = False,
    use_cache: bool = True,
):
    """Keep the `beam_size` most probable prefixes per sentence; return the best finished one.

    src (B, S) -> B lists of ids. Beams are ranked by their summed log-probability while
    searching; among the final beams the winner maximises log P / length_penalty(len, alpha).
    A finished beam (it produced EOS) stays in the beam with its score frozen: its only
    continuation is padding, with log-probability 0.
    trace=True (B = 1 only) also returns the search step by step: a list of dicts with the
    kept tokens, their parent beams and scores, to draw the beam as a tree.
    """
    check_ids("beam_search", "src", src)
    if trace and src.shape[0] != 1:
        raise ValueError(f"beam_search: trace=True needs a single sentence, got a batch of {src.shape[0]}")
    length_penalty(1, alpha)
    config, B, K = model.config, src.shape[0], beam_size
    was_training = model.training
    model.eval()
    memory, src_mask = model.encode(src)  # (B, S, d), (B, 1, S)
    memory = memory.repeat_interleave(K, dim=0)  # (B*K, S, d)  beam k of sentence b
    src_mask = src_mask.repeat_interleave(K, dim=0)  # at row b*K + k
    seqs = torch.full((B, K, 1), config.bos_id, dtype=torch.long, device=src.device)
    scores = torch.full((B, K), float("-inf"), device=src.device)
    scores[:, 0] = 0.0  # all beams start equal: expand one
    finished = torch.zeros(B, K, dtype=torch.bool, device=src.device)
    steps, cache = [], []
    rows = torch.arange(B, device=src.device)[:, None] * K  # (B, 1) first row of each sentence
    for _ in range(_max_new("beam_search", src, max_new_tokens)):
        flat = seqs.view(B * K, -1)
        logits = (
            model.decode_next(flat, memory, src_mask, cache)
            if use_cache
            else model.decode(flat, memory, src_mask, last_only=True)
        )  # (B*K, V)
        logp = logits.float().log_softmax(-1).view(B, K, -1)  # (B, K, V)
        frozen = torch.full_like(logp[0, 0], float("-inf"))
        frozen[config.pad_id] = 0.0  # finished: pad, no cost
        logp = torch.where(finished[..., None], frozen, logp)
        scores, parent, token = beam_step(scores, logp, K)  # (B, K) each
        seqs = torch.cat([seqs.gather(1, parent[..., None].expand(-1, -1, seqs.shape[-1])), token[..., None]], -1)
        finished = finished.gather(1, parent) | (token == config.eos_id)
        cache[:] = [c[(rows + parent).view(-1)] for c in cache]  # each kept beam's history
        if trace:
            steps.append(
                {
                    "token": token[0].tolist(),
                    "parent": parent[0].tolist(),
                    "score": scores[0].tolist(),
                    "finished": finished[0].tolist(),
                }
            )
        if finished.all():
            break
    lengths = (seqs[..., 1:] != config.pad_id).sum(-1)  # tokens incl. EOS
    best = (scores / length_penalty(lengths.float(), alpha)).argmax(-1)  # (B,)
    model.train(was_training)
    out = [_strip(seqs[b, best[b]].tolist(), config) for b in range(B)]
    return (out, steps) if trace else out


def translate(
    model: Seq2SeqTransformer,
    tokenizer,
    sentences: Sequence[str],
    beam_size: int = 1,
    alpha: float = 0.6,
    batch_size: int = 64,
    progress: bool = False,
    max_new_tokens: int | None = None,
) -> list[str]:
    """Translate strings with any tokenizer that has encode(str) -> ids and decode(ids) -> str.

    Sentences are decoded in batches of similar length (less padding), then put back in order.
    beam_size=1 is greedy decoding.
    """
    if isinstance(sentences, str):
        raise TypeError("translate: sentences must be a list of strings, got a single str (wrap it in a list)")
    device = next(model.parameters()).device
    config = model.config
    ids = [tokenizer.encode(s)[: config.max_len - 1] + [config.eos_id] for s in sentences]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[str | None] = [None] * len(ids)
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm  # lazy: only for a progress bar (tqdm.auto picks the notebook widget)

        chunks = tqdm(chunks, desc="greedy" if beam_size == 1 else f"beam {beam_size}")
    for chunk in chunks:
        src = pad_batch([ids[i] for i in chunk], config.pad_id).to(device)
        hyps = (
            greedy_decode(model, src, max_new_tokens)
            if beam_size == 1
            else beam_search(model, src, beam_size, alpha, max_new_tokens)
        )
        for i, h in zip(chunk, hyps):
            out[i] = tokenizer.decode(h)
    return out
