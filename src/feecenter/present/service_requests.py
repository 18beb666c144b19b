"""How a service request (工单) is shown (REST, console): its kind and state named in
zh and en, amount fields as yuan strings, times in business time, its history and its
attachments without their bytes."""

from __future__ import annotations

from urllib.parse import quote

from feecenter.money import format_yuan
from feecenter.present.text import time_text
from feecenter.service_requests.kinds import KINDS
from feecenter.service_requests.rules import AMOUNT

FIELDS = ("id", "uin", "kind", "kind_zh", "kind_en", "state", "state_zh", "state_en",
          "fields", "created_by", "created_at", "due_at", "overdue", "overdue_at", "taken_by",
          "taken_at", "ended_by", "ended_at", "reason", "result")
TIMES = ("created_at", "due_at", "overdue_at", "taken_at", "ended_at")


def field_values(kind_code: str, fields: dict) -> dict:
    """The stored field values as shown: amounts (fen) as yuan strings."""
    kind = KINDS.get(kind_code)
    amounts = {f.name for f in kind.fields if f.type == AMOUNT} if kind else set()
    return {k: format_yuan(v) if k in amounts else v for k, v in fields.items()}


def download_headers(row: dict) -> dict[str, str]:
    """How an attachment is served (REST and console): always a download of its sniffed
    type, never rendered inline, never re-sniffed by the browser, no script or plugin."""
    ascii_name = row["filename"].encode("ascii", "replace").decode().replace("?", "_")
    return {"Content-Type": row["content_type"],
            "Content-Disposition": (f'attachment; filename="{ascii_name}"; '
                                    f"filename*=UTF-8''{quote(row['filename'])}"),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store"}


def attachment_json(row: dict) -> dict:
    return {"id": row["id"], "filename": row["filename"], "content_type": row["content_type"],
            "size": row["size"], "sha256": row["sha256"], "created_by": row["created_by"],
            "created_at": time_text(row["created_at"])}


def event_json(row: dict) -> dict:
    return {"event": row["event"], "state": row["state"], "actor": row["actor"],
            "note": row["note"], "created_at": time_text(row["created_at"])}


def request_json(request: dict) -> dict:
    out = {k: request.get(k) for k in FIELDS}
    out["fields"] = field_values(request["kind"], request["fields"])
    for name in TIMES:
        out[name] = time_text(request.get(name))
    if "events" in request:
        out["events"] = [event_json(e) for e in request["events"]]
        out["attachments"] = [attachment_json(a) for a in request["attachments"]]
    return out
