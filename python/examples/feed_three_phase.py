#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Feeds wattpipe a three-phase 230 V / 16 A, 50 Hz signal in real time.

    wattpipe --source zmq-pull:tcp://127.0.0.1:5555 &
    python3 python/examples/feed_three_phase.py --seconds 10
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import wattpipe_wprb as wprb  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555", help="where to bind (wattpipe connects)")
ap.add_argument("--seconds", type=float, default=10.0, help="how long to send")
ap.add_argument("--rate", type=float, default=20000.0, help="sample rate per channel, Hz")
ap.add_argument("--phi-deg", type=float, default=18.19, help="current lag; 18.19 deg is PF 0.95")
args = ap.parse_args()

rate, chunk = args.rate, int(args.rate / 10)        # 100 ms per send() call
shift = np.array([0, -2 * np.pi / 3, 2 * np.pi / 3])  # L1, L2, L3
with wprb.Publisher(args.endpoint, "AC3N", rate, paced=True) as pub:
    for k in range(int(args.seconds * 10)):
        t = (k * chunk + np.arange(chunk))[:, None] / rate
        u = 230 * np.sqrt(2) * np.sin(2 * np.pi * 50 * t + shift)
        i = 16 * np.sqrt(2) * np.sin(2 * np.pi * 50 * t + shift - np.radians(args.phi_deg))
        zero = np.zeros((chunk, 1))
        pub.send(np.hstack([u, zero, i, zero]))  # U1 U2 U3 UN I1 I2 I3 IN
