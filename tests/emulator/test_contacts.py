"""Contacts over real HTTP: upsert, status dates, identifiers, PATCH, list + cursors, tags."""

from __future__ import annotations

import base64
import json

import pytest

from django_omnisend.emulator.times import format_rfc3339
from tests.emulator.conftest import contact, problem

T1 = "2024-05-09T16:25:02Z"
T0 = "2024-01-01T00:00:00Z"
T2 = "2025-01-01T00:00:00Z"


def test_upsert_creates_201_then_updates_200(api, emulator):
    first = api.post(
        "/contacts",
        json=contact("jane@example.com", "subscribed", T1, firstName="Jane"),
        check_request=True,
    )
    assert first.status_code == 201
    body = first.json()
    assert len(body["id"]) == 24 and int(body["id"], 16) >= 0
    assert body["email"] == "jane@example.com" and body["status"] == "subscribed"
    assert body["statuses"] == [{"channel": "email", "status": "subscribed", "statusChangedAt": T1}]
    assert body["optIns"] == [{"channel": "email", "optInAt": T1}]
    second = api.post(
        "/contacts", json=contact("jane@example.com", lastName="Doe"), check_request=True
    )
    assert second.status_code == 200
    assert second.json()["id"] == body["id"]
    assert second.json()["firstName"] == "Jane" and second.json()["lastName"] == "Doe"
    assert second.json()["updatedAt"] >= body["updatedAt"]
    assert len(emulator.contacts()) == 1


def test_status_date_rule_ignores_older_dates(api):
    api.post("/contacts", json=contact("a@example.com", "unsubscribed", T1))
    stale = api.post("/contacts", json=contact("a@example.com", "subscribed", T0))
    assert stale.status_code == 200 and stale.json()["status"] == "unsubscribed"
    newer = api.post("/contacts", json=contact("a@example.com", "subscribed", T2))
    assert newer.json()["status"] == "subscribed"
    assert newer.json()["statuses"][0]["statusChangedAt"] == T2


def test_omitted_date_means_now(api, emulator):
    body = api.post("/contacts", json=contact("now@example.com", "subscribed")).json()
    assert body["statuses"][0]["statusChangedAt"] == body["createdAt"]


def test_identifier_without_channels(api, emulator):
    """§13 #21: nonSubscribed when new, an existing contact's status untouched."""
    created = api.post("/contacts", json=contact("n@example.com")).json()
    assert created["status"] == "nonSubscribed"
    emulator.unsubscribe("n@example.com")
    again = api.post("/contacts", json=contact("n@example.com", firstName="N")).json()
    assert again["status"] == "unsubscribed" and again["firstName"] == "N"


def test_emails_are_case_sensitive(api, emulator):
    api.post("/contacts", json=contact("jane@example.com"))
    other = api.post("/contacts", json=contact("Jane@Example.com"))
    assert other.status_code == 201
    assert (
        emulator.get_contact("jane@example.com")["id"]
        != emulator.get_contact("Jane@Example.com")["id"]
    )
    assert emulator.get_contact("JANE@EXAMPLE.COM") is None


def test_created_at_country_tags_custom_properties(api):
    body = api.post(
        "/contacts",
        json=contact(
            "p@example.com",
            createdAt="2020-02-02T02:02:02Z",
            country="United Kingdom",
            tags=["source: django"],
            customProperties={"plan": "pro", "seats": 3},
            gender="f",
            birthdate="1990-01-31",
        ),
        check_request=True,
    ).json()
    assert body["customProperties"] == {
        "externalCreated": "2020-02-02T02:02:02Z",
        "plan": "pro",
        "seats": 3,
    }
    assert body["countryCode"] == "GB" and body["country"] == "United Kingdom"
    assert body["gender"] == "f" and body["birthdate"] == "1990-01-31"
    more = api.post(
        "/contacts", json=contact("p@example.com", tags=["vip"], countryCode="lt")
    ).json()
    assert more["tags"] == ["source: django", "vip"] and more["countryCode"] == "LT"


def test_send_welcome_message_defaults_to_true_and_is_counted(api, emulator):
    api.post("/contacts", json=contact("w1@example.com", "subscribed"))
    api.post("/contacts", json=contact("w2@example.com", "subscribed", sendWelcomeMessage=False))
    api.post("/contacts", json=contact("w3@example.com", "nonSubscribed"))
    counts = {
        c["email"]: (c["_welcome_messages"], c["_send_welcome_message"])
        for c in emulator.contacts()
    }
    assert counts == {
        "w1@example.com": (1, {"email": True}),
        "w2@example.com": (0, {"email": False}),
        "w3@example.com": (0, {"email": True}),
    }
    emulator.configure(welcome_messages="new")
    api.post("/contacts", json=contact("w4@example.com"))
    assert emulator.get_contact("w4@example.com")["_welcome_messages"] == 1


def test_phone_identifiers(api, emulator):
    both = api.post(
        "/contacts",
        json={
            "identifiers": [
                {"type": "email", "id": "ph@example.com"},
                {
                    "type": "phone",
                    "id": "+37060000001",
                    "channels": {"sms": {"status": "subscribed"}},
                },
            ]
        },
        check_request=True,
    )
    assert both.status_code == 201
    assert both.json()["phone"] == ["+37060000001"]
    assert {s["channel"] for s in both.json()["statuses"]} == {"email", "sms"}
    # A secondary identifier owned by another contact is ignored...
    other = api.post(
        "/contacts",
        json={
            "identifiers": [
                {"type": "email", "id": "o@example.com"},
                {"type": "phone", "id": "+37060000001"},
            ]
        },
    )
    assert other.status_code == 201 and other.json()["phone"] is None
    # ...but when it is the only identifier, nothing is created (§13 #13).
    only = api.post("/contacts", json={"identifiers": [{"type": "phone", "id": "+37060000001"}]})
    assert only.status_code == 400
    phone_only = api.post(
        "/contacts", json={"identifiers": [{"type": "phone", "id": "+37060000002"}]}
    )
    assert phone_only.status_code == 201 and "email" not in phone_only.json()
    assert len(emulator.contacts()) == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "identifiers"),
        ({"identifiers": [{"type": "email", "id": "not-an-email"}]}, "identifiers[0].id"),
        ({"identifiers": [{"type": "fax", "id": "x"}]}, "identifiers[0].type"),
        ({"identifiers": [{"type": "phone", "id": "12345"}]}, "identifiers[0].id"),
        (contact("v@example.com", "maybe"), "identifiers[0].channels.email.status"),
        (
            contact("v@example.com", "subscribed", "yesterday"),
            "identifiers[0].channels.email.statusChangedAt",
        ),
        (
            {
                "identifiers": [
                    {
                        "type": "email",
                        "id": "v@example.com",
                        "channels": {"sms": {"status": "subscribed"}},
                    }
                ]
            },
            "identifiers[0].channels.sms",
        ),
        (contact("v@example.com", gender="x"), "gender"),
        (contact("v@example.com", birthdate="1990-13-01"), "birthdate"),
        (contact("v@example.com", tags=["t"] * 101), "tags"),
        (contact("v@example.com", customProperties={"bad name": 1}), "customProperties.bad name"),
        (contact("v@example.com", createdAt="2020-01-01"), "createdAt"),
        (
            {"identifiers": [{"type": "email", "id": "a@b.co"}, {"type": "email", "id": "c@d.co"}]},
            "identifiers",
        ),
    ],
)
def test_validation_errors_list_the_field(api, emulator, body, field):
    response = api.post("/contacts", json=body)
    assert response.status_code == 400
    assert field in [e["field"] for e in problem(response)["errors"]]
    assert emulator.contacts() == []


def test_invalid_json_body(api, http, emulator, api_key):
    response = http.post(
        emulator.api_url + "/contacts",
        data=b"{not json",
        headers={"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": "2026-03-15"},
    )
    assert response.status_code == 400 and problem(response)["errors"][0]["field"] == "body"


def test_get_by_id_and_404(api):
    created = api.post("/contacts", json=contact("g@example.com")).json()
    assert api.get(f"/contacts/{created['id']}").json() == created
    missing = api.get("/contacts/000000000000000000000000")
    assert missing.status_code == 404 and problem(missing)["title"] == "Not found"


def test_patch_by_id_partial_and_email_change(api, emulator):
    created = api.post(
        "/contacts", json=contact("old@example.com", "subscribed", T1, firstName="A", lastName="B")
    ).json()
    patched = api.patch(f"/contacts/{created['id']}", json={"firstName": "C"}, check_request=True)
    assert patched.status_code == 200
    assert patched.json()["firstName"] == "C" and patched.json()["lastName"] == "B"
    moved = api.patch(
        f"/contacts/{created['id']}",
        json={"identifiers": [{"type": "email", "id": "new@example.com"}]},
        check_request=True,
    ).json()
    assert moved["email"] == "new@example.com" and moved["id"] == created["id"]
    assert emulator.get_contact("old@example.com") is None
    assert (
        api.patch("/contacts/000000000000000000000000", json={"firstName": "x"}).status_code == 404
    )


def test_patch_conflict_409(api):
    a = api.post("/contacts", json=contact("a@example.com")).json()
    api.post("/contacts", json=contact("b@example.com"))
    response = api.patch(
        f"/contacts/{a['id']}", json={"identifiers": [{"type": "email", "id": "b@example.com"}]}
    )
    assert response.status_code == 409 and "b@example.com" in problem(response)["detail"]


def test_patch_by_email(api):
    api.post("/contacts", json=contact("e@example.com"))
    unsub = api.patch(
        "/contacts",
        params={"email": "e@example.com"},
        json=contact("e@example.com", "unsubscribed", "2099-01-01T00:00:00Z"),
        check_request=True,
    )
    assert unsub.status_code == 200 and unsub.json()["status"] == "unsubscribed"
    assert (
        api.patch(
            "/contacts", params={"email": "E@example.com"}, json={"firstName": "x"}
        ).status_code
        == 404
    )
    api.post("/contacts", json=contact("f@example.com"))
    conflict = api.patch(
        "/contacts",
        params={"email": "e@example.com"},
        json={"identifiers": [{"type": "email", "id": "f@example.com"}]},
    )
    assert conflict.status_code == 409
    assert api.patch("/contacts", json={"firstName": "x"}).status_code == 400


# -- list ---------------------------------------------------------------------------------------


def _seed(emulator, n: int) -> list[str]:
    emails = []
    for i in range(n):
        email = f"user{i:02d}@example.com"
        emulator.seed_contact(
            **contact(email, "subscribed" if i % 2 else "nonSubscribed", tags=[f"t{i % 3}"])
        )
        emails.append(email)
    return emails


def test_list_default_sort_is_created_desc(api, emulator):
    emails = _seed(emulator, 5)
    body = api.get("/contacts").json()
    assert [c["email"] for c in body["contacts"]] == emails[::-1]
    assert body["paging"] == {
        "limit": 100,
        "hasMore": False,
        "cursors": {"after": None, "before": None},
    }
    asc = api.get("/contacts", params={"direction": "asc", "sort": "updatedAt"}).json()
    assert [c["email"] for c in asc["contacts"]] == emails


def test_cursor_paging_forward_and_back(api, emulator):
    emails = _seed(emulator, 7)
    seen, pages, params = [], [], {"limit": 3, "direction": "asc"}
    while True:
        body = api.get("/contacts", params=params).json()
        pages.append(body)
        seen += [c["email"] for c in body["contacts"]]
        if not body["paging"]["hasMore"]:
            assert body["paging"]["cursors"]["after"] is None
            break
        params = {"after": body["paging"]["cursors"]["after"]}
    assert seen == emails
    assert pages[0]["paging"]["cursors"]["before"] is None
    back = api.get("/contacts", params={"before": pages[-1]["paging"]["cursors"]["before"]}).json()
    assert [c["email"] for c in back["contacts"]] == emails[3:6]
    assert back["paging"]["hasMore"] is True
    first = api.get("/contacts", params={"before": back["paging"]["cursors"]["before"]}).json()
    assert [c["email"] for c in first["contacts"]] == emails[:3]
    assert first["paging"]["cursors"]["before"] is None and first["paging"]["hasMore"] is False


def test_cursor_is_opaque_base64_of_filters_sort_position(api, emulator):
    _seed(emulator, 4)
    body = api.get("/contacts", params={"limit": 1, "tag": "t0"}).json()
    cursor = body["paging"]["cursors"]["after"]
    decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    assert decoded["f"] == {"tag": "t0"} and decoded["s"] == "createdAt" and decoded["d"] == "desc"
    same = api.get("/contacts", params={"after": cursor, "tag": "t0"})
    assert same.status_code == 200 and [c["tags"] for c in same.json()["contacts"]] == [["t0"]]
    changed = api.get("/contacts", params={"after": cursor, "tag": "t1"})
    assert changed.status_code == 400 and problem(changed)["errors"][0]["field"] == "tag"
    assert api.get("/contacts", params={"after": cursor, "sort": "updatedAt"}).status_code == 400
    both = api.get("/contacts", params={"after": cursor, "before": cursor})
    assert both.status_code == 400
    assert api.get("/contacts", params={"after": "garbage!"}).status_code == 400


def test_list_filters(api, emulator):
    _seed(emulator, 6)
    emulator.seed_contact(segments=["seg1"], **contact("s@example.com"))
    phone = {
        "identifiers": [
            {"type": "email", "id": "p@example.com"},
            {"type": "phone", "id": "+15550000001"},
        ]
    }
    emulator.seed_contact(**phone)

    def emails(**params):
        response = api.get("/contacts", params=params)
        assert response.status_code == 200, response.text
        return sorted(c["email"] for c in response.json()["contacts"])

    assert emails(email="user01@example.com") == ["user01@example.com"]
    assert emails(email="USER01@example.com") == []
    assert emails(phone="+15550000001") == ["p@example.com"]
    assert emails(status="subscribed") == [
        "user01@example.com",
        "user03@example.com",
        "user05@example.com",
    ]
    assert emails(tag="t2") == ["user02@example.com", "user05@example.com"]
    assert emails(segmentID="seg1") == ["s@example.com"]
    assert emails(email="user01@example.com", status="subscribed") == ["user01@example.com"]
    emulator.advance_clock(5)
    later = format_rfc3339(emulator.clock())
    api.patch("/contacts", params={"email": "user00@example.com"}, json={"firstName": "Z"})
    assert emails(updatedAtFrom=later) == ["user00@example.com"]
    assert emails(updatedAtFrom="2000-01-01T00:00:00Z") == emails()


@pytest.mark.parametrize(
    "params",
    [
        {"tag": "a", "status": "subscribed"},
        {"updatedAtFrom": T1, "email": "a@b.co"},
        {"updatedAtFrom": T1, "phone": "+15550000001"},
        {"updatedAtFrom": T1, "status": "subscribed"},
        {"updatedAtFrom": T1, "segmentID": "x"},
        {"updatedAtFrom": T1, "tag": "x"},
        {"updatedAtFrom": "yesterday"},
        {"limit": 0},
        {"limit": 251},
        {"limit": "ten"},
        {"sort": "email"},
        {"direction": "up"},
        {"status": "gone"},
        {"unknown": "1"},
        {"tag": ["a", "b"]},
    ],
)
def test_list_rejects_bad_parameters(api, params):
    response = api.get("/contacts", params=params)
    assert response.status_code == 400 and problem(response)["errors"]


def test_list_limit_bounds_accepted(api, emulator):
    _seed(emulator, 3)
    assert len(api.get("/contacts", params={"limit": 1}).json()["contacts"]) == 1
    assert api.get("/contacts", params={"limit": 250}).json()["paging"]["limit"] == 250


def test_no_match_is_200_empty(api):
    body = api.get("/contacts", params={"email": "nobody@example.com"}).json()
    assert body["contacts"] == [] and body["paging"]["hasMore"] is False


# -- tags ---------------------------------------------------------------------------------------


def test_tags_are_applied_after_the_delay(api, emulator):
    emulator.configure(tags_delay=30)
    a = emulator.seed_contact(**contact("a@example.com"))
    emulator.seed_contact(**contact("b@example.com", tags=["old"]))
    emulator.seed_contact(segments=["s1"], **contact("c@example.com"))
    added = api.post(
        "/contacts/tags",
        json={
            "contactIDs": [a["id"]],
            "emails": ["b@example.com", "ghost@example.com"],
            "segmentID": "s1",
            "tags": ["vip"],
        },
        check_request=True,
    )
    assert added.status_code == 202 and added.content == b""
    assert all("vip" not in c["tags"] for c in emulator.contacts())
    emulator.advance_clock(31)
    assert {c["email"]: c["tags"] for c in emulator.contacts()} == {
        "a@example.com": ["vip"],
        "b@example.com": ["old", "vip"],
        "c@example.com": ["vip"],
    }
    removed = api.delete(
        "/contacts/tags", json={"emails": ["b@example.com"], "tags": ["old"]}, check_request=True
    )
    assert removed.status_code == 202
    emulator.advance_clock(31)
    assert emulator.get_contact("b@example.com")["tags"] == ["vip"]


@pytest.mark.parametrize(
    "body",
    [
        {"emails": ["a@example.com"]},
        {"emails": ["a@example.com"], "tags": []},
        {"tags": ["x"]},
        {"emails": ["a@example.com"] * 251, "tags": ["x"]},
        {"emails": ["a@example.com"], "tags": ["x"] * 101},
        {"emails": "a@example.com", "tags": ["x"]},
    ],
)
def test_tags_validation(api, body):
    assert api.post("/contacts/tags", json=body).status_code == 400
