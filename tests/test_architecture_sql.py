"""No SQL outside mailhub/store/: the rest of the package reaches the database only
through the store's functions and `Tx.savepoint()` (design.md; a second database
backend needs every statement in one place)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mailhub

PACKAGE = Path(mailhub.__file__).resolve().parent
STORE = PACKAGE / "store"
CALLS = {"execute", "executemany", "executescript", "execute_fetchall", "execute_insert"}
SQL = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|PRAGMA|BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE"
    r"|CREATE|ALTER|DROP|VACUUM|ATTACH|DETACH|WITH)\s",
    re.IGNORECASE,
)


def sql_outside_store() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        where = path.relative_to(PACKAGE.parent)
        here = []
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CALLS
            ):
                here.append((node.lineno, f"call to .{node.func.attr}()"))
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL.match(node.value)
                and node.value.split(None, 1)[0].isupper()
            ):
                here.append((node.lineno, f"SQL {node.value.strip()[:40]!r}"))
        found += [f"{where}:{line}: {what}" for line, what in sorted(here)]
    return found


def test_no_sql_outside_the_store() -> None:
    assert sql_outside_store() == []


def test_the_check_finds_sql(tmp_path: Path, monkeypatch) -> None:
    """The scan itself works: a statement and an execute call outside store/ are found."""
    package = tmp_path / "mailhub"
    (package / "store").mkdir(parents=True)
    (package / "store" / "ok.py").write_text('tx.execute("SELECT 1")\n')
    (package / "leak.py").write_text(
        'async def f(tx):\n    await tx.execute("SAVEPOINT message")\n'
        'Q = f"UPDATE inbound SET state = {x}"\n'
    )
    monkeypatch.setattr(__name__ + ".PACKAGE", package)
    monkeypatch.setattr(__name__ + ".STORE", package / "store")
    assert sql_outside_store() == [
        "mailhub/leak.py:2: SQL 'SAVEPOINT message'",
        "mailhub/leak.py:2: call to .execute()",
        "mailhub/leak.py:3: SQL 'UPDATE inbound SET state ='",
    ]
