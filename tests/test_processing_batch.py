"""Processing handles queued messages in batches, one commit per batch, each message in a
savepoint of its own: a message that fails rolls back alone (its mail included), and each
neighbour's mail is queued once. Real service over loopback SMTP, real SQLite file, real
SMTP sink."""

from __future__ import annotations

import sqlite3

from mailhub.clock import ManualClock
from mailhub.context import Context, Incoming, Runtime
from mailhub.enquiries import handle_admin
from mailhub.processing import BATCH, Processor
from mailhub.routing import Route
from mailhub.store import Store, inbound, outbound
from mailhub.store.inbound import UNSEALABLE
from tests.support.hub import DOMAIN, message, running_hub

SENDERS = [f"sender{n}@example.net" for n in range(7)]
POISON = 3  # the middle one


async def queue_without_processing(tmp_path) -> None:
    """Seven enquiries accepted while the processor is held (as after a crash)."""
    async with running_hub(tmp_path) as hub:
        (task,) = [t for t in hub.service._tasks if t.get_name() == "processor"]
        task.cancel()
        for n, sender in enumerate(SENDERS):
            raw = message(sender=sender, body=f"Enquiry {n}\n")
            code, _ = await hub.send(sender, [f"enquiries@{DOMAIN}"], raw)
            assert code == 250


async def test_one_poison_message_in_a_batch_leaves_its_neighbours_alone(tmp_path):
    await queue_without_processing(tmp_path)
    # The middle one claims to be sealed with a conduct key, and none is configured: its
    # handling fails inside its savepoint.
    with sqlite3.connect(tmp_path / "mailhub.db") as db:
        seqs = [s for (s,) in db.execute("SELECT seq FROM inbound ORDER BY seq")]
        db.execute("UPDATE inbound SET sealed = 1 WHERE seq = ?", (seqs[POISON],))
    assert len(seqs) <= BATCH  # one batch, one commit
    async with running_hub(tmp_path) as hub:
        await hub.idle()
        async with hub.service.store.read() as tx:
            failed = await inbound.failed(tx)
            states = dict((s, n) for s, n, _ in await inbound.summary(tx))
        # Every neighbour's forward and acknowledgement, once each; nothing for the poison.
        forwards = hub.sink.to("helper@example.net")
        assert sorted(m.message["Reply-To"].addresses[0].addr_spec for m in forwards) == sorted(
            s for n, s in enumerate(SENDERS) if n != POISON
        )
        for n, sender in enumerate(SENDERS):
            assert len(hub.sink.to(sender)) == (0 if n == POISON else 1), sender
    assert [(f[2], f[4]) for f in failed] == [(SENDERS[POISON], f"Unsealable: {UNSEALABLE}")]
    assert states == {"done": len(SENDERS) - 1, "failed": 1}


async def test_a_handler_that_fails_after_queueing_mail_takes_only_its_own_mail_back(tmp_path):
    """The savepoint undoes what the failing handler had written already (its forward), and
    the neighbours' forwards, written before and after it, commit with the batch."""
    await queue_without_processing(tmp_path)
    from mailhub.apps import load_config

    config = load_config(tmp_path / "mailhub.toml")
    store = await Store.open(config.storage.path)
    try:
        runtime = Runtime.create(config, ManualClock())

        async def forward_then_fail(ctx: Context, mail: Incoming, route: Route) -> None:
            await handle_admin(ctx, mail, route)  # queues a forward to the admins
            if mail.mail_from == SENDERS[POISON]:
                raise RuntimeError("failed after queueing its forward")

        processor = Processor(
            store, runtime, lambda: None, handlers={"enquiries": forward_then_fail}
        )
        async with store.read() as tx:
            items = await inbound.next_queued(tx, BATCH)
        assert len(items) == len(SENDERS)
        await processor.process(items)
        async with store.read() as tx:
            due = await outbound.due(tx, float("inf"), 100, set())
            failed = await inbound.failed(tx)
            states = dict((s, n) for s, n, _ in await inbound.summary(tx))
    finally:
        await store.close()
    senders = [m.raw.split(b"Reply-To: ", 1)[1].split(b"\r\n", 1)[0].decode() for m in due]
    assert senders == [s for n, s in enumerate(SENDERS) if n != POISON]
    assert [(f[2], f[4]) for f in failed] == [
        (SENDERS[POISON], "RuntimeError: failed after queueing its forward")
    ]
    assert states == {"done": len(SENDERS) - 1, "failed": 1}
