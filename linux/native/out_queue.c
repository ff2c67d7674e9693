// A socket's output queue: see out_queue.h.

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "out_queue.h"

// A growing queue's first buffer; each growth doubles it.
#define FIRST_SIZE (64 * 1024)

int out_queue_fixed(out_queue *q, size_t size) {
  *q = (out_queue){.buf = malloc(size), .size = size, .fixed = 1};
  if (!q->buf) q->size = 0;
  return q->buf ? 0 : ENOMEM;
}

int out_queue_room(out_queue *q, size_t n) {
  size_t held = out_queue_len(q);
  if (!held) q->off = q->end = 0;
  if (q->end + n <= q->size) return 0;
  if (held + n > q->size) {
    if (q->fixed) return ENOBUFS;
    size_t want = q->size ? q->size * 2 : FIRST_SIZE;
    while (want < held + n) want *= 2;
    unsigned char *b = realloc(q->buf, want);
    if (!b) return ENOMEM;
    q->buf = b;
    q->size = want;
  }
  if (q->off) memmove(q->buf, q->buf + q->off, held);
  q->off = 0;
  q->end = held;
  return 0;
}

int out_queue_append(out_queue *q, const struct iovec *iov, int cnt, size_t skip, size_t n) {
  int e = out_queue_room(q, n);
  if (e) return e;
  for (int i = 0; i < cnt; i++) {
    size_t len = iov[i].iov_len;
    if (skip >= len) {
      skip -= len;
      continue;
    }
    memcpy(q->buf + q->end, (char *)iov[i].iov_base + skip, len - skip);
    q->end += len - skip;
    skip = 0;
  }
  return 0;
}

int out_queue_send(out_queue *q, int fd, const struct iovec *iov, int cnt, size_t total) {
  size_t done = 0;
  if (!out_queue_len(q)) {
    for (;;) {
      ssize_t w = writev(fd, iov, cnt);
      if (w >= 0) {
        done = (size_t)w;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return errno;
    }
    if (done == total) return 0;
  }
  return out_queue_append(q, iov, cnt, done, total - done);
}

int out_queue_flush(out_queue *q, int fd) {
  while (out_queue_len(q)) {
    ssize_t w = write(fd, q->buf + q->off, out_queue_len(q));
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      return errno;
    }
    q->off += (size_t)w;
  }
  out_queue_clear(q);
  return 0;
}

void out_queue_free(out_queue *q) {
  free(q->buf);
  *q = (out_queue){0};
}
