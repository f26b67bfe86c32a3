/*
 * What pqsnoop needs to know about processes, read from /proc.
 *
 * Paths into a traced process's files go through /proc/PID/root, so a
 * process in a container (another mount namespace) is found at the files it
 * really maps.
 */
#ifndef PQSNOOP_PROCFS_H
#define PQSNOOP_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* True while the process exists and is not a zombie. */
bool proc_alive(pid_t pid);

/* The process's name (comm) into buf; "?" when unknown.  Cannot fail. */
void proc_comm(pid_t pid, char *buf, size_t size);

/*
 * All living descendants of pid (children, grandchildren...), appended to
 * *pids (a malloc'd array the caller frees) with *n updated.
 * Returns 0, or -errno when /proc cannot be read.
 */
int proc_descendants(pid_t pid, pid_t **pids, size_t *n);

/* A libpq the process has mapped. */
struct libpq_map {
	char path[4200];	/* openable from here: /proc/PID/root/... */
	char shown[4096];	/* as the process sees it, for messages */
	uint64_t dev;		/* device and inode identify the copy */
	uint64_t ino;
};

/*
 * Every distinct libpq mapped by pid: a file whose name starts with "libpq"
 * and contains ".so" (libpq.so.5, or a wheel's renamed libpq-1a2b3c.so.5.16).
 * Fills up to max entries of out; returns how many, or -errno (-ESRCH when
 * the process is gone, -EACCES without permission).
 */
int proc_find_libpq(pid_t pid, struct libpq_map *out, int max);

/*
 * Whether the process's executable file contains the bytes of needle in
 * its first 4 MiB (e.g. "libpython": an interpreter linked to a shared
 * libpython names it in its dynamic section).  False when unreadable.
 */
bool proc_exe_mentions(pid_t pid, const char *needle);

/*
 * Whether this process may load BPF programs and create uprobes:
 * CAP_SYS_ADMIN, or both CAP_BPF and CAP_PERFMON, in the effective set.
 */
bool proc_self_can_trace(void);

#endif /* PQSNOOP_PROCFS_H */
