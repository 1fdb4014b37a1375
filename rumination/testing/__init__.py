"""Testing support shipped with the library: the protocol simulator (in process and over
HTTP), fake chat models, and a guard against real network calls.

Everything here is a simulator: it speaks the model's protocol, it is not the model.
"""

from .fakes import FunctionModel, ScriptedModel, SimulatorModel
from .guard import NetworkBlocked, no_network
from .server import SimulatorConfig, SimulatorServer
from .simulator import scripted, simulate, with_unsupported

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
