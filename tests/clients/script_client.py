"""psycopg2, autocommit: runs the statements the test sends, one at a time.

After the usual handshake (_common.py: ready, then "go"), each line on stdin
is one JSON object and gets one JSON line back on stdout:

    {"sql": "SELECT 1"}           (or "sql_hex": "53454c...", for raw bytes)
    {"sql": "...", "repeat": 100}  the same statement 100 times
    {"batch": [{"sql": ...}, {"sql": ..., "repeat": 8}]}  back to back
    -> {"ok": true, "rows": 1}    or {"ok": false, "sqlstate": "22P02"}

EOF on stdin ends the client (exit 0).  One PQexec per statement, so the
test knows exactly how many queries it sent.
"""

import binascii
import json
import sys

import psycopg2

from _common import done, ready, say, wait_go

conn = psycopg2.connect("")
conn.autocommit = True
conn.set_client_encoding("UTF8")
cur = conn.cursor()
ready(backends=[conn.get_backend_pid()])
wait_go()
sent = 0
for line in sys.stdin:
    if not line.strip():
        continue
    cmd = json.loads(line)
    rows = errors = 0
    sqlstate = None
    for step in cmd.get("batch", [cmd]):
        sql = binascii.unhexlify(step["sql_hex"]) if "sql_hex" in step else step["sql"].encode()
        for _ in range(step.get("repeat", 1)):
            sent += 1
            try:
                cur.execute(sql)
                rows = cur.rowcount
            except psycopg2.Error as e:
                errors += 1
                sqlstate = e.pgcode
    if errors:
        say(ok=False, sqlstate=sqlstate, errors=errors, sent=sent)
    else:
        say(ok=True, rows=rows, sent=sent)
conn.close()
done(sent=sent)
