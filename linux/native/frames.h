// The frames of the simplevpn stream and the virtio-net header, in C, for the attached socket
// (splice.c): the same rules as protocol/framer.ts, common/offload/super.ts and
// common/offload/vnet.ts, which say why.
#ifndef SIMPLEVPN_FRAMES_H
#define SIMPLEVPN_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#define MAX_FRAME 65535
// KIND_SUPER frames: a 20-byte extension header, "SV", kind, version, gso_size; then the packet.
#define SUPER_HEADER 26
#define MAX_SUPER (MAX_FRAME - SUPER_HEADER)

// protocol/framer.ts frameLength(): > 0 the frame's length, 0 more bytes needed, < 0 no frame.
long frame_length(const unsigned char *b, size_t avail);
// An IPv4 frame from 255.255.255.255 (keepalive echo) or 0.0.0.0 (a server message): not a
// packet for the tun (client-sdk/src/client.ts data()).
int is_control(const unsigned char *p);
// Whether the frame p[0, f) is a KIND_SUPER frame with room for a packet.
int is_super_frame(const unsigned char *p, size_t f);
// A KIND_SUPER frame's super-packet made ready for a tun with offloads, as coalesce.ts
// pushSuper() does: its IPv4 checksum computed, the TCP one left partial, and the virtio-net
// header `vh` for it. 0 when the packet is not TCP over IPv4 that can be segmented.
int super_to_vnet(unsigned char *frame, size_t f, unsigned char vh[10]);
// The TCP/IPv4 packet p[0, len) (an `ihl`-byte IPv4 header) made ready for a tun with offloads:
// its IPv4 header checksum computed, its TCP checksum left partial (the pseudo-header's sum,
// which the kernel completes or trusts: NEEDS_CSUM).
void tcp4_partial_checksums(unsigned char *p, size_t len, size_t ihl);
// The virtio-net header for such a packet: a super-packet of `gso`-byte segments (GSO_TCPV4),
// or, with gso 0, one packet (GSO_NONE); `hdrs` IPv4 + TCP header bytes.
void vnet_tcp4_header(unsigned char vh[10], size_t hdrs, unsigned gso, size_t ihl);
// A packet read behind the virtio-net header `vh`: whether it is a TCP/IPv4 super-packet.
int vnet_is_super(const unsigned char *vh);
// Completes the checksum of a packet the kernel left partial (NEEDS_CSUM); 0 when the header
// points outside the packet. Nothing to do for other packets.
int vnet_complete_checksum(const unsigned char *vh, unsigned char *p, size_t len);
// Writes into `out` the KIND_SUPER header for the super-packet p[0, len) read behind `vh`
// (super.ts writeSuperHeader()); 0 when it cannot travel whole.
int super_header_for(const unsigned char *vh, const unsigned char *p, size_t len, unsigned char out[SUPER_HEADER]);

#endif
