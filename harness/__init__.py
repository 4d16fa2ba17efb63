"""Test harness shared by tests/, e2e/ and bench/: real servers, clients and browsers."""
