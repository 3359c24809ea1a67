#!/usr/bin/env python3
"""Workload W0 the way a researcher would run it with Hugging Face transformers:
the speed anchor that `make bench` (cmd/bench) times refusalkit against.

The plan (a JSON file cmd/bench writes) fixes the work, so both sides do the
same: the model, the extraction's queries and refusal instruction, the
sampling settings, the refusal markers, the validation and test
instructions, the coefficients and the refusal tokens. Everything else is
transformers' own: its GGUF loader, its chat template, its tokenizer.

Phases, each timed:
  extraction
    load            AutoModelForCausalLM.from_pretrained(gguf_file=...), float32
    generation      model.generate with sampling, batch_size rows at a time
                    (n_completions rows per query), left-padded, per mode
    activations     one forward pass with output_hidden_states per kept
                    response; the mean over its response tokens at every layer
  evaluation
    layer_selection the steering score of every steerable layer: a forward
                    pre-hook adds v[l] to the stream entering block l, a full
                    forward pass per layer and batch; the score is the log-odds
                    of the refusal tokens at the last prompt position
    validation_side_effects  greedy unsteered continuations of the validation
                    prompts, then the mean KL (steered at the selected layer,
                    coefficient 1, against clean, teacher-forced)
    coefficient_sweep  greedy steered generation of the test prompts at every
                    coefficient, then each continuation's KL and perplexity
                    (a clean and a steered teacher-forced pass)

It prints one line per phase and, as its last line, a JSON object with the
seconds of every phase.

    .cache/pyref/bin/python tools/reference/hf_w0.py --plan PLAN.json [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Profile:
    """Where each phase's time goes in transformers: the model's forward calls,
    as passes over several positions (prompts, teacher-forced sequences) and
    decoding steps over one, their positions and left padding, the rows
    generate kept stepping after they had finished, and the time spent inside
    the calls (the rest is generate's sampling and Python around it)."""

    def __init__(self, model) -> None:
        self.phase = None
        self.stats: dict[str, dict[str, float]] = {}
        model.register_forward_pre_hook(self._before, with_kwargs=True)
        model.register_forward_hook(self._after, with_kwargs=True)

    def add(self, key: str, n: float) -> None:
        if self.phase is not None:
            st = self.stats.setdefault(self.phase, {})
            st[key] = st.get(key, 0) + n

    def _before(self, module, args, kwargs):
        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        B, S = ids.shape
        if S == 1:
            self.add("decode_steps", 1)
            self.add("decode_rows", B)
        else:
            self.add("passes", 1)
            self.add("pass_positions", B * S)
            if mask is not None:
                self.add("pass_padding", int((mask[:, -S:] == 0).sum()))
        self.t0 = time.perf_counter()

    def _after(self, module, args, kwargs, output):
        self.add("forward_s", time.perf_counter() - self.t0)

    def print(self, seconds: dict[str, float]) -> None:
        log("hf_w0: where transformers' time went (passes: prompt and teacher-forced forward calls; "
            "steps: decoding steps; forward s: inside the model's forward calls)")
        log(f"{'phase':>24} {'wall s':>8} {'passes':>7} {'pass pad':>9} {'steps':>7} {'rows':>7} {'idle':>6} "
            f"{'forward s':>10} {'other s':>8}")
        for phase, st in self.stats.items():
            pct = lambda a, b: f"{100 * st.get(a, 0) / st[b]:.0f}%" if st.get(b) else "-"
            log(f"{phase:>24} {seconds[phase]:8.1f} {st.get('passes', 0):7.0f} {pct('pass_padding', 'pass_positions'):>9} "
                f"{st.get('decode_steps', 0):7.0f} {st.get('decode_rows', 0):7.0f} {pct('idle_rows', 'decode_rows'):>6} "
                f"{st.get('forward_s', 0):10.1f} {seconds[phase] - st.get('forward_s', 0):8.1f}")


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.profile: Profile | None = None

    def __call__(self, name: str):
        timer = self

        class _T:
            def __enter__(self):
                if timer.profile is not None:
                    timer.profile.phase = name
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                timer.seconds[name] = timer.seconds.get(name, 0.0) + time.perf_counter() - self.t0
                if timer.profile is not None:
                    timer.profile.phase = None
                log(f"hf_w0: {name}: {timer.seconds[name]:.1f} s")

        return _T()


def batches(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def encode(tok, messages):
    """Chat-templated prompts, left-padded into one batch."""
    texts = [tok.apply_chat_template([{"role": "user", "content": m}], add_generation_prompt=True, tokenize=False)
             for m in messages]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def is_refusal(text: str, markers: list[str]) -> bool:
    t = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return any(m.lower() in t for m in markers)


def strip_stop(ids: list[int], stops: set[int]) -> list[int]:
    out = []
    for i in ids:
        if i in stops:
            break
        out.append(i)
    return out


def generate(model, tok, messages, plan, greedy: bool, max_new_tokens: int, profile: Profile):
    """Reply ids per message, batch_size at a time."""
    stops = plan["stop_token_ids"]
    replies = []
    for chunk in batches(messages, plan["batch_size"]):
        enc = encode(tok, chunk)
        kw = dict(max_new_tokens=max_new_tokens, eos_token_id=stops, pad_token_id=tok.pad_token_id)
        if greedy:
            kw.update(do_sample=False)
        else:
            s = plan["sampling"]
            kw.update(do_sample=True, temperature=s["temperature"], top_p=s["top_p"], top_k=s["top_k"])
        with torch.inference_mode():
            out = model.generate(**enc, **kw)
        P = enc["input_ids"].shape[1]
        steps = out.shape[1] - P - 1  # decoding steps after the prefill: the last token is sampled, not fed
        for row, mask in zip(out, enc["attention_mask"]):
            prompt = row[:P][mask.bool()].tolist()
            reply = strip_stop(row[P:].tolist(), set(stops))
            replies.append((prompt, reply))
            profile.add("idle_rows", max(0, steps - len(reply)))  # steps fed after its stop token
    return replies


def steering_hook(vec: torch.Tensor):
    def hook(module, args, kwargs):
        return (args[0] + vec.to(args[0].dtype),) + args[1:], kwargs  # in the model's dtype, as refusalkit adds it
    return hook


def refusal_score(logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """log P(refusal tokens) - log P(other tokens), per row of [B, vocab] logits."""
    lp = torch.log_softmax(logits.double(), dim=-1)
    mask = torch.zeros(logits.shape[-1], dtype=torch.bool)
    mask[ids] = True
    ref = torch.logsumexp(lp[:, mask], dim=-1)
    other = torch.logsumexp(lp[:, ~mask], dim=-1)
    return ref - other


def teacher_forced(model, seqs, layers, steer_layer=None, vec=None):
    """Log-probabilities of every continuation token: seqs are (prompt, reply) id lists."""
    handle = None
    if steer_layer is not None:
        handle = layers[steer_layer].register_forward_pre_hook(steering_hook(vec), with_kwargs=True)
    try:
        full = [p + r for p, r in seqs]
        T = max(len(f) for f in full)
        ids = torch.zeros(len(full), T, dtype=torch.long)
        mask = torch.zeros(len(full), T, dtype=torch.long)
        for i, f in enumerate(full):  # left padding, as generation
            ids[i, T - len(f):] = torch.tensor(f)
            mask[i, T - len(f):] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        out = []
        for i, (p, r) in enumerate(seqs):
            start = T - len(r) - 1  # the position predicting the first reply token
            out.append(torch.log_softmax(logits[i, start:T - 1].double(), dim=-1))
        return out
    finally:
        if handle is not None:
            handle.remove()


def side_effects(model, seqs, layers, layer, vec, batch_size):
    """Per sequence: mean KL(clean || steered) over the reply (refusalkit's direction), and the clean perplexity."""
    results = []
    for chunk in batches(seqs, batch_size):
        chunk = [s if s[1] else (s[0], [0]) for s in chunk]  # an empty reply: score one token
        clean = teacher_forced(model, chunk, layers)
        steered = teacher_forced(model, chunk, layers, layer, vec)
        for (p, r), c, s in zip(chunk, clean, steered):
            kl = (c.exp() * (c - s)).sum(-1).mean().item()
            nll = -c[torch.arange(len(r)), torch.tensor(r)].mean().item()
            results.append((kl, float(torch.tensor(nll).exp())))
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", required=True, help="the JSON plan cmd/bench writes")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: the cores)")
    args = ap.parse_args()
    with open(args.plan) as f:
        plan = json.load(f)
    torch.set_num_threads(args.threads)
    torch.manual_seed(plan["seed"])
    t = Timer()

    with t("load"):
        path = os.path.abspath(plan["model_path"])
        if os.path.isdir(path):  # a Hugging Face checkpoint folder
            folder, kw = path, {}
        else:  # a GGUF file: transformers dequantizes it to float32
            folder, name = os.path.split(path)
            kw = {"gguf_file": name}
        tok = AutoTokenizer.from_pretrained(folder, **kw)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        # The dtype refusalkit ran in (a GGUF is dequantised to float32 first, then cast).
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[plan.get("dtype") or "float32"]
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kw)
        model.eval()
    layers = model.model.layers
    profile = Profile(model)
    t.profile = profile

    # Extraction: generation in both modes, the judge, the per-layer means.
    kept = {}
    for mode in ("compliant", "refusal"):
        messages = plan[mode + "_messages"]  # one per row: each query n_completions times
        with t("generation"):
            replies = generate(model, tok, messages, plan, greedy=False, max_new_tokens=plan["max_new_tokens"], profile=profile)
        want = mode == "refusal"
        kept[mode] = [(p, r) for p, r in replies if r and is_refusal(tok.decode(r, skip_special_tokens=True),
                                                                        plan["refusal_substrings"]) == want]
        log(f"hf_w0: {mode}: kept {len(kept[mode])}/{len(replies)}")
        if not kept[mode]:  # the work timed stays the same; only the vector would be meaningless
            log(f"hf_w0: no {mode} response kept: every one stands in")
            kept[mode] = [(p, r) for p, r in replies if r]
    means = {}
    with t("activations"):
        for mode, seqs in kept.items():
            acc = None
            for p, r in seqs:
                ids = torch.tensor([p + r])
                with torch.inference_mode():
                    hs = model(input_ids=ids, output_hidden_states=True).hidden_states
                m = torch.stack([h[0, len(p):].double().mean(0) for h in hs])  # [n_layers+1, d_model]
                acc = m if acc is None else acc + m
            means[mode] = acc / max(1, len(seqs))
    vector = (means["refusal"] - means["compliant"]).float()  # [n_layers+1, d_model]

    # Evaluation: layer selection, the validation side effects, the sweep.
    ref_ids = plan["refusal_token_ids"]
    B = plan["batch_size"]
    with t("layer_selection"):
        base, per_layer = [], [[] for _ in range(len(layers))]
        for chunk in batches(plan["validation"], B):
            enc = encode(tok, chunk)
            with torch.inference_mode():
                base += refusal_score(model(**enc).logits[:, -1], ref_ids).tolist()
                for l in range(len(layers)):
                    h = layers[l].register_forward_pre_hook(steering_hook(vector[l]), with_kwargs=True)
                    try:
                        per_layer[l] += refusal_score(model(**enc).logits[:, -1], ref_ids).tolist()
                    finally:
                        h.remove()
        scores = [sum(s) / len(s) for s in per_layer]
        layer = max(range(len(scores)), key=lambda l: (scores[l], -l))
    log(f"hf_w0: selected layer {layer} (steering score {scores[layer]:.3f}, baseline {sum(base) / len(base):.3f})")
    with t("validation_side_effects"):
        val = generate(model, tok, plan["validation"], plan, greedy=True, max_new_tokens=plan["eval_max_new_tokens"], profile=profile)
        side_effects(model, val, layers, layer, vector[layer], B)
    rates = {}
    with t("coefficient_sweep"):
        for c in plan["coefficients"]:
            h = layers[layer].register_forward_pre_hook(steering_hook(c * vector[layer]), with_kwargs=True)
            try:
                replies = generate(model, tok, plan["test"], plan, greedy=True, max_new_tokens=plan["eval_max_new_tokens"], profile=profile)
            finally:
                h.remove()
            side_effects(model, replies, layers, layer, c * vector[layer], B)
            rates[c] = sum(is_refusal(tok.decode(r, skip_special_tokens=True), plan["refusal_substrings"])
                           for _, r in replies)
    log("hf_w0: refusals by coefficient: " + ", ".join(f"{c:g}: {k}/{len(plan['test'])}" for c, k in rates.items()))

    s = t.seconds
    profile.print(s)
    s["extraction"] = s["load"] + s["generation"] + s["activations"]
    s["evaluation"] = s["layer_selection"] + s["validation_side_effects"] + s["coefficient_sweep"]
    s["total"] = s["extraction"] + s["evaluation"]
    print(json.dumps({"seconds": s, "threads": args.threads, "selected_layer": layer,
                      "kept": {k: len(v) for k, v in kept.items()},
                      "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
