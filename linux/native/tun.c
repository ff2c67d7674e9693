// simplevpn's TUN device binding: create or attach a Linux TUN interface, configure it with
// the classic ioctls, and move packets between it and JavaScript without threads.
//
// Reads are driven by a uv_poll on the non-blocking fd, on Node's own event loop. Each
// wake-up drains up to a batch of packets into a scratch buffer, then copies them into ONE
// fresh ArrayBuffer and calls JavaScript once: the per-batch slab lets JS keep packets (queue
// them in a socket write) while the scratch buffer is reused, and one call per batch keeps
// the JS/native crossing off the per-packet cost. Packet lengths go into a Uint32Array that
// lives as long as the device, so a batch allocates nothing besides its slab.
//
// Lifetime: a device is held by two owners, its JS handle (an external, finalized by GC) and
// its uv_poll handle (released by uv_close's callback). The struct is freed when both are
// gone, so neither a late close callback nor a late finalizer can touch freed memory. An open
// device keeps itself alive (a strong reference to its handle), like a socket does, until
// close() or the environment's teardown (process exit, worker termination). Teardown uses an
// async cleanup hook, released only from uv_close's callback: Node then keeps running the
// loop, and keeps this library loaded, until that callback has run; with a plain cleanup
// hook a worker could unload the addon while the close callback was still pending.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "gro.h"
#include "tun_dev.h"

const unsigned char zero_vnet_hdr[VNET_HDR_LEN];

const char *tun_errno_name(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(EBADF) E(EAGAIN)
    E(ENOMEM) E(EACCES) E(EFAULT) E(EBUSY) E(EEXIST) E(ENODEV) E(ENOTDIR) E(EINVAL)
    E(ENFILE) E(EMFILE) E(ENOTTY) E(ENOSPC) E(EROFS) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS)
    E(EBADFD) E(EMSGSIZE) E(EPROTONOSUPPORT) E(EOPNOTSUPP) E(EAFNOSUPPORT) E(EADDRINUSE)
    E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ENOBUFS) E(EHOSTUNREACH) E(ENOMEDIUM)
#undef E
    default: return "EUNKNOWN";
  }
}
#define errno_name tun_errno_name

// An Error with .code (errno name), .errno (negative, as in Node's system errors) and
// .syscall; the message names the device and the operation.
napi_value tun_make_error(napi_env env, const char *code, int err, const char *syscall, const char *message) {
  napi_value jcode, jmsg, e, v;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &jcode);
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &jmsg);
  napi_create_error(env, jcode, jmsg, &e);
  if (err) {
    napi_create_int32(env, -err, &v);
    napi_set_named_property(env, e, "errno", v);
  }
  if (syscall) {
    napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
    napi_set_named_property(env, e, "syscall", v);
  }
  return e;
}
#define make_error tun_make_error

// Throws; `err` 0 means a usage error (code EINVAL, no strerror suffix).
static napi_value throw_err(napi_env env, int err, const char *syscall, const char *fmt, ...) {
  char msg[320];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (err && n > 0 && (size_t)n < sizeof msg) snprintf(msg + n, sizeof msg - n, ": %s", strerror(err));
  napi_throw(env, make_error(env, errno_name(err ? err : EINVAL), err, syscall, msg));
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

// ---- lifetime ----------------------------------------------------------------------------

static void maybe_free(tun_dev *d) {
  if (d->handle_open || !d->js_gone) return;
  free(d->scratch);
  d->magic = 0;
  free(d);
}

static void on_handle_closed(uv_handle_t *h) {
  tun_dev *d = h->data;
  d->handle_open = 0;
  if (d->cleanup) napi_remove_async_cleanup_hook(d->cleanup);
  d->cleanup = NULL;
  maybe_free(d);
}

static void stop_polling(tun_dev *d) {
  if (!d->polling) return;
  uv_poll_stop(&d->poll);
  d->polling = 0;
}

// Native side only: safe anywhere, including a finalizer. The fd is closed after
// uv_poll_stop has removed it from epoll, as libuv requires.
static void close_native(tun_dev *d) {
  if (d->fd < 0) return;
  splice_detach(d); // before the device's own handle: its close callback runs first
  hub_tun_release(d);
  stop_polling(d);
  uv_close((uv_handle_t *)&d->poll, on_handle_closed);
  close(d->fd);
  d->fd = -1;
}

static void release_js(tun_dev *d) {
  napi_env env = d->env;
  d->release_pending = 0;
  if (d->cb_ref) napi_delete_reference(env, d->cb_ref);
  if (d->lengths_ref) napi_delete_reference(env, d->lengths_ref);
  if (d->actx) napi_async_destroy(env, d->actx);
  // Last: dropping the self reference lets GC finalize the handle.
  if (d->self_ref) napi_delete_reference(env, d->self_ref);
  d->cb_ref = d->lengths_ref = d->self_ref = NULL;
  d->actx = NULL;
  d->lengths = NULL;
}

static void close_dev(tun_dev *d) {
  if (d->fd < 0) return;
  close_native(d);
  // Inside the read callback napi_make_callback is still using the async context and the
  // callback: on_poll releases them once JS returns.
  if (d->in_callback) d->release_pending = 1;
  else release_js(d);
}

static void cleanup_hook(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle; // removed by on_handle_closed, which also covers close() before teardown
  close_dev(arg);
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  tun_dev *d = data;
  // Only reachable with the device still open if teardown skipped the cleanup hook.
  close_native(d);
  d->js_gone = 1;
  maybe_free(d);
}

// ---- reading -----------------------------------------------------------------------------

// Calls the JS read callback from a uv callback: napi_make_callback enters the async
// context and, on return, runs the nextTick and microtask queues.
void tun_call_js(tun_dev *d, napi_ref cb_ref, size_t argc, napi_value *argv) {
  napi_env env = d->env;
  napi_value cb, recv;
  if (!cb_ref || !d->actx || napi_get_reference_value(env, cb_ref, &cb) != napi_ok || !cb) return;
  napi_get_global(env, &recv);
  d->in_callback++;
  napi_status s = napi_make_callback(env, d->actx, recv, cb, argc, argv, NULL);
  d->in_callback--;
  if (s == napi_pending_exception) {
    napi_value e = NULL;
    napi_valuetype t = napi_undefined;
    napi_get_and_clear_last_exception(env, &e);
    // Nothing to report when JS cannot run any more (a worker being terminated).
    if (e && napi_typeof(env, e, &t) == napi_ok && t != napi_undefined && t != napi_null)
      napi_fatal_exception(env, e); // like any event handler that throws: 'uncaughtException'
  }
  if (!d->in_callback && d->release_pending) release_js(d);
}

static void deliver_error(tun_dev *d, const char *code, int err, const char *what, const char *reason) {
  napi_env env = d->env;
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s failed: %s", d->name, what, reason);
  napi_value argv[3];
  napi_get_null(env, &argv[0]);
  napi_create_uint32(env, 0, &argv[1]);
  argv[2] = make_error(env, code, err, what, msg);
  tun_call_js(d, d->cb_ref, 3, argv);
}

void tun_fail(tun_dev *d, int err, const char *what) {
  d->failed = 1;
  hub_tun_release(d); // or the hub's next write to it would report the failure again
  stop_polling(d);
  deliver_error(d, errno_name(err), err, what, strerror(err));
}

// A read this large ends a batch on a device without offloads (see tun_read_batch).
#define LARGE_READ (16 * 1024)

uint32_t tun_read_batch(tun_dev *d, uint32_t *lengths, size_t *used, int *err) {
  uint32_t n = 0;
  const size_t room = MAX_PACKET + (d->vnet ? VNET_HDR_LEN : 0);
  while (n < MAX_BATCH && d->scratch_size - *used >= room) {
    ssize_t r = read(d->fd, d->scratch + *used, d->scratch_size - *used);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) *err = errno;
      break;
    }
    if (r == 0) break;
    lengths[n++] = (uint32_t)r;
    *used += (size_t)r;
    // A large plain packet (a raised tunnel MTU) leaves before the next is read: batching
    // them held each one back behind the others' copies, and one at a time moved 8 % more at
    // MTU 65000 (docs/performance.md). Super-packets (vnet) gain from batching: they go on.
    if (!d->vnet && (size_t)r >= LARGE_READ) break;
  }
  return n;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  (void)events;
  tun_dev *d = h->data;
  if (d->fd < 0) return;
  napi_env env = d->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  if (status < 0) {
    // A dead device stays readable: stop polling rather than spin, and let JS close it.
    d->failed = 1;
    hub_tun_release(d);
    stop_polling(d);
    deliver_error(d, uv_err_name(status), 0, "poll", uv_strerror(status));
    napi_close_handle_scope(env, scope);
    return;
  }
  if (d->att || d->hub) {
    // Read in C: attached, the batch goes to the socket (splice.c); in the server's hub, to
    // its sessions, and the rest to JS (hub_tun.c). A failure reaches JS from here.
    int e = d->att ? splice_tun_readable(d) : hub_tun_readable(d);
    if (e && d->fd >= 0) tun_fail(d, e, "read");
    napi_close_handle_scope(env, scope);
    return;
  }

  size_t used = 0;
  int err = 0;
  uint32_t n = tun_read_batch(d, d->lengths, &used, &err);

  if (n > 0) {
    void *slab_data;
    napi_value argv[2];
    if (napi_create_arraybuffer(env, used, &slab_data, &argv[0]) == napi_ok) {
      memcpy(slab_data, d->scratch, used);
      napi_create_uint32(env, n, &argv[1]);
      tun_call_js(d, d->cb_ref, 2, argv);
    }
  }
  // e.g. EBADFD once the interface was deleted under us (ip link del).
  if (err && d->fd >= 0) tun_fail(d, err, "read");
  napi_close_handle_scope(env, scope);
}

// ---- argument helpers --------------------------------------------------------------------

tun_dev *tun_get_dev(napi_env env, napi_value v) {
  void *p = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &p) != napi_ok || !p || ((tun_dev *)p)->magic != DEV_MAGIC) {
    throw_type(env, "expected a TUN device handle");
    return NULL;
  }
  return p;
}
#define get_dev tun_get_dev

// The device handle, then `want` more arguments.
static tun_dev *get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  napi_value all[8];
  size_t argc = 8;
  napi_get_cb_info(env, info, &argc, all, NULL, NULL);
  if (argc < want + 1) {
    throw_type(env, "missing arguments");
    return NULL;
  }
  for (size_t i = 0; i < want; i++) argv[i] = all[i + 1];
  return get_dev(env, all[0]);
}

static tun_dev *get_open_dev(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                             const char *what) {
  tun_dev *d = get_args(env, info, want, argv);
  if (d && d->fd < 0) {
    throw_err(env, EBADF, NULL, "%s: %s after close()", d->name, what);
    return NULL;
  }
  return d;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out) {
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static int get_ipv4(napi_env env, napi_value v, char *buf, size_t size, struct in_addr *out) {
  size_t len;
  buf[0] = 0;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok) return 0;
  return inet_pton(AF_INET, buf, out) == 1;
}

static void set_sin(struct sockaddr *sa, in_addr_t addr) {
  struct sockaddr_in *sin = (struct sockaddr_in *)sa;
  memset(sin, 0, sizeof *sin);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = addr;
}

static in_addr_t prefix_mask(uint32_t prefix) {
  return htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix));
}

// Interface ioctls go through an ordinary AF_INET socket in the caller's network namespace,
// which is also where the TUN device was created.
static int ioctl_sock(void) { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

// ---- exported functions ------------------------------------------------------------------

// TUNSETIFF with `flags`; 0 or errno. `ifr` gets the kernel's name for the device.
static int set_iff(int fd, const char *name, size_t len, int flags, struct ifreq *ifr) {
  memset(ifr, 0, sizeof *ifr);
  ifr->ifr_flags = (short)flags;
  memcpy(ifr->ifr_name, name, len);
  return ioctl(fd, TUNSETIFF, ifr) < 0 ? errno : 0;
}

// Turns on the virtio-net header and the offloads of a device made with IFF_VNET_HDR:
// checksum offload (a packet may come with a partial checksum, NEEDS_CSUM) and TCP
// segmentation for IPv4 (a read may be a super-packet, split by user space where needed).
// 0, or the errno of the ioctl that refused, named in *what.
static int set_offload(int fd, const char **what) {
  int size = VNET_HDR_LEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return *what = "ioctl(TUNSETVNETHDRSZ)", errno;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)(TUN_F_CSUM | TUN_F_TSO4)) < 0) return *what = "ioctl(TUNSETOFFLOAD)", errno;
  return 0;
}

// open(name, onRead, offload) -> { handle, name, lengths, offload, offloadError? }
// With `offload`, the device is made with IFF_VNET_HDR and TSO; where the kernel or the
// device refuses, it is made plain instead and offloadError says why (the caller logs it).
static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  size_t argc = 3;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool want_vnet = false;
  if (argc >= 3) napi_get_value_bool(env, argv[2], &want_vnet);
  napi_valuetype t;
  if (argc < 2 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return throw_type(env, "open(name, onRead): onRead must be a function");

  char name[64];
  size_t len;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok)
    return throw_type(env, "open(name, onRead): name must be a string");
  // The kernel's own rules (dev_valid_name), checked here to say what is wrong with the name.
  if (len >= IFNAMSIZ)
    return throw_err(env, 0, NULL, "interface name \"%s%s\" is too long: at most %d bytes", name,
                     len >= sizeof name - 1 ? "..." : "", IFNAMSIZ - 1);
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strpbrk(name, "/: \t\n\r\v\f"))
    return throw_err(env, 0, NULL, "interface name \"%s\" is invalid: no '/', ':' or whitespace, not '.' or '..'", name);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_err(env, errno, "open", "%s: open /dev/net/tun failed", len ? name : "tun");

  struct ifreq ifr;
  char offload_error[160] = "";
  int vnet = 0;
  if (want_vnet) {
    const char *what = "ioctl(TUNSETIFF) with IFF_VNET_HDR";
    int e = set_iff(fd, name, len, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, &ifr);
    if (!e) e = set_offload(fd, &what);
    if (!e) vnet = 1;
    else {
      // A device made (or attached) with the header cannot drop it again: start over plain.
      snprintf(offload_error, sizeof offload_error, "%s: %s", what, strerror(e));
      close(fd);
      fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) return throw_err(env, errno, "open", "%s: open /dev/net/tun failed", len ? name : "tun");
    }
  }
  if (!vnet) {
    int e = set_iff(fd, name, len, IFF_TUN | IFF_NO_PI, &ifr);
    if (e) {
      close(fd);
      return throw_err(env, e, "ioctl(TUNSETIFF)", "%s: creating the TUN device failed", len ? name : "tun");
    }
  }

  size_t scratch_size = vnet ? VNET_SCRATCH_SIZE : SCRATCH_SIZE;
  tun_dev *d = calloc(1, sizeof *d);
  unsigned char *scratch = malloc(scratch_size);
  uv_loop_t *loop = NULL;
  if (!d || !scratch || napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    free(d);
    free(scratch);
    close(fd);
    return throw_err(env, ENOMEM, NULL, "%s: allocating the device failed", ifr.ifr_name);
  }
  d->magic = DEV_MAGIC;
  d->env = env;
  d->fd = fd;
  d->scratch = scratch;
  d->scratch_size = scratch_size;
  d->vnet = vnet;
  memcpy(d->name, ifr.ifr_name, IFNAMSIZ);
  d->name[IFNAMSIZ - 1] = 0;

  int rc = uv_poll_init(loop, &d->poll, fd);
  if (rc < 0) {
    free(d);
    free(scratch);
    close(fd);
    napi_throw(env, make_error(env, uv_err_name(rc), 0, "uv_poll_init", uv_strerror(rc)));
    return NULL;
  }
  d->poll.data = d;
  d->handle_open = 1;

  napi_value handle, lengths_ab, lengths, resource, rname, result, jname, joffload;
  void *lengths_data;
  napi_status s = napi_create_external(env, d, finalize, NULL, &handle);
  if (s != napi_ok) {
    // No JS owner yet: close the uv handle and let its callback free the struct.
    d->js_gone = 1;
    close_native(d);
    return throw_err(env, ENOMEM, NULL, "%s: creating the JS handle failed", d->name);
  }
  // From here on the finalizer owns the JS side; failures below are not expected (out of
  // memory) and leave a closed device behind.
  if (napi_create_reference(env, handle, 1, &d->self_ref) != napi_ok ||
      napi_create_reference(env, argv[1], 1, &d->cb_ref) != napi_ok ||
      napi_create_arraybuffer(env, MAX_BATCH * sizeof(uint32_t), &lengths_data, &lengths_ab) != napi_ok ||
      napi_create_typedarray(env, napi_uint32_array, MAX_BATCH, lengths_ab, 0, &lengths) != napi_ok ||
      napi_create_reference(env, lengths, 1, &d->lengths_ref) != napi_ok ||
      napi_create_object(env, &resource) != napi_ok ||
      napi_create_string_utf8(env, "simplevpn:tun", NAPI_AUTO_LENGTH, &rname) != napi_ok ||
      napi_async_init(env, resource, rname, &d->actx) != napi_ok ||
      napi_create_object(env, &result) != napi_ok ||
      napi_create_string_utf8(env, d->name, NAPI_AUTO_LENGTH, &jname) != napi_ok) {
    close_native(d);
    release_js(d);
    return throw_err(env, ENOMEM, NULL, "%s: setting up the device failed", d->name);
  }
  d->lengths = lengths_data;
  napi_add_async_cleanup_hook(env, cleanup_hook, d, &d->cleanup);

  rc = uv_poll_start(&d->poll, UV_READABLE, on_poll);
  if (rc < 0) {
    close_dev(d);
    napi_throw(env, make_error(env, uv_err_name(rc), 0, "uv_poll_start", uv_strerror(rc)));
    return NULL;
  }
  d->polling = 1;

  napi_set_named_property(env, result, "handle", handle);
  napi_set_named_property(env, result, "name", jname);
  napi_set_named_property(env, result, "lengths", lengths);
  napi_get_boolean(env, vnet, &joffload);
  napi_set_named_property(env, result, "offload", joffload);
  if (offload_error[0]) {
    napi_value jerr;
    napi_create_string_utf8(env, offload_error, NAPI_AUTO_LENGTH, &jerr);
    napi_set_named_property(env, result, "offloadError", jerr);
  }
  return result;
}

// configure(handle, address, prefix, mtu): address and netmask (which gives the kernel's
// connected route for the subnet, as `ip addr add` does), MTU unless 0, then up.
static napi_value js_configure(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  tun_dev *d = get_open_dev(env, info, 3, argv, "configure()");
  if (!d) return NULL;
  char addr_s[64];
  struct in_addr addr;
  uint32_t prefix, mtu;
  if (!get_ipv4(env, argv[0], addr_s, sizeof addr_s, &addr))
    return throw_err(env, 0, NULL, "%s: \"%s\" is not an IPv4 address", d->name, addr_s);
  if (!get_u32(env, argv[1], &prefix) || prefix > 32)
    return throw_err(env, 0, NULL, "%s: prefix must be an integer from 0 to 32", d->name);
  if (!get_u32(env, argv[2], &mtu))
    return throw_err(env, 0, NULL, "%s: mtu must be a positive integer", d->name);

  int s = ioctl_sock();
  if (s < 0) return throw_err(env, errno, "socket", "%s: opening an ioctl socket failed", d->name);
  struct ifreq ifr;
  const char *what = NULL, *sys = NULL;
  int e = 0;

  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, d->name, IFNAMSIZ);
  set_sin(&ifr.ifr_addr, addr.s_addr);
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0) { e = errno; what = "setting the address"; sys = "ioctl(SIOCSIFADDR)"; goto out; }

  // A TUN device is point-to-point, so SIOCSIFADDR alone gives a /32; the netmask widens it.
  set_sin(&ifr.ifr_netmask, prefix_mask(prefix));
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0) { e = errno; what = "setting the netmask"; sys = "ioctl(SIOCSIFNETMASK)"; goto out; }

  if (mtu) {
    memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
    ifr.ifr_mtu = (int)mtu;
    if (ioctl(s, SIOCSIFMTU, &ifr) < 0) { e = errno; what = "setting the MTU"; sys = "ioctl(SIOCSIFMTU)"; goto out; }
  }

  // The queue of packets the kernel routed to the device for this program to read: 500 by
  // default, which a reader that pauses for a millisecond or two (a garbage collection, a
  // burst of writes the other way) overflows at a few Gbit/s; the kernel then drops (tx_dropped)
  // and the inner TCP retransmits. Raised, never lowered (an administrator's larger value stays).
  memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
  if (ioctl(s, SIOCGIFTXQLEN, &ifr) < 0) { e = errno; what = "reading the queue length"; sys = "ioctl(SIOCGIFTXQLEN)"; goto out; }
  if (ifr.ifr_qlen < TUN_TXQUEUELEN) {
    ifr.ifr_qlen = TUN_TXQUEUELEN;
    if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0) { e = errno; what = "setting the queue length"; sys = "ioctl(SIOCSIFTXQLEN)"; goto out; }
  }

  memset(&ifr.ifr_ifru, 0, sizeof ifr.ifr_ifru);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) { e = errno; what = "reading the flags"; sys = "ioctl(SIOCGIFFLAGS)"; goto out; }
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) { e = errno; what = "bringing the device up"; sys = "ioctl(SIOCSIFFLAGS)"; goto out; }

out:
  close(s);
  if (e) return throw_err(env, e, sys, "%s: configure %s/%u: %s failed", d->name, addr_s, prefix, what);
  return NULL;
}

static napi_value js_set_mtu(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  tun_dev *d = get_open_dev(env, info, 1, argv, "setMtu()");
  if (!d) return NULL;
  uint32_t mtu;
  if (!get_u32(env, argv[0], &mtu) || mtu == 0)
    return throw_err(env, 0, NULL, "%s: mtu must be a positive integer", d->name);
  int s = ioctl_sock();
  if (s < 0) return throw_err(env, errno, "socket", "%s: opening an ioctl socket failed", d->name);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, d->name, IFNAMSIZ);
  ifr.ifr_mtu = (int)mtu;
  int rc = ioctl(s, SIOCSIFMTU, &ifr), e = errno;
  close(s);
  if (rc < 0) return throw_err(env, e, "ioctl(SIOCSIFMTU)", "%s: setting the MTU to %u failed", d->name, mtu);
  return NULL;
}

static napi_value route(napi_env env, napi_callback_info info, int add) {
  napi_value argv[2];
  tun_dev *d = get_open_dev(env, info, 2, argv, add ? "addRoute()" : "deleteRoute()");
  if (!d) return NULL;
  const char *verb = add ? "adding" : "deleting";
  char net_s[64];
  struct in_addr net;
  uint32_t prefix;
  if (!get_ipv4(env, argv[0], net_s, sizeof net_s, &net))
    return throw_err(env, 0, NULL, "%s: %s a route: \"%s\" is not an IPv4 address", d->name, verb, net_s);
  if (!get_u32(env, argv[1], &prefix) || prefix > 32)
    return throw_err(env, 0, NULL, "%s: %s a route: prefix must be an integer from 0 to 32", d->name, verb);
  in_addr_t mask = prefix_mask(prefix);
  if (net.s_addr & ~mask)
    return throw_err(env, 0, NULL, "%s: %s route %s/%u: the address has bits set outside the prefix", d->name,
                     verb, net_s, prefix);

  struct rtentry rt;
  memset(&rt, 0, sizeof rt);
  set_sin(&rt.rt_dst, net.s_addr);
  set_sin(&rt.rt_genmask, mask);
  rt.rt_flags = RTF_UP | (prefix == 32 ? RTF_HOST : 0);
  rt.rt_dev = d->name; // no gateway: the route points straight at the device
  int s = ioctl_sock();
  if (s < 0) return throw_err(env, errno, "socket", "%s: opening an ioctl socket failed", d->name);
  int rc = ioctl(s, add ? SIOCADDRT : SIOCDELRT, &rt), e = errno;
  close(s);
  if (rc < 0)
    return throw_err(env, e, add ? "ioctl(SIOCADDRT)" : "ioctl(SIOCDELRT)", "%s: %s route %s/%u dev %s failed",
                     d->name, verb, net_s, prefix, d->name);
  return NULL;
}

static napi_value js_add_route(napi_env env, napi_callback_info info) { return route(env, info, 1); }
static napi_value js_delete_route(napi_env env, napi_callback_info info) { return route(env, info, 0); }

// One packet in `cnt` pieces, in one writev(2): 1 written, 0 dropped because the device is
// full, -errno otherwise.
static int tun_writev(tun_dev *d, const struct iovec *iov, int cnt) {
  for (;;) {
    if (writev(d->fd, iov, cnt) >= 0) return 1;
    if (errno == EINTR) continue;
    // ENOBUFS is the same condition as EAGAIN reported by another layer: a drop, not a fault.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return 0;
    return -errno;
  }
}

// As tun_writev(); a device with offloads takes the virtio-net header `hdr` first (a zero
// one: a plain packet).
int tun_write_packet(tun_dev *d, const void *hdr, const void *p, size_t len) {
  struct iovec iov[2] = {{(void *)hdr, VNET_HDR_LEN}, {(void *)p, len}};
  return d->vnet ? tun_writev(d, iov, 2) : tun_writev(d, iov + 1, 1);
}

int tun_typed_array(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *len) {
  napi_typedarray_type type;
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok) return 0;
  return type == want;
}

static int get_bytes(napi_env env, napi_value v, void **data, size_t *len) { return tun_typed_array(env, v, napi_uint8_array, data, len); }

// Three arguments, buf, offset and length, as the range buf[offset, offset + length): 1, or 0
// when they are not a range inside a Uint8Array.
static int get_range(napi_env env, const napi_value *v, void **p, uint32_t *n) {
  void *data;
  size_t len;
  uint32_t off;
  if (!get_bytes(env, v[0], &data, &len) || !get_u32(env, v[1], &off) || !get_u32(env, v[2], n) || (size_t)off + *n > len) return 0;
  *p = (char *)data + off;
  return 1;
}

// What a write gives JS: true written, false dropped (the device full); other errors thrown.
static napi_value write_result(napi_env env, tun_dev *d, int r, size_t len) {
  napi_value result;
  if (r < 0) return throw_err(env, -r, "write", "%s: writing a %zu-byte packet failed", d->name, len);
  napi_get_boolean(env, r == 1, &result);
  return result;
}

// write(handle, buf, offset, length) -> true, or false when the device is full. The packet
// is buf[offset, offset + length): callers pass a frame inside a received chunk without
// making a view of it.
static napi_value js_write(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  tun_dev *d = get_open_dev(env, info, 3, argv, "write()");
  if (!d) return NULL;
  void *p;
  uint32_t n;
  if (!get_range(env, argv, &p, &n)) return throw_type(env, "write(buf, offset, length): buf must be a Uint8Array and the range inside it");
  return write_result(env, d, tun_write_packet(d, zero_vnet_hdr, p, n), n);
}

// writeVnet(handle, hdr, buf, offset, length) -> as write(), with the 10-byte virtio-net
// header `hdr` before the packet (a super-packet to segment, a partial checksum to trust).
static napi_value js_write_vnet(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  tun_dev *d = get_open_dev(env, info, 4, argv, "writeVnet()");
  if (!d) return NULL;
  if (!d->vnet) return throw_err(env, 0, NULL, "%s: writeVnet() on a device opened without offloads", d->name);
  void *hdr, *p;
  size_t hlen;
  uint32_t n;
  if (!get_bytes(env, argv[0], &hdr, &hlen) || hlen < VNET_HDR_LEN)
    return throw_type(env, "writeVnet(hdr, ...): hdr must be a Uint8Array of 10 bytes");
  if (!get_range(env, argv + 1, &p, &n)) return throw_type(env, "writeVnet(hdr, buf, offset, length): buf must be a Uint8Array and the range inside it");
  return write_result(env, d, tun_write_packet(d, hdr, p, n), n);
}

// writeParts(handle, hdr, a, aOffset, aLength, b, bOffset, bLength) -> as write(): one packet
// given in two parts, a[aOffset, +aLength) then b[bOffset, +bLength), in one writev(2) (the
// server forwards a frame that spanned two reads of its socket without joining it). `hdr`:
// the 10-byte virtio-net header on a device with offloads (null: a zero one), null without.
static napi_value js_write_parts(napi_env env, napi_callback_info info) {
  napi_value argv[7];
  tun_dev *d = get_open_dev(env, info, 7, argv, "writeParts()");
  if (!d) return NULL;
  napi_valuetype t;
  void *hdr = (void *)zero_vnet_hdr;
  size_t hlen = VNET_HDR_LEN;
  struct iovec iov[3];
  if (napi_typeof(env, argv[0], &t) != napi_ok) return NULL;
  if (t != napi_null && (!d->vnet || !get_bytes(env, argv[0], &hdr, &hlen) || hlen < VNET_HDR_LEN))
    return throw_type(env, "writeParts(hdr, ...): hdr must be null, or 10 bytes on a device with offloads");
  iov[0] = (struct iovec){hdr, VNET_HDR_LEN};
  for (int i = 0; i < 2; i++) {
    uint32_t n;
    if (!get_range(env, argv + 1 + 3 * i, &iov[1 + i].iov_base, &n))
      return throw_type(env, "writeParts(hdr, a, aOffset, aLength, b, bOffset, bLength): a part is not a range inside a Uint8Array");
    iov[1 + i].iov_len = n;
  }
  int r = d->vnet ? tun_writev(d, iov, 3) : tun_writev(d, iov + 1, 2);
  return write_result(env, d, r, iov[1].iov_len + iov[2].iov_len);
}

// writeBatch(handle, packets, count) -> how many were written, stopping at the first that
// the device refused. Any other error is thrown with .written = packets written before it.
static napi_value js_write_batch(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  tun_dev *d = get_open_dev(env, info, 2, argv, "writeBatch()");
  if (!d) return NULL;
  bool is_array;
  uint32_t count, length;
  if (napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &length) != napi_ok)
    return throw_type(env, "writeBatch(packets, count): packets must be an array");
  if (!get_u32(env, argv[1], &count)) return throw_type(env, "writeBatch(packets, count): count must be a number");
  if (count > length) count = length;
  uint32_t i = 0;
  for (; i < count; i++) {
    napi_value el;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[0], i, &el) != napi_ok || !get_bytes(env, el, &data, &len))
      return throw_type(env, "writeBatch(packets, count): every packet must be a Uint8Array");
    int r = tun_write_packet(d, zero_vnet_hdr, data, len);
    if (r == 0) break;
    if (r < 0) {
      throw_err(env, -r, "write", "%s: writing a %zu-byte packet failed", d->name, len);
      napi_value e, w;
      napi_get_and_clear_last_exception(env, &e);
      napi_create_uint32(env, i, &w);
      napi_set_named_property(env, e, "written", w);
      napi_throw(env, e);
      return NULL;
    }
  }
  napi_create_uint32(env, i, &result);
  return result;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  tun_dev *d = get_args(env, info, 0, NULL);
  if (d) close_dev(d);
  return NULL;
}

// Reads stop while the far side cannot take more (the Linux client's socket is full): the
// kernel keeps what arrives in the device's queue (TUN_TXQUEUELEN packets) instead of the
// program reading packets only to drop them.
static napi_value js_pause(napi_env env, napi_callback_info info) {
  tun_dev *d = get_args(env, info, 0, NULL);
  if (d && d->fd >= 0 && !d->failed && !d->att) {
    d->paused = 1;
    stop_polling(d);
  }
  return NULL;
}

static napi_value js_resume(napi_env env, napi_callback_info info) {
  tun_dev *d = get_args(env, info, 0, NULL);
  if (!d || d->fd < 0 || d->failed || !d->paused || d->att) return NULL;
  d->paused = 0;
  int rc = uv_poll_start(&d->poll, UV_READABLE, on_poll);
  if (rc < 0) {
    d->failed = 1;
    napi_throw(env, make_error(env, uv_err_name(rc), 0, "uv_poll_start", uv_strerror(rc)));
    return NULL;
  }
  d->polling = 1;
  return NULL;
}

void tun_poll_stop(tun_dev *d) { stop_polling(d); }

void tun_poll_resume(tun_dev *d) {
  if (d->fd < 0 || d->failed || d->paused || d->polling) return;
  int rc = uv_poll_start(&d->poll, UV_READABLE, on_poll);
  if (rc < 0) d->failed = 1;
  else d->polling = 1;
}

static napi_value js_ref(napi_env env, napi_callback_info info) {
  tun_dev *d = get_args(env, info, 0, NULL);
  if (d && d->fd >= 0) uv_ref((uv_handle_t *)&d->poll);
  return NULL;
}

static napi_value js_unref(napi_env env, napi_callback_info info) {
  tun_dev *d = get_args(env, info, 0, NULL);
  if (d && d->fd >= 0) uv_unref((uv_handle_t *)&d->poll);
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  static const struct {
    const char *name;
    napi_callback fn;
  } fns[] = {
      {"open", js_open},           {"configure", js_configure},      {"setMtu", js_set_mtu},
      {"addRoute", js_add_route},  {"deleteRoute", js_delete_route}, {"write", js_write},
      {"writeBatch", js_write_batch}, {"close", js_close},           {"ref", js_ref},
      {"unref", js_unref},         {"writeVnet", js_write_vnet},     {"pause", js_pause},
      {"resume", js_resume},       {"writeParts", js_write_parts},   {"attach", splice_js_attach},
      {"detach", splice_js_detach}, {"sendRaw", splice_js_send_raw}, {"nativeStats", splice_js_stats},
      {"groRun", gro_js_run}, // test only: test/unit/linux/gro-native.test.ts
  };
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value f;
    if (napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].fn, NULL, &f) != napi_ok ||
        napi_set_named_property(env, exports, fns[i].name, f) != napi_ok)
      return NULL;
  }
  hub_register(env, exports);
  napi_value v;
  napi_create_uint32(env, MAX_BATCH, &v);
  napi_set_named_property(env, exports, "MAX_BATCH", v);
  return exports;
}
