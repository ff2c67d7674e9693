// The server's native switching hub, shared by hub.c (the client sessions: their sockets,
// switching between them) and hub_tun.c (the server's own tun device: packets between it and
// the sessions). See each file's top comment.
#ifndef SIMPLEVPN_HUB_H
#define SIMPLEVPN_HUB_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include <node_api.h>
#include <uv.h>

#include "frames.h"
#include "gro.h"
#include "out_queue.h"
#include "tun_dev.h"

#define RBUF_SIZE (256 * 1024)
#define READS_PER_WAKE 8
#define BATCH_IOV 64
#define BATCHES 32
#define BUCKETS 1024
#define PROTO_EXT 253

enum { CT_RX_PACKETS, CT_RX_BYTES, CT_TX_PACKETS, CT_TX_BYTES, CT_DROPS, CT_COUNT };
// The tun's counters (hubTunDrain): packets read and handled here, packets written, and the
// writes the device refused, as the JS TunPort counts tun_full and tun_rejected.
enum { TUN_RX_PACKETS, TUN_TX_PACKETS, TUN_FULL, TUN_REJECTED, TUN_CT_COUNT };

typedef struct hub hub;
struct hsess;

// Frames for one session gathered during one read (of a socket, or of the tun), to leave in
// one writev at its end. The hub holds a few (BATCHES), lent to the sessions a read touches,
// rather than one in every session: 1 KiB of iovecs each, which idle sessions would carry.
typedef struct batch {
  struct hsess *d; // the session it is lent to, or NULL
  struct iovec iov[BATCH_IOV];
  int iovcnt;
  size_t bytes;
  uint32_t packets;
} batch;

typedef struct hsess {
  hub *h;
  uint32_t slot;
  int fd;
  uv_poll_t poll;
  int events;
  int closing;     // detached; freed by the poll's close callback
  int stopped;     // reading stopped for good: JS ends the session
  int werr;        // a write failed: EV_ERROR from the next poll callback
  int reported;    // EV_END or EV_ERROR went
  uint32_t addr, mtu;
  unsigned char addr6[16];
  int has6;        // granted an IPv6 address
  struct hsess *addr6_next;
  int super;       // declared T_OFFLOAD: sends and takes KIND_SUPER frames
  size_t cap;      // send-queue cap
  struct hsess *addr_next;
  unsigned char *carry; // the bytes of an unfinished frame between reads
  size_t carry_len, carry_cap;
  double carry_since; // wall ms when that frame began to arrive, 0 without one
  int consumed;       // the last read completed the frame that was carried
  out_queue out;   // what the socket has not taken (growing; kept within `cap` by its callers)
  struct batch *batch; // the frames queued to it during the current read, or NULL
  uint32_t js_batch; // the tun batch in which a packet for it went to JS (see hub_tun.c)
  double ct[CT_COUNT];
  double last_rx; // wall ms
} hsess;

// An address a port of the JS switch holds (any session, native or not): hub_tun.c never
// sends a packet for it to the tun. IPv4 addresses use a[12, 16), the rest zero.
typedef struct claim {
  unsigned char a[16];
  int v6;
  struct claim *next;
} claim;

struct hub {
  napi_env env;
  napi_ref cb_ref;
  napi_async_context actx;
  int closed;
  size_t max_frame;
  hsess **slots;
  uint32_t nslots;
  hsess *by_addr[BUCKETS];
  hsess *by_addr6[BUCKETS];
  // Batches lent during the current read: batches[0, nbatches); past BATCHES sessions in one
  // read, the oldest lent batch leaves early and is lent again (evict).
  batch batches[BATCHES];
  int nbatches, evict;
  unsigned char *rbuf;  // the read being framed (shared: one read at a time)
  unsigned char *jsbuf; // frames for JS out of that read
  // The server's tun, when JS handed it over (hubTun): NULL while JS reads and writes it.
  tun_dev *tun;
  int tun_err;          // a write to it failed for good: reported once the read is done
  uint32_t tun_batch;   // counts the tun's batches
  claim *claims[BUCKETS];
  double tun_ct[TUN_CT_COUNT];
  uint32_t tun_lens[MAX_BATCH];
  unsigned char tun_to_js[MAX_BATCH];
  unsigned char super_hdrs[MAX_BATCH][SUPER_HEADER];
  // Segments of one flow that a read brought, written to a tun with offloads as one
  // super-packet (as the TunPort's Coalescer does); flushed at the end of each read.
  gro gro;
};

uint32_t hub_rd32(const unsigned char *p);
// The native session holding an address (IPv4 as a number; IPv6, its 16 bytes), or NULL.
hsess *hub_lookup(hub *h, uint32_t a);
hsess *hub_lookup6(hub *h, const unsigned char *a);
// Queues the frame hdr[0, hlen) + p[0, f) (hdr may be NULL) to `d`, to leave with the rest of
// this read's frames for it (hub_flush_batches); dropped and counted past its send-queue cap.
void hub_queue(hub *h, hsess *d, unsigned char *hdr, size_t hlen, unsigned char *p, size_t f);
// The frames queued during this read leave, one writev per session.
void hub_flush_batches(hub *h);

// hub_tun.c
// Whether the hub's tun takes the frame p[0, f) from `s`, for a destination no native session
// holds (the frame's own; IPv6 or IPv4).
int hub_tun_takes(hub *h, const hsess *s, const unsigned char *p, size_t f);
// Writes the frame p[0, f) that `s` sent to the tun (it took it: hub_tun_takes()), or holds
// it to coalesce with the next ones until hub_tun_flush().
void hub_to_tun(hub *h, unsigned char *p, size_t f);
// The end of a read: what is held for the tun is written.
void hub_tun_flush(hub *h);
// A tun write failed for good during a read: the device's own error path tells JS.
void hub_tun_report(hub *h);
void hub_tun_close(hub *h);
napi_value hub_js_tun(napi_env env, napi_callback_info info);
napi_value hub_js_claim(napi_env env, napi_callback_info info);
napi_value hub_js_tun_drain(napi_env env, napi_callback_info info);
napi_value hub_throw(napi_env env, int err, const char *syscall, const char *msg);
hub *hub_get(napi_env env, napi_value v);
hub *hub_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage);

#endif
