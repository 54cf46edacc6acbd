"""Products and product categories over real HTTP, every body checked against the spec."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import problem


def product(pid: str = "shoe-1", **fields):
    body = {
        "id": pid,
        "title": f"Shoe {pid}",
        "url": f"https://shop.example.com/p/{pid}",
        "currency": "EUR",
        "status": "inStock",
        "categoryIDs": ["shoes"],
        "images": [f"https://shop.example.com/i/{pid}.jpg"],
        "variants": [
            {"id": f"{pid}-42", "title": "Size 42", "price": 59.9, "url": "https://s/v", "sku": "S"}
        ],
    }
    return {**body, **fields}


def test_product_create_get_replace_delete(api, emulator):
    created = api.post("/products", json=product(), check_request=True)
    assert created.status_code == 201 and created.json() == {"id": "shoe-1"}
    got = api.get("/products/shoe-1").json()
    assert got["title"] == "Shoe shoe-1" and got["variants"][0]["price"] == 59.9
    assert got["createdAt"] and got["updatedAt"]
    replaced = api("PUT", "/products/shoe-1", json=product(title="New"), check_request=True)
    assert replaced.status_code == 200 and replaced.json() == {"id": "shoe-1"}
    (stored,) = emulator.products()
    assert stored["title"] == "New" and stored["createdAt"] == got["createdAt"]
    deleted = api.delete("/products/shoe-1")
    assert deleted.status_code == 204 and deleted.content == b""
    assert emulator.products() == []


def test_product_conflicts_and_404s(api):
    api.post("/products", json=product(), check_request=True)
    taken = api.post("/products", json=product(title="Again"), check_request=True)
    assert taken.status_code == 409 and "already exists" in problem(taken)["detail"]
    for method in ("GET", "DELETE"):
        missing = api(method, "/products/nothing")
        assert missing.status_code == 404 and problem(missing)["status"] == 404
    missing = api("PUT", "/products/nothing", json=product("nothing"), check_request=True)
    assert missing.status_code == 404
    mismatch = api("PUT", "/products/shoe-1", json=product("other"), check_request=True)
    assert mismatch.status_code == 400 and problem(mismatch)["errors"][0]["field"] == "id"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": None}, "currency"),
        ({"status": "soldOut"}, "status"),
        ({"id": "x" * 101}, "id"),
        ({"title": "t" * 256}, "title"),
        ({"variants": []}, "variants"),
        ({"variants": [{"id": "v", "title": "t", "url": "u"}]}, "variants[0].price"),
        ({"variants": [{"id": "v", "title": "t", "url": "u", "price": "9"}]}, "variants[0].price"),
        ({"categoryIDs": ["c"] * 101}, "categoryIDs"),
    ],
)
def test_product_validation(api, emulator, change, field):
    body = {k: v for k, v in product(**change).items() if v is not None}
    response = api.post("/products", json=body)
    assert response.status_code == 400
    assert field in [e["field"] for e in problem(response)["errors"]]
    assert emulator.products() == []


def test_product_list_offset_paging_and_sort(api, emulator):
    for i in range(5):
        api.post("/products", json=product(f"p{i}"), check_request=True)
        emulator.advance_clock(1)
    page = api.get("/products", params={"limit": 2}).json()
    assert [p["id"] for p in page["products"]] == ["p4", "p3"]
    assert page["paging"]["offset"] == 0 and page["paging"]["limit"] == 2
    assert page["paging"]["next"].startswith(emulator.api_url + "/products?")
    assert "offset=2" in page["paging"]["next"] and "previous" not in page["paging"]
    last = api.get("/products", params={"limit": 2, "offset": 4}).json()
    assert [p["id"] for p in last["products"]] == ["p0"] and "next" not in last["paging"]
    assert "offset=2" in last["paging"]["previous"]
    api("PUT", "/products/p0", json=product("p0", title="edited"))
    by_update = api.get("/products", params={"sort": "updatedAt", "limit": 1}).json()
    assert [p["id"] for p in by_update["products"]] == ["p0"]
    for bad in ({"limit": 0}, {"limit": 251}, {"offset": -1}, {"sort": "price"}, {"page": 1}):
        assert api.get("/products", params=bad).status_code == 400


def test_categories_create_get_patch_delete_and_list(api, emulator):
    created = api.post(
        "/product-categories", json={"categoryID": "shoes", "title": "Shoes"}, check_request=True
    )
    assert created.status_code == 201 and created.json() == {"categoryID": "shoes"}
    api.post("/product-categories", json={"categoryID": "bags", "title": "Bags"})
    taken = api.post("/product-categories", json={"categoryID": "shoes", "title": "Again"})
    assert taken.status_code == 409
    patched = api.patch("/product-categories/shoes", json={"title": "Trainers"}, check_request=True)
    assert patched.status_code == 200 and patched.json() == {"categoryID": "shoes"}
    got = api.get("/product-categories/shoes").json()
    assert got["title"] == "Trainers" and got["createdAt"] and got["updatedAt"]
    listed = api.get("/product-categories", params={"sort": "title"}).json()
    assert [c["categoryID"] for c in listed["categories"]] == ["bags", "shoes"]
    assert listed["paging"] == {"offset": 0, "limit": 100}
    assert api.delete("/product-categories/bags").status_code == 204
    assert [c["categoryID"] for c in emulator.categories()] == ["shoes"]
    for method in ("GET", "DELETE"):
        assert api(method, "/product-categories/bags").status_code == 404
    assert api.patch("/product-categories/bags", json={"title": "x"}).status_code == 404
    # No PUT for categories (PATCH only): the spec has no such operation to check against.
    put = api.session.put(
        emulator.api_url + "/product-categories/shoes",
        json={"title": "x"},
        headers={"Authorization": api.authorization, "Omnisend-Version": "2026-03-15"},
    )
    assert put.status_code == 405 and problem(put)["status"] == 405


@pytest.mark.parametrize(
    "body",
    [{"title": "No id"}, {"categoryID": "", "title": "x"}, {"categoryID": "c", "title": "t" * 256}],
)
def test_category_validation(api, body):
    response = api.post("/product-categories", json=body)
    assert response.status_code == 400 and problem(response)["errors"]


def test_catalog_scopes(api, emulator):
    reader = f"Omnisend-API-Key {emulator.issue_api_key(scopes=['products.read'])}"
    assert api.get("/products", authorization=reader).status_code == 200
    assert api.post("/products", json=product(), authorization=reader).status_code == 403
    body = {"categoryID": "c", "title": "C"}
    assert api.post("/product-categories", json=body, authorization=reader).status_code == 403
    none = f"Omnisend-API-Key {emulator.issue_api_key(scopes=['contacts.read'])}"
    assert api.get("/product-categories", authorization=none).status_code == 403


def test_product_and_category_batches(api, emulator):
    categories = [{"categoryID": "shoes", "title": "Shoes"}, {"title": "no id"}]
    batch = api.post(
        "/batches",
        json={"method": "POST", "endpoint": "categories", "items": categories},
        check_request=True,
    ).json()
    items = api.get(f"/batches/{batch['batchID']}/items").json()
    assert [i["responseCode"] for i in items["responses"]] == [201]
    assert [i["responseCode"] for i in items["errors"]] == [400]
    products = [product("b1"), product("b2"), product("b1")]
    batch = api.post(
        "/batches",
        json={"method": "POST", "endpoint": "products", "items": products},
        check_request=True,
    ).json()
    items = api.get(f"/batches/{batch['batchID']}/items").json()
    assert [i["response"] for i in items["responses"]] == [{"id": "b1"}, {"id": "b2"}]
    assert [i["responseCode"] for i in items["errors"]] == [409]
    replace = api.post(
        "/batches",
        json={"method": "PUT", "endpoint": "products", "items": [product("b2", title="B2")]},
    ).json()
    assert api.get(f"/batches/{replace['batchID']}").json()["errorsCount"] == 0
    assert [p["title"] for p in emulator.products()] == ["Shoe b1", "B2"]
    assert [c["categoryID"] for c in emulator.categories()] == ["shoes"]
    listed = api.get("/batches", params={"endpoint": "products"}).json()["batches"]
    assert len(listed) == 2
