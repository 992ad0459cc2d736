"""Model checkpoints in the lake: `<lake>/checkpoints_store/<checkpoint_id>/`.

A stage trains into a local folder (`staging_dir`): on a local lake that folder is already the
checkpoint's place; on an S3 lake it is this node's cache, and `publish` uploads its files, then a
`_complete.json` naming them, last. Whichever stage loads the checkpoint next, on any node, asks
`local_copy(url)`: the node's cached copy, fetched once (whole, or not at all) from a complete upload.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from selfimprove.atomic import write_bytes, write_dir
from selfimprove.storage.cache import cache_dir
from selfimprove.storage.stores import S3Storage, is_s3, storage_for

STORE = "checkpoints_store"
COMPLETE = "_complete.json"


def _cache_root() -> Path:
    return cache_dir() / "lake-checkpoints"


def local_dir_for(url: str) -> Path:
    """Where this node keeps its copy of the checkpoint at an s3:// url."""
    return _cache_root() / hashlib.sha256(url.encode()).hexdigest()[:16] / url.rstrip("/").rsplit("/", 1)[-1]


def checkpoint_url(lake: str, checkpoint_id: str) -> str:
    return storage_for(lake).url(f"{STORE}/{checkpoint_id}")


def staging_dir(lake: str, checkpoint_id: str) -> Path:
    """The local folder a stage trains `checkpoint_id` into."""
    url = checkpoint_url(lake, checkpoint_id)
    return local_dir_for(url) if is_s3(url) else Path(url)


def publish(lake: str, local: Path, checkpoint_id: str) -> str:
    """The checkpoint's url in the lake, its files uploaded there first when the lake is on S3."""
    url = checkpoint_url(lake, checkpoint_id)
    if not is_s3(url):
        return str(local)
    store, key = storage_for(lake), f"{STORE}/{checkpoint_id}"
    (Path(local) / COMPLETE).unlink(missing_ok=True)
    store.delete_prefix(key + "/")  # a retried upload leaves no file of an earlier attempt behind
    store.upload_dir(Path(local), key)
    files = sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*") if p.is_file())
    marker = json.dumps({"files": files}).encode()
    store.put(f"{key}/{COMPLETE}", marker)
    write_bytes(Path(local) / COMPLETE, marker)  # this node's copy is the uploaded one
    return url


def local_copy(url: str) -> Path:
    """A local folder holding the checkpoint at an s3:// url (fetched once per node)."""
    dest = local_dir_for(url)
    if (dest / COMPLETE).exists():
        return dest
    parent, _, name = url.rstrip("/").rpartition("/")
    store = S3Storage(parent)
    marker = store.get(f"{name}/{COMPLETE}")
    if marker is None:
        raise FileNotFoundError(f"checkpoint {url}: no complete upload there (no {COMPLETE})")

    def fill(tmp: Path) -> None:
        store.download_dir(name, tmp)
        missing = [f for f in json.loads(marker)["files"] if not (tmp / f).exists()]
        if missing:
            raise FileNotFoundError(f"checkpoint {url}: {len(missing)} files of its upload are gone ({missing[0]})")

    return write_dir(dest, fill)


CARD = "README.md"


def write_card(lake: str, path: str, text: str) -> None:
    """Put the model card into the checkpoint at `path` (a folder, or an s3:// url in the lake, and this node's
    copy of it). Cards are Markdown: they never enter the weights' identity."""
    if not is_s3(path):
        write_bytes(Path(path) / CARD, text.encode())
        return
    parent, _, name = path.rstrip("/").rpartition("/")
    S3Storage(parent).put(f"{name}/{CARD}", text.encode())
    if local_dir_for(path).exists():
        write_bytes(local_dir_for(path) / CARD, text.encode())
