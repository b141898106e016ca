#!/usr/bin/env python3
"""Writes the hand-made seeds of the state-machine fuzz targets (their input grammar is
in each target): a queue set up and used as a driver would, then the attacks of issue 9
from that state. Run from fuzz/: python3 seeds/make_seeds.py"""
import pathlib

def w(target, name, ops):
    pathlib.Path(f"seeds/{target}/{name}").write_bytes(bytes(ops))

share = lambda page: [5, page, 0]
unshare = lambda page: [5, page, 1]
reg = lambda index, *value: [0, index, 0, *value]
page_value = lambda page: [200, 200, page]
setup = (share(1) + share(2) + share(3) + share(8) + share(9)
         + reg(1, 0, 8)
         + reg(5, *page_value(1)) + reg(6, 0, 0)
         + reg(7, *page_value(2)) + reg(8, 0, 0)
         + reg(9, *page_value(3)) + reg(10, 0, 0)
         + reg(2, 0, 1))
post = [3, 200, 1, 200, 8, 0, 2, 2, 0, 0] + [4, 0, 2, 2, 0, 1, 0] + reg(3, 0, 0)
complete = [6, 0, 0, 0, 0, 2] + [7]
w("virtio_transport", "request", setup + post + complete)
w("virtio_transport", "resize-while-ready", setup + reg(1, 100, 8) + post)
w("virtio_transport", "ready0-unshare", setup + post + reg(2, 0, 0) + unshare(8) + complete)
w("virtio_transport", "unfinished-reset", setup + post + [8, 1] + reg(4, 0, 0) + unshare(8) + [8, 0] + reg(4, 0, 0) + unshare(8))
w("virtio_transport", "zero-length", setup + [3, 200, 1, 200, 20, 0, 0, 0, 0, 0] + [4, 0, 2, 2, 0, 1, 0] + reg(3, 0, 0))
# hypercalls: mode, then (id pick, 3 args); arg 10 + n is page n - 2 + 10.
for mode in range(3):
    w("hypercalls", f"share-unshare-{mode}", [mode, 2, 10, 7, 10, 7, 10, 7, 3, 10, 7, 10, 7, 10, 7, 4, 10, 7, 0, 0, 0, 0])
    w("hypercalls", f"relinquish-{mode}", [mode, 2, 12, 7, 1, 0, 0, 0, 4, 12, 7, 1, 0, 0, 0, 3, 12, 7, 1, 0, 0, 0])
# kernel_image: a bare arm64 Image (text_offset 0x80000), and the same Image loaded at
# 0x8028_0000 (16 bytes of address and size first).
import struct
image = struct.pack("<IIQQQQQQII", 0x14000010, 0, 0x80000, 0x200000, 0xa, 0, 0, 0, 0x644D5241, 0) + bytes(64)
pathlib.Path("seeds/kernel_image/image").write_bytes(image)
pathlib.Path("seeds/kernel_image/loaded-image").write_bytes(struct.pack("<QQ", 0x80280000, len(image)) + image)
