"""Statements whose text is hostile to a tracer's output, and a client that
sends them.  Imported by test_tracer.py for the expected texts.

Run as a script: psycopg2, autocommit, each statement sent as bytes exactly as
listed (one PQexec each), so the expected SQL is byte-exact.
"""

# (sql bytes, expected status, expected sqlstate)
VALID = [
    # a terminal escape that would clear the screen if printed raw
    (b"SELECT 'a\x1b[2Jb' AS clear", "ok", ""),
    # newline, carriage return, tab, colour, quotes, backslashes, DEL, BEL
    (b"SELECT 'line1\nline2\r\tend' AS nl, 'red\x1b[31mtext\x1b[0m' AS esc, "
     b"'it''s \"quoted\"' AS q, E'back\\\\slash \\\\n' AS bs, 'del\x7f bel\x07' AS ctl",
     "ok", ""),
    # valid multi-byte UTF-8, including a C1 control (U+009B, 8-bit CSI)
    ("SELECT 'h\u00e9llo \u2713 \U0001F418 c1\u009b[31m' AS utf8".encode(), "ok", ""),
]
# invalid UTF-8: the server refuses it (22021 character_not_in_repertoire)
INVALID_UTF8 = (b"SELECT 'bad\xff\xfeutf8' AS bad", "error", "22021")

# exactly 10,000 bytes, ASCII: captured text is cut at 4096 bytes
LONG = b"SELECT '" + b"x" * (10000 - len(b"SELECT '' AS long")) + b"' AS long"
assert len(LONG) == 10000
# multi-byte text cut in the middle of a character: 4096 - 9 = 4087 bytes of
# two-byte characters after "SELECT 'x" is an odd count
LONG_UTF8 = ("SELECT 'x" + "\u00e9" * 3000 + "'").encode()
assert len(LONG_UTF8) == 6010

ALL = VALID + [INVALID_UTF8, (LONG, "ok", ""), (LONG_UTF8, "ok", "")]

if __name__ == "__main__":
    import psycopg2

    from _common import done, ready, wait_go

    conn = psycopg2.connect("")
    conn.autocommit = True
    conn.set_client_encoding("UTF8")
    ready(backends=[conn.get_backend_pid()])
    wait_go()
    cur = conn.cursor()
    for sql, status, _ in ALL:
        try:
            cur.execute(sql)
            assert status == "ok", sql
        except psycopg2.DataError as e:
            assert status == "error" and e.pgcode == "22021", (sql, e.pgcode)
    conn.close()
    done()
