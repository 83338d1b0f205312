"""The MetaWorldCDS-v1 scene: drawer and door side by side on one Meta-World table.

The scene is an MJCF file of this project that includes the installed metaworld package's own
asset files (scene, Sawyer arm, drawer, door lock) by absolute path
(docs/envs/metaworld.md#scene-from-the-installed-assets). It is written at runtime into a cache directory, because
gymnasium's MujocoEnv loads models only from a file path; no metaworld asset is copied.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from metaworld.asset_path_utils import ENV_ASSET_DIR_V3

DRAWER_POSITION = (0.4, 0.9, 0.0)
"""XML position of the drawer body (docs/fidelity.md#meta-world-cds)."""
DOOR_POSITION = (-0.1, 0.9, 0.15)
"""XML position of the door body (docs/fidelity.md#meta-world-cds)."""

_SCENE_TEMPLATE = """<mujoco model="cds_door_drawer">
  <compiler meshdir="{sawyer_dir}" texturedir="{sawyer_dir}"/>
  <include file="{assets}/scene/basic_scene.xml"/>
  <include file="{assets}/objects/assets/drawer_dependencies.xml"/>
  <include file="{assets}/objects/assets/doorlock_dependencies.xml"/>
  <include file="{assets}/objects/assets/xyz_base_dependencies.xml"/>
  <worldbody>
    <include file="{assets}/objects/assets/xyz_base.xml"/>
    <body name="drawer" pos="{drawer}">
      <include file="{assets}/objects/assets/drawer.xml"/>
    </body>
    <body name="door" pos="{door}">
      <include file="{assets}/objects/assets/doorlockB.xml"/>
    </body>
    <site name="goal" pos="2.0 0.74 0.05" size="0.02" rgba="0 0 0.8 1"/>
  </worldbody>
  <actuator>
    <position ctrllimited="true" ctrlrange="-1 1" joint="r_close" kp="400" user="1"/>
    <position ctrllimited="true" ctrlrange="-1 1" joint="l_close" kp="400" user="1"/>
  </actuator>
  <equality>
    <weld body1="mocap" body2="hand" solref="0.02 1"/>
  </equality>
</mujoco>
"""


def scene_xml() -> str:
    """The MJCF text of the door + drawer scene for the installed metaworld package."""
    assets = Path(ENV_ASSET_DIR_V3).resolve()
    return _SCENE_TEMPLATE.format(
        assets=assets.as_posix(),
        sawyer_dir=(assets / "sawyer_xyz").as_posix(),
        drawer=" ".join(str(value) for value in DRAWER_POSITION),
        door=" ".join(str(value) for value in DOOR_POSITION),
    )


def scene_path() -> str:
    """Path of the scene file, written on first use into the temp directory (atomically, by a rename)."""
    text = scene_xml()
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    directory = Path(tempfile.gettempdir()) / "qmp_metaworld"
    path = directory / f"cds_door_drawer_{digest}.xml"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".xml")
        with os.fdopen(handle, "w") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    return str(path)
