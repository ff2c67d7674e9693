// Coalescing on the write side (GRO in user space), in C: consecutive TCP/IPv4 segments of
// one flow become one super-packet written to a tun opened with IFF_VNET_HDR. The same rules,
// limits and output bytes as common/offload/coalesce.ts (which says why each rule is there);
// test/unit/linux/gro-native.test.ts checks the two against each other byte for byte.
#ifndef SIMPLEVPN_GRO_H
#define SIMPLEVPN_GRO_H

#include <stddef.h>
#include <stdint.h>

// coalesce.ts's default: flows held at once, each in a buffer of the IPv4 limit.
#define GRO_FLOWS 8
#define GRO_MAX_IP 65535

// Where packets go: p[0, len) behind the 10-byte virtio-net header `vh` (all zero: a plain
// packet). Returns as tun_write_packet() does: 1 written, 0 dropped (device full), -errno.
typedef int (*gro_writer)(void *ctx, const unsigned char vh[10], const unsigned char *p, size_t len);

typedef struct {
  unsigned char *buf; // GRO_MAX_IP bytes: the super-packet in the making
  size_t len, hdrs, gso_size;
  unsigned count;     // segments in it
  uint32_t next_seq;
  unsigned id0;       // the first segment's IPv4 ID
  int psh;
} gro_slot;

typedef struct {
  gro_writer write;
  void *ctx;
  int flows;                    // slots in use at most (1 to GRO_FLOWS)
  int nopen;
  gro_slot *open[GRO_FLOWS];    // slots holding a super-packet, oldest first
  gro_slot *free_slots[GRO_FLOWS];
  gro_slot slots[GRO_FLOWS];
  double super_packets, segments; // written (two segments or more each), and the segments in them
  unsigned char bufs[GRO_FLOWS][GRO_MAX_IP];
} gro;

// `flows`: how many flows may be held at once (clamped to 1..GRO_FLOWS). No allocation: the
// buffers are in the struct (about 512 KiB), so embed it in something allocated once.
void gro_init(gro *g, int flows, gro_writer write, void *ctx);
// One plain packet, valid only during the call: copied and held when it may be coalesced,
// otherwise written at once (after its flow's held super-packet). The worst of the writes it
// made: 1 all written, 0 one dropped, or the first -errno.
int gro_push(gro *g, const unsigned char *p, size_t len);
// A whole TCP/IPv4 super-packet made ready with super_to_vnet() (frames.h), header `vh`:
// written at once, after its flow's held super-packet (coalesce.ts pushSuper()). As gro_push().
int gro_push_super(gro *g, const unsigned char vh[10], const unsigned char *p, size_t len);
// Writes every held super-packet, oldest first. As gro_push().
int gro_flush(gro *g);

#ifdef NAPI_VERSION
#include <node_api.h>
// Test only: groRun(packets, gsoSizes, flushAfter, flows) feeds the packets to a coalescer
// (gsoSizes[i] > 0: packets[i] is a super-packet of that gso_size, as a KIND_SUPER frame
// brings it) and returns its writes, [hdr, bytes] pairs, and its counters.
napi_value gro_js_run(napi_env env, napi_callback_info info);
#endif

#endif
