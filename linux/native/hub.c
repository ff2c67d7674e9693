// The server's native switching path (issue 15): plain-TCP client-to-client packets are read,
// framed and written to their destination's socket here, in C, on Node's own event loop,
// without entering JavaScript. Each Node hop (a read through the Readable stream, a write)
// cost the server more than the switching itself; a ping between two clients made four.
//
// A hub holds native sessions: a dup() of an accepted socket's descriptor (Node keeps its
// own, not reading: JS stopped its handle), polled with a uv_poll, and a table from IPv4
// address to session. On a read, the stream is framed (frames.c's rules) and a frame is
// switched here only when all of these hold: IPv4, its source the session's address, its
// destination another native session's address, and either it is no PROTO_EXT (control)
// and fits that session's MTU, or it is a KIND_SUPER frame between two sessions that
// declared super-packets (T_OFFLOAD), whatever the MTU, as switch.ts routeSuper() sends it
// whole. A super-packet for a session that did not declare them goes to JS, which splits it.
// IPv6 the same way, by a second table from the whole IPv6 address to session: from the
// session's IPv6 address to another native session's, within its MTU, and with no extension
// header (JS's ipv6Problem() walks those chains; the few packets that have them go to JS). Frames of one read for the same destination leave in one
// writev at the end of the read; what the socket does not take waits in the destination's
// queue (out_queue.c), up to its send-queue cap (the server's --send-queue), past which a
// packet is dropped and counted as the JS switch counts queue_full. Every other frame goes to JS,
// whole and in order, and with it every later frame of the same read, so that nothing C
// switches overtakes what JS sends on (EV_FRAMES: copied back to back into a new ArrayBuffer, as Node's own
// reads give a new chunk), where the session's onData does all that is unusual.
//
// JS's own writes to a native session (packets from the tun or other sessions, control
// replies) go through hubSend(), into the same queue, so frames never interleave. The end of
// the stream, a failed read or write, are events (EV_END, EV_ERROR); JS ends the session and
// detaches, which closes the dup and hands back what was not sent. Bytes that are no frame
// (or a frame longer than the server's largest) go to JS as frames do, so that the session's
// own framer names the error; reading then stops. Counters are kept per session and handed
// to JS as deltas (hubDrain()), with the wall time of the last bytes received.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "frames.h"
#include "hub.h"

enum { HEV_FRAMES, HEV_END, HEV_ERROR };

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return (double)t.tv_sec * 1000.0 + (double)(t.tv_nsec / 1000000);
}

uint32_t hub_rd32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

// ---- the address table ---------------------------------------------------------------------

static hsess **bucket(hub *h, uint32_t a) { return &h->by_addr[(a ^ (a >> 10) ^ (a >> 20)) & (BUCKETS - 1)]; }

hsess *hub_lookup(hub *h, uint32_t a) {
  for (hsess *s = *bucket(h, a); s; s = s->addr_next)
    if (s->addr == a) return s;
  return NULL;
}

// IPv6: a client's interface id is mostly its IPv4 address (switch.ts key6()); the whole
// address is compared.
static hsess **bucket6(hub *h, const unsigned char *a) { return bucket(h, hub_rd32(a + 8) ^ hub_rd32(a + 12)); }

hsess *hub_lookup6(hub *h, const unsigned char *a) {
  for (hsess *s = *bucket6(h, a); s; s = s->addr6_next)
    if (memcmp(s->addr6, a, 16) == 0) return s;
  return NULL;
}

static void unlink_addr(hsess *s) {
  for (hsess **p = bucket(s->h, s->addr); *p; p = &(*p)->addr_next)
    if (*p == s) {
      *p = s->addr_next;
      break;
    }
  if (!s->has6) return;
  for (hsess **p = bucket6(s->h, s->addr6); *p; p = &(*p)->addr6_next)
    if (*p == s) {
      *p = s->addr6_next;
      return;
    }
}

// ---- events to JavaScript ------------------------------------------------------------------

static void call_js(hub *h, uint32_t kind, uint32_t slot, napi_value arg) {
  napi_env env = h->env;
  napi_value cb, recv, argv[3];
  if (h->closed || !h->cb_ref || napi_get_reference_value(env, h->cb_ref, &cb) != napi_ok || !cb) return;
  napi_create_uint32(env, kind, &argv[0]);
  napi_create_uint32(env, slot, &argv[1]);
  if (arg) argv[2] = arg;
  else napi_get_undefined(env, &argv[2]);
  napi_get_global(env, &recv);
  if (napi_make_callback(env, h->actx, recv, cb, 3, argv, NULL) == napi_pending_exception) {
    napi_value e = NULL;
    napi_get_and_clear_last_exception(env, &e);
    if (e) napi_fatal_exception(env, e); // as any event handler that throws: 'uncaughtException'
  }
}

static void report_error(hsess *s, int err, const char *syscall, const char *what) {
  if (s->reported) return;
  s->reported = 1;
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  // libuv's names (ECONNRESET, EPIPE, ...): the codes Node's own socket errors carry.
  call_js(s->h, HEV_ERROR, s->slot, tun_make_error(s->h->env, uv_err_name(-err), err, syscall, msg));
}

// ---- the socket's poll ---------------------------------------------------------------------

static void on_poll(uv_poll_t *p, int status, int events);

static size_t queued(const hsess *s) { return out_queue_len(&s->out); }

static void set_events(hsess *s) {
  if (s->closing) return;
  int want = (s->stopped ? 0 : UV_READABLE) | (queued(s) || (s->werr && !s->reported) ? UV_WRITABLE : 0);
  if (want == s->events) return;
  if (want) uv_poll_start(&s->poll, want, on_poll);
  else uv_poll_stop(&s->poll);
  s->events = want;
}

// Sends iov[0, cnt) (`total` bytes) behind whatever waits; the caller checked the cap. A
// failure is reported from this session's own poll, where JS may run.
static void sess_send(hsess *s, const struct iovec *iov, int cnt, size_t total) {
  if (s->werr) return;
  int e = out_queue_send(&s->out, s->fd, iov, cnt, total);
  if (!e && !queued(s)) return; // all taken: the poll stays as it is
  if (e) s->werr = e;
  set_events(s);
}

static void flush_out(hsess *s) {
  int e = out_queue_flush(&s->out, s->fd);
  if (e) s->werr = e;
  set_events(s);
}

// The frames queued to `d` so far leave in one writev (its batch stays lent to it, empty).
static void send_batch(hsess *d) {
  batch *b = d->batch;
  if (b->iovcnt) {
    d->ct[CT_TX_PACKETS] += b->packets;
    d->ct[CT_TX_BYTES] += (double)b->bytes;
    sess_send(d, b->iov, b->iovcnt, b->bytes);
  }
  b->iovcnt = 0;
  b->bytes = 0;
  b->packets = 0;
}

// Sends what `b` holds and takes it back from its session.
static void end_batch(batch *b) {
  if (!b->d) return;
  send_batch(b->d);
  b->d->batch = NULL;
  b->d = NULL;
}

// A batch for `d`: a free one, or the oldest one lent (sent first).
static batch *lend_batch(hub *h, hsess *d) {
  batch *b;
  if (h->nbatches < BATCHES) b = &h->batches[h->nbatches++];
  else {
    b = &h->batches[h->evict];
    h->evict = (h->evict + 1) % BATCHES;
    end_batch(b);
  }
  b->d = d;
  d->batch = b;
  return b;
}

// The frames queued during this read leave, one writev per destination.
void hub_flush_batches(hub *h) {
  for (int i = 0; i < h->nbatches; i++) end_batch(&h->batches[i]);
  h->nbatches = 0;
  h->evict = 0;
}

// IPv6 next headers that begin an extension header chain (ipv6.ts): JS checks those.
static int ext_header6(unsigned char next) { return next == 0 || next == 43 || next == 44 || next == 60 || next == 51; }

enum { TO_JS, TO_SESSION, TO_TUN };

// Where the IPv6 packet p[0, f) goes (a native session: *to).
static int destination6(hsess *s, const unsigned char *p, size_t f, hsess **to) {
  if (!s->has6 || f < 40 || ext_header6(p[6]) || memcmp(p + 8, s->addr6, 16) != 0) return TO_JS;
  hsess *d = hub_lookup6(s->h, p + 24);
  if (!d) return hub_tun_takes(s->h, s, p, f) ? TO_TUN : TO_JS;
  *to = d;
  return d != s && !d->closing && f <= d->mtu ? TO_SESSION : TO_JS;
}

// Where the frame p[0, f) goes: a native session (*to), the tun, or JS, which decides.
static int destination(hsess *s, const unsigned char *p, size_t f, hsess **to) {
  if (p[0] >> 4 == 6) return destination6(s, p, f, to);
  if (p[0] >> 4 != 4 || f < 20) return TO_JS;
  uint32_t src = hub_rd32(p + 12), dst = hub_rd32(p + 16);
  if (src != s->addr || dst == 0 || dst == s->addr) return TO_JS;
  hsess *d = hub_lookup(s->h, dst);
  if (!d) return hub_tun_takes(s->h, s, p, f) ? TO_TUN : TO_JS;
  if (d->closing) return TO_JS;
  *to = d;
  // A KIND_SUPER frame's own header carries its super-packet's addresses (super.ts).
  if (p[9] == PROTO_EXT) return s->super && d->super && is_super_frame(p, f) ? TO_SESSION : TO_JS;
  return f <= d->mtu ? TO_SESSION : TO_JS;
}

static void add_iov(batch *b, unsigned char *p, size_t n) {
  struct iovec *last = b->iovcnt ? &b->iov[b->iovcnt - 1] : NULL;
  if (last && (unsigned char *)last->iov_base + last->iov_len == p) last->iov_len += n;
  else b->iov[b->iovcnt++] = (struct iovec){p, n};
}

void hub_queue(hub *h, hsess *d, unsigned char *hdr, size_t hlen, unsigned char *p, size_t f) {
  size_t n = hlen + f;
  batch *b = d->batch ? d->batch : lend_batch(h, d);
  // A full batch, or one the cap would refuse more of, leaves now: the cap counts what the
  // socket did not take, as the JS switch's does (not what waits for the end of the read).
  if (b->iovcnt + (hdr ? 2 : 1) > BATCH_IOV || (b->iovcnt && queued(d) + b->bytes + n > d->cap)) send_batch(d);
  if (d->werr || queued(d) + b->bytes + n > d->cap) {
    d->ct[CT_DROPS]++;
    return;
  }
  if (hdr) add_iov(b, hdr, hlen);
  add_iov(b, p, f);
  b->bytes += n;
  b->packets++;
}

// Frames the bytes in h->rbuf[0, *len): switched or kept for JS; an unfinished frame moves to
// the start. Returns the bytes for JS (in h->jsbuf).
static size_t take_frames(hsess *s, size_t *len) {
  hub *h = s->h;
  size_t pos = 0, js = 0, n = *len;
  unsigned char *b = h->rbuf;
  while (pos < n) {
    unsigned char *p = b + pos;
    long f = frame_length(p, n - pos);
    if (f < 0 || (size_t)f > h->max_frame) {
      // No frame: the session's framer, given the bytes, names the error.
      memcpy(h->jsbuf + js, p, n - pos);
      js += n - pos;
      pos = n;
      s->stopped = 1;
      break;
    }
    if (f == 0 || pos + (size_t)f > n) break;
    pos += (size_t)f;
    // Once a frame of this read goes to JS, the rest follows it: what C switches leaves before
    // JS sees any of the read, so a later frame switched here would overtake it.
    hsess *d = NULL;
    int to = js ? TO_JS : destination(s, p, (size_t)f, &d);
    if (to == TO_JS) {
      memcpy(h->jsbuf + js, p, (size_t)f);
      js += (size_t)f;
      continue;
    }
    s->ct[CT_RX_PACKETS]++;
    s->ct[CT_RX_BYTES] += (double)f;
    if (to == TO_SESSION) hub_queue(h, d, NULL, 0, p, (size_t)f);
    else hub_to_tun(h, p, (size_t)f);
  }
  hub_flush_batches(h);
  hub_tun_flush(h);
  s->consumed = pos > 0;
  memmove(b, b + pos, n - pos);
  *len = n - pos;
  return js;
}

static void emit_frames(hsess *s, size_t js) {
  void *data;
  napi_value ab;
  if (napi_create_arraybuffer(s->h->env, js, &data, &ab) != napi_ok) return;
  memcpy(data, s->h->jsbuf, js);
  call_js(s->h, HEV_FRAMES, s->slot, ab);
}

// Room for `n` bytes of an unfinished frame: grown to the most a read left (2 KiB at least),
// so that a session at MTU 1500 holds no 64 KiB buffer.
static int carry_room(hsess *s, size_t n) {
  if (n <= s->carry_cap) return 1;
  size_t cap = n < 2048 ? 2048 : n;
  unsigned char *c = realloc(s->carry, cap);
  if (!c) return 0;
  s->carry = c;
  s->carry_cap = cap;
  return 1;
}

// Keeps the unfinished frame at the start of rbuf for the session's next read.
static int keep_carry(hsess *s, size_t len) {
  if (!len) s->carry_since = 0;
  else if (s->consumed || !s->carry_since) s->carry_since = s->last_rx;
  s->consumed = 0;
  s->carry_len = len;
  if (!len) return 1;
  if (!carry_room(s, len)) return 0;
  memcpy(s->carry, s->h->rbuf, len);
  return 1;
}

static void read_sess(hsess *s) {
  hub *h = s->h;
  size_t len = s->carry_len;
  if (len) memcpy(h->rbuf, s->carry, len);
  s->carry_len = 0;
  int got = 0;
  for (int i = 0; i < READS_PER_WAKE; i++) {
    size_t room = RBUF_SIZE - len;
    ssize_t r = read(s->fd, h->rbuf + len, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        s->stopped = 1;
        set_events(s);
        report_error(s, errno, "read", "reading from the client failed");
        return;
      }
      break;
    }
    if (r == 0) {
      s->stopped = 1;
      set_events(s);
      if (!s->reported) {
        s->reported = 1;
        call_js(h, HEV_END, s->slot, NULL);
      }
      return;
    }
    if (!got) s->last_rx = wall_ms();
    got = 1;
    len += (size_t)r;
    size_t js = take_frames(s, &len);
    int more = !s->stopped && (size_t)r == room;
    // What JS may do (end this session, send elsewhere) comes after the rest is kept.
    if (!keep_carry(s, len)) {
      s->stopped = 1;
      set_events(s);
      report_error(s, ENOMEM, "malloc", "keeping an unfinished frame failed");
      return;
    }
    if (js) emit_frames(s, js);
    if (s->closing || s->stopped || !more) {
      set_events(s);
      return;
    }
    if (s->carry_len) memcpy(h->rbuf, s->carry, s->carry_len);
    len = s->carry_len;
    s->carry_len = 0;
  }
  keep_carry(s, len);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  hsess *s = p->data;
  if (s->closing) return;
  napi_env env = s->h->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  if (status < 0) {
    // libuv says EBADF for any EPOLLERR: the socket's own error says what happened.
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0) err = -status;
    s->stopped = 1;
    set_events(s);
    report_error(s, err, "poll", "the connection failed");
  } else {
    if ((events & UV_WRITABLE) && queued(s) && !s->werr) flush_out(s);
    if (s->werr) {
      s->stopped = 1;
      out_queue_clear(&s->out);
      report_error(s, s->werr, "write", "writing to the client failed");
      set_events(s);
    } else if ((events & UV_READABLE) && !s->stopped) {
      read_sess(s);
      // A session still attached means the hub is still open (closing it detaches them all).
      if (!s->closing && s->h->tun_err) hub_tun_report(s->h);
    }
  }
  napi_close_handle_scope(env, scope);
}

// ---- sessions ------------------------------------------------------------------------------

static void on_sess_closed(uv_handle_t *p) {
  hsess *s = p->data;
  free(s->carry);
  out_queue_free(&s->out);
  free(s);
}

static void detach(hsess *s) {
  hub *h = s->h;
  if (s->batch) {
    // Not reached (JS, which detaches, runs only once a read's batches left), but a batch must
    // never point at a freed session.
    s->batch->iovcnt = 0;
    s->batch->d = NULL;
    s->batch = NULL;
  }
  h->slots[s->slot] = NULL;
  unlink_addr(s);
  s->closing = 1;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_sess_closed);
  close(s->fd);
}

static void close_hub(hub *h) {
  if (h->closed) return;
  for (uint32_t i = 0; i < h->nslots; i++)
    if (h->slots[i]) detach(h->slots[i]);
  hub_tun_close(h);
  h->closed = 1;
  free(h->slots);
  h->slots = NULL;
  h->nslots = 0;
  free(h->rbuf);
  free(h->jsbuf);
  h->rbuf = h->jsbuf = NULL;
  if (h->cb_ref) napi_delete_reference(h->env, h->cb_ref);
  if (h->actx) napi_async_destroy(h->env, h->actx);
  h->cb_ref = NULL;
  h->actx = NULL;
  napi_remove_env_cleanup_hook(h->env, (void (*)(void *))close_hub, h);
}

static void finalize_hub(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  hub *h = data;
  close_hub(h);
  free(h);
}

// ---- JavaScript's side -----------------------------------------------------------------------

napi_value hub_throw(napi_env env, int err, const char *syscall, const char *msg) {
  char m[256];
  if (err) snprintf(m, sizeof m, "%s: %s", msg, strerror(err));
  napi_throw(env, tun_make_error(env, tun_errno_name(err ? err : EINVAL), err, syscall, err ? m : msg));
  return NULL;
}

hub *hub_get(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok || !p) {
    hub_throw(env, 0, NULL, "the first argument must be a hub from hubOpen()");
    return NULL;
  }
  hub *h = p;
  if (h->closed) {
    hub_throw(env, EBADF, NULL, "the hub is closed");
    return NULL;
  }
  return h;
}

// The hub and `n` - 1 more arguments into argv; NULL (thrown) when there are fewer or no hub.
hub *hub_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
  size_t argc = n;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < n) {
    char m[160];
    snprintf(m, sizeof m, "%s: missing arguments", usage);
    hub_throw(env, 0, NULL, m);
    return NULL;
  }
  return hub_get(env, argv[0]);
}

static hsess *get_sess(napi_env env, hub *h, napi_value v) {
  uint32_t slot;
  if (napi_get_value_uint32(env, v, &slot) != napi_ok || slot >= h->nslots) return NULL;
  return h->slots[slot];
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) { return tun_typed_array(env, v, napi_uint8_array, data, len); }

// hubOpen(maxFrame, onEvent(kind, slot, arg)) -> hub
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[2], ext, resource, rname;
  size_t argc = 2;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t max_frame = 0;
  napi_valuetype t;
  if (argc < 2 || napi_get_value_uint32(env, argv[0], &max_frame) != napi_ok || max_frame < 20 || max_frame > MAX_FRAME ||
      napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return hub_throw(env, 0, NULL, "hubOpen(maxFrame, onEvent): maxFrame must be 20-65535 and onEvent a function");
  hub *h = calloc(1, sizeof *h);
  if (h) {
    h->rbuf = malloc(RBUF_SIZE);
    h->jsbuf = malloc(RBUF_SIZE);
  }
  if (!h || !h->rbuf || !h->jsbuf) {
    if (h) free(h->rbuf), free(h->jsbuf);
    free(h);
    return hub_throw(env, ENOMEM, NULL, "hubOpen(): allocating the buffers failed");
  }
  h->env = env;
  h->max_frame = max_frame;
  if (napi_create_reference(env, argv[1], 1, &h->cb_ref) != napi_ok || napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "simplevpn:hub", NAPI_AUTO_LENGTH, &rname) != napi_ok ||
      napi_async_init(env, resource, rname, &h->actx) != napi_ok ||
      napi_create_external(env, h, finalize_hub, NULL, &ext) != napi_ok) {
    close_hub(h);
    free(h);
    return hub_throw(env, ENOMEM, NULL, "hubOpen(): setting up the hub failed");
  }
  napi_add_env_cleanup_hook(env, (void (*)(void *))close_hub, h);
  return ext;
}

// Descriptors are handed out lowest first, so a duplicate at `fd` means `fd` others are open.
// The native path takes a second descriptor per session; past half the process's limit it
// takes none, so that what is left serves new connections (one each on the JavaScript path)
// rather than failing their accept() with EMFILE: 3/4 of the limit in sessions at worst,
// where taking one for every session would stop at half.
static int too_many_descriptors(int fd, rlim_t *limit) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return 0;
  *limit = rl.rlim_cur;
  return (rlim_t)fd >= rl.rlim_cur / 2;
}

// hubAttach(hub, fd, address, mtu, sendQueue, initialBytes, superPackets, address6) -> slot
// (address6: the 16 bytes of its IPv6 address, or none)
static napi_value js_attach(napi_env env, napi_callback_info info) {
  napi_value argv[8], result;
  hub *h = hub_args(env, info, 8, argv, "hubAttach(hub, fd, address, mtu, sendQueue, initialBytes, superPackets, address6)");
  if (!h) return NULL;
  int32_t fd;
  uint32_t addr, mtu;
  double cap;
  void *init;
  size_t init_len;
  if (napi_get_value_int32(env, argv[1], &fd) != napi_ok || fd < 0) return hub_throw(env, 0, NULL, "hubAttach(): fd must be a file descriptor");
  if (napi_get_value_uint32(env, argv[2], &addr) != napi_ok || addr == 0) return hub_throw(env, 0, NULL, "hubAttach(): address must be a granted IPv4 address");
  if (napi_get_value_uint32(env, argv[3], &mtu) != napi_ok || napi_get_value_double(env, argv[4], &cap) != napi_ok || cap < 1)
    return hub_throw(env, 0, NULL, "hubAttach(): mtu and sendQueue must be numbers");
  if (!get_bytes(env, argv[5], &init, &init_len)) return hub_throw(env, 0, NULL, "hubAttach(): initialBytes must be a Uint8Array");
  bool super = false;
  if (napi_get_value_bool(env, argv[6], &super) != napi_ok) return hub_throw(env, 0, NULL, "hubAttach(): superPackets must be a boolean");
  void *a6;
  size_t a6_len;
  if (!get_bytes(env, argv[7], &a6, &a6_len) || (a6_len != 0 && a6_len != 16))
    return hub_throw(env, 0, NULL, "hubAttach(): address6 must be a Uint8Array of 16 bytes, or empty");
  if (a6_len && hub_lookup6(h, a6)) return hub_throw(env, EEXIST, NULL, "hubAttach(): a native session holds this IPv6 address already: detach it first");
  long f = frame_length(init, init_len);
  if (init_len && (f < 0 || (f > 0 && (size_t)f <= init_len)))
    return hub_throw(env, 0, NULL, "hubAttach(): initialBytes must be the start of one unfinished frame");
  if (hub_lookup(h, addr)) return hub_throw(env, EEXIST, NULL, "hubAttach(): a native session holds this address already: detach it first");
  uint32_t slot = 0;
  while (slot < h->nslots && h->slots[slot]) slot++;
  if (slot == h->nslots) {
    uint32_t n = h->nslots ? h->nslots * 2 : 64;
    hsess **ns = realloc(h->slots, n * sizeof *ns);
    if (!ns) return hub_throw(env, ENOMEM, NULL, "hubAttach(): growing the session table failed");
    memset(ns + h->nslots, 0, (n - h->nslots) * sizeof *ns);
    h->slots = ns;
    h->nslots = n;
  }
  hsess *s = calloc(1, sizeof *s);
  if (!s || !carry_room(s, init_len)) {
    if (s) free(s->carry);
    free(s);
    return hub_throw(env, ENOMEM, NULL, "hubAttach(): allocating the session failed");
  }
  uv_loop_t *loop = NULL;
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (nfd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok) {
    int e = nfd < 0 ? errno : EINVAL;
    if (nfd >= 0) close(nfd);
    free(s->carry), free(s);
    return hub_throw(env, e, "fcntl(F_DUPFD_CLOEXEC)", "hubAttach(): duplicating the socket's descriptor failed");
  }
  rlim_t limit = 0;
  if (too_many_descriptors(nfd, &limit)) {
    char m[400];
    snprintf(m, sizeof m,
             "hubAttach(): %d of the process's %llu descriptors are in use, and a native session takes a second one: past half "
             "the limit sessions stay on JavaScript, which leaves the rest for new connections (raise the open-file limit: ulimit -n, "
             "systemd's LimitNOFILE)",
             nfd, (unsigned long long)limit);
    close(nfd);
    free(s->carry), free(s);
    return hub_throw(env, EMFILE, NULL, m);
  }
  fcntl(nfd, F_SETFL, fcntl(nfd, F_GETFL) | O_NONBLOCK);
  int rc = uv_poll_init_socket(loop, &s->poll, nfd);
  if (rc < 0) {
    close(nfd);
    free(s->carry), free(s);
    return hub_throw(env, -rc, "uv_poll_init_socket", "hubAttach(): polling the socket failed");
  }
  s->poll.data = s;
  s->h = h;
  s->slot = slot;
  s->fd = nfd;
  s->addr = addr;
  s->mtu = mtu;
  s->super = super;
  if (a6_len) {
    memcpy(s->addr6, a6, 16);
    s->has6 = 1;
    hsess **b6 = bucket6(h, s->addr6);
    s->addr6_next = *b6;
    *b6 = s;
  }
  s->cap = (size_t)cap;
  s->last_rx = wall_ms();
  if (init_len) memcpy(s->carry, init, init_len);
  s->carry_len = init_len;
  s->carry_since = init_len ? s->last_rx : 0;
  hsess **b = bucket(h, addr);
  s->addr_next = *b;
  *b = s;
  h->slots[slot] = s;
  set_events(s);
  napi_create_uint32(env, slot, &result);
  return result;
}

// hubSend(hub, slot, bytes) -> whether it was taken (false: over the cap, or going away)
static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[3], result;
  hub *h = hub_args(env, info, 3, argv, "hubSend(hub, slot, bytes)");
  if (!h) return NULL;
  hsess *s = get_sess(env, h, argv[1]);
  void *data;
  size_t len;
  if (!get_bytes(env, argv[2], &data, &len)) return hub_throw(env, 0, NULL, "hubSend(): bytes must be a Uint8Array");
  bool ok = s && !s->closing && !s->werr && !s->reported && queued(s) + len <= s->cap;
  if (ok && len) {
    struct iovec iov = {data, len};
    sess_send(s, &iov, 1, len);
  }
  napi_get_boolean(env, ok, &result);
  return result;
}

// hubDrain(hub, slot, out: Float64Array(7)): rx packets, rx bytes, tx packets, tx bytes,
// drops since the last drain, the wall time (ms) of the last bytes received, and when the
// unfinished frame held began to arrive (0: none), for the frame timeout.
static napi_value js_drain(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  hub *h = hub_args(env, info, 3, argv, "hubDrain(hub, slot, out)");
  if (!h) return NULL;
  hsess *s = get_sess(env, h, argv[1]);
  size_t n;
  void *data;
  if (!s || !tun_typed_array(env, argv[2], napi_float64_array, &data, &n) || n < CT_COUNT + 2)
    return hub_throw(env, 0, NULL, "hubDrain(hub, slot, out): an attached slot and a Float64Array of 7");
  double *o = data;
  for (int i = 0; i < CT_COUNT; i++) {
    o[i] = s->ct[i];
    s->ct[i] = 0;
  }
  o[CT_COUNT] = s->last_rx;
  o[CT_COUNT + 1] = s->carry_since;
  return NULL;
}

// hubDetach(hub, slot) -> the bytes not sent yet (Uint8Array), or undefined.
static napi_value js_detach(napi_env env, napi_callback_info info) {
  napi_value argv[2], ab, result = NULL;
  hub *h = hub_args(env, info, 2, argv, "hubDetach(hub, slot)");
  if (!h) return NULL;
  hsess *s = get_sess(env, h, argv[1]);
  if (!s) return NULL;
  size_t n = queued(s);
  void *data;
  if (n && !s->werr && napi_create_arraybuffer(env, n, &data, &ab) == napi_ok) {
    memcpy(data, s->out.buf + s->out.off, n);
    napi_create_typedarray(env, napi_uint8_array, n, ab, 0, &result);
  }
  detach(s);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  void *p = NULL;
  if (argc && napi_get_value_external(env, argv[0], &p) == napi_ok && p) close_hub(p);
  return NULL;
}

void hub_register(napi_env env, napi_value exports) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {{"hubOpen", js_open},   {"hubAttach", js_attach}, {"hubSend", js_send},
             {"hubDrain", js_drain}, {"hubDetach", js_detach}, {"hubClose", js_close},
             {"hubTun", hub_js_tun},  {"hubClaim", hub_js_claim}, {"hubTunDrain", hub_js_tun_drain}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) == napi_ok)
      napi_set_named_property(env, exports, fns[i].name, f);
  }
}
