"""Market data providers (Alpaca, Massive/Polygon): live WebSocket feeds and REST backfill.

Each provider module (`alpaca`, `massive`) is pure: it builds the provider's
protocol messages and maps its JSON into this service's ticks and bars, with no I/O.
`session` runs any provider's WebSocket through reconnects, `backfill` pages any
provider's REST history into the store. Nothing here may log a credential.
"""
