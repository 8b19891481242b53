"""eLibrary business: the library's own numbers (titles, copies, loans, members), from the
exporter's business queries and the app's loan counters."""

from __future__ import annotations

from typing import Any

from dashboards.house import (
    BLUE,
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Inputs,
    Row,
    dashboard,
    query_variable,
    selector,
    stat,
    steps,
    target,
    timeseries,
)

UID = "elibrary-business"
SEL = selector()
AVAILABLE = selector('state="available"')
ON_LOAN = selector('state="on_loan"')


def build(inputs: Inputs) -> dict[str, Any]:
    overview = Row(
        "Now",
        [
            stat(
                "Titles",
                "Distinct book titles in the catalogue.",
                [target(f"max(elibrary_book_titles{SEL})", "titles")],
                unit="short",
                thresholds=steps(BLUE),
                color_mode="value",
                width=4,
            ),
            stat(
                "Copies available",
                "Copies on the shelf, free to borrow now.",
                [target(f"max(elibrary_book_copies{AVAILABLE})", "available")],
                unit="short",
                thresholds=steps(RED, (1, GREEN)),
                color_mode="value",
                width=4,
            ),
            stat(
                "Copies on loan",
                "Copies members hold now.",
                [target(f"max(elibrary_book_copies{ON_LOAN})", "on loan")],
                unit="short",
                thresholds=steps(BLUE),
                color_mode="value",
                width=4,
            ),
            stat(
                "Active loans",
                "Loans not yet returned.",
                [target(f"max(elibrary_loans_active{SEL})", "active")],
                unit="short",
                thresholds=steps(BLUE),
                color_mode="value",
                width=4,
            ),
            stat(
                "Overdue loans",
                "Loans past their due date and not returned.",
                [target(f"max(elibrary_loans_overdue{SEL})", "overdue")],
                unit="short",
                thresholds=steps(GREEN, (1, YELLOW), (10, ORANGE)),
                width=4,
            ),
            stat(
                "Oldest overdue loan",
                "How long the oldest overdue loan is past due.",
                [target(f"max(elibrary_loans_oldest_overdue_age_seconds{SEL})", "age")],
                unit="dtdurations",
                thresholds=steps(GREEN, (86400, YELLOW), (7 * 86400, ORANGE)),
                width=4,
            ),
        ],
    )
    loans = Row(
        "Loans",
        [
            timeseries(
                "Copies available against on loan",
                "Copies on the shelf and copies borrowed, over time.",
                [
                    target(
                        f"max by (state) (elibrary_book_copies{SEL})",
                        "{{state}}",
                    )
                ],
                unit="short",
                stack=True,
                width=8,
            ),
            timeseries(
                "Active and overdue loans",
                "Open loans and the overdue ones among them.",
                [
                    target(f"max(elibrary_loans_active{SEL})", "active"),
                    target(f"max(elibrary_loans_overdue{SEL})", "overdue"),
                ],
                unit="short",
                width=8,
            ),
            timeseries(
                "Loans per hour",
                "Loans created in the last hour (the database's count), and the rate of "
                "loans created and returned through the app, per hour.",
                [
                    target(f"max(elibrary_loans_created_last_hour{SEL})", "created (database)"),
                    target(
                        f"sum(rate(elibrary_loans_created_total{SEL}[$__rate_interval])) * 3600",
                        "created (app)",
                    ),
                    target(
                        f"sum(rate(elibrary_loans_returned_total{SEL}[$__rate_interval])) * 3600",
                        "returned (app)",
                    ),
                ],
                unit="short",
                width=8,
            ),
        ],
    )
    members = Row(
        "Members",
        [
            timeseries(
                "Members by status",
                "Registered members by account status.",
                [target(f"max by (status) (elibrary_members{SEL})", "{{status}}")],
                unit="short",
                stack=True,
            ),
            timeseries(
                "Business query freshness",
                "Seconds since each business query last succeeded: a stale figure above "
                "means the exporter could not read it.",
                [
                    target(
                        f"time() - max by (query) "
                        f"(elibrary_exporter_query_last_success_timestamp_seconds{SEL})",
                        "{{query}}",
                    )
                ],
                unit="s",
                thresholds=steps(GREEN, (300, ORANGE), (900, RED)),
                threshold_style="dashed",
            ),
        ],
    )
    return dashboard(
        UID,
        "eLibrary business",
        "The library's numbers: catalogue, copies, loans and members.",
        [overview, loans, members],
        variables=[
            query_variable("job", "Job", "elibrary_book_titles"),
            query_variable("instance", "Instance", "elibrary_book_titles", after=["job"]),
        ],
        time_from="now-24h",
        refresh="1m",
    )
