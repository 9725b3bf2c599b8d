"""The HTTP side of `mailhub serve`: one aiohttp application in the service's own event
loop (RFC 8058 one-click unsubscribe now; the archive and member pages later).

`config` (the `[web]` table) imports nothing but the shared readers, so the core config
can read it; the rest (`pages`, `site`, `server`, `unsubscribe`) is started by the service.
"""
