"""Recipient address → route: thin names over the address spec (mailhub.addresses), where
the table of every address kind, its pattern and its route is, read top to bottom, first
match wins. Kept so the intake, the processor and the apps keep importing from here."""

from __future__ import annotations

from mailhub.addresses import ROUTES, AddressBook, Route, is_local, resolve

__all__ = ["ROUTES", "AddressBook", "Route", "is_local", "resolve"]
