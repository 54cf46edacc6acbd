"""Events, batches and brands over real HTTP."""

from __future__ import annotations

import uuid

import pytest

from tests.emulator.conftest import contact, problem

EVENT = {
    "eventName": "signed up",
    "origin": "api",
    "eventID": "9afca57b-d157-478b-adde-b9506322b16f",
    "contact": {"email": "jane@example.com", "firstName": "Jane"},
    "properties": {"plan": "pro"},
}


def test_event_is_accepted_logged_and_upserts_the_contact(api, emulator):
    response = api.post("/events", json=EVENT, check_request=True)
    assert response.status_code == 202 and response.content == b""
    (event,) = emulator.events()
    assert event["eventName"] == "signed up" and event["properties"] == {"plan": "pro"}
    jane = emulator.get_contact("jane@example.com")
    assert event["_contactID"] == jane["id"] and jane["firstName"] == "Jane"
    assert jane["status"] == "nonSubscribed"


def test_event_opt_ins_and_outs_follow_the_status_date_rule(api, emulator):
    body = {
        "eventName": "opted in",
        "origin": "api",
        "contact": {
            "email": "o@example.com",
            "optIns": [{"channel": "email", "createdAt": "2099-01-01T00:00:00Z", "source": "form"}],
            "consents": [
                {"channel": "email", "createdAt": "2099-01-01T00:00:00Z", "ip": "127.0.0.1"}
            ],
        },
    }
    assert api.post("/events", json=body, check_request=True).status_code == 202
    assert emulator.get_contact("o@example.com")["status"] == "subscribed"
    older = {
        **body,
        "contact": {
            "email": "o@example.com",
            "optOuts": [{"channel": "email", "createdAt": "2020-01-01T00:00:00Z"}],
        },
    }
    assert api.post("/events", json=older).status_code == 202
    assert emulator.get_contact("o@example.com")["status"] == "subscribed"


@pytest.mark.parametrize(
    ("change", "field", "strict"),
    [
        ({"eventName": None}, "eventName", False),
        ({"origin": None}, "origin", True),
        ({"eventID": "not-a-uuid"}, "eventID", False),
        ({"eventTime": "yesterday"}, "eventTime", False),
        ({"contact": None}, "contact", True),
        ({"contact": {"firstName": "x"}}, "contact", False),
        (
            {"contact": {"email": "a@example.com", "consents": [{"channel": "push"}]}},
            "contact.consents[0].channel",
            False,
        ),
        (
            {"contact": {"email": "a@example.com", "consents": [{"channel": "phone"}]}},
            "contact.consents[0].channel",
            True,
        ),
        (
            {"contact": {"email": "a@example.com", "firstName": "x" * 51}},
            "contact.firstName",
            False,
        ),
    ],
)
def test_event_validation(api, emulator, change, field, strict):
    emulator.configure(strict=strict)
    body = {k: v for k, v in {**EVENT, **change}.items() if v is not None}
    response = api.post("/events", json=body)
    assert response.status_code == 400 and field in [
        e["field"] for e in problem(response)["errors"]
    ]
    assert emulator.events() == []


def test_event_phone_channel_is_read_as_sms(api, emulator):
    body = {**EVENT, "contact": {"email": "a@example.com", "consents": [{"channel": "phone"}]}}
    assert api.post("/events", json=body).status_code == 202
    assert emulator.get_contact("a@example.com")["consents"][0]["channel"] == "sms"


def test_event_time_forms_and_historical_dedupe(api, emulator):
    historical = {**EVENT, "eventTime": "2021-07-01 00:00:00+02:00"}
    assert api.post("/events", json=historical).status_code == 202
    assert api.post("/events", json=historical).status_code == 202
    realtime = {**EVENT, "eventID": str(uuid.uuid4())}
    api.post("/events", json=realtime)
    api.post("/events", json=realtime)
    assert [e["_duplicate"] for e in emulator.events()] == [False, True, False, False]


# -- batches ------------------------------------------------------------------------------------


def test_batch_immediate_processing_and_items(api, emulator):
    items = [contact(f"b{i}@example.com", sendWelcomeMessage=False) for i in range(3)] + [
        {"identifiers": [{"type": "email", "id": "broken"}]}
    ]
    created = api.post(
        "/batches",
        json={"method": "POST", "endpoint": "contacts", "items": items},
        check_request=True,
    )
    assert created.status_code == 201 and created.json()["totalCount"] == 4
    batch_id = created.json()["batchID"]
    batch = api.get(f"/batches/{batch_id}").json()
    assert (
        batch["status"] == "finished" and batch["finishedCount"] == 4 and batch["errorsCount"] == 1
    )
    assert "responses" not in batch
    items = api.get(f"/batches/{batch_id}/items").json()
    assert [i["responseCode"] for i in items["responses"]] == [201, 201, 201]
    assert items["responses"][0]["response"]["email"] == "b0@example.com"
    assert items["errors"][0]["responseCode"] == 400
    assert items["errors"][0]["response"]["errors"][0]["field"] == "identifiers[0].id"
    assert items["errors"][0]["request"] == {"identifiers": [{"type": "email", "id": "broken"}]}
    assert len(emulator.contacts()) == 3


def test_batch_deferred_statuses(api, emulator):
    emulator.configure(batch_processing="deferred", batch_delay=10)
    items = [contact(f"d{i}@example.com") for i in range(4)]
    batch_id = api.post(
        "/batches", json={"method": "POST", "endpoint": "contacts", "items": items}
    ).json()["batchID"]
    pending = api.get(f"/batches/{batch_id}").json()
    assert (
        pending["status"] == "pending"
        and pending["finishedCount"] == 0
        and "startedAt" not in pending
    )
    emulator.advance_clock(10)
    running = api.get(f"/batches/{batch_id}").json()
    assert (
        running["status"] == "inProgress"
        and running["finishedCount"] == 2
        and "endedAt" not in running
    )
    emulator.advance_clock(10)
    done = api.get(f"/batches/{batch_id}").json()
    assert done["status"] == "finished" and done["finishedCount"] == 4 and done["endedAt"]
    assert len(emulator.contacts()) == 4


def test_batch_stops_after_errors(api, emulator):
    emulator.configure(batch_stop_after_errors=2)
    items = [{"identifiers": [{"type": "email", "id": "bad"}]}] * 2 + [contact("ok@example.com")]
    batch_id = api.post(
        "/batches", json={"method": "PUT", "endpoint": "contacts", "items": items}
    ).json()["batchID"]
    batch = api.get(f"/batches/{batch_id}").json()
    assert (
        batch["status"] == "stopped" and batch["errorsCount"] == 2 and batch["finishedCount"] == 2
    )
    assert emulator.contacts() == []


def test_event_batches(api, emulator):
    items = [{**EVENT, "eventID": str(uuid.uuid4())}, {"origin": "api"}]
    batch_id = api.post(
        "/batches", json={"method": "POST", "endpoint": "events", "items": items, "origin": "api"}
    ).json()["batchID"]
    items = api.get(f"/batches/{batch_id}/items").json()
    assert [i["responseCode"] for i in items["responses"]] == [202]
    assert [i["responseCode"] for i in items["errors"]] == [400]
    assert len(emulator.events()) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"method": "POST", "endpoint": "contacts", "items": []},
        {"method": "POST", "endpoint": "contacts", "items": [{}] * 101},
        {"method": "GET", "endpoint": "contacts", "items": [{}]},
        {"method": "POST", "endpoint": "orders", "items": [{}]},
        {"endpoint": "contacts", "items": [{}]},
        ["not", "an", "object"],
    ],
)
def test_batch_validation(api, body):
    response = api.post("/batches", json=body)
    assert response.status_code == 400 and problem(response)["errors"]


def test_batch_limits_accepted(api):
    assert (
        api.post(
            "/batches",
            json={"method": "POST", "endpoint": "contacts", "items": [contact("one@example.com")]},
        ).status_code
        == 201
    )
    hundred = [contact(f"h{i}@example.com") for i in range(100)]
    assert (
        api.post(
            "/batches", json={"method": "POST", "endpoint": "contacts", "items": hundred}
        ).status_code
        == 201
    )


def test_batch_list_offset_paging_and_filters(api, emulator):
    ids = []
    for i in range(5):
        ids.append(
            api.post(
                "/batches",
                json={
                    "method": "POST",
                    "endpoint": "contacts",
                    "items": [contact(f"l{i}@example.com")],
                },
            ).json()["batchID"]
        )
        emulator.advance_clock(1)
    api.post("/batches", json={"method": "POST", "endpoint": "events", "items": [EVENT]})
    page = api.get("/batches", params={"endpoint": "contacts", "limit": 2}).json()
    assert [b["batchID"] for b in page["batches"]] == ids[::-1][:2]
    assert (
        page["paging"]["offset"] == 0
        and page["paging"]["limit"] == 2
        and "previous" not in page["paging"]
    )
    assert "offset=2" in page["paging"]["next"] and "endpoint=contacts" in page["paging"]["next"]
    assert page["paging"]["next"].startswith(emulator.api_url + "/batches?")
    last = api.get("/batches", params={"endpoint": "contacts", "limit": 2, "offset": 4}).json()
    assert [b["batchID"] for b in last["batches"]] == [ids[0]] and "next" not in last["paging"]
    assert "offset=2" in last["paging"]["previous"]
    assert len(api.get("/batches", params={"endpoint": "events"}).json()["batches"]) == 1
    assert (
        api.get("/batches", params={"endpoint": "contacts", "status": "pending"}).json()["batches"]
        == []
    )
    today = emulator.batches()[0]["createdAt"][:10]
    assert (
        len(
            api.get(
                "/batches", params={"endpoint": "contacts", "dateFrom": today, "dateTo": today}
            ).json()["batches"]
        )
        == 5
    )
    assert (
        api.get("/batches", params={"endpoint": "contacts", "dateTo": "2000-01-01"}).json()[
            "batches"
        ]
        == []
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"endpoint": "orders"},
        {"endpoint": "contacts", "limit": 0},
        {"endpoint": "contacts", "offset": -1},
        {"endpoint": "contacts", "dateFrom": "01/01/2020"},
        {"endpoint": "contacts", "status": "done"},
        {"endpoint": "contacts", "page": 2},
    ],
)
def test_batch_list_validation(api, params):
    assert api.get("/batches", params=params).status_code == 400


def test_unknown_batch_is_404(api):
    assert problem(api.get("/batches/000000000000000000000000")).get("status") == 404
    assert api.get("/batches/000000000000000000000000/items").status_code == 404


# -- brands -------------------------------------------------------------------------------------


def test_brand_get_and_oauth_only_post(api, emulator):
    brand = api.get("/brands/current").json()
    assert brand["brandID"] == emulator.default_brand_id and brand["connected"] is False
    body = {
        "platform": "django",
        "version": "0.1.0",
        "website": "https://shop.example.com",
        "currency": "EUR",
    }
    refused = api.post("/brands/current", json=body, check_request=True)
    assert refused.status_code == 403 and "API key" in problem(refused)["detail"]
    token = emulator.issue_token()
    bearer = f"Bearer {token['access_token']}"
    accepted = api.post("/brands/current", json=body, authorization=bearer)
    assert accepted.status_code == 200 and accepted.json() == {"brandID": brand["brandID"]}
    brand = api.get("/brands/current", authorization=bearer).json()
    assert (
        brand["connected"] is True and brand["platform"] == "django" and brand["currency"] == "EUR"
    )
    too_long = api.post(
        "/brands/current", json={**body, "version": "12345678901"}, authorization=bearer
    )
    assert too_long.status_code == 400
    no_scope = emulator.issue_token(scopes=["brands.read"])
    assert (
        api.post(
            "/brands/current", json=body, authorization=f"Bearer {no_scope['access_token']}"
        ).status_code
        == 403
    )
