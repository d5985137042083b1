"""Normalization benchmark: microseconds per event, each vendor's typical payload.

    .venv/bin/python bench/normalize.py [--seconds 2]

Times what the ingest edge does per delivery after the body is read and before
storage: decode the envelope, redact, map to canonical events (Event structs built).
"typical" is each vendor's most frequent delivery (page views, Kartra's page-visit ping,
Affitor's lead); "rich" is the heaviest (orders with items, a full Kartra sale).
Prints median and p99 (of 50-delivery batches, thread CPU time) per vendor and the
median across the mix.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from payloads import MIX, TYPICAL

from receiver.config import shipped_mappings_dir
from receiver.ingest.envelope import decode_inner, decode_outer
from receiver.mapping import load_dir
from receiver.pipeline import map_document


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="per vendor")
    args = parser.parse_args()
    mappings = load_dir(shipped_mappings_dir())
    for label, mix in (("typical", TYPICAL), ("rich", MIX)):
        bench(label, mix, mappings, args.seconds)


def bench(label: str, mix: list, mappings: dict, seconds: float) -> None:  # type: ignore[type-arg]
    all_samples: list[float] = []
    print(f"{label:8} {'events':>6} {'median µs':>10} {'p99 µs':>8}")
    for source, path, body, ctype, headers in mix:
        m = mappings[source]
        env = m.envelope

        def once(m=m, env=env, body=body, ctype=ctype, headers=headers, path=path, source=source) -> int:  # type: ignore[no-untyped-def]
            doc = decode_outer(env, body, ctype, "")
            decode_inner(env, doc)
            m.redact(doc)
            out = map_document(m, doc, headers, path, "2025-11-25T00:00:00.000Z", "d")
            assert out.status == "accepted", (source, out.reasons, out.unmapped)
            return len(out.events)

        n_events = once()
        for _ in range(200):  # warm caches
            once()
        samples: list[float] = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            # CPU time of this thread, in batches of 50: the machine is shared, and time
            # spent descheduled is not the mapping's.
            t0 = time.thread_time_ns()
            for _ in range(50):
                once()
            samples.append((time.thread_time_ns() - t0) / 1000 / 50 / n_events)
        samples.sort()
        all_samples += samples
        p99 = samples[int(len(samples) * 0.99)]
        print(f"{source:8} {n_events:6} {statistics.median(samples):10.2f} {p99:8.2f}")
    print(f"{label}_mix_median_us_per_event={statistics.median(all_samples):.2f}")
    print()


if __name__ == "__main__":
    main()
