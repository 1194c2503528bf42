"""Mutation fuzz loop: N mutated sFlow datagrams through the typed decoder and the fast path.

    .venv/bin/python -m bench.fuzz_sflow [--count 1000000] [--seed 1] [--fast c|python]

Each datagram is a seed from tests/fuzz/seeds/sflow/ with 1–6 random mutations (mostly 1–2) (bit flips,
32-bit words set to boundary values, truncation, insertion, deletion, splicing). Both decoders
see every datagram; per datagram they must agree on valid/malformed, on the reason, and on the
number of flow samples and address rows. Prints counts by outcome and reason, disagreements
and unexpected exceptions (the first of each kind is written to artifacts/fuzz_sflow/).
Exit status 1 if anything other than SflowError escaped or the decoders disagreed.

Memory safety of the C path: build it with sanitizers into a copy of the tree and run this loop:

    mkdir -p /tmp/asan/tests/fuzz && cp -r collector bench /tmp/asan/
    cp -r tests/fuzz/seeds /tmp/asan/tests/fuzz/ && rm /tmp/asan/collector/*.so
    gcc -shared -fPIC -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -I"$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')" \
        collector/sflow/_sflow_fast.c -o /tmp/asan/collector/_sflow_fast$(.venv/bin/python -c \
        'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
    cd /tmp/asan && ASAN_OPTIONS=detect_leaks=0 PYTHONPATH=/tmp/asan \
        LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" \
        /work/main/.venv/bin/python -m bench.fuzz_sflow --count 200000
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import time
from collections import Counter
from pathlib import Path

from topfib.collector.sflow.decoder import decode_datagram
from topfib.collector.sflow.fast import FastSflowDecoder, Implementation, c_extension_available
from topfib.collector.sflow.records import SflowError

SEED_DIR = Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "seeds" / "sflow"
FINDINGS_DIR = Path("artifacts") / "fuzz_sflow"
INTERESTING_WORDS = (0, 1, 2, 3, 4, 5, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


def mutate(seed: bytes, seeds: list[bytes], rng: random.Random) -> bytes:
    data = bytearray(seed)
    # mostly one or two small mutations, so many datagrams stay valid deep into their records
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 6))):
        op = rng.choice((0, 0, 0, 1, 1, 1, 2, 3, 4, 5))
        at = rng.randrange(len(data)) if data else 0
        if op == 0 and data:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1 and len(data) >= 4:
            aligned = min(at & ~3, len(data) - 4)
            data[aligned : aligned + 4] = struct.pack("!I", rng.choice(INTERESTING_WORDS))
        elif op == 2:
            del data[at:]
        elif op == 3:
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif op == 4:
            del data[at : at + rng.randint(1, 16)]
        elif op == 5:
            other = rng.choice(seeds)
            data[at:] = other[rng.randrange(len(other) + 1) :]
    return bytes(data)


def save_finding(kind: str, datagram: bytes) -> None:
    FINDINGS_DIR.mkdir(parents=True, exist_ok=True)
    path = FINDINGS_DIR / f"{kind}.bin"
    if not path.exists():
        path.write_bytes(datagram)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--fast", choices=["c", "python"], default="c" if c_extension_available() else "python"
    )
    args = parser.parse_args()
    fast_impl: Implementation = args.fast

    seeds = [path.read_bytes() for path in sorted(SEED_DIR.glob("*.bin"))]
    rng = random.Random(args.seed)
    fast = FastSflowDecoder(fast_impl)
    outcomes: Counter[str] = Counter()
    escaped: Counter[str] = Counter()
    disagreements: Counter[str] = Counter()
    flow_samples = 0
    start = time.monotonic()
    for index in range(args.count):
        datagram = mutate(rng.choice(seeds), seeds, rng)
        try:
            decoded = decode_datagram(datagram)
            typed_reason, typed_flows = "ok", len(decoded.flow_samples)
            typed_rows = sum(1 for sample in decoded.flow_samples if sample.dst is not None)
        except SflowError as exc:
            typed_reason, typed_flows, typed_rows = exc.reason, 0, 0
        except Exception as exc:  # the property under test: nothing else may escape
            escaped[f"typed:{type(exc).__name__}"] += 1
            save_finding(f"typed-{type(exc).__name__}", datagram)
            continue
        try:
            fast.feed(datagram, "192.0.2.1")
            batch = fast.take()
        except Exception as exc:
            escaped[f"fast:{type(exc).__name__}"] += 1
            save_finding(f"fast-{type(exc).__name__}", datagram)
            continue
        fast_reason = next(iter(batch.malformed))[0] if batch.malformed else "ok"
        fast_rows = len(batch.v4_dst) + len(batch.v6_dst_hi)
        outcomes[typed_reason] += 1
        flow_samples += typed_flows
        if (typed_reason, typed_flows, typed_rows) != (fast_reason, batch.flow_samples, fast_rows):
            kind = f"{typed_reason}->{fast_reason}"
            disagreements[kind] += 1
            save_finding(f"disagree-{kind}", datagram)
        if index and index % 100_000 == 0:
            print(f"  {index:,} datagrams, {time.monotonic() - start:.0f} s", file=sys.stderr)

    elapsed = time.monotonic() - start
    print(f"{args.count:,} mutated datagrams (seed {args.seed}, fast path: {fast_impl}) in {elapsed:.0f} s")
    print(f"decoded: {outcomes['ok']:,} datagrams with {flow_samples:,} flow samples")
    for reason, number in sorted(outcomes.items()):
        if reason != "ok":
            print(f"malformed.{reason}: {number:,}")
    print(f"unexpected exceptions: {sum(escaped.values())} {dict(escaped)}")
    print(f"decoder disagreements: {sum(disagreements.values())} {dict(disagreements)}")
    return 1 if escaped or disagreements else 0


if __name__ == "__main__":
    raise SystemExit(main())
