# The native TUN binding, built by install.mjs (npm's install script) with node-gyp.
# Plain C against Node-API 8, so one build works on every Node version from 20 on.
{
  # gyp's Makefile links with the C++ compiler (g++) unless told otherwise; C needs only the C
  # compiler, so a machine with gcc and without g++ builds it too. $LINK or $LINK_target in the
  # environment still win (install.mjs checks the same).
  "make_global_settings": [["LINK", "$(CC.target)"]],
  "targets": [
    {
      "target_name": "simplevpn_tun",
      "sources": ["tun.c", "splice.c", "hub.c", "hub_tun.c", "frames.c", "gro.c", "out_queue.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["tun.c", "splice.c", "hub.c", "hub_tun.c", "frames.c", "gro.c", "out_queue.c"] }]
      ]
    }
  ]
}
