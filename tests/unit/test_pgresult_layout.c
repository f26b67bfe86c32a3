/*
 * The BPF side reads libpq's private struct pg_result at fixed offsets
 * (bpf/pqsnoop.h).  Check them against the libpq-int.h of the installed
 * libpq, so a libpq that moved a field fails here, not silently in a trace.
 */
#include <stddef.h>
#include <linux/types.h>

#include "pqsnoop.h"
#include "unit.h"
/* c.h sets up what libpq-int.h expects; the connection's GSS and SSL
 * members (whose headers are not installed) do not touch struct pg_result */
#include "c.h"
#undef ENABLE_GSS
#undef USE_OPENSSL
#include "libpq-int.h"
/* port.h routes stdio through libpgport, which we do not link */
#undef fprintf
#undef printf
#undef snprintf
#undef vfprintf

static void test_offsets(void)
{
	CHECK_INT(offsetof(PGresult, ntups), PGRES_OFF_NTUPS);
	CHECK_INT(offsetof(PGresult, resultStatus), PGRES_OFF_STATUS);
	CHECK_INT(offsetof(PGresult, cmdStatus), PGRES_OFF_CMDSTATUS);
	CHECK_INT(sizeof(((PGresult *)0)->cmdStatus), PQ_CMDSTATUS_MAX);
	CHECK_INT(offsetof(PGresult, errMsg), PGRES_OFF_ERRMSG);
	CHECK_INT(offsetof(PGresult, errFields), PGRES_OFF_ERRFIELDS);
	CHECK_INT(offsetof(PGMessageField, next), PGMSGF_OFF_NEXT);
	CHECK_INT(offsetof(PGMessageField, code), PGMSGF_OFF_CODE);
	CHECK_INT(offsetof(PGMessageField, contents), PGMSGF_OFF_CONTENTS);
	CHECK_INT(PGRES_PIPELINE_SYNC, PQS_PIPELINE_SYNC);
	CHECK_INT(PGRES_PIPELINE_ABORTED, PQS_PIPELINE_ABORTED);
	CHECK_INT(PGRES_FATAL_ERROR, PQS_FATAL_ERROR);
	CHECK_INT(PGRES_SINGLE_TUPLE, PQS_SINGLE_TUPLE);
}

int main(void)
{
	RUN(test_offsets);
	return unit_summary();
}
