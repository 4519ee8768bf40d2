"""The authorization policy model: parsing errors name the key, matching is exact or glob."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from grpcmesh.sdk.authz import Policy, PolicyError, PolicyFile, parse_policy

pytestmark = pytest.mark.unit

TD = "spiffe://grpcmesh.local/service/"
DOC = {
    "default": "allow",
    "services": {
        "orders": {
            "default": "deny",
            "rules": [
                {"name": "web", "sources": ["web"], "methods": ["/shop.v1.Orders/*"]},
                {"sources": [TD + "batch-*"], "methods": ["/shop.v1.Orders/Get"]},
            ],
        },
        "audit": {"mode": "audit", "default": "deny"},
    },
}


def test_rules_allow_by_exact_or_glob_source_and_method_or_service() -> None:
    p = parse_policy(DOC, "orders")
    assert p.decide(TD + "web", "/shop.v1.Orders/Delete").rule == "web"
    assert p.decide(TD + "batch-7", "/shop.v1.Orders/Get").rule == "rule 2"
    denied = p.decide(TD + "batch-7", "/shop.v1.Orders/Delete")
    assert (denied.allowed, denied.denied, denied.ruleset) == (False, True, "services.orders")
    assert not p.decide(TD + "web", "/shop.v1.OrdersX/Get").allowed  # a service prefix is not enough
    assert not p.decide("spiffe://other.domain/service/web", "/shop.v1.Orders/Get").allowed
    assert "[services.orders]" in p.denial(TD + "x", "/shop.v1.Orders/Get")


def test_health_is_always_allowed_and_reflection_unless_switched_off() -> None:
    p = parse_policy(DOC, "orders")
    assert p.decide(TD + "x", "/grpc.health.v1.Health/Check").allowed
    assert p.decide(TD + "x", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo").allowed
    strict = parse_policy({**DOC, "allow_reflection": False}, "orders")
    assert not strict.decide(TD + "x", "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo").allowed
    assert strict.decide(TD + "x", "/grpc.health.v1.Health/Watch").allowed


def test_audit_mode_lets_through_but_marks_denied_and_unlisted_services_use_the_file_default() -> None:
    d = parse_policy(DOC, "audit").decide(TD + "x", "/a.B/C")
    assert (d.allowed, d.denied) == (True, True)
    other = parse_policy(DOC, "payments").decide(TD + "x", "/a.B/C")
    assert (other.allowed, other.denied, other.ruleset) == (True, False, "default")
    assert not parse_policy({}, "payments").decide(TD + "x", "/a.B/C").allowed  # default deny


@pytest.mark.parametrize(
    ("doc", "key"),
    [
        ({"default": "maybe"}, "default"),
        ({"colour": 1}, "colour"),
        ({"services": {"o": {"mode": "loud"}}}, r"services\.o\.mode"),
        (
            {"services": {"o": {"rules": [{"sources": [], "methods": ["*"]}]}}},
            r"services\.o\.rules\[0\]\.sources",
        ),
        (
            {"services": {"o": {"rules": [{"sources": ["a"], "methods": ["Get"]}]}}},
            r"services\.o\.rules\[0\]\.methods",
        ),
        (
            {"services": {"o": {"rules": [{"sources": ["a"], "methods": ["/a.B/G*"]}]}}},
            r"rules\[0\]\.methods",
        ),
        ({"services": {"o": {"rules": [{"sources": ["https://x/y"], "methods": ["*"]}]}}}, "SPIFFE"),
        (
            {"services": {"o": {"rules": [{"sources": ["a"], "methods": ["*"], "who": 1}]}}},
            r"rules\[0\]\.who",
        ),
        (
            {"services": {"other": {"default": "nope"}}},
            r"services\.other\.default",
        ),  # any service, not only ours
    ],
)
def test_bad_policies_name_the_key(doc: dict[str, object], key: str) -> None:
    with pytest.raises(PolicyError, match=key):
        parse_policy(doc, "o")


def test_decisions_cache_is_bounded() -> None:
    p: Policy = parse_policy({}, "o")
    for i in range(5000):
        p.decide(f"{TD}s{i}", "/a.B/C")
    assert len(p._cache) <= 4096


def test_policy_file_reloads_and_keeps_the_last_good_policy(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('default = "deny"\n')
    pf = PolicyFile(path, "o")
    assert pf.poll() is False
    path.write_text('default = "maybe"\n')
    assert pf.poll() is None
    assert pf.error is not None
    assert "default" in pf.error
    assert pf.poll() is False  # the same bad file is reported once
    assert not pf.policy.decide(TD + "x", "/a.B/C").allowed
    path.write_text('default = "allow"\n')
    assert pf.poll() is True
    assert pf.policy.decide(TD + "x", "/a.B/C").allowed
    path.write_text("x =")
    with pytest.raises(PolicyError, match="not valid TOML"):
        PolicyFile(path, "o")  # at startup a bad file is fatal


def test_the_readme_policy_example_parses_and_means_what_it_says() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = readme.split("cat > policy.toml <<'TOML'\n", 1)[1].split("    TOML\n", 1)[0]
    doc = tomllib.loads("\n".join(line.removeprefix("    ") for line in block.splitlines()))
    p = parse_policy(doc, "orders")
    assert p.decide(TD + "web", "/shop.v1.Orders/Get").allowed
    assert p.decide(TD + "batch-1", "/shop.v1.Billing/Charge").allowed
    assert not p.decide(TD + "web", "/shop.v1.Orders/Delete").allowed
    assert not parse_policy(doc, "billing").decide(TD + "web", "/shop.v1.Billing/Charge").allowed


def test_a_caller_without_a_spiffe_id_matches_no_rule_not_even_a_star() -> None:
    p = parse_policy({"services": {"o": {"rules": [{"sources": ["*"], "methods": ["*"]}]}}}, "o")
    assert p.decide(TD + "anyone", "/a.B/C").allowed
    assert not p.decide("", "/a.B/C").allowed
    assert not p.decide("(no spiffe id)", "/a.B/C").allowed
    assert p.foreign_to("spiffe://example.org/service/o")
    assert not p.foreign_to(TD + "o")
