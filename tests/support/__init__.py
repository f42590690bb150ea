"""Helpers shared by the tests: real server processes and polling."""
