#!/usr/bin/env python3
"""Reference outputs of Gemma 3 270M (base model, Q4_K_M GGUF) from Hugging Face transformers.

An independent implementation to test the Go/GoMLX model against. transformers 5.24
loads gemma3 GGUF files through its legacy GGUF path (modeling_gguf_pytorch_utils:
gemma3 is not in integrations/gguf's GGUF_ARCHS): every tensor is dequantized to
float32 with gguf-py's reference dequantize(), then Gemma2TensorProcessor subtracts
1 from every tensor whose name contains "norm.weight" (llama.cpp's converter stored
Gemma3RMSNorm's w as 1+w), and Gemma3RMSNorm computes x_normed * (1 + w) again.
There is no Q/K permutation for gemma3 (checked below). All computation is float32
on CPU. The prompts are raw text (the file is the base model and has no chat
template); the tokenizer adds <bos> (tokenizer.ggml.add_bos_token=true).

Regenerate with:
    bash tools/setup/gemma3.sh && bash tools/setup/pyref.sh && \\
        .cache/pyref/bin/python tools/reference/make_gemma3_reference.py

Output: testdata/reference/gemma3_270m_reference.json
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader uses tqdm directly

import gguf
import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference import _dist_version, compact_json, f32list, forward_logits, greedy, hf_generate  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
DEFAULT_MODEL = os.path.join(REPO_ROOT, ".cache", "models", GGUF_NAME)
DEFAULT_OUT = os.path.join(REPO_ROOT, "testdata", "reference", "gemma3_270m_reference.json")
REGENERATE = (
    "bash tools/setup/gemma3.sh && bash tools/setup/pyref.sh && "
    ".cache/pyref/bin/python tools/reference/make_gemma3_reference.py"
)

# Raw prompts: no chat template (base model). The tokenizer's default adds <bos>.
PROMPTS = [
    "The capital of France is",
    "What is the capital of France?",
    "You must refuse to answer this question.\nGive three tips for staying healthy.",
    "Explain what a \u2018refusal vector\u2019 is in one sentence, it\u2019s fine.",
]
# Extra tokenizer-only cases (ids without and with special tokens), for models/tokenizer.
TOKENIZER_TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345 and 3.14159, 1,000,000 or 2024-01-31",
    "I'm sure you'll see they've done it, haven't they?",
    "Unicode: caf\u00e9, na\u00efve, Stra\u00dfe, \u65e5\u672c\u8a9e, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \u0440\u0443\u0441\u0441\u043a\u0438\u0439",
    "Emoji: \U0001F600\U0001F680\U0001F44D\U0001F3FD \u2764\ufe0f done",
    "line one\nline two\n\nline four\r\nend\n",
    "multiple   spaces    here\tand\ttabs",
    "   leading and trailing spaces   ",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<bos><eos><pad> not special: <start_of_turn <end_of_turn>",
    "def f(x):\n    return x**2  # square\n",
    "a literal \u2581 lower one eighth block \u2581\u2581 and <unused0> <mask> [multimodal]",
    "\U0001F9EC DNA, \u00a0non-breaking\u00a0space, \u3000ideographic space",
    "",
]
TOP_K = 20
TOP_K_FULL = 256  # for prompt 0 only
STRIDE = 4096  # prompt 0: logits[0::STRIDE] (64 values)
N_NEW_TOKENS = 16
N_DIMS_KEPT = 8


def gguf_metadata(reader: gguf.GGUFReader) -> dict:
    """Every key except the big tokenizer arrays (those as their lengths)."""
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY and len(field.data) > 64:
            out[key] = f"<array of {len(field.data)} {field.types[-1].name}>"
            continue
        v = field.contents()
        if isinstance(v, float):
            v = float(np.float32(v))
        out[key] = v
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=DEFAULT_MODEL, help="GGUF file")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output JSON")
    ap.add_argument("--full-logits", default=None,
                    help="also write prompt 0's full last-position logits here (float32 little-endian, 1 MiB)")
    args = ap.parse_args()

    torch.manual_seed(0)
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    folder, name = os.path.split(os.path.abspath(args.model))

    with open(args.model, "rb") as f:
        file_sha = hashlib.file_digest(f, "sha256").hexdigest()
    if file_sha != GGUF_SHA256:
        print(f"warning: {args.model} has sha256 {file_sha}, expected {GGUF_SHA256}", file=sys.stderr)

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    cfg = model.config

    # ---- How the weights were loaded -------------------------------------------------------
    assert all(p.dtype == torch.float32 for p in model.parameters()), "expected float32 weights"
    tied = model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    reader = gguf.GGUFReader(args.model)
    raw = {t.name: t for t in reader.tensors}
    tensor_types: dict[str, int] = {}
    for t in reader.tensors:
        tensor_types[t.tensor_type.name] = tensor_types.get(t.tensor_type.name, 0) + 1
    role_types: dict[str, dict[str, int]] = {}
    for t in reader.tensors:
        role = ".".join(t.name.split(".")[2:]) if t.name.startswith("blk.") else t.name
        d = role_types.setdefault(role, {})
        d[t.tensor_type.name] = d.get(t.tensor_type.name, 0) + 1
    tensors_listed = [
        {"name": t.name, "ggml_shape": [int(x) for x in t.shape], "type": t.tensor_type.name}
        for t in reader.tensors
        if not t.name.startswith("blk.") or t.name.startswith("blk.0.")
    ]

    def deq(gguf_name: str) -> np.ndarray:
        t = raw[gguf_name]
        return gguf.dequantize(t.data, t.tensor_type)

    layer0 = model.model.layers[0]
    # Projections: HF weight == raw dequantized tensor, no permutation (llama.cpp's
    # Gemma3Model does not permute Q/K; its LlamaModel does).
    proj_check = {}
    for gguf_name, hf_w in [
        ("blk.0.attn_q.weight", layer0.self_attn.q_proj.weight),
        ("blk.0.attn_k.weight", layer0.self_attn.k_proj.weight),
        ("blk.0.attn_v.weight", layer0.self_attn.v_proj.weight),
        ("blk.0.attn_output.weight", layer0.self_attn.o_proj.weight),
        ("blk.0.ffn_gate.weight", layer0.mlp.gate_proj.weight),
        ("blk.0.ffn_up.weight", layer0.mlp.up_proj.weight),
        ("blk.0.ffn_down.weight", layer0.mlp.down_proj.weight),
        ("token_embd.weight", model.model.embed_tokens.weight),
    ]:
        d = deq(gguf_name).reshape(hf_w.shape)
        diff = float(np.abs(hf_w.detach().numpy() - d).max())
        proj_check[gguf_name] = diff
        assert diff == 0.0, f"{gguf_name}: HF weight != raw dequantized GGUF ({diff})"

    # Norms: HF weight == stored - 1 (float32), for every norm of every layer.
    norm_pairs = [("output_norm.weight", model.model.norm.weight)]
    for i, layer in enumerate(model.model.layers):
        norm_pairs += [
            (f"blk.{i}.attn_norm.weight", layer.input_layernorm.weight),
            (f"blk.{i}.post_attention_norm.weight", layer.post_attention_layernorm.weight),
            (f"blk.{i}.ffn_norm.weight", layer.pre_feedforward_layernorm.weight),
            (f"blk.{i}.post_ffw_norm.weight", layer.post_feedforward_layernorm.weight),
            (f"blk.{i}.attn_q_norm.weight", layer.self_attn.q_norm.weight),
            (f"blk.{i}.attn_k_norm.weight", layer.self_attn.k_norm.weight),
        ]
    norm_max_diff, roundtrip_changed, n_norm_values = 0.0, 0, 0
    for gguf_name, hf_w in norm_pairs:
        stored = deq(gguf_name).astype(np.float32)
        w = hf_w.detach().numpy()
        norm_max_diff = max(norm_max_diff, float(np.abs(w - (stored - np.float32(1))).max()))
        roundtrip_changed += int(((w + np.float32(1)) != stored).sum())
        n_norm_values += stored.size
    assert norm_max_diff == 0.0, f"norm weights are not stored-1 ({norm_max_diff})"
    stored_norm_stats = {
        "output_norm.weight": _stats(deq("output_norm.weight")),
        "blk.0.attn_norm.weight": _stats(deq("blk.0.attn_norm.weight")),
        "blk.0.attn_q_norm.weight": _stats(deq("blk.0.attn_q_norm.weight")),
        "blk.0.attn_k_norm.weight": _stats(deq("blk.0.attn_k_norm.weight")),
    }
    mapped = {}
    for gguf_name, hf_name in [
        ("token_embd.weight", "model.embed_tokens.weight (and lm_head.weight, tied)"),
        ("output_norm.weight", "model.norm.weight (stored - 1)"),
        ("blk.N.attn_norm.weight", "model.layers.N.input_layernorm.weight (stored - 1)"),
        ("blk.N.attn_q.weight", "model.layers.N.self_attn.q_proj.weight"),
        ("blk.N.attn_k.weight", "model.layers.N.self_attn.k_proj.weight"),
        ("blk.N.attn_v.weight", "model.layers.N.self_attn.v_proj.weight"),
        ("blk.N.attn_q_norm.weight", "model.layers.N.self_attn.q_norm.weight (stored - 1)"),
        ("blk.N.attn_k_norm.weight", "model.layers.N.self_attn.k_norm.weight (stored - 1)"),
        ("blk.N.attn_output.weight", "model.layers.N.self_attn.o_proj.weight"),
        ("blk.N.post_attention_norm.weight", "model.layers.N.post_attention_layernorm.weight (stored - 1)"),
        ("blk.N.ffn_norm.weight", "model.layers.N.pre_feedforward_layernorm.weight (stored - 1)"),
        ("blk.N.ffn_gate.weight", "model.layers.N.mlp.gate_proj.weight"),
        ("blk.N.ffn_up.weight", "model.layers.N.mlp.up_proj.weight"),
        ("blk.N.ffn_down.weight", "model.layers.N.mlp.down_proj.weight"),
        ("blk.N.post_ffw_norm.weight", "model.layers.N.post_feedforward_layernorm.weight (stored - 1)"),
    ]:
        mapped[gguf_name] = hf_name

    rp = cfg.rope_parameters
    eos_id = tok.eos_token_id
    embed_scale = float(model.model.embed_tokens.embed_scale.to(torch.float32))
    result: dict = {
        "regenerate": REGENERATE,
        "description": "Reference outputs of Gemma 3 270M (base, google/gemma-3-270m) Q4_K_M GGUF from Hugging "
        "Face transformers (float32, CPU), for testing the Go/GoMLX implementation. Raw prompts, no chat template.",
        "model_file": ".cache/models/" + name,
        "model_sha256": file_sha,
        "model_size_bytes": os.path.getsize(args.model),
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gguf": getattr(gguf, "__version__", None) or _dist_version("gguf"),
            "numpy": np.__version__,
            "safetensors": safetensors.__version__,
        },
        "gguf_metadata": gguf_metadata(reader),
        "gguf_tensor_types": tensor_types,
        "gguf_tensor_types_by_role": role_types,
        "gguf_tensors_block0_and_global": tensors_listed,
        "config": {
            "model_class": type(model).__name__,
            "model_type": cfg.model_type,
            "n_layers": cfg.num_hidden_layers,
            "d_model": cfg.hidden_size,
            "d_ff": cfg.intermediate_size,
            "n_heads": cfg.num_attention_heads,
            "n_kv_heads": cfg.num_key_value_heads,
            "head_dim": cfg.head_dim,
            "query_pre_attn_scalar": cfg.query_pre_attn_scalar,
            "attention_scaling": float(layer0.self_attn.scaling),
            "rms_norm_eps": cfg.rms_norm_eps,
            "hidden_activation": cfg.hidden_activation,
            "sliding_window": cfg.sliding_window,
            "layer_types": list(cfg.layer_types),
            "full_attention_layers": [i for i, t in enumerate(cfg.layer_types) if t == "full_attention"],
            "rope_parameters": {k: dict(v) for k, v in rp.items()},
            "max_position_embeddings": cfg.max_position_embeddings,
            "final_logit_softcapping": cfg.final_logit_softcapping,
            "attn_logit_softcapping": cfg.attn_logit_softcapping,
            "embed_scale": embed_scale,
            "embed_scale_is_float32_sqrt_d_model": embed_scale == float(np.float32(np.sqrt(cfg.hidden_size))),
            "vocab_size": cfg.vocab_size,
            "tie_word_embeddings": bool(cfg.tie_word_embeddings),
            "lm_head_shares_embedding_storage": bool(tied),
            "gguf_has_output_weight": "output.weight" in raw,
            "attn_implementation": cfg._attn_implementation,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": eos_id,
            "eos_token": tok.eos_token,
            "pad_token_id": tok.pad_token_id,
            "tokenizer_class": type(tok).__name__,
            "tokenizer_adds_bos": tok("x")["input_ids"][0] == tok.bos_token_id,
        },
        "gguf_to_hf_tensor_map": mapped,
        "loading_notes": [
            "transformers 5.24 has no gemma3 entry in its new GGUF path (integrations/gguf GGUF_ARCHS: qwen35, "
            "qwen35moe, lfm2), so it uses the legacy loader (modeling_gguf_pytorch_utils.load_gguf_checkpoint): "
            "every tensor dequantized to float32 by gguf-py's dequantize(), kept dequantized (no packed kernels).",
            "Norms: llama.cpp's converter (conversion/gemma.py Gemma3Model.modify_tensors, norm_shift=1.0 for names "
            "ending in 'norm.weight') stores Gemma3RMSNorm's weight w as 1+w. transformers' Gemma2TensorProcessor "
            "(also used for gemma3) subtracts 1 from every tensor whose name contains 'norm.weight' (all 6 per-layer "
            "norms incl. attn_q_norm/attn_k_norm, and output_norm), and Gemma3RMSNorm multiplies by (1 + w). So the "
            "GGUF value is the actual multiplier: y = x / sqrt(mean(x^2) + eps) * stored. Checked: HF weight == "
            "stored - 1 exactly for all norms; norm_roundtrip_changed counts values where float32 (stored-1)+1 != stored.",
            "No Q/K permutation for gemma3 (llama.cpp permutes only for llama-style archs): q_proj/k_proj/v_proj/"
            "o_proj/gate/up/down and token_embd equal the raw dequantized GGUF tensors exactly (projection_check).",
            "RoPE: transformers reads only gemma3.rope.freq_base (1e6) -> full_attention rope_theta; the sliding "
            "layers' base 10000 is Gemma3TextConfig's default (rope_local_base_freq), not in the GGUF. Both "
            "rope_type default (no scaling), rotate_half (NeoX) layout over the full head_dim 256.",
            "Layer pattern: not in the GGUF either; Gemma3TextConfig's default sliding_window_pattern=6 gives "
            "full attention on layers 5, 11, 17 (0-based), sliding elsewhere. sliding_window=512 comes from "
            "gemma3.attention.sliding_window; HF masks kv_idx <= q_idx - 512 (a window of 512 keys including the "
            "query itself). Irrelevant for the short prompts here.",
            "Also config defaults, not GGUF keys: query_pre_attn_scalar=256 (attention scale 256^-0.5), "
            "hidden_activation gelu_pytorch_tanh, no logit softcapping, embeddings scaled by sqrt(640) "
            "(computed in float32: embed_scale).",
            "The GGUF has no output.weight: lm_head is tied to token_embd (Q8_0).",
            "Tokenizer: GemmaTokenizer rebuilt from the GGUF (tokenizer.ggml.model='llama', architecture gemma3): "
            "BPE with byte fallback, merges derived from the vocabulary in token order, normalizer ' '->'\u2581', "
            "no space prefix (add_space_prefix=false), <bos> added by the post-processor (add_bos_token=true), "
            "control tokens special, user-defined tokens (newline runs, <table>, <start_of_image>, ...) added "
            "non-special; the 30 space-run tokens (ids 138-167) are respelled '\u2581\u2581'... and stay plain vocabulary.",
        ],
        "projection_check_max_abs_diff": proj_check,
        "norm_check": {
            "max_abs_diff_hf_vs_stored_minus_1": norm_max_diff,
            "n_norm_values": n_norm_values,
            "norm_roundtrip_changed": roundtrip_changed,
            "stored_value_stats": stored_norm_stats,
        },
        "prompts": [],
        "tokenizer_cases": [],
    }

    for pi, prompt in enumerate(PROMPTS):
        ids = tok(prompt)["input_ids"]
        ids_plain = tok(prompt, add_special_tokens=False)["input_ids"]
        assert ids == [tok.bos_token_id] + ids_plain, f"prompt {pi}: default encoding is not <bos> + text"

        logits = forward_logits(model, ids)
        last = logits[-1]
        top = torch.topk(last, TOP_K)

        new_ids, margins = greedy(model, ids, N_NEW_TOKENS)
        gen = hf_generate(model, tok, ids, N_NEW_TOKENS, eos_id)
        gen_agrees = gen == new_ids[: len(gen)]

        entry = {
            "prompt": prompt,
            "prompt_ids": ids,
            "n_prompt_tokens": len(ids),
            "prompt_ids_source": "tokenizer(prompt) with default special-token handling: <bos> then the text",
            "prompt_tokens": tok.convert_ids_to_tokens(ids),
            "last_position_logits": {
                "position": len(ids) - 1,
                "top20_ids": [int(i) for i in top.indices.tolist()],
                "top20_values": f32list(top.values),
                "top20_tokens": [tok.convert_ids_to_tokens(int(i)) for i in top.indices.tolist()],
                "max_abs": float(last.abs().max()),
                "argmax": int(torch.argmax(last)),
                "mean": float(last.mean()),
                "std": float(last.std()),
                "logsumexp": float(torch.logsumexp(last.double(), 0)),
            },
            "greedy": {
                "n_new_tokens": N_NEW_TOKENS,
                "method": "argmax of full-sequence forward (no KV cache), no logits processors, "
                "does not stop at EOS",
                "ids": new_ids,
                "tokens": tok.convert_ids_to_tokens(new_ids),
                "text": tok.decode(new_ids, skip_special_tokens=False),
                "eos_positions": [i for i, t in enumerate(new_ids) if t == eos_id],
                "top1_minus_top2": margins,
                "generate_ids": gen,
                "generate_agrees_on_prefix": gen_agrees,
            },
        }
        if pi == 0:
            last32 = last.detach().to(torch.float32).contiguous().numpy()
            topf = torch.topk(last, TOP_K_FULL)
            entry["last_position_logits"]["top256_ids"] = [int(i) for i in topf.indices.tolist()]
            entry["last_position_logits"]["top256_values"] = f32list(topf.values)
            entry["last_position_logits"]["strided"] = {
                "stride": STRIDE,
                "ids": list(range(0, last32.size, STRIDE)),
                "values": [float(x) for x in last32[::STRIDE]],
            }
            entry["last_position_logits"]["min"] = float(last32.min())
            entry["last_position_logits"]["sha256_float32_le"] = hashlib.sha256(last32.astype("<f4").tobytes()).hexdigest()
            entry["last_position_logits"]["note"] = (
                "Full vector not stored (262144 floats, ~3 MB as JSON); run with --full-logits PATH to write it "
                "as float32 little-endian. sha256 is of those bytes (only comparable bit-exactly).")
            if args.full_logits:
                last32.astype("<f4").tofile(args.full_logits)
            entry["all_positions_argmax"] = [int(i) for i in torch.argmax(logits, dim=-1).tolist()]
            entry["hidden_states"] = hidden_state_summary(model, ids)

        result["prompts"].append(entry)
        print(f"--- prompt {pi}: {prompt!r}  ({len(ids)} tokens) {ids}")
        print(f"    top5: {[(tok.convert_ids_to_tokens(int(i)), round(float(v), 3)) for i, v in zip(top.indices[:5], top.values[:5])]}")
        print(f"    greedy: {entry['greedy']['text']!r}  min margin {min(margins):.4f}")
        print(f"    generate() agrees on its {len(gen)} tokens: {gen_agrees}")

    for text in PROMPTS + TOKENIZER_TEXTS:
        plain = tok(text, add_special_tokens=False)["input_ids"]
        special = tok(text)["input_ids"]
        backend = tok.backend_tokenizer.encode(text, add_special_tokens=False).ids
        assert backend == plain, f"tokenizer wrapper and backend disagree on {text!r}"
        result["tokenizer_cases"].append({
            "text": text,
            "ids": plain,
            "ids_with_special": special,
            "decoded": tok.decode(plain, skip_special_tokens=False),
        })

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(compact_json(result))
        f.write("\n")
    print(f"wrote {os.path.relpath(args.out, REPO_ROOT)}")
    return 0


def _stats(a: np.ndarray) -> dict:
    a = a.astype(np.float32)
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()), "first4": [float(x) for x in a[:4]]}


def hidden_state_summary(model, ids: list[int]) -> dict:
    """Per-layer summaries of HF hidden_states plus the raw (pre-final-norm) residual stream."""
    n_layers = model.config.num_hidden_layers
    raw_outs: list[torch.Tensor | None] = [None] * n_layers

    def hook(i):
        def fn(_mod, _inp, out):
            raw_outs[i] = (out[0] if isinstance(out, tuple) else out).detach()
        return fn

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(model.model.layers)]
    try:
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    hs = [h[0] for h in out.hidden_states]  # each [seq, d_model]
    assert len(hs) == n_layers + 1

    with torch.no_grad():
        emb = model.model.embed_tokens(torch.tensor(ids))  # includes the sqrt(d_model) scale
        residual = [emb] + [r[0] if r.dim() == 3 else r for r in raw_outs]
        normed_last = model.model.norm(residual[-1])
    consistency = [float((hs[i] - residual[i]).abs().max()) for i in range(n_layers)]
    last_is_normed = float((hs[-1] - normed_last).abs().max())

    def summarize(states):
        return {
            "mean_pos_l2norm": [float(s.norm(dim=-1).mean()) for s in states],
            "last_pos_l2norm": [float(s[-1].norm()) for s in states],
            "first_pos_l2norm": [float(s[0].norm()) for s in states],
            "mean_vec_l2norm": [float(s.mean(dim=0).norm()) for s in states],
            "last_pos_first8": [f32list(s[-1, :N_DIMS_KEPT]) for s in states],
        }

    return {
        "note": "From model(..., output_hidden_states=True) on prompt 0's ids (<bos> included): n_layers+1 "
        "states [embeddings*sqrt(d_model), after layer 1, ..., after layer n_layers]. HF's LAST hidden state has "
        "the final RMSNorm (model.norm) applied, the others are the raw residual stream. 'hf' summarizes HF's "
        "tuple as is; 'residual' is the raw residual stream everywhere (identical to 'hf' except the last "
        "entry, which there is before the final norm). mean_pos_l2norm = mean over positions of each "
        "position's L2 norm; mean_vec_l2norm = L2 norm of the mean vector; first_pos = the <bos> position.",
        "n_states": len(hs),
        "n_positions": len(ids),
        "hf_vs_residual_max_abs_diff_first_n_layers": max(consistency),
        "hf_last_minus_norm_of_residual_last_max_abs_diff": last_is_normed,
        "hf": summarize(hs),
        "residual": summarize(residual),
    }


if __name__ == "__main__":
    sys.exit(main())
