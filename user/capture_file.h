/*
 * The capture file's framing: a versioned header and self-checking records,
 * in a zlib (gzip) stream.
 *
 *   file    := gzip( header record* )
 *   header  := "PQSNOOP\n" u32 version u32 reserved           (16 bytes)
 *   record  := u32 len, u16 type, u16 flags, payload[len], u32 crc
 *              crc = crc32 of type, flags and payload; little endian
 *
 * Records are written as they come and the stream is flushed (Z_SYNC_FLUSH)
 * at least every second, so a capture cut short by a crash or kill -9
 * still reads back up to its last complete record.  The reader never trusts
 * the file: a foreign file, a damaged record or a cut at any byte ends the
 * read with a message, never with a crash.  What a record means is up to
 * the layer above (capture.c).
 */
#ifndef PQSNOOP_CAPTURE_FILE_H
#define PQSNOOP_CAPTURE_FILE_H

#include <stddef.h>
#include <stdint.h>

#define CAPTURE_VERSION 1
#define CAPTURE_MAX_RECORD (16u << 20)

struct capfile_writer;
struct capfile_reader;

/*
 * Creates path (mode bits as given, e.g. 0600: captures hold queries) and
 * writes the header.  Returns NULL with a message in err on failure.
 */
struct capfile_writer *capfile_writer__open(const char *path, unsigned mode,
					    char *err, size_t errlen);
/* Appends one record.  Returns 0 or -1 (err filled). */
int capfile_writer__put(struct capfile_writer *w, uint16_t type,
			const void *payload, uint32_t len, char *err, size_t errlen);
/* Pushes what is buffered to the file so it survives a crash. */
int capfile_writer__flush(struct capfile_writer *w);
/* Finishes the stream and closes; returns 0 or -1.  NULL is accepted. */
int capfile_writer__close(struct capfile_writer *w);

/* Returns NULL with a message in err (no file, not a capture, newer version). */
struct capfile_reader *capfile_reader__open(const char *path, char *err, size_t errlen);

/*
 * The next record: 1 with *type, *payload (valid until the next call) and
 * *len set; 0 at a clean end; -1 when the rest of the file is damaged or cut
 * short (err says where; the records before are good).
 */
int capfile_reader__next(struct capfile_reader *r, uint16_t *type,
			 const void **payload, uint32_t *len, char *err, size_t errlen);
/* Records read so far. */
uint64_t capfile_reader__count(const struct capfile_reader *r);
void capfile_reader__close(struct capfile_reader *r);

#endif /* PQSNOOP_CAPTURE_FILE_H */
