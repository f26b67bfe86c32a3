"""One page per N+1 pattern, each as an N+1 view and a fixed view.

Written the way real code is: lazy querysets iterated by a `for`, related
objects reached through attributes.  Every line that sends SQL ends with a
marker comment `# [<page>/<variant> <label>]`; expected.py finds the markers
to tell tests (and pqsnoop's reports) which file:line sends which statement.
In the N+1 views the repeated query comes from the loop body line, not from
the `for` line, which sends the one query that fetches the list.

Pages return plain text built in Python: no templates, so no query hides in a
template.  See EXPECTED.md for each page's exact statements.
"""
from django.db.models import Count, Exists, F, OuterRef
from django.http import HttpResponse

from blog.data import SETTINGS_PK
from blog.models import Author, Comment, Post, SiteSettings, Visit


def text(lines):
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain")


# --- forward FK: post.author ------------------------------------------------

def fk_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [fk/nplus1 posts]
        lines.append("%s by %s" % (post.title, post.author.name))  # [fk/nplus1 author]
    return text(lines)


def fk_fixed(request):
    lines = []
    for post in Post.objects.select_related("author").order_by("id"):  # [fk/fixed posts]
        lines.append("%s by %s" % (post.title, post.author.name))
    return text(lines)


# --- interleaved (MN+1): post.author, then post.category --------------------

def mn_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [mn/nplus1 posts]
        author = post.author.name  # [mn/nplus1 author]
        category = post.category.name  # [mn/nplus1 category]
        lines.append("%s by %s in %s" % (post.title, author, category))
    return text(lines)


def mn_fixed(request):
    lines = []
    posts = Post.objects.select_related("author", "category").order_by("id")
    for post in posts:  # [mn/fixed posts]
        author = post.author.name
        category = post.category.name
        lines.append("%s by %s in %s" % (post.title, author, category))
    return text(lines)


# --- reverse FK: author.post_set ---------------------------------------------

def reverse_nplus1(request):
    lines = []
    for author in Author.objects.order_by("id"):  # [reverse/nplus1 authors]
        titles = [p.title for p in author.post_set.all()]  # [reverse/nplus1 posts]
        lines.append("%s: %s" % (author.name, ", ".join(titles)))
    return text(lines)


def reverse_fixed(request):
    lines = []
    authors = Author.objects.prefetch_related("post_set").order_by("id")
    for author in authors:  # [reverse/fixed authors+posts]
        titles = [p.title for p in author.post_set.all()]
        lines.append("%s: %s" % (author.name, ", ".join(titles)))
    return text(lines)


# --- many-to-many: post.tags -------------------------------------------------

def m2m_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [m2m/nplus1 posts]
        tags = [t.name for t in post.tags.all()]  # [m2m/nplus1 tags]
        lines.append("%s: %s" % (post.title, ", ".join(tags)))
    return text(lines)


def m2m_fixed(request):
    lines = []
    for post in Post.objects.prefetch_related("tags").order_by("id"):  # [m2m/fixed posts+tags]
        tags = [t.name for t in post.tags.all()]
        lines.append("%s: %s" % (post.title, ", ".join(tags)))
    return text(lines)


# --- COUNT per row: post.comment_set.count() ---------------------------------

def count_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [count/nplus1 posts]
        n = post.comment_set.count()  # [count/nplus1 count]
        lines.append("%s: %d comments" % (post.title, n))
    return text(lines)


def count_fixed(request):
    lines = []
    posts = Post.objects.annotate(n_comments=Count("comment")).order_by("id")
    for post in posts:  # [count/fixed posts]
        lines.append("%s: %d comments" % (post.title, post.n_comments))
    return text(lines)


# --- INSERT per row: one Visit per post --------------------------------------

def insert_nplus1(request):
    post_ids = list(Post.objects.order_by("id").values_list("id", flat=True))  # [insert/nplus1 ids]
    for post_id in post_ids:
        Visit.objects.create(post_id=post_id)  # [insert/nplus1 insert]
    return text(["recorded %d visits" % len(post_ids)])


def insert_fixed(request):
    post_ids = list(Post.objects.order_by("id").values_list("id", flat=True))  # [insert/fixed ids]
    # bulk_create wraps its INSERT in transaction.atomic(): BEGIN ... COMMIT
    Visit.objects.bulk_create([Visit(post_id=i) for i in post_ids])  # [insert/fixed insert]
    return text(["recorded %d visits" % len(post_ids)])


# --- UPDATE per row: bump every post's view_count ----------------------------

def update_nplus1(request):
    n = 0
    for post in Post.objects.order_by("id"):  # [update/nplus1 posts]
        post.view_count += 1
        post.save(update_fields=["view_count"])  # [update/nplus1 update]
        n += 1
    return text(["updated %d posts" % n])


def update_fixed(request):
    # One UPDATE computed by the server; no SELECT, no transaction needed.
    n = Post.objects.update(view_count=F("view_count") + 1)  # [update/fixed update]
    return text(["updated %d posts" % n])


# --- exists per row: post.comment_set.exists() -------------------------------

def exists_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [exists/nplus1 posts]
        has = post.comment_set.exists()  # [exists/nplus1 exists]
        lines.append("%s: %s" % (post.title, "discussed" if has else "quiet"))
    return text(lines)


def exists_fixed(request):
    lines = []
    has_comments = Exists(Comment.objects.filter(post=OuterRef("pk")))
    posts = Post.objects.annotate(has_comments=has_comments).order_by("id")
    for post in posts:  # [exists/fixed posts]
        lines.append("%s: %s" % (post.title, "discussed" if post.has_comments else "quiet"))
    return text(lines)


# --- duplicate: the very same query for every post ---------------------------

def duplicate_nplus1(request):
    lines = []
    for post in Post.objects.order_by("id"):  # [duplicate/nplus1 posts]
        site = SiteSettings.objects.get(pk=SETTINGS_PK)  # [duplicate/nplus1 settings]
        lines.append(site.title_prefix + post.title)
    return text(lines)


def duplicate_fixed(request):
    lines = []
    site = SiteSettings.objects.get(pk=SETTINGS_PK)  # [duplicate/fixed settings]
    for post in Post.objects.order_by("id"):  # [duplicate/fixed posts]
        lines.append(site.title_prefix + post.title)
    return text(lines)


# --- not patterns --------------------------------------------------------------

PAGES = {
    "fk": (fk_nplus1, fk_fixed),
    "mn": (mn_nplus1, mn_fixed),
    "reverse": (reverse_nplus1, reverse_fixed),
    "m2m": (m2m_nplus1, m2m_fixed),
    "count": (count_nplus1, count_fixed),
    "insert": (insert_nplus1, insert_fixed),
    "update": (update_nplus1, update_fixed),
    "exists": (exists_nplus1, exists_fixed),
    "duplicate": (duplicate_nplus1, duplicate_fixed),
}


def index(request):
    """List of pages; sends no SQL (and opens no connection)."""
    return text(["/%s/%s" % (p, v) for p in PAGES for v in ("nplus1", "fixed")])


def health(request):
    """Readiness probe for demo_env; sends no SQL (and opens no connection)."""
    return text(["ok"])
