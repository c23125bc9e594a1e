"""Uploading a published folder to a Hugging Face Hub (huggingface.co or self-hosted).

The token comes from HF_TOKEN or the usual `hf auth login` file and goes only into the
Authorization header huggingface_hub sends: it is never printed, logged or written, and
any Hub error message is redacted against it before it reaches the user. `HF_ENDPOINT`
points at another Hub (a self-hosted one, or the loopback server the tests run).
"""

from __future__ import annotations

import os
from pathlib import Path

from synth.errors import ConfigError, SinkError
from synth.redaction import redact, secret_values


def hub_token() -> str:
    from huggingface_hub import get_token

    token = os.environ.get("HF_TOKEN") or get_token()
    if not token:
        raise ConfigError(
            "no Hugging Face token",
            path="HF_TOKEN",
            expected="a write token in HF_TOKEN, or a saved login",
            fix="export HF_TOKEN=hf_... (a write token), or run `hf auth login`",
        )
    return token


def push(folder: str | Path, repo_id: str, *, private: bool = False) -> str:
    """Create the dataset repo (if new) and upload `folder` as one commit; the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ConfigError(
            "not a repository name",
            path="--push",
            expected="OWNER/NAME",
            found=repo_id,
            fix="e.g. --push my-org/support-tickets-v1",
        )
    token = hub_token()
    endpoint = os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint, token=token)
    secrets = secret_values([token])
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="dataset",
            commit_message="synth publish",
        )
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        message = redact(str(exc), secrets)
        if status in (401, 403):
            raise ConfigError(
                f"the Hub refused the token ({status})",
                path="HF_TOKEN",
                expected=f"a token with write access to {repo_id}",
                found=message.splitlines()[0] if message else None,
                fix="create a write token at <hub>/settings/tokens and export HF_TOKEN",
            ) from None
        raise SinkError(f"upload to {api.endpoint} failed: {message}") from None
    except OSError as exc:  # connection refused, DNS, TLS
        raise SinkError(
            f"cannot reach the Hub at {api.endpoint}: {redact(str(exc), secrets)}"
        ) from None
    return str(info.commit_url if hasattr(info, "commit_url") else info)
