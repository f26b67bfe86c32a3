"""The demo's seed data, as plain Python (no Django import).

Shared by the `seed` management command, which writes it, and by
expected.py, which derives each page's exact query count from it: the N of
every N+1 page is one of the sizes below, so changing a size here changes the
expected counts in one place.
"""

N_AUTHORS = 10
N_CATEGORIES = 5
N_TAGS = 8
N_POSTS = 100
SETTINGS_PK = 1  # the single SiteSettings row the "duplicate" page re-reads


def author_names():
    return ["Author %d" % i for i in range(1, N_AUTHORS + 1)]


def category_names():
    return ["Category %d" % i for i in range(1, N_CATEGORIES + 1)]


def tag_names():
    return ["tag%d" % i for i in range(1, N_TAGS + 1)]


def posts():
    """(title, author index, category index) for each post, 0-based indexes.

    Authors and categories rotate, so every author has N_POSTS / N_AUTHORS
    posts and every category is used.
    """
    return [("Post %d" % i, (i - 1) % N_AUTHORS, (i - 1) % N_CATEGORIES)
            for i in range(1, N_POSTS + 1)]


def post_tags(i):
    """0-based tag indexes of post number i (1-based): 2 or 3 tags each."""
    return [k for k in range(N_TAGS) if (i + k) % 3 == 0]


def comment_count(i):
    """Comments on post number i (1-based): 0, 1, 2, 3, 0, ... so a quarter of
    the posts have none (the "exists" page then sees both answers)."""
    return i % 4


N_COMMENTS = sum(comment_count(i) for i in range(1, N_POSTS + 1))
