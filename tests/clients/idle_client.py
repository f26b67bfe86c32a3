"""Connects (so libpq is loaded and a connection is open), then sends nothing
and stays until its stdin is closed.  Target for `-d` and the not-root test."""

import sys

import psycopg2

from _common import ready

conn = psycopg2.connect("")
ready(backends=[conn.get_backend_pid()])
sys.stdin.read()
