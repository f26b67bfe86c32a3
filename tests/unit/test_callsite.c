/* Which frame is the application's. */
#include "callsite.h"
#include "unit.h"

static void test_library_paths(void)
{
	struct callsite_opts o = { .app_prefixes = { "/usr/lib/python3/dist-packages/myapp/" },
				   .n_app_prefixes = 1 };

	CHECK(callsite_is_library("/usr/lib/python3/dist-packages/django/db/models/query.py", NULL));
	CHECK(callsite_is_library("/srv/venv/lib/python3.12/site-packages/psycopg2/extras.py", NULL));
	CHECK(callsite_is_library("/usr/lib/python3.11/threading.py", NULL));
	CHECK(callsite_is_library("/root/.pyenv/versions/3.8.18/lib/python3.8/socketserver.py", NULL));
	CHECK(callsite_is_library("/opt/py/lib64/python3.9/json/decoder.py", NULL));
	CHECK(callsite_is_library("<frozen importlib._bootstrap>", NULL));
	CHECK(callsite_is_library("?", NULL));
	CHECK(callsite_is_library("", NULL));
	CHECK(!callsite_is_library("/srv/app/blog/views.py", NULL));
	CHECK(!callsite_is_library("/home/u/python3/lib/app.py", NULL));
	CHECK(!callsite_is_library("/srv/lib/pythonic/app.py", NULL));
	CHECK(!callsite_is_library("manage.py", NULL));
	CHECK(callsite_is_library("/usr/lib/python3/dist-packages/django/x.py", &o));
	CHECK(!callsite_is_library("/usr/lib/python3/dist-packages/myapp/views.py", &o));
}

static void test_innermost_application_frame(void)
{
	struct pq_frame frames[] = {
		{ "/usr/lib/python3/dist-packages/django/db/backends/utils.py", "CursorWrapper._execute", 84 },
		{ "/usr/lib/python3/dist-packages/django/db/models/query.py", "QuerySet.get", 431 },
		{ "/srv/app/blog/views.py", "post_list", 42 },
		{ "/srv/app/blog/urls.py", "dispatch", 7 },
	};
	struct pq_query q = { .stack = frames, .nframes = 4 };
	const struct pq_frame *f = callsite_of(&q, NULL);

	CHECK(f == &frames[2]);
	q.nframes = 2;
	CHECK(callsite_of(&q, NULL) == NULL);
	q.nframes = 0;
	CHECK(callsite_of(&q, NULL) == NULL);
}

int main(void)
{
	RUN(test_library_paths);
	RUN(test_innermost_application_frame);
	return unit_summary();
}
