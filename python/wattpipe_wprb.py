# SPDX-License-Identifier: Apache-2.0
"""WPRB v1 raw sample blocks for wattpipe, from Python (docs/wprb.md).

Needs python3, numpy, and pyzmq for publishing (Debian: python3-numpy,
python3-zmq). Nothing else.

    import numpy as np, wattpipe_wprb as wprb
    with wprb.Publisher("tcp://127.0.0.1:5555", "AC3N", 20000) as pub:
        pub.send(frames)          # array of shape (n, 8): U1 U2 U3 UN I1 I2 I3 IN
    wprb.write_file("rec.wprb", frames, "AC3N", 20000)
    header, frames = wprb.read_file("rec.wprb")
"""
import json
import struct
import time

import numpy as np

__all__ = ["LAYOUTS", "CHANNELS", "FORMATS", "Header", "WprbError", "encode_block", "decode_block",
           "iter_blocks", "read_file", "write_file", "Writer", "Publisher"]

MAGIC = b"WPRB"
VERSION = 1
HEADER_BYTES = 64
MAX_FRAMES_PER_BLOCK = 1 << 22
FLAG_CLOCK_SYNCED = 1

LAYOUTS = {"AC1": 1, "AC3": 2, "AC3N": 3, "DC": 4, "AC3N_DC": 5}
# Channel order within a frame, per layout.
CHANNELS = {
    "AC1": ("U1", "I1"),
    "AC3": ("U1", "U2", "U3", "I1", "I2", "I3"),
    "AC3N": ("U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN"),
    "DC": ("U", "I"),
    # Two measuring points on one clock: a charger's grid input, then its DC output.
    "AC3N_DC": ("U1", "U2", "U3", "UN", "I1", "I2", "I3", "IN", "U", "I"),
}
FORMATS = {"int16": (1, np.dtype("<i2")), "int32": (2, np.dtype("<i4")), "float32": (3, np.dtype("<f4"))}
_LAYOUT_NAMES = {v: k for k, v in LAYOUTS.items()}
_FORMAT_NAMES = {v[0]: k for k, v in FORMATS.items()}

# magic, version, header bytes, layout, format, frame_count, sequence,
# first_frame, t0_ns, sample_rate_hz, volts_per_count, amperes_per_count,
# flags, reserved
_HEADER = struct.Struct("<4sHHHHIQQqdffII")
assert _HEADER.size == HEADER_BYTES


class WprbError(ValueError):
    """A block that a receiver would refuse, with the reason."""


class Header:
    __slots__ = ("layout", "format", "frame_count", "sequence", "first_frame", "t0_ns", "sample_rate_hz",
                 "volts_per_count", "amperes_per_count", "flags")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def clock_synced(self):
        return bool(self.flags & FLAG_CLOCK_SYNCED)

    def __repr__(self):
        return "Header(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


def _is_voltage(name):
    return name.startswith("U")


def _scales(layout, volts_per_count, amperes_per_count):
    return np.array([volts_per_count if _is_voltage(c) else amperes_per_count for c in CHANNELS[layout]],
                    dtype=np.float64)


def encode_block(frames, layout, sample_rate_hz, t0_ns, sequence=0, first_frame=0, fmt="float32",
                 volts_per_count=1.0, amperes_per_count=1.0, clock_synced=True):
    """One WPRB block (bytes) from `frames`, shape (n, channels) in volts and
    amperes, channels in CHANNELS[layout] order. Integer formats store
    round(value / scale), clipped to the type's range."""
    if layout not in LAYOUTS:
        raise WprbError(f"unknown layout {layout!r}; one of {', '.join(LAYOUTS)}")
    if fmt not in FORMATS:
        raise WprbError(f"unknown sample format {fmt!r}; one of {', '.join(FORMATS)}")
    a = np.asarray(frames, dtype=np.float64)
    nch = len(CHANNELS[layout])
    if a.ndim != 2 or a.shape[1] != nch:
        raise WprbError(f"{layout} needs an array of shape (frames, {nch}), not {a.shape}")
    n = a.shape[0]
    if not 1 <= n <= MAX_FRAMES_PER_BLOCK:
        raise WprbError(f"frame count {n} outside 1..{MAX_FRAMES_PER_BLOCK}")
    if not 1.0 <= sample_rate_hz <= 1e9:
        raise WprbError(f"sample rate {sample_rate_hz} Hz outside [1 Hz, 1 GHz]")
    if not np.all(np.isfinite(a)):
        raise WprbError("NaN or infinite sample")
    code, dtype = FORMATS[fmt]
    if fmt == "float32":
        volts_per_count = amperes_per_count = 1.0
        payload = a.astype(dtype)
    else:
        if not (np.isfinite(volts_per_count) and np.isfinite(amperes_per_count)) or \
                volts_per_count == 0 or amperes_per_count == 0:
            raise WprbError("integer formats need finite, non-zero volts_per_count and amperes_per_count")
        info = np.iinfo(dtype)
        counts = np.rint(a / _scales(layout, volts_per_count, amperes_per_count))
        payload = np.clip(counts, info.min, info.max).astype(dtype)
    head = _HEADER.pack(MAGIC, VERSION, HEADER_BYTES, LAYOUTS[layout], code, n, sequence, first_frame, int(t0_ns),
                        float(sample_rate_hz), volts_per_count, amperes_per_count,
                        FLAG_CLOCK_SYNCED if clock_synced else 0, 0)
    return head + payload.tobytes()


def _parse_header(buf, offset=0):
    if len(buf) - offset < HEADER_BYTES:
        raise WprbError("short header")
    (magic, version, hbytes, layout, fmt, n, seq, first, t0, rate, vpc, apc, flags,
     _) = _HEADER.unpack_from(buf, offset)
    if magic != MAGIC:
        raise WprbError("bad magic")
    if version != VERSION:
        raise WprbError(f"unsupported version {version}")
    if hbytes != HEADER_BYTES:
        raise WprbError(f"bad header size {hbytes}")
    if layout not in _LAYOUT_NAMES:
        raise WprbError(f"bad layout {layout}")
    if fmt not in _FORMAT_NAMES:
        raise WprbError(f"bad sample format {fmt}")
    if not 1 <= n <= MAX_FRAMES_PER_BLOCK:
        raise WprbError(f"bad frame_count {n}")
    if not 1.0 <= rate <= 1e9:
        raise WprbError(f"sample_rate_hz {rate} outside [1 Hz, 1 GHz]")
    if fmt != 3 and (not (np.isfinite(vpc) and np.isfinite(apc)) or vpc == 0 or apc == 0):
        raise WprbError("bad scale factors")
    return Header(layout=_LAYOUT_NAMES[layout], format=_FORMAT_NAMES[fmt], frame_count=n, sequence=seq,
                  first_frame=first, t0_ns=t0, sample_rate_hz=rate, volts_per_count=vpc, amperes_per_count=apc,
                  flags=flags)


def _payload_bytes(h):
    return h.frame_count * len(CHANNELS[h.layout]) * FORMATS[h.format][1].itemsize


def decode_block(buf, offset=0, exact=True):
    """(Header, frames as float32 volts/amperes of shape (n, channels)) from
    one block at `offset`. With exact=True the buffer must hold exactly one
    block (a ZeroMQ message); files pass exact=False."""
    h = _parse_header(buf, offset)
    need = _payload_bytes(h)
    have = len(buf) - offset - HEADER_BYTES
    if have < need or (exact and have != need):
        raise WprbError(f"size {len(buf) - offset} does not match header ({HEADER_BYTES + need})")
    dtype = FORMATS[h.format][1]
    nch = len(CHANNELS[h.layout])
    raw = np.frombuffer(buf, dtype=dtype, count=h.frame_count * nch, offset=offset + HEADER_BYTES)
    raw = raw.reshape(h.frame_count, nch)
    if h.format == "float32":
        if not np.all(np.isfinite(raw)):
            raise WprbError("non-finite sample")
        return h, raw.astype(np.float32)
    return h, (raw * _scales(h.layout, h.volts_per_count, h.amperes_per_count)).astype(np.float32)


NOTE_MAGIC = b"WPRN"
MAX_NOTE_BYTES = 1 << 16


def _note_at(data, at):
    """(text, bytes taken) of a note at `at` (docs/wprb.md, "Notes"), or None."""
    if data[at:at + 4] != NOTE_MAGIC:
        return None
    if len(data) - at < HEADER_BYTES:
        raise WprbError("short note header")
    version, hbytes, n = struct.unpack_from("<HHI", data, at + 4)
    if version != VERSION or hbytes != HEADER_BYTES or not 1 <= n <= MAX_NOTE_BYTES or len(data) - at - HEADER_BYTES < n:
        raise WprbError("bad note")
    return bytes(data[at + HEADER_BYTES:at + HEADER_BYTES + n]).decode("utf-8", errors="replace"), HEADER_BYTES + n


def notes(path):
    """The notes of a WPRB file, parsed as JSON: a raw log's first says which
    software recorded it (its "software_id")."""
    with open(path, "rb") as f:
        data = f.read()
    out, at = [], 0
    while at < len(data):
        note = _note_at(data, at)
        if note is not None:
            out.append(json.loads(note[0]))
            at += note[1]
            continue
        h = _parse_header(data, at)
        at += HEADER_BYTES + _payload_bytes(h)
    return out


def iter_blocks(path):
    """Yields (Header, frames) for each block of a WPRB file (a raw log or a
    replay file), passing over notes. Raises WprbError naming the byte offset
    of a bad block."""
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        try:
            note = _note_at(data, at)
        except WprbError as e:
            raise WprbError(f"{path}: note at byte {at}: {e}") from None
        if note is not None:
            at += note[1]
            continue
        try:
            h, frames = decode_block(data, at, exact=False)
        except WprbError as e:
            raise WprbError(f"{path}: block at byte {at}: {e}") from None
        yield h, frames
        at += HEADER_BYTES + _payload_bytes(h)


def read_file(path):
    """(first block's Header, all frames concatenated) of a WPRB file."""
    first, parts = None, []
    for h, frames in iter_blocks(path):
        if first is None:
            first = h
        elif h.layout != first.layout:
            raise WprbError(f"{path}: layout changes from {first.layout} to {h.layout}")
        parts.append(frames)
    if first is None:
        raise WprbError(f"{path}: no block")
    return first, np.concatenate(parts)


class _Stream:
    """Numbering shared by files and sockets: sequence +1 per block,
    first_frame continuous, t0 from the first block's time and the rate."""

    def __init__(self, layout, sample_rate_hz, t0_ns=None, block_frames=1024, fmt="float32",
                 volts_per_count=1.0, amperes_per_count=1.0, clock_synced=True):
        if layout not in LAYOUTS:
            raise WprbError(f"unknown layout {layout!r}")
        self.layout, self.rate, self.block_frames = layout, float(sample_rate_hz), int(block_frames)
        self.fmt, self.vpc, self.apc, self.synced = fmt, volts_per_count, amperes_per_count, clock_synced
        self.t0_ns = time.time_ns() if t0_ns is None else int(t0_ns)
        self.sequence = 0
        self.frame = 0

    def blocks(self, frames):
        a = np.asarray(frames)
        for at in range(0, a.shape[0], self.block_frames):
            part = a[at:at + self.block_frames]
            t0 = self.t0_ns + round(self.frame * 1e9 / self.rate)
            b = encode_block(part, self.layout, self.rate, t0, self.sequence, self.frame, self.fmt, self.vpc,
                             self.apc, self.synced)
            self.sequence += 1
            self.frame += part.shape[0]
            yield b


def write_file(path, frames, layout, sample_rate_hz, t0_ns=None, **kw):
    """Writes `frames` (n, channels) as a WPRB file for `--source replay:`."""
    with Writer(path, layout, sample_rate_hz, t0_ns, **kw) as w:
        w.write(frames)


class Writer(_Stream):
    """Appends blocks to a WPRB file; call write() as often as needed."""

    def __init__(self, path, layout, sample_rate_hz, t0_ns=None, **kw):
        super().__init__(layout, sample_rate_hz, t0_ns, **kw)
        self._f = open(path, "wb")

    def write(self, frames):
        for b in self.blocks(frames):
            self._f.write(b)

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Publisher(_Stream):
    """Sends blocks over ZeroMQ, one block per message. The producer binds;
    wattpipe connects (`--source zmq-pull:ENDPOINT` for mode "push", which
    waits for the receiver and loses nothing; `--source zmq:ENDPOINT` for
    mode "pub", which never waits and drops when the receiver is behind).

    With paced=True, send() holds each block back until its last frame is
    due at the sample rate (a live DAQ); t0 defaults to the wall clock now."""

    def __init__(self, endpoint, layout, sample_rate_hz, mode="push", paced=False, t0_ns=None, hwm=1000, **kw):
        import zmq  # only needed here
        super().__init__(layout, sample_rate_hz, t0_ns, **kw)
        if mode not in ("push", "pub"):
            raise WprbError(f"mode {mode!r}: push or pub")
        self._ctx = zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUSH if mode == "push" else zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, hwm)
        self._sock.bind(endpoint)
        self.paced = paced
        self._start = None

    def send(self, frames):
        for b in self.blocks(frames):
            if self.paced:
                if self._start is None:
                    self._start = time.monotonic()
                due = self._start + self.frame / self.rate  # when this block's last frame is sampled
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._sock.send(b, copy=False)

    def close(self, linger_ms=2000):
        """Waits up to linger_ms for queued blocks to leave, then closes."""
        self._sock.close(linger=linger_ms)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
