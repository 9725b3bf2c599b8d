"""Per-member personalisation of list mail at delivery time (placeholder until the lists app
lands): returns the envelope sender and the message bytes for one member."""

from __future__ import annotations

from mailhub.config import Config


def personalise(config: Config, secret: bytes, list_name: str, raw: bytes, rcpt: str
                ) -> tuple[str, bytes]:
    return f"{list_name}-bounces@{config.server.domain}", raw
