"""Delivery status notifications (RFC 3464) for mail we could not deliver."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from mailhub.clock import as_datetime
from mailhub.messages import address, new_message_id, split_raw, to_bytes


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
    # Build the report by hand-assembled MIME parts through the email package.
    report = EmailMessage(policy=policy.SMTP)
    status_fields = [
        f"Reporting-MTA: dns; {hostname}",
        f"Arrival-Date: {format_datetime(as_datetime(now))}",
    ]
    per_rcpt = []
    for rcpt, reason in failures:
        code = reason[:3] if reason[:3].isdigit() else "550"
        status = "5.0.0" if code.startswith("5") else "4.4.7"
        per_rcpt.append(
            "\n".join(
                [
                    f"Final-Recipient: rfc822; {rcpt}",
                    "Action: failed",
                    f"Status: {status}",
                    f"Diagnostic-Code: smtp; {' '.join(reason.split())[:400]}",
                ]
            )
        )
    report.set_content(
        ("\n".join(status_fields) + "\n\n" + "\n\n".join(per_rcpt) + "\n").encode(
            "ascii", "replace"
        ),
        maintype="message",
        subtype="delivery-status",
    )
    headers, _ = split_raw(original_raw)
    original = EmailMessage(policy=policy.SMTP)
    original.set_content(headers.decode("ascii", "replace") + "\n", subtype="rfc822-headers")
    msg.attach(report)
    msg.attach(original)
    msg.set_type("multipart/report")
    msg.set_param("report-type", "delivery-status")
    return msg


__all__ = ["build_dsn", "to_bytes"]
