#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char usage_text[] =
"Usage: pqsnoop [detect] -p PID [options]   N+1 and duplicate queries, live\n"
"       pqsnoop watch -p PID [options]      one line per query\n"
"       pqsnoop record -p PID -o FILE [options]   capture to a file\n"
"       pqsnoop report FILE [--format text|json|folded|svg|perfetto] [-o OUT]\n"
"\n"
"Traces every query a running PostgreSQL client (anything using libpq:\n"
"Django, psycopg2, psycopg 3, psql, pgbench...) sends, without touching it,\n"
"and finds the N+1 and duplicate query patterns in it, with the Python line\n"
"that sends them and the Django fix.\n"
"\n"
"Tracing (detect, watch, record):\n"
"  -p, --pid PID          process to trace (and the children it forks)\n"
"  -d, --duration SECS    stop after SECS seconds (default: until Ctrl-C,\n"
"                         SIGTERM, or the process exits)\n"
"      --json             detect: the report as one JSON document;\n"
"                         watch: JSON Lines, one object per query\n"
"      --wait-libpq SECS  how long to wait for the process to load libpq\n"
"                         (default 10)\n"
"      --ringbuf-size MB  BPF ring buffer size, a power of two (default 16)\n"
"      --no-follow-forks  do not trace children forked after attaching\n"
"      --no-stacks        do not record the Python stack of each query\n"
"      --app-prefix PATH  frames under PATH are application code even inside\n"
"                         site-packages (repeatable; default: everything\n"
"                         outside site-/dist-packages and the stdlib)\n"
"\n"
"Detection (detect, report):\n"
"      --min-repeats N    repeats in one unit of work that make an N+1 (5)\n"
"      --min-duplicates N same statement, same values, that make a duplicate (3)\n"
"      --idle-gap MS      a thread idle this long ends a unit of work (100;\n"
"                         1.1 s between queries whose stacks are known)\n"
"      --pause MS         a gap this long starts a new unit, loops go on (off)\n"
"      --max-span SECS    longest unit of work (10)\n"
"      --show-values      show literal values (production data) in reports\n"
"                         and keep them in captures\n"
"\n"
"Record and report:\n"
"  -o, --output FILE      record: the capture; report: where to write\n"
"      --every SECS       record: one capture (and reports) per period,\n"
"                         named by time, in --output-dir\n"
"      --keep N           record --every: keep the newest N periods (24)\n"
"      --output-dir DIR   record --every: where (created, mode 0700)\n"
"      --format FMT       report: text (default), json, folded, svg, perfetto\n"
"      --weight W         report folded/svg: count (default) or time\n"
"\n"
"  -v, --verbose          say more (twice: libbpf's debug output)\n"
"  -h, --help             this help\n"
"      --version          print the version\n"
"\n"
"Tracing needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.\n"
"\n"
"EXAMPLES:\n"
"  sudo pqsnoop -p 4242                     # findings live, report on Ctrl-C\n"
"  sudo pqsnoop -p 4242 -d 60 --json        # 60 s, the report as JSON\n"
"  sudo pqsnoop watch -p 4242               # one line per query\n"
"  sudo pqsnoop watch -p $(pgrep -o gunicorn) --json -d 30\n"
"  sudo pqsnoop record -p 4242 -d 120 -o incident.pqs\n"
"  pqsnoop report incident.pqs --format svg -o incident.svg\n"
"  sudo pqsnoop record -p 4242 --every 600 --keep 144 --output-dir /var/lib/pqsnoop\n";

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
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 1e9)
		usage_error("invalid %s '%s': expected a number of seconds, e.g. 30", what, s);
	return v;
}

static long parse_long(const char *s, const char *what, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage_error("invalid %s '%s': expected a whole number from %ld to %ld",
			    what, s, min, max);
	return v;
}

static const struct { const char *name; enum cli_command cmd; } commands[] = {
	{ "detect", CMD_DETECT }, { "watch", CMD_WATCH },
	{ "record", CMD_RECORD }, { "report", CMD_REPORT },
};

/* Options only some commands take: reject them elsewhere, clearly. */
static void only_for(const struct cli *c, const char *opt, unsigned mask)
{
	if (!(mask & (1u << c->command)))
		usage_error("%s does not apply to 'pqsnoop %s'", opt, c->command_name);
}

#define TRACING ((1u << CMD_DETECT) | (1u << CMD_WATCH) | (1u << CMD_RECORD))
#define DETECTING ((1u << CMD_DETECT) | (1u << CMD_REPORT) | (1u << CMD_RECORD))

static char *join_args(int argc, char **argv)
{
	size_t len = 1;
	char *s;

	for (int i = 0; i < argc; i++)
		len += strlen(argv[i]) + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, argv[i]);
	}
	return s;
}

void cli_parse(int argc, char **argv, struct cli *c)
{
	enum { OPT_JSON = 256, OPT_WAIT, OPT_RINGBUF, OPT_NOFORK, OPT_VERSION,
	       OPT_NOSTACKS, OPT_APP_PREFIX, OPT_MIN_REPEATS, OPT_MIN_DUPS,
	       OPT_IDLE_GAP, OPT_PAUSE, OPT_MAX_SPAN, OPT_SHOW_VALUES, OPT_EVERY,
	       OPT_KEEP, OPT_OUTDIR, OPT_FORMAT, OPT_WEIGHT };
	static const struct option longopts[] = {
		{ "pid", required_argument, NULL, 'p' },
		{ "duration", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "wait-libpq", required_argument, NULL, OPT_WAIT },
		{ "ringbuf-size", required_argument, NULL, OPT_RINGBUF },
		{ "no-follow-forks", no_argument, NULL, OPT_NOFORK },
		{ "no-stacks", no_argument, NULL, OPT_NOSTACKS },
		{ "app-prefix", required_argument, NULL, OPT_APP_PREFIX },
		{ "min-repeats", required_argument, NULL, OPT_MIN_REPEATS },
		{ "min-duplicates", required_argument, NULL, OPT_MIN_DUPS },
		{ "idle-gap", required_argument, NULL, OPT_IDLE_GAP },
		{ "pause", required_argument, NULL, OPT_PAUSE },
		{ "max-span", required_argument, NULL, OPT_MAX_SPAN },
		{ "show-values", no_argument, NULL, OPT_SHOW_VALUES },
		{ "every", required_argument, NULL, OPT_EVERY },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "output-dir", required_argument, NULL, OPT_OUTDIR },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "weight", required_argument, NULL, OPT_WEIGHT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	static char prog[64];
	int opt;

	memset(c, 0, sizeof(*c));
	c->wait_libpq = 10;
	c->ringbuf_mb = 16;
	c->follow_forks = true;
	c->stacks = true;
	c->keep = 24;
	c->command = CMD_DETECT;
	c->command_name = "detect";
	c->argv_text = join_args(argc, argv);

	if (argc > 1 && argv[1][0] != '-') {
		size_t i;

		for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
			if (strcmp(argv[1], commands[i].name) == 0)
				break;
		if (i == sizeof(commands) / sizeof(commands[0]))
			usage_error("unknown command '%s' (detect, watch, record, report)", argv[1]);
		c->command = commands[i].cmd;
		c->command_name = commands[i].name;
		argv++;
		argc--;
		/* getopt names argv[0] in its messages: "pqsnoop watch: ..." */
		snprintf(prog, sizeof(prog), "pqsnoop %s", c->command_name);
		argv[0] = prog;
	}
	while ((opt = getopt_long(argc, argv, "p:d:o:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			only_for(c, "-p", TRACING);
			c->pid = (pid_t)parse_long(optarg, "PID", 1, INT_MAX);
			break;
		case 'd':
			only_for(c, "-d", TRACING);
			c->duration = parse_seconds(optarg, "duration");
			if (c->duration == 0)
				usage_error("invalid duration '%s': must be more than 0", optarg);
			break;
		case 'o':
			only_for(c, "-o", (1u << CMD_RECORD) | (1u << CMD_REPORT) | (1u << CMD_DETECT));
			c->output = optarg;
			break;
		case OPT_JSON:
			only_for(c, "--json", (1u << CMD_DETECT) | (1u << CMD_WATCH));
			c->json = true;
			break;
		case OPT_WAIT:
			only_for(c, "--wait-libpq", TRACING);
			c->wait_libpq = parse_seconds(optarg, "--wait-libpq");
			break;
		case OPT_RINGBUF:
			only_for(c, "--ringbuf-size", TRACING);
			c->ringbuf_mb = parse_long(optarg, "--ringbuf-size", 1, 1024);
			if (c->ringbuf_mb & (c->ringbuf_mb - 1))
				usage_error("invalid --ringbuf-size '%s': must be a power of two (1, 2, 4 ... 1024)", optarg);
			break;
		case OPT_NOFORK:
			only_for(c, "--no-follow-forks", TRACING);
			c->follow_forks = false;
			break;
		case OPT_NOSTACKS:
			only_for(c, "--no-stacks", TRACING);
			c->stacks = false;
			break;
		case OPT_APP_PREFIX:
			if (c->callsite.n_app_prefixes >= CALLSITE_MAX_PREFIXES)
				usage_error("too many --app-prefix (at most %d)", CALLSITE_MAX_PREFIXES);
			if (optarg[0] != '/')
				usage_error("invalid --app-prefix '%s': expected an absolute path", optarg);
			c->callsite.app_prefixes[c->callsite.n_app_prefixes++] = optarg;
			break;
		case OPT_MIN_REPEATS:
			only_for(c, "--min-repeats", DETECTING);
			c->min_repeats = parse_long(optarg, "--min-repeats", 2, 1000000);
			break;
		case OPT_MIN_DUPS:
			only_for(c, "--min-duplicates", DETECTING);
			c->min_duplicates = parse_long(optarg, "--min-duplicates", 2, 1000000);
			break;
		case OPT_IDLE_GAP:
			only_for(c, "--idle-gap", DETECTING);
			c->idle_gap_ns = parse_long(optarg, "--idle-gap (ms)", 1, 3600000) * 1000000ULL;
			break;
		case OPT_PAUSE:
			only_for(c, "--pause", DETECTING);
			c->pause_ns = parse_long(optarg, "--pause (ms)", 1, 3600000) * 1000000ULL;
			break;
		case OPT_MAX_SPAN:
			only_for(c, "--max-span", DETECTING);
			c->max_span_ns = (uint64_t)(parse_seconds(optarg, "--max-span") * 1e9);
			if (!c->max_span_ns)
				usage_error("invalid --max-span '%s': must be more than 0", optarg);
			break;
		case OPT_SHOW_VALUES:
			only_for(c, "--show-values", DETECTING);
			c->show_values = true;
			break;
		case OPT_EVERY:
			only_for(c, "--every", 1u << CMD_RECORD);
			c->every = parse_seconds(optarg, "--every");
			if (c->every < 1)
				usage_error("invalid --every '%s': at least 1 second", optarg);
			break;
		case OPT_KEEP:
			only_for(c, "--keep", 1u << CMD_RECORD);
			c->keep = parse_long(optarg, "--keep", 1, 1000000);
			break;
		case OPT_OUTDIR:
			only_for(c, "--output-dir", 1u << CMD_RECORD);
			c->output_dir = optarg;
			break;
		case OPT_FORMAT:
			only_for(c, "--format", 1u << CMD_REPORT);
			if (strcmp(optarg, "text") && strcmp(optarg, "json") &&
			    strcmp(optarg, "folded") && strcmp(optarg, "svg") &&
			    strcmp(optarg, "perfetto"))
				usage_error("invalid --format '%s': text, json, folded, svg or perfetto", optarg);
			c->format = optarg;
			break;
		case OPT_WEIGHT:
			only_for(c, "--weight", 1u << CMD_REPORT);
			if (strcmp(optarg, "count") && strcmp(optarg, "time"))
				usage_error("invalid --weight '%s': count or time", optarg);
			c->weight = optarg;
			break;
		case 'v':
			log_verbosity_inc();
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
	if (c->command == CMD_REPORT) {
		if (optind >= argc)
			usage_error("missing capture file: pqsnoop report FILE");
		c->input = argv[optind++];
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (c->command != CMD_REPORT && !c->pid)
		usage_error("missing -p PID: which process to trace?");
	if (c->command == CMD_RECORD) {
		if (c->every && !c->output_dir)
			usage_error("record --every needs --output-dir DIR");
		if (!c->every && !c->output)
			usage_error("record needs -o FILE (or --every with --output-dir)");
		if (c->every && c->output)
			usage_error("record: -o and --every do not go together (files are named by time in --output-dir)");
	}
	if (c->format && strcmp(c->format, "folded") && strcmp(c->format, "svg") && c->weight)
		usage_error("--weight applies to --format folded or svg");
}
