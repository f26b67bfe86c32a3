/*
 * pqsnoop's command line: parse once into struct cli, then run.
 *
 *   pqsnoop watch -p PID [--json] [-d SECONDS]   one line per query
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "callsite.h"
#include "log.h"
#include "tracer.h"
#include "watch_output.h"

#define PQSNOOP_VERSION "0.1.0"

struct cli {
	const char *command;	/* "watch" */
	pid_t pid;
	double duration;
	double wait_libpq;
	unsigned long ringbuf_mb;
	bool json;
	bool follow_forks;
	bool stacks;
	struct callsite_opts callsite;
};

static const char usage_text[] =
"Usage: pqsnoop watch -p PID [options]\n"
"\n"
"Trace every query a running PostgreSQL client (anything using libpq:\n"
"psycopg2, psycopg 3, Django, psql, pgbench...) sends, without touching it.\n"
"\n"
"Commands:\n"
"  watch              print each completed query: time, pid/tid, latency,\n"
"                     rows, status and the SQL text (escaped)\n"
"\n"
"Options:\n"
"  -p, --pid PID          process to trace (and the children it forks)\n"
"  -d, --duration SECS    stop after SECS seconds (default: until Ctrl-C,\n"
"                         SIGTERM, or the process exits)\n"
"      --json             JSON Lines: one object per query, then a summary\n"
"      --wait-libpq SECS  how long to wait for the process to load libpq\n"
"                         (default 10)\n"
"      --ringbuf-size MB  BPF ring buffer size, a power of two (default 16)\n"
"      --no-follow-forks  do not trace children forked after attaching\n"
"      --no-stacks        do not record the Python stack of each query\n"
"      --app-prefix PATH  frames under PATH are application code even inside\n"
"                         site-packages (repeatable; default: everything\n"
"                         outside site-/dist-packages and the stdlib)\n"
"  -v, --verbose          say more (twice: libbpf's debug output)\n"
"  -h, --help             this help\n"
"      --version          print the version\n"
"\n"
"Needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.\n"
"\n"
"EXAMPLES:\n"
"  sudo pqsnoop watch -p 4242              # live, one line per query\n"
"  sudo pqsnoop watch -p 4242 --json -d 30 # 30 s of JSON Lines\n"
"  sudo pqsnoop watch -p $(pgrep -o gunicorn)  # a server and its workers\n";

static void __attribute__((format(printf, 1, 2), noreturn))
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pqsnoop: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'pqsnoop --help'.\n");
	exit(2);
}

static double parse_seconds(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9) {
		fprintf(stderr, "pqsnoop: invalid %s '%s': expected a number of seconds, e.g. 30\n",
			what, s);
		exit(2);
	}
	return v;
}

static long parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		fprintf(stderr, "pqsnoop: invalid %s '%s': expected a whole number from %ld to %ld\n",
			what, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_cli(int argc, char **argv, struct cli *c)
{
	enum { OPT_JSON = 256, OPT_WAIT, OPT_RINGBUF, OPT_NOFORK, OPT_VERSION,
	       OPT_NOSTACKS, OPT_APP_PREFIX };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "wait-libpq", required_argument, NULL, OPT_WAIT },
		{ "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
		{ "no-follow-forks", no_argument, NULL, OPT_NOFORK },
		{ "no-stacks", no_argument, NULL, OPT_NOSTACKS },
		{ "app-prefix", required_argument, NULL, OPT_APP_PREFIX },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	int opt;

	memset(c, 0, sizeof(*c));
	c->wait_libpq = 10;
	c->ringbuf_mb = 16;
	c->follow_forks = true;
	c->stacks = true;

	if (argc > 1 && argv[1][0] != '-') {
		static char prog[64];

		c->command = argv[1];
		argv++;
		argc--;
		/* getopt names argv[0] in its messages: "pqsnoop watch: ..." */
		snprintf(prog, sizeof(prog), "pqsnoop %s", c->command);
		argv[0] = prog;
	}
	while ((opt = getopt_long(argc, argv, "p:d:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			c->pid = (pid_t)parse_long(optarg, "PID", 1, INT_MAX);
			break;
		case 'd':
			c->duration = parse_seconds(optarg, "duration");
			if (c->duration == 0)
				usage_error("invalid duration '%s': must be more than 0", optarg);
			break;
		case OPT_JSON:
			c->json = true;
			break;
		case OPT_WAIT:
			c->wait_libpq = parse_seconds(optarg, "--wait-libpq");
			break;
		case OPT_RINGBUF:
			c->ringbuf_mb = parse_long(optarg, "--ringbuf-size", 1, 1024);
			if (c->ringbuf_mb & (c->ringbuf_mb - 1))
				usage_error("invalid --ringbuf-size '%s': must be a power of two (1, 2, 4 ... 1024)", optarg);
			break;
		case OPT_NOFORK:
			c->follow_forks = false;
			break;
		case OPT_NOSTACKS:
			c->stacks = false;
			break;
		case OPT_APP_PREFIX:
			if (c->callsite.n_app_prefixes >= CALLSITE_MAX_PREFIXES)
				usage_error("too many --app-prefix (at most %d)", CALLSITE_MAX_PREFIXES);
			if (optarg[0] != '/')
				usage_error("invalid --app-prefix '%s': expected an absolute path", optarg);
			c->callsite.app_prefixes[c->callsite.n_app_prefixes++] = optarg;
			break;
		case 'v':
			log_verbosity++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case OPT_VERSION:
			printf("pqsnoop %s\n", PQSNOOP_VERSION);
			exit(0);
		default:
			fprintf(stderr, "Try 'pqsnoop --help'.\n");
			exit(2);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!c->command)
		c->command = "watch";
	if (strcmp(c->command, "watch") != 0)
		usage_error("unknown command '%s'", c->command);
	if (!c->pid)
		usage_error("missing -p PID: which process to trace?");
}

static void on_signal(int sig)
{
	tracer_stop();
}

static void print_query(const struct pq_query *q, void *ctx)
{
	watch_out__query(ctx, q);
}

static void print_summary(const struct run_summary *sum, void *ctx)
{
	watch_out__summary(ctx, sum, stderr);
	fflush(stdout);
}

static int run_watch(const struct cli *c)
{
	struct tracer_opts o = {
		.pid = c->pid, .follow_forks = c->follow_forks, .stacks = c->stacks,
		.duration = c->duration, .wait_libpq = c->wait_libpq,
		.ringbuf_bytes = c->ringbuf_mb << 20,
		.on_query = print_query, .on_end = print_summary,
	};
	struct run_summary sum;
	struct watch_out *w;
	int rc;

	/* line-buffered even into a pipe: a reader sees queries as they happen */
	setvbuf(stdout, NULL, _IOLBF, 0);
	w = watch_out__new(stdout, c->json, &c->callsite);
	if (!w) {
		warn("out of memory");
		return 1;
	}
	o.ctx = w;
	rc = tracer_run(&o, &sum);
	watch_out__free(w);
	if (fflush(stdout) || ferror(stdout))
		return 1;
	return rc;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct cli c;

	parse_cli(argc, argv, &c);
	log_json = c.json;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return run_watch(&c);
}
