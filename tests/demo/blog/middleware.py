"""Tell the client which PostgreSQL backend served the request.

Tests match the server's statement log (log_line_prefix '%p') to a request by
this backend PID.  psycopg2's get_backend_pid() is libpq's PQbackendPID(): it
reads the connection struct and sends nothing, so the header does not change
what the page sends.  No header when the page never opened a connection.
"""
from django.db import connection


class BackendPidMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        # Read before Django's request_finished handler closes the connection
        # (CONN_MAX_AGE=0), which happens after the response is returned.
        if connection.connection is not None:
            response["X-Pg-Backend-Pid"] = str(connection.connection.get_backend_pid())
        return response
