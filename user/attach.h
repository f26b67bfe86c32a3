/*
 * Attaching pqsnoop's uprobes to the libpq copies a process maps.
 *
 * Probes go on the library file (every process mapping it hits them), and
 * the BPF side keeps only the processes in its traced_pids map: that is how
 * a worker forked later is traced from its first query.  Each copy (device,
 * inode) is attached once, however many processes map it.
 */
#ifndef PQSNOOP_ATTACH_H
#define PQSNOOP_ATTACH_H

#include "procfs.h"

struct pqsnoop_bpf;
struct attacher;

/* skel is borrowed and must outlive the attacher.  NULL when out of memory. */
struct attacher *attacher__new(struct pqsnoop_bpf *skel);
/* Detaches every probe. */
void attacher__free(struct attacher *at);

/*
 * Attach to one libpq copy unless already attached.  Returns 1 when newly
 * attached, 0 when it already was, or -errno with a message printed.
 */
int attacher__add(struct attacher *at, const struct libpq_map *m);

/* How many libpq copies are attached. */
int attacher__count(const struct attacher *at);

#endif /* PQSNOOP_ATTACH_H */
