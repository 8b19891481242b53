"""Load tests: Locust journeys and profiles against the library service (DESIGN.md)."""
