"""Records the memory tests send: valid unless a test overrides a field."""

from __future__ import annotations

from typing import Any


def attempt(n: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid fix attempt as a producer would send it; ``n`` makes it distinct."""
    data: dict[str, Any] = {
        "issue_type": "security",
        "message": f"Possible SQL injection via string-based query construction #{n}",
        "file_path": "src/auth/sql_query.py",
        "line_number": 40 + n,
        "stage": "bandit",
        "agent": "SecurityAgent",
        "strategy": "security_fix",
        "success": True,
        "session_id": "sess-1",
        "timestamp": f"2025-03-01T10:{n % 60:02d}:00Z",
        "project": "billing",
        "language": "python",
    }
    data.update(overrides)
    return data
