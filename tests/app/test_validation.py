"""Table tests for the pure parts: ISBN check digits, search terms, settings."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_config
from app.db import book_terms
from app.seed import isbn13
from app.validation import is_valid_isbn, normalize_isbn


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("978-0-441-17271-9", True),
        ("9780441172719", True),
        ("0-441-17271-7", True),
        ("080442957X", True),
        ("080442957x", True),
        ("9780441172710", False),
        ("0441172718", False),
        ("X804429570", False),
        ("978044117271", False),
        ("97804411727190", False),
        ("", False),
    ],
    ids=[
        "ISBN-13 with hyphens",
        "ISBN-13 plain",
        "ISBN-10 with hyphens",
        "ISBN-10 with X check digit",
        "lower-case x counts as X",
        "ISBN-13 wrong check digit",
        "ISBN-10 wrong check digit",
        "X only allowed last",
        "12 digits",
        "14 digits",
        "empty",
    ],
)
def test_isbn_check_digits(raw: str, valid: bool) -> None:
    assert is_valid_isbn(normalize_isbn(raw)) is valid


def test_generated_isbns_are_valid() -> None:
    assert all(is_valid_isbn(isbn13(n)) for n in range(0, 10**9, 7_777_777))


@pytest.mark.parametrize(
    ("texts", "terms"),
    [
        (("The Silent River", "Ada Berg"), ["ada", "berg", "river", "silent", "the"]),
        (("Ünïcode Straße",), ["straße", "ünïcode"]),
        (("C++ & Rust: 2nd ed.",), ["2nd", "c", "ed", "rust"]),
        (("x" * 100,), ["x" * 64]),
    ],
    ids=["title and author words", "unicode words", "punctuation splits", "long words cut"],
)
def test_search_terms(texts: tuple[str, ...], terms: list[str]) -> None:
    assert book_terms(*texts) == terms


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_URL": "postgres://x/y"}, "DATABASE_URL: must start with"),
        ({"SRE_DB_POOL_SIZE": "zero"}, "SRE_DB_POOL_SIZE: 'zero' is not valid"),
        ({"SRE_DB_POOL_SIZE": "0"}, "SRE_DB_POOL_SIZE: must be between 1 and 256"),
        ({"SRE_METRICS_ENABLED": "perhaps"}, "SRE_METRICS_ENABLED: 'perhaps' is not valid"),
        ({"SRE_LOG_LEVEL": "LOUD"}, "SRE_LOG_LEVEL: must be one of"),
        ({"SRE_SECRET_KEY_FILE": "/no/such/key"}, "SRE_SECRET_KEY_FILE: /no/such/key: no such"),
    ],
    ids=[
        "unknown database scheme",
        "pool size not a number",
        "pool size zero",
        "boolean that is neither",
        "unknown log level",
        "missing key file",
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env=env)
    assert message in str(caught.value)
    assert str(caught.value).startswith("environment: ")


def test_every_bad_setting_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(env={"SRE_LOAN_LIMIT": "0", "SRE_LOAN_DAYS": "0"})
    text = str(caught.value)
    assert "SRE_LOAN_LIMIT" in text and "SRE_LOAN_DAYS" in text
