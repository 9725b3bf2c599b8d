"""Delivery status notifications (RFC 3464) for mail we could not deliver."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage, Message
from email.utils import format_datetime

from mailhub.clock import as_datetime
from mailhub.messages import address, new_message_id, split_raw, to_bytes
from mailhub.parsing import clean


def build_dsn(
    *,
    domain: str,
    hostname: str,
    original_raw: bytes,
    envelope_sender: str,
    failures: list[tuple[str, str]],
    now: float,
    loop_id: str,
) -> EmailMessage:
    """A multipart/report to `envelope_sender` naming each failed recipient and the reason.

    Only the original's headers go back (text/rfc822-headers), never its body.
    """
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = address("Mail Delivery System", f"mailer-daemon@{domain}")
    msg["To"] = envelope_sender
    msg["Subject"] = "Undelivered mail returned to sender"
    msg["Date"] = format_datetime(as_datetime(now))
    msg["Message-ID"] = new_message_id(domain)
    msg["Auto-Submitted"] = "auto-replied"
    msg["X-Loop"] = loop_id
    lines = [
        "This is the mail system at " + hostname + ".",
        "",
        "Your message could not be delivered to the following recipient(s):",
        "",
    ]
    lines += [f"  <{rcpt}>: {reason}" for rcpt, reason in failures]
    msg.set_content("\n".join(lines) + "\n")
    msg.make_mixed()
    # message/delivery-status is a series of header blocks (RFC 3464 §2.1): the email
    # package models each block as a Message of its own.
    per_message = Message(policy=policy.SMTP)
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["Arrival-Date"] = format_datetime(as_datetime(now))
    blocks = [per_message]
    for rcpt, reason in failures:
        code = reason[:3] if reason[:3].isdigit() else "550"
        enhanced = re.search(r"\b([245]\.\d{1,3}\.\d{1,3})\b", reason)
        block = Message(policy=policy.SMTP)
        block["Final-Recipient"] = f"rfc822; {clean(rcpt)}"
        block["Action"] = "failed"
        block["Status"] = (
            enhanced.group(1) if enhanced else ("5.0.0" if code[0] == "5" else "4.4.7")
        )
        block["Diagnostic-Code"] = "smtp; " + clean(reason)[:400]
        blocks.append(block)
    report = Message(policy=policy.SMTP)
    report["Content-Type"] = "message/delivery-status"
    report.set_payload(blocks)
    headers, _ = split_raw(original_raw)
    original = EmailMessage(policy=policy.SMTP)
    original.set_content(headers.decode("ascii", "replace") + "\n", subtype="rfc822-headers")
    msg.attach(report)
    msg.attach(original)
    msg.set_type("multipart/report")
    msg.set_param("report-type", "delivery-status")
    return msg


__all__ = ["build_dsn", "to_bytes"]
