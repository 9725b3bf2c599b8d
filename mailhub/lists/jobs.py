"""Scheduled jobs of the lists app."""

from __future__ import annotations

from mailhub.lists.digest import JOBS as MEMBER_DIGESTS
from mailhub.lists.moderation import JOBS as FACILITATOR_DIGESTS

JOBS = [*MEMBER_DIGESTS, *FACILITATOR_DIGESTS]
