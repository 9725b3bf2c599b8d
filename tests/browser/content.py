"""What the browser tests' services hold: a members-only list with a Welsh thread and an
English post, another list (its member is a non-member of the first), and the people."""

from __future__ import annotations

from tests.browser.harness import LiveHub

# `gwyrdd`: members-only (the default), Welsh first. `glas`: public, so its member `dai`
# can sign in and still be nobody on gwyrdd.
LISTS = """
[[lists]]
name = "gwyrdd"
display_name = "Green Team"
display_name_cy = "Tîm Gwyrdd"
description = "Working together on greener services."
description_cy = "Cydweithio ar wasanaethau gwyrddach."
archive = "members"

[[lists]]
name = "glas"
display_name = "Blue Team"
display_name_cy = "Tîm Glas"
archive = "public"
"""
CAI = "cai@example.org"  # a member of gwyrdd: signs in, reads, searches, changes, leaves
ANN = "ann@example.net"  # a member of gwyrdd who posts
DAI = "dai@example.org"  # a member of glas only: a non-member of gwyrdd
NOBODY = "neb@example.org"  # a member of nothing
MEMBERS = {
    "gwyrdd": {CAI: "Cai Jones", ANN: "Ann Smith"},
    "glas": {DAI: "Dai Evans"},
}

# The Welsh thread: "caffî" (with a circumflex) is found by "caffi", "dŵr" by "dwr".
FIRST = """\
From: Cai Jones <cai@example.org>
To: gwyrdd@cop.example.org
Subject: Cyfarfod yn Llandudno
Message-ID: <cyfarfod-1@example.org>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Bydd y cyfarfod nesaf yn Llandudno ddydd Iau.
Mae'r caffî ger y pier yn dda, ac mae dŵr am ddim.
"""
REPLY = """\
From: Ann Smith <ann@example.net>
To: gwyrdd@cop.example.org
Subject: Re: Cyfarfod yn Llandudno
Message-ID: <cyfarfod-2@example.net>
In-Reply-To: <cyfarfod-1@example.org>
References: <cyfarfod-1@example.org>
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Gwych! Welwn ni chi yn y caffi. Dw i'n dod â'r siartiau newydd.
"""
ENGLISH = """\
From: Ann Smith <ann@example.net>
To: gwyrdd@cop.example.org
Subject: Accessible charts
Message-ID: <charts-1@example.net>
Content-Type: text/plain; charset=utf-8

The quarterly report now uses colour-blind safe palettes.
"""
GLAS = """\
From: Dai Evans <dai@example.org>
To: glas@cop.example.org
Subject: Blue skies
Message-ID: <blue-1@example.org>
Content-Type: text/plain; charset=utf-8

A public post on the blue list.
"""
# Words of gwyrdd's posts that no page may show someone who is not its member.
PRIVATE_WORDS = ("Llandudno", "caffî", "siartiau", "palettes", "Accessible charts")


def seed(live: LiveHub) -> None:
    for list_name, people in MEMBERS.items():
        live.add_members(list_name, people)
    live.post(CAI, "gwyrdd", FIRST)
    live.post(ANN, "gwyrdd", REPLY)
    live.post(ANN, "gwyrdd", ENGLISH)
    live.post(DAI, "glas", GLAS)
