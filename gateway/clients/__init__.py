"""HTTP clients for the upstream services, one module per service resource (leads, sources, imports, the roster,
reporting); the gateway's only way to reach them."""
