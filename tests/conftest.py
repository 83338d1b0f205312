"""Test-session set-up: headless MuJoCo rendering through EGL (Mesa's software EGL works without a
GPU), chosen before any test module imports mujoco."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
