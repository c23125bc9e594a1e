"""Seeds and real data that live elsewhere: `hf://datasets/OWNER/NAME/path` and
`s3://bucket/key`, fetched once into the state dir and then read like any local file.

Why a local copy rather than streaming: every reader synth has (JSONL line numbers in
errors, CSV, Parquet row groups, resume by row index, sha256 of inputs for the mix report)
works on a file, and a resumed run must see the same bytes it started with. A URL is
fetched into `<state dir>/remote/<hash of url and version>/<name>` (atomically, so a
killed download is never mistaken for the file); it is fetched again when its version
(S3 ETag, Hub blob id) changes.

`hf://` goes through huggingface_hub's HfFileSystem (token: HF_TOKEN or the saved login;
HF_ENDPOINT for a self-hosted Hub). `s3://` goes through boto3, which litellm already
brings, rather than s3fs, which would add aiobotocore and its tight botocore pins; it
takes the usual AWS configuration (env, profile, instance role) and `AWS_ENDPOINT_URL_S3`
for MinIO, Ceph or a test server. A missing object, bucket or credential is a ConfigError.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from synth.errors import ConfigError
from synth.files import state_dir
from synth.redaction import redact, secret_values

SCHEMES = ("hf://", "s3://")
_lock = threading.Lock()


def is_remote(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEMES)


def localize(url: str) -> Path:
    """A local copy of `url`'s current version: one metadata request each time (so a
    changed object is noticed, even in a long-lived service), a download only when the
    version (S3 ETag, Hub blob id) is not in the state dir yet."""
    fetch = _hf if url.startswith("hf://") else _s3
    name = PurePosixPath(url.split("://", 1)[1]).name or "object"
    with _lock:
        version, download = fetch(url)
        digest = hashlib.blake2b(f"{url}\0{version}".encode(), digest_size=12).hexdigest()
        dest = state_dir() / "remote" / digest / name
        if dest.is_file():
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{name}.{os.getpid()}.part")
        try:
            download(tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest


def _hf(url: str) -> tuple[str, Callable[[Path], None]]:
    from huggingface_hub import HfFileSystem
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    fs = HfFileSystem(  # a fresh instance: fsspec's cached one would keep stale listings
        endpoint=os.environ.get("HF_ENDPOINT") or None, token=_hf_token(), skip_instance_cache=True
    )
    path = url[len("hf://") :]
    try:
        info = fs.info(path)
        if info.get("type") != "file":
            raise FileNotFoundError(path)
        version = str(info.get("blob_id") or (info.get("lfs") or {}).get("sha256") or info["size"])

        def download(dest: Path) -> None:
            try:
                fs.get_file(path, str(dest))
            except (HfHubHTTPError, OSError) as exc:
                message = redact(str(exc), secret_values())
                raise ConfigError(f"download from the Hub failed: {message}", file=url) from None

        return version, download
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise ConfigError(
            "the Hub has no such dataset, or it is private or gated for this token",
            file=url,
            expected="hf://datasets/OWNER/NAME/path/to/file",
            found=type(exc).__name__,
            fix="check the name; for a private or gated dataset export HF_TOKEN",
        ) from None
    except (FileNotFoundError, RevisionNotFoundError):
        parts = path.split("/")
        repo_id = "/".join(parts[1:3]).split("@")[0]
        if parts[0] == "datasets" and len(parts) >= 3 and not _repo_exists(repo_id):
            raise ConfigError(
                "the Hub has no such dataset, or it is private or gated for this token",
                file=url,
                expected="hf://datasets/OWNER/NAME/path/to/file",
                found=repo_id,
                fix="check the name; for a private or gated dataset export HF_TOKEN",
            ) from None
        raise ConfigError(
            "no such file in the Hub dataset",
            file=url,
            expected="an existing file (hf://datasets/OWNER/NAME[@REVISION]/path)",
            fix="check the path against the dataset's file list (Files tab on the Hub)",
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        raise ConfigError(
            f"the Hub refused the download ({status})",
            file=url,
            fix="export HF_TOKEN with read access" if status in (401, 403) else None,
        ) from None


def _repo_exists(repo_id: str) -> bool:
    from huggingface_hub import HfApi

    api = HfApi(endpoint=os.environ.get("HF_ENDPOINT") or None, token=_hf_token())
    return bool(api.repo_exists(repo_id, repo_type="dataset"))


def _hf_token() -> str | None:
    from huggingface_hub import get_token

    return os.environ.get("HF_TOKEN") or get_token()


def _s3(url: str) -> tuple[str, Callable[[Path], None]]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ConfigError("not an S3 object URL", file=url, expected="s3://BUCKET/KEY", found=url)
    client = boto3.session.Session().client("s3")  # fresh: env credentials read now
    try:
        etag = str(client.head_object(Bucket=bucket, Key=key).get("ETag", ""))
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials to read the seed with",
            file=url,
            expected="AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role",
            fix="export the credentials (and AWS_ENDPOINT_URL_S3 for a non-AWS store)",
        ) from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code == "NoSuchBucket" or (code == "404" and not _bucket_exists(bucket)):
            raise ConfigError(
                "no such S3 bucket", file=url, found=bucket, fix="check the bucket name"
            ) from None
        if code in ("404", "NoSuchKey"):
            raise ConfigError(
                "no such S3 object", file=url, found=key, fix="check the key (it is case-sensitive)"
            ) from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            raise ConfigError(
                f"S3 refused the credentials ({code})",
                file=url,
                expected="credentials allowed to s3:GetObject on this key",
                fix="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            ) from None
        raise ConfigError(f"S3 read failed ({code})", file=url) from None
    except BotoCoreError as exc:  # endpoint unreachable, bad region
        raise ConfigError(f"cannot reach S3: {exc}", file=url) from None
    return etag, lambda dest: client.download_file(bucket, key, str(dest))


def _bucket_exists(bucket: str) -> bool:
    """download_file HEADs the object, and a HEAD's 404 does not say what is missing."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        boto3.session.Session().client("s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code", "")) not in ("404", "NoSuchBucket")
    except BotoCoreError:
        return True
    return True
