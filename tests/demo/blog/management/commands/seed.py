"""manage.py seed: write blog/data.py's deterministic data into an empty DB.

Rows are created in a fixed order on a freshly migrated database, so primary
keys are 1..N too (the test and EXPECTED.md rely on the counts, not the ids).
"""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from blog import data
from blog.models import Author, Category, Comment, Post, SiteSettings, Tag


class Command(BaseCommand):
    help = "Create the demo's deterministic seed data (database must be empty)."

    @transaction.atomic
    def handle(self, *args, **options):
        if Post.objects.exists():
            raise CommandError("the database already has posts: seed a fresh one")
        authors = Author.objects.bulk_create(
            [Author(name=n) for n in data.author_names()])
        categories = Category.objects.bulk_create(
            [Category(name=n) for n in data.category_names()])
        tags = Tag.objects.bulk_create([Tag(name=n) for n in data.tag_names()])
        posts = Post.objects.bulk_create([
            Post(title=t, body="Body of %s." % t, author=authors[a],
                 category=categories[c])
            for t, a, c in data.posts()])
        Through = Post.tags.through
        Through.objects.bulk_create([
            Through(post=p, tag=tags[k])
            for i, p in enumerate(posts, 1) for k in data.post_tags(i)])
        Comment.objects.bulk_create([
            Comment(post=p, text="Comment %d on %s" % (j, p.title))
            for i, p in enumerate(posts, 1)
            for j in range(1, data.comment_count(i) + 1)])
        SiteSettings.objects.create(pk=data.SETTINGS_PK, site_name="pqsnoop demo",
                                    title_prefix="[demo] ")
        self.stdout.write("seeded %d authors, %d categories, %d tags, %d posts, "
                          "%d comments" % (len(authors), len(categories), len(tags),
                                           len(posts), data.N_COMMENTS))
