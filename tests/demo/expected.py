"""Exactly what each demo page sends to PostgreSQL per request.

Measured against the server's statement log (log_statement=all, filtered by
the request's backend PID; see measure.py, which prints the same thing from a
live run, and test_demo_app.py, which asserts it).  EXPECTED.md is the prose
version.

Statements are compared after normalize(): literals become %s, IN lists and
VALUES rows collapse, so `... "blog_author"."id" = 7 LIMIT 21` matches
AUTHOR_BY_PK.  Before normalize() the texts are exactly as Django and psycopg2
send them: psycopg2 interpolates parameters client-side, so the server (and
libpq, and pqsnoop) sees literal values, never $1 placeholders.

Importable without Django.
"""

import os
import re

from blog import data

DEMO_DIR = os.path.dirname(os.path.abspath(__file__))
VIEWS_FILE = os.path.join(DEMO_DIR, "blog", "views.py")

PAGES = ["fk", "mn", "reverse", "m2m", "count", "insert", "update", "exists",
         "duplicate"]
VARIANTS = ["nplus1", "fixed"]


def url(page, variant):
    return "/%s/%s" % (page, variant)


# --- normalization -----------------------------------------------------------
_STRING = re.compile(r"'(?:[^']|'')*'")
# a number that is not part of an identifier (U0, "blog_post") or a word
_NUMBER = re.compile(r'(?<![\w".])-?\d+(?:\.\d+)?(?![\w"])')
_ROWS = re.compile(r"(\(%s(?:::\w+)?(?:, %s(?:::\w+)?)*\))(?:, \1)+")
_IN_LIST = re.compile(r"IN \(%s(?:, %s)+\)")


def normalize(sql):
    """Literals -> %s; IN (%s, %s, ...) -> IN (%s, ...); repeated VALUES rows
    -> one row then `, ...`.  Casts (::timestamptz) are kept."""
    s = _STRING.sub("%s", sql)
    s = _NUMBER.sub("%s", s)
    s = _ROWS.sub(r"\1, ...", s)
    s = _IN_LIST.sub("IN (%s, ...)", s)
    return s


# --- the statements (normalized) ---------------------------------------------
# Django, on every new connection: the database reports TimeZone=Etc/UTC
# (demo_env pins it), settings want UTC, so Django's ensure_timezone() sends
# this before the page's first query.  Nothing else: no SHOW, no
# SET client_encoding (already UTF8), no isolation level, no BEGIN.
SET_TIME_ZONE = "SET TIME ZONE %s"

_POST_COLS = ('"blog_post"."id", "blog_post"."title", "blog_post"."body", '
              '"blog_post"."author_id", "blog_post"."category_id", '
              '"blog_post"."view_count"')

POSTS = ('SELECT %s FROM "blog_post" ORDER BY "blog_post"."id" ASC' % _POST_COLS)
POST_IDS = 'SELECT "blog_post"."id" FROM "blog_post" ORDER BY "blog_post"."id" ASC'
AUTHORS = ('SELECT "blog_author"."id", "blog_author"."name" FROM "blog_author" '
           'ORDER BY "blog_author"."id" ASC')

# get() and FK descriptors add LIMIT 21 (MAX_GET_RESULTS) to detect duplicates.
AUTHOR_BY_PK = ('SELECT "blog_author"."id", "blog_author"."name" FROM "blog_author" '
                'WHERE "blog_author"."id" = %s LIMIT %s')
CATEGORY_BY_PK = ('SELECT "blog_category"."id", "blog_category"."name" FROM '
                  '"blog_category" WHERE "blog_category"."id" = %s LIMIT %s')
POSTS_WITH_AUTHOR = (
    'SELECT %s, "blog_author"."id", "blog_author"."name" FROM "blog_post" '
    'INNER JOIN "blog_author" ON ("blog_post"."author_id" = "blog_author"."id") '
    'ORDER BY "blog_post"."id" ASC' % _POST_COLS)
POSTS_WITH_AUTHOR_CATEGORY = (
    'SELECT %s, "blog_author"."id", "blog_author"."name", "blog_category"."id", '
    '"blog_category"."name" FROM "blog_post" '
    'INNER JOIN "blog_author" ON ("blog_post"."author_id" = "blog_author"."id") '
    'INNER JOIN "blog_category" ON ("blog_post"."category_id" = "blog_category"."id") '
    'ORDER BY "blog_post"."id" ASC' % _POST_COLS)

# Reverse FK: no ORDER BY (Post has no Meta.ordering).
POSTS_OF_AUTHOR = ('SELECT %s FROM "blog_post" WHERE "blog_post"."author_id" = %%s'
                   % _POST_COLS)
POSTS_OF_AUTHORS = ('SELECT %s FROM "blog_post" WHERE "blog_post"."author_id" '
                    'IN (%%s, ...)' % _POST_COLS)

TAGS_OF_POST = ('SELECT "blog_tag"."id", "blog_tag"."name" FROM "blog_tag" '
                'INNER JOIN "blog_post_tags" ON ("blog_tag"."id" = "blog_post_tags"."tag_id") '
                'WHERE "blog_post_tags"."post_id" = %s')
TAGS_OF_POSTS = ('SELECT ("blog_post_tags"."post_id") AS "_prefetch_related_val_post_id", '
                 '"blog_tag"."id", "blog_tag"."name" FROM "blog_tag" '
                 'INNER JOIN "blog_post_tags" ON ("blog_tag"."id" = "blog_post_tags"."tag_id") '
                 'WHERE "blog_post_tags"."post_id" IN (%s, ...)')

COMMENT_COUNT = ('SELECT COUNT(*) AS "__count" FROM "blog_comment" '
                 'WHERE "blog_comment"."post_id" = %s')
POSTS_WITH_COUNT = (
    'SELECT %s, COUNT("blog_comment"."id") AS "n_comments" FROM "blog_post" '
    'LEFT OUTER JOIN "blog_comment" ON ("blog_post"."id" = "blog_comment"."post_id") '
    'GROUP BY "blog_post"."id" ORDER BY "blog_post"."id" ASC' % _POST_COLS)

# Django 3.2's exists(): SELECT (1) AS "a" ... LIMIT 1
COMMENT_EXISTS = ('SELECT (%s) AS "a" FROM "blog_comment" '
                  'WHERE "blog_comment"."post_id" = %s LIMIT %s')
POSTS_WITH_EXISTS = (
    'SELECT %s, EXISTS(SELECT (%%s) AS "a" FROM "blog_comment" U0 '
    'WHERE U0."post_id" = "blog_post"."id" LIMIT %%s) AS "has_comments" '
    'FROM "blog_post" ORDER BY "blog_post"."id" ASC' % _POST_COLS)

INSERT_VISIT = ('INSERT INTO "blog_visit" ("post_id", "created") VALUES '
                '(%s, %s::timestamptz) RETURNING "blog_visit"."id"')
INSERT_VISITS = ('INSERT INTO "blog_visit" ("post_id", "created") VALUES '
                 '(%s, %s::timestamptz), ... RETURNING "blog_visit"."id"')
# bulk_create() runs in transaction.atomic(savepoint=False): psycopg2 sends
# BEGIN before the INSERT once autocommit is off, Django then COMMITs.
BEGIN = "BEGIN"
COMMIT = "COMMIT"

# save(update_fields=[...]) sends the new value, not an increment.
UPDATE_POST = 'UPDATE "blog_post" SET "view_count" = %s WHERE "blog_post"."id" = %s'
UPDATE_ALL_POSTS = ('UPDATE "blog_post" SET "view_count" = '
                    '("blog_post"."view_count" + %s)')

SETTINGS_BY_PK = ('SELECT "blog_sitesettings"."id", "blog_sitesettings"."site_name", '
                  '"blog_sitesettings"."title_prefix" FROM "blog_sitesettings" '
                  'WHERE "blog_sitesettings"."id" = %s LIMIT %s')


# Per page: a list of (repetitions, [(label, statement), ...]) blocks, in
# order, after the connection's SET TIME ZONE.  A block with two statements
# repeats as A B A B ... (the MN+1 shape).  `label` is the marker in
# blog/views.py (`# [<page>/<variant> <label>]`) on the line that sends it.
N = data.N_POSTS
EXPECTED = {
    ("fk", "nplus1"): [(1, [("posts", POSTS)]),
                       (N, [("author", AUTHOR_BY_PK)])],
    ("fk", "fixed"): [(1, [("posts", POSTS_WITH_AUTHOR)])],

    ("mn", "nplus1"): [(1, [("posts", POSTS)]),
                       (N, [("author", AUTHOR_BY_PK),
                            ("category", CATEGORY_BY_PK)])],
    ("mn", "fixed"): [(1, [("posts", POSTS_WITH_AUTHOR_CATEGORY)])],

    ("reverse", "nplus1"): [(1, [("authors", AUTHORS)]),
                            (data.N_AUTHORS, [("posts", POSTS_OF_AUTHOR)])],
    ("reverse", "fixed"): [(1, [("authors+posts", AUTHORS),
                                ("authors+posts", POSTS_OF_AUTHORS)])],

    ("m2m", "nplus1"): [(1, [("posts", POSTS)]),
                        (N, [("tags", TAGS_OF_POST)])],
    ("m2m", "fixed"): [(1, [("posts+tags", POSTS),
                            ("posts+tags", TAGS_OF_POSTS)])],

    ("count", "nplus1"): [(1, [("posts", POSTS)]),
                          (N, [("count", COMMENT_COUNT)])],
    ("count", "fixed"): [(1, [("posts", POSTS_WITH_COUNT)])],

    ("insert", "nplus1"): [(1, [("ids", POST_IDS)]),
                           (N, [("insert", INSERT_VISIT)])],
    ("insert", "fixed"): [(1, [("ids", POST_IDS),
                               ("insert", BEGIN),
                               ("insert", INSERT_VISITS),
                               ("insert", COMMIT)])],

    ("update", "nplus1"): [(1, [("posts", POSTS)]),
                           (N, [("update", UPDATE_POST)])],
    ("update", "fixed"): [(1, [("update", UPDATE_ALL_POSTS)])],

    ("exists", "nplus1"): [(1, [("posts", POSTS)]),
                           (N, [("exists", COMMENT_EXISTS)])],
    ("exists", "fixed"): [(1, [("posts", POSTS_WITH_EXISTS)])],

    ("duplicate", "nplus1"): [(1, [("posts", POSTS)]),
                              (N, [("settings", SETTINGS_BY_PK)])],
    ("duplicate", "fixed"): [(1, [("settings", SETTINGS_BY_PK),
                                  ("posts", POSTS)])],
}

# Distinct raw texts (before normalize) among one request's repeated block of
# each N+1 page.  Django has no identity map: post.author re-fetches an
# author it fetched for an earlier post, so the fk page's 100 queries are only
# 10 distinct texts (each sent 10 times) -- an exact-duplicate detector fires
# there too, not only on the duplicate page.
DISTINCT_TEXTS = {
    "fk": data.N_AUTHORS,
    "mn": data.N_AUTHORS + data.N_CATEGORIES,
    "reverse": data.N_AUTHORS,
    "m2m": N,
    "count": N,
    "insert": N,   # post ids (and timestamps) differ
    "update": N,   # post ids differ
    "exists": N,
    "duplicate": 1,
}


def groups(page, variant):
    return EXPECTED[(page, variant)]


def statements(page, variant, new_connection=True, labels=False):
    """The normalized statements of one request, in order.  new_connection:
    the request opened its connection (always, with CONN_MAX_AGE=0), so
    SET TIME ZONE comes first.  labels: (label, statement) pairs instead,
    the SET labelled "connect"."""
    out = [("connect", SET_TIME_ZONE)] if new_connection else []
    for reps, block in groups(page, variant):
        out.extend(block * reps)
    return out if labels else [s for _, s in out]


def count(page, variant, new_connection=True):
    return len(statements(page, variant, new_connection))


def repeated(page):
    """The N+1 page's loop: (repetitions, [(label, statement, line), ...])."""
    reps, block = groups(page, "nplus1")[-1]
    lines = view_lines()
    return reps, [(label, sql, lines[(page, "nplus1", label)]) for label, sql in block]


_MARKER = re.compile(r"#\s*\[(\w+)/(\w+) ([\w+]+)\]\s*$")


def view_lines():
    """{(page, variant, label): line number in VIEWS_FILE} from the markers."""
    out = {}
    with open(VIEWS_FILE) as f:
        for n, line in enumerate(f, 1):
            m = _MARKER.search(line)
            if m:
                out[m.groups()] = n
    return out
