"""The Kinova Jaco (v1) arm of the Multistage Reacher, written from the original's model facts
(docs/envs/jaco.md#model-facts).

The kinematic chain, inertials, joints, actuators and options are those of the original model
(docs/envs/jaco.md#options-joints-motors-and-contacts, #bodies-and-inertials). Geometry comes from dm_control's Kinova
mesh files (a Jaco 2 model whose chain numbers are NOT used), each placed in the original body frame with the
registration pose of docs/envs/jaco.md#stand-in-geometry; the hand uses the scaled variant. The model is generated as an
MJCF string and the mesh files are handed to MuJoCo as in-memory assets.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

FRAME_SKIP = 4
"""Physics substeps per control step (docs/envs/jaco.md#options-joints-motors-and-contacts)."""

HAND_BODY = "jaco_link_hand"
TARGET_BODY = "target"
JOINT_NAMES = tuple(f"jaco_joint_{index}" for index in range(1, 7))
DEFAULT_QPOS = np.array([0.0, 0.0, 0.0, 0.0, -2.8, 0.0])
"""qpos0: every joint at its ref (joint 5 has ref −2.8, outside its own range;
docs/envs/jaco.md#options-joints-motors-and-contacts)."""


@dataclass(frozen=True)
class _Link:
    """One arm body: frame relative to its parent, inertial, joint and its dm_control mesh pose."""

    name: str
    pos: tuple[float, ...]
    quat: tuple[float, ...]
    inertial_pos: tuple[float, ...]
    inertial_quat: tuple[float, ...]
    mass: float
    diaginertia: tuple[float, ...]
    joint_axis: tuple[float, ...] | None
    joint_range: tuple[float, float]
    joint_ref: float
    gear: float
    meshes: tuple[str, ...]
    mesh_pos: tuple[float, ...]
    mesh_quat: tuple[float, ...]


_WRIST_INERTIAL: dict[str, Any] = dict(
    inertial_pos=(0.00914824, 4.53141e-8, -0.0370941),
    inertial_quat=(0.971237, -1.92989e-5, -0.238115, 3.23646e-5),
    mass=0.227408,
    diaginertia=(0.000176463, 0.00017225, 0.000108303),
)
_SMALL_RANGE = (-0.698132, 0.698132)

# The original's model (docs/envs/jaco.md#model-facts): bodies and inertials, joints, gears, mesh poses.
_LINKS: tuple[_Link, ...] = (
    _Link("jaco_link_base", (0, 0, 0.25), (1, 0, 0, 0),
          (-3.14012e-8, 0.000451919, 0.0770704), (1, -0.000920048, 6.51183e-6, 5.62643e-5),
          0.787504, (0.00187445, 0.00186316, 0.000676952),
          None, (0.0, 0.0), 0.0, 0.0,
          ("base",), (0.0022, 0.0015, -0.0050), (0.8176, 0.0082, -0.0040, -0.5757)),
    _Link("jaco_link_1", (0, 0, 0.1535), (0, 0, 1, 0),
          (-1.14317e-6, 0.0102141, -0.0637045), (0.702792, 0.0778988, -0.0778994, 0.702813),
          0.613151, (0.00149348, 0.00144012, 0.000401632),
          (0, 0, -1), (-0.8, 0.8), 0.0, 5.0,
          ("shoulder",), (0, 0.0002, 0.0003), (0.0001, -0.0003, -0.0067, 1.0)),
    _Link("jaco_link_2", (0, 0, -0.1185), (0, 0, 0.707107, 0.707107),
          (0.206657, -1.55187e-7, -0.030675), (1, 0, 0, 0),
          1.85031, (0.0402753, 0.0398125, 0.00121953),
          (0, 0, 1), (-1.5, 0.7), 0.0, 10.0,
          ("arm",), (0, 0, 0), (0.7071, 0.0001, 0, 0.7071)),
    _Link("jaco_link_3", (0.41, 0, 0), (0, 0.707107, 0.707107, 0),
          (0.0847979, -1.18469e-7, -0.020283), (2.33799e-5, 0.694869, 1.96996e-5, 0.719136),
          0.70372, (0.00386732, 0.00373181, 0.000358773),
          (0, 0, -1), _SMALL_RANGE, 0.0, 10.0,
          ("forearm",), (-0.0002, 0, -0.0006), (0.7069, -0.0018, 0.0007, -0.7073)),
    _Link("jaco_link_4", (0.207, 0, -0.01125), (0, 0.707107, 0, -0.707107),
          **_WRIST_INERTIAL,
          joint_axis=(0, 0, -1), joint_range=_SMALL_RANGE, joint_ref=0.0, gear=10.0,
          meshes=("wrist",), mesh_pos=(0.0350, 0, -0.0654), mesh_quat=(0.3402, -0.6220, 0.6177, -0.3403)),
    _Link("jaco_link_5", (0.0343, 0, -0.06588), (0.887011, 0, -0.461749, 0),
          **_WRIST_INERTIAL,
          joint_axis=(0, 0, -1), joint_range=_SMALL_RANGE, joint_ref=-2.8, gear=10.0,
          meshes=("wrist",), mesh_pos=(0.0350, 0, -0.0654), mesh_quat=(0.3405, -0.6193, 0.6203, -0.3402)),
    _Link(HAND_BODY, (0.0343, 0, -0.06588), (0.627211, -0.326506, -0.326506, 0.627211),
          (0.0036132, -6.2241e-5, -0.0583749), (0.669114, -0.237618, -0.23799, 0.66271),
          0.58074, (0.000817146, 0.000671192, 0.000606807),
          (0, 0, -1), _SMALL_RANGE, 0.0, 10.0,
          ("hand_3finger_main", "hand_3finger_insert"), (0.0007, 0, -0.0013), (0.7084, 0.0057, 0.0063, 0.7058)),
)

HAND_MESH_SCALE = (1.010, 1.082, 0.938)
"""Scale of both hand meshes along the mesh-file axes (docs/envs/jaco.md#stand-in-geometry)."""

_MESH_FILES = ("base", "shoulder", "arm", "forearm", "wrist", "hand_3finger_main", "hand_3finger_insert")


def _vec(values: tuple[float, ...]) -> str:
    return " ".join(repr(float(value)) for value in values)


def _link_xml(link: _Link, index: int) -> str:
    """Opening tag and contents of one arm body (the child body is nested by the caller)."""
    lines = [f'<body name="{link.name}" pos="{_vec(link.pos)}" quat="{_vec(link.quat)}">',
             f'<inertial pos="{_vec(link.inertial_pos)}" quat="{_vec(link.inertial_quat)}" '
             f'mass="{link.mass!r}" diaginertia="{_vec(link.diaginertia)}"/>']
    if link.joint_axis is not None:
        lines.append(f'<joint name="jaco_joint_{index}" axis="{_vec(link.joint_axis)}" '
                     f'range="{_vec(link.joint_range)}" ref="{link.joint_ref!r}"/>')
    for mesh in link.meshes:
        rgba = ' rgba="0.13 0.13 0.13 1"' if link.name == HAND_BODY else ""
        lines.append(f'<geom class="arm" mesh="{mesh}" pos="{_vec(link.mesh_pos)}" '
                     f'quat="{_vec(link.mesh_quat)}"{rgba}/>')
    if link.name == "jaco_link_base":
        lines.append('<geom class="arm" type="capsule" size="0.045 0.125" pos="0 0 -0.125"/>')
    return "\n".join(lines)


def jaco_mjcf() -> str:
    """The MJCF text of the arm, floor and mocap target (meshes referenced by asset name)."""
    arm = "".join(_link_xml(link, index) + "\n" for index, link in enumerate(_LINKS)) + "</body>\n" * len(_LINKS)
    meshes = "\n".join(
        f'<mesh name="{name}" file="{name}.stl"'
        + (f' scale="{_vec(HAND_MESH_SCALE)}"' if name.startswith("hand") else "") + "/>"
        for name in _MESH_FILES
    )
    actuators = "\n".join(
        f'<motor name="Ajaco_joint_{index}" joint="jaco_joint_{index}" gear="{link.gear!r}" ctrlrange="-1 1"/>'
        for index, link in enumerate(_LINKS) if link.joint_axis is not None
    )
    return f"""<mujoco model="jaco_multistage_reacher">
<compiler angle="radian" autolimits="true"/>
<option timestep="0.01" gravity="0 0 -9.8" iterations="10" integrator="Euler"/>
<visual><global offwidth="640" offheight="480"/></visual>
<asset>
<texture name="checker" type="2d" builtin="checker" rgb1="0.2 0.3 0.4" rgb2="0.1 0.15 0.2" width="512" height="512"/>
<material name="MatPlane" texture="checker" texrepeat="4 4" reflectance="0.2"/>
<material name="MatViz" rgba="0.07 0.07 0.1 1"/>
{meshes}
</asset>
<default>
<geom margin="0.001"/>
<joint limited="true" damping="0.5" armature="0.01"/>
<default class="arm"><geom type="mesh" material="MatViz" group="0" contype="1" conaffinity="0"/></default>
</default>
<worldbody>
<light directional="true" pos="1 1 1.5" dir="-1 -1 -1.3"/>
<geom name="ground" type="plane" size="2 2 1" material="MatPlane" contype="1" conaffinity="1"/>
{arm}<body name="{TARGET_BODY}" mocap="true" pos="0 0 0.05">
<geom name="target" type="sphere" size="0.049" contype="0" conaffinity="0" rgba="0.9 0.2 0.2 1"/>
</body>
</worldbody>
<actuator>
{actuators}
</actuator>
</mujoco>
"""


def _mesh_assets() -> dict[str, bytes]:
    """The dm_control Kinova mesh files, read from the installed package."""
    folder = importlib.resources.files("dm_control") / "third_party" / "kinova" / "meshes_decimated"
    return {f"{name}.stl": (folder / f"{name}.stl").read_bytes() for name in _MESH_FILES}


def build_jaco_model() -> mujoco.MjModel:
    """Compile the Multistage Reacher's MuJoCo model."""
    return mujoco.MjModel.from_xml_string(jaco_mjcf(), assets=_mesh_assets())
