"""BERT (encoder-only transformer): masked language modelling, next-sentence prediction, a [CLS] classifier.

    [CLS] A tokens [SEP] B tokens [SEP]          token_type 0 for [CLS] A [SEP], 1 for B [SEP]
    -> token + position + segment embeddings -> LayerNorm
    -> n_layers x post-LN blocks: LN(x + attn(x)), LN(x + ffn(x))       (no causal mask: both directions)
    -> MLM head on every position (tied to the token embedding), NSP head on [CLS]

BERT reads the whole sentence at once, so it cannot be trained to predict the next word;
it is trained to fill in blanks instead (Devlin et al., 2019): 15 % of the (non-special)
tokens are chosen; of those, 80 % are replaced by [MASK], 10 % by a random token and 10 %
are left unchanged, and the model must say what was there. `mlm_rule` is that rule with
the random draws passed in (so it can be checked exactly), `mask_tokens` draws them.
The second task, next-sentence prediction, asks from [CLS] whether segment B followed A.

The self-attention is `course_utils.attention.MultiHeadAttention` (notebook 01), with a
padding mask. Weight names map one to one onto `transformers.BertForPreTraining`
(`to_hf_bert`), and the tests check identical outputs with the same weights.

Concessions: the original post-LN block order (not the pre-LN of our GPT), GELU in its
exact erf form as in BERT; no whole-word masking (each BPE token is chosen on its own);
the NSP pairs are fixed-length segments of running text, not sentences.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from course_utils.attention import MultiHeadAttention
from course_utils.checks import check_choice, check_fields, check_int, check_number, check_tensor

__all__ = [
    "BertConfig",
    "BertModel",
    "BertForPreTraining",
    "BertClassifier",
    "mlm_rule",
    "mask_tokens",
    "encode_pair",
    "nsp_pairs",
    "to_hf_bert",
    "hf_bert_config",
    "parameter_formula",
    "IGNORE",
]

IGNORE = -100  # label of positions that do not count in the loss (F.cross_entropy's ignore_index)


# ---------------------------------------------------------------------------------------------
# configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class BertConfig:
    """Sizes of a BERT. The defaults are BERT-base (110M parameters); ids are those of its vocabulary.

    vocab_size, max_len (longest input), type_vocab_size (segments A/B), n_layers blocks of
    n_heads heads over d_model features with a d_ff feed-forward; dropout everywhere (0 to evaluate);
    pad_id/cls_id/sep_id/mask_id: the special tokens (bert-base-uncased: 0, 101, 102, 103).
    """

    vocab_size: int = 30522
    max_len: int = 512
    type_vocab_size: int = 2
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int = 3072
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    pad_id: int = 0
    cls_id: int = 101
    sep_id: int = 102
    mask_id: int = 103

    def __post_init__(self):
        check_fields(
            "BertConfig", self, ("vocab_size", "max_len", "type_vocab_size", "n_layers", "n_heads", "d_model", "d_ff")
        )
        if self.d_model % self.n_heads:
            raise ValueError(f"BertConfig: d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        check_number("BertConfig", "dropout", self.dropout, low=0, high=1, high_open=True)
        for name in ("pad_id", "cls_id", "sep_id", "mask_id"):
            if check_int("BertConfig", name, getattr(self, name), low=None) not in range(self.vocab_size):
                raise ValueError(
                    f"BertConfig: {name} must be a token id in [0, {self.vocab_size}), got {getattr(self, name)!r}"
                )

    @property
    def special_ids(self) -> tuple[int, ...]:
        return (self.pad_id, self.cls_id, self.sep_id, self.mask_id)


# ---------------------------------------------------------------------------------------------
# the MLM rule and the NSP pairs
# ---------------------------------------------------------------------------------------------
def mlm_rule(
    input_ids: torch.Tensor,
    select_u: torch.Tensor,
    action_u: torch.Tensor,
    random_ids: torch.Tensor,
    special: torch.Tensor,
    mask_id: int,
    mlm_probability: float = 0.15,
    mask_share: float = 0.8,
    random_share: float = 0.1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking rule with the random draws given: returns (corrupted inputs, labels).

    A token is chosen when select_u < mlm_probability and it is not special ([CLS], [SEP],
    padding). A chosen token becomes [MASK] when action_u < mask_share, becomes random_ids'
    entry when mask_share <= action_u < mask_share + random_share, and stays itself otherwise.
    labels hold the original id at chosen positions and IGNORE (-100) elsewhere: the loss
    counts the chosen 15 % only, including the unchanged ones (so the model cannot learn
    "an unmasked token is always right as it is").

    input_ids, select_u, action_u, random_ids, special: all (B, T); special is bool.

    >>> ids = torch.tensor([[1, 5, 6, 7, 2]]); special = torch.tensor([[True, False, False, False, True]])
    >>> u1 = torch.tensor([[0.0, 0.1, 0.5, 0.05, 0.0]]); u2 = torch.tensor([[0.0, 0.5, 0.0, 0.95, 0.0]])
    >>> mlm_rule(ids, u1, u2, torch.full_like(ids, 9), special, mask_id=3)
    (tensor([[1, 3, 6, 7, 2]]), tensor([[-100,    5, -100,    7, -100]]))
    """
    fn = "mlm_rule"
    check_tensor(fn, "input_ids", input_ids, dtype="int", shape="(B, T)")
    for name, t in (("select_u", select_u), ("action_u", action_u), ("random_ids", random_ids), ("special", special)):
        if not isinstance(t, torch.Tensor) or t.shape != input_ids.shape:
            raise ValueError(
                f"{fn}: {name} must be a tensor of input_ids' shape {tuple(input_ids.shape)}, "
                f"got {tuple(getattr(t, 'shape', ())) or type(t).__name__}"
            )
    if special.dtype != torch.bool:
        raise TypeError(f"{fn}: special must be a bool tensor (True = never masked), got {special.dtype}")
    for name, p in (("mlm_probability", mlm_probability), ("mask_share", mask_share), ("random_share", random_share)):
        check_number(fn, name, p, low=0, high=1)
    if mask_share + random_share > 1:
        raise ValueError(f"{fn}: mask_share + random_share must be <= 1, got {mask_share} + {random_share}")
    chosen = (select_u < mlm_probability) & ~special  # (B, T) the 15 %
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE))
    to_mask = chosen & (action_u < mask_share)  # 80 % of the chosen
    to_random = chosen & (action_u >= mask_share) & (action_u < mask_share + random_share)  # 10 %
    inputs = torch.where(to_mask, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(to_random, random_ids.to(input_ids.dtype), inputs)  # the other 10 % stay as they are
    return inputs, labels


def mask_tokens(
    input_ids: torch.Tensor,
    config: BertConfig,
    *,
    mlm_probability: float = 0.15,
    generator: Optional[torch.Generator] = None,
    special: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw the random numbers and apply `mlm_rule`: (corrupted inputs, labels), both (B, T).

    Random replacements are drawn uniformly from the non-special ids. special defaults to
    the positions holding config.special_ids.
    """
    if not isinstance(config, BertConfig):
        raise TypeError(f"mask_tokens: config must be a BertConfig, got {type(config).__name__}")
    check_tensor("mask_tokens", "input_ids", input_ids, dim=2, shape="(B, T)")
    dev = input_ids.device
    if special is None:
        special = torch.isin(input_ids, torch.tensor(config.special_ids, device=dev))
    allowed = torch.ones(config.vocab_size, dtype=torch.bool)
    allowed[list(config.special_ids)] = False
    pool = allowed.nonzero().squeeze(1).to(dev)  # the ids a random token can be
    select_u = torch.rand(input_ids.shape, generator=generator).to(dev)
    action_u = torch.rand(input_ids.shape, generator=generator).to(dev)
    random_ids = pool[torch.randint(len(pool), input_ids.shape, generator=generator).to(dev)]
    return mlm_rule(input_ids, select_u, action_u, random_ids, special, config.mask_id, mlm_probability)


def encode_pair(
    a: Sequence[int], b: Optional[Sequence[int]], config: BertConfig, max_len: Optional[int] = None
) -> tuple[list[int], list[int]]:
    """[CLS] a [SEP] b [SEP] and its segment ids (0 for [CLS] a [SEP], 1 for b [SEP]).

    Longer inputs are cut, the longer segment first, to fit max_len (default config.max_len).

    >>> encode_pair([7, 8], [9], BertConfig())
    ([101, 7, 8, 102, 9, 102], [0, 0, 0, 0, 1, 1])
    """
    max_len = max_len or config.max_len
    a, b = list(a), (list(b) if b is not None else None)
    budget = max_len - (3 if b is not None else 2)
    if budget < 2:
        raise ValueError(f"encode_pair: max_len={max_len} leaves no room for tokens besides [CLS]/[SEP]")
    while len(a) + (len(b) if b else 0) > budget:  # longest-first truncation
        (a if b is None or len(a) >= len(b) else b).pop()
    ids = [config.cls_id] + a + [config.sep_id]
    types = [0] * len(ids)
    if b is not None:
        ids += b + [config.sep_id]
        types += [1] * (len(b) + 1)
    return ids, types


def nsp_pairs(
    documents: Sequence[Sequence[int]], segment_len: int, n_pairs: int, seed: int = 0
) -> list[tuple[list[int], list[int], int]]:
    """(A, B, label) pairs for next-sentence prediction from token streams of several documents.

    A is a random segment of segment_len tokens; half the time B is the segment that follows
    it (label 0, "IsNext", the label convention of `transformers`), otherwise a segment from
    another document (label 1, "NotNext"). Every document needs at least 2 * segment_len tokens.
    """
    if len(documents) < 2:
        raise ValueError(
            f"nsp_pairs: need at least 2 documents (NotNext segments come from another one), got {len(documents)}"
        )
    if any(len(d) < 2 * segment_len for d in documents):
        raise ValueError(f"nsp_pairs: every document needs >= 2 * segment_len = {2 * segment_len} tokens")
    rng = random.Random(seed)
    out = []
    for _ in range(n_pairs):
        d = rng.randrange(len(documents))
        doc = documents[d]
        s = rng.randrange(len(doc) - 2 * segment_len + 1)
        a = list(doc[s : s + segment_len])
        if rng.random() < 0.5:
            b, label = list(doc[s + segment_len : s + 2 * segment_len]), 0
        else:
            other = documents[rng.choice([i for i in range(len(documents)) if i != d])]
            t = rng.randrange(len(other) - segment_len + 1)
            b, label = list(other[t : t + segment_len]), 1
        out.append((a, b, label))
    return out


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """token + learned position + segment embeddings, then LayerNorm and dropout: (B, T) ids -> (B, T, C)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.d_model)
        self.position_embeddings = nn.Embedding(config.max_len, config.d_model)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.d_model)
        self.LayerNorm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids, token_type_ids):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(pos) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class BertLayer(nn.Module):
    """One post-LN encoder block: x = LN(x + attn(x)); x = LN(x + W2 gelu(W1 x)). Every token sees every token."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = MultiHeadAttention(config.d_model, config.n_heads, dropout=config.dropout)
        self.attention_dropout = nn.Dropout(config.dropout)
        self.attention_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.intermediate = nn.Linear(config.d_model, config.d_ff)
        self.output = nn.Linear(config.d_ff, config.d_model)
        self.output_dropout = nn.Dropout(config.dropout)
        self.output_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.last_weights: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        a, self.last_weights = self.attention(x, x, x, mask)  # (B, T, C), (B, h, T, T)
        x = self.attention_norm(x + self.attention_dropout(a))
        f = self.output(F.gelu(self.intermediate(x)))
        return self.output_norm(x + self.output_dropout(f))


class BertModel(nn.Module):
    """The encoder: ids (B, T) -> contextual vectors (B, T, C) and the pooled [CLS] vector (B, C).

    attention_mask (B, T) bool, True = a real token (padding is never attended to).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"BertModel: config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.n_layers))
        self.pooler = nn.Linear(config.d_model, config.d_model)  # tanh(W h_[CLS] + b)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        check_tensor("BertModel", "input_ids", input_ids, dim=2, dtype="int", shape="(B, T)")
        B, T = input_ids.shape
        if T > self.config.max_len:
            raise ValueError(f"BertModel: sequence length {T} exceeds max_len={self.config.max_len}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = input_ids != self.config.pad_id
        if attention_mask.dtype != torch.bool or attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"BertModel: attention_mask must be bool (B, T) = {tuple(input_ids.shape)} with True = "
                f"real token, got {attention_mask.dtype} {tuple(attention_mask.shape)}"
            )
        mask = attention_mask[:, None, :]  # (B, 1, T): every query, real keys only
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, C) from [CLS]
        return x, pooled


class MLMHead(nn.Module):
    """Vectors (..., C) -> vocabulary logits (..., V): dense + GELU + LayerNorm, then the tied embedding matrix + bias."""

    def __init__(self, config: BertConfig, embedding: nn.Embedding):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.embedding = embedding  # tied: shared with the input side
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.norm(F.gelu(self.dense(h))) @ self.embedding.weight.t() + self.bias


class BertForPreTraining(nn.Module):
    """BERT with its two pre-training heads: MLM on every position, NSP on the pooled [CLS].

    forward(...) -> (mlm_logits (B, T, V), nsp_logits (B, 2)); `loss(...)` computes the
    pre-training loss scoring only the chosen positions (cheaper than all T).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = BertModel(config)
        self.mlm = MLMHead(config, self.bert.embeddings.word_embeddings)
        self.nsp = nn.Linear(config.d_model, 2)
        self.apply(_init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        return self.mlm(h), self.nsp(pooled)

    def loss(self, input_ids, token_type_ids, mlm_labels, nsp_labels=None, attention_mask=None):
        """(total, mlm, nsp) losses in nats; MLM over positions whose label is not IGNORE."""
        h, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        chosen = mlm_labels != IGNORE  # (B, T)
        mlm = F.cross_entropy(self.mlm(h[chosen]), mlm_labels[chosen])  # only the ~15 % chosen
        nsp = F.cross_entropy(self.nsp(pooled), nsp_labels) if nsp_labels is not None else torch.zeros(())
        return mlm + nsp, mlm, nsp


class BertClassifier(nn.Module):
    """A sentence classifier: a sentence vector -> dropout -> Linear -> n_classes logits.

    pooling="cls": BERT's pooled [CLS] vector (the pooler was pre-trained by NSP);
    pooling="mean": the mean of the final token vectors over real tokens (what MLM trained;
    Sentence-BERT and MiniLM pool this way). `from_pretrained(pretraining_model, n_classes)`
    starts from a pre-trained encoder; the constructor alone starts from scratch: the
    comparison of notebook 05.
    """

    def __init__(self, config: BertConfig, n_classes: int, pooling: str = "cls"):
        super().__init__()
        check_int("BertClassifier", "n_classes", n_classes, low=2)
        check_choice("BertClassifier", "pooling", pooling, ("cls", "mean"))
        self.config, self.pooling = config, pooling
        self.bert = BertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.d_model, n_classes)
        self.apply(_init_weights)

    @classmethod
    def from_pretrained(cls, pretrained: BertForPreTraining, n_classes: int, pooling: str = "cls") -> "BertClassifier":
        model = cls(pretrained.config, n_classes, pooling)
        model.bert.load_state_dict(pretrained.bert.state_dict())
        return model.to(next(pretrained.parameters()).device)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        hidden, pooled = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, C), (B, C)
        if self.pooling == "mean":
            real = input_ids != self.config.pad_id if attention_mask is None else attention_mask
            real = real.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * real).sum(1) / real.sum(1).clamp_min(1)  # (B, C)
        return self.head(self.dropout(pooled))  # (B, n_classes)


def _init_weights(module: nn.Module) -> None:
    """BERT's initialisation: normal(0, 0.02) weights, zero biases, LayerNorm (1, 0)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def parameter_formula(config: BertConfig, heads: bool = True) -> int:
    """Parameters of BertForPreTraining(config) (heads=False: the encoder with pooler only), from shapes alone.

    `course_utils.measure.count_parameters(model)` counts a built model; the two agree (tested).

    Embeddings (V + P + types) C + LN 2C; per layer 4 (C^2 + C) attention + 2 LN + 2 C d_ff + d_ff + C;
    pooler C^2 + C; MLM head C^2 + C + 2C + V (its matrix is the tied embedding); NSP 2C + 2.
    """
    C, V, F_, L = config.d_model, config.vocab_size, config.d_ff, config.n_layers
    emb = (V + config.max_len + config.type_vocab_size) * C + 2 * C
    layer = 4 * (C * C + C) + 2 * (2 * C) + (C * F_ + F_) + (F_ * C + C)
    total = emb + L * layer + (C * C + C)
    if heads:
        total += (C * C + C) + 2 * C + V + (2 * C + 2)
    return total


# ---------------------------------------------------------------------------------------------
# transformers' BERT: the reference implementation
# ---------------------------------------------------------------------------------------------
def _hf_names(n_layers: int) -> dict[str, str]:
    """our state-dict name -> transformers.BertForPreTraining's name."""
    names = {
        "bert.pooler.weight": "bert.pooler.dense.weight",
        "bert.pooler.bias": "bert.pooler.dense.bias",
        "mlm.dense.weight": "cls.predictions.transform.dense.weight",
        "mlm.dense.bias": "cls.predictions.transform.dense.bias",
        "mlm.norm.weight": "cls.predictions.transform.LayerNorm.weight",
        "mlm.norm.bias": "cls.predictions.transform.LayerNorm.bias",
        "mlm.bias": "cls.predictions.bias",
        "nsp.weight": "cls.seq_relationship.weight",
        "nsp.bias": "cls.seq_relationship.bias",
    }
    for part in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        names[f"bert.embeddings.{part}.weight"] = f"bert.embeddings.{part}.weight"
    for wb in ("weight", "bias"):
        names[f"bert.embeddings.LayerNorm.{wb}"] = f"bert.embeddings.LayerNorm.{wb}"
        for i in range(n_layers):
            ours, theirs = f"bert.layers.{i}.", f"bert.encoder.layer.{i}."
            for a, b in (
                ("attention.q_proj", "attention.self.query"),
                ("attention.k_proj", "attention.self.key"),
                ("attention.v_proj", "attention.self.value"),
                ("attention.out_proj", "attention.output.dense"),
                ("attention_norm", "attention.output.LayerNorm"),
                ("intermediate", "intermediate.dense"),
                ("output", "output.dense"),
                ("output_norm", "output.LayerNorm"),
            ):
                names[f"{ours}{a}.{wb}"] = f"{theirs}{b}.{wb}"
    return names


def hf_bert_config(config: BertConfig):
    """The `transformers.BertConfig` with the same architecture."""
    from transformers import BertConfig as HFBertConfig  # optional and heavy: only the comparison needs it

    return HFBertConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        intermediate_size=config.d_ff,
        hidden_act="gelu",
        hidden_dropout_prob=config.dropout,
        attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_len,
        type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps,
        pad_token_id=config.pad_id,
    )


def to_hf_bert(model: BertForPreTraining):
    """A `transformers.BertForPreTraining` holding our weights (eval mode): the check of our BERT."""
    from transformers import BertForPreTraining as HFBert  # optional and heavy: only the comparison needs it

    if not isinstance(model, BertForPreTraining):
        raise TypeError(f"to_hf_bert: model must be a BertForPreTraining, got {type(model).__name__}")
    hf = HFBert(hf_bert_config(model.config))
    theirs = hf.state_dict()
    ours = model.state_dict()
    names = _hf_names(model.config.n_layers)
    new = dict(theirs)
    for mine, hf_name in names.items():
        new[hf_name] = ours[mine].detach()
    new["cls.predictions.decoder.weight"] = ours["bert.embeddings.word_embeddings.weight"].detach()
    if "cls.predictions.decoder.bias" in theirs:
        new["cls.predictions.decoder.bias"] = ours["mlm.bias"].detach()
    hf.load_state_dict(new)
    ref = next(model.parameters())
    return hf.to(dtype=ref.dtype, device=ref.device).eval()
