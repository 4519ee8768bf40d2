"""Service-name parsing and file layout of `grpcmesh proto new`."""

from __future__ import annotations

from pathlib import Path

import pytest

from grpcmesh.cli.scaffold import ScaffoldError, ServiceName, scaffold


@pytest.mark.parametrize(
    ("text", "package", "module", "path"),
    [
        ("shop.v1.Orders", "shop.v1", "orders", "shop/v1/orders.proto"),
        (
            "acme.billing.v2.InvoiceHistory",
            "acme.billing.v2",
            "invoice_history",
            "acme/billing/v2/invoice_history.proto",
        ),
        ("x.Y", "x", "y", "x/y.proto"),
    ],
)
def test_parse(text: str, package: str, module: str, path: str) -> None:
    name = ServiceName.parse(text)
    assert (name.package, name.module, name.proto_path) == (package, module, path)


@pytest.mark.parametrize(
    "text", ["Orders", "shop.v1.orders", "Shop.v1.Orders", "shop..Orders", "shop.v1.Or-ders", ""]
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ScaffoldError, match=r"expected lower\.case\.package\.ServiceName"):
        ServiceName.parse(text)


def test_scaffold_refuses_to_overwrite(tmp_path: Path) -> None:
    scaffold("shop.v1.Orders", tmp_path)
    with pytest.raises(ScaffoldError, match="refusing to overwrite"):
        scaffold("shop.v1.Orders", tmp_path)
