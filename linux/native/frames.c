// The frames of the simplevpn stream and the virtio-net header, in C: see frames.h.

#include <string.h>

#include "frames.h"

#define PROTO_EXT 253
#define KIND_SUPER 6
#define EXT_VERSION 1
#define VNET_F_NEEDS_CSUM 1
#define GSO_NONE 0
#define GSO_TCPV4 1
#define GSO_ECN 0x80

long frame_length(const unsigned char *b, size_t avail) {
  if (avail < 1) return 0;
  long len;
  if (b[0] >> 4 == 4) {
    long hl = (b[0] & 15) << 2;
    if (hl < 20) return -2;
    if (avail < 4) return 0;
    len = (b[2] << 8) | b[3];
    if (len < hl) len = hl;
  } else if (b[0] >> 4 == 6) {
    if (avail < 6) return 0;
    len = 40 + ((b[4] << 8) | b[5]);
  } else {
    return -1;
  }
  return len > MAX_FRAME ? -3 : len;
}

int is_control(const unsigned char *p) {
  if (p[0] >> 4 != 4) return 0;
  uint32_t src = (uint32_t)p[12] << 24 | (uint32_t)p[13] << 16 | (uint32_t)p[14] << 8 | p[15];
  return src == 0xffffffffu || src == 0;
}

int is_super_frame(const unsigned char *p, size_t f) {
  return f > SUPER_HEADER + 40 && p[9] == PROTO_EXT && p[20] == 0x53 && p[21] == 0x56 && p[22] == KIND_SUPER;
}

static uint64_t sum16(const unsigned char *b, size_t n, uint64_t s) {
  size_t i = 0;
  for (; i + 1 < n; i += 2) s += (uint32_t)(b[i] << 8 | b[i + 1]);
  if (i < n) s += (uint32_t)b[i] << 8;
  return s;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static void put16(unsigned char *p, unsigned v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
}

// common/offload/split.ts tcp4Headers(): IPv4 + TCP header bytes of a TCP/IPv4 packet that
// can be segmented, or -1.
static long tcp4_headers(const unsigned char *p, size_t len) {
  if (len < 40 || p[0] >> 4 != 4 || p[9] != 6) return -1;
  size_t ihl = (size_t)(p[0] & 15) * 4;
  if (ihl < 20 || (size_t)((p[2] << 8) | p[3]) != len) return -1;
  if ((((p[6] << 8) | p[7]) & 0x3fff) != 0) return -1;
  if (ihl + 20 > len) return -1;
  size_t thl = (size_t)(p[ihl + 12] >> 4) * 4;
  if (thl < 20 || ihl + thl > len) return -1;
  return (long)(ihl + thl);
}

void tcp4_partial_checksums(unsigned char *p, size_t len, size_t ihl) {
  p[10] = p[11] = 0;
  put16(p + 10, (uint16_t)~fold(sum16(p, ihl, 0)));
  put16(p + ihl + 16, fold(sum16(p + 12, 8, 6 + (len - ihl))));
}

void vnet_tcp4_header(unsigned char vh[10], size_t hdrs, unsigned gso, size_t ihl) {
  const unsigned char h[10] = {VNET_F_NEEDS_CSUM, gso ? GSO_TCPV4 : GSO_NONE, (unsigned char)hdrs,
                               (unsigned char)(hdrs >> 8), (unsigned char)gso, (unsigned char)(gso >> 8),
                               (unsigned char)ihl, 0, 16, 0};
  memcpy(vh, h, sizeof h);
}

int super_to_vnet(unsigned char *frame, size_t f, unsigned char vh[10]) {
  unsigned char *q = frame + SUPER_HEADER;
  size_t len = f - SUPER_HEADER;
  unsigned gso = (unsigned)(frame[24] << 8 | frame[25]);
  long hdrs = tcp4_headers(q, len);
  if (hdrs < 0 || gso == 0) return 0;
  size_t ihl = (size_t)(q[0] & 15) * 4;
  tcp4_partial_checksums(q, len, ihl);
  int whole = len - (size_t)hdrs <= gso; // one segment's worth: an ordinary packet
  vnet_tcp4_header(vh, (size_t)hdrs, whole ? 0 : gso, ihl);
  return 1;
}

int vnet_is_super(const unsigned char *vh) { return (vh[1] & ~GSO_ECN) != GSO_NONE; }

int vnet_complete_checksum(const unsigned char *vh, unsigned char *p, size_t len) {
  if (!(vh[0] & VNET_F_NEEDS_CSUM)) return 1;
  size_t start = (size_t)(vh[6] | vh[7] << 8), at = start + (size_t)(vh[8] | vh[9] << 8);
  if (at + 2 > len || start >= len) return 0;
  uint16_t c = (uint16_t)~fold(sum16(p + start, len - start, 0));
  if (c == 0 && at - start == 6) c = 0xffff; // UDP: 0 means "no checksum"
  put16(p + at, c);
  return 1;
}

int super_header_for(const unsigned char *vh, const unsigned char *p, size_t len, unsigned char out[SUPER_HEADER]) {
  unsigned gso = (unsigned)(vh[4] | vh[5] << 8);
  if ((vh[1] & ~GSO_ECN) != GSO_TCPV4 || len > MAX_SUPER || gso == 0 || tcp4_headers(p, len) < 0) return 0;
  out[0] = 0x45;
  out[1] = 0x14;
  put16(out + 2, (unsigned)(SUPER_HEADER + len));
  memset(out + 4, 0, 4);
  out[8] = 0x40;
  out[9] = PROTO_EXT;
  out[10] = out[11] = 0;
  memcpy(out + 12, p + 12, 8);
  out[20] = 0x53;
  out[21] = 0x56;
  out[22] = KIND_SUPER;
  out[23] = EXT_VERSION;
  put16(out + 24, gso);
  return 1;
}
