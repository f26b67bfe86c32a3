"""WSGI entry point for gunicorn: demosite.wsgi:application.

get_wsgi_application() runs django.setup(); building the models' metadata
touches the database backend, which imports psycopg2 and so maps libpq into
the worker before it serves its first request (no query is sent).
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
application = get_wsgi_application()
