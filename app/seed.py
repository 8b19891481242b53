"""Realistic sample data, generated in memory and bulk-loaded, for demos and scale tests.

The plan (which books, members and loans) is built by pure functions from a random seed;
counters (``available_copies``, ``active_loans``) are computed from the plan before the
rows are written, so the data is consistent without per-row updates.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from app import db as sql
from app.auth import hash_password
from app.db import Database, to_text

__all__ = ["SeedPlan", "SeedReport", "isbn13", "plan_seed", "write_seed"]

_ADJECTIVES = (
    "Silent",
    "Crimson",
    "Hidden",
    "Last",
    "Broken",
    "Golden",
    "Distant",
    "Forgotten",
    "Winter",
    "Burning",
    "Quiet",
    "Endless",
    "Little",
    "Northern",
    "Paper",
    "Glass",
)
_NOUNS = (
    "River",
    "Garden",
    "Library",
    "Kingdom",
    "Harbour",
    "Mountain",
    "Letter",
    "Orchard",
    "Lighthouse",
    "Archive",
    "Storm",
    "Voyage",
    "Mirror",
    "Forest",
    "Compass",
    "Atlas",
)
_PATTERNS = ("The {a} {n}", "{a} {n}", "A {n} of {n2}s", "The {n} and the {n2}", "{n}s of {a} {n2}")
_FIRST = (
    "Ada",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Keiko",
    "Luis",
    "Maren",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tomas",
)
_LAST = (
    "Abara",
    "Berg",
    "Castillo",
    "Duarte",
    "Eklund",
    "Fontaine",
    "Gallo",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
)
#: share of seeded loans that are still open (the rest are history)
OPEN_SHARE = 0.03
#: share of open loans that are past their due date
OVERDUE_SHARE = 0.25


def isbn13(number: int) -> str:
    """A valid ISBN-13 in the 978 range for a number below 10**9."""
    body = f"978{number % 10**9:09d}"
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class SeedPlan:
    """What will be written; ids start after what the database holds."""

    books: list[tuple[int, str, str, str, int, int]]  # id, title, author, isbn, copies, free
    members: list[tuple[int, str, str, int]]  # id, email, name, active loans
    open_loans: list[tuple[int, int, datetime, bool]]  # book, member, borrowed, overdue
    history_loans: int
    first_book_id: int
    first_member_id: int


@dataclass(frozen=True)
class SeedReport:
    """What was written."""

    books: int
    members: int
    loans: int
    open_loans: int


def plan_seed(
    books: int,
    members: int,
    loans: int,
    *,
    first_book_id: int,
    first_member_id: int,
    loan_limit: int,
    now: datetime,
    seed: int,
) -> SeedPlan:
    """Decide the rows to write; pure apart from the given random seed."""
    rng = random.Random(seed)
    book_rows = []
    copies_left: dict[int, int] = {}
    for i in range(books):
        book_id = first_book_id + i
        title = rng.choice(_PATTERNS).format(
            a=rng.choice(_ADJECTIVES), n=rng.choice(_NOUNS), n2=rng.choice(_NOUNS)
        )
        author = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        copies = rng.choice((1, 1, 2, 2, 3, 4, 5, 8))
        copies_left[book_id] = copies
        book_rows.append((book_id, title, author, isbn13(book_id), copies, copies))

    member_rows = []
    room: dict[int, int] = {}
    for i in range(members):
        member_id = first_member_id + i
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        member_rows.append((member_id, f"member{member_id}@example.org", name, 0))
        room[member_id] = loan_limit

    open_loans: list[tuple[int, int, datetime, bool]] = []
    wanted_open = int(loans * OPEN_SHARE) if books and members else 0
    book_ids = [b for b in copies_left for _ in range(copies_left[b])]
    rng.shuffle(book_ids)
    member_ids = list(room)
    for book_id in book_ids[: min(wanted_open, len(book_ids), loan_limit * members)]:
        member_id = member_ids[len(open_loans) % len(member_ids)]
        if room[member_id] == 0:
            break
        room[member_id] -= 1
        copies_left[book_id] -= 1
        overdue = rng.random() < OVERDUE_SHARE
        days_ago = rng.uniform(15, 60) if overdue else rng.uniform(0, 13)
        open_loans.append((book_id, member_id, now - timedelta(days=days_ago), overdue))

    book_rows = [(b[0], b[1], b[2], b[3], b[4], copies_left[b[0]]) for b in book_rows]
    member_rows = [(m[0], m[1], m[2], loan_limit - room[m[0]]) for m in member_rows]
    return SeedPlan(
        books=book_rows,
        members=member_rows,
        open_loans=open_loans,
        history_loans=max(0, loans - len(open_loans)) if books and members else 0,
        first_book_id=first_book_id,
        first_member_id=first_member_id,
    )


def _history(plan: SeedPlan, now: datetime, seed: int, loan_days: int) -> Iterator[tuple]:
    rng = random.Random(seed + 1)
    last_book = plan.first_book_id + len(plan.books) - 1
    last_member = plan.first_member_id + len(plan.members) - 1
    for _ in range(plan.history_loans):
        borrowed = now - timedelta(days=rng.uniform(20, 730))
        returned = borrowed + timedelta(days=rng.uniform(1, loan_days + 10))
        yield (
            rng.randint(plan.first_book_id, last_book),
            rng.randint(plan.first_member_id, last_member),
            to_text(borrowed),
            to_text(borrowed + timedelta(days=loan_days)),
            to_text(returned),
            0,
        )


def write_seed(
    database: Database,
    *,
    books: int,
    members: int,
    loans: int,
    loan_limit: int,
    loan_days: int,
    now: datetime,
    seed: int = 1,
    password: str | None = None,
) -> SeedReport:
    """Add generated books, members and loans to a migrated database."""
    # Without a given password the seeded members cannot log in: nobody learns a default.
    password_hash = hash_password(password or secrets.token_urlsafe(24))
    stamp = to_text(now)
    with database.session() as s:
        first_book = sql.max_id(s, "books") + 1
        first_member = sql.max_id(s, "members") + 1
        plan = plan_seed(
            books,
            members,
            loans,
            first_book_id=first_book,
            first_member_id=first_member,
            loan_limit=loan_limit,
            now=now,
            seed=seed,
        )
        with sql.bulk_load(s):
            sql.bulk_insert(
                s,
                "books",
                (
                    "id",
                    "title",
                    "author",
                    "isbn",
                    "copies",
                    "available_copies",
                    "created_at",
                    "updated_at",
                ),
                ((*b, stamp, stamp) for b in plan.books),
            )
            sql.bulk_insert(
                s,
                "book_terms",
                ("term", "book_id"),
                ((term, b[0]) for b in plan.books for term in sql.book_terms(b[1], b[2])),
            )
            sql.bulk_insert(
                s,
                "members",
                (
                    "id",
                    "email",
                    "name",
                    "password_hash",
                    "role",
                    "status",
                    "active_loans",
                    "created_at",
                ),
                (
                    (m[0], m[1], m[2], password_hash, "member", "active", m[3], stamp)
                    for m in plan.members
                ),
            )
            columns = ("book_id", "member_id", "borrowed_at", "due_at", "returned_at", "renewed")
            sql.bulk_insert(
                s,
                "loans",
                columns,
                (
                    (book, member, to_text(at), to_text(at + timedelta(days=loan_days)), None, 0)
                    for book, member, at, _overdue in plan.open_loans
                ),
            )
            history = sql.bulk_insert(s, "loans", columns, _history(plan, now, seed, loan_days))
    return SeedReport(
        len(plan.books), len(plan.members), history + len(plan.open_loans), len(plan.open_loans)
    )
