/*
 * Django fix hints from SQL shapes: the demo blog's N+1 pages
 * (tests/demo/EXPECTED.md), other Django shapes, and shapes we must not
 * pretend to recognise.
 */
#include "hint.h"
#include "unit.h"

#define POSTS "SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"body\", " \
	"\"blog_post\".\"author_id\", \"blog_post\".\"category_id\", \"blog_post\".\"view_count\" " \
	"FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC"
#define AUTHORS "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" " \
	"ORDER BY \"blog_author\".\"id\" ASC"

static struct hint h;

static void derive(bool dup, const char *sql, const char *parent, const char *alt)
{
	hint_derive(&h, dup, sql, parent, alt);
}

static void test_forward_fk(void)
{
	derive(false, "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
	       "WHERE \"blog_author\".\"id\" = $1 LIMIT $2", POSTS, NULL);
	CHECK_INT(h.kind, HINT_SELECT_RELATED);
	CHECK_STR(h.fix, "Post.objects.select_related(\"author\")");
	CHECK_STR(h.model, "Post");
	CHECK_STR(h.field, "author");
	CHECK(!h.guessed);
	CHECK(strstr(h.why, "blog_author") != NULL);

	/* interleaved: the category query comes after the author query; the
	 * outer posts query names the column */
	derive(false, "SELECT \"blog_category\".\"id\", \"blog_category\".\"name\" FROM \"blog_category\" "
	       "WHERE \"blog_category\".\"id\" = $1 LIMIT $2",
	       "SELECT \"blog_author\".\"id\", \"blog_author\".\"name\" FROM \"blog_author\" "
	       "WHERE \"blog_author\".\"id\" = $1 LIMIT $2", POSTS);
	CHECK_STR(h.fix, "Post.objects.select_related(\"category\")");
	CHECK(!h.guessed);
}

static void test_forward_fk_other_field_name(void)
{
	/* Post.writer = ForeignKey(Author): the only FK column */
	derive(false, "SELECT \"blog_author\".\"id\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1 LIMIT $2",
	       "SELECT \"blog_post\".\"id\", \"blog_post\".\"writer_id\" FROM \"blog_post\"", NULL);
	CHECK_STR(h.fix, "Post.objects.select_related(\"writer\")");
	CHECK(h.guessed);
	CHECK(strstr(h.why, "related_name") != NULL);
	/* no parent at all */
	derive(false, "SELECT \"blog_author\".\"id\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1 LIMIT $2",
	       NULL, NULL);
	CHECK_INT(h.kind, HINT_SELECT_RELATED);
	CHECK_STR(h.fix, ".select_related(\"author\")");
	CHECK(h.guessed);
	/* Django's own tables */
	derive(false, "SELECT \"auth_user\".\"id\" FROM \"auth_user\" WHERE \"auth_user\".\"id\" = $1 LIMIT $2",
	       "SELECT \"blog_comment\".\"id\", \"blog_comment\".\"user_id\" FROM \"blog_comment\" "
	       "WHERE \"blog_comment\".\"post_id\" = $1", NULL);
	CHECK_STR(h.fix, "Comment.objects.select_related(\"user\")");
	CHECK(!h.guessed);
}

static void test_reverse_fk(void)
{
	derive(false, "SELECT \"blog_post\".\"id\", \"blog_post\".\"title\", \"blog_post\".\"author_id\" "
	       "FROM \"blog_post\" WHERE \"blog_post\".\"author_id\" = $1", AUTHORS, NULL);
	CHECK_INT(h.kind, HINT_PREFETCH_RELATED);
	CHECK_STR(h.fix, "Author.objects.prefetch_related(\"post_set\")");
	CHECK(h.guessed);	/* a related_name would change the accessor */

	/* reverse one-to-one: user.profile is a get() */
	derive(false, "SELECT \"app_profile\".\"id\" FROM \"app_profile\" WHERE \"app_profile\".\"user_id\" = $1 LIMIT $2",
	       "SELECT \"auth_user\".\"id\", \"auth_user\".\"username\" FROM \"auth_user\"", NULL);
	CHECK_INT(h.kind, HINT_SELECT_RELATED);
	CHECK_STR(h.fix, "User.objects.select_related(\"profile\")");
}

static void test_many_to_many(void)
{
	derive(false, "SELECT \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\" INNER JOIN "
	       "\"blog_post_tags\" ON (\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") "
	       "WHERE \"blog_post_tags\".\"post_id\" = $1", POSTS, NULL);
	CHECK_INT(h.kind, HINT_PREFETCH_RELATED);
	CHECK_STR(h.fix, "Post.objects.prefetch_related(\"tags\")");
	CHECK(!h.guessed);
	/* the reverse side: tag.post_set */
	derive(false, "SELECT \"blog_post\".\"id\" FROM \"blog_post\" INNER JOIN \"blog_post_tags\" ON "
	       "(\"blog_post\".\"id\" = \"blog_post_tags\".\"post_id\") WHERE \"blog_post_tags\".\"tag_id\" = $1",
	       "SELECT \"blog_tag\".\"id\", \"blog_tag\".\"name\" FROM \"blog_tag\"", NULL);
	CHECK_STR(h.fix, "Tag.objects.prefetch_related(\"post_set\")");
	CHECK(h.guessed);
}

static void test_count_and_exists(void)
{
	derive(false, "SELECT COUNT(*) AS \"__count\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = $1",
	       POSTS, NULL);
	CHECK_INT(h.kind, HINT_ANNOTATE_COUNT);
	CHECK_STR(h.fix, "Post.objects.annotate(Count(\"comment\"))");
	derive(false, "SELECT COUNT(*) AS \"__count\" FROM \"blog_tag\" INNER JOIN \"blog_post_tags\" ON "
	       "(\"blog_tag\".\"id\" = \"blog_post_tags\".\"tag_id\") WHERE \"blog_post_tags\".\"post_id\" = $1",
	       POSTS, NULL);
	CHECK_STR(h.fix, "Post.objects.annotate(Count(\"tags\"))");
	/* Django 3.2 writes (1), 4.2 writes 1 */
	derive(false, "SELECT ($1) AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = $2 LIMIT $3",
	       POSTS, NULL);
	CHECK_INT(h.kind, HINT_ANNOTATE_EXISTS);
	CHECK_STR(h.fix, "Post.objects.annotate(has_comment=Exists(Comment.objects.filter(post=OuterRef(\"pk\"))))");
	derive(false, "SELECT $1 AS \"a\" FROM \"blog_comment\" WHERE \"blog_comment\".\"post_id\" = $2 LIMIT $3",
	       POSTS, NULL);
	CHECK_INT(h.kind, HINT_ANNOTATE_EXISTS);
}

static void test_writes(void)
{
	derive(false, "INSERT INTO \"blog_visit\" (\"post_id\", \"created\") VALUES ($1, $2::timestamptz) "
	       "RETURNING \"blog_visit\".\"id\"", "SELECT \"blog_post\".\"id\" FROM \"blog_post\" ORDER BY \"blog_post\".\"id\" ASC", NULL);
	CHECK_INT(h.kind, HINT_BULK_CREATE);
	CHECK_STR(h.fix, "Visit.objects.bulk_create([...])");
	derive(false, "UPDATE \"blog_post\" SET \"view_count\" = $1 WHERE \"blog_post\".\"id\" = $2", POSTS, NULL);
	CHECK_INT(h.kind, HINT_BULK_UPDATE);
	CHECK_STR(h.fix, "Post.objects.bulk_update(objs, [\"view_count\"])");
	CHECK(strstr(h.why, "update()") != NULL);
	derive(false, "UPDATE \"blog_post\" SET \"view_count\" = (\"blog_post\".\"view_count\" + $1) "
	       "WHERE \"blog_post\".\"id\" = $2", POSTS, NULL);
	CHECK_STR(h.fix, "Post.objects.filter(...).update(view_count=F(\"view_count\") + ...)");
	derive(false, "DELETE FROM \"blog_comment\" WHERE \"blog_comment\".\"id\" = $1", POSTS, NULL);
	CHECK_INT(h.kind, HINT_BULK_DELETE);
	CHECK_STR(h.fix, "Comment.objects.filter(pk__in=...).delete()");
}

static void test_duplicates(void)
{
	derive(true, "SELECT \"blog_sitesettings\".\"id\", \"blog_sitesettings\".\"site_name\" FROM "
	       "\"blog_sitesettings\" WHERE \"blog_sitesettings\".\"id\" = $1 LIMIT $2", POSTS, NULL);
	CHECK_INT(h.kind, HINT_REUSE);
	CHECK_STR(h.fix, "load the Sitesettings once, before the loop, and reuse it");
	/* the same author again and again: select_related still fixes it */
	derive(true, "SELECT \"blog_author\".\"id\" FROM \"blog_author\" WHERE \"blog_author\".\"id\" = $1 LIMIT $2",
	       POSTS, NULL);
	CHECK_INT(h.kind, HINT_SELECT_RELATED);
}

static void test_unrecognised_stays_honest(void)
{
	derive(false, "SELECT \"blog_post\".\"id\" FROM \"blog_post\" WHERE \"blog_post\".\"slug\" = $1", AUTHORS, NULL);
	CHECK_INT(h.kind, HINT_NONE);
	CHECK_STR(h.fix, "");
	CHECK(strstr(h.why, "does not recognise") != NULL);
	CHECK(strstr(h.why, "\"blog_post\"") && strstr(h.why, "\"blog_author\""));
	derive(false, "SELECT nextval($1)", NULL, NULL);
	CHECK_INT(h.kind, HINT_NONE);
	CHECK(strstr(h.why, "does not recognise") != NULL);
	derive(false, "", NULL, NULL);
	CHECK_INT(h.kind, HINT_NONE);
}

static void test_hostile_names_are_not_used(void)
{
	/* a table name with a terminal escape: no model, no fix built from it */
	derive(false, "SELECT \"x\".\"id\" FROM \"\x1b[2Jx\" WHERE \"\x1b[2Jx\".\"id\" = $1", POSTS, NULL);
	CHECK(strchr(h.fix, '\x1b') == NULL);
	CHECK(strchr(h.why, '\x1b') == NULL);
	CHECK(strchr(h.model, '\x1b') == NULL);
	/* long names are cut, never overflow */
	char sql[1024];

	snprintf(sql, sizeof(sql), "SELECT \"a_%0200d\".\"id\" FROM \"a_%0200d\" WHERE \"a_%0200d\".\"id\" = $1", 1, 1, 1);
	derive(false, sql, POSTS, NULL);
	CHECK(strlen(h.fix) < sizeof(h.fix));
}

int main(void)
{
	RUN(test_forward_fk);
	RUN(test_forward_fk_other_field_name);
	RUN(test_reverse_fk);
	RUN(test_many_to_many);
	RUN(test_count_and_exists);
	RUN(test_writes);
	RUN(test_duplicates);
	RUN(test_unrecognised_stays_honest);
	RUN(test_hostile_names_are_not_used);
	return unit_summary();
}
