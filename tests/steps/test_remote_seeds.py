"""Seeds from `s3://` (moto's S3 server on loopback) and `hf://datasets/...` (the loopback
Hub) feed the `read` step and the mixer like local files; a missing object, bucket or
credential is a ConfigError that says which."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hub_server import hub_server
from moto.server import ThreadedMotoServer

from synth import registry
from synth.context import Context
from synth.curate.ingest import read_real
from synth.errors import ConfigError
from synth.records import Record
from synth.streams import aiter_of

ROWS = "".join(json.dumps({"text": f"seed {i}", "n": i}) + "\n" for i in range(700))


def read(path: str, tmp_path: Path, start: int = 0) -> list[Record]:
    step_fn = registry.lookup("step", "read").factory(path=path, source="real")
    ctx = Context(seed=1, recipe_hash="h", base_dir=tmp_path, start_index=start)

    async def go() -> list[Record]:
        return [r async for r in step_fn(aiter_of([]), ctx)]

    return asyncio.run(go())


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://{host}:{port}",
        "SYNTH_STATE_DIR": str(tmp_path / "state"),
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("s3")
    client.create_bucket(Bucket="seeds")
    client.put_object(Bucket="seeds", Key="night/1.jsonl", Body=ROWS.encode())
    yield client
    server.stop()


def test_read_step_reads_an_s3_object_and_resumes(s3: Any, tmp_path: Path) -> None:
    out = read("s3://seeds/night/1.jsonl", tmp_path)
    assert len(out) == 700 and out[650].data == {"text": "seed 650", "n": 650}
    assert out[3].meta["source"] == "real" and out[3].meta["file"] == "1.jsonl"
    assert [r.data for r in read("s3://seeds/night/1.jsonl", tmp_path, start=698)] == [
        {"text": "seed 698", "n": 698},
        {"text": "seed 699", "n": 699},
    ]


def test_a_changed_object_is_read_again(s3: Any, tmp_path: Path) -> None:
    assert len(read("s3://seeds/night/1.jsonl", tmp_path)) == 700
    s3.put_object(Bucket="seeds", Key="night/1.jsonl", Body=b'{"text": "new"}\n')
    assert [r.data for r in read("s3://seeds/night/1.jsonl", tmp_path)] == [{"text": "new"}]


def test_the_mixer_reads_real_data_from_s3_with_the_url_as_provenance(s3: Any) -> None:
    recs = list(read_real("s3://seeds/night/1.jsonl"))
    assert len(recs) == 700
    assert recs[0].meta["provenance"] == {
        "file": "s3://seeds/night/1.jsonl",
        "format": "jsonl",
        "row": 0,
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://seeds/night/missing.jsonl", "no such S3 object"),
        ("s3://no-bucket/x.jsonl", "no such S3 bucket"),
    ],
)
def test_missing_object_and_bucket(s3: Any, tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        read(url, tmp_path)
    assert url in str(err.value)


def test_missing_and_wrong_credentials(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigError, match="no AWS credentials") as err:
        read("s3://seeds/night/1.jsonl", tmp_path)
    assert "AWS_ACCESS_KEY_ID" in str(err.value)


def test_read_step_and_mixer_read_hf_datasets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTH_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with hub_server() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        hub.repos["org/seeds"] = {"data/train.jsonl": ROWS.encode(), "README.md": b"---\n---\n"}
        hub.private["org/seeds"] = False
        out = read("hf://datasets/org/seeds/data/train.jsonl", tmp_path)
        assert len(out) == 700 and out[1].data["text"] == "seed 1"
        real = list(read_real("hf://datasets/org/seeds/data/train.jsonl"))
        assert real[2].meta["provenance"]["file"] == "hf://datasets/org/seeds/data/train.jsonl"
        with pytest.raises(ConfigError, match="no such file in the Hub dataset"):
            read("hf://datasets/org/seeds/data/nope.jsonl", tmp_path)
        with pytest.raises(ConfigError, match="no such dataset"):
            read("hf://datasets/org/absent/data/train.jsonl", tmp_path)


def test_mix_real_data_from_s3_then_publish_the_mix(s3: Any, tmp_path: Path) -> None:
    """The whole path a user takes: real data in a bucket, a synthetic run, `mix`, then
    `publish`: the card carries the bucket URL and the real fraction."""
    from collapse_fixtures import language, run_dir, sample

    from synth.curate.mixer import MixConfig, mix
    from synth.curate.publish import PublishConfig, publish

    lang = language()
    real = "".join(json.dumps({"text": t}) + "\n" for t in sample(lang, 200, seed=1))
    s3.put_object(Bucket="seeds", Key="real/corpus.jsonl", Body=real.encode())
    syn = run_dir(tmp_path / "run", sample(lang, 200, 40, seed=2))
    report = mix(
        ["s3://seeds/real/corpus.jsonl"],
        [syn],
        out=tmp_path / "mix",
        config=MixConfig(monitor=False),
    )
    assert report["inputs"]["real"][0]["path"] == "s3://seeds/real/corpus.jsonl"
    result = publish([tmp_path / "mix"], tmp_path / "ds", PublishConfig(test_fraction=0.1))
    assert sum(result.splits.values()) == sum(s["records"] for s in report["shards"])
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "s3://seeds/real/corpus.jsonl" in card
    assert f"real fraction (tokens): {report['real_fraction']:.3f}" in card
