"""What synth's machinery costs on a rule-based recipe, against a hand-written Faker loop.

    python bench/faker_overhead.py              # about 3 minutes on 2 cores
    python bench/faker_overhead.py --quick      # seconds: a smoke run of the same code
    python bench/faker_overhead.py --rss-n 1000000

1. records/s of the card-transactions template through `synth.run` (source, chain, sink,
   checkpoints, manifest) vs a loop calling the same Faker providers for the same fields
   and writing the same JSON to a file, in this process. Target: ratio >= 0.85.
   The full recipe (with its three verifiers) is reported too, for information.
2. Peak RSS of a child process streaming n records (`synth.stream`, default n = 200,000,
   `--rss-n 1000000` for the full figure) next to the same child at n / 10: memory is
   flat when the two agree. Target: < 200 MB.
3. records/s of `synth.run --workers 2` vs `--workers 1` (process start-up included).
   Target: >= 1.7x on 2 idle cores.

Figures from a shared machine are noisy: each side is measured `--repeat` times,
interleaved, and the best of each is compared.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "card-transactions.yaml"
TEMPLATE = ROOT / "templates" / "card-transactions.yaml"
TEMPLATE_ONLY = {
    "name": "card-template-only",
    "steps": [{"use": "faker", "template": "card-transactions"}],
}


def raw_loop(n: int, out: Path, seed: int = 7) -> float:
    """The hand-written baseline: one Faker, one seed, the template's fields by hand."""
    from faker import Faker

    t0 = time.perf_counter()
    v = yaml.safe_load(TEMPLATE.read_text())["vars"]
    fake = Faker("en_US")
    fake.seed_instance(seed)
    rng = fake.random
    brands, brand_w = ["visa", "mastercard", "amex", "discover"], [52, 31, 11, 6]
    types, type_w = ["credit", "debit", "prepaid"], [55, 40, 5]
    cats = list(v["category_scale"])
    cat_w = [22, 18, 10, 16, 6, 4, 7, 6, 2, 6, 3]
    chans, chan_w = ["chip", "contactless", "swipe", "online", "phone_order"], [45, 38, 7, 8, 2]
    countries = list(v["currencies"])
    country_w = [86, 2.5, 2.5, 1.5, 1, 1, 0.8, 0.7, 0.6, 0.8, 0.6, 0.6, 0.6, 0.3, 0.5]
    start, end = datetime.date(2024, 1, 1), datetime.date(2024, 12, 31)
    risky = set(v["high_risk_countries"])
    with open(out, "w", encoding="utf-8") as fh:
        for _ in range(n):
            ts = fake.date_time_between(start_date=start, end_date=end)
            brand = rng.choices(brands, brand_w)[0]
            card_type = rng.choices(types, type_w)[0]
            cat = rng.choices(cats, cat_w)[0]
            if cat in ("online_retail", "digital_goods"):
                channel = "online"
            elif cat == "utilities":
                channel = rng.choices(["online", "phone_order"], [80, 20])[0]
            else:
                channel = rng.choices(chans, chan_w)[0]
            country = rng.choices(countries, country_w)[0]
            currency = v["currencies"][country]
            usd = round(max(rng.lognormvariate(3.4, 1.05) * v["category_scale"][cat], 0.5), 2)
            fraud = (
                (usd > 150 and country != "US" and ts.hour < 6)
                or (
                    channel in ("online", "phone_order")
                    and usd > 400
                    and cat in ("electronics", "jewelry", "digital_goods")
                )
                or (country in risky and card_type == "prepaid")
                or (country in risky and usd > 100 and channel != "chip")
                or (card_type == "prepaid" and channel in ("online", "phone_order") and usd > 300)
            )
            record = {
                "transaction_id": fake.uuid4(),
                "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "card_brand": brand,
                "card_number": fake.credit_card_number(card_type=brand),
                "card_type": card_type,
                "card_expiry": fake.credit_card_expire(),
                "card_holder": fake.name(),
                "merchant": fake.company(),
                "merchant_category": cat,
                "mcc": v["mcc_codes"][cat],
                "channel": channel,
                "country": country,
                "currency": currency,
                "amount": round(usd * v["usd_rate"][currency], 2),
                "is_fraud": fraud,
            }
            fh.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
    return n / (time.perf_counter() - t0)


def through_synth(recipe: Any, n: int, out: Path, workers: int = 1) -> float:
    import synth

    t0 = time.perf_counter()
    result = asyncio.run(synth.run(recipe, n=n, seed=7, out=out, workers=workers, force=True))
    elapsed = time.perf_counter() - t0
    assert result.kept == n, result.manifest.get("stop_reason")
    return n / elapsed


def peak_rss_mb(n: int) -> float:
    """Peak RSS of a fresh process that streams n records, as the kernel counted it."""
    code = (
        "import asyncio, resource, sys, synth\n"
        "async def main(n):\n"
        "    k = 0\n"
        f"    async for _ in synth.stream({TEMPLATE_ONLY!r}, n=n, seed=7):\n"
        "        k += 1\n"
        "    assert k == n\n"
        "asyncio.run(main(int(sys.argv[1])))\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"  # KiB on Linux
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(n)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1]) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="records per throughput measurement")
    ap.add_argument("--rss-n", type=int, default=200_000, help="records for the RSS figure")
    ap.add_argument("--workers-n", type=int, default=60_000, help="records for 1 vs 2 workers")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="tiny sizes: checks the bench runs")
    args = ap.parse_args()
    if args.quick:
        args.n, args.rss_n, args.workers_n, args.repeat = 1000, 5000, 2000, 1
    if not RECIPE.exists():
        print(f"missing {RECIPE}: the card-transactions recipe is needed", file=sys.stderr)
        return 1
    os.chdir(ROOT)
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as tmp:
        work = Path(tmp)
        raw_loop(200, work / "warm.jsonl")  # imports and Faker set-up, outside the timing
        through_synth(TEMPLATE_ONLY, 200, work / "warm")
        raws, synths = [], []
        for _ in range(args.repeat):
            raws.append(raw_loop(args.n, work / "raw.jsonl"))
            synths.append(through_synth(TEMPLATE_ONLY, args.n, work / "synth"))
        raw, syn = max(raws), max(synths)
        full = through_synth(RECIPE, args.n // 2, work / "full")
        print(f"== card-transactions template, n={args.n} (best of {args.repeat})")
        print(f"hand-written Faker loop : {raw:10,.0f} records/s")
        print(f"synth (template only)   : {syn:10,.0f} records/s")
        print(f"ratio synth / raw       : {syn / raw:10.3f}   (target >= 0.85)")
        print(f"synth full recipe       : {full:10,.0f} records/s  (+3 verifiers, for information)")

        small = peak_rss_mb(max(1, args.rss_n // 10))
        large = peak_rss_mb(args.rss_n)
        print("== peak RSS, synth.stream in a child process")
        print(f"n={args.rss_n // 10:<9,}: {small:7.1f} MB")
        print(
            f"n={args.rss_n:<9,}: {large:7.1f} MB   (target < 200 MB; growth x{large / small:.2f})"
        )

        one = through_synth(TEMPLATE_ONLY, args.workers_n, work / "w1", workers=1)
        two = through_synth(TEMPLATE_ONLY, args.workers_n, work / "w2", workers=2)
        print(f"== workers, n={args.workers_n} (process start-up included)")
        print(f"1 worker  : {one:10,.0f} records/s")
        print(f"2 workers : {two:10,.0f} records/s")
        print(f"speed-up  : {two / one:10.2f}x   (target >= 1.7x; cores here: {os.cpu_count()})")
        load = os.getloadavg()[0]
        if load > (os.cpu_count() or 1) * 0.5:
            print(f"note: load average {load:.1f} during the bench: other processes compete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
