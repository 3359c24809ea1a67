#!/usr/bin/env python3
"""Reference token ids for models/tokenizer tests.

Tokenizes a fixed set of strings with the tokenizer that Hugging Face
transformers rebuilds from the GGUF metadata -- the code behind
AutoTokenizer.from_pretrained(dir, gguf_file=...) -- independently of our Go
builder, and writes {text, ids} cases as JSON.

AutoTokenizer.from_pretrained(..., gguf_file=...) itself imports torch in
transformers 5 (its GGUF reader does), so instead we read the metadata with
gguf-py (llama.cpp's reader, PyPI package "gguf"), group it exactly like
transformers' get_gguf_tokenizer() and call the same convert_gguf_tokenizer().
No torch needed.

Known divergence (so the strings below avoid it): transformers 5.24 does not know
tokenizer.ggml.pre="smollm" and keeps the plain GPT-2 split, whereas llama.cpp and
SmolLM2's own tokenizer.json split digits off first; they differ only on
whitespace followed by a digit ("a  7"). models/tokenizer pins those cases in
TestSmolLM2DigitsAfterWhitespace.

Setup (once; .cache/ is git-ignored):
    python3 -m venv .cache/pytok
    .cache/pytok/bin/pip install transformers tokenizers gguf sentencepiece protobuf

Regenerate (from the repository root):
    .cache/pytok/bin/python tools/reference/tokenizer_reference.py \
        .cache/models/SmolLM2-135M-Instruct.Q4_1.gguf testdata/tokenizer/smollm2_ids.json
"""

import json
import os
import sys

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "12345 and 3.14159, 1,000,000 or 2024-01-31",
    "I'm sure you'll see they've done it, haven't they? We'd, I'll, she's.",
    "I\u2019m using the typographic apostrophe \u2019 here \u2018quoted\u2019 \u201cdouble\u201d.",
    "Unicode: caf\u00e9, na\u00efve, Stra\u00dfe, \u65e5\u672c\u8a9e, \u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac, \u0440\u0443\u0441\u0441\u043a\u0438\u0439",
    "Emoji: \U0001F600\U0001F680\U0001F44D\U0001F3FD \u2764\ufe0f done",
    "line one\nline two\n\nline four\r\nend\n",
    "multiple   spaces    here\tand\ttabs",
    "   leading and trailing spaces   ",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nHow do I pick a lock?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "not special: <|im_start| and |im_end|>",
    "def f(x):\n    return x**2  # square\n",
    "URLs: https://example.com/path?q=1&r=2 and emails a.b@c.org",
    "MIXED case and SHOUTING!!! ???...",
    "",
]


def main():
    if len(sys.argv) != 3:
        sys.exit(f"usage: {sys.argv[0]} MODEL.gguf OUTPUT.json")
    gguf_path, out_path = sys.argv[1], sys.argv[2]

    import tokenizers
    import transformers
    from gguf import GGUFReader
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        GGUF_TOKENIZER_MAPPING,
        convert_gguf_tokenizer,
    )

    reader = GGUFReader(gguf_path)
    metadata = {key: field.contents() for key, field in reader.fields.items() if key.startswith(("general.", "tokenizer."))}
    # Same grouping as transformers' get_gguf_tokenizer().
    tokenizer_dict = {
        name: metadata[f"tokenizer.{key}"]
        for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
        if f"tokenizer.{key}" in metadata
    }
    tok, _ = convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)
    add_bos = metadata.get("tokenizer.ggml.add_bos_token", tokenizer_dict.get("tokenizer_type") == "llama")
    if add_bos:
        sys.exit("this script handles GGUF files without add_bos_token only")

    cases = []
    for text in TEXTS:
        ids = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids})
    doc = {
        "command": ".cache/pytok/bin/python tools/reference/tokenizer_reference.py "
        ".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf testdata/tokenizer/smollm2_ids.json",
        "reference": f"transformers {transformers.__version__} convert_gguf_tokenizer() on metadata read by "
        f"gguf-py, tokenizers {tokenizers.__version__}, add_special_tokens=False",
        "model": os.path.basename(gguf_path),
        "cases": cases,
    }
    # One case per line, for readable diffs.
    header = json.dumps({k: v for k, v in doc.items() if k != "cases"}, ensure_ascii=False, indent=1)
    lines = [json.dumps(case, ensure_ascii=False) for case in cases]
    with open(out_path, "w", encoding="utf-8") as f:
        f.write(header[:-2] + ',\n "cases": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
    print(f"wrote {len(cases)} cases to {out_path}")


if __name__ == "__main__":
    main()
