from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Category(models.Model):
    name = models.CharField(max_length=100)


class Tag(models.Model):
    name = models.CharField(max_length=50)


class Post(models.Model):
    # Default related names (author.post_set, post.comment_set): the reverse
    # accessors the brief's patterns name, and what most real projects use.
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    category = models.ForeignKey(Category, on_delete=models.CASCADE)
    tags = models.ManyToManyField(Tag, blank=True)
    view_count = models.IntegerField(default=0)  # the "update" page bumps it


class Comment(models.Model):
    post = models.ForeignKey(Post, on_delete=models.CASCADE)
    text = models.CharField(max_length=200)


class Visit(models.Model):
    """Written by the "insert" page only and read by no page, so however much
    traffic runs, no other page's query count changes."""
    post = models.ForeignKey(Post, on_delete=models.CASCADE)
    created = models.DateTimeField(auto_now_add=True)


class SiteSettings(models.Model):
    """One row that the "duplicate" page re-reads for every post."""
    site_name = models.CharField(max_length=100)
    title_prefix = models.CharField(max_length=20)
