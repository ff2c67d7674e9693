# The native TUN binding, built by install.mjs (npm's install script) with node-gyp.
# Plain C against Node-API 8, so one build works on every Node version from 20 on.
{
  "targets": [
    {
      "target_name": "simplevpn_tun",
      "sources": ["tun.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["tun.c"] }]
      ]
    }
  ]
}
