"""BERT (encoder-only transformer): masked language modelling, next-sentence prediction, a [CLS] classifier.

    [CLS] A tokens [SEP] B tokens [SEP]          token_type 0 for [CLS] A [SEP], 1 for B [SEP]
    -> token + position + segment embeddings -> LayerNorm
    -> n_layers x post-LN blocks: LN(x + attn(x)), LN(x + ffn(x))       (no causal mask: both directions)
    -> MLM head on every position (tied to the token embedding), NSP head on [CLS]

BERT reads the whole sentence at once, so it cannot be trained to predict the next word;
it is trained to fill in blanks instead (Devlin et al., 2019): 15 % of the (non-special)
tokens are chosen; of those, 80 % are replaced by [MASK], 10 % by a random token and 10 %
are left unchanged, and the model must say what was there. The second task, next-sentence
prediction, asks from [CLS] whether segment B followed A. The data of both tasks (the masking
rule, [CLS] A [SEP] B [SEP] inputs, NSP pairs) is made in `course_utils.bert_data`.

The self-attention is `course_utils.attention.MultiHeadAttention` (notebook 01), with a
padding mask. Weight names map one to one onto `transformers.BertForPreTraining`
(`to_hf_bert`), and the tests check identical outputs with the same weights.

Concessions: the original post-LN block order (not the pre-LN of our GPT), GELU in its
exact erf form as in BERT; no whole-word masking (each BPE token is chosen on its own);
the NSP pairs are fixed-length segments of running text, not sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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


class BertForSpans(nn.Module):
    """Question answering as in SQuAD (Devlin et al., 2019): [CLS] question [SEP] paragraph [SEP] -> the answer's span.

    Two vectors learned in fine-tuning, S and E (one Linear to 2 outputs): token i's start score is
    S . h_i and its end score E . h_i; the answer is the span (i, j), j >= i, with the largest
    start + end score (`best_span`). A tagging head (named entities, CoNLL-2003) is the same idea
    with one Linear to n_tags on every token instead of two scores.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.bert = BertModel(config)
        self.span = nn.Linear(config.d_model, 2)
        self.apply(_init_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        hidden, _ = self.bert(input_ids, token_type_ids, attention_mask)  # (B, T, C)
        start, end = self.span(hidden).unbind(-1)  # (B, T) each
        return start, end


def best_span(
    start: torch.Tensor, end: torch.Tensor, allowed: torch.Tensor, max_len: int = 30
) -> tuple[int, int, float]:
    """(i, j, score) maximising start[i] + end[j] over allowed i <= j < i + max_len; one example, (T,) each.

    allowed (T,) bool: the paragraph's positions (an answer never lies in the question or the
    specials). One (T, T) table of scores, masked to the upper band, then one argmax.
    """
    check_tensor("best_span", "start", start, dim=1)
    if end.shape != start.shape or allowed.shape != start.shape:
        raise ValueError(
            f"best_span: start, end, allowed must share one shape (T,), got {start.shape}, {end.shape}, {allowed.shape}"
        )
    check_int("best_span", "max_len", max_len)
    if not allowed.any():
        raise ValueError("best_span: no position is allowed: mark the paragraph's tokens True in `allowed`")
    T = len(start)
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    ok = (j >= i) & (j - i < max_len) & allowed[:, None] & allowed[None, :]  # (T, T)
    scores = (start[:, None] + end[None, :]).masked_fill(~ok, float("-inf"))
    k = int(scores.argmax())
    return k // T, k % T, float(scores.view(-1)[k])


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

    >>> parameter_formula(BertConfig(), heads=False)  # BERT-base's encoder: "110M" in Devlin et al. (2019)
    109482240
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
