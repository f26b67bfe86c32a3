/*
 * A Django fix for a repeated query, derived from the SQL shape Django's ORM
 * writes (quoted "app_model"."column" names, <field>_id foreign keys,
 * app_model_field many-to-many tables):
 *
 *   SELECT .. FROM "blog_author" WHERE "blog_author"."id" = $1 LIMIT $2,
 *     after a query selecting "blog_post"."author_id"
 *                                  -> Post.objects.select_related("author")
 *   .. WHERE "blog_post"."author_id" = $1    -> Author.objects.prefetch_related("post_set")
 *   .. INNER JOIN "blog_post_tags" .. WHERE "blog_post_tags"."post_id" = $1
 *                                            -> Post.objects.prefetch_related("tags")
 *   SELECT COUNT(*) .. WHERE "blog_comment"."post_id" = $1
 *                                            -> Post.objects.annotate(Count("comment"))
 *   SELECT (1) AS "a" .. WHERE .."post_id" = $1 LIMIT 1 -> annotate(Exists(...))
 *   INSERT per row -> bulk_create, UPDATE per row -> bulk_update / update(),
 *   DELETE per row -> filter(pk__in=...).delete()
 *
 * Model and field names come from table and column names; where Django's
 * naming conventions are all we have (a related_name may differ), the hint
 * says so (hint.guessed).  An unrecognised shape gets HINT_NONE and a plain
 * description of what repeats.  Names taken from the SQL are only used when
 * they look like Python identifiers, so the fix text holds no hostile bytes
 * (reports escape it anyway).
 */
#ifndef PQSNOOP_HINT_H
#define PQSNOOP_HINT_H

#include <stdbool.h>

enum hint_kind {
	HINT_NONE = 0,		/* shape not recognised */
	HINT_SELECT_RELATED,	/* forward FK / one-to-one loaded per row */
	HINT_PREFETCH_RELATED,	/* reverse FK or many-to-many loaded per row */
	HINT_ANNOTATE_COUNT,	/* COUNT(*) per row */
	HINT_ANNOTATE_EXISTS,	/* exists() per row */
	HINT_BULK_CREATE,	/* INSERT per row */
	HINT_BULK_UPDATE,	/* UPDATE per row */
	HINT_BULK_DELETE,	/* DELETE per row */
	HINT_REUSE,		/* the very same query again: keep the result */
};

#define HINT_NAME_MAX 64

struct hint {
	enum hint_kind kind;
	char fix[320];		/* Django code, "" when there is none to offer */
	char why[400];		/* what repeats, and what the fix changes */
	char model[HINT_NAME_MAX];	/* model whose queryset changes, or "" */
	char field[HINT_NAME_MAX];	/* relation, or "" */
	bool guessed;		/* names from conventions, not seen in the SQL */
};

/* "select_related", "prefetch_related", ..., "none" */
const char *hint_kind_name(enum hint_kind k);

/*
 * Fills h for a statement `sql` repeated after `parent` (both normalized,
 * NUL-terminated; parent may be NULL).  alt_parent, if not NULL, is another
 * candidate parent (the loop's outer query) tried when parent shows no
 * matching foreign key column.  duplicate: the repeats had the same
 * constants.  Cannot fail.
 */
void hint_derive(struct hint *h, bool duplicate, const char *sql,
		 const char *parent, const char *alt_parent);

#endif /* PQSNOOP_HINT_H */
