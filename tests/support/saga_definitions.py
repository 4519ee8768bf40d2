"""The saga definitions the integration tests load with ``grpcmesh saga --definitions``.

``order``: reserve (inventory) → charge (payments) → ship (shipping), JSON over the mesh;
reserve and charge have compensations that use their own step's result.
"""

from __future__ import annotations

from grpcmesh.services.saga import Call, SagaDefinition, Step, StepRetry

QUICK = StepRetry(attempts=3, initial=0.05, maximum=0.2, jitter=0.05)

DEFINITIONS = [
    SagaDefinition(
        "order",
        steps=(
            Step(
                "reserve",
                action=Call(
                    "inventory",
                    "/shop.Inventory/Reserve",
                    lambda ctx: {"order_id": ctx.input["order_id"], "sku": ctx.input.get("sku", "")},
                ),
                compensate=Call(
                    "inventory", "/shop.Inventory/Release", lambda ctx: {"reservation": ctx.result.get("id")}
                ),
                retry=QUICK,
            ),
            Step(
                "charge",
                action=Call(
                    "payments",
                    "/shop.Payments/Charge",
                    lambda ctx: {
                        "order_id": ctx.input["order_id"],
                        "reservation": ctx.results["reserve"]["id"],
                    },
                ),
                compensate=Call(
                    "payments", "/shop.Payments/Refund", lambda ctx: {"charge": ctx.result.get("id")}
                ),
                retry=QUICK,
            ),
            Step(
                "ship",
                action=Call(
                    "shipping", "/shop.Shipping/Ship", lambda ctx: {"order_id": ctx.input["order_id"]}
                ),
                retry=QUICK,
            ),
        ),
        required_input=("order_id",),
    )
]
