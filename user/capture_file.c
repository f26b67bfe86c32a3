#include "capture_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zlib.h>

static const char MAGIC[8] = { 'P', 'Q', 'S', 'N', 'O', 'O', 'P', '\n' };

struct capfile_writer {
	gzFile gz;
};

struct capfile_reader {
	gzFile gz;
	unsigned char *buf;
	size_t cap;
	uint64_t count;
};

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static uint32_t get_le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

struct capfile_writer *capfile_writer__open(const char *path, unsigned mode,
					    char *err, size_t errlen)
{
	struct capfile_writer *w;
	unsigned char hdr[16];
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return NULL;
	}
	/* O_CREAT's mode is cut by the umask; an existing file keeps its own */
	if (fchmod(fd, mode)) {
		snprintf(err, errlen, "cannot set the mode of %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->gz = gzdopen(fd, "wb6"))) {
		snprintf(err, errlen, "cannot start compressing %s: out of memory", path);
		free(w);
		close(fd);
		return NULL;
	}
	memcpy(hdr, MAGIC, 8);
	put_le32(hdr + 8, CAPTURE_VERSION);
	put_le32(hdr + 12, 0);
	if (gzwrite(w->gz, hdr, sizeof(hdr)) != (int)sizeof(hdr)) {
		snprintf(err, errlen, "cannot write %s", path);
		gzclose(w->gz);
		free(w);
		return NULL;
	}
	return w;
}

int capfile_writer__put(struct capfile_writer *w, uint16_t type, const void *payload,
			uint32_t len, char *err, size_t errlen)
{
	unsigned char head[8], tail[4];
	uLong crc;

	if (len > CAPTURE_MAX_RECORD) {
		snprintf(err, errlen, "record too large (%u bytes)", len);
		return -1;
	}
	put_le32(head, len);
	head[4] = type;
	head[5] = type >> 8;
	head[6] = 0;
	head[7] = 0;
	crc = crc32(0L, head + 4, 4);
	crc = crc32(crc, payload, len);
	put_le32(tail, (uint32_t)crc);
	if (gzwrite(w->gz, head, 8) != 8 ||
	    (len && gzwrite(w->gz, payload, len) != (int)len) ||
	    gzwrite(w->gz, tail, 4) != 4) {
		int zerr;

		snprintf(err, errlen, "cannot write the capture: %s", gzerror(w->gz, &zerr));
		return -1;
	}
	return 0;
}

int capfile_writer__flush(struct capfile_writer *w)
{
	return gzflush(w->gz, Z_SYNC_FLUSH) == Z_OK ? 0 : -1;
}

int capfile_writer__close(struct capfile_writer *w)
{
	int rc;

	if (!w)
		return 0;
	rc = gzclose(w->gz) == Z_OK ? 0 : -1;
	free(w);
	return rc;
}

struct capfile_reader *capfile_reader__open(const char *path, char *err, size_t errlen)
{
	struct capfile_reader *r;
	unsigned char hdr[16];
	uint32_t version;
	int fd, n;

	struct stat st;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is a directory, not a capture file", path);
		close(fd);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r || !(r->gz = gzdopen(fd, "rb"))) {
		snprintf(err, errlen, "cannot read %s: out of memory", path);
		free(r);
		close(fd);
		return NULL;
	}
	n = gzread(r->gz, hdr, sizeof(hdr));
	if (n != (int)sizeof(hdr) || memcmp(hdr, MAGIC, 8) != 0) {
		snprintf(err, errlen, "%s is not a pqsnoop capture (no pqsnoop header)", path);
		capfile_reader__close(r);
		return NULL;
	}
	version = get_le32(hdr + 8);
	if (version != CAPTURE_VERSION) {
		snprintf(err, errlen, "%s is a version %u capture; this pqsnoop reads version %u",
			 path, version, CAPTURE_VERSION);
		capfile_reader__close(r);
		return NULL;
	}
	return r;
}

/* Reads exactly n bytes; returns n, or how many it got before the end. */
static size_t read_full(gzFile gz, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		int k = gzread(gz, (char *)buf + got, (unsigned)(n - got));

		if (k <= 0)
			break;
		got += k;
	}
	return got;
}

int capfile_reader__next(struct capfile_reader *r, uint16_t *type, const void **payload,
			 uint32_t *len, char *err, size_t errlen)
{
	unsigned char head[8], tail[4];
	uint64_t rec = r->count + 1;
	size_t got;
	uint32_t n;
	uLong crc;

	got = read_full(r->gz, head, 8);
	if (got == 0) {
		int zerr;

		gzerror(r->gz, &zerr);
		if (zerr == Z_OK || zerr == Z_STREAM_END)
			return 0;
		snprintf(err, errlen, "capture cut short after record %llu (compressed stream ends early)",
			 (unsigned long long)r->count);
		return -1;
	}
	if (got < 8) {
		snprintf(err, errlen, "capture cut short in record %llu", (unsigned long long)rec);
		return -1;
	}
	n = get_le32(head);
	if (n > CAPTURE_MAX_RECORD || head[6] || head[7]) {
		snprintf(err, errlen, "capture damaged at record %llu (impossible record header)",
			 (unsigned long long)rec);
		return -1;
	}
	if (n + 1 > r->cap) {
		unsigned char *b = realloc(r->buf, n + 1);

		if (!b) {
			snprintf(err, errlen, "out of memory reading record %llu", (unsigned long long)rec);
			return -1;
		}
		r->buf = b;
		r->cap = n + 1;
	}
	if (read_full(r->gz, r->buf, n) != n || read_full(r->gz, tail, 4) != 4) {
		snprintf(err, errlen, "capture cut short in record %llu", (unsigned long long)rec);
		return -1;
	}
	crc = crc32(0L, head + 4, 4);
	crc = crc32(crc, r->buf, n);
	if ((uint32_t)crc != get_le32(tail)) {
		snprintf(err, errlen, "capture damaged at record %llu (checksum mismatch)",
			 (unsigned long long)rec);
		return -1;
	}
	r->buf[n] = 0;	/* convenience for string payloads */
	*type = head[4] | head[5] << 8;
	*payload = r->buf;
	*len = n;
	r->count++;
	return 1;
}

uint64_t capfile_reader__count(const struct capfile_reader *r)
{
	return r->count;
}

void capfile_reader__close(struct capfile_reader *r)
{
	if (!r)
		return;
	if (r->gz)
		gzclose(r->gz);
	free(r->buf);
	free(r);
}
