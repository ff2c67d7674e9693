// What a socket has not taken yet, for the two native data paths that write to sockets:
// splice.c (the Linux client's attached socket) and hub.c (the server's sessions). Bytes are
// sent behind whatever waits, so frames never interleave; the rest waits here until the
// socket is writable again. Polling, counting, pausing and reporting stay with the callers.
//
// Two capacity policies, as the callers need them:
//  - growing (a zeroed out_queue): the buffer doubles from 64 KiB as needed. hub.c's callers
//    keep it within the session's --send-queue by checking out_queue_len() first.
//  - fixed (out_queue_fixed()): allocated once; what does not fit is refused (ENOBUFS), so
//    callers check out_queue_room() first, as splice.c does.
#ifndef SIMPLEVPN_OUT_QUEUE_H
#define SIMPLEVPN_OUT_QUEUE_H

#include <stddef.h>
#include <sys/uio.h>

typedef struct {
  unsigned char *buf; // bytes the socket has not taken: buf[off, end)
  size_t size, off, end;
  int fixed;          // size is all it may hold (out_queue_fixed); else it grows
} out_queue;

static inline size_t out_queue_len(const out_queue *q) { return q->end - q->off; }

// A queue of `size` bytes that never grows: 0, or ENOMEM.
int out_queue_fixed(out_queue *q, size_t size);
// Room for `n` more bytes, what waits moved to the start if that makes it (a growing queue
// grows when that is not enough): 0, ENOBUFS (a fixed queue is too full) or ENOMEM.
int out_queue_room(out_queue *q, size_t n);
// Appends iov[0, cnt) from byte `skip` on (`n` bytes): 0, or out_queue_room()'s error, with
// nothing appended.
int out_queue_append(out_queue *q, const struct iovec *iov, int cnt, size_t skip, size_t n);
// Sends iov[0, cnt) (`total` bytes) to `fd` behind whatever waits: one writev when nothing
// does, the rest appended. 0, or the errno of a failed write (nothing appended) or of
// out_queue_append(). Whether anything waits now: out_queue_len().
int out_queue_send(out_queue *q, int fd, const struct iovec *iov, int cnt, size_t total);
// The socket is writable: what waits is written until it is all gone or the socket is full.
// 0, or the errno of a failed write.
int out_queue_flush(out_queue *q, int fd);
// What waits is dropped (the socket failed).
static inline void out_queue_clear(out_queue *q) { q->off = q->end = 0; }
void out_queue_free(out_queue *q);

#endif
