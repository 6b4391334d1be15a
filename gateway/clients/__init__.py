"""HTTP clients for the upstream services, one module per service; the gateway's only way to reach them."""
