"""In-store mode: a store server's aggregates on their way to head office.

- `outbox`: the store-days whose rollups changed and are not yet accepted upstream.
- `days`: one store-day's rollups as the wire's `UpstreamDay`, read (store server) and stored
  (head office) through one table-to-field mapping.
- `pusher`: the store server's loop that sends the outbox to head office.
"""
