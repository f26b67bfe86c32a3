from django.apps import AppConfig


class BlogConfig(AppConfig):
    name = "blog"
    # Explicit so Django 3.2 does not warn (models.W042) and the migration
    # does not depend on a project-wide default.
    default_auto_field = "django.db.models.AutoField"
