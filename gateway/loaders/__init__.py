"""Per-request DataLoaders that batch upstream reads, one module per domain."""
