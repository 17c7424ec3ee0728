"""Tokenizer parity: the tokenizer.json that `switchyard-train import-gguf` wrote, against an
independent construction from the same GGUF file by transformers' own converter.

Usage: tokenizer_parity.py <file.gguf> <tokenizer.json>   (exit 1 on any difference)

transformers (5.25) has no entry for llama.cpp's `smollm` pre-tokenizer (every digit alone, then
the GPT-2 split) and falls back to the plain GPT-2 split, which differs only where whitespace runs
before a number. So ids are compared two ways: with llama.cpp's `smollm` split rebuilt on
transformers' vocabulary (every string), and with transformers as it ships (strings where the
two splits agree by construction: no whitespace run before a number).
"""
import json
import re
import sys

import gguf
from tokenizers import Regex, Tokenizer, pre_tokenizers
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

STRINGS = [
    "Hello, world!", " leading space", "trailing space ", "double  space   triple",
    "line one\nline two\n\nline four", "\ttabbed\tcolumns\t", "\r\nwindows newline",
    "In 1998, 42 people paid $3.50", "1234567890", "3.14159 and 2,718,281", "x1y22z333",
    "a  1", "x =  42;    7 items", "Total:\t\t100\n  2 more", "Arabic-Indic ٣٤ and ½ and x² ①",
    "Café naïve résumé façade", "日本語のテキストです。", "中文测试：你好，世界！", "مرحبا بالعالم",
    "Emoji: 😀🎉👍🏽 and 🇺🇸", "Zero\u200bwidth and non\u00a0breaking",
    "<think>Let me reason about this.</think>", "Answer: <answer>Paris</answer>",
    "<search>llama-3.1-70b: capital of France</search>",
    "\n\n<information>Paris is the capital of France.</information>\n\n",
    "<|im_start|>user\nHi<|im_end|>\n", "a<|im_end|>b <|im_start|> c", "<|im_start |> not special",
    "def f(x):\n    return x ** 2  # square\n", "I'm sure they'll say it's fine, we've done what you'd do.",
    "", " ", "    \n\n   \t ",
]
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def main(gguf_path, ours_path):
    reader = gguf.GGUFReader(gguf_path)
    meta = {k: f.contents() for k, f in reader.fields.items() if k.startswith(("tokenizer.", "general."))}
    fields = {n: meta[f"tokenizer.{k}"] for k, n in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if f"tokenizer.{k}" in meta}
    theirs, _ = convert_gguf_tokenizer(meta["general.architecture"], fields)
    ours = Tokenizer.from_file(ours_path)
    smollm = Tokenizer.from_str(theirs.to_str())
    smollm.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.Split(Regex(GPT2), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    failures = []
    if ours.get_vocab(True) != theirs.get_vocab(True):
        failures.append("vocabularies differ")
    jo, jt = json.loads(ours.to_str()), json.loads(theirs.to_str())
    if jo["model"]["merges"] != jt["model"]["merges"]:
        failures.append("merges differ")
    special = lambda j: sorted((a["id"], a["content"], a["special"]) for a in j["added_tokens"])
    if special(jo) != special(jt):
        failures.append(f"added tokens differ: {special(jo)[:5]} vs {special(jt)[:5]}")
    compared_as_shipped = 0
    for s in STRINGS:
        ids = ours.encode(s, add_special_tokens=False).ids
        if ids != smollm.encode(s, add_special_tokens=False).ids:
            failures.append(f"{s!r}: ours {ids[:16]} vs llama.cpp's smollm split {smollm.encode(s).ids[:16]}")
        # Where the two splits differ: a whitespace run before a number (ASCII or not).
        if not re.search(r"\s{2,}\d|\s[٠-٩½²①]", s):
            compared_as_shipped += 1
            if ids != theirs.encode(s, add_special_tokens=False).ids:
                failures.append(f"{s!r}: ours {ids[:16]} vs transformers {theirs.encode(s).ids[:16]}")
        if ours.decode(ids, skip_special_tokens=False) != s:
            failures.append(f"{s!r}: does not decode back")
    print(f"{len(STRINGS)} strings; {compared_as_shipped} also against transformers as shipped; "
          f"vocabulary {ours.get_vocab_size(True)}, {len(jo['model']['merges'])} merges; {len(failures)} differences")
    for f in failures:
        print("DIFF", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
