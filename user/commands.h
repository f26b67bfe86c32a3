/*
 * pqsnoop's commands; each returns the process exit status (0 ok, 1 failed
 * with a message printed).
 */
#ifndef PQSNOOP_COMMANDS_H
#define PQSNOOP_COMMANDS_H

#include "cli.h"
#include "detect.h"

int cmd_watch(const struct cli *c);
int cmd_detect(const struct cli *c);
int cmd_record(const struct cli *c);
int cmd_report(const struct cli *c);

/* The detector options the command line asks for (shared by detect,
 * record and report, so a report of a capture finds what live would). */
void cli_detect_opts(const struct cli *c, struct detect_opts *o);

#endif /* PQSNOOP_COMMANDS_H */
