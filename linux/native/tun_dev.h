// The TUN device struct shared by tun.c (the device, its reads into JavaScript) and
// splice.c (the attached socket: packets between the device and a TCP socket without
// JavaScript). See each file's top comment.
#ifndef SIMPLEVPN_TUN_DEV_H
#define SIMPLEVPN_TUN_DEV_H

#include <net/if.h>
#include <stdint.h>
#include <node_api.h>
#include <uv.h>

#define MAX_BATCH 64
// A read is only attempted with room for the largest packet a TUN can return (its MTU is at
// most 65535), so no packet is ever truncated; 256 KiB still holds 64 full-size 1500-byte
// packets per wake-up.
#define MAX_PACKET 65536
// The tun queue length configure() sets (see there): 8 ms of 1500-byte packets at 6 Gbit/s.
#define TUN_TXQUEUELEN 4096
#define SCRATCH_SIZE (256 * 1024)
// With offloads on (IFF_VNET_HDR, TSO), every packet read or written is behind a 10-byte
// struct virtio_net_hdr, and a read may be a 64 KiB super-packet: a larger scratch buffer
// keeps a wake-up's batch worth the crossing.
#define VNET_HDR_LEN 10
#define VNET_SCRATCH_SIZE (1024 * 1024)
#define DEV_MAGIC 0x73767475u

typedef struct {
  uint32_t magic;
  napi_env env;
  int fd;
  char name[IFNAMSIZ];
  uv_poll_t poll;
  int handle_open;     // uv handle initialised, its close callback not yet run
  int js_gone;         // the JS handle was finalized
  int polling;
  int paused;          // reads stopped by pause(), until resume()
  int failed;          // reads stopped for good: the device failed (resume() will not restart them)
  int in_callback;     // > 0 while JS runs from on_poll
  int release_pending; // close() ran inside the callback: release JS state afterwards
  napi_async_cleanup_hook_handle cleanup;
  napi_ref self_ref;
  napi_ref cb_ref;
  napi_ref lengths_ref;
  napi_async_context actx;
  uint32_t *lengths;
  unsigned char *scratch;
  size_t scratch_size;
  int vnet; // packets carry a virtio_net_hdr both ways
  struct attached_sock *att; // the socket the packets go to and come from in C, or NULL
  struct hub *hub;           // the server's switching hub that reads and writes it in C, or NULL
  double native_stats[16];   // splice.c's counters (NATIVE_*), kept across attachments
} tun_dev;


// tun.c: calls the JS function `cb` from a uv callback (napi_make_callback, exceptions
// reported as uncaught); keeps the device's JS state alive while JS runs.
void tun_call_js(tun_dev *d, napi_ref cb, size_t argc, napi_value *argv);
// tun.c: an Error with .code, .errno and .syscall.
napi_value tun_make_error(napi_env env, const char *code, int err, const char *syscall, const char *message);
const char *tun_errno_name(int e);
// tun.c: writes one packet behind the virtio-net header `hdr` (on a device with offloads):
// 1 written, 0 dropped because the device is full, -errno otherwise.
int tun_write_packet(tun_dev *d, const void *hdr, const void *p, size_t len);
extern const unsigned char zero_vnet_hdr[VNET_HDR_LEN];
// tun.c: reads up to MAX_BATCH packets into d->scratch, back to back: their count, their
// lengths in `lengths`, the bytes used in *used; *err gets the errno of a failed read.
uint32_t tun_read_batch(tun_dev *d, uint32_t *lengths, size_t *used, int *err);
// tun.c: the device failed (errno `err` in `what`): reads stop for good and JS hears of it
// through the read callback, as of any failed read.
void tun_fail(tun_dev *d, int err, const char *what);
// tun.c: (re)starts reading the device unless it is paused or failed.
void tun_poll_resume(tun_dev *d);
void tun_poll_stop(tun_dev *d);

// splice.c
// The device is readable while attached: 0, or the errno of a failed read.
int splice_tun_readable(tun_dev *d);
void splice_detach(tun_dev *d);
napi_value splice_js_attach(napi_env env, napi_callback_info info);
napi_value splice_js_detach(napi_env env, napi_callback_info info);
napi_value splice_js_send_raw(napi_env env, napi_callback_info info);
napi_value splice_js_stats(napi_env env, napi_callback_info info);
// hub_tun.c: the hub reads the device (d->hub): 0, or the errno of a failed read.
int hub_tun_readable(tun_dev *d);
// hub_tun.c: the device closes; the hub stops using it.
void hub_tun_release(tun_dev *d);
// The server's native switching path (hub.c): its functions on the binding's exports.
void hub_register(napi_env env, napi_value exports);
tun_dev *tun_get_dev(napi_env env, napi_value v);
// tun.c: whether `v` is a typed array of type `want`: then its bytes and element count. The
// argument check of every function of the binding that takes one.
int tun_typed_array(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len);

#endif
