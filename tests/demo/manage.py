#!/usr/bin/python3
"""Django's command-line utility for the demo (migrate, seed, makemigrations).

The database comes from PGHOST/PGPORT/PGUSER/PGDATABASE (see demosite/settings.py).
"""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
