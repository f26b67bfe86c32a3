"""The demo's settings with DEBUG=True: Django's own in-process query log.

With DEBUG on, every cursor is a CursorDebugWrapper that times each
execute() and appends {"sql", "time"} to connection.queries_log -- what a
Django user turns on to see queries without a tracer.  The benchmark runs a
second gunicorn with these settings (DJANGO_SETTINGS_MODULE and PYTHONPATH
point here); everything else is the demo's.
"""
from demosite.settings import *  # noqa: F401,F403

DEBUG = True
