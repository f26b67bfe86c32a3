/* pqsnoop report: not yet (Record issue). */
#include "commands.h"
#include "log.h"

int cmd_report(const struct cli *c)
{
	warn("report is not implemented yet");
	return 1;
}
