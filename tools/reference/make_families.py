#!/usr/bin/env python3
"""Conformance suite of tiny random-weight checkpoints, one per model family.

For every case in CASES this builds a tiny model with Hugging Face transformers' own
config and model classes (float32, seeded random weights), saves it as a Hugging Face
folder (config.json, model.safetensors, a tiny SentencePiece tokenizer), converts the
folder with llama.cpp's own convert_hf_to_gguf.py (--outtype f32) where llama.cpp has a
converter for the architecture, and writes transformers' reference outputs:

    testdata/reference/families/<case>/hf/                the Hugging Face folder
    testdata/reference/families/<case>/model.gguf         llama.cpp's conversion (or none)
    testdata/reference/families/<case>/reference.json     sequences, greedy ids, GGUF summary
    testdata/reference/families/<case>/logits.safetensors seq0, seq1, ...: [seq_len, vocab] f32
    testdata/reference/families/manifest.json             all cases
    testdata/reference/families/README.md

Reference outputs come from the model reloaded with from_pretrained(hf/) (checked to be
bit-identical to the in-memory model where the saved config is meant to be equivalent),
eager attention, batch of one, no padding, no KV cache. Greedy ids: 8 steps, each an
argmax of a full-sequence forward, not stopping at EOS; every step's top-1 minus top-2
logit margin must be >= MIN_MARGIN (else the case is reseeded).

Regenerate with:
    bash tools/setup/pyref.sh && bash tools/setup/llamacpp.sh && .cache/pyref/bin/python tools/reference/make_families.py

Deterministic: fixed seeds, single-threaded torch, SentencePiece trained single-threaded
on a generated corpus. `--only CASE[,CASE]` regenerates some cases (the manifest then
keeps the other cases' entries from the previous manifest).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
import safetensors
import safetensors.torch
import sentencepiece as spm
import tokenizers
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3Config,
    Gemma3ForCausalLM,
    Gemma3ForConditionalGeneration,
    Gemma3TextConfig,
    GemmaConfig,
    GemmaForCausalLM,
    GraniteConfig,
    GraniteForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaTokenizer,
    MistralConfig,
    MistralForCausalLM,
    Olmo2Config,
    Olmo2ForCausalLM,
    Phi3Config,
    Phi3ForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen3Config,
    Qwen3ForCausalLM,
    SiglipVisionConfig,
    SmolLM3Config,
    SmolLM3ForCausalLM,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_ROOT = REPO_ROOT / "testdata" / "reference" / "families"
LLAMACPP = REPO_ROOT / ".cache" / "llamacpp"
CONVERTER = LLAMACPP / "convert_hf_to_gguf.py"
REGENERATE = (
    "bash tools/setup/pyref.sh && bash tools/setup/llamacpp.sh && "
    ".cache/pyref/bin/python tools/reference/make_families.py"
)

VOCAB = 320
BOS, EOS, PAD = 1, 2, 3
SPECIAL_IDS = {0, 1, 2, 3, 4, 5, 6}  # <unk> <s> </s> <pad> <start_of_image> <end_of_image> <image_soft_token>
SEQ_LENS = (20, 24, 28)
N_NEW = 8
MIN_MARGIN = 1e-2
INIT_STD = 0.2  # weight std (initializer_range): big enough that every layer matters
NORM_JITTER = 0.25  # norm weights: neutral value + U(-NORM_JITTER, NORM_JITTER)
BIAS_STD = 0.1
MAX_ATTEMPTS = 40

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------------------
# Tokenizer: one tiny SentencePiece BPE model shared by all cases.
# ---------------------------------------------------------------------------------------

SUBJ = ("the model|a small network|every layer|this vector|the tokenizer|our test|the attention head|"
        "a careful reader|the refusal direction|each sequence").split("|")
VERB = "computes|refuses|predicts|writes|reads|rotates|scales|ignores|follows|explains|measures|returns".split("|")
OBJ = ("the next token|a simple answer|the hidden state|many numbers|one question|the rotary angle|"
       "a long window|their logits|some weights|the final norm").split("|")
ADV = "quickly|slowly|again|today|without error|in order|at every step|by design|for now|as expected".split("|")


def corpus_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        s = f"{rng.choice(SUBJ).capitalize()} {rng.choice(VERB)} {rng.choice(OBJ)} {rng.choice(ADV)}."
        if rng.random() < 0.3:
            s += f" Then it {rng.choice(VERB)} {rng.choice(OBJ)}, {rng.randint(0, 999)} times."
        lines.append(s)
    return lines


def build_tokenizer(work: Path) -> dict[str, Any]:
    """Trains the SentencePiece model and converts it with transformers' LlamaTokenizer."""
    work.mkdir(parents=True, exist_ok=True)
    # Trained from an iterator into memory, so that no file path ends up in the model's trainer_spec.
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines(400, seed=1234)), model_writer=buf, vocab_size=VOCAB,
        model_type="bpe", character_coverage=1.0, byte_fallback=False, split_digits=True,
        add_dummy_prefix=True, normalization_rule_name="identity",
        unk_id=0, bos_id=1, eos_id=2, pad_id=3,
        user_defined_symbols=["<start_of_image>", "<end_of_image>", "<image_soft_token>"],
        num_threads=1, minloglevel=2,
    )
    (work / "sp.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_file=str(work / "sp.model"))
    assert sp.vocab_size() == VOCAB, sp.vocab_size()
    src = work / "src"
    src.mkdir(exist_ok=True)
    shutil.copy(work / "sp.model", src / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(src), pad_token="<pad>", legacy=False)
    for line in corpus_lines(50, seed=99):
        assert tok.encode(line, add_special_tokens=False) == sp.encode(line), line
    out = work / "hf_tokenizer"
    tok.save_pretrained(str(out))
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    for k in ("is_local", "local_files_only"):  # from_pretrained artifacts, not tokenizer settings
        cfg.pop(k, None)
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.copy(work / "sp.model", out / "tokenizer.model")
    return {"dir": out, "sp": sp,
            "sha256": hashlib.sha256((work / "sp.model").read_bytes()).hexdigest()}


def make_sequences(sp) -> list[list[int]]:
    """Token ids (no BOS) of generated text, one per SEQ_LENS entry, at least max(SEQ_LENS) long."""
    lines = corpus_lines(60, seed=4321)
    seqs = []
    for k in range(len(SEQ_LENS)):
        ids: list[int] = []
        j = k * 9
        while len(ids) < max(SEQ_LENS) + 1:
            ids += sp.encode(lines[j % len(lines)])
            j += 1
        assert not (set(ids) & SPECIAL_IDS)
        seqs.append(ids)
    return seqs


# ---------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    family: str
    model_cls: type
    make_config: Callable[[], Any]
    style: str  # "rope_parameters" or "legacy"
    notes: list[str]
    bos: bool
    post_edit: Callable[[dict], dict] | None = None
    # Whether the saved (post-edited) config is meant to reproduce the in-memory model.
    expect_reload_identical: bool = True
    # What llama.cpp infers from the GGUF where that differs from the Hugging Face config: config overrides
    # under which transformers reproduces llama.cpp's reading of the file, and why. Reference logits under
    # these overrides go to logits_gguf.safetensors.
    gguf_semantics: dict | None = None
    # Explanation added to the manifest when the converter fails for this case.
    gguf_failure_note: str | None = None


def common(**kw) -> dict:
    d = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
             rms_norm_eps=1e-6, initializer_range=INIT_STD, bos_token_id=BOS, eos_token_id=EOS,
             pad_token_id=PAD)
    d.update(kw)
    return d


def to_legacy_rope(cfg: dict, rope_scaling: dict | None, keep_scaling_null: bool = False,
                   extra_top: dict | None = None) -> dict:
    rp = cfg.pop("rope_parameters")
    cfg["rope_theta"] = rp["rope_theta"]
    if rope_scaling is not None or keep_scaling_null:
        cfg["rope_scaling"] = rope_scaling
    if extra_top:
        cfg.update(extra_top)
    return dict(sorted(cfg.items()))


def edit_llama_legacy(cfg: dict) -> dict:
    assert cfg["rope_parameters"]["rope_type"] == "linear"
    return to_legacy_rope(cfg, {"rope_type": "linear", "factor": cfg["rope_parameters"]["factor"]})


def edit_drop_tie(cfg: dict) -> dict:
    assert cfg.pop("tie_word_embeddings") is False
    return cfg


def edit_qwen2_legacy(cfg: dict) -> dict:
    return to_legacy_rope(cfg, None, keep_scaling_null=True)


def edit_phi3_longrope(cfg: dict) -> dict:
    rp = cfg["rope_parameters"]
    assert rp["rope_type"] == "longrope"
    scaling = {"type": "longrope", "short_factor": rp["short_factor"], "long_factor": rp["long_factor"]}
    cfg = to_legacy_rope(cfg, scaling)
    assert "original_max_position_embeddings" in cfg
    return cfg


def edit_gemma3_mm_legacy(cfg: dict) -> dict:
    tc = cfg["text_config"]
    rp = tc.pop("rope_parameters")
    full, local = rp["full_attention"], rp["sliding_attention"]
    assert full["rope_type"] == "linear" and local["rope_type"] == "default"
    tc["rope_theta"] = full["rope_theta"]
    tc["rope_local_base_freq"] = local["rope_theta"]
    tc["rope_scaling"] = {"rope_type": "linear", "factor": full["factor"]}
    n = tc["num_hidden_layers"]
    assert tc["layer_types"] == ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(n)]
    del tc["layer_types"]
    tc.pop("_sliding_window_pattern", None)  # transformers 5 serializes its private copy too
    tc["sliding_window_pattern"] = 6
    cfg["text_config"] = dict(sorted(tc.items()))
    return cfg


LONGROPE_SHORT = [1.0, 1.25, 1.8, 2.6]
LONGROPE_LONG = [1.1, 2.5, 6.0, 14.0]


def gemma3_text_kw(**kw) -> dict:
    d = common(num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
               query_pre_attn_scalar=16, sliding_window=6, hidden_activation="gelu_pytorch_tanh",
               layer_types=["sliding_attention"] * 5 + ["full_attention"],
               rope_parameters={
                   "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0},
                   "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
               })
    d.update(kw)
    return d


CASES: list[Case] = [
    Case("llama-legacy", "llama", LlamaForCausalLM,
         lambda: LlamaConfig(**common(hidden_size=48, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                      attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
                                      rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})),
         "legacy",
         ["config.json in the legacy style: top-level rope_theta + rope_scaling {rope_type: linear, factor: 2.0} "
          "(transformers 5 writes rope_parameters; the saved file was rewritten and reloads to identical logits)",
          "attention_bias: q_proj/k_proj/v_proj/o_proj biases; mlp_bias: gate/up/down biases",
          "head_dim 16 != hidden_size/num_attention_heads (48/4 = 12)",
          "grouped-query attention: 4 query heads, 2 key/value heads",
          "untied output head (tie_word_embeddings: false, separate lm_head.weight)"],
         bos=True, post_edit=edit_llama_legacy),
    Case("llama-llama3", "llama", LlamaForCausalLM,
         lambda: LlamaConfig(**common(hidden_size=64, num_attention_heads=2, num_key_value_heads=1, head_dim=32,
                                      tie_word_embeddings=True,
                                      rope_parameters={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                       "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 32,
                                                       "rope_theta": 10000.0})),
         "rope_parameters",
         ["llama3 RoPE scaling: factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 32, "
          "theta 10000, head_dim 32: wavelengths 2*pi*10000^(2i/32) = 6.3 (< 32/4 = 8: unscaled), 11.2 and 19.9 "
          "(between 8 and 32: smoothed), 35.3 and longer (> 32: divided by 8), so all three bands occur",
          "tied output head (no lm_head.weight in the safetensors)",
          "multi-query attention (2 query heads, 1 key/value head)"],
         bos=True),
    Case("llama-yarn", "llama", LlamaForCausalLM,
         lambda: LlamaConfig(**common(num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                                      tie_word_embeddings=True,
                                      rope_parameters={"rope_type": "yarn", "factor": 4.0,
                                                       "original_max_position_embeddings": 16,
                                                       "rope_theta": 10000.0})),
         "rope_parameters",
         ["YaRN RoPE scaling: factor 4, original_max_position_embeddings 16, beta_fast/beta_slow defaults 32/1, "
          "truncate default true; transformers applies attention_factor 0.1*ln(4)+1 = 1.13863 to cos and sin; "
          "with head_dim 16 the correction range is [0, 1]: frequency 0 is kept (extrapolated), frequencies 1..7 "
          "are divided by 4 (interpolated)",
          "max_position_embeddings 64 = factor * original_max_position_embeddings",
          "tied output head"],
         bos=True),
    Case("llama-dynamic", "llama", LlamaForCausalLM,
         lambda: LlamaConfig(**common(tie_word_embeddings=True,
                                      rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})),
         "rope_parameters",
         ["dynamic NTK RoPE scaling, factor 2; transformers takes max_position_embeddings (64) as the original "
          "length and rescales the base only for sequences longer than it; every sequence here (at most 28 + 8 "
          "tokens) is shorter, so the outputs equal default RoPE (theta 10000)",
          "llama.cpp's converter writes no rope scaling keys for rope_type dynamic"],
         bos=True),
    Case("llama-untied-default", "llama", LlamaForCausalLM,
         lambda: LlamaConfig(**common(num_key_value_heads=4, tie_word_embeddings=False,
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["config.json has no tie_word_embeddings key (deleted after saving); model.safetensors has a separate "
          "lm_head.weight",
          "multi-head attention (num_key_value_heads = num_attention_heads = 4)"],
         bos=True, post_edit=edit_drop_tie, expect_reload_identical=False),
    Case("mistral", "mistral", MistralForCausalLM,
         lambda: MistralConfig(**common(num_hidden_layers=3, sliding_window=6, tie_word_embeddings=False,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["sliding-window attention on every layer, sliding_window 6: query i sees keys j with i-6 < j <= i "
          "(transformers' sliding_window_overlay: kv_idx > q_idx - sliding_window); sequences of 20-28 tokens",
          "untied output head"],
         bos=True,
         gguf_semantics={
             "config_overrides": {"sliding_window": None},
             "why": "llama.cpp converts MistralForCausalLM with its LlamaModel class to general.architecture llama "
                    "and writes no sliding-window key, so llama.cpp (and a loader reading only the GGUF) runs "
                    "full causal attention; logits_gguf.safetensors has transformers' logits with "
                    "sliding_window=None (plain causal attention) for the same weights"}),
    Case("qwen2", "qwen2", Qwen2ForCausalLM,
         lambda: Qwen2Config(**common(tie_word_embeddings=True, bos_token_id=None, eos_token_id=EOS,
                                      rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})),
         "rope_parameters",
         ["Qwen2 attention: q/k/v biases, no o_proj bias (Qwen2's fixed layout)",
          "rope_parameters style, theta 1e6", "tied output head", "no BOS token (Qwen tokenizers add none)"],
         bos=False),
    Case("qwen2-legacy", "qwen2", Qwen2ForCausalLM,
         lambda: Qwen2Config(**common(tie_word_embeddings=False, bos_token_id=None, eos_token_id=EOS,
                                      rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})),
         "legacy",
         ["legacy rope keys: top-level rope_theta 1e6 and rope_scaling null (as Qwen2.5 hub checkpoints have); "
          "reloads to identical logits",
          "q/k/v biases", "untied output head", "no BOS token"],
         bos=False, post_edit=edit_qwen2_legacy),
    Case("qwen3", "qwen3", Qwen3ForCausalLM,
         lambda: Qwen3Config(**common(head_dim=16, tie_word_embeddings=True, bos_token_id=None,
                                      rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0})),
         "rope_parameters",
         ["per-head RMSNorm on q and k (q_norm/k_norm weights of size head_dim, applied before RoPE)",
          "explicit head_dim 16 != hidden_size/num_attention_heads (32/4 = 8)", "no attention biases",
          "tied output head", "no BOS token"],
         bos=False),
    Case("gemma", "gemma", GemmaForCausalLM,
         lambda: GemmaConfig(**common(num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                      hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True,
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["Gemma 1: GeGLU MLP with gelu_pytorch_tanh (GemmaConfig's field is hidden_act)",
          "RMSNorm weights applied as (1 + w); the saved norm weights are w (random around 0)",
          "input embeddings scaled by sqrt(hidden_size) = sqrt(32) (computed in the model dtype, float32)",
          "head_dim 16 != 32/4, multi-query attention (1 key/value head)", "tied output head",
          "GGUF: the converter's GemmaModel always writes tokenizer.ggml.eot_token_id 107 (CodeGemma's id, "
          "hard-coded; here it is an ordinary token), and skips lm_head.weight"],
         bos=True),
    Case("gemma2", "gemma2", Gemma2ForCausalLM,
         lambda: Gemma2Config(**common(num_hidden_layers=4, head_dim=16, query_pre_attn_scalar=24,
                                       attn_logit_softcapping=5.0, final_logit_softcapping=3.0, sliding_window=6,
                                       hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["attention logit soft-capping 5.0 (scores = 5*tanh(scores/5), after scaling, before the mask) and final "
          "logit soft-capping 3.0 (logits = 3*tanh(logits/3)); small caps so that both matter",
          "query_pre_attn_scalar 24 != head_dim 16: attention scale 24^-0.5",
          "layer_types alternate sliding_attention (even layers 0, 2) / full_attention (odd layers 1, 3), "
          "sliding_window 6",
          "four RMSNorms per layer (input, post_attention, pre_feedforward, post_feedforward), all (1 + w)",
          "embeddings scaled by sqrt(hidden_size)", "tied output head"],
         bos=True,
         gguf_semantics={
             "config_overrides": {"query_pre_attn_scalar": 16},
             "why": "the GGUF has no key for query_pre_attn_scalar: llama.cpp's gemma2 uses head_dim^-0.5 "
                    "(key_length 16) for every size except the 46-layer 27B ((hidden_size/num_heads)^-0.5); "
                    "logits_gguf.safetensors has transformers' logits with query_pre_attn_scalar=16 = head_dim "
                    "for the same weights"}),
    Case("gemma3-text", "gemma3", Gemma3ForCausalLM,
         lambda: Gemma3TextConfig(**gemma3_text_kw(tie_word_embeddings=True)),
         "rope_parameters",
         ["model_type gemma3_text (Gemma3ForCausalLM)",
          "per-head q/k RMSNorm (1 + w), four (1 + w) RMSNorms per layer, embeddings scaled by sqrt(hidden_size)",
          "6 layers, layer_types 5 x sliding_attention then full_attention (the 5:1 pattern of the real models; "
          "llama.cpp hard-codes this pattern of 6 for gemma3 and the GGUF carries no layer types), sliding_window 6",
          "rope_parameters per layer type: sliding_attention default RoPE theta 1e4; full_attention theta 1e6 with "
          "linear scaling factor 8 (positions divided by 8, as the 4B+ models have)",
          "query_pre_attn_scalar 16 = head_dim (llama.cpp assumes head_dim^-0.5 for every size but 27B)",
          "no final logit soft-capping (Gemma 3 has none)", "tied output head"],
         bos=True),
    Case("gemma3-multimodal", "gemma3", Gemma3ForConditionalGeneration,
         lambda: Gemma3Config(
             text_config=Gemma3TextConfig(**gemma3_text_kw(intermediate_size=48, tie_word_embeddings=True)),
             vision_config=SiglipVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                              num_attention_heads=2, image_size=16, patch_size=8, num_channels=3,
                                              vision_use_head=False),
             mm_tokens_per_image=4, boi_token_index=4, eoi_token_index=5, image_token_index=6,
             initializer_range=INIT_STD, tie_word_embeddings=True),
         "legacy",
         ["Gemma3ForConditionalGeneration (model_type gemma3) with a tiny SigLIP vision tower and projector; "
          "reference logits are the text-only forward (input_ids only, no pixel_values)",
          "text_config in the hub's legacy style: rope_theta 1e6, rope_local_base_freq 1e4, rope_scaling "
          "{rope_type: linear, factor: 8}, sliding_window_pattern 6 and no layer_types (rewritten after saving; "
          "reloads to identical logits)",
          "same text architecture as gemma3-text with intermediate_size 48",
          "image special tokens <start_of_image>=4, <end_of_image>=5, <image_soft_token>=6 (never in the sequences)"],
         bos=True, post_edit=edit_gemma3_mm_legacy),
    Case("phi3", "phi3", Phi3ForCausalLM,
         lambda: Phi3Config(**common(original_max_position_embeddings=64, tie_word_embeddings=False,
                                     rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["fused self_attn.qkv_proj ([q; k; v] rows) and mlp.gate_up_proj ([gate; up] rows)",
          "default RoPE, untied output head"],
         bos=True),
    Case("phi3-longrope", "phi3", Phi3ForCausalLM,
         lambda: Phi3Config(**common(max_position_embeddings=256, original_max_position_embeddings=64,
                                     tie_word_embeddings=False,
                                     rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                                                      "short_factor": LONGROPE_SHORT,
                                                      "long_factor": LONGROPE_LONG})),
         "legacy",
         ["LongRoPE in the hub's legacy style: rope_theta, rope_scaling {type: longrope, short_factor, long_factor} "
          "and top-level original_max_position_embeddings 64, max_position_embeddings 256",
          "every sequence (at most 28 + 8 tokens) is shorter than original_max_position_embeddings, so "
          "transformers uses short_factor [1.0, 1.25, 1.8, 2.6]: inv_freq[i] = 1 / (short_factor[i] * "
          "theta^(2i/head_dim)); long_factor is stored but unused here",
          "transformers still multiplies cos and sin by attention_factor = sqrt(1 + ln(256/64) / ln(64)) = 1.1547 "
          "(scale = max_position_embeddings / original_max_position_embeddings), whatever the sequence length",
          "the GGUF stores both factor lists (rope_factors_short/long.weight) and phi3.rope.scaling.attn_factor; "
          "llama.cpp picks rope_factors_long when its context size n_ctx exceeds "
          "phi3.rope.scaling.original_context_length (64), whatever the sequence length; to match these "
          "references pick short_factor (sequence length <= 64)"],
         bos=True, post_edit=edit_phi3_longrope),
    Case("olmo2", "olmo2", Olmo2ForCausalLM,
         lambda: Olmo2Config(**common(tie_word_embeddings=False,
                                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["OLMo 2: no pre-norms; RMSNorm after attention and after the MLP (post_attention_layernorm, "
          "post_feedforward_layernorm) before each residual add",
          "q_norm/k_norm: RMSNorm over the whole q (num_heads*head_dim) and k (num_kv_heads*head_dim) projections, "
          "before splitting into heads and RoPE",
          "untied output head", "no BOS token"],
         bos=False,
         gguf_failure_note=(
             "llama.cpp's Olmo2Model has no SentencePiece path: its set_vocab is TextModel._set_vocab_gpt2, "
             "which identifies the BPE pre-tokenizer by the sha256 of the token ids the tokenizer gives for a "
             "fixed test string (get_vocab_base_pre) and accepts only the hashes of ~100 known hub tokenizers "
             "(vocabularies of 30k-260k tokens). No tokenizer within the 320-token budget can produce one of "
             "those id sequences, so the converter stops with NotImplementedError and no GGUF is made "
             "(a hand-made GGUF was ruled out)")),
    Case("granite", "granite", GraniteForCausalLM,
         lambda: GraniteConfig(**common(embedding_multiplier=3.0, residual_multiplier=0.5, attention_multiplier=0.25,
                                        logits_scaling=2.0, tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["embedding_multiplier 3 (embeddings * 3), residual_multiplier 0.5 (each block output * 0.5 before the "
          "residual add), attention_multiplier 0.25 (the attention scale, replacing head_dim^-0.5 = 0.354), "
          "logits_scaling 2 (logits / 2)",
          "tied output head", "no BOS token"],
         bos=False),
    Case("smollm3", "smollm3", SmolLM3ForCausalLM,
         lambda: SmolLM3Config(**common(num_hidden_layers=4, tie_word_embeddings=True,
                                        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})),
         "rope_parameters",
         ["NoPE layers: no_rope_layers [1, 1, 1, 0] (the default no_rope_layer_interval 4: layer 3 uses no RoPE; "
          "1 = RoPE); llama.cpp hard-codes the same every-4th-layer rule (n_no_rope_layer_step 4) and the GGUF "
          "carries no per-layer flags",
          "tied output head", "no BOS token"],
         bos=False),
]


# ---------------------------------------------------------------------------------------
# Model building and reference computation
# ---------------------------------------------------------------------------------------

def case_seed(name: str, attempt: int) -> int:
    return zlib.crc32(name.encode()) + 1000 * attempt


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Seeded random weights; norm weights random around their neutral value (1, or 0 for 1+w norms)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            lname = name.lower()
            if "norm" in lname and name.endswith("weight"):
                vals = p.detach().flatten()
                center = float(vals[0])
                assert torch.all(vals == center) and center in (0.0, 1.0), (name, vals[:4])
                p.copy_(center + (torch.rand(p.shape, generator=g) * 2 - 1) * NORM_JITTER)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * BIAS_STD)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * INIT_STD)


@torch.no_grad()
def logits_of(model, ids: list[int]) -> torch.Tensor:
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].to(torch.float32)


@torch.no_grad()
def greedy(model, ids: list[int], n: int) -> tuple[list[int], float, list[float]]:
    cur = list(ids)
    new, margins = [], []
    for _ in range(n):
        last = logits_of(model, cur)[-1]
        top2 = torch.topk(last, 2)
        margins.append(float(top2.values[0] - top2.values[1]))
        nxt = int(top2.indices[0])
        new.append(nxt)
        cur.append(nxt)
    return new, min(margins), margins


def save_hf(model, case: Case, tok: dict, hf_dir: Path) -> None:
    if hf_dir.exists():
        shutil.rmtree(hf_dir)
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    cfg_path = hf_dir / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if case.post_edit is not None:
        cfg = case.post_edit(cfg)
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    for f in ("tokenizer.model", "tokenizer.json"):
        shutil.copy(tok["dir"] / f, hf_dir / f)
    tcfg = json.loads((tok["dir"] / "tokenizer_config.json").read_text())
    tcfg["add_bos_token"] = case.bos
    tcfg["add_eos_token"] = False
    (hf_dir / "tokenizer_config.json").write_text(json.dumps(tcfg, indent=2, sort_keys=True) + "\n")


def load_hf(case: Case, hf_dir: Path):
    m = case.model_cls.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager")
    return m.eval()


def safetensors_names(path: Path) -> list[str]:
    with safetensors.safe_open(str(path), framework="pt") as f:
        return sorted(f.keys())


# ---------------------------------------------------------------------------------------
# GGUF: conversion with llama.cpp's converter, summary, transformers' GGUF loader
# ---------------------------------------------------------------------------------------

def convert_gguf(case: Case, case_dir: Path, log_dir: Path) -> tuple[str | None, str | None]:
    out = case_dir / "model.gguf"
    if out.exists():
        out.unlink()
    env = dict(os.environ, PYTHONPATH=str(LLAMACPP / "gguf-py"))
    env.pop("NO_LOCAL_GGUF", None)
    cmd = [sys.executable, str(CONVERTER), str(case_dir / "hf"), "--outtype", "f32", "--outfile", str(out),
           "--model-name", case.name]
    p = subprocess.run(cmd, env=env, cwd=str(LLAMACPP), capture_output=True, text=True)
    (log_dir / f"convert-{case.name}.log").write_text(p.stdout + p.stderr)
    if p.returncode != 0 or not out.exists():
        if out.exists():
            out.unlink()
        lines = [l.strip() for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        err = [l for l in lines if "Error:" in l or "Exception:" in l]
        tail = err[-1] if err else " | ".join(lines[-2:])
        return None, f"convert_hf_to_gguf.py failed (exit {p.returncode}): {tail}"
    return "model.gguf", None


def gguf_value(field) -> Any:
    from gguf import GGUFValueType
    v = field.contents()
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8", "replace")
    if isinstance(v, list):
        if len(v) > 8:
            kind = GGUFValueType(field.types[1]).name.lower() if len(field.types) > 1 else "?"
            head = [x.decode("utf-8", "replace") if isinstance(x, (bytes, bytearray)) else x for x in v[:8]]
            return {"array_of": kind, "len": len(v), "head": head}
        return [x.decode("utf-8", "replace") if isinstance(x, (bytes, bytearray)) else x for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    return v


def permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: per head, interleave the two rotary halves."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def summarize_gguf(path: Path, hf_dir: Path, n_head: int, n_kv: int) -> dict:
    from gguf import GGUFReader
    r = GGUFReader(str(path))
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF."):
            continue
        meta[k] = gguf_value(f)
    hf = safetensors.torch.load_file(str(hf_dir / "model.safetensors"))
    hf_np = {k: v.numpy() for k, v in hf.items()}
    tensors = []
    for t in r.tensors:
        arr = np.asarray(t.data)
        ent = {"name": t.name, "ne": [int(x) for x in t.shape], "type": t.tensor_type.name}
        src, how = None, None
        for hk, hv in sorted(hf_np.items()):
            if hv.size != arr.size or hv.dtype != np.float32:
                continue
            hv2 = hv.reshape(arr.shape)
            if np.array_equal(arr, hv2):
                src, how = hk, "identity"
            elif np.array_equal(arr, (hv2 + np.float32(1.0)).astype(np.float32)):
                src, how = hk, "plus_one (gguf = hf + 1)"
            elif hv.ndim >= 1 and hv.shape[0] % (2 * n_head) == 0 and \
                    np.array_equal(arr, permute_rows(hv, n_head).reshape(arr.shape)):
                src, how = hk, f"permute(n_head={n_head})"
            elif n_kv != n_head and hv.ndim >= 1 and hv.shape[0] % (2 * n_kv) == 0 and \
                    np.array_equal(arr, permute_rows(hv, n_kv).reshape(arr.shape)):
                src, how = hk, f"permute(n_head_kv={n_kv})"
            if src:
                ent["hf_shape"] = list(hv.shape)
                break
        ent["hf_source"] = src
        ent["transform"] = how if src else "generated by the converter (no HF tensor)"
        if src is None and arr.size <= 64:
            ent["values"] = [float(x) for x in arr.reshape(-1)]
        tensors.append(ent)
    return {"metadata": meta, "tensors": tensors}


CONFIG_NOISE = {"transformers_version", "_model_name_or_path", "architectures", "quantization_config", "_name_or_path", "dtype",
                "torch_dtype", "use_cache", "initializer_range", "unk_token_id", "_attn_implementation_autoset",
                "output_attentions", "output_hidden_states", "return_dict", "id2label", "label2id",
                "tokenizer_class", "chunk_size_feed_forward", "problem_type"}


def transformers_gguf_diff(case_dir: Path, folder_model, seqs: list[list[int]],
                           refs: list[torch.Tensor]) -> dict:
    """Informative only: transformers' own GGUF loader (gguf_file=...) against the folder's reference.

    Also records why they differ: config keys that transformers reads differently from the GGUF, tensors it
    does not load, and tensors it loads with other values (max |difference|)."""
    out: dict[str, Any] = {"transformers_gguf_max_abs_diff": None}
    try:
        cfg_b = AutoConfig.from_pretrained(str(case_dir), gguf_file="model.gguf")
    except Exception as e:  # noqa: BLE001 - recorded, informative only
        out["transformers_gguf_note"] = (f"transformers {transformers.__version__} could not read the GGUF: "
                                         f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")
        return out
    ca = folder_model.config.get_text_config().to_dict()
    cb = cfg_b.get_text_config().to_dict()
    cfg_diff = {k: {"folder": ca.get(k), "gguf": cb.get(k)} for k in sorted(set(ca) | set(cb))
                if k not in CONFIG_NOISE and ca.get(k) != cb.get(k)
                and not (isinstance(ca.get(k), float) and isinstance(cb.get(k), float)
                         and math.isclose(ca[k], cb[k], rel_tol=1e-6))}
    if cfg_diff:
        out["transformers_gguf_config_differences"] = cfg_diff
    try:
        m = AutoModelForCausalLM.from_pretrained(str(case_dir), gguf_file="model.gguf", dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    except Exception as e:  # noqa: BLE001 - recorded, informative only
        msg = str(e).splitlines()[0][:300]
        out["transformers_gguf_note"] = (f"transformers {transformers.__version__} could not load the GGUF: "
                                         f"{type(e).__name__}: {msg}")
        return out
    d = 0.0
    for ids, ref in zip(seqs, refs):
        d = max(d, float((logits_of(m, ids) - ref).abs().max()))
    out["transformers_gguf_max_abs_diff"] = d
    out["transformers_gguf_note"] = (f"transformers {transformers.__version__} loads it as {type(m).__name__} "
                                     f"(model_type {m.config.model_type})")

    def norm_name(k: str) -> str:
        return k.replace("model.language_model.", "model.")

    sa = {norm_name(k): v for k, v in folder_model.state_dict().items()
          if not k.startswith(("model.vision_tower.", "model.multi_modal_projector."))}
    sb = m.state_dict()
    missing = sorted(k for k in sa if k not in sb)
    differ = {}
    for k in sorted(sa):
        if k in sb:
            if sa[k].shape != sb[k].shape:
                differ[k] = f"shape {list(sa[k].shape)} vs {list(sb[k].shape)}"
            elif not torch.equal(sa[k], sb[k]):
                differ[k] = float((sa[k] - sb[k]).abs().max())
    if missing:
        out["transformers_gguf_tensors_not_loaded"] = missing
    if differ:
        out["transformers_gguf_tensors_different_max_abs"] = differ
    return out


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------

def versions() -> dict:
    vers = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "sentencepiece": spm.__version__,
        "numpy": np.__version__,
    }
    p = LLAMACPP / "LLAMA_CPP_PYTHON_VERSION"
    vers["llama-cpp-python"] = p.read_text().strip() if p.exists() else None
    p = LLAMACPP / "LLAMA_CPP_COMMIT"
    vers["llama.cpp commit"] = p.read_text().strip() if p.exists() else None
    p = LLAMACPP / "gguf-py" / "pyproject.toml"
    if p.exists():
        for line in p.read_text().splitlines():
            if line.startswith("version"):
                vers["gguf-py (llama.cpp's, used by the converter)"] = line.split("=")[1].strip().strip('"')
                break
    import gguf
    vers["gguf (pip, used to read GGUFs here)"] = getattr(gguf, "__version__", None) or "0.19.0"
    return vers


def run_case(case: Case, tok: dict, base_seqs: list[list[int]], vers: dict, log_dir: Path) -> dict:
    t0 = time.time()
    case_dir = OUT_ROOT / case.name
    case_dir.mkdir(parents=True, exist_ok=True)
    hf_dir = case_dir / "hf"
    seqs = [([BOS] if case.bos else []) + s[: L - (1 if case.bos else 0)] for s, L in zip(base_seqs, SEQ_LENS)]
    assert [len(s) for s in seqs] == list(SEQ_LENS)

    chosen = None
    for attempt in range(MAX_ATTEMPTS):
        seed = case_seed(case.name, attempt)
        torch.manual_seed(seed)
        config = case.make_config()
        config._attn_implementation = "eager"
        model = case.model_cls(config).eval()
        randomize(model, seed)
        mem = [logits_of(model, s) for s in seqs]
        save_hf(model, case, tok, hf_dir)
        reloaded = load_hf(case, hf_dir)
        ref = [logits_of(reloaded, s) for s in seqs]
        identical = all(torch.equal(a, b) for a, b in zip(mem, ref))
        if case.expect_reload_identical and not identical:
            diff = max(float((a - b).abs().max()) for a, b in zip(mem, ref))
            raise SystemExit(f"{case.name}: reloaded folder differs from the in-memory model by {diff}")
        gre = [greedy(reloaded, s, N_NEW) for s in seqs]
        mm = min(g[1] for g in gre)
        sem = None
        if case.gguf_semantics:
            alt = case.model_cls.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager",
                                                 **case.gguf_semantics["config_overrides"]).eval()
            sem_ref = [logits_of(alt, s) for s in seqs]
            sem_gre = [greedy(alt, s, N_NEW) for s in seqs]
            assert any(not torch.equal(a, b) for a, b in zip(sem_ref, ref)), "overrides change nothing"
            sem = (sem_ref, sem_gre)
            mm = min(mm, min(g[1] for g in sem_gre))
        print(f"  {case.name}: seed {seed} min margin {mm:.4g}", flush=True)
        if mm >= MIN_MARGIN:
            chosen = (seed, attempt, model, reloaded, ref, gre, identical, sem)
            break
    if chosen is None:
        raise SystemExit(f"{case.name}: no seed gave margins >= {MIN_MARGIN}")
    seed, attempt, model, reloaded, ref, gre, identical, sem = chosen

    safetensors.torch.save_file({f"seq{i}": r.contiguous() for i, r in enumerate(ref)},
                                str(case_dir / "logits.safetensors"))
    gguf_path = case_dir / "logits_gguf.safetensors"
    if gguf_path.exists():
        gguf_path.unlink()
    sem_info = None
    if sem is not None:
        safetensors.torch.save_file({f"seq{i}": r.contiguous() for i, r in enumerate(sem[0])}, str(gguf_path))
        sem_info = {
            "llamacpp_semantics": {"config_overrides": case.gguf_semantics["config_overrides"],
                                   "why": case.gguf_semantics["why"]},
            # The GGUF's own reference: logits and greedy ids under llama.cpp's reading of the file.
            "logits": "logits_gguf.safetensors",
            "sequences": [{"greedy_ids": g[0], "min_margin": g[1], "margins": g[2], "logits_tensor": f"seq{i}"}
                          for i, g in enumerate(sem[1])],
        }

    saved_cfg = json.loads((hf_dir / "config.json").read_text())
    tc = reloaded.config.get_text_config() if hasattr(reloaded.config, "get_text_config") else reloaded.config
    n_head, n_kv = tc.num_attention_heads, tc.num_key_value_heads
    st_names = safetensors_names(hf_dir / "model.safetensors")

    extra: dict[str, Any] = {}
    if case.name == "llama-untied-default":
        emb = reloaded.get_input_embeddings().weight
        head = reloaded.get_output_embeddings().weight
        tied = emb.data_ptr() == head.data_ptr()
        extra["tie_word_embeddings_key_in_config_json"] = "tie_word_embeddings" in saved_cfg
        extra["transformers_ties_when_key_absent"] = bool(tied)
        extra["reloaded_config_tie_word_embeddings"] = bool(reloaded.config.tie_word_embeddings)
        extra["reloaded_logits_identical_to_in_memory_untied_model"] = bool(identical)
        case.notes.append(
            f"transformers {transformers.__version__} loads it with tie_word_embeddings="
            f"{reloaded.config.tie_word_embeddings} (LlamaConfig's default): lm_head.weight "
            f"{'is tied to' if tied else 'is loaded separately from'} embed_tokens.weight; reference logits "
            f"come from the reloaded model and are {'identical' if identical else 'NOT identical'} to the "
            "in-memory untied model's")
    if case.name == "gemma3-multimodal":
        prefixes = sorted({".".join(n.split(".")[:2]) for n in st_names})
        lm_prefix = "model.language_model." if any(n.startswith("model.language_model.") for n in st_names) else \
            ("language_model.model." if any(n.startswith("language_model.model.") for n in st_names) else "?")
        extra["safetensors_prefixes"] = prefixes
        extra["language_model_prefix"] = lm_prefix
        case.notes.append(
            f"transformers {transformers.__version__} builds the model as model.language_model.* / "
            "model.vision_tower.* / model.multi_modal_projector.* but saves model.safetensors with the "
            f"checkpoint names {lm_prefix}* (language model), vision_tower.* and multi_modal_projector.* "
            f"(top-level prefixes: {', '.join(prefixes)}); no lm_head.weight (tied)")
    if case.name == "phi3-longrope":
        rot = reloaded.model.rotary_emb
        extra["transformers_attention_scaling"] = float(rot.attention_scaling)
        extra["transformers_inv_freq"] = [float(x) for x in rot.inv_freq]
        base = saved_cfg["rope_theta"]
        hd = tc.hidden_size // tc.num_attention_heads
        short = [1.0 / (f * base ** (2 * i / hd)) for i, f in enumerate(LONGROPE_SHORT)]
        extra["short_factor_applies"] = bool(np.allclose(extra["transformers_inv_freq"], short, rtol=1e-6))
    if case.name in ("llama-llama3", "llama-yarn", "llama-dynamic", "llama-legacy"):
        rot = reloaded.model.rotary_emb
        extra["transformers_inv_freq"] = [float(x) for x in rot.inv_freq]
        extra["transformers_attention_scaling"] = float(rot.attention_scaling)

    gguf_file, reason = (None, None)
    if not CONVERTER.exists():
        reason = "llama.cpp converter not installed (run tools/setup/llamacpp.sh)"
    else:
        gguf_file, reason = convert_gguf(case, case_dir, log_dir)
    if gguf_file is None and case.gguf_failure_note:
        reason = f"{reason}. {case.gguf_failure_note}"
        log = log_dir / f"convert-{case.name}.log"
        hs = [l.split("chkhsh:")[1].strip() for l in log.read_text().splitlines() if "chkhsh:" in l] \
            if log.exists() else []
        if hs:
            reason += f" (chkhsh of this tokenizer: {hs[-1]})"
    gguf_info: dict[str, Any] = {"file": gguf_file, "reason": reason}
    if sem_info is not None:
        gguf_info.update(sem_info)
    if gguf_file:
        g = case_dir / gguf_file
        gguf_info["sha256"] = hashlib.sha256(g.read_bytes()).hexdigest()
        gguf_info["bytes"] = g.stat().st_size
        gguf_info.update(transformers_gguf_diff(case_dir, reloaded, seqs, ref))
        gguf_info.update(summarize_gguf(g, hf_dir, n_head, n_kv))
    else:
        gguf_info["transformers_gguf_max_abs_diff"] = None

    rec = {
        "case": case.name,
        "family": case.family,
        "model_type": saved_cfg.get("model_type"),
        "architectures": saved_cfg.get("architectures"),
        "transformers_class": case.model_cls.__name__,
        "config_style": case.style,
        "notes": case.notes,
        "extra": extra,
        "versions": vers,
        "regenerate": REGENERATE,
        "seed": seed,
        "reseeds": attempt,
        "init": {"weights_std": INIT_STD, "bias_std": BIAS_STD,
                 "norm_weights": f"neutral value (1, or 0 for (1 + w) norms) + U(-{NORM_JITTER}, {NORM_JITTER})"},
        "dtype": "float32",
        "attn_implementation": "eager",
        "bos_prepended": case.bos,
        "reload_identical_to_in_memory": bool(identical),
        "hf": {"dir": "hf", "config": saved_cfg, "safetensors_tensors": st_names},
        "logits_file": "logits.safetensors",
        "sequences": [
            {"input_ids": s, "greedy_ids": g[0], "min_margin": g[1], "margins": g[2], "logits_tensor": f"seq{i}"}
            for i, (s, g) in enumerate(zip(seqs, gre))
        ],
        "min_margin": min(g[1] for g in gre),
        "gguf": gguf_info,
    }
    (case_dir / "reference.json").write_text(json.dumps(rec, indent=1) + "\n")
    print(f"  {case.name}: done in {time.time() - t0:.1f}s, gguf={gguf_file or 'none: ' + str(reason)}", flush=True)
    return rec


def write_readme(manifest: dict, total: int, run_s: float) -> None:
    v = manifest["versions"]
    gguf_py = v.get("gguf-py (llama.cpp's, used by the converter)")
    rows = []
    for c in manifest["cases"]:
        g = "yes" if c["gguf"] else "no"
        if c["gguf"] and c.get("gguf_logits"):
            g += " (+ logits_gguf)"
        d = c.get("transformers_gguf_max_abs_diff")
        rows.append(f"| {c['name']} | {c['family']} | {c['model_type']} | {c['config_style']} | {g} | "
                    f"{'n/a' if d is None else f'{d:.3g}'} | {c['min_margin']:.3g} |")
    text = f"""# Model-family conformance checkpoints

Tiny random-weight checkpoints, one directory per case, built with Hugging Face transformers' own
config and model classes, for conformance tests of the Go models (logits within
{manifest['tolerances']['logits_abs']:g}, identical greedy ids). Everything here is generated by
`tools/reference/make_families.py`; do not edit by hand.

Regenerate (about a minute on 2 CPU cores; deterministic and seeded: a rerun on the same versions
reproduces every file byte for byte):

    {manifest['regenerate']}

`tools/setup/pyref.sh` makes the Python venv `.cache/pyref` (tools/reference/requirements.txt);
`tools/setup/llamacpp.sh` unpacks llama.cpp's `convert_hf_to_gguf.py`, its `conversion/` package and its
own gguf-py from the llama-cpp-python {v.get('llama-cpp-python')} source distribution (llama.cpp commit
{v.get('llama.cpp commit')}) into `.cache/llamacpp`; the converter runs with that gguf-py first on
PYTHONPATH. `--only CASE[,CASE]` regenerates some cases.

Versions: Python {v['python']}, torch {v['torch']}, transformers {v['transformers']}, tokenizers
{v['tokenizers']}, safetensors {v['safetensors']}, sentencepiece {v['sentencepiece']}, numpy {v['numpy']},
llama-cpp-python {v.get('llama-cpp-python')} (gguf-py {gguf_py}).

## Each case directory

- `hf/`: `save_pretrained` output (config.json, model.safetensors in float32, generation_config.json)
  plus the shared tokenizer (tokenizer.model, tokenizer.json, tokenizer_config.json). Some config.json
  files were rewritten after saving (legacy rope keys, a deleted key); each was checked to reload to the
  same logits.
- `model.gguf`: `convert_hf_to_gguf.py hf/ --outtype f32 --outfile model.gguf --model-name CASE`, where
  the converter succeeds (olmo2: it cannot, see the manifest's `gguf_reason`).
- `reference.json`: notes on what the case exercises, the saved config, `sequences` (input_ids fed
  directly, batch of one, no padding; `greedy_ids`: 8 argmax steps of a full-sequence forward, no KV
  cache, not stopping at EOS; `min_margin`: smallest top-1 minus top-2 logit gap over those steps, at
  least {MIN_MARGIN:g}), and `gguf`: the file, its metadata keys (long arrays summarized), every tensor
  with its GGUF shape (`ne`, fastest dimension first), its Hugging Face source tensor and the transform
  the converter applied (identity, `plus_one` for Gemma's (1 + w) norms, `permute(n_head)` for llama.cpp's
  Q/K row permutation, generated rope factor tensors with their values), and, informative only,
  transformers' own GGUF loader's max |logit difference| with the reasons it differs.
- `logits.safetensors`: float32 `seq0`, `seq1`, `seq2`, each [seq_len, {VOCAB}]: transformers' logits at every
  position, computed from the reloaded `hf/` folder with eager attention.
- `logits_gguf.safetensors` (mistral, gemma2; the manifest's `gguf_logits`): logits for the same weights
  under what llama.cpp reads from the GGUF where the GGUF lacks a Hugging Face setting
  (`gguf.llamacpp_semantics` in reference.json; their greedy ids are `gguf.sequences`).

## Cases

| case | family | model_type | config style | GGUF | transformers GGUF max diff | min margin |
| --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

Total size (without this README): {total / 2**20:.2f} MiB. The tokenizer is one SentencePiece BPE model (vocab {VOCAB},
`<unk>`=0, `<s>`=1, `</s>`=2, `<pad>`=3, then `<start_of_image>`, `<end_of_image>`,
`<image_soft_token>`) trained on a generated corpus and shared by every case; the input sequences are
token ids of generated text, with `<s>` first for the families that use a BOS token.
"""
    (OUT_ROOT / "README.md").write_text(text)


def dir_size(p: Path, skip: str = "") -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and f.name != skip)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    args = ap.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - {c.name for c in CASES}
    if unknown:
        raise SystemExit(f"unknown cases: {sorted(unknown)}")

    t_start = time.time()
    vers = versions()
    OUT_ROOT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="make_families-"))
    log_dir = work / "logs"
    log_dir.mkdir()
    tok = build_tokenizer(work / "tok")
    base_seqs = make_sequences(tok["sp"])
    print(f"tokenizer: SentencePiece BPE, vocab {VOCAB}, sha256 {tok['sha256']}", flush=True)

    manifest_path = OUT_ROOT / "manifest.json"
    old = {}
    if only and manifest_path.exists():
        old = {c["name"]: c for c in json.loads(manifest_path.read_text())["cases"]}

    entries = []
    for case in CASES:
        if only and case.name not in only:
            if case.name in old:
                entries.append(old[case.name])
            continue
        print(f"case {case.name}", flush=True)
        rec = run_case(case, tok, base_seqs, vers, log_dir)
        g = rec["gguf"]
        entries.append({
            "name": case.name,
            "family": case.family,
            "model_type": rec["model_type"],
            "transformers_class": rec["transformers_class"],
            "dir": f"testdata/reference/families/{case.name}",
            "hf": f"testdata/reference/families/{case.name}/hf",
            "reference": f"testdata/reference/families/{case.name}/reference.json",
            "logits": f"testdata/reference/families/{case.name}/logits.safetensors",
            "gguf": f"testdata/reference/families/{case.name}/{g['file']}" if g["file"] else None,
            "gguf_reason": g["reason"],
            # Relative to dir: the logits the GGUF is compared with where they differ from logits.safetensors
            # (llama.cpp reads the GGUF differently from the folder's config; see gguf.llamacpp_semantics).
            "gguf_logits": g.get("logits"),
            "gguf_arch": (g.get("metadata") or {}).get("general.architecture"),
            "transformers_gguf_max_abs_diff": g.get("transformers_gguf_max_abs_diff"),
            "config_style": case.style,
            "bos_prepended": case.bos,
            "min_margin": rec["min_margin"],
            "exercises": case.notes,
        })
    manifest = {
        "description": "Tiny random-weight checkpoints of each model family (Hugging Face folder + llama.cpp GGUF) "
                       "with transformers' reference logits and greedy ids, for conformance tests of the Go models.",
        "regenerate": REGENERATE,
        "versions": vers,
        "tokenizer": {"kind": "SentencePiece BPE trained on a generated English corpus (tools/reference/make_families.py)",
                      "vocab_size": VOCAB, "ids": {"<unk>": 0, "<s>": BOS, "</s>": EOS, "<pad>": PAD,
                                                  "<start_of_image>": 4, "<end_of_image>": 5, "<image_soft_token>": 6},
                      "tokenizer_model_sha256": tok["sha256"],
                      "hf_files": ["tokenizer.model", "tokenizer.json (transformers LlamaTokenizer conversion)",
                                   "tokenizer_config.json (add_bos_token set per case)"]},
        "tolerances": {"logits_abs": 1e-4, "greedy_ids": "identical"},
        "cases": entries,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    run_s = time.time() - t_start
    write_readme(manifest, dir_size(OUT_ROOT, skip="README.md"), run_s)
    total = dir_size(OUT_ROOT)
    print(f"total size of {OUT_ROOT.relative_to(REPO_ROOT)}: {total} bytes ({total / 2**20:.2f} MiB)")
    print(f"run time: {run_s:.1f}s")


if __name__ == "__main__":
    main()
