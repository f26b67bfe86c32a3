"""Settings of the pqsnoop demo: a blog whose pages each show one N+1 pattern.

Deliberately minimal -- one app, no contrib apps, no templates, no sessions --
so that every SQL statement a page sends comes from that page's own view and
can be counted exactly (see EXPECTED.md).
"""
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = "pqsnoop-demo-not-secret"  # never deployed; no sessions or signing
DEBUG = False  # as in production: Django does not keep a query log in memory
ALLOWED_HOSTS = ["*"]  # bound to 127.0.0.1 (or a socket) only

INSTALLED_APPS = ["blog"]
MIDDLEWARE = ["blog.middleware.BackendPidMiddleware"]
ROOT_URLCONF = "demosite.urls"
WSGI_APPLICATION = "demosite.wsgi.application"

# libpq's own variables, so the demo follows whatever PgCluster.env() says.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "demo"),
        "USER": os.environ.get("PGUSER", ""),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
        # Django's default 0: one new connection per request, as most
        # deployments run.  DEMO_CONN_MAX_AGE > 0 keeps one per thread.
        "CONN_MAX_AGE": int(os.environ.get("DEMO_CONN_MAX_AGE", "0")),
    }
}

# USE_TZ with UTC: Django sends SET TIME ZONE 'UTC' on every new connection
# unless the server already reports TimeZone=UTC (demo_env pins the database's
# time zone so that this is deterministic; see EXPECTED.md).
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False

# With DEBUG=False Django would only mail errors to ADMINS (none): print them
# to stderr instead, which gunicorn writes to its log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
