"""Test-session set-up: headless MuJoCo rendering through EGL (Mesa's software EGL works without a
GPU), chosen before any test module imports mujoco; and Ctrl-C restored when the suite was started as a
background job (a shell without job control starts it with SIGINT ignored, which its child processes
would inherit, so the tests that interrupt a run or a sweep with SIGINT would see it ignored)."""

import os
import signal

os.environ.setdefault("MUJOCO_GL", "egl")
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
