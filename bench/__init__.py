"""The benchmark suite (``make bench``; ``make bench-quick`` for a 10k-document run)."""
