#!/usr/bin/env python3
"""Sums a `perf report --no-children --sort sym -g none --stdio` listing by the crate (or part)
each symbol belongs to, for BENCHMARKS.md's profile. Usage:
    perf report -i perf.data --no-children --sort sym -g none --stdio | by_crate.py
"""
import re
import sys

# First match wins: (part, pattern on the symbol text).
PARTS = [
    ("kernel (scheduling, loopback TCP, syscalls)", r"^\[k\]"),
    ("allocator (malloc, free)", r"\b(_?int_malloc|malloc|cfree|_int_free|realloc|_int_realloc|unlink_chunk|malloc_consolidate|mi_[a-z_]+|_mi_[a-z_]+)\b"),
    ("memcpy, memcmp", r"__mem(move|cpy|cmp|set)"),
    ("OpenTelemetry", r"opentelemetry"),
    ("tracing, log formatting", r"tracing|core::fmt|alloc::fmt|nu_ansi_term|sharded_slab"),
    ("sqlx", r"sqlx"),
    ("apalis", r"apalis"),
    ("lapin, AMQP", r"lapin|amq_protocol|async_rs|flume"),
    ("hyper", r"hyper"),
    ("axum, tower", r"axum|tower"),
    ("serde, JSON", r"serde"),
    ("tokio", r"tokio|mio::"),
    ("orderflow", r"orderflow|shared::"),
]


def main() -> None:
    totals: dict[str, float] = {}
    line_re = re.compile(r"^\s*([0-9.]+)%\s+(.*)$")
    for line in sys.stdin:
        m = line_re.match(line)
        if not m:
            continue
        share, symbol = float(m.group(1)), m.group(2)
        part = next((p for p, pattern in PARTS if re.search(pattern, symbol)), "other (libc, std, futures, ...)")
        totals[part] = totals.get(part, 0.0) + share
    for part, share in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"| {part} | {share:.1f} % |")


if __name__ == "__main__":
    main()
