"""Pure translation of Gateway API objects into Envoy resources and status.

``translate(objects, options)`` takes plain Kubernetes JSON bodies (as a provider holds
them) and returns a ``TranslationResult``. Stage one builds an IR (``translator.ir``) from
the Gateway API objects; stage two (``translator.xds``) turns the IR into xds-protos
messages. Nothing here does I/O, reads a clock or keeps state between calls; bad input
becomes status conditions, never exceptions. ``translator.incremental.IncrementalTranslator``
gives the same result snapshot after snapshot, redoing only what changed: what it reuses is
held in that object, which its caller owns, never in module globals.
"""

from translator.kube import CONTROLLER_NAME
from translator.result import GatewayResources, TranslationResult
from translator.translate import TranslateOptions, translate

__all__ = [
    "CONTROLLER_NAME",
    "GatewayResources",
    "TranslateOptions",
    "TranslationResult",
    "translate",
]
