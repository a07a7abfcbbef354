"""A Hugging Face `tokenizer.json` for o200k_harmony, built offline from the bundled vocabulary.

transformers' `TikTokenConverter` turns a tiktoken BPE file into a fast tokenizer; we feed it the
sha256-verified vocabulary that `verifier.harmony` unpacks and read that file ourselves, so
neither `tiktoken` nor `blobfile` nor the network is needed.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

from verifier import harmony
from verifier.paths import cache_dir

O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


TOKENIZER_VERSION = 2
"""Bumped whenever the written `tokenizer.json` changes, so caches built by older versions are not reused.
2: `<|reserved_201088|>` (id 201088 = the vocabulary size) left out."""


def special_tokens() -> dict[str, int]:
    """Every o200k_harmony special token inside the vocabulary (name -> id), 199998..201087.

    openai-harmony also names `<|reserved_201088|>`, whose id equals the vocabulary size: no model row
    exists for it, and converters that check ids against `vocab_size` (llama.cpp's) refuse the file.
    """
    enc = harmony.encoding()
    found = {name: enc.encode(name, allowed_special="all")[0] for name in enc.special_tokens_set}
    return {name: token for name, token in found.items() if token < harmony.VOCAB_SIZE}


def _read_bpe(path: str) -> dict[bytes, int]:
    ranks = {}
    for line in Path(path).read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build_tokenizer_json(target: Path) -> Path:
    """Write `tokenizer.json` for o200k_harmony to `target` (cached after the first build)."""
    cached = cache_dir() / "tokenizer" / f"o200k_harmony-v{TOKENIZER_VERSION}.tokenizer.json"
    if not cached.is_file():
        from transformers.convert_slow_tokenizer import TikTokenConverter

        class _Converter(TikTokenConverter):
            @staticmethod
            def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
                return _read_bpe(tiktoken_url)

        specials = dict(sorted(special_tokens().items(), key=lambda kv: kv[1]))
        vocab = harmony.ensure_vocab() / harmony.VOCAB_FILE
        tokenizer = _Converter(vocab_file=str(vocab), pattern=O200K_PATTERN,
                               extra_special_tokens=specials).converted()
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tokenizer.save(str(tmp))
        tmp.replace(cached)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cached, target)
    return target
