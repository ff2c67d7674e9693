// Coalescing TCP/IPv4 segments into super-packets on the way to a tun with offloads: see
// gro.h, and common/offload/coalesce.ts for the rules (kept in the same order here, so that
// the two read side by side).

#include <stdlib.h>
#include <string.h>

#include "frames.h"
#include "gro.h"

#define IPPROTO_TCP_ 6
#define TCP_PSH 0x08
#define TCP_ACK 0x10

static const unsigned char plain_vh[10];

static uint32_t u32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static unsigned u16(const unsigned char *b) { return (unsigned)(b[0] << 8 | b[1]); }

// The worse of two write results: the first error, else a drop.
static int worse(int a, int b) {
  if (a < 0) return a;
  if (b < 0) return b;
  return a < b ? a : b;
}

void gro_init(gro *g, int flows, gro_writer write, void *ctx) {
  g->write = write;
  g->ctx = ctx;
  g->flows = flows < 1 ? 1 : flows > GRO_FLOWS ? GRO_FLOWS : flows;
  g->nopen = 0;
  g->super_packets = g->segments = 0;
  for (int i = 0; i < GRO_FLOWS; i++) {
    g->slots[i].buf = g->bufs[i];
    g->free_slots[i] = &g->slots[i];
  }
}

// The TCP header length when p[0, len) may be coalesced, else 0.
static size_t candidate(const unsigned char *p, size_t len) {
  if (len < 41 || p[0] != 0x45 || p[9] != IPPROTO_TCP_) return 0;
  if (u16(p + 2) != len) return 0;
  if ((u16(p + 6) & 0x3fff) != 0) return 0; // MF or a fragment offset
  if (p[33] != TCP_ACK && p[33] != (TCP_ACK | TCP_PSH)) return 0;
  size_t thl = (size_t)(p[32] >> 4) * 4;
  if (thl < 20 || 20 + thl >= len) return 0; // no payload: nothing to coalesce
  return thl;
}

// The open slot of the TCP/IPv4 packet p[0, len)'s flow (same addresses and ports), or -1.
static int find_flow(const gro *g, const unsigned char *p, size_t len) {
  if (len < 20 || p[0] >> 4 != 4 || p[9] != IPPROTO_TCP_) return -1;
  size_t ihl = (size_t)(p[0] & 15) * 4;
  if (len < ihl + 4) return -1;
  for (int i = 0; i < g->nopen; i++) {
    const unsigned char *b = g->open[i]->buf;
    if (u32(b + 12) == u32(p + 12) && u32(b + 16) == u32(p + 16) && u32(b + 20) == u32(p + ihl)) return i;
  }
  return -1;
}

// Writes open[at] and frees its slot.
static int emit(gro *g, int at) {
  gro_slot *s = g->open[at];
  memmove(&g->open[at], &g->open[at + 1], (size_t)(g->nopen - at - 1) * sizeof g->open[0]);
  g->nopen--;
  g->free_slots[g->flows - g->nopen - 1] = s;
  unsigned char *b = s->buf;
  if (s->count == 1) return g->write(g->ctx, plain_vh, b, s->len);
  b[2] = (unsigned char)(s->len >> 8);
  b[3] = (unsigned char)s->len;
  if (s->psh) b[33] |= TCP_PSH;
  tcp4_partial_checksums(b, s->len, 20);
  unsigned char vh[10];
  vnet_tcp4_header(vh, s->hdrs, (unsigned)s->gso_size, 20);
  g->super_packets++;
  g->segments += s->count;
  return g->write(g->ctx, vh, b, s->len);
}

// Whether the segment p (already a candidate) continues the slot's super-packet.
static int fits(const gro_slot *s, const unsigned char *p, size_t len, size_t thl) {
  const unsigned char *b = s->buf;
  size_t payload = len - 20 - thl;
  if (s->psh || s->len - s->hdrs != s->count * s->gso_size) return 0; // ended by PSH or a short segment
  if (20 + thl != s->hdrs || payload > s->gso_size || s->len + payload > GRO_MAX_IP) return 0;
  if (b[1] != p[1] || b[8] != p[8] || (b[6] & 0x40) != (p[6] & 0x40)) return 0;
  if (u16(p + 4) != ((s->id0 + s->count) & 0xffff)) return 0;
  if (u32(p + 24) != s->next_seq || u32(p + 28) != u32(b + 28)) return 0;
  return memcmp(b + 40, p + 40, s->hdrs - 40) == 0;
}

static int append(gro *g, int at, const unsigned char *p, size_t len, size_t thl) {
  gro_slot *s = g->open[at];
  size_t payload = len - 20 - thl;
  memcpy(s->buf + s->len, p + 20 + thl, payload);
  s->len += payload;
  s->count++;
  s->next_seq += (uint32_t)payload;
  if (p[33] & TCP_PSH) s->psh = 1;
  // Ended: PSH, a short segment, or no room for another full one.
  if (s->psh || payload < s->gso_size || s->len + s->gso_size > GRO_MAX_IP) return emit(g, at);
  return 1;
}

int gro_push(gro *g, const unsigned char *p, size_t len) {
  size_t thl = candidate(p, len);
  int at = find_flow(g, p, len), ok = 1;
  if (thl == 0) {
    if (at >= 0) ok = emit(g, at);
    return worse(g->write(g->ctx, plain_vh, p, len), ok);
  }
  if (at >= 0) {
    if (fits(g->open[at], p, len, thl)) return append(g, at, p, len, thl);
    ok = emit(g, at);
  }
  if (g->nopen == g->flows) ok = worse(emit(g, 0), ok);
  gro_slot *s = g->free_slots[g->flows - g->nopen - 1];
  memcpy(s->buf, p, len);
  s->len = len;
  s->hdrs = 20 + thl;
  s->gso_size = len - s->hdrs;
  s->count = 1;
  s->next_seq = u32(p + 24) + (uint32_t)s->gso_size;
  s->id0 = u16(p + 4);
  s->psh = (p[33] & TCP_PSH) != 0;
  g->open[g->nopen++] = s;
  if (s->psh) return worse(emit(g, g->nopen - 1), ok);
  return ok;
}

int gro_push_super(gro *g, const unsigned char vh[10], const unsigned char *p, size_t len) {
  int at = find_flow(g, p, len), ok = 1;
  if (at >= 0) ok = emit(g, at);
  return worse(g->write(g->ctx, vh, p, len), ok);
}

int gro_flush(gro *g) {
  int ok = 1;
  while (g->nopen) ok = worse(emit(g, 0), ok);
  return ok;
}

// ---- the test hook (gro.h gro_js_run) -----------------------------------------------------
// Only in the addon (binding.gyp defines NAPI_VERSION): gro.c alone builds without Node.
#ifdef NAPI_VERSION
#include <node_api.h>

typedef struct {
  napi_env env;
  napi_value writes;
  uint32_t n;
} recorder;

static napi_value bytes_of(napi_env env, const unsigned char *p, size_t len) {
  void *data;
  napi_value ab, ta;
  napi_create_arraybuffer(env, len, &data, &ab);
  if (len) memcpy(data, p, len);
  napi_create_typedarray(env, napi_uint8_array, len, ab, 0, &ta);
  return ta;
}

static int record(void *ctx, const unsigned char vh[10], const unsigned char *p, size_t len) {
  recorder *r = ctx;
  napi_value pair;
  napi_create_array_with_length(r->env, 2, &pair);
  napi_set_element(r->env, pair, 0, bytes_of(r->env, vh, 10));
  napi_set_element(r->env, pair, 1, bytes_of(r->env, p, len));
  napi_set_element(r->env, r->writes, r->n++, pair);
  return 1;
}

static napi_value run_error(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static void set_number(napi_env env, napi_value o, const char *name, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, name, x);
}

napi_value gro_js_run(napi_env env, napi_callback_info info) {
  static const char usage[] = "groRun(packets, gsoSizes, flushAfter, flows): arrays of Uint8Array, numbers, indices; a number";
  napi_value argv[4], result, el;
  size_t argc = 4;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t count, nflush, flows;
  if (argc < 4 || napi_get_array_length(env, argv[0], &count) != napi_ok ||
      napi_get_array_length(env, argv[2], &nflush) != napi_ok || napi_get_value_uint32(env, argv[3], &flows) != napi_ok)
    return run_error(env, usage);
  gro *g = malloc(sizeof *g);
  unsigned char *frame = malloc(SUPER_HEADER + GRO_MAX_IP), *flush_after = calloc(count + 1, 1);
  if (!g || !frame || !flush_after) {
    free(g), free(frame), free(flush_after);
    return run_error(env, "groRun(): out of memory");
  }
  for (uint32_t j = 0; j < nflush; j++) {
    uint32_t at;
    if (napi_get_element(env, argv[2], j, &el) == napi_ok && napi_get_value_uint32(env, el, &at) == napi_ok && at < count)
      flush_after[at] = 1;
  }
  recorder r = {env, NULL, 0};
  napi_create_array(env, &r.writes);
  gro_init(g, (int)flows, record, &r);
  double malformed = 0;
  for (uint32_t i = 0; i < count; i++) {
    void *data;
    size_t len;
    napi_typedarray_type tt;
    uint32_t gso = 0;
    if (napi_get_element(env, argv[0], i, &el) != napi_ok ||
        napi_get_typedarray_info(env, el, &tt, &len, &data, NULL, NULL) != napi_ok || tt != napi_uint8_array ||
        len > GRO_MAX_IP || napi_get_element(env, argv[1], i, &el) != napi_ok ||
        napi_get_value_uint32(env, el, &gso) != napi_ok || gso > 0xffff) {
      free(g), free(frame), free(flush_after);
      return run_error(env, usage);
    }
    if (gso == 0) {
      gro_push(g, data, len);
    } else {
      // As a KIND_SUPER frame brings it: only the gso_size of the 26-byte header is read.
      memset(frame, 0, SUPER_HEADER);
      frame[24] = (unsigned char)(gso >> 8);
      frame[25] = (unsigned char)gso;
      memcpy(frame + SUPER_HEADER, data, len);
      unsigned char vh[10];
      if (len >= 40 && super_to_vnet(frame, SUPER_HEADER + len, vh)) gro_push_super(g, vh, frame + SUPER_HEADER, len);
      else malformed++;
    }
    if (flush_after[i]) gro_flush(g);
  }
  gro_flush(g);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "writes", r.writes);
  set_number(env, result, "superPackets", g->super_packets);
  set_number(env, result, "segments", g->segments);
  set_number(env, result, "malformed", malformed);
  free(g), free(frame), free(flush_after);
  return result;
}
#endif
