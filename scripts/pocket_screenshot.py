"""Open the pocket app on the real backend, ask one question, save a screenshot, quit.

Run under Xvfb on a machine without a display (what made the README image):

    xvfb-run -a -s "-screen 0 1100x760x24" .venv/bin/python scripts/pocket_screenshot.py \
        docs/img/pocket.png "What is a good way to learn Portuguese verbs?"
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from smallhold.apps.pocket.assistant import open_pocket
from smallhold.apps.pocket.gui import PocketApp
from smallhold.runtime.types import GenerationParams


class ScreenshotApp(PocketApp):
    def __init__(self, *args: object, out: Path, question: str, **kwargs: object) -> None:
        self.out, self.question = out, question
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def startup(self) -> None:
        super().startup()
        self.params = GenerationParams(max_tokens=160, temperature=0.2, seed=1)
        self.main_window.size = (1000, 620)  # type: ignore[union-attr]
        self._task = asyncio.ensure_future(self._demo())

    async def _demo(self) -> None:
        await asyncio.sleep(1.0)
        await self.send(self.question)
        await asyncio.sleep(1.0)
        self.main_window.as_image().save(self.out)  # type: ignore[union-attr]
        print(f"saved {self.out}")
        self.request_exit()


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    question = sys.argv[2] if len(sys.argv) > 2 else "What is a good way to learn verbs?"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open_pocket() as pocket:
        ScreenshotApp(lambda: pocket, out=out, question=question).main_loop()


if __name__ == "__main__":
    main()
