// The server's own tun device in the native hub (issue 15): the internet-bound path. Packets
// between native sessions and the networks beyond the server went through JavaScript both
// ways (the session's onData and the TunPort, then the TunPort's reads and the session's
// writes); at 1500 bytes a packet that cost the server most of a core.
//
// Once JS hands the device over (hubTun), the hub reads it, on the device's own uv_poll
// (tun.c's on_poll calls hub_tun_readable). A packet read goes to a native session here when
// one holds its destination and takes it as it is: within its MTU, or a TCP super-packet for
// a session that declared them (then framed whole, KIND_SUPER). Its checksum is completed
// first when the kernel left it partial, as linux/tun-offload.ts does. Everything else (for
// a JS session or nobody, too big, a super-packet to split, anything odd) goes to JS as a
// batch of its own, through the device's read callback, as if tun.c had read only those:
// the TunPort switches them as before. The frames for one session leave in one writev at the
// end of the batch, before JS runs, so for a session that got a packet through JS in this
// batch, the later ones go through JS too, and nothing overtakes.
//
// The other way, hub.c asks hub_tun_takes() for a session's frame whose destination no native
// session holds: the tun takes it unless a port of the JS switch holds the address (a claim:
// JS tells the hub of every address it binds, hubClaim), so that a packet for a TLS or
// WebSocket client is never handed to Linux. A KIND_SUPER frame is written whole behind its
// virtio-net header, as the TunPort's writeSuper does; on a device with offloads, plain TCP
// segments of one flow in a read are coalesced into one super-packet first (gro.c, the
// TunPort's Coalescer in C), written at the end of the read. A full device drops the packet
// (tun_full), a packet the kernel refuses is counted (tun_rejected); any other error takes the
// device away from the hub and reaches JS as the device's own read error does, where the
// server closes it (tun_failed). A device that fails otherwise (a read; the link deleted)
// leaves the hub as well (tun.c's tun_fail), so that JS hears of its failure once. Counters
// are drained by JS (hubTunDrain) into its metrics.

#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"

// ---- claims: addresses the JS switch holds -------------------------------------------------

static claim **claim_bucket(hub *h, const unsigned char a[16]) {
  uint32_t k = hub_rd32(a) ^ hub_rd32(a + 4) ^ hub_rd32(a + 8) ^ hub_rd32(a + 12);
  return &h->claims[(k ^ (k >> 10) ^ (k >> 20)) & (BUCKETS - 1)];
}

static claim **find_claim(hub *h, const unsigned char a[16], int v6) {
  claim **c = claim_bucket(h, a);
  while (*c && ((*c)->v6 != v6 || memcmp((*c)->a, a, 16) != 0)) c = &(*c)->next;
  return c;
}

static void ipv4_key(unsigned char a[16], const unsigned char *addr) {
  memset(a, 0, 12);
  memcpy(a + 12, addr, 4);
}

// ---- from a session to the tun ---------------------------------------------------------------

int hub_tun_takes(hub *h, const hsess *s, const unsigned char *p, size_t f) {
  if (!h->tun || h->tun_err) return 0;
  if (p[0] >> 4 == 6) return !*find_claim(h, p + 24, 1);
  unsigned char a[16];
  ipv4_key(a, p + 16);
  if (*find_claim(h, a, 0)) return 0;
  // A KIND_SUPER frame (its own header carries the packet's addresses, super.ts) goes whole
  // to a device with offloads; any other PROTO_EXT frame is JS's to look at.
  if (p[9] != PROTO_EXT) return 1;
  return s->super && h->tun->vnet && is_super_frame(p, f);
}

// One write to the tun, counted as the TunPort counts its writes (gro.c's writer).
static int tun_write(void *ctx, const unsigned char vh[VNET_HDR_LEN], const unsigned char *p, size_t len) {
  hub *h = ctx;
  if (!h->tun || h->tun_err) return -EBADF;
  int r = tun_write_packet(h->tun, vh, p, len);
  if (r == 1) h->tun_ct[TUN_TX_PACKETS]++;
  else if (r == 0) h->tun_ct[TUN_FULL]++;
  else if (r == -EINVAL) h->tun_ct[TUN_REJECTED]++; // not a packet the kernel parses (tun.ts refused())
  else h->tun_err = -r;
  return r;
}

void hub_to_tun(hub *h, unsigned char *p, size_t f) {
  if (p[0] >> 4 == 4 && p[9] == PROTO_EXT) {
    unsigned char vh[VNET_HDR_LEN];
    if (!super_to_vnet(p, f, vh)) h->tun_ct[TUN_REJECTED]++;
    else gro_push_super(&h->gro, vh, p + SUPER_HEADER, f - SUPER_HEADER);
  } else if (h->tun->vnet) {
    gro_push(&h->gro, p, f);
  } else {
    tun_write(h, zero_vnet_hdr, p, f);
  }
}

void hub_tun_flush(hub *h) {
  if (h->tun && h->tun->vnet) gro_flush(&h->gro);
}

static void release_tun(hub *h) {
  if (!h->tun) return;
  h->tun->hub = NULL;
  h->tun = NULL;
}

void hub_tun_report(hub *h) {
  tun_dev *t = h->tun;
  int e = h->tun_err;
  if (!t || !e) return;
  release_tun(h);
  tun_fail(t, e, "write");
}

// ---- from the tun to the sessions ------------------------------------------------------------

// The packet p[0, len) (behind the virtio-net header `vh`, or none) queued to `d` as it is;
// 0 when JS must handle it.
static int to_session(hub *h, hsess *d, const unsigned char *vh, unsigned char *p, size_t len, uint32_t k) {
  if (vh && vnet_is_super(vh)) {
    if (!d->super || !super_header_for(vh, p, len, h->super_hdrs[k])) return 0;
    hub_queue(h, d, h->super_hdrs[k], SUPER_HEADER, p, len);
    return 1;
  }
  if (len > d->mtu || frame_length(p, len) != (long)len) return 0;
  if (vh && !vnet_complete_checksum(vh, p, len)) return 0;
  hub_queue(h, d, NULL, 0, p, len);
  return 1;
}

// The k-th packet of the batch, raw[0, n) as read: 1 when it went to a native session here.
static int from_tun(hub *h, tun_dev *t, unsigned char *raw, size_t n, uint32_t k) {
  const unsigned char *vh = NULL;
  unsigned char *p = raw;
  if (t->vnet) {
    if (n < VNET_HDR_LEN) return 0;
    vh = raw;
    p += VNET_HDR_LEN;
    n -= VNET_HDR_LEN;
  }
  hsess *d;
  if (n >= 20 && p[0] >> 4 == 4) d = hub_lookup(h, hub_rd32(p + 16));
  else if (n >= 40 && p[0] >> 4 == 6) d = hub_lookup6(h, p + 24);
  else return 0;
  if (!d || d->closing || d->js_batch == h->tun_batch) return 0;
  if (!to_session(h, d, vh, p, n, k)) {
    d->js_batch = h->tun_batch;
    return 0;
  }
  h->tun_ct[TUN_RX_PACKETS]++;
  return 1;
}

// What JS must handle, as the device's read callback gets a batch: (slab, count), lengths in
// the device's shared array.
static void emit_rest(hub *h, tun_dev *t, uint32_t n, size_t bytes, uint32_t count) {
  napi_value argv[2];
  void *data;
  if (!t->lengths || napi_create_arraybuffer(t->env, bytes, &data, &argv[0]) != napi_ok) return;
  unsigned char *out = data, *at = t->scratch;
  for (uint32_t k = 0, j = 0; k < n; at += h->tun_lens[k++]) {
    if (!h->tun_to_js[k]) continue;
    memcpy(out, at, h->tun_lens[k]);
    out += h->tun_lens[k];
    t->lengths[j++] = h->tun_lens[k];
  }
  napi_create_uint32(t->env, count, &argv[1]);
  tun_call_js(t, t->cb_ref, 2, argv);
}

int hub_tun_readable(tun_dev *t) {
  hub *h = t->hub;
  size_t used = 0, bytes = 0;
  int err = 0;
  uint32_t n = tun_read_batch(t, h->tun_lens, &used, &err), count = 0;
  if (++h->tun_batch == 0) h->tun_batch = 1; // 0: no batch (a session's js_batch at first)
  unsigned char *at = t->scratch;
  for (uint32_t k = 0; k < n; at += h->tun_lens[k++]) {
    h->tun_to_js[k] = !from_tun(h, t, at, h->tun_lens[k], k);
    if (h->tun_to_js[k]) {
      bytes += h->tun_lens[k];
      count++;
    }
  }
  hub_flush_batches(h);
  if (count) emit_rest(h, t, n, bytes, count);
  return err;
}

void hub_tun_release(tun_dev *t) {
  if (t->hub) release_tun(t->hub);
}

void hub_tun_close(hub *h) {
  release_tun(h);
  for (int i = 0; i < BUCKETS; i++)
    for (claim *c = h->claims[i], *next; c; c = next) {
      next = c->next;
      free(c);
    }
  memset(h->claims, 0, sizeof h->claims);
}

// ---- JavaScript's side -----------------------------------------------------------------------

// hubTun(hub, device | null): the hub reads and writes the server's tun (device: tun.ts's
// handle), or stops (JS reads it again).
napi_value hub_js_tun(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  napi_valuetype type;
  hub *h = hub_args(env, info, 2, argv, "hubTun(hub, device)");
  if (!h) return NULL;
  if (napi_typeof(env, argv[1], &type) != napi_ok) return NULL;
  if (type == napi_null || type == napi_undefined) {
    release_tun(h);
    return NULL;
  }
  tun_dev *t = tun_get_dev(env, argv[1]);
  if (!t) return NULL;
  if (t->fd < 0) return hub_throw(env, EBADF, NULL, "hubTun(): the device is closed");
  if (t->failed) return hub_throw(env, EIO, NULL, "hubTun(): the device failed earlier: close it and open a new one");
  if (t->att || (t->hub && t->hub != h)) return hub_throw(env, EBUSY, NULL, "hubTun(): the device already sends its packets elsewhere in C");
  release_tun(h);
  h->tun = t;
  h->tun_err = 0;
  t->hub = h;
  gro_init(&h->gro, GRO_FLOWS, tun_write, h);
  return NULL;
}

// hubClaim(hub, address, held): address a number (IPv4) or 16 bytes (IPv6) that a port of the
// JS switch now holds (held) or no longer holds.
napi_value hub_js_claim(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  hub *h = hub_args(env, info, 3, argv, "hubClaim(hub, address, held)");
  if (!h) return NULL;
  unsigned char a[16];
  uint32_t v4;
  int v6 = 0;
  bool held;
  size_t len;
  void *data;
  if (napi_get_value_uint32(env, argv[1], &v4) == napi_ok) {
    unsigned char b[4] = {v4 >> 24, v4 >> 16, v4 >> 8, v4};
    ipv4_key(a, b);
  } else if (tun_typed_array(env, argv[1], napi_uint8_array, &data, &len) && len == 16) {
    memcpy(a, data, 16);
    v6 = 1;
  } else {
    return hub_throw(env, 0, NULL, "hubClaim(): address must be an IPv4 address as a number or 16 bytes of IPv6");
  }
  if (napi_get_value_bool(env, argv[2], &held) != napi_ok) return hub_throw(env, 0, NULL, "hubClaim(): held must be a boolean");
  claim **c = find_claim(h, a, v6);
  if (held && !*c) {
    claim *n = calloc(1, sizeof *n);
    if (!n) return hub_throw(env, ENOMEM, NULL, "hubClaim(): allocating failed");
    memcpy(n->a, a, 16);
    n->v6 = v6;
    *c = n;
  } else if (!held && *c) {
    claim *gone = *c;
    *c = gone->next;
    free(gone);
  }
  return NULL;
}

// hubTunDrain(hub, out: Float64Array(4)): packets read from the tun and sent on here, packets
// written to it, writes dropped because it was full, and refused, since the last drain.
napi_value hub_js_tun_drain(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  hub *h = hub_args(env, info, 2, argv, "hubTunDrain(hub, out)");
  if (!h) return NULL;
  size_t n;
  void *data;
  if (!tun_typed_array(env, argv[1], napi_float64_array, &data, &n) || n < TUN_CT_COUNT)
    return hub_throw(env, 0, NULL, "hubTunDrain(hub, out): out must be a Float64Array of 4");
  double *o = data;
  for (int i = 0; i < TUN_CT_COUNT; i++) {
    o[i] = h->tun_ct[i];
    h->tun_ct[i] = 0;
  }
  return NULL;
}
