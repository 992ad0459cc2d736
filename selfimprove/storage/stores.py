"""Where the lake's bytes live: a local folder or an S3-compatible bucket, behind one small interface.

Keys are lake-relative POSIX paths (`candidates/run=r1/data.1a2b….parquet`); `url(key)` is what manifests
record (an absolute path, or `s3://bucket/prefix/key`). Both stores give the lake the same guarantees:

- an object appears whole or not at all (local: hidden temporary name, fsync, rename; S3: one PUT, or a
  multipart upload that becomes visible only when it completes);
- `create` writes only if the key is absent, so of two writers committing the same manifest the first
  wins (local: a hard link, which fails if the name exists; S3: a conditional PUT, `If-None-Match: *`);
- `replace` swaps an object only if it is still the one read (local: same size and mtime; S3: `If-Match`).

S3 credentials, region and endpoint come from the usual AWS environment variables (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION, AWS_ENDPOINT_URL_S3 /
AWS_ENDPOINT_URL); nothing here stores or prints them.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from selfimprove.atomic import write_bytes, write_file


@dataclass(frozen=True)
class Entry:
    key: str
    size: int
    mtime: float  # seconds since the epoch
    tag: str = ""  # changes whenever the object is replaced (S3: its ETag; local: size and mtime)


class Storage:
    """A lake's object store. Subclasses implement the primitives; `location` is what users pass (`--lake`)."""

    location: str

    def url(self, key: str) -> str:
        raise NotImplementedError

    def key_of(self, url: str) -> str:
        """The key of one of this store's urls (a manifest's `path`)."""
        prefix = self.url("")
        if not str(url).startswith(prefix):
            raise ValueError(f"{url} is not in the lake at {self.location}")
        return str(url)[len(prefix):]

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        """pyarrow's filesystem for this store and the path prefix of key ''."""
        raise NotImplementedError

    def write_parquet(self, key: str, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None = None) -> str:
        """Write a table, or record batches streamed one row group at a time (memory stays one batch), as one
        object that appears whole or not at all; returns its url."""
        raise NotImplementedError

    def read_parquet(self, key: str) -> pa.Table:
        fs, base = self.arrow()
        return pq.read_table(base + key, filesystem=fs)

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> bool:
        """Write `data` under `key` only if no object is there; False when another writer was first."""
        raise NotImplementedError

    def get(self, key: str) -> bytes | None:
        found = self.get_tagged(key)
        return None if found is None else found[0]

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object and a tag that changes whenever it is replaced (for `replace`), or None."""
        raise NotImplementedError

    def replace(self, key: str, data: bytes, tag: str) -> bool:
        """Overwrite `key` only if it is still the object tagged `tag`; False when someone replaced it first."""
        raise NotImplementedError

    def get_many(self, keys: list[str]) -> dict[str, bytes | None]:
        with ThreadPoolExecutor(max_workers=16) as pool:
            return dict(zip(keys, pool.map(self.get, keys)))

    def list(self, prefix: str) -> list[Entry]:
        """Every object under `prefix` (a folder: end it with '/'), any depth."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, keys: list[str]) -> None:
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        self.delete([e.key for e in self.list(prefix)])

    def upload_dir(self, local: Path, key: str) -> None:
        """Copy a local folder's files under `key`/ (local store: the folder is already in place)."""
        raise NotImplementedError

    def download_dir(self, key: str, local: Path) -> None:
        fs, base = self.arrow()
        for e in self.list(key.rstrip("/") + "/"):
            target = local / e.key[len(key.rstrip("/")) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(base + e.key) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)


class LocalStorage(Storage):
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.location = str(self.root)

    def url(self, key: str) -> str:
        return str(self.root / key) if key else str(self.root) + "/"

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), str(self.root) + "/"

    def write_parquet(self, key: str, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None = None) -> str:
        return str(write_file(self.root / key, lambda tmp: _write_parquet_file(tmp, data, schema)))

    def put(self, key: str, data: bytes) -> None:
        write_bytes(self.root / key, data)

    def create(self, key: str, data: bytes) -> bool:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.partial"
        write_bytes(tmp, data)
        try:
            os.link(tmp, target)  # atomic, and fails if the name exists
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink()

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        path = self.root / key
        try:
            return path.read_bytes(), _local_tag(path.stat())
        except FileNotFoundError:
            return None

    def replace(self, key: str, data: bytes, tag: str) -> bool:
        now = self.get_tagged(key)
        if now is None or now[1] != tag:
            return False
        write_bytes(self.root / key, data)
        return True

    def list(self, prefix: str) -> list[Entry]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        out = []
        for p in folder.rglob("*"):
            if p.is_file() and not p.name.startswith(".tmp-"):
                st = p.stat()
                out.append(Entry(p.relative_to(self.root).as_posix(), st.st_size, st.st_mtime, _local_tag(st)))
        return sorted(out, key=lambda e: e.key)

    def exists(self, key: str) -> bool:
        return (self.root / key).exists()

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            (self.root / key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.root / prefix, ignore_errors=True)

    def upload_dir(self, local: Path, key: str) -> None:
        if Path(local).resolve() != (self.root / key).resolve():
            shutil.copytree(local, self.root / key, dirs_exist_ok=True)


def _local_tag(st: os.stat_result) -> str:
    """A local file's version: a replace (a rename over it) changes its inode, a rewrite its size or mtime."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


class S3Storage(Storage):
    """`s3://bucket/prefix` on AWS S3 or any S3-compatible server (MinIO, Ceph, moto)."""

    def __init__(self, url: str) -> None:
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if "@" in bucket or ":" in bucket:  # never echoed: it may hold a key
            raise ValueError("an S3 lake is s3://BUCKET[/PREFIX], with no credentials in it: set AWS_ACCESS_KEY_ID "
                             "and AWS_SECRET_ACCESS_KEY in the environment instead")
        if not bucket:
            raise ValueError(f"lake {url!r}: an S3 lake is s3://BUCKET[/PREFIX]")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.location = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._base = f"{self.prefix}/" if self.prefix else ""

    def __repr__(self) -> str:
        return f"S3Storage({self.location})"

    def url(self, key: str) -> str:
        return f"{self.location}/{key}"

    def _key(self, key: str) -> str:
        return self._base + key

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        return s3_filesystem(), f"{self.bucket}/{self._base}"

    def write_parquet(self, key: str, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None = None) -> str:
        # streamed to a local file first, so a batch that fails validation uploads nothing; boto3's transfer
        # then sends it in one PUT, or as a multipart upload it completes only when every part arrived
        with tempfile.TemporaryDirectory(prefix="selfimprove-upload-") as tmp:
            path = Path(tmp) / "part.parquet"
            _write_parquet_file(path, data, schema)
            s3_client().upload_file(str(path), self.bucket, self._key(key))
        return self.url(key)

    def put(self, key: str, data: bytes) -> None:
        s3_client().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def create(self, key: str, data: bytes) -> bool:
        return self._conditional_put(key, data, IfNoneMatch="*")

    def replace(self, key: str, data: bytes, tag: str) -> bool:
        return self._conditional_put(key, data, IfMatch=tag)

    def _conditional_put(self, key: str, data: bytes, **condition) -> bool:
        client = s3_client()
        try:
            client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            return True
        except client.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        client = s3_client()
        try:
            got = client.get_object(Bucket=self.bucket, Key=self._key(key))
        except client.exceptions.NoSuchKey:
            return None
        return got["Body"].read(), got["ETag"]

    def list(self, prefix: str) -> list[Entry]:
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix))
        return sorted((Entry(o["Key"][len(self._base):], o["Size"], o["LastModified"].timestamp(), o.get("ETag", ""))
                       for page in pages for o in page.get("Contents", [])), key=lambda e: e.key)

    def exists(self, key: str) -> bool:
        client = s3_client()
        try:
            client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except client.exceptions.ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def delete(self, keys: list[str]) -> None:
        client = s3_client()
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start:start + 1000]]
            if batch:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def upload_dir(self, local: Path, key: str) -> None:
        fs, base = self.arrow()
        files = [p for p in sorted(Path(local).rglob("*")) if p.is_file()]

        def send(p: Path) -> None:
            with open(p, "rb") as src, fs.open_output_stream(f"{base}{key}/{p.relative_to(local).as_posix()}") as out:
                shutil.copyfileobj(src, out, 1 << 22)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(send, files))

    def check(self) -> None:
        """One clear line when the bucket cannot be reached (no such bucket, no credentials, wrong endpoint)."""
        client = s3_client()
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception as e:  # noqa: BLE001 - botocore raises many kinds; each becomes the same one line
            code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
            raise ValueError(f"lake {self.location}: bucket {self.bucket!r} is not reachable ({code}) at "
                             f"{_endpoint() or 'the AWS default endpoint'}; set AWS_ENDPOINT_URL and the AWS "
                             "credentials in the environment, and create the bucket") from None


def _write_parquet_file(path: Path, data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema | None) -> None:
    if isinstance(data, pa.Table):
        pq.write_table(data, path)
        return
    with pq.ParquetWriter(path, schema) as writer:
        for batch in data:
            writer.write_batch(batch)


def _endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def _credentials_key() -> tuple:
    """What the cached clients depend on; the secret is hashed, never kept in a cache key as text."""
    import hashlib

    secret = os.environ.get("AWS_SECRET_ACCESS_KEY", "") + os.environ.get("AWS_SESSION_TOKEN", "")
    return (_endpoint(), _region(), os.environ.get("AWS_ACCESS_KEY_ID"), hashlib.sha256(secret.encode()).hexdigest())


def s3_filesystem() -> pafs.S3FileSystem:
    return _s3_filesystem(_credentials_key())


@lru_cache(maxsize=4)
def _s3_filesystem(_: tuple) -> pafs.S3FileSystem:
    endpoint = _endpoint()
    options = {"region": _region()}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options.update(endpoint_override=host or scheme, scheme=scheme if host else "https")
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        options.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                       session_token=os.environ.get("AWS_SESSION_TOKEN"))
    return pafs.S3FileSystem(**options)


def s3_client():
    return _s3_client(_credentials_key())


@lru_cache(maxsize=4)
def _s3_client(_: tuple):
    try:
        import boto3
    except ImportError:
        raise ValueError("an s3:// lake needs boto3: pip install 'selfimprove[s3]'") from None
    return boto3.client("s3", endpoint_url=_endpoint(), region_name=_region())


def is_s3(location: str | os.PathLike | None) -> bool:
    return str(location or "").startswith("s3://")


def storage_for(location: str | os.PathLike) -> Storage:
    return S3Storage(str(location)) if is_s3(location) else LocalStorage(location)


def read_table(url: str | os.PathLike) -> pa.Table:
    """A Parquet file by the url a manifest names (a local path or s3://…)."""
    if is_s3(url):
        bucket_key = str(url).removeprefix("s3://")
        return pq.read_table(bucket_key, filesystem=s3_filesystem())
    return pq.read_table(url)


def url_exists(url: str | os.PathLike) -> bool:
    if is_s3(url):
        store = S3Storage(str(url).rsplit("/", 1)[0])
        return store.exists(str(url).rsplit("/", 1)[1])
    return Path(url).exists()
