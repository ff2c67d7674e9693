// The attached socket: once the Linux client's session is up on plain TCP, the packets move
// between the TUN device and the server's socket here, in C, on Node's own event loop,
// without crossing into JavaScript (issue 15: a Node hop costs several times the C work
// per packet, and each ping made four of them).
//
// attach(tun, fd, initialBytes, superFrames, onEvent) dup()s the socket's fd (Node keeps its
// own, paused: it neither reads nor writes while attached) and polls the dup with a uv_poll:
//  - socket readable: reads into one buffer kept for the attachment, finds the frames (raw IP
//    packets back to back, the length from the header: protocol/framer.ts), and writes each
//    to the TUN; a KIND_SUPER frame's super-packet goes whole behind a virtio-net header made
//    from its gso_size, as common/offload/coalesce.ts pushSuper() does. On a TUN with offloads
//    the plain packets go through the GRO coalescer (gro.c): a TCP flow's consecutive
//    segments become one super-packet, one write where there were dozens; what it holds is
//    written at the end of each read (and before JS hears of anything), never kept longer.
//    An unfinished frame waits at the start of the buffer for the next read; initialBytes is
//    the one JS held.
//    Keepalive echoes and server messages (IPv4 from 255.255.255.255 or 0.0.0.0) go to JS
//    whole (EV_DATA), where the SDK's keepalive and configuration logic reads them, and at most
//    once a second that packets came (EV_ACTIVITY: the SDK's sign of life). Bytes
//    that are no frame go to JS too, so that the SDK's framer names the error; then reading
//    stops. End of stream and errors are events; JS closes the socket and detaches.
//  - TUN readable: one batch is read (as tun.c's on_poll does) and written to the socket
//    in one writev: plain packets as they are, checksums completed where the kernel left
//    them partial (NEEDS_CSUM), TCP super-packets as KIND_SUPER frames (superFrames: only
//    for a server that declared it takes them; JS does not attach otherwise).
//  - backpressure: what the socket does not take goes into one queue (out_queue.c: room for
//    a whole batch and some control bytes, allocated at attach); while it holds bytes the TUN
//    is not read (its kernel queue holds what arrives) and the socket is polled for writable;
//    once the queue is empty, reading resumes. Nothing is dropped, memory stays bounded.
//  - sendRaw(): JS's own writes (keepalives, control messages) join the same queue, behind
//    whatever waits, so frames never interleave. When there is no room, it takes nothing
//    and EV_WRITABLE follows once there is.
// detach() (or closing the TUN) stops the poll and closes the dup; the TUN's reads go back
// to JavaScript. Counters live on the device, across attachments (nativeStats()). The
// formats (frames, KIND_SUPER, the virtio-net header) are in frames.c.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "frames.h"
#include "gro.h"
#include "out_queue.h"
#include "tun_dev.h"

#define RBUF_SIZE (256 * 1024)
#define READS_PER_WAKE 8
#define CONTROL_ROOM (64 * 1024)

enum { EV_DATA, EV_WRITABLE, EV_END, EV_ERROR, EV_TUN_ERROR, EV_ACTIVITY };
// Packets from the server tell JS so at most this often (EV_ACTIVITY), as the SDK counts any
// bytes received as a sign of life: no keepalive goes out while packets flow.
#define ACTIVITY_MS 1000
enum {
  NATIVE_TX_PACKETS, NATIVE_TX_BYTES, NATIVE_RX_PACKETS, NATIVE_RX_BYTES, NATIVE_RX_CONTROL,
  NATIVE_TUN_DROPPED, NATIVE_TUN_REJECTED, NATIVE_TX_SUPER, NATIVE_RX_SUPER, NATIVE_UNSPLITTABLE,
  NATIVE_RX_MALFORMED, NATIVE_SOCKET_FULL, NATIVE_ATTACHES, NATIVE_GRO_SUPER, NATIVE_GRO_SEGMENTS, NATIVE_COUNT
};
static const char *const stat_names[NATIVE_COUNT] = {
    "txPackets", "txBytes", "rxPackets", "rxBytes", "rxControl", "tunDropped", "tunRejected",
    "txSuper", "rxSuper", "unsplittable", "rxMalformed", "socketFull", "attaches",
    "groSuper", "groSegments"};

typedef struct attached_sock {
  tun_dev *d;
  int fd;             // our dup of the socket
  uv_poll_t poll;
  int events;         // what the poll watches now
  int closing;        // detached; freed by the poll's close callback
  int stopped;        // reading stopped for good (end, error, framing error): JS detaches
  int super_frames;   // TUN super-packets go out whole as KIND_SUPER frames
  int js_refused;     // sendRaw() took nothing: EV_WRITABLE once the queue is empty
  int rx_data;        // packets came since the last EV_ACTIVITY
  uint64_t activity_at; // when the last EV_ACTIVITY went (the loop's clock, ms)
  napi_ref cb_ref;
  unsigned char *rbuf; // an unfinished frame at the start, then what the last read brought
  size_t rlen;
  out_queue out;       // what the socket has not taken yet (fixed: room checked first)
  unsigned char super_hdrs[MAX_BATCH][SUPER_HEADER];
  struct iovec iov[2 * MAX_BATCH];
  uint32_t lens[MAX_BATCH];
  gro gro;             // the server's TCP segments coalesced on their way to a TUN with offloads
} attached_sock;

#define STAT(a, k) ((a)->d->native_stats[k])

// ---- events to JavaScript ----------------------------------------------------------------

static void emit(attached_sock *a, int kind, napi_value arg) {
  napi_env env = a->d->env;
  napi_value argv[2];
  napi_create_uint32(env, (uint32_t)kind, &argv[0]);
  if (arg) argv[1] = arg;
  else napi_get_undefined(env, &argv[1]);
  tun_call_js(a->d, a->cb_ref, 2, argv);
}

static void emit_bytes(attached_sock *a, const unsigned char *p, size_t n) {
  void *data;
  napi_value ab;
  if (napi_create_arraybuffer(a->d->env, n, &data, &ab) != napi_ok) return;
  memcpy(data, p, n);
  emit(a, EV_DATA, ab);
}

static void emit_error(attached_sock *a, int kind, int err, const char *syscall, const char *what) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s: %s", a->d->name, what, strerror(err));
  emit(a, kind, tun_make_error(a->d->env, tun_errno_name(err), err, syscall, msg));
}

// ---- the socket's poll ---------------------------------------------------------------------

static void on_sock(uv_poll_t *h, int status, int events);

static int pending(const attached_sock *a) { return out_queue_len(&a->out) > 0; }

// Watches what there is to watch: reads unless stopped, writable while bytes wait.
static void set_events(attached_sock *a) {
  int want = (a->stopped ? 0 : UV_READABLE) | (pending(a) && !a->stopped ? UV_WRITABLE : 0);
  if (want == a->events || a->closing) return;
  if (want) uv_poll_start(&a->poll, want, on_sock);
  else uv_poll_stop(&a->poll);
  a->events = want;
}

// Reading stops for good; JS hears why and closes the socket (then detaches).
static void sock_failed(attached_sock *a, int err, const char *syscall, const char *what) {
  a->stopped = 1;
  set_events(a);
  tun_poll_stop(a->d);
  emit_error(a, EV_ERROR, err, syscall, what);
}

// Sends iov[0, cnt) (`total` bytes) behind whatever waits; the socket's refusal is queued.
// 0, or the errno of a failed write (ENOBUFS, no room for the refusal: callers check room
// first, so not reached).
static int sock_send(attached_sock *a, const struct iovec *iov, int cnt, size_t total) {
  int e = out_queue_send(&a->out, a->fd, iov, cnt, total);
  if (e || !pending(a)) return e;
  STAT(a, NATIVE_SOCKET_FULL)++;
  tun_poll_stop(a->d);
  set_events(a);
  return 0;
}

// The socket has room: send what waits; once all is gone, read the TUN again.
static int flush(attached_sock *a) {
  int e = out_queue_flush(&a->out, a->fd);
  if (e || pending(a)) return e;
  set_events(a);
  tun_poll_resume(a->d);
  if (a->js_refused) {
    a->js_refused = 0;
    emit(a, EV_WRITABLE, NULL);
  }
  return 0;
}

// A write to the TUN counted: a drop or a packet the device refused is no failure. 1, or
// -errno when the device failed.
static int counted(attached_sock *a, int r) {
  if (r == 1) return 1;
  if (r == 0) STAT(a, NATIVE_TUN_DROPPED)++;
  else if (r == -EINVAL) STAT(a, NATIVE_TUN_REJECTED)++;
  else return r;
  return 1;
}

// The coalescer's writer (gro_writer).
static int gro_to_tun(void *ctx, const unsigned char vh[VNET_HDR_LEN], const unsigned char *p, size_t len) {
  attached_sock *a = ctx;
  return counted(a, tun_write_packet(a->d, vh, p, len));
}

// One frame from the server to the TUN (through the coalescer on a TUN with offloads): 0, or
// -errno when the device failed.
static int to_tun(attached_sock *a, unsigned char *p, size_t f) {
  tun_dev *d = a->d;
  int r;
  STAT(a, NATIVE_RX_PACKETS)++;
  STAT(a, NATIVE_RX_BYTES) += (double)f;
  if (!d->vnet) {
    r = counted(a, tun_write_packet(d, zero_vnet_hdr, p, f));
  } else if (is_super_frame(p, f)) {
    unsigned char vh[VNET_HDR_LEN];
    if (!super_to_vnet(p, f, vh)) {
      STAT(a, NATIVE_RX_MALFORMED)++;
      return 0;
    }
    STAT(a, NATIVE_RX_SUPER)++;
    r = gro_push_super(&a->gro, vh, p + SUPER_HEADER, f - SUPER_HEADER);
  } else {
    r = gro_push(&a->gro, p, f);
  }
  return r < 0 ? r : 0;
}

// Writing to the TUN failed with `err`: reading stops, JS hears why (and detaches). 0.
static int tun_failed(attached_sock *a, int err) {
  a->stopped = 1;
  set_events(a);
  emit_error(a, EV_TUN_ERROR, err, "write", "writing a packet to the device failed");
  return 0;
}

// Writes what the coalescer holds (its counters onto the device's): 1, or 0 when the device
// failed (reading stops; JS heard why).
static int flush_to_tun(attached_sock *a) {
  int r = a->d->vnet ? gro_flush(&a->gro) : 1;
  STAT(a, NATIVE_GRO_SUPER) += a->gro.super_packets;
  STAT(a, NATIVE_GRO_SEGMENTS) += a->gro.segments;
  a->gro.super_packets = a->gro.segments = 0;
  return r < 0 ? tun_failed(a, -r) : 1;
}

// The complete frames in rbuf[0, rlen); an unfinished one moves to the start. 0 when the
// attachment stopped or was detached meanwhile (JS ran).
static int take_frames(attached_sock *a) {
  size_t pos = 0;
  while (pos < a->rlen) {
    unsigned char *p = a->rbuf + pos;
    long f = frame_length(p, a->rlen - pos);
    if (f < 0) {
      // No frame: the SDK's framer, given the bytes, names the error and drops the link.
      if (!flush_to_tun(a)) return 0;
      a->stopped = 1;
      set_events(a);
      emit_bytes(a, p, a->rlen - pos);
      return 0;
    }
    if (f == 0 || pos + (size_t)f > a->rlen) break;
    pos += (size_t)f;
    if (is_control(p)) {
      STAT(a, NATIVE_RX_CONTROL)++;
      // Nothing held while JS runs: it may detach or close the device.
      if (!flush_to_tun(a)) return 0;
      emit_bytes(a, p, (size_t)f);
      if (a->closing || a->stopped) return 0;
      continue;
    }
    a->rx_data = 1;
    int e = to_tun(a, p, (size_t)f);
    if (e) return tun_failed(a, -e);
  }
  if (!flush_to_tun(a)) return 0;
  memmove(a->rbuf, a->rbuf + pos, a->rlen - pos);
  a->rlen -= pos;
  return 1;
}

static void read_socket(attached_sock *a) {
  for (int i = 0; i < READS_PER_WAKE && !a->closing && !a->stopped; i++) {
    size_t room = RBUF_SIZE - a->rlen;
    ssize_t r = read(a->fd, a->rbuf + a->rlen, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) sock_failed(a, errno, "read", "reading from the server failed");
      return;
    }
    if (r == 0) {
      a->stopped = 1;
      set_events(a);
      emit(a, EV_END, NULL);
      return;
    }
    a->rlen += (size_t)r;
    if (!take_frames(a) || (size_t)r < room) return; // a short read: the socket is drained
  }
}

static void on_sock(uv_poll_t *h, int status, int events) {
  attached_sock *a = h->data;
  if (a->closing) return;
  napi_env env = a->d->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) sock_failed(a, -status, "poll", "polling the connection failed");
  else {
    if (events & UV_WRITABLE) {
      int e = flush(a);
      if (e && !a->closing) sock_failed(a, e, "write", "writing to the server failed");
    }
    if ((events & UV_READABLE) && !a->closing && !a->stopped) read_socket(a);
    uint64_t now = uv_now(h->loop);
    if (a->rx_data && !a->closing && !a->stopped && now - a->activity_at >= ACTIVITY_MS) {
      a->rx_data = 0;
      a->activity_at = now;
      emit(a, EV_ACTIVITY, NULL);
    }
  }
  napi_close_handle_scope(env, scope);
}

// ---- the TUN's side --------------------------------------------------------------------

static void add_iov(attached_sock *a, int *cnt, void *p, size_t len) {
  struct iovec *last = *cnt ? &a->iov[*cnt - 1] : NULL;
  if (last && (char *)last->iov_base + last->iov_len == (char *)p) last->iov_len += len;
  else a->iov[(*cnt)++] = (struct iovec){p, len};
}

// A packet read behind a virtio-net header, as linux/tun-offload.ts readOffloaded() does with
// `wrap`: a partial checksum completed, a super-packet framed whole. Its bytes, or 0 (dropped).
static size_t take_vnet(attached_sock *a, unsigned char *h, size_t total, int k, int *cnt) {
  if (total < VNET_HDR_LEN) return 0;
  unsigned char *p = h + VNET_HDR_LEN;
  size_t len = total - VNET_HDR_LEN;
  if (!vnet_is_super(h)) {
    if (!vnet_complete_checksum(h, p, len) || frame_length(p, len) != (long)len) return 0;
    add_iov(a, cnt, p, len);
    return len;
  }
  if (!a->super_frames || !super_header_for(h, p, len, a->super_hdrs[k])) return 0;
  add_iov(a, cnt, a->super_hdrs[k], SUPER_HEADER);
  add_iov(a, cnt, p, len);
  STAT(a, NATIVE_TX_SUPER)++;
  return SUPER_HEADER + len;
}

int splice_tun_readable(tun_dev *d) {
  attached_sock *a = d->att;
  if (a->stopped || pending(a)) {
    tun_poll_stop(d);
    return 0;
  }
  size_t used = 0, total = 0;
  int cnt = 0, err = 0;
  int n = (int)tun_read_batch(d, a->lens, &used, &err);
  for (int k = 0, at = 0; k < n; at += (int)a->lens[k++]) {
    unsigned char *p = d->scratch + at;
    size_t len = a->lens[k], took;
    if (d->vnet) took = take_vnet(a, p, len, k, &cnt);
    else if (frame_length(p, len) == (long)len) add_iov(a, &cnt, p, took = len);
    else took = 0;
    if (!took) {
      STAT(a, NATIVE_UNSPLITTABLE)++;
      continue;
    }
    total += took;
    STAT(a, NATIVE_TX_PACKETS)++;
  }
  STAT(a, NATIVE_TX_BYTES) += (double)total;
  if (total) {
    int e = sock_send(a, a->iov, cnt, total);
    if (e) sock_failed(a, e, "write", "writing to the server failed");
  }
  return err;
}

// ---- attach and detach ---------------------------------------------------------------------

static void on_att_closed(uv_handle_t *h) {
  attached_sock *a = h->data;
  free(a->rbuf);
  out_queue_free(&a->out);
  free(a);
}

void splice_detach(tun_dev *d) {
  attached_sock *a = d->att;
  if (!a) return;
  d->att = NULL;
  a->closing = 1;
  uv_poll_stop(&a->poll);
  uv_close((uv_handle_t *)&a->poll, on_att_closed);
  close(a->fd);
  if (a->cb_ref) napi_delete_reference(d->env, a->cb_ref);
  a->cb_ref = NULL;
}

static napi_value fail(napi_env env, int err, const char *syscall, const char *msg) {
  char m[256];
  if (err) snprintf(m, sizeof m, "%s: %s", msg, strerror(err));
  napi_throw(env, tun_make_error(env, tun_errno_name(err ? err : EINVAL), err, syscall, err ? m : msg));
  return NULL;
}

static tun_dev *open_dev(napi_env env, napi_value v) {
  tun_dev *d = tun_get_dev(env, v);
  if (d && d->fd < 0) {
    fail(env, EBADF, NULL, "the TUN device is closed");
    return NULL;
  }
  return d;
}

// attach(handle, fd, initialBytes, superFrames, onEvent(kind, arg))
napi_value splice_js_attach(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  size_t argc = 5;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 5) return fail(env, 0, NULL, "attach(handle, fd, initialBytes, superFrames, onEvent): missing arguments");
  tun_dev *d = open_dev(env, argv[0]);
  if (!d) return NULL;
  int32_t fd;
  bool super_frames = false;
  napi_valuetype t;
  void *init = NULL;
  size_t init_len = 0;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) return fail(env, 0, NULL, "attach(): fd must be a file descriptor");
  if (!tun_typed_array(env, argv[2], napi_uint8_array, &init, &init_len)) return fail(env, 0, NULL, "attach(): initialBytes must be a Uint8Array");
  napi_get_value_bool(env, argv[3], &super_frames);
  if (napi_typeof(env, argv[4], &t) != napi_ok || t != napi_function) return fail(env, 0, NULL, "attach(): onEvent must be a function");
  if (d->att) return fail(env, EBUSY, NULL, "attach(): the device is attached to a socket already: detach() first");
  // The hub reads it and writes to it (hub_tun.c): attached too, reads would go to the socket
  // while the hub still wrote, and hubTun() refuses the converse.
  if (d->hub) return fail(env, EBUSY, NULL, "attach(): the server's switching hub uses the device: hand it back first (hubTun(hub, null))");
  if (d->failed) return fail(env, EIO, NULL, "attach(): reading the device failed earlier");
  long f = frame_length(init, init_len);
  if (init_len && (f < 0 || (f > 0 && (size_t)f <= init_len)))
    return fail(env, 0, NULL, "attach(): initialBytes must be the start of one unfinished frame");

  uv_loop_t *loop = NULL;
  attached_sock *a = calloc(1, sizeof *a);
  size_t cap = d->scratch_size + MAX_BATCH * SUPER_HEADER + CONTROL_ROOM;
  if (a) {
    a->rbuf = malloc(RBUF_SIZE);
    out_queue_fixed(&a->out, cap);
  }
  if (!a || !a->rbuf || !a->out.buf || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    if (a) free(a->rbuf), out_queue_free(&a->out);
    free(a);
    return fail(env, ENOMEM, NULL, "attach(): allocating the buffers failed");
  }
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0) {
    int e = errno;
    free(a->rbuf), out_queue_free(&a->out), free(a);
    return fail(env, e, "fcntl(F_DUPFD_CLOEXEC)", "attach(): duplicating the socket's descriptor failed");
  }
  // O_NONBLOCK belongs to the open file, which Node's socket set already; made sure here.
  fcntl(nfd, F_SETFL, fcntl(nfd, F_GETFL) | O_NONBLOCK);
  int rc = uv_poll_init_socket(loop, &a->poll, nfd);
  if (rc < 0) {
    close(nfd);
    free(a->rbuf), out_queue_free(&a->out), free(a);
    return fail(env, -rc, "uv_poll_init_socket", "attach(): polling the socket failed");
  }
  a->poll.data = a;
  a->d = d;
  a->fd = nfd;
  a->super_frames = super_frames;
  gro_init(&a->gro, GRO_FLOWS, gro_to_tun, a);
  memcpy(a->rbuf, init, init_len);
  a->rlen = init_len;
  napi_create_reference(env, argv[4], 1, &a->cb_ref);
  d->att = a;
  d->native_stats[NATIVE_ATTACHES]++;
  set_events(a);
  // C reads the device from now on, whatever JS's pause() said before.
  d->paused = 0;
  tun_poll_resume(d);
  return NULL;
}

napi_value splice_js_detach(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tun_dev *d = argc ? tun_get_dev(env, argv[0]) : NULL;
  if (!d || !d->att) return NULL;
  splice_detach(d);
  tun_poll_resume(d);
  return NULL;
}

// sendRaw(handle, bytes) -> how many it took: all, or 0 when the queue has no room.
napi_value splice_js_send_raw(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tun_dev *d = argc == 2 ? open_dev(env, argv[0]) : NULL;
  if (!d) return argc == 2 ? NULL : fail(env, 0, NULL, "sendRaw(handle, bytes): missing arguments");
  attached_sock *a = d->att;
  if (!a) return fail(env, ENOTCONN, NULL, "sendRaw(): the device is not attached to a socket");
  void *data;
  size_t len;
  if (!tun_typed_array(env, argv[1], napi_uint8_array, &data, &len)) return fail(env, 0, NULL, "sendRaw(): bytes must be a Uint8Array");
  uint32_t took = (uint32_t)len;
  if (a->stopped) {
    // Going away: JS hears why from the event already sent; the bytes have nowhere to go.
  } else if (pending(a) && out_queue_room(&a->out, len)) {
    a->js_refused = 1;
    took = 0;
  } else {
    struct iovec iov = {data, len};
    int e = sock_send(a, &iov, 1, len);
    if (e) {
      // Reported from the poll, where calling JS is safe: the bytes wait for it.
      out_queue_append(&a->out, &iov, 1, 0, len);
      set_events(a);
    }
  }
  napi_create_uint32(env, took, &result);
  return result;
}

napi_value splice_js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1], result, v;
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tun_dev *d = argc ? tun_get_dev(env, argv[0]) : NULL;
  if (!d) return NULL;
  napi_create_object(env, &result);
  for (int i = 0; i < NATIVE_COUNT; i++) {
    napi_create_double(env, d->native_stats[i], &v);
    napi_set_named_property(env, result, stat_names[i], v);
  }
  return result;
}
