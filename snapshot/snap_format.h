/*
 * snap_format: the statecast snapshot file (version 1), in memory and on disk.
 *
 * A snapshot is every live topic (topic, seq, ts, data) plus the position it
 * was taken at (statecast:seq and statecast:epoch), written as one JSON object
 * (docs/snapshot.md):
 *
 *   {"format":"statecast-snapshot","version":1,"created":MS,"epoch":"..",
 *    "seq":N,"count":N,
 *    "topics":[
 *   {"topic":"a/b","seq":7,"ts":MS,"data":<the stored compact JSON, verbatim>},
 *   ...
 *   ],
 *   "sha256":"<hex of the canonical text, see snap_checksum>"}
 *
 * data is embedded raw (not re-encoded) so it stays byte-exact: a JSON tree
 * library would turn 2^53+1 or 1.10 into something else. The reader here is
 * therefore a small hand-written one: cJSON cannot hand back raw bytes.
 *
 * This module is pure: no Redis, no I/O except the FILE/fd it is given.
 */
#ifndef SNAP_FORMAT_H
#define SNAP_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SNAP_FORMAT_NAME "statecast-snapshot"
#define SNAP_FORMAT_VERSION 1
#define SNAP_EPOCH_MAX 32

typedef struct snap_topic {
  const char *topic; /* borrowed from the snapshot's owner buffer */
  size_t topic_len;
  uint64_t seq;
  int64_t ts;       /* commit time, ms since the Unix epoch (Redis clock) */
  const char *data; /* compact JSON, borrowed like topic */
  size_t data_len;
} snap_topic_t;

typedef struct snap {
  int version;
  int64_t created; /* ms since the Unix epoch, when it was taken */
  char epoch[SNAP_EPOCH_MAX + 1]; /* "" when the Redis had no statecast data */
  uint64_t seq;                   /* statecast:seq at the moment it was taken */
  size_t count;
  snap_topic_t *topics; /* owned array of count entries, ascending seq when saved */
  char sha256[65];      /* hex, as read from the file or computed on write */
  /* Whatever the topic/data pointers point into; released by snap_dispose(). */
  void *owner;
  void (*release)(void *owner);
} snap_t;

/* Free topics and release the owner; the struct may be reused after. */
void snap_dispose(snap_t *s);

/*
 * SHA-256 (lower-case hex into hex[65]) of the canonical text of everything but
 * the checksum itself, independent of whitespace and member order:
 *   "statecast-snapshot\n" version "\n" created "\n" epoch "\n" seq "\n" count "\n"
 * then for every topic, in file order:
 *   topic "\n" seq "\n" ts "\n" data "\n"
 * (numbers in decimal; data is the compact JSON, which never holds a raw newline).
 * Returns 0 or SC_ENOMEM.
 */
__attribute__((warn_unused_result)) int snap_checksum(const snap_t *s, char hex[65]);

/*
 * Write s as a version-1 file to f (computing and storing s->sha256). Topics
 * must be valid and data compact JSON. Returns 0, SC_EIO (errno set) or
 * SC_ENOMEM. Does not flush or sync.
 */
__attribute__((warn_unused_result)) int snap_write(FILE *f, snap_t *s);

/*
 * Parse and fully verify buf[0..len): structure, format name, version, every
 * topic (valid name, unique, seq <= the snapshot's seq, data compact valid
 * JSON), count, checksum. On success returns 0 and fills *out, whose strings
 * point into buf (borrowed: buf must outlive *out; set out->owner/release to
 * hand buf over). On failure returns SC_EJSON (malformed or truncated),
 * SC_EINVAL (wrong format or version, inconsistent content) or SC_ENOMEM, with
 * a message naming the byte offset or topic in err; *out is left empty.
 */
__attribute__((warn_unused_result)) int snap_parse(const char *buf, size_t len, snap_t *out, char *err,
                                                  size_t errlen);

/*
 * Write s to path atomically: a temporary file in the same directory, fsync,
 * rename over path, fsync the directory. A crash leaves either the old file or
 * the complete new one. Returns 0 or SC_EIO/SC_ENOMEM with a reason in err.
 */
__attribute__((warn_unused_result)) int snap_write_file(const char *path, snap_t *s, char *err, size_t errlen);

/* Read a whole file (or stdin for "-") into a malloc'd buffer (caller frees).
 * Returns 0 or SC_EIO/SC_ENOMEM with a reason in err. */
__attribute__((warn_unused_result)) int snap_read_file(const char *path, char **buf, size_t *len, char *err,
                                                      size_t errlen);

#endif
