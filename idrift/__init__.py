"""idrift: the claims of "Less Is More" (identity drift in InfiniteYou) as gated pytest benchmarks."""

__version__ = "0.1.0"
