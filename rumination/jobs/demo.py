"""The embedded default: the bundled demo corpus and the protocol simulator over real HTTP.

The simulator stands in for the model so that a fresh install can run a complete job with
no GPU and no network. Its output is labeled as simulated everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rumination.defaults import SIMULATOR_MODEL

if TYPE_CHECKING:
    from rumination.events import EventHandler
    from rumination.models import Report
    from rumination.settings import Settings

DEMO_QUESTION = (
    "How well do air-source heat pumps perform in cold climates, and what limits their adoption?"
)


async def run_demo(
    question: str = DEMO_QUESTION,
    settings: Settings | None = None,
    on_event: EventHandler | None = None,
) -> Report:
    from rumination.agent.researcher import (
        Researcher,  # here: the CLI imports this module for DEMO_QUESTION
    )
    from rumination.agent.writer import run_write
    from rumination.llm.provenance import mark_simulated
    from rumination.settings import Settings
    from rumination.testing.server import SimulatorConfig, SimulatorServer
    from rumination.testing.simulator import simulate

    with SimulatorServer(simulate, SimulatorConfig(model=SIMULATOR_MODEL)) as server:
        base = settings or Settings.load()
        demo_settings = base.model_copy(
            update={"llm_url": server.url, "model": SIMULATOR_MODEL, "backend": "local",
                    "corpus": None, "api_key": None}
        )
        if demo_settings.mode == "write":
            report = await run_write(question, demo_settings, on_event=on_event)
        else:
            report = await Researcher(demo_settings).run(question, on_event=on_event)
    return mark_simulated(report)  # the simulator said so already: this only makes sure
