"""``crossserving.lost_listeners``, kept up to date route by route.

Held by ``translator.incremental`` while both HTTPRoutes and GRPCRoutes exist. Each route's
claims (the hostnames it would serve per listener) are computed once with
``crossserving.route_claims``; when routes change, only the listeners where their old or
new claims are get settled again (``crossserving.settle``, oldest first, whatever order the
claims are kept in), so ``lost`` always equals what ``lost_listeners`` would return.

Claims depend on the Gateways' states and the Namespaces too: when those change, the
caller builds a new ``CrossServing`` from every route.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from translator.crossserving import Claim, ClaimingRoute, route_claims, settle
from translator.gateways import GatewayState
from translator.model import Namespace, ObjectName

RouteKey = tuple[str, ObjectName]  # (kind, "namespace/name")
Where = tuple[ObjectName, str]  # (Gateway, listener name)


class CrossServing:
    """Which listeners each route lost to a route of the other kind, and to which."""

    def __init__(
        self, gateways: Mapping[ObjectName, GatewayState], namespaces: Mapping[str, Namespace]
    ) -> None:
        self._gateways = gateways
        self._namespaces = namespaces
        self._claims: dict[RouteKey, list[tuple[Where, Claim]]] = {}
        self._groups: dict[Where, dict[RouteKey, Claim]] = {}
        self._pairs: dict[Where, list[tuple[Claim, Claim]]] = {}
        self.lost: dict[RouteKey, dict[Where, str]] = {}  # as lost_listeners returns it

    def update(self, routes: Iterable[tuple[RouteKey, ClaimingRoute | None]]) -> set[RouteKey]:
        """Take the routes that changed (None: gone); the routes whose ``lost`` changed."""
        touched: set[Where] = set()
        for key, route in routes:
            claims = route_claims(route, self._gateways, self._namespaces) if route else []
            if claims == self._claims.get(key, []):
                continue  # the same hostnames on the same listeners, as old: nothing to settle
            for where, _ in self._claims.pop(key, ()):
                self._groups[where].pop(key, None)
                touched.add(where)
            if claims:
                self._claims[key] = claims
            for where, claim in claims:
                self._groups.setdefault(where, {})[key] = claim
                touched.add(where)
        candidates = {
            (loser.kind, loser.key) for w in touched for loser, _ in self._pairs.get(w, ())
        }
        before = {key: dict(self.lost.get(key, {})) for key in candidates}
        for where in touched:
            self._settle(where)
        candidates |= {
            (loser.kind, loser.key) for w in touched for loser, _ in self._pairs.get(w, ())
        }
        return {key for key in candidates if before.get(key, {}) != self.lost.get(key, {})}

    def _settle(self, where: Where) -> None:
        """Settle one listener's claims again; ``lost`` follows."""
        for loser, _ in self._pairs.pop(where, ()):
            key = (loser.kind, loser.key)
            del self.lost[key][where]
            if not self.lost[key]:
                del self.lost[key]
        group = self._groups.get(where, {})
        if not group:
            self._groups.pop(where, None)
            return
        if len({claim.kind for claim in group.values()}) < 2:
            return
        pairs = settle(list(group.values()))
        self._pairs[where] = pairs
        for loser, winner in pairs:
            self.lost.setdefault((loser.kind, loser.key), {})[where] = winner.shown
