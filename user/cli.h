/*
 * pqsnoop's command line, parsed once into struct cli (all commands share
 * one option table; each command says which options it takes).
 *
 *   pqsnoop [detect] -p PID ...        N+1 and duplicate findings (default)
 *   pqsnoop watch -p PID ...           one line per query
 *   pqsnoop record -p PID -o FILE ...  a capture file
 *   pqsnoop report FILE ...            the report of a capture (no root)
 *
 * cli_parse() exits 2 with a message on a bad command line, and 0 after
 * printing --help or --version.
 */
#ifndef PQSNOOP_CLI_H
#define PQSNOOP_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "callsite.h"

#define PQSNOOP_VERSION "0.2.0"

enum cli_command { CMD_DETECT, CMD_WATCH, CMD_RECORD, CMD_REPORT };

struct cli {
	enum cli_command command;
	const char *command_name;
	pid_t pid;
	double duration;	/* 0: until stopped */
	double wait_libpq;
	unsigned long ringbuf_mb;
	bool json;
	bool follow_forks;
	bool stacks;
	bool show_values;
	struct callsite_opts callsite;
	/* detection (0: the detector's defaults) */
	uint64_t idle_gap_ns;
	uint64_t pause_ns;
	uint64_t max_span_ns;
	uint32_t min_repeats;
	uint32_t min_duplicates;
	/* record / report */
	const char *output;	/* -o FILE */
	const char *input;	/* report's capture file */
	const char *format;	/* report --format */
	const char *weight;	/* report --weight: count or time */
	double every;		/* record --every SECONDS (0: one capture) */
	unsigned keep;		/* record --keep N */
	const char *output_dir;	/* record --output-dir */
	const char *argv_text;	/* the command line, for captures */
};

void cli_parse(int argc, char **argv, struct cli *c);

#endif /* PQSNOOP_CLI_H */
