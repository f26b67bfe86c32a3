/* pqsnoop record: not yet (Record issue). */
#include "commands.h"
#include "log.h"

int cmd_record(const struct cli *c)
{
	warn("record is not implemented yet");
	return 1;
}
