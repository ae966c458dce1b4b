"""What the studio's tests share: a root with one two-shot `noop` storyboard (`ep/board.yaml`), users
with tokens, and an embedded farm on the tests' FakePool."""
from __future__ import annotations

from pathlib import Path

import pytest

BOARD = ("sakuga: 1\ntitle: {title}\nmodel: noop\noutput: {{width: 64, height: 64, fps: 16}}\n"
         "scenes:\n  - id: one\n    shots:\n      - {{id: s0, frames: 17, prompt: a}}\n      - {{id: s1, frames: 17, prompt: b}}\n")


@pytest.fixture
def farm_with_users(tmp_path, FakePool):
    """`make(names, admins=(), gpus=1)` → (farm, users store, {name: token}, root)."""
    from farm.access.users import UserStore
    from farm.api.embedded import EmbeddedFarm

    def make(names: tuple[str, ...], admins: tuple[str, ...] = (), gpus: int = 1):
        root: Path = tmp_path / "boards"
        (root / "ep").mkdir(parents=True)
        (root / "ep" / "board.yaml").write_text(BOARD.format(title="ep"))
        users = UserStore(tmp_path / "users.sqlite")
        tokens = {name: users.add(name, admin=name in admins) for name in names}
        return EmbeddedFarm(FakePool([gpus])), users, tokens, root
    return make
