/*
 * pqsnoop: parse the command line once (cli.c), then run one command.
 */
#include <signal.h>
#include <stdlib.h>

#include "cli.h"
#include "commands.h"
#include "log.h"
#include "tracer.h"

static void on_signal(int sig)
{
	tracer_stop();
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct cli c;
	int rc = 1;

	cli_parse(argc, argv, &c);
	log_json = c.json;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	switch (c.command) {
	case CMD_WATCH: rc = cmd_watch(&c); break;
	case CMD_DETECT: rc = cmd_detect(&c); break;
	case CMD_RECORD: rc = cmd_detect(&c); break;	/* quietly, into a capture */
	case CMD_REPORT: rc = cmd_report(&c); break;
	}
	free((char *)c.argv_text);
	return rc;
}
