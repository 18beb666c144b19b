"""How a bill export (BIL-7, bills.exports) is shown on REST and in the console: its
request, state, progress (lines written of the expected total, and a whole
percentage), file and times in business time, and its signed link when done."""

from __future__ import annotations

from feecenter.present.text import time_text

FIELDS = ("id", "uin", "month", "level", "fmt", "tag_key", "state", "lines_written",
          "lines_total", "file_name", "size_bytes", "error", "request_key")
TIMES = ("created_at", "started_at", "finished_at", "expires_at")


def progress_percent(row: dict) -> int | None:
    """0–100, None while the total is unknown; 100 once done."""
    if row["state"] == "done":
        return 100
    total = row["lines_total"]
    if not total:
        return None
    return min(99, row["lines_written"] * 100 // total)


def export_json(row: dict, download_url: str | None = None) -> dict:
    out = {name: row[name] for name in FIELDS}
    out.update({name: time_text(row[name]) for name in TIMES})
    out["progress_percent"] = progress_percent(row)
    out["download_url"] = download_url
    return out
