/*
 * pqsnoop's commands; each returns the process exit status (0 ok, 1 failed
 * with a message printed).
 */
#ifndef PQSNOOP_COMMANDS_H
#define PQSNOOP_COMMANDS_H

#include "cli.h"
#include <stddef.h>

#include "detect.h"

int cmd_watch(const struct cli *c);
int cmd_detect(const struct cli *c);
int cmd_report(const struct cli *c);

/* A capture's description from the command line; host is filled in. */
struct capture_meta;
void cli_capture_meta(const struct cli *c, struct capture_meta *m, char *host, size_t hostlen);

/* The detector options the command line asks for (shared by detect,
 * record and report, so a report of a capture finds what live would). */
void cli_detect_opts(const struct cli *c, struct detect_opts *o);

#endif /* PQSNOOP_COMMANDS_H */
