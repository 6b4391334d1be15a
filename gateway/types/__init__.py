"""GraphQL types and the query/mutation fields for them, one module per domain."""
