#include "callsite.h"

#include <ctype.h>
#include <string.h>

/* ".../lib/python3.11/..." or ".../lib64/python3.8/..." */
static bool in_stdlib(const char *file)
{
	const char *p = file;

	while ((p = strstr(p, "/python"))) {
		const char *q = p + 7;

		if (p >= file + 4 && (strncmp(p - 4, "/lib", 4) == 0 ||
				      (p >= file + 6 && strncmp(p - 6, "/lib64", 6) == 0))) {
			if (isdigit((unsigned char)*q)) {
				while (isdigit((unsigned char)*q) || *q == '.')
					q++;
				if (*q == '/')
					return true;
			}
		}
		p = q;
	}
	return false;
}

bool callsite_is_library(const char *file, const struct callsite_opts *o)
{
	if (!file || !*file)
		return true;
	for (size_t i = 0; o && i < o->n_app_prefixes; i++)
		if (strncmp(file, o->app_prefixes[i], strlen(o->app_prefixes[i])) == 0)
			return false;
	if (file[0] == '<' || strcmp(file, "?") == 0)
		return true;
	return strstr(file, "/site-packages/") || strstr(file, "/dist-packages/") ||
	       in_stdlib(file);
}

const struct pq_frame *callsite_of(const struct pq_query *q,
				   const struct callsite_opts *o)
{
	for (uint32_t i = 0; i < q->nframes; i++)
		if (!callsite_is_library(q->stack[i].file, o))
			return &q->stack[i];
	return NULL;
}
