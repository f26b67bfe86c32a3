#include "procfs.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

/* Reads /proc/PID/stat's state and ppid; the comm may hold spaces and
 * parentheses, so parse from the last ')'. */
static int read_stat(pid_t pid, char *state, pid_t *ppid)
{
	char path[64], buf[1024], *p;
	FILE *f;
	size_t n;
	int pp = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %c %d", state, &pp) != 2)
		return -EINVAL;
	*ppid = pp;
	return 0;
}

bool proc_alive(pid_t pid)
{
	char state;
	pid_t ppid;

	if (read_stat(pid, &state, &ppid))
		return false;
	return state != 'Z' && state != 'X';
}

void proc_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f || !(n = fread(buf, 1, size - 1, f))) {
		snprintf(buf, size, "?");
		if (f)
			fclose(f);
		return;
	}
	fclose(f);
	buf[n] = 0;
	if (n && buf[n - 1] == '\n')
		buf[n - 1] = 0;
}

int proc_descendants(pid_t root, pid_t **pids, size_t *n)
{
	struct { pid_t pid, ppid; } *all = NULL, *tmp;
	size_t nall = 0, cap = 0, start = *n;
	struct dirent *de;
	DIR *d = opendir("/proc");
	char state;
	pid_t pid, ppid, *out;
	bool grew;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = atoi(de->d_name);
		if (read_stat(pid, &state, &ppid) || state == 'Z')
			continue;
		if (nall == cap) {
			cap = cap ? cap * 2 : 256;
			tmp = realloc(all, cap * sizeof(*all));
			if (!tmp) {
				free(all);
				closedir(d);
				return -ENOMEM;
			}
			all = tmp;
		}
		all[nall].pid = pid;
		all[nall].ppid = ppid;
		nall++;
	}
	closedir(d);

	/* grow the set until no process has a parent in it */
	do {
		grew = false;
		for (size_t i = 0; i < nall; i++) {
			bool parent_in = all[i].ppid == root, self_in = false;

			for (size_t j = start; j < *n && !(parent_in && self_in); j++) {
				if ((*pids)[j] == all[i].ppid)
					parent_in = true;
				if ((*pids)[j] == all[i].pid)
					self_in = true;
			}
			if (!parent_in || self_in || all[i].pid == root)
				continue;
			out = realloc(*pids, (*n + 1) * sizeof(**pids));
			if (!out) {
				free(all);
				return -ENOMEM;
			}
			*pids = out;
			(*pids)[(*n)++] = all[i].pid;
			grew = true;
		}
	} while (grew);
	free(all);
	return 0;
}

static bool is_libpq_name(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return strncmp(base, "libpq", 5) == 0 && strstr(base, ".so") &&
	       (base[5] == '.' || base[5] == '-' || base[5] == '_');
}

int proc_find_libpq(pid_t pid, struct libpq_map *out, int max)
{
	char path[64], line[8192], perms[8], devs[32], file[4096];
	unsigned long long start, end, off, ino;
	unsigned int maj, mnr;
	int count = 0, err;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while (fgets(line, sizeof(line), f)) {
		bool dup = false;
		size_t len;

		file[0] = 0;
		if (sscanf(line, "%llx-%llx %7s %llx %31s %llu %4095[^\n]",
			   &start, &end, perms, &off, devs, &ino, file) < 7)
			continue;
		if (file[0] != '/' || !is_libpq_name(file))
			continue;
		if (sscanf(devs, "%x:%x", &maj, &mnr) != 2)
			continue;
		for (int i = 0; i < count; i++)
			if (out[i].ino == ino && out[i].dev == makedev(maj, mnr))
				dup = true;
		if (dup || count >= max)
			continue;
		len = strlen(file);
		/* replaced on disk since it was loaded: open the mapping itself */
		if (len > 10 && strcmp(file + len - 10, " (deleted)") == 0) {
			file[len - 10] = 0;
			snprintf(out[count].path, sizeof(out[count].path),
				 "/proc/%d/map_files/%llx-%llx", (int)pid, start, end);
		} else {
			snprintf(out[count].path, sizeof(out[count].path),
				 "/proc/%d/root%s", (int)pid, file);
		}
		snprintf(out[count].shown, sizeof(out[count].shown), "%s", file);
		out[count].dev = makedev(maj, mnr);
		out[count].ino = ino;
		count++;
	}
	err = ferror(f) ? -EIO : 0;
	fclose(f);
	return err ? err : count;
}

bool proc_self_can_trace(void)
{
	char line[256];
	unsigned long long eff = 0;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
#define CAPBIT(n) (1ULL << (n))
	/* CAP_SYS_ADMIN 21, CAP_PERFMON 38, CAP_BPF 39 */
	return (eff & CAPBIT(21)) ||
	       ((eff & CAPBIT(38)) && (eff & CAPBIT(39)));
#undef CAPBIT
}

bool proc_exe_mentions(pid_t pid, const char *needle)
{
	size_t nlen = strlen(needle), have = 0, total = 0;
	char path[64], buf[65536 + 64];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	f = fopen(path, "re");
	if (!f || nlen == 0 || nlen > 64) {
		if (f)
			fclose(f);
		return false;
	}
	while (!found && total < (4u << 20)) {
		size_t n = fread(buf + have, 1, sizeof(buf) - have, f);

		if (!n)
			break;
		total += n;
		have += n;
		found = memmem(buf, have, needle, nlen) != NULL;
		/* keep the tail: the needle may straddle two reads */
		if (have > nlen) {
			memmove(buf, buf + have - (nlen - 1), nlen - 1);
			have = nlen - 1;
		}
	}
	fclose(f);
	return found;
}
