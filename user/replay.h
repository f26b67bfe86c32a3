/*
 * Reading a capture back, record by record, into callbacks: what the live
 * detector was told, in the same order (capture.h).  The reader never
 * trusts the file: a foreign, damaged or cut file ends the replay with a
 * message, after delivering every complete record before the damage.
 */
#ifndef PQSNOOP_REPLAY_H
#define PQSNOOP_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "capture.h"
#include "fingerprint.h"

struct replay_handlers {
	void (*meta)(const struct capture_meta *m, void *ctx);
	/* fr->norm is valid during the call only */
	void (*query)(const struct capture_query *cq, const struct fp_result *fr, void *ctx);
	void (*conn_closed)(uint32_t pid, uint64_t conn, void *ctx);
	void (*tick)(uint64_t now_ns, void *ctx);
	void (*summary)(const struct run_summary *s, void *ctx);
	void *ctx;
};

/*
 * Returns 0 when the whole capture was read (SUMMARY included); 1 when it
 * ends early (cut short, damaged, or no SUMMARY: the run did not finish) --
 * err says what, and every complete record before was delivered; -1 when
 * nothing could be read (no such file, not a capture): err says why.
 */
int replay_capture(const char *path, const struct replay_handlers *h,
		   char *err, size_t errlen);

#endif /* PQSNOOP_REPLAY_H */
