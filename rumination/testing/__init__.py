"""Testing support shipped with the library: the protocol simulator (in process and over
HTTP), fake chat models, and a guard against real network calls.

Everything here is a simulator: it speaks the model's protocol, it is not the model.
"""

from rumination.testing.fakes import FunctionModel, ScriptedModel, SimulatorModel
from rumination.testing.guard import NetworkBlocked, no_network
from rumination.testing.server import SimulatorConfig, SimulatorServer
from rumination.testing.simulator import scripted, simulate, with_unsupported

__all__ = [
    "FunctionModel",
    "NetworkBlocked",
    "ScriptedModel",
    "SimulatorConfig",
    "SimulatorModel",
    "SimulatorServer",
    "no_network",
    "scripted",
    "simulate",
    "with_unsupported",
]
