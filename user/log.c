#include "log.h"

#include <stdarg.h>
#include <stdio.h>

#include "json_writer.h"

int log_verbosity;
bool log_json;

static void vlog(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	fprintf(stderr, "pqsnoop: %s\n", buf);
	fflush(stderr);
	if (log_json) {
		struct json_writer *jw = jw__new(stdout);

		if (!jw)
			return;
		jw_start_object(jw);
		jw_kv_string(jw, "type", "error");
		jw_kv_string(jw, "message", buf);
		jw_end_object(jw);
		jw_newline(jw);
		jw__free(jw);
		fflush(stdout);
	}
}

void log_verbosity_inc(void)
{
	log_verbosity++;
}

void warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void info(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "pqsnoop: %s\n", buf);
	fflush(stderr);
}

void debug(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	if (log_verbosity < 1)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "pqsnoop: %s\n", buf);
}
