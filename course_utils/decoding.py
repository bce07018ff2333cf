"""Decoding a `Seq2SeqTransformer`: greedy, standard beam search with GNMT's length penalty, and `translate`.

Notebook 04 (section 8) builds one beam-search step as an exercise (`beam_step`) and draws the
beam; the functions here run it for a whole batch of sentences. Every search runs the encoder
once, then the decoder one position at a time with `Seq2SeqTransformer.decode_next`'s cache
(`use_cache=False` re-reads the whole prefix every step: the same result, slower, the reference
the cache is tested against).

Imports: the model (`course_utils.transformer`) and the batching of `course_utils.translation`
(`pad_batch`); neither imports this module.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from course_utils.checks import check_int, check_number, check_tensor
from course_utils.transformer import Seq2SeqTransformer, TransformerConfig, check_ids
from course_utils.translation import pad_batch

__all__ = [
    "greedy_decode",
    "beam_step",
    "length_penalty",
    "hf_length_penalty",
    "search_beams",
    "beam_search",
    "translate",
]


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


def hf_length_penalty(length, alpha: float = 1.0):
    """Hugging Face's length normalisation |Y|^alpha (`generate(length_penalty=alpha)`): for the reference test.

    >>> hf_length_penalty(4, 0.5)
    2.0
    """
    return length**alpha


def search_beams(
    next_log_probs: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    batch_size: int,
    beam_size: int,
    bos_id: int,
    eos_id: int,
    max_new_tokens: int,
    alpha: float = 0.6,
    penalty: Callable = length_penalty,
    early_stopping: bool | str = False,
    device=None,
    trace: bool = False,
):
    """Standard beam search over any scorer; returns, per sentence, (tokens incl. EOS if any, score).

    next_log_probs(prefixes (B*K, t), reorder (B*K,) or None) -> (B*K, V) log p(next | prefix);
    `reorder[r]` is the row of the previous call each row now continues (to reorder a cache).
    Every step (as Hugging Face's `generate(num_beams=K)` does):
    1. every running beam is extended by every token; the 2K best candidates by log P are kept;
    2. candidates that end (EOS, or the length limit) among the K best leave the beam: they join
       the sentence's finished list scored log P / penalty(len, alpha), len counting the EOS; the
       list keeps its K best (ties broken by torch.topk over [old list, new], as HF does);
    3. the K best candidates that did not end are the next running beams;
    4. a sentence is done when its finished list is full and the best running beam, scored at
       its current length, cannot beat the worst finished one (early_stopping=False); with
       early_stopping=True as soon as K are finished; "never": the bound uses max_new_tokens
       when alpha > 0 (a longer beam could still score higher).
    The winner is the best finished hypothesis. Scores start at 0 for beam 0 and -1e9 for the
    others, so the first step expands one beam (K copies of <s> would give K equal beams).
    trace=True also returns, per step, the running beams of sentence 0 followed by its
    hypotheses finished at that step: dicts of "token", "parent" (its running beam of the step
    before), "score" (log P) and "finished".
    """
    check_int("search_beams", "beam_size", beam_size, low=1)
    check_int("search_beams", "max_new_tokens", max_new_tokens, low=1)
    if early_stopping not in (True, False, "never"):
        raise ValueError(f"search_beams: early_stopping must be True, False or 'never', got {early_stopping!r}")
    B, K, T = batch_size, beam_size, max_new_tokens
    seqs = torch.full((B, K, 1), bos_id, dtype=torch.long, device=device)  # running prefixes
    running = torch.zeros(B, K, device=device)
    running[:, 1:] = -1e9  # only beam 0 is expanded at the first step
    fin_seqs = torch.full((B, K, T), -1, dtype=torch.long, device=device)  # finished list, -1 = empty
    fin_scores = torch.full((B, K), -1e9, device=device)
    fin_real = torch.zeros(B, K, dtype=torch.bool, device=device)  # slot holds a finished hypothesis
    searching = torch.ones(B, 1, dtype=torch.bool, device=device)  # finished ones may still improve
    reorder, steps = None, []
    rows = torch.arange(B, device=device)[:, None] * K  # (B, 1)
    first_k = torch.arange(2 * K, device=device) < K  # (2K,) only the K best candidates may finish
    for t in range(1, T + 1):  # t: tokens generated after this step
        logp = next_log_probs(seqs.view(B * K, -1), reorder).float()
        V = logp.shape[-1]
        if V < 2:
            raise ValueError(f"search_beams: next_log_probs must score at least 2 tokens, got {V}")
        total = running[..., None] + logp.view(B, K, V)  # (B, K, V) log P(prefix + token)
        top, flat = total.view(B, K * V).topk(2 * K, dim=-1)  # (B, 2K) best first
        parent, token = flat // V, flat % V
        cand = torch.cat([seqs.gather(1, parent[..., None].expand(-1, -1, t)), token[..., None]], -1)  # (B, 2K, t+1)
        ends = (token == eos_id) | (t == T)  # (B, 2K)
        # 2. the K best ending candidates join the finished list, scored with the length penalty
        just = ends & first_k
        new = top / float(penalty(t, alpha))
        full = fin_real.all(-1, keepdim=True) & (early_stopping is True)
        new = new - 1e9 * (full | ~searching).float() - 1e9 * (~just).float()
        padded = torch.full((B, 2 * K, T), -1, dtype=torch.long, device=device)
        padded[..., :t] = cand[..., 1:]
        merged = torch.cat([fin_scores, new], 1).topk(K, dim=-1).indices  # (B, K)
        fin_scores = torch.cat([fin_scores, new], 1).gather(1, merged)
        fin_seqs = torch.cat([fin_seqs, padded], 1).gather(1, merged[..., None].expand(-1, -1, T))
        fin_real = torch.cat([fin_real, just], 1).gather(1, merged)
        # 3. the K best that did not end run on
        alive = top - 1e9 * ends.float()
        running, keep = alive.topk(K, dim=-1)  # (B, K)
        seqs = cand.gather(1, keep[..., None].expand(-1, -1, t + 1))
        beam_parent = parent.gather(1, keep)  # (B, K) which running beam each continues
        reorder = (rows + beam_parent).view(-1)
        if trace:
            ended = [j for j in range(K) if just[0, j]]
            steps.append(
                {
                    "token": token[0, keep[0]].tolist() + [int(token[0, j]) for j in ended],
                    "parent": beam_parent[0].tolist() + [int(parent[0, j]) for j in ended],
                    "score": running[0].tolist() + [float(top[0, j]) for j in ended],
                    "finished": [False] * K + [True] * len(ended),
                }
            )
        # 4. can a running beam still beat the worst finished one?
        bound_len = T if (early_stopping == "never" and alpha > 0) else t
        best_possible = running[:, :1] / float(penalty(bound_len, alpha))  # (B, 1)
        worst = torch.where(fin_real, fin_scores.min(-1, keepdim=True).values, torch.tensor(-1e9, device=device))
        searching = searching & (best_possible > worst).any(-1, keepdim=True)
        if not searching.any() or (early_stopping is True and fin_real.all()):
            break
    out = []
    for b in range(B):
        tokens = [i for i in fin_seqs[b, 0].tolist() if i != -1]
        out.append((tokens, float(fin_scores[b, 0])))
    return (out, steps) if trace else out


@torch.no_grad()
def beam_search(
    model: Seq2SeqTransformer,
    src: torch.Tensor,
    beam_size: int = 4,
    alpha: float = 0.6,
    max_new_tokens: int | None = None,
    trace: bool = False,
    use_cache: bool = True,
    early_stopping: bool | str = False,
):
    """Beam search for a batch of sentences with `search_beams` and GNMT's length penalty. src (B, S) -> B lists of ids.

    Finished hypotheses leave the beam into a list scored log P / lp(len, alpha); the
    `beam_size` best unfinished ones continue; a sentence stops when no unfinished beam can
    beat the finished ones (see `search_beams`). The encoder runs once; the decoder's cache is
    reordered with the beams. trace=True (B = 1 only) also returns the search step by step.
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
    cache: list = []

    def next_log_probs(prefixes, reorder):  # (B*K, t) -> (B*K, V)
        if reorder is not None:
            cache[:] = [c[reorder] for c in cache]  # each kept beam's history
        logits = (
            model.decode_next(prefixes, memory, src_mask, cache)
            if use_cache
            else model.decode(prefixes, memory, src_mask, last_only=True)
        )
        return logits.float().log_softmax(-1)

    result = search_beams(
        next_log_probs,
        B,
        K,
        config.bos_id,
        config.eos_id,
        _max_new("beam_search", src, max_new_tokens),
        alpha,
        length_penalty,
        early_stopping,
        src.device,
        trace,
    )
    model.train(was_training)
    hyps, steps = result if trace else (result, None)
    out = [_strip(tokens, config) for tokens, _ in hyps]
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
