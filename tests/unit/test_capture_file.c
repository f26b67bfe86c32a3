/* Capture framing: round trip, and cut or damaged files read back safely. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture_file.h"
#include "unit.h"

#define NREC 40

static char dir[] = "/tmp/pqsnoop-capfile-XXXXXX";

static void payload_of(int i, char *buf, size_t n)
{
	snprintf(buf, n, "record %d: SELECT %d FROM t WHERE x = '%*s'", i, i, i * 7, "y");
}

/* Writes NREC records, flushing after each (as the recorder does every
 * second); returns the file size after each flush in sizes[]. */
static void write_capture(const char *path, off_t *sizes)
{
	char err[256], buf[512];
	struct capfile_writer *w = capfile_writer__open(path, 0600, err, sizeof(err));
	struct stat st;

	CHECK(w != NULL);
	if (!w)
		return;
	for (int i = 0; i < NREC; i++) {
		payload_of(i, buf, sizeof(buf));
		CHECK_INT(capfile_writer__put(w, 7, buf, strlen(buf), err, sizeof(err)), 0);
		CHECK_INT(capfile_writer__flush(w), 0);
		stat(path, &st);
		sizes[i] = st.st_size;
	}
	CHECK_INT(capfile_writer__close(w), 0);
}

/* Reads path; checks every record read is right; returns how many, and
 * whether the read ended cleanly. */
static int read_capture(const char *path, int *clean, int *opened)
{
	char err[256], want[512];
	struct capfile_reader *r = capfile_reader__open(path, err, sizeof(err));
	const void *p;
	uint32_t len;
	uint16_t type;
	int n = 0, rc;

	*opened = r != NULL;
	*clean = 0;
	if (!r)
		return 0;
	while ((rc = capfile_reader__next(r, &type, &p, &len, err, sizeof(err))) == 1) {
		payload_of(n, want, sizeof(want));
		CHECK_INT(type, 7);
		CHECK_INT(len, strlen(want));
		CHECK(memcmp(p, want, len) == 0);
		n++;
	}
	*clean = rc == 0;
	CHECK_INT(capfile_reader__count(r), n);
	capfile_reader__close(r);
	return n;
}

static void test_round_trip_and_mode(void)
{
	char path[256];
	off_t sizes[NREC];
	struct stat st;
	int clean, opened;

	snprintf(path, sizeof(path), "%s/full.pqs", dir);
	umask(0);
	write_capture(path, sizes);
	CHECK_INT(read_capture(path, &clean, &opened), NREC);
	CHECK(clean);
	CHECK_INT(stat(path, &st), 0);
	CHECK_INT(st.st_mode & 0777, 0600);
}

static void test_cut_at_every_byte(void)
{
	char path[256], cut[256];
	off_t sizes[NREC], size;
	struct stat st;
	int prev = 0, clean, opened;
	char *data;
	int fd;

	snprintf(path, sizeof(path), "%s/cut-src.pqs", dir);
	snprintf(cut, sizeof(cut), "%s/cut.pqs", dir);
	write_capture(path, sizes);
	stat(path, &st);
	size = st.st_size;
	data = malloc(size);
	fd = open(path, O_RDONLY);
	CHECK_INT(read(fd, data, size), size);
	close(fd);
	for (off_t len = 0; len <= size; len++) {
		int n, k;

		fd = open(cut, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		CHECK_INT(write(fd, data, len), len);
		close(fd);
		n = read_capture(cut, &clean, &opened);
		/* never fewer records from a longer prefix */
		CHECK(n >= prev);
		prev = n;
		/* everything flushed before the cut is there */
		for (k = 0; k < NREC && sizes[k] <= len; k++)
			;
		CHECK(n >= k);
		if (len < size)
			CHECK(!clean || n == NREC);
	}
	CHECK_INT(prev, NREC);
	free(data);
}

static void test_damage_and_foreign_files(void)
{
	char path[256], err[256];
	off_t sizes[NREC];
	struct capfile_reader *r;
	int clean, opened, fd, n;
	unsigned char junk[4096];

	/* foreign: random bytes, an empty file, a gzip of something else */
	snprintf(path, sizeof(path), "%s/foreign", dir);
	srand(42);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = rand();
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK_INT(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	r = capfile_reader__open(path, err, sizeof(err));
	CHECK(r == NULL);
	CHECK(strstr(err, "is not a pqsnoop capture") != NULL);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	close(fd);
	CHECK(capfile_reader__open(path, err, sizeof(err)) == NULL);
	CHECK(capfile_reader__open("/nonexistent/x.pqs", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cannot open") != NULL);

	/* flip one byte in the middle of the compressed data */
	snprintf(path, sizeof(path), "%s/damaged.pqs", dir);
	write_capture(path, sizes);
	for (off_t at = 30; at < sizes[NREC - 1]; at += 37) {
		write_capture(path, sizes);
		fd = open(path, O_RDWR);
		pread(fd, junk, 1, at);
		junk[0] ^= 0x5a;
		pwrite(fd, junk, 1, at);
		close(fd);
		n = read_capture(path, &clean, &opened);
		/* damage is reported unless it hit nothing read */
		CHECK(n <= NREC);
		CHECK(!clean || n == NREC || !opened);
	}
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_round_trip_and_mode);
	RUN(test_cut_at_every_byte);
	RUN(test_damage_and_foreign_files);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return unit_summary();
}
