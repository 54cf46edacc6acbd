"""``{% omnisend_snippet %}`` and ``{% omnisend_viewed_product %}``: consent, identity, escaping."""

from __future__ import annotations

import json
import re

import django
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Group
from django.template import RequestContext, Template
from django.test import RequestFactory, override_settings

from django_omnisend.models import Connection
from tests.snippet.adapters import HOSTILE_EMAIL

pytestmark = pytest.mark.django_db

JSON_SCRIPT = re.compile(r'<script id="([^"]+)" type="application/json">(.*?)</script>', re.S)
HOSTILE_TITLE = "Mug </script><script>alert('t')</script><!--"


@pytest.fixture
def tracking(sync_settings):
    """The emulator's settings with a consent-cookie TrackingAdapter."""
    omnisend = {**sync_settings, "TRACKING_ADAPTER": "tests.snippet.adapters.CookieConsent"}
    with override_settings(OMNISEND=omnisend):
        yield omnisend


def make_user(name: str, **extra):
    return get_user_model().objects.create_user(
        username=name, email=f"{name}@example.com", password="x", **extra
    )


def request_for(user=None, consent: bool = True):
    request = RequestFactory().get("/shop/mug/")
    if consent:
        request.COOKIES["consent"] = "marketing"
    request.user = user or AnonymousUser()
    return request


def render(source: str, request, **context) -> str:
    return Template("{% load omnisend %}" + source).render(RequestContext(request, context))


def data_blocks(html: str) -> list:
    return [json.loads(body) for _, body in JSON_SCRIPT.findall(html)]


def brand_of(settings_dict) -> str:
    return settings_dict["API_KEY"].partition("-")[0]


def test_nothing_renders_without_consent(tracking):
    alice = make_user("alice")
    html = render(
        "{% omnisend_snippet %}{% omnisend_viewed_product product %}",
        request_for(alice, consent=False),
        product={"id": "1", "title": "Mug"},
    )
    assert html == ""


def test_nothing_renders_by_default_even_with_a_consent_cookie(sync_settings):
    html = render("{% omnisend_snippet %}", request_for(make_user("alice")))
    assert html == ""  # the default TrackingAdapter never allows tracking


def test_with_consent_the_brand_and_the_logged_in_contact_are_rendered(tracking):
    alice = make_user("alice")
    make_user("bob")
    html = render("{% omnisend_snippet %}", request_for(alice))
    [config] = data_blocks(html)
    assert config == {
        "brandID": brand_of(tracking),
        "loader": "https://omnisnippet1.com/inshop/launcher-v2.js",
        "contact": {"email": "alice@example.com"},
    }
    assert '["brandID", cfg.brandID]' in html and "identifyContact(cfg.contact)" in html
    assert "bob" not in html


def test_an_anonymous_visitor_is_tracked_but_never_identified(tracking):
    make_user("alice")
    html = render("{% omnisend_snippet %}", request_for())
    [config] = data_blocks(html)
    assert config["brandID"] == brand_of(tracking) and config["contact"] is None
    assert "@" not in html


@pytest.mark.parametrize(
    ("adapter", "user_fields"),
    [
        ("tests.snippet.adapters.OptedOut", {}),
        ("tests.snippet.adapters.OtherBrandUsers", {}),
        ("django_omnisend.adapter.ContactAdapter", {"is_active": False}),
    ],
    ids=["opted-out", "contact-of-another-brand", "not-synced"],
)
def test_users_the_adapter_does_not_sync_here_are_not_identified(tracking, adapter, user_fields):
    alice = make_user("alice", **user_fields)
    with override_settings(OMNISEND={**tracking, "ADAPTER": adapter}):
        html = render("{% omnisend_snippet %}", request_for(alice))
    [config] = data_blocks(html)
    assert config["contact"] is None
    assert "alice" not in html


def test_an_unverified_address_is_not_identified(tracking):
    alice = make_user("alice")
    with override_settings(OMNISEND={**tracking, "TRUST_EMAILS": False}):
        html = render("{% omnisend_snippet %}", request_for(alice))
    assert data_blocks(html)[0]["contact"] is None


def test_hostile_values_cannot_leave_their_script(tracking):
    alice = make_user("alice")
    product = {"id": "7", "title": HOSTILE_TITLE, "url": "https://shop.example/mug?a=1&b=<2>"}
    with override_settings(
        OMNISEND={**tracking, "ADAPTER": "tests.snippet.adapters.HostileEmails"}
    ):
        html = render(
            "{% omnisend_viewed_product product %}{% omnisend_snippet %}",
            request_for(alice),
            product=product,
        )
    assert "<script>alert" not in html and "<!--" not in html
    # Four script elements (two data blocks, two scripts), and not one more.
    assert html.count("</script>") == 4 and html.count("<script") == 4
    event, config = data_blocks(html)
    assert config["contact"] == {"email": HOSTILE_EMAIL}
    assert event["properties"]["product"]["title"] == HOSTILE_TITLE
    assert event["properties"]["product"]["url"] == product["url"]


def test_viewed_product_event_has_omnisends_shape(tracking):
    html = render(
        "{% omnisend_viewed_product product %}",
        request_for(make_user("alice")),
        product={"id": "232", "title": "Mug", "price": 2099, "currency": "EUR", "secret": "x"},
    )
    [event] = data_blocks(html)
    assert event["eventVersion"] == "v4" and event["origin"] == "api"
    assert len(event["eventID"]) == 36
    assert event["properties"]["product"] == {
        "id": "232",
        "title": "Mug",
        "price": 2099,
        "currency": "EUR",
    }
    assert '["track", "viewed product", e]' in html


def test_a_model_instance_is_a_product_too(tracking):
    group = Group.objects.create(name="Blue mug")
    html = render("{% omnisend_viewed_product product %}", request_for(), product=group)
    [event] = data_blocks(html)
    assert event["properties"]["product"] == {"id": str(group.pk), "title": "Blue mug"}


def test_an_owners_snippet_uses_its_brand_and_only_its_contacts(tracking):
    shop = Group.objects.create(name="Shop")
    from django.contrib.contenttypes.models import ContentType

    Connection.objects.create(
        auth_type="api_key",
        brand_id="shopbrand1",
        owner_type=ContentType.objects.get_for_model(Group),
        owner_id=str(shop.pk),
    )
    alice = make_user("alice")  # a contact of the site's brand (key "default")
    html = render("{% omnisend_snippet shop %}", request_for(alice), shop=shop)
    [config] = data_blocks(html)
    assert config["brandID"] == "shopbrand1"
    assert config["contact"] is None  # alice is the site's contact, not the shop's
    other = Group.objects.create(name="Unconnected")
    assert render("{% omnisend_snippet other %}", request_for(alice), other=other) == ""


def test_the_site_connection_row_gives_the_brand(tracking):
    Connection.objects.create(auth_type="api_key", brand_id="rowbrand42")
    [config] = data_blocks(render("{% omnisend_snippet %}", request_for()))
    assert config["brandID"] == "rowbrand42"


@pytest.mark.skipif(
    django.VERSION < (6, 0),
    reason="Django 6.0 added django.middleware.csp; on 5.2 sites use "
    "django-csp, whose request.csp_nonce the next test covers",
)
def test_scripts_carry_the_csp_nonce(tracking):
    from django.middleware.csp import ContentSecurityPolicyMiddleware

    request = request_for(make_user("alice"))
    ContentSecurityPolicyMiddleware(lambda r: None).process_request(request)
    html = render(
        "{% omnisend_snippet %}{% omnisend_viewed_product product %}",
        request,
        product={"id": "1", "title": "Mug"},
    )
    nonce = str(request._csp_nonce)
    assert len(nonce) >= 16
    assert html.count(f'<script nonce="{nonce}">') == 2
    assert "me.nonce" in html  # the loader it adds gets the same nonce


def test_django_csp_style_request_nonce_is_used(tracking):
    request = request_for()
    request.csp_nonce = "abc123nonce"
    html = render("{% omnisend_snippet %}", request)
    assert '<script nonce="abc123nonce">' in html
