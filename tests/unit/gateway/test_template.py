"""Path templates: parse, match, bind (google.api.http grammar)."""

from __future__ import annotations

import pytest

from grpcmesh.services.gateway.template import PathTemplate, TemplateError


@pytest.mark.parametrize(
    ("template", "path", "bound"),
    [
        ("/v1/streams/{stream_id}", "/v1/streams/order-1", {"stream_id": "order-1"}),
        ("/v1/streams/{stream_id}", "/v1/streams/a%20b%2Fc", {"stream_id": "a b/c"}),
        ("/v1/commands", "/v1/commands", {}),
        ("/v1/{name=shelves/*/books/*}", "/v1/shelves/1/books/2", {"name": "shelves/1/books/2"}),
        ("/v1/{a.b}/x/{c=**}", "/v1/q/x/y/z", {"a.b": "q", "c": "y/z"}),
        ("/v1/sagas/{saga_id}:retry", "/v1/sagas/s-1:retry", {"saga_id": "s-1"}),
        ("/", "/", {}),
    ],
)
def test_match_binds_variables(template: str, path: str, bound: dict[str, str]) -> None:
    assert PathTemplate.parse(template).match(path) == bound


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/v1/streams/{stream_id}", "/v1/streams/a/b"),  # one segment only
        ("/v1/streams/{stream_id}", "/v1/streams/"),
        ("/v1/commands", "/v1/commands/x"),
        ("/v1/sagas/{saga_id}:retry", "/v1/sagas/s-1"),
        ("/v1/{name=shelves/*}", "/v1/books/1"),
    ],
)
def test_no_match(template: str, path: str) -> None:
    assert PathTemplate.parse(template).match(path) is None


def test_multi_segment_values_keep_encoded_slashes() -> None:
    assert PathTemplate.parse("/v1/{path=**}").match("/v1/a%2Fb/c") == {"path": "a%2Fb/c"}


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("v1/x", "must start with '/'"),
        ("/v1/{a", "unbalanced"),
        ("/v1/{a}/{a}", "repeated variable 'a'"),
        ("/v1/{1a}", "bad or repeated variable '1a'"),
        ("/v1/a b", "bad segment 'a b'"),
        ("/v1//x", "bad segment ''"),
    ],
)
def test_bad_templates_name_the_problem(template: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=problem):
        PathTemplate.parse(template)


def test_literal_weight_prefers_literal_templates() -> None:
    specific = PathTemplate.parse("/v1/streams/$all")
    generic = PathTemplate.parse("/v1/streams/{stream_id}")
    assert specific.literal_weight > generic.literal_weight
